// auth_proto.cc — Dovecot auth protocol server state machine: line parsing,
// field escapes, PLAIN/LOGIN decoding and CONT rounds. The decision itself is
// the Authenticator's; this file only speaks the protocol.
#include "mailgate/auth_proto.h"

#include <algorithm>
#include <charconv>
#include <strings.h>
#include <vector>

#include "mailgate/crypto.h"

namespace mailgate {
namespace {

constexpr size_t kMaxCredentialBytes = 1024;
const char* kUsernameChallenge = "VXNlcm5hbWU6";  // "Username:"
const char* kPasswordChallenge = "UGFzc3dvcmQ6";  // "Password:"

std::vector<std::string_view> splitTabs(std::string_view line) {
  std::vector<std::string_view> f;
  size_t start = 0;
  while (true) {
    size_t tab = line.find('\t', start);
    f.push_back(line.substr(start, tab == std::string_view::npos ? std::string_view::npos : tab - start));
    if (tab == std::string_view::npos) return f;
    start = tab + 1;
  }
}

std::optional<uint32_t> parseId(std::string_view s) {
  uint32_t id = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), id);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || id == 0) return std::nullopt;
  return id;
}

void fail(uint32_t id, std::string_view reason, bool temporary, std::string& out) {
  out += "FAIL\t" + std::to_string(id) + "\treason=" + escapeAuthField(reason);
  if (temporary) out += "\tcode=temp_fail";
  out += '\n';
}

}  // namespace

std::optional<PlainCredentials> decodePlain(std::string_view m) {
  size_t a = m.find('\0');
  if (a == std::string_view::npos) return std::nullopt;
  size_t b = m.find('\0', a + 1);
  if (b == std::string_view::npos || m.find('\0', b + 1) != std::string_view::npos) return std::nullopt;
  return PlainCredentials{std::string(m.substr(0, a)), std::string(m.substr(a + 1, b - a - 1)),
                          std::string(m.substr(b + 1))};
}

std::string unescapeAuthField(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] != '\001' || i + 1 == field.size()) {
      out += field[i];
      continue;
    }
    switch (field[++i]) {
      case '1': out += '\001'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case 'n': out += '\n'; break;
      case '0': out += '\0'; break;
      default: out += field[i];
    }
  }
  return out;
}

std::string escapeAuthField(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (char c : field) {
    switch (c) {
      case '\001': out += "\0011"; break;
      case '\t': out += "\001t"; break;
      case '\r': out += "\001r"; break;
      case '\n': out += "\001n"; break;
      case '\0': out += "\0010"; break;
      default: out += c;
    }
  }
  return out;
}

AuthSession::AuthSession(Authenticator& authenticator, unsigned pid, unsigned connection_id,
                         std::string cookie_hex, std::chrono::steady_clock::duration pending_ttl)
    : auth_(authenticator), pid_(pid), connection_id_(connection_id), cookie_(std::move(cookie_hex)),
      pending_ttl_(pending_ttl) {}

std::string AuthSession::handshake() const {
  return "VERSION\t1\t2\n"
         "MECH\tPLAIN\tplaintext\n"
         "MECH\tLOGIN\tplaintext\n"
         "SPID\t" +
         std::to_string(pid_) + "\nCUID\t" + std::to_string(connection_id_) + "\nCOOKIE\t" + cookie_ +
         "\nDONE\n";
}

AuthSession::Next AuthSession::onLine(std::string_view line, std::string& out) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  auto fields = splitTabs(line);
  std::string_view cmd = fields[0];
  if (cmd == "VERSION") {
    unsigned major = 0;
    if (fields.size() < 3 || std::from_chars(fields[1].data(), fields[1].data() + fields[1].size(), major).ec !=
                                 std::errc() || major != 1) {
      return Next::Close;
    }
    std::from_chars(fields[2].data(), fields[2].data() + fields[2].size(), client_minor_);
    got_version_ = true;
    return Next::Continue;
  }
  if (!got_version_) return Next::Close;
  if (cmd == "CPID") return Next::Continue;
  if (cmd == "AUTH") return onAuth(line, out);
  if (cmd == "CONT") return onCont(line, out);
  return Next::Close;
}

AuthSession::Next AuthSession::onAuth(std::string_view line, std::string& out) {
  auto fields = splitTabs(line);
  if (fields.size() < 3) return Next::Close;
  auto id = parseId(fields[1]);
  if (!id) return Next::Close;
  if (pending_.count(*id)) {
    fail(*id, "authentication request in progress", false, out);
    return Next::Continue;
  }
  dropAbandoned();
  Pending p;
  p.since = std::chrono::steady_clock::now();
  if (strncasecmp(std::string(fields[2]).c_str(), "PLAIN", 6) == 0) p.mech = "PLAIN";
  else if (strncasecmp(std::string(fields[2]).c_str(), "LOGIN", 6) == 0) p.mech = "LOGIN";
  else {
    fail(*id, "unsupported authentication mechanism", false, out);
    return Next::Continue;
  }
  std::optional<std::string> resp;
  for (size_t i = 3; i < fields.size(); ++i) {
    std::string field = unescapeAuthField(fields[i]);
    if (field.rfind("rip=", 0) == 0) p.client_ip = field.substr(4);
    else if (field.rfind("resp=", 0) == 0) resp = field.substr(5);
  }
  // resp= empty from an old (minor < 2) client means "no initial response".
  if (resp && resp->empty() && client_minor_ < 2) resp.reset();
  if (!resp) {
    out += "CONT\t" + std::to_string(*id) + "\t" + (p.mech == "LOGIN" ? kUsernameChallenge : "") + "\n";
    pending_[*id] = std::move(p);
    return Next::Continue;
  }
  return step(*id, p, *resp, out);
}

void AuthSession::dropAbandoned() {
  auto expired_before = std::chrono::steady_clock::now() - pending_ttl_;
  std::erase_if(pending_, [&](const auto& entry) { return entry.second.since <= expired_before; });
  if (pending_.size() < kMaxPendingAuthRequests) return;
  auto oldest = std::min_element(pending_.begin(), pending_.end(),
                                 [](const auto& a, const auto& b) { return a.second.since < b.second.since; });
  pending_.erase(oldest);
}

AuthSession::Next AuthSession::onCont(std::string_view line, std::string& out) {
  auto fields = splitTabs(line);
  if (fields.size() < 2) return Next::Close;
  auto id = parseId(fields[1]);
  if (!id) return Next::Close;
  auto it = pending_.find(*id);
  if (it == pending_.end()) {
    fail(*id, "unknown authentication request", false, out);
    return Next::Continue;
  }
  Pending p = std::move(it->second);
  pending_.erase(it);
  return step(*id, p, fields.size() > 2 ? unescapeAuthField(fields[2]) : std::string(), out);
}

AuthSession::Next AuthSession::step(uint32_t id, Pending& p, const std::string& response, std::string& out) {
  // "=" is SMTP's way of sending an empty initial response.
  std::optional<std::string> decoded = response == "=" ? std::string() : base64Decode(response);
  if (!decoded || decoded->size() > kMaxCredentialBytes) {
    fail(id, "invalid base64 data", false, out);
    return Next::Continue;
  }
  if (p.mech == "PLAIN") {
    auto creds = decodePlain(*decoded);
    if (!creds) {
      fail(id, "invalid PLAIN message", false, out);
      return Next::Continue;
    }
    if (!creds->authzid.empty() && creds->authzid != creds->authcid) {
      fail(id, "authorization identity not supported", false, out);
      return Next::Continue;
    }
    return finish(id, creds->authcid, creds->password, p.client_ip, out);
  }
  if (!p.login_have_user) {
    p.login_user = std::move(*decoded);
    p.login_have_user = true;
    out += "CONT\t" + std::to_string(id) + "\t" + kPasswordChallenge + "\n";
    pending_[id] = std::move(p);
    return Next::Continue;
  }
  return finish(id, p.login_user, *decoded, p.client_ip, out);
}

AuthSession::Next AuthSession::finish(uint32_t id, std::string_view user, std::string_view password,
                                      const std::string& client_ip, std::string& out) {
  AuthResult r = auth_.authenticate(user, password, client_ip);
  switch (r.kind) {
    case AuthResult::Kind::Ok:
      out += "OK\t" + std::to_string(id) + "\tuser=" + escapeAuthField(r.user) + "\n";
      return Next::Continue;
    case AuthResult::Kind::Fail:
      fail(id, r.reason, r.temporary, out);
      return Next::Continue;
    case AuthResult::Kind::Disconnect: break;
  }
  return Next::Close;
}

}  // namespace mailgate

// unsubscribe_token.cc — issue and verification of unsubscribe tokens (the
// format is documented in unsubscribe_token.h and mailgate-redis(7)), the
// web_secret_file text and the link. HMAC-SHA256, base64url and the
// constant-time comparison are OpenSSL's (crypto.cc).
#include "mailgate/unsubscribe_token.h"

#include "mailgate/crypto.h"

namespace mailgate {
namespace {

constexpr size_t kHeaderBytes = 5;  // kind, issue time

void putField(std::string& out, const std::string& field) {
  out += static_cast<char>(field.size());
  out += field;
}

// Reads one length-prefixed field at `pos` of `payload`; false when it runs past the end.
bool getField(std::string_view payload, size_t& pos, std::string& field) {
  if (pos >= payload.size()) return false;
  size_t n = static_cast<unsigned char>(payload[pos++]);
  if (n > payload.size() - pos) return false;
  field.assign(payload.substr(pos, n));
  pos += n;
  return true;
}

std::string mac(std::string_view secret, std::string_view payload) {
  return hmacSha256(secret, payload).substr(0, kUnsubscribeMacBytes);
}

}  // namespace

std::optional<std::string> issueUnsubscribeToken(const UnsubscribeToken& t, std::string_view secret) {
  if (secret.empty() || t.issued < 0 || t.issued > INT64_C(0xffffffff)) return std::nullopt;
  for (const std::string* f : {&t.account, &t.recipient, &t.campaign, &t.queue_id}) {
    if (f->size() > kMaxTokenField) return std::nullopt;
  }
  std::string payload;
  payload += static_cast<char>(kUnsubscribeTokenKind);
  for (int shift = 24; shift >= 0; shift -= 8) payload += static_cast<char>((t.issued >> shift) & 0xff);
  putField(payload, t.account);
  putField(payload, t.recipient);
  putField(payload, t.campaign);
  putField(payload, t.queue_id);
  payload += mac(secret, payload);
  return base64UrlEncode(payload);
}

const char* tokenErrorText(TokenError error) {
  switch (error) {
    case TokenError::None: return "valid token";
    case TokenError::Malformed: return "malformed token";
    case TokenError::BadSignature: return "bad token signature";
    case TokenError::Expired: return "expired token";
  }
  return "malformed token";
}

TokenCheck verifyUnsubscribeToken(std::string_view text, const std::vector<std::string>& secrets, int64_t now,
                                  std::chrono::seconds lifetime) {
  TokenCheck check;
  // The largest token: kind, time, four fields of kMaxTokenField, the MAC.
  constexpr size_t kMaxBytes = kHeaderBytes + 4 * (1 + kMaxTokenField) + kUnsubscribeMacBytes;
  if (text.size() > (kMaxBytes * 4 + 2) / 3) return check;
  auto raw = base64UrlDecode(text);
  if (!raw || raw->size() < kHeaderBytes + 4 + kUnsubscribeMacBytes) return check;
  std::string_view bytes = *raw;
  std::string_view payload = bytes.substr(0, bytes.size() - kUnsubscribeMacBytes);
  if (static_cast<unsigned char>(payload[0]) != kUnsubscribeTokenKind) return check;
  UnsubscribeToken t;
  for (size_t i = 1; i < kHeaderBytes; ++i) t.issued = (t.issued << 8) | static_cast<unsigned char>(payload[i]);
  size_t pos = kHeaderBytes;
  for (std::string* f : {&t.account, &t.recipient, &t.campaign, &t.queue_id}) {
    if (!getField(payload, pos, *f)) return check;
  }
  if (pos != payload.size()) return check;
  std::string_view tag = bytes.substr(payload.size());
  bool signed_ok = false;
  // Every secret is tried, so the time taken does not tell which one matched.
  for (const std::string& secret : secrets) {
    if (!secret.empty() && constantTimeEqual(mac(secret, payload), tag)) signed_ok = true;
  }
  if (!signed_ok) {
    check.error = TokenError::BadSignature;
    return check;
  }
  if (now - t.issued > lifetime.count() || t.issued - now > kTokenClockSkew.count()) {
    check.error = TokenError::Expired;
    return check;
  }
  check.error = TokenError::None;
  check.token = std::move(t);
  return check;
}

Result<std::vector<std::string>> parseWebSecrets(std::string_view text) {
  std::vector<std::string> secrets;
  size_t lineno = 0, pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++lineno;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    std::string where = "line " + std::to_string(lineno) + ": ";
    if (secrets.size() == 2) {
      return Error{Error::Kind::Invalid, where + "a third secret; expected the current one and at most one previous"};
    }
    if (line.size() < kWebSecretMinBytes) {
      return Error{Error::Kind::Invalid, where + "secret of " + std::to_string(line.size()) + " bytes; at least " +
                                             std::to_string(kWebSecretMinBytes) +
                                             " are needed (openssl rand -base64 48)"};
    }
    secrets.emplace_back(line);
  }
  if (secrets.empty()) return Error{Error::Kind::Invalid, "no secret (expected one line, or two during a rotation)"};
  return secrets;
}

std::string unsubscribeUrl(std::string_view base, std::string_view token) {
  std::string url(base);
  url += "/u/";
  url += token;
  return url;
}

}  // namespace mailgate

// address.cc — RFC 5321 Mailbox validation and the address forms used by the
// stoplist, bounce and sending-domain lookups.
#include "mailgate/address.h"

#include <arpa/inet.h>

namespace mailgate {
namespace {

bool isAtext(char c, bool utf8) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  if (utf8 && static_cast<unsigned char>(c) >= 0x80) return true;
  return std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

bool validDotAtom(std::string_view s, bool utf8 = false) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '.') {
      if (s[i - 1] == '.') return false;
    } else if (!isAtext(s[i], utf8)) {
      return false;
    }
  }
  return true;
}

bool validQuoted(std::string_view s) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return false;
  for (size_t i = 1; i + 1 < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\\') {
      if (++i + 1 >= s.size()) return false;
      unsigned char q = static_cast<unsigned char>(s[i]);
      if (q < 32 || q > 126) return false;
    } else if (c < 32 || c > 126 || c == '"') {
      return false;
    }
  }
  return true;
}

bool validHostname(std::string_view d, bool utf8) {
  if (d.empty() || d.size() > 255) return false;
  size_t start = 0;
  while (start <= d.size()) {
    size_t dot = d.find('.', start);
    std::string_view label = d.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                (utf8 && static_cast<unsigned char>(c) >= 0x80);
      if (!ok) return false;
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

bool validAddressLiteral(std::string_view d) {
  if (d.size() < 3 || d.front() != '[' || d.back() != ']') return false;
  std::string inner(d.substr(1, d.size() - 2));
  unsigned char buf[16];
  if (toLower(inner.substr(0, 5)) == "ipv6:") return inet_pton(AF_INET6, inner.c_str() + 5, buf) == 1;
  return inet_pton(AF_INET, inner.c_str(), buf) == 1;
}

}  // namespace

std::string toLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::optional<Mailbox> parseMailbox(std::string_view text, bool utf8) {
  if (text.size() >= 2 && text.front() == '<' && text.back() == '>') text = text.substr(1, text.size() - 2);
  size_t at = text.rfind('@');
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view local = text.substr(0, at), domain = text.substr(at + 1);
  if (local.empty() || local.size() > 64) return std::nullopt;
  if (!validDotAtom(local, utf8) && !validQuoted(local)) return std::nullopt;
  if (!validHostname(domain, utf8) && !validAddressLiteral(domain)) return std::nullopt;
  return Mailbox{std::string(local), toLower(domain)};
}

std::vector<std::string> recipientForms(const Mailbox& rcpt, bool subaddress) {
  std::vector<std::string> forms{rcpt.str()};
  if (subaddress && rcpt.local.front() != '"') {
    size_t plus = rcpt.local.find('+');
    if (plus != std::string::npos && validDotAtom(std::string_view(rcpt.local).substr(0, plus))) {
      forms.push_back(rcpt.local.substr(0, plus) + "@" + rcpt.domain);
    }
  }
  return forms;
}

std::vector<std::string> parentDomains(std::string_view domain) {
  std::vector<std::string> parents;
  size_t dot = domain.find('.');
  while (dot != std::string_view::npos) {
    parents.emplace_back(domain.substr(dot + 1));
    dot = domain.find('.', dot + 1);
  }
  return parents;
}

}  // namespace mailgate

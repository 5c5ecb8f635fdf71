// address.cc — RFC 5321/6531 Mailbox validation, IDN domains to A-labels,
// and the address keys used by the stoplist, bounce and sending-domain lookups.
#include "mailgate/address.h"

#include <arpa/inet.h>
#include <idn2.h>

#include <cstdint>
#include <utility>

namespace mailgate {
namespace {

// RFC 6531 atext: the ASCII atext and UTF-8 (checked by validUtf8).
bool isAtext(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  if (static_cast<unsigned char>(c) >= 0x80) return true;
  return std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

bool validDotAtom(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '.') {
      if (s[i - 1] == '.') return false;
    } else if (!isAtext(s[i])) {
      return false;
    }
  }
  return true;
}

// Well-formed UTF-8: shortest forms, no surrogates, at most U+10FFFF.
bool validUtf8(std::string_view s) {
  static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = c;
    if (c >= 0x80) {
      n = (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : 0;
      if (n == 0) return false;
      cp = c & (0x7f >> (n + 1));
      if (i + n >= s.size()) return false;
      for (size_t k = 1; k <= n; ++k) {
        unsigned char d = static_cast<unsigned char>(s[i + k]);
        if ((d & 0xc0) != 0x80) return false;
        cp = (cp << 6) | (d & 0x3f);
      }
      if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    }
    i += n + 1;
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

// An ASCII hostname: LDH labels of at most 63 octets, at most 255 in all.
bool validHostname(std::string_view d) {
  if (d.empty() || d.size() > 255) return false;
  size_t start = 0;
  while (start <= d.size()) {
    size_t dot = d.find('.', start);
    std::string_view label = d.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
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

// The lower-case A-label form of a domain with U-labels (IDNA2008, UTS #46
// non-transitional mapping, which also folds case), or nullopt.
std::optional<std::string> toALabels(std::string_view domain) {
  std::string in(domain);
  char* out = nullptr;
  if (idn2_to_ascii_8z(in.c_str(), &out, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) != IDN2_OK) return std::nullopt;
  std::string ascii = toLower(out);
  idn2_free(out);
  return ascii;
}

// The lower-case A-label form of a hostname or IDN, an address literal in
// lower case, or nullopt.
std::optional<std::string> normalDomain(std::string_view domain) {
  if (validAddressLiteral(domain)) return toLower(domain);
  bool ascii = true;
  for (char c : domain) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  std::optional<std::string> normal = ascii ? toLower(domain) : toALabels(domain);
  if (!normal || !validHostname(*normal)) return std::nullopt;
  return normal;
}

// <local@domain> -> {local, domain}, split at the last "@"; both empty without one.
std::pair<std::string_view, std::string_view> splitAddress(std::string_view text) {
  if (text.size() >= 2 && text.front() == '<' && text.back() == '>') text = text.substr(1, text.size() - 2);
  size_t at = text.rfind('@');
  if (at == std::string_view::npos) return {};
  return {text.substr(0, at), text.substr(at + 1)};
}

}  // namespace

std::string toLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string Mailbox::key() const {
  // "victim"@example.com is victim@example.com (RFC 5321 4.1.2): a quoted
  // local part that needs no quotes is compared without them.
  if (validQuoted(local)) {
    std::string bare;
    for (size_t i = 1; i + 1 < local.size(); ++i) {
      if (local[i] == '\\') ++i;
      bare += local[i];
    }
    if (validDotAtom(bare)) return toLower(bare) + "@" + domain;
  }
  return toLower(local) + "@" + domain;
}

std::optional<Mailbox> parseMailbox(std::string_view text) {
  auto [local, domain_text] = splitAddress(text);
  if (local.empty() || local.size() > 64) return std::nullopt;
  if (!(validDotAtom(local) && validUtf8(local)) && !validQuoted(local)) return std::nullopt;
  std::optional<std::string> domain = normalDomain(domain_text);
  if (!domain) return std::nullopt;
  return Mailbox{std::string(local), std::move(*domain)};
}

std::vector<std::string> recipientForms(const Mailbox& rcpt, bool subaddress) {
  std::vector<std::string> forms{rcpt.key()};
  std::string_view local = std::string_view(forms[0]).substr(0, forms[0].rfind('@'));
  if (subaddress && local.front() != '"') {
    size_t plus = local.find('+');
    if (plus != std::string::npos && validDotAtom(local.substr(0, plus))) {
      forms.push_back(Mailbox{std::string(local.substr(0, plus)), rcpt.domain}.key());
    }
  }
  return forms;
}

std::optional<std::string> normalHostname(std::string_view domain) {
  auto normal = normalDomain(domain);
  if (!normal || normal->front() == '[') return std::nullopt;
  return normal;
}

std::optional<std::vector<std::string>> recipientKeys(std::string_view text, bool subaddress) {
  if (auto m = parseMailbox(text)) return recipientForms(*m, subaddress);
  auto [local, domain_text] = splitAddress(text);
  bool printable = !local.empty() && validUtf8(local);
  for (unsigned char c : local) printable = printable && c >= 0x20 && c != 0x7f;
  std::optional<std::string> domain = normalDomain(domain_text);
  if (!printable || !domain) return std::nullopt;
  return recipientForms(Mailbox{std::string(local), std::move(*domain)}, subaddress);
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

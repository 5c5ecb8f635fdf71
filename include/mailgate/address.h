// address.h — RFC 5321/6531 envelope addresses: validating a Mailbox
// (local-part "@" domain, UTF-8 allowed), normalising it (domain in lower-case
// A-label form), the key it is matched under, the forms a recipient is looked
// up under (with and without +tag), and the parent domains a sending-domain
// entry may cover.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailgate {

struct Mailbox {
  std::string local;   // as given (quoted local parts keep their quotes)
  std::string domain;  // lower case, IDN labels as A-labels (xn--...); address literals keep their brackets
  std::string str() const { return local + "@" + domain; }
  // The form stoplists and bounce sets store and match (mailgate-redis(7)):
  // str() with the ASCII letters of the local part in lower case, and without
  // the quotes of a quoted local part that is a valid dot-atom ("Bob"@x is
  // bob@x). Other letters of a UTF-8 local part are compared as given.
  std::string key() const;
};

// Validates an RFC 5321 Mailbox: dot-atom or quoted-string local part (at
// most 64 octets), "@", a hostname (LDH labels, at most 255 octets) or an
// address literal. Surrounding <> are accepted. The empty address is invalid.
// RFC 6531 internationalised addresses are accepted: UTF-8 in the dot-atom
// local part, and IDN domains, which are converted to their A-label form
// (IDNA2008 with UTS #46 mapping, libidn2); invalid UTF-8 or IDN is refused.
std::optional<Mailbox> parseMailbox(std::string_view text);

// The keys a recipient is looked up under in stoplists and bounce sets:
// its key() and, when `subaddress` is on and the local part has a "+tag",
// the key of the base address without the tag.
std::vector<std::string> recipientForms(const Mailbox& rcpt, bool subaddress);

// The keys a recipient as written in RCPT TO is looked up under, also when it
// is no RFC 5321 Mailbox but Postfix accepts it (a local part over 64 octets,
// "a..b"): then its local part (up to the last "@") is taken as written, its
// domain normalised. nullopt when it cannot be decoded: no "@", an empty local
// part, invalid UTF-8 or control characters, a domain that is no hostname,
// IDN (libidn2 refuses it) or address literal.
std::optional<std::vector<std::string>> recipientKeys(std::string_view text, bool subaddress);

// A domain name (hostname or IDN, no address literal) in the form Redis keys
// use: lower case, IDN labels as A-labels; nullopt when it is none.
std::optional<std::string> normalHostname(std::string_view domain);

// "a.b.example.com" -> {"b.example.com", "example.com", "com"}
std::vector<std::string> parentDomains(std::string_view domain);

std::string toLower(std::string_view s);

}  // namespace mailgate

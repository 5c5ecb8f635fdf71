// address.h — RFC 5321 envelope addresses: validating a Mailbox
// (local-part "@" domain), normalising it (domain in lower case), the forms
// a recipient is looked up under (with and without +tag), and the parent
// domains a sending-domain entry may cover.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailgate {

struct Mailbox {
  std::string local;   // as given (quoted local parts keep their quotes)
  std::string domain;  // lower case; address literals keep their brackets
  std::string str() const { return local + "@" + domain; }
};

// Validates an RFC 5321 Mailbox: dot-atom or quoted-string local part (at
// most 64 octets), "@", a hostname (LDH labels, at most 255 octets) or an
// address literal. Surrounding <> are accepted. The empty address is invalid.
// `utf8` also accepts non-ASCII bytes in the local part and domain labels
// (RFC 6531/6532 internationalised addresses, as headers may carry them).
std::optional<Mailbox> parseMailbox(std::string_view text, bool utf8 = false);

// The addresses a recipient is looked up under in stoplists and bounce sets:
// itself and, when `subaddress` is on and the local part has a "+tag", the
// base address without the tag. Each normalised.
std::vector<std::string> recipientForms(const Mailbox& rcpt, bool subaddress);

// "a.b.example.com" -> {"b.example.com", "example.com", "com"}
std::vector<std::string> parentDomains(std::string_view domain);

std::string toLower(std::string_view s);

}  // namespace mailgate

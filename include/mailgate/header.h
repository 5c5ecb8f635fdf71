// header.h — RFC 5322 header parsing for the message rules: unfolding,
// RFC 2047 encoded words, and address lists with display names, comments,
// quoted local parts, groups and the obsolete forms senders still produce
// (no angle brackets, "Name <addr> (comment)"); and a mailbox written back
// as a folded header value. Pure code, fuzzed.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailgate {

// Field names compare case-insensitively (RFC 5322 1.2.2).
bool sameFieldName(std::string_view a, std::string_view b);

// Folded header value -> one line (CRLF/LF + blanks become the blanks).
std::string unfoldHeader(std::string_view value);

// `value` without leading and trailing blanks (spaces and tabs).
std::string_view trimBlanks(std::string_view value);

// Decodes RFC 2047 encoded words (=?charset?B|Q?...?=) to their raw bytes;
// text that is not a valid encoded word stays as it is.
std::string decodeEncodedWords(std::string_view text);

struct HeaderAddress {
  std::string display;  // decoded display name, may be empty
  std::string address;  // "local@domain", domain in lower case
};

// Every mailbox of an address-list header (From, To, Cc, Reply-To); group
// names are dropped, their members kept. Unparseable parts are skipped; when
// `invalid` is given it tells whether one of them was meant as an address
// (holds an "@") but is no valid mailbox (bad syntax, a local part over 64
// octets, an IDN that libidn2 refuses).
std::vector<HeaderAddress> parseAddressList(std::string_view value, bool* invalid = nullptr);

// `display` <`address`> as the value of a From (or To) header: the display
// name quoted when printable ASCII, else as RFC 2047 encoded words (UTF-8,
// each at most 75 octets), folded (LF + blank, RFC 5322 2.2.3) so that no line
// of "From: value" passes 78 octets unless the address alone is longer.
std::string formatMailbox(std::string_view display, std::string_view address);

}  // namespace mailgate

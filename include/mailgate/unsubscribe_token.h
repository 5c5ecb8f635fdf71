// unsubscribe_token.h — the token of a one-click unsubscribe link
// (https://BASE/u/TOKEN, RFC 8058): who may be unsubscribed from what, signed
// with HMAC-SHA256 under the server's web secret, so that mailgate-web checks
// it without a Redis read and a recipient cannot unsubscribe anyone else.
// Pure: issue, verify, the secrets file's text, the link.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailgate/result.h"

namespace mailgate {

// The token is URL-safe base64 (RFC 4648 section 5, no padding) of
//
//   offset  size  field
//   0       1     kind and format: 0x01 = unsubscribe token, format 1
//   1       4     issue time, Unix seconds (UTC), unsigned big-endian
//   5       1+n   account     (a length byte n, then n bytes)
//   .       1+n   recipient   (the envelope address as the MTA gave it)
//   .       1+n   campaign    (X-Campaign-Id, else the daily campaign)
//   .       1+n   queue id
//   end-16  16    HMAC-SHA256(secret, every byte before it), first 16 bytes
//
// The first byte is signed too: a later token kind signed with the same
// secret (click tracking) takes another value and can never pass for this one.
// A typical token (8-byte account, 20-byte address, 12-byte campaign and
// queue id) is 80 bytes, 107 characters; the largest the milter can issue
// (64 + 254 + 128 + a 64-byte queue id) 535 bytes, 714 characters, which
// with an https base of up to 200 characters keeps the List-Unsubscribe
// line under RFC 5322's 998 octets.
//
// Why 16 bytes of the MAC (128 bits, truncation as NIST SP 800-107 and
// RFC 2104 section 5 allow): a forger must guess the tag online, one HTTP
// request per guess, with a chance of 2^-128 each; the full 32 bytes would
// add 22 characters to every link (mailbox providers and people copy these
// URLs, some clients cut long ones) and no security that matters here.
constexpr uint8_t kUnsubscribeTokenKind = 0x01;
constexpr size_t kUnsubscribeMacBytes = 16;
constexpr size_t kWebSecretMinBytes = 32;
constexpr size_t kMaxTokenField = 255;
// A token may carry an issue time this far ahead of the verifier's clock
// (the milter and mailgate-web may run on different hosts).
constexpr std::chrono::seconds kTokenClockSkew{3600};

struct UnsubscribeToken {
  std::string account, recipient, campaign, queue_id;
  int64_t issued = 0;  // Unix seconds
  bool operator==(const UnsubscribeToken&) const = default;
};

// The token signed with `secret` (the current one); nullopt when a field
// passes kMaxTokenField bytes, the issue time does not fit in 32 bits or the
// secret is empty.
std::optional<std::string> issueUnsubscribeToken(const UnsubscribeToken& token, std::string_view secret);

enum class TokenError { None, Malformed, BadSignature, Expired };

// The plain text mailgate-web answers a bad token with (and logs):
// "malformed token", "bad token signature", "expired token".
const char* tokenErrorText(TokenError error);

struct TokenCheck {
  std::optional<UnsubscribeToken> token;  // set when the token is valid
  TokenError error = TokenError::Malformed;
  bool ok() const { return token.has_value(); }
};

// Checks `text` in this order: its form (base64url, kind byte, fields that
// fill it exactly: else Malformed), its MAC under each of `secrets` (current
// then previous, compared in constant time: else BadSignature), then its age
// against `lifetime` at `now` (Unix seconds; older, or issued more than
// kTokenClockSkew ahead: Expired). A forged token is never called expired.
TokenCheck verifyUnsubscribeToken(std::string_view text, const std::vector<std::string>& secrets, int64_t now,
                                  std::chrono::seconds lifetime);

// The text of web_secret_file: one secret per line, the first current, an
// optional second the previous one (accepted during a rotation); blank lines
// and lines starting with '#' are skipped, trailing blanks and CR dropped.
// Each secret is used as given (its bytes are the HMAC key) and must be at
// least kWebSecretMinBytes long. Error::Invalid says what is wrong (never
// showing a secret).
Result<std::vector<std::string>> parseWebSecrets(std::string_view text);

// "https://BASE/u/TOKEN" for web_base_url `base` (no trailing '/').
std::string unsubscribeUrl(std::string_view base, std::string_view token);

}  // namespace mailgate

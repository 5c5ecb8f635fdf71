// crypto.h — the few primitives mailgate needs, all from OpenSSL: random
// bytes, SHA-256 and HMAC-SHA256 in hex, base64 (standard and URL-safe), constant-time compare.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mailgate {

std::string randomBytes(size_t n);  // OpenSSL RAND_bytes; aborts if the RNG fails
std::string toHex(std::string_view bytes);
std::string sha256Hex(std::string_view data);
std::string hmacSha256Hex(std::string_view key, std::string_view data);
std::string hmacSha256(std::string_view key, std::string_view data);  // the 32 raw bytes
std::string base64Encode(std::string_view data);
std::string base64UrlEncode(std::string_view data);  // no padding
// Strict standard base64 (padding required, no blanks); nullopt on bad input.
std::optional<std::string> base64Decode(std::string_view text);
// Strict URL-safe base64 without padding, canonical only (the unused low bits
// of the last character zero): one string per byte sequence, so a changed
// character never decodes to the same bytes. nullopt on anything else.
std::optional<std::string> base64UrlDecode(std::string_view text);
// Equal lengths and bytes, in time that depends on the length alone
// (CRYPTO_memcmp): for MACs and other secrets.
bool constantTimeEqual(std::string_view a, std::string_view b);

}  // namespace mailgate

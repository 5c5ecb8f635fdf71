// dkim_canon.h — RFC 6376 "relaxed" canonicalisation: one header field at a
// time, and the body as a stream of chunks split anywhere, hashed with
// SHA-256 as it goes (state: a whitespace flag and a count of pending empty
// lines, never the body).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace mailgate {

using Sha256Digest = std::array<unsigned char, 32>;

// Appends the relaxed form of one header field (RFC 6376 §3.4.2) to `out`:
// the name lower-cased without whitespace, ":", the value unfolded with each
// run of SP, HTAB, CR and LF as one SP and none at either end; then CRLF
// when `crlf`. Other bytes (8-bit, VT, FF, ...) are kept as they are.
void appendRelaxedHeader(std::string& out, std::string_view name, std::string_view value, bool crlf = true);

// An incremental SHA-256 (OpenSSL EVP). ok() is false when OpenSSL could not
// set it up; update() and finish() then do nothing.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  bool ok() const { return ok_; }
  void update(const void* data, size_t len);
  void update(std::string_view s) { update(s.data(), s.size()); }
  Sha256Digest finish();

 private:
  evp_md_ctx_st* ctx_;
  bool ok_;
};

// The relaxed body canonicalisation (RFC 6376 §3.4.4) fed to a SHA-256:
// whitespace at line ends removed, other runs of SP/HTAB as one SP, empty
// lines at the end dropped, a CRLF added to a last line without one; an
// empty body (or one of empty lines only) hashes as the empty string. A CR
// not followed by LF is an ordinary byte.
class RelaxedBodyHash {
 public:
  bool ok() const { return sha_.ok(); }
  void update(const unsigned char* data, size_t len);
  Sha256Digest finish();

 private:
  void emptyLines();    // hashes the pending empty lines: content follows them
  void startContent();  // before a content byte: pending empty lines and SP
  Sha256 sha_;
  uint64_t empty_lines_ = 0;  // complete empty lines not yet known to be inside the body
  bool line_empty_ = true;    // nothing but whitespace so far on the current line
  bool pending_wsp_ = false;  // whitespace seen since the last content byte
  bool pending_cr_ = false;   // the last byte was CR
};

}  // namespace mailgate

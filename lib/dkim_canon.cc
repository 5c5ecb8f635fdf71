// dkim_canon.cc — RFC 6376 relaxed header and body canonicalisation and the
// SHA-256 they feed (OpenSSL EVP). The body side is a byte-level state
// machine so that chunk boundaries (inside CRLF, inside whitespace runs)
// never change the result.
#include "mailgate/dkim_canon.h"

#include <openssl/evp.h>

namespace mailgate {
namespace {

bool isWsp(unsigned char c) { return c == ' ' || c == '\t'; }
bool isHeaderSpace(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

void appendRelaxedHeader(std::string& out, std::string_view name, std::string_view value, bool crlf) {
  for (char c : name) {
    if (!isHeaderSpace(static_cast<unsigned char>(c))) out += lower(c);
  }
  out += ':';
  bool space = false;
  bool started = false;
  for (char c : value) {
    if (isHeaderSpace(static_cast<unsigned char>(c))) {
      space = started;
      continue;
    }
    if (space) out += ' ';
    space = false;
    started = true;
    out += c;
  }
  if (crlf) out += "\r\n";
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  ok_ = ctx_ != nullptr && EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) == 1;
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::update(const void* data, size_t len) {
  if (ok_ && len > 0) ok_ = EVP_DigestUpdate(ctx_, data, len) == 1;
}

Sha256Digest Sha256::finish() {
  Sha256Digest out{};
  unsigned int len = 0;
  if (ok_) ok_ = EVP_DigestFinal_ex(ctx_, out.data(), &len) == 1 && len == out.size();
  return out;
}

void RelaxedBodyHash::flush() {
  sha_.update(buf_.data(), used_);
  used_ = 0;
}

void RelaxedBodyHash::content(unsigned char c) {
  if (line_empty_) {
    for (; empty_lines_ > 0; --empty_lines_) {
      put('\r');
      put('\n');
    }
    line_empty_ = false;
  }
  if (pending_wsp_) put(' ');
  pending_wsp_ = false;
  put(c);
}

void RelaxedBodyHash::update(const unsigned char* data, size_t len) {
  for (size_t i = 0; i < len; ++i) {
    unsigned char c = data[i];
    if (pending_cr_) {
      pending_cr_ = false;
      if (c == '\n') {  // end of line: its trailing whitespace goes
        if (line_empty_) {
          ++empty_lines_;
        } else {
          put('\r');
          put('\n');
        }
        line_empty_ = true;
        pending_wsp_ = false;
        continue;
      }
      content('\r');  // a bare CR is content
    }
    if (c == '\r') {
      pending_cr_ = true;
    } else if (isWsp(c)) {
      pending_wsp_ = true;
    } else {
      content(c);
    }
  }
}

Sha256Digest RelaxedBodyHash::finish() {
  if (pending_cr_) content('\r');
  pending_cr_ = false;
  if (!line_empty_) {  // the last line had no CRLF
    put('\r');
    put('\n');
  }
  flush();
  return sha_.finish();
}

}  // namespace mailgate

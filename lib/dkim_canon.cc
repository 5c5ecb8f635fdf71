// dkim_canon.cc — RFC 6376 relaxed header and body canonicalisation and the
// SHA-256 they feed (OpenSSL EVP). The body side hashes runs of the chunk
// that are their own canonical form in place, and keeps the little state
// that makes chunk boundaries (inside CRLF, inside whitespace runs) never
// change the result.
#include "mailgate/dkim_canon.h"

#include <algorithm>
#include <cstring>
#include <openssl/evp.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace mailgate {
namespace {

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

namespace {

// Bytes that end a run of content: SP, HTAB, CR.
constexpr std::array<bool, 256> kSpecial = [] {
  std::array<bool, 256> t{};
  t[' '] = t['\t'] = t['\r'] = true;
  return t;
}();

// The first byte from `p` on that is SP, HTAB or CR (or `end`): sixteen
// bytes at a time with SSE2 (every x86-64 has it), else eight at a time (a
// byte equal to b makes v ^ b*0x01..01 have a zero byte).
const unsigned char* skipContent(const unsigned char* p, const unsigned char* end) {
#if defined(__SSE2__)
  const __m128i sp = _mm_set1_epi8(' '), tab = _mm_set1_epi8('\t'), cr = _mm_set1_epi8('\r');
  for (; end - p >= 16; p += 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, sp), _mm_cmpeq_epi8(v, tab)), _mm_cmpeq_epi8(v, cr));
    if (int mask = _mm_movemask_epi8(hit); mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
  }
#else
  constexpr uint64_t kOnes = 0x0101010101010101ULL, kHighs = 0x8080808080808080ULL;
  auto hasZero = [](uint64_t v) { return (v - kOnes) & ~v & kHighs; };
  for (; end - p >= 8; p += 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    if (hasZero(v ^ (kOnes * ' ')) | hasZero(v ^ (kOnes * '\t')) | hasZero(v ^ (kOnes * '\r'))) break;
  }
#endif
  while (p < end && !kSpecial[*p]) ++p;
  return p;
}

}  // namespace

void RelaxedBodyHash::emptyLines() {
  static const std::string kCrlfs = [] {
    std::string s;
    for (int i = 0; i < 64; ++i) s += "\r\n";
    return s;
  }();
  while (empty_lines_ > 0) {
    uint64_t n = std::min<uint64_t>(empty_lines_, 64);
    sha_.update(kCrlfs.data(), 2 * n);
    empty_lines_ -= n;
  }
}

void RelaxedBodyHash::startContent() {
  if (line_empty_) emptyLines();
  if (pending_wsp_) sha_.update(" ", 1);
  line_empty_ = false;
  pending_wsp_ = false;
}

// Most of a body is its own canonical form: a run of bytes that is (content,
// single SPs between content, CRLF after content) is hashed straight from
// the chunk; only whitespace to squeeze or drop, empty lines and chunk ends
// interrupt the run.
void RelaxedBodyHash::update(const unsigned char* data, size_t len) {
  const unsigned char* p = data;
  const unsigned char* end = data + len;
  const unsigned char* span = p;  // [span, p) is output as it is
  auto cut = [&](const unsigned char* next) {
    if (p > span) sha_.update(span, static_cast<size_t>(p - span));
    span = next;
  };
  while (p < end) {
    if (pending_cr_) {  // span == p here
      pending_cr_ = false;
      if (*p == '\n') {  // end of line: its trailing whitespace goes
        if (line_empty_) {
          ++empty_lines_;
        } else {
          sha_.update("\r\n", 2);
        }
        line_empty_ = true;
        pending_wsp_ = false;
        span = ++p;
        continue;
      }
      startContent();  // a bare CR is content
      sha_.update("\r", 1);
    }
    if (line_empty_ || pending_wsp_) {
      unsigned char c = *p;
      if (c == '\r' || c == ' ' || c == '\t') {
        cut(p + 1);
        (c == '\r' ? pending_cr_ : pending_wsp_) = true;
        ++p;
        continue;
      }
      if (pending_wsp_ || empty_lines_ > 0) cut(p);
      startContent();
    }
    p = skipContent(p, end);  // inside content
    if (p == end) break;
    if (*p == ' ' && p + 1 < end && !kSpecial[p[1]]) {  // one SP between content: as it is
      p += 1;
      continue;
    }
    if (*p == '\r' && p + 1 < end && p[1] == '\n') {  // CRLF after content: as it is
      p += 2;
      line_empty_ = true;
      continue;
    }
    unsigned char c = *p;
    cut(p + 1);
    (c == '\r' ? pending_cr_ : pending_wsp_) = true;
    ++p;
  }
  cut(end);
}

Sha256Digest RelaxedBodyHash::finish() {
  if (pending_cr_) {  // a bare CR at the very end
    startContent();
    sha_.update("\r", 1);
  }
  pending_cr_ = false;
  if (!line_empty_) sha_.update("\r\n", 2);  // the last line had no CRLF
  return sha_.finish();
}

}  // namespace mailgate

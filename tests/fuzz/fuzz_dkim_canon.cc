// fuzz_dkim_canon.cc — differential libFuzzer target for the DKIM relaxed
// canonicalisation (dkim_canon.h): the streaming body hash fed the input in
// chunks split anywhere, and the relaxed header form, must equal a plain
// whole-input reference written here from RFC 6376 §3.4.2 and §3.4.4.
// The first input byte seeds the chunk splits; the rest is the data.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "mailgate/dkim_canon.h"

namespace {

bool wsp(char c) { return c == ' ' || c == '\t'; }

// RFC 6376 §3.4.4 on the whole body: lines end in CRLF (a bare CR or LF is
// an ordinary byte); per line runs of WSP become one SP, WSP at the end
// goes; empty lines at the end go; a last line without CRLF gets one.
std::string referenceBody(std::string_view body) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < body.size()) {
    size_t crlf = body.find("\r\n", start);
    std::string_view raw = body.substr(start, crlf == std::string_view::npos ? std::string_view::npos : crlf - start);
    std::string line;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (!wsp(raw[i])) {
        line += raw[i];
        continue;
      }
      while (i + 1 < raw.size() && wsp(raw[i + 1])) ++i;
      if (i + 1 < raw.size()) line += ' ';  // not at the end of the line
    }
    lines.push_back(std::move(line));
    if (crlf == std::string_view::npos) break;
    start = crlf + 2;
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  std::string out;
  for (const auto& l : lines) out += l + "\r\n";
  return out;
}

// RFC 6376 §3.4.2: the name lower-cased without blanks; the value unfolded
// (CR and LF as blanks), split at blanks and joined with one SP.
std::string referenceHeader(std::string_view name, std::string_view value, bool crlf) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  std::string out;
  for (char c : name) {
    if (!blank(c)) out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  out += ':';
  std::string word;
  bool first = true;
  for (size_t i = 0; i <= value.size(); ++i) {
    if (i < value.size() && !blank(value[i])) {
      word += value[i];
      continue;
    }
    if (word.empty()) continue;
    if (!first) out += ' ';
    out += word;
    word.clear();
    first = false;
  }
  if (crlf) out += "\r\n";
  return out;
}

mailgate::Sha256Digest digestOf(std::string_view s) {
  mailgate::Sha256 sha;
  sha.update(s);
  return sha.finish();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint32_t rng = data[0] * 2654435761u + 1;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  auto next = [&rng] {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
  };

  // The body: whole, then in chunks of 1-3 octets, up to 40 or the rest.
  mailgate::Sha256Digest expected = digestOf(referenceBody(in));
  mailgate::RelaxedBodyHash whole;
  whole.update(reinterpret_cast<const unsigned char*>(in.data()), in.size());
  if (whole.finish() != expected) abort();
  mailgate::RelaxedBodyHash chunked;
  for (size_t pos = 0; pos < in.size();) {
    uint32_t r = next();
    size_t len = r % 4 == 0 ? in.size() - pos : r % 4 == 1 ? 1 + (r >> 8) % 40 : 1 + (r >> 8) % 3;
    len = std::min(len, in.size() - pos);
    if (r % 16 == 5) chunked.update(reinterpret_cast<const unsigned char*>(in.data() + pos), 0);
    chunked.update(reinterpret_cast<const unsigned char*>(in.data() + pos), len);
    pos += len;
  }
  if (chunked.finish() != expected) abort();

  // A header field: the name up to the first ':', the value after it.
  size_t colon = in.find(':');
  std::string_view name = colon == std::string_view::npos ? std::string_view() : in.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? in : in.substr(colon + 1);
  for (bool crlf : {true, false}) {
    std::string out = "x";  // appended to, never replaced
    mailgate::appendRelaxedHeader(out, name, value, crlf);
    if (out != "x" + referenceHeader(name, value, crlf)) abort();
  }
  return 0;
}

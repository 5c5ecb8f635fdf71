// long_lines.cc — lines over 998 octets: the chunk scanner and header
// refolding (before blanks, RFC 5322 2.2.3; encoded words for unstructured
// text that has no blank to fold at), and the refusal both modes share.
#include "mailgate/long_lines.h"

#include <algorithm>
#include <cstring>
#include <strings.h>

#include "mailgate/crypto.h"
#include "mailgate/header.h"

namespace mailgate {
namespace {

constexpr size_t kFoldWidth = 78;  // RFC 5322 2.1.1 SHOULD

bool isWsp(char c) { return c == ' ' || c == '\t'; }

bool sameName(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// The physical lines of a libmilter header value (LF before continuations;
// a CR before the LF is not part of the line).
std::vector<std::string_view> valueLines(std::string_view value) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (true) {
    size_t nl = value.find('\n', start);
    std::string_view line = value.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (nl == std::string_view::npos) return lines;
    start = nl + 1;
  }
}

// Splits one physical line of `prefix` octets before it ("Name: " on the
// first line) before blanks: pieces of at most kFoldWidth octets where the
// blanks allow, none over kMaxLineOctets. A fold goes before a blank that
// has a non-blank before it (after `prefix`) and a non-blank after it.
std::optional<std::vector<std::string_view>> foldLine(std::string_view line, size_t prefix) {
  std::vector<size_t> breaks;
  bool seen = false;
  for (size_t i = 0; i < line.size(); ++i) {
    if (!isWsp(line[i])) seen = true;
    else if (seen) breaks.push_back(i);
  }
  size_t last_text = line.find_last_not_of(" \t");
  std::erase_if(breaks, [&](size_t i) { return last_text == std::string_view::npos || i > last_text; });
  std::vector<std::string_view> pieces;
  size_t start = 0, room = prefix;
  auto next = breaks.begin();
  while (room + (line.size() - start) > kFoldWidth) {
    // The furthest break that keeps the piece within kFoldWidth, else the
    // nearest one (a long word), which must keep it within kMaxLineOctets.
    auto fit = next;
    while (fit != breaks.end() && room + (*fit - start) <= kFoldWidth) ++fit;
    auto chosen = fit != next ? std::prev(fit) : fit;
    if (chosen == breaks.end() || room + (*chosen - start) > kMaxLineOctets) {
      if (room + (line.size() - start) <= kMaxLineOctets) break;
      return std::nullopt;
    }
    pieces.push_back(line.substr(start, *chosen - start));
    start = *chosen;
    room = 0;
    next = std::next(chosen);
  }
  pieces.push_back(line.substr(start));
  return pieces;
}

bool validUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

// Unstructured text as RFC 2047 words (UTF-8, base64, whole characters per
// word), one per line: 42 octets make 56 of base64, 68 with the delimiters.
std::optional<std::string> encodedWords(std::string_view name, std::string_view value) {
  std::string text = unfoldHeader(value);
  if (text.find("=?") != std::string::npos || !validUtf8(text) || text.empty()) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < text.size();) {
    size_t n = std::min<size_t>(42, text.size() - i);
    while (n > 1 && i + n < text.size() && (static_cast<unsigned char>(text[i + n]) & 0xc0) == 0x80) --n;
    if (!out.empty()) out += "\n ";
    out += "=?UTF-8?B?" + base64Encode(std::string_view(text).substr(i, n)) + "?=";
    i += n;
  }
  if (name.size() + 2 + 68 > kMaxLineOctets) return std::nullopt;
  return out;
}

}  // namespace

void LineLengthScanner::feed(const unsigned char* data, size_t len) {
  while (len > 0 && !too_long_) {
    const void* nl = memchr(data, '\n', len);
    size_t n = nl == nullptr ? len : static_cast<size_t>(static_cast<const unsigned char*>(nl) - data);
    if (n > 0) {
      current_ += n;
      last_ = data[n - 1];
    }
    if (nl == nullptr) {
      too_long_ = current_ > kMaxLineOctets + 1;  // even without a CR at its end
      return;
    }
    too_long_ = current_ - (current_ > 0 && last_ == '\r' ? 1 : 0) > kMaxLineOctets;
    current_ = 0;
    last_ = 0;
    data += n + 1;
    len -= n + 1;
  }
}

bool LineLengthScanner::tooLong() const {
  return too_long_ || current_ - (current_ > 0 && last_ == '\r' ? 1 : 0) > kMaxLineOctets;
}

bool hasLongLine(std::string_view text) {
  LineLengthScanner scan;
  scan.feed(text);
  return scan.tooLong();
}

Verdict longLinesRefusal(std::string rule) {
  return Verdict{Action::Reject, "550 5.6.0 message has lines longer than 998 octets", std::move(rule)};
}

bool headerHasLongLine(std::string_view name, std::string_view value) {
  auto lines = valueLines(value);
  for (size_t i = 0; i < lines.size(); ++i) {
    // The first line is "Name: value" (Postfix writes one blank after the colon).
    if ((i == 0 ? name.size() + 2 : 0) + lines[i].size() > kMaxLineOctets) return true;
  }
  return false;
}

std::optional<std::string> refoldHeader(std::string_view name, std::string_view value) {
  auto lines = valueLines(value);
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    size_t prefix = i == 0 ? name.size() + 2 : 0;
    if (i > 0) out += '\n';
    if (prefix + lines[i].size() <= kMaxLineOctets) {
      out += lines[i];
      continue;
    }
    auto pieces = foldLine(lines[i], prefix);
    if (!pieces) {
      if (sameName(name, "Subject") || sameName(name, "Comments")) return encodedWords(name, value);
      return std::nullopt;
    }
    for (size_t k = 0; k < pieces->size(); ++k) {
      if (k > 0) out += '\n';
      out += (*pieces)[k];
    }
  }
  return out;
}

HeaderFolding foldLongHeaders(const HeaderList& headers, LongLines mode) {
  HeaderFolding out;
  for (size_t i = 0; i < headers.size(); ++i) {
    const auto& [name, value] = headers[i];
    if (!headerHasLongLine(name, value)) continue;
    if (mode == LongLines::Reject) {
      out.verdict = longLinesRefusal();
      out.edits.clear();
      return out;
    }
    auto folded = refoldHeader(name, value);
    if (!folded) {
      out.verdict = {Action::Reject, "550 5.6.0 header line longer than 998 octets cannot be folded", "long_header"};
      out.names = {name};
      out.edits.clear();
      return out;
    }
    int index = 0;
    for (size_t k = 0; k <= i; ++k) index += sameName(headers[k].first, name) ? 1 : 0;
    out.edits.push_back({HeaderEdit::Kind::Change, name, index, *folded});
    out.names.push_back(name);
  }
  return out;
}

}  // namespace mailgate

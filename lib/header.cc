// header.cc — RFC 5322 / RFC 2047 header parsing: a tokenizer (atoms,
// quoted strings, comments, domain literals, specials) and an address-list
// parser on top of it. Tolerant: what cannot be an address is skipped (and
// reported when it holds an "@"). And
// the reverse for one mailbox: a folded header value with its display name.
#include "mailgate/header.h"

#include <strings.h>

#include "mailgate/address.h"
#include "mailgate/crypto.h"

namespace mailgate {
namespace {

struct Token {
  enum class Kind { Atom, Quoted, Literal, Special };
  Kind kind;
  std::string text;  // Quoted: without quotes, unescaped; Literal: with brackets
  bool space_before = false;
};

constexpr size_t kMaxLine = 78;  // RFC 5322 2.1.1, without CRLF
constexpr size_t kFromName = 6;  // "From: " before the value on the first line

bool isSpecial(char c) { return std::string_view("()<>[]:;@\\,.\"").find(c) != std::string_view::npos; }
bool isBlank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Splits a header value into tokens; comments are dropped but the last one
// is kept in `comment` (a display name in "addr (Name)").
std::vector<Token> tokenize(std::string_view v, std::string& comment) {
  std::vector<Token> out;
  bool space = false;
  size_t i = 0;
  while (i < v.size()) {
    char c = v[i];
    if (isBlank(c)) {
      space = true;
      ++i;
    } else if (c == '(') {
      int depth = 0;
      size_t start = i;
      for (; i < v.size(); ++i) {
        if (v[i] == '\\') {
          ++i;
        } else if (v[i] == '(') {
          ++depth;
        } else if (v[i] == ')' && --depth == 0) {
          ++i;
          break;
        }
      }
      comment = std::string(v.substr(start + 1, i - start - (depth == 0 ? 2 : 1)));
      space = true;
    } else if (c == '"') {
      std::string text;
      for (++i; i < v.size() && v[i] != '"'; ++i) {
        if (v[i] == '\\' && i + 1 < v.size()) ++i;
        text += v[i];
      }
      ++i;  // closing quote (or end)
      out.push_back({Token::Kind::Quoted, std::move(text), space});
      space = false;
    } else if (c == '[') {
      size_t end = v.find(']', i);
      if (end == std::string_view::npos) end = v.size() - 1;
      out.push_back({Token::Kind::Literal, std::string(v.substr(i, end - i + 1)), space});
      i = end + 1;
      space = false;
    } else if (isSpecial(c)) {
      out.push_back({Token::Kind::Special, std::string(1, c), space});
      ++i;
      space = false;
    } else {
      size_t start = i;
      while (i < v.size() && !isBlank(v[i]) && !isSpecial(v[i])) ++i;
      out.push_back({Token::Kind::Atom, std::string(v.substr(start, i - start)), space});
      space = false;
    }
  }
  return out;
}

bool isSpecialToken(const Token& t, char c) { return t.kind == Token::Kind::Special && t.text[0] == c; }

// "local@domain" from the tokens of an addr-spec, validated (UTF-8 allowed).
std::optional<std::string> addrSpec(const std::vector<Token>& toks, size_t begin, size_t end) {
  std::string local, domain;
  bool at = false;
  for (size_t i = begin; i < end; ++i) {
    const Token& t = toks[i];
    // Two words in a row ("exa mple.com") are a phrase, not an address.
    if (i > begin && t.kind != Token::Kind::Special && toks[i - 1].kind != Token::Kind::Special) return std::nullopt;
    std::string piece;
    if (t.kind == Token::Kind::Quoted) {
      piece.push_back('"');  // (not `piece = "\""`: GCC 12 -Wrestrict false positive under ASan)
      for (char c : t.text) {
        if (c == '"' || c == '\\') piece.push_back('\\');
        piece.push_back(c);
      }
      piece.push_back('"');
    } else {
      piece = t.text;
    }
    if (isSpecialToken(t, '@')) {
      if (at) return std::nullopt;
      at = true;
      continue;
    }
    if (t.kind == Token::Kind::Special && !isSpecialToken(t, '.')) return std::nullopt;
    (at ? domain : local) += piece;
  }
  if (!at) return std::nullopt;
  auto m = parseMailbox(local + "@" + domain);
  if (!m) return std::nullopt;
  return m->str();
}

// Whether the tokens hold an "@": an address was meant, valid or not.
bool hasAt(const std::vector<Token>& toks, size_t begin, size_t end) {
  for (size_t i = begin; i < end; ++i) {
    if (isSpecialToken(toks[i], '@')) return true;
  }
  return false;
}

std::string phraseText(const std::vector<Token>& toks, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end; ++i) {
    if (!out.empty() && toks[i].space_before) out += ' ';
    out += toks[i].text;
  }
  return decodeEncodedWords(out);
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> decodeWord(std::string_view word) {
  // =?charset?X?text?=
  if (word.size() < 8 || !word.starts_with("=?") || !word.ends_with("?=")) return std::nullopt;
  std::string_view inner = word.substr(2, word.size() - 4);
  size_t q1 = inner.find('?');
  if (q1 == std::string_view::npos || q1 + 2 >= inner.size() || inner[q1 + 2] != '?') return std::nullopt;
  char enc = inner[q1 + 1];
  std::string_view text = inner.substr(q1 + 3);
  if (enc == 'B' || enc == 'b') {
    std::string padded(text);
    while (padded.size() % 4) padded += '=';
    return base64Decode(padded);
  }
  if (enc != 'Q' && enc != 'q') return std::nullopt;
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '_') {
      out += ' ';
    } else if (text[i] == '=' && i + 2 < text.size() + 0 && hexValue(text[i + 1]) >= 0 && hexValue(text[i + 2]) >= 0) {
      out += static_cast<char>(hexValue(text[i + 1]) * 16 + hexValue(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

}  // namespace

bool sameFieldName(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string unfoldHeader(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\r' && i + 1 < value.size() && value[i + 1] == '\n') continue;
    if (value[i] == '\n') continue;
    out += value[i];
  }
  return out;
}

std::string_view trimBlanks(std::string_view value) {
  size_t start = value.find_first_not_of(" \t");
  if (start == std::string_view::npos) return {};
  return value.substr(start, value.find_last_not_of(" \t") - start + 1);
}

std::string decodeEncodedWords(std::string_view text) {
  std::string out;
  size_t i = 0;
  bool last_was_word = false;
  std::string pending_space;
  while (i < text.size()) {
    size_t start = text.find("=?", i);
    if (start == std::string_view::npos) {
      out += pending_space;
      out.append(text.substr(i));
      break;
    }
    // An encoded word ends at "?=" after charset?X?.
    size_t q1 = text.find('?', start + 2);
    size_t q2 = q1 == std::string_view::npos ? q1 : text.find('?', q1 + 1);
    size_t end = q2 == std::string_view::npos ? q2 : text.find("?=", q2 + 1);
    std::optional<std::string> decoded;
    if (end != std::string_view::npos) decoded = decodeWord(text.substr(start, end + 2 - start));
    if (!decoded) {
      out += pending_space;
      pending_space.clear();
      out.append(text.substr(i, start + 2 - i));
      i = start + 2;
      last_was_word = false;
      continue;
    }
    std::string_view between = text.substr(i, start - i);
    bool only_blanks = between.find_first_not_of(" \t") == std::string_view::npos;
    // Blanks between two encoded words are not part of the text (RFC 2047 §6.2).
    if (!(last_was_word && only_blanks)) out.append(between);
    out += *decoded;
    i = end + 2;
    last_was_word = true;
  }
  return out;
}

std::vector<HeaderAddress> parseAddressList(std::string_view value, bool* invalid) {
  bool bad = false;
  std::string comment;
  std::string unfolded = unfoldHeader(value);
  std::vector<Token> t = tokenize(unfolded, comment);
  std::vector<HeaderAddress> out;
  size_t start = 0;  // first token of the current mailbox
  for (size_t i = 0; i <= t.size(); ++i) {
    bool end = i == t.size() || isSpecialToken(t[i], ',') || isSpecialToken(t[i], ';');
    if (i < t.size() && isSpecialToken(t[i], ':')) {
      start = i + 1;  // "group name:" — its members follow
      continue;
    }
    if (i < t.size() && isSpecialToken(t[i], '<')) {
      size_t close = i + 1;
      while (close < t.size() && !isSpecialToken(t[close], '>')) ++close;
      // Source routes (obs-route "@a,@b:") come before the last ':'.
      size_t addr_begin = i + 1;
      for (size_t k = i + 1; k < close; ++k) {
        if (isSpecialToken(t[k], ':')) addr_begin = k + 1;
      }
      if (auto a = addrSpec(t, addr_begin, close)) out.push_back({phraseText(t, start, i), *a});
      else bad = bad || hasAt(t, addr_begin, close);
      i = close;
      while (i + 1 < t.size() && !isSpecialToken(t[i + 1], ',') && !isSpecialToken(t[i + 1], ';')) ++i;
      start = i + 1;
      continue;
    }
    if (!end) continue;
    if (i > start) {
      if (auto a = addrSpec(t, start, i)) out.push_back({"", *a});
      else bad = bad || hasAt(t, start, i);
    }
    start = i + 1;
  }
  if (out.size() == 1 && out[0].display.empty() && !comment.empty()) out[0].display = decodeEncodedWords(comment);
  if (invalid != nullptr) *invalid = bad;
  return out;
}

std::string formatMailbox(std::string_view display, std::string_view address) {
  std::vector<std::string> words;
  bool printable = true;
  for (unsigned char c : display) printable = printable && c >= 0x20 && c < 0x7f;
  if (printable && !display.empty()) {
    // A quoted string, split before its blanks (a fold keeps the blank); a
    // run of blanks stays with the next word, so no line is only blanks.
    words.emplace_back("\"");
    for (char c : display) {
      if (c == ' ' && words.back().find_first_not_of(' ') != std::string::npos) {
        words.emplace_back();
        continue;
      }
      if (c == '"' || c == '\\') words.back() += '\\';
      words.back() += c;
    }
    words.back() += '"';
    for (const auto& w : words) printable = printable && kFromName + w.size() <= kMaxLine;
  }
  if (!printable) {
    words.clear();
    // RFC 2047 5.: whole characters per word; 45 octets make 60 of base64.
    for (size_t i = 0; i < display.size();) {
      size_t n = std::min<size_t>(45, display.size() - i);
      while (n > 1 && i + n < display.size() && (static_cast<unsigned char>(display[i + n]) & 0xc0) == 0x80) --n;
      words.push_back("=?UTF-8?B?" + base64Encode(display.substr(i, n)) + "?=");
      i += n;
    }
  }
  words.push_back("<" + std::string(address) + ">");
  // Fold before a word that would pass the line; the first line has "From: ".
  std::string out;
  size_t line = kFromName;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i > 0) {
      if (line + 1 + words[i].size() > kMaxLine) {
        out += '\n';
        line = 0;
      }
      out += ' ';
      ++line;
    }
    out += words[i];
    line += words[i].size();
  }
  return out;
}

}  // namespace mailgate

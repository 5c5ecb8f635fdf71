// dkim_canon_test.cc — RFC 6376 relaxed canonicalisation: the §3.4.5
// example, and the streaming body hash against a whole-body reference for
// every way of cutting the body into chunks (inside CRLF, inside whitespace).
#include "mailgate/dkim_canon.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

using namespace mailgate;

namespace {

Sha256Digest sha(std::string_view s) {
  Sha256 h;
  h.update(s);
  return h.finish();
}

Sha256Digest streamed(const std::string& body, size_t chunk) {
  RelaxedBodyHash h;
  for (size_t i = 0; i < body.size(); i += chunk) {
    size_t n = std::min(chunk, body.size() - i);
    h.update(reinterpret_cast<const unsigned char*>(body.data() + i), n);
  }
  return h.finish();
}

// The relaxed body of RFC 6376 §3.4.4 computed on the whole body at once.
std::string reference(const std::string& body) {
  std::vector<std::string> lines;
  size_t pos = 0;
  for (;;) {
    size_t eol = body.find("\r\n", pos);
    if (eol == std::string::npos) break;
    lines.push_back(body.substr(pos, eol - pos));
    pos = eol + 2;
  }
  if (pos < body.size()) lines.push_back(body.substr(pos));  // no final CRLF: one is added
  for (auto& l : lines) {
    std::string out;
    bool space = false;
    for (char c : l) {
      if (c == ' ' || c == '\t') {
        space = true;
        continue;
      }
      if (space) out += ' ';
      space = false;
      out += c;
    }
    l = out;
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  std::string out;
  for (const auto& l : lines) out += l + "\r\n";
  return out;
}

TEST(DkimCanon, Rfc6376Section345Example) {
  std::string headers;
  appendRelaxedHeader(headers, "A", " X");
  appendRelaxedHeader(headers, "B ", " Y\t\r\n\tZ  ");
  EXPECT_EQ(headers, "a:X\r\nb:Y Z\r\n");
  std::string body = " C \r\nD \t E\r\n\r\n\r\n";
  EXPECT_EQ(reference(body), " C\r\nD E\r\n");
  EXPECT_EQ(streamed(body, body.size()), sha(" C\r\nD E\r\n"));
}

TEST(DkimCanon, HeaderFoldedWithLfAsLibmilterGivesIt) {
  std::string out;
  appendRelaxedHeader(out, "Subject", "folded\n\tsubject \t ", false);
  EXPECT_EQ(out, "subject:folded subject");
  out.clear();
  appendRelaxedHeader(out, "X-Start", "\n\tbegins with a fold");
  EXPECT_EQ(out, "x-start:begins with a fold\r\n");
  out.clear();
  appendRelaxedHeader(out, "X-8bit", "caf\xc3\xa9 \x0b\x0c x");  // 8-bit kept, VT/FF are not whitespace
  EXPECT_EQ(out, "x-8bit:caf\xc3\xa9 \x0b\x0c x\r\n");
  out.clear();
  appendRelaxedHeader(out, "X-Empty", "   ");
  EXPECT_EQ(out, "x-empty:\r\n");
}

TEST(DkimCanon, EdgeBodies) {
  EXPECT_EQ(streamed("", 1), sha(""));
  EXPECT_EQ(streamed("\r\n\r\n \t\r\n", 1), sha(""));
  EXPECT_EQ(streamed("no final newline", 3), sha("no final newline\r\n"));
  EXPECT_EQ(streamed("trailing  \t", 1), sha("trailing\r\n"));
  EXPECT_EQ(streamed("a\r\n\r\nb\r\n\r\n", 2), sha("a\r\n\r\nb\r\n"));
  EXPECT_EQ(streamed("bare\rcr\r\n", 1), sha("bare\rcr\r\n"));
  EXPECT_EQ(streamed("a \r\r\n", 1), sha("a \r\r\n"));
  EXPECT_EQ(streamed("bare lf\nx\r\n", 1), sha("bare lf\nx\r\n"));
}

TEST(DkimCanon, EveryChunkingGivesTheSameHash) {
  std::vector<std::string> bodies = {" C \r\nD \t E\r\n\r\n\r\n", "x  \r\n \r\n\t\r\ny", "\r\r\n\r \n  \r\n\r",
                                     "caf\xc3\xa9\r\n\r\n\r\nend \r\n"};
  std::mt19937 rng(15);
  const char alphabet[] = {'a', ' ', '\t', '\r', '\n', '\r', '\n', '\xe9'};
  for (int i = 0; i < 300; ++i) {
    std::string b;
    size_t len = rng() % 40;
    for (size_t j = 0; j < len; ++j) b += alphabet[rng() % sizeof alphabet];
    bodies.push_back(b);
  }
  for (const auto& b : bodies) {
    Sha256Digest want = sha(reference(b));
    for (size_t chunk = 1; chunk <= b.size() + 1; ++chunk) {
      ASSERT_EQ(streamed(b, chunk), want) << "chunk " << chunk << " of [" << b << "]";
    }
  }
}

TEST(DkimCanon, LargeBodyAcrossTheInternalBuffer) {
  std::string body;
  for (int i = 0; i < 20000; ++i) body += "line " + std::to_string(i) + " \t with  spaces \r\n" + (i % 7 ? "" : "\r\n");
  Sha256Digest want = sha(reference(body));
  for (size_t chunk : {1, 7, 4096, 65536}) EXPECT_EQ(streamed(body, chunk), want) << chunk;
}

}  // namespace

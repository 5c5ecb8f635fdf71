// long_lines_test.cc — lines over 998 octets: the chunk scanner (CRLF not
// counted, lines across chunks), header refolding (before blanks, 78-octet
// lines, encoded words for a Subject without blanks, refusals), the plan's
// refolds under encode and the refusal under reject, and the GMime body
// re-encoding (single part, multipart with siblings left byte for byte,
// base64 for non-text, signed parts never changed).
#include "mailgate/long_lines.h"

#include <gtest/gtest.h>

#include "mailgate/body_copy.h"
#include "mailgate/header.h"
#include "mailgate/mime_reencode.h"

using namespace mailgate;

namespace {

std::vector<std::string> lines(const std::string& text, const std::string& sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t at = text.find(sep, start);
    out.push_back(text.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return out;
    start = at + sep.size();
  }
}

TEST(LineLengthScanner, CountsOctetsWithoutCrlfAcrossChunks) {
  struct Case {
    std::vector<std::string> chunks;
    bool long_line;
  } cases[] = {
      {{std::string(998, 'a') + "\r\n"}, false},
      {{std::string(999, 'a') + "\r\n"}, true},
      {{std::string(998, 'a') + "\r\r\n"}, true},  // a bare CR is part of the line
      {{std::string(998, 'a') + "\n"}, false},
      {{std::string(500, 'a'), std::string(498, 'b') + "\r", "\nnext\r\n"}, false},
      {{std::string(500, 'a'), std::string(499, 'b'), "\r\n"}, true},
      {{"short\r\n", std::string(999, 'c')}, true},  // unterminated last line
      {{"short\r\n", std::string(998, 'c') + "\r"}, false},
      {{"", "\r\n\r\n"}, false},
  };
  for (const auto& c : cases) {
    LineLengthScanner scan;
    for (const auto& chunk : c.chunks) scan.feed(chunk);
    EXPECT_EQ(scan.tooLong(), c.long_line) << c.chunks[0].substr(0, 20) << " chunks=" << c.chunks.size();
  }
}

TEST(RefoldHeader, FoldsOnlyLongLinesBeforeBlanksAndUnfoldsToTheSame) {
  std::string words;
  for (int i = 0; i < 200; ++i) words += (i ? " " : "") + std::string("word") + std::to_string(i);
  std::string value = "short first\n " + words + "\n\tlast";
  ASSERT_TRUE(headerHasLongLine("Subject", value));
  auto folded = refoldHeader("Subject", value);
  ASSERT_TRUE(folded);
  EXPECT_EQ(unfoldHeader(*folded), unfoldHeader(value));
  auto out = lines(*folded, "\n");
  EXPECT_EQ(out.front(), "short first");
  EXPECT_EQ(out.back(), "\tlast");
  for (size_t i = 1; i < out.size(); ++i) {
    EXPECT_LE(out[i].size(), 78u) << out[i];
    EXPECT_TRUE(out[i][0] == ' ' || out[i][0] == '\t');
    EXPECT_NE(out[i].find_first_not_of(" \t"), std::string::npos);  // no blank-only line
  }
  EXPECT_FALSE(headerHasLongLine("Subject", *folded));
  // The 998 limit counts "Subject: " on the first line.
  EXPECT_FALSE(headerHasLongLine("Subject", std::string(989, 'x')));
  EXPECT_TRUE(headerHasLongLine("Subject", std::string(990, 'x')));
}

TEST(RefoldHeader, LongWordsKeepTheirLineWithinTheLimit) {
  // 1,601 octets: words of 300 octets between blanks: lines of 300, not 78.
  std::string value = std::string(300, 'a');
  for (int i = 0; i < 4; ++i) value += " " + std::string(300, 'b' + i);
  auto folded = refoldHeader("X-Data", value);
  ASSERT_TRUE(folded);
  EXPECT_EQ(*folded, std::string(300, 'a') + "\n " + std::string(300, 'b') + "\n " + std::string(300, 'c') + "\n " +
                         std::string(300, 'd') + "\n " + std::string(300, 'e'));
  // A blank at the start or the end gives no fold point (no blank-only line).
  EXPECT_FALSE(refoldHeader("X-Data", "  " + std::string(1200, 'z') + "   "));
  EXPECT_FALSE(refoldHeader("X-Data", std::string(1200, 'z') + " tail"));
}

TEST(RefoldHeader, SubjectWithoutBlanksBecomesEncodedWords) {
  std::string text = std::string(700, 'x') + "Grüße" + std::string(700, 'y');
  auto folded = refoldHeader("Subject", text);
  ASSERT_TRUE(folded);
  EXPECT_EQ(decodeEncodedWords(unfoldHeader(*folded)), text);  // blanks between words vanish
  for (const auto& line : lines(*folded, "\n")) EXPECT_LE(line.size() + 9, 78u) << line;
  EXPECT_FALSE(refoldHeader("Subject", std::string(1200, 'x') + "\xff"));              // not UTF-8
  EXPECT_FALSE(refoldHeader("Subject", "=?UTF-8?Q?a?= " + std::string(1200, 'x')));  // encoded words already
  EXPECT_FALSE(refoldHeader("Message-Id", "<" + std::string(1200, 'x') + "@x>"));      // structured
}

TEST(FoldLongHeaders, EncodeRefoldsByIndexRejectRefuses) {
  std::string words;
  for (int i = 0; i < 300; ++i) words += " w" + std::to_string(i);
  HeaderList h = {{"Subject", "one"}, {"X-Long", "a"}, {"subject", "two" + words}, {"To", "b@x"}};
  HeaderFolding f = foldLongHeaders(h, LongLines::Encode);
  EXPECT_EQ(f.verdict.action, Action::Dunno);
  ASSERT_EQ(f.edits.size(), 1u);
  EXPECT_EQ(f.edits[0].kind, HeaderEdit::Kind::Change);
  EXPECT_EQ(f.edits[0].name, "subject");
  EXPECT_EQ(f.edits[0].index, 2);
  EXPECT_EQ(f.names, std::vector<std::string>{"subject"});
  HeaderFolding r = foldLongHeaders(h, LongLines::Reject);
  EXPECT_EQ(r.verdict.action, Action::Reject);
  EXPECT_EQ(r.verdict.reply, "550 5.6.0 message has lines longer than 998 octets");
  EXPECT_TRUE(r.edits.empty());
  HeaderFolding u = foldLongHeaders({{"References", "<" + std::string(1200, 'r') + "@x>"}}, LongLines::Encode);
  EXPECT_EQ(u.verdict.reply, "550 5.6.0 header line longer than 998 octets cannot be folded");
  EXPECT_EQ(u.verdict.rule, "long_header");
  EXPECT_EQ(foldLongHeaders({{"Subject", "fine"}}, LongLines::Reject).verdict.action, Action::Dunno);
}

TEST(DecideMessage, RefoldsAfterThePlansEdits) {
  Config config = parseConfig("", "t.conf");
  std::string words;
  for (int i = 0; i < 300; ++i) words += " w" + std::to_string(i);
  HeaderList h = {{"From", "Shop <news@shop.example>"}, {"To", "bob@example.net"}, {"Subject", "Hi" + words},
                  {"Date", "Wed, 25 Nov 2026 10:00:00 +0000"}, {"Message-Id", "<1@x>"}, {"MIME-Version", "1.0"},
                  {"Content-Type", "text/plain"}};
  MessageAccount a;
  a.policy.exists = true;
  a.policy.state = AccountState::Active;
  a.policy.domains["shop.example"] = DomainEntry{DomainStatus::Verified, false};
  MessageFacts f = extractFacts(h, config, 0);
  MessagePlan plan = decideMessage(f, h, "shop", a, {"bob@example.net"}, config, 0, "mx.test", "QID1");
  EXPECT_EQ(plan.verdict.action, Action::Dunno);
  EXPECT_EQ(plan.folded_headers, std::vector<std::string>{"Subject"});
  HeaderList out = applyHeaderEdits(h, plan.edits);
  for (const auto& [name, value] : out) EXPECT_FALSE(headerHasLongLine(name, value)) << name;
  EXPECT_EQ(plan.headers, out);  // the plan's header, built once, has the refolding
  config = parseConfig("long_lines = reject\n", "t.conf");
  plan = decideMessage(f, h, "shop", a, {"bob@example.net"}, config, 0, "mx.test", "QID1");
  EXPECT_EQ(plan.verdict.reply, "550 5.6.0 message has lines longer than 998 octets");
}

std::string crlfText(const std::string& lf) {
  std::string out;
  for (char c : lf) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

const std::string kHtml = "<html>" + [] {
  std::string s;
  while (s.size() < 5000) s += "<p>caf\xc3\xa9 &amp; more</p>";
  return s;
}() + "</html>";

TEST(ReencodeLongLines, SinglePartTextBecomesQuotedPrintable) {
  HeaderList h = {{"MIME-Version", "1.0"}, {"Content-Type", "text/html; charset=utf-8"},
                  {"Content-Transfer-Encoding", "8bit"}};
  std::string body = crlfText("first\n" + kHtml + "\ntrailing  \n");
  BodyReencoding re = reencodeLongLines(h, body);
  ASSERT_EQ(re.verdict.action, Action::Dunno) << re.reason;
  EXPECT_FALSE(hasLongLine(re.body));
  EXPECT_NE(re.body.find("caf=C3=A9"), std::string::npos);
  EXPECT_NE(re.body.find("trailing =20\r\n"), std::string::npos);
  for (size_t i = 0; i < re.body.size(); ++i) {
    if (re.body[i] == '\n') {
      EXPECT_EQ(re.body[i - 1], '\r');
    }
  }
  ASSERT_EQ(re.edits.size(), 1u);
  EXPECT_EQ(re.edits[0].kind, HeaderEdit::Kind::Change);
  EXPECT_EQ(re.edits[0].name, "Content-Transfer-Encoding");
  EXPECT_EQ(re.edits[0].value, "quoted-printable");
  EXPECT_EQ(re.parts, "text/html:quoted-printable");
  // Without MIME fields: text/plain, the encoding and MIME-Version are added.
  re = reencodeLongLines({{"Subject", "x"}}, body);
  ASSERT_EQ(re.verdict.action, Action::Dunno);
  ASSERT_EQ(re.edits.size(), 2u);
  EXPECT_EQ(re.edits[0].kind, HeaderEdit::Kind::Add);
  EXPECT_EQ(re.edits[0].value, "quoted-printable");
  EXPECT_EQ(re.edits[1].name, "MIME-Version");
}

TEST(ReencodeLongLines, MultipartLeavesFittingSiblingsByteForByte) {
  std::string plain = "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
                      "hello =C3=A9 world=\nsoft\n";
  std::string image = "Content-Type: image/png\nContent-Transfer-Encoding: base64\n\n"
                      "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==\n";
  std::string binary = "Content-Type: application/octet-stream\nContent-Transfer-Encoding: 8bit\n\n" +
                       std::string(1500, 'B') + "\n";
  std::string html = "Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n" + kHtml + "\n";
  std::string body = crlfText("preamble\n\n--b1\n" + plain + "--b1\nContent-Type: multipart/related; boundary=b2\n\n"
                              "--b2\n" + html + "--b2\n" + image + "--b2--\n\n--b1\n" + binary + "--b1--\n");
  HeaderList h = {{"MIME-Version", "1.0"}, {"Content-Type", "multipart/alternative;\n boundary=\"b1\""}};
  BodyReencoding re = reencodeLongLines(h, body);
  ASSERT_EQ(re.verdict.action, Action::Dunno) << re.reason;
  EXPECT_FALSE(hasLongLine(re.body));
  EXPECT_TRUE(re.edits.empty());  // the top-level fields stay
  EXPECT_EQ(re.parts, "text/html:quoted-printable application/octet-stream:base64");
  EXPECT_NE(re.body.find(crlfText("--b1\n" + plain + "--b1\n")), std::string::npos);
  EXPECT_NE(re.body.find(crlfText("--b2\n" + image + "--b2--\n")), std::string::npos);
  EXPECT_NE(re.body.find(crlfText("Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
                                  "QkJC")),
            std::string::npos);
  EXPECT_EQ(re.body.substr(0, 10), "preamble\r\n");
}

TEST(ReencodeLongLines, SignedPartsAndUnknownEncodingsAreRefused) {
  std::string signed_body = crlfText("--s\nContent-Type: text/html\n\n" + kHtml + "\n--s\n"
                                     "Content-Type: application/pkcs7-signature\nContent-Transfer-Encoding: base64\n\n"
                                     "AAAA\n--s--\n");
  BodyReencoding re = reencodeLongLines(
      {{"Content-Type", "multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=s"}},
      signed_body);
  EXPECT_EQ(re.verdict.action, Action::Reject);
  EXPECT_EQ(re.verdict.reply, "550 5.6.0 message has lines longer than 998 octets");
  EXPECT_TRUE(re.body.empty());
  re = reencodeLongLines({{"Content-Type", "text/plain"}, {"Content-Transfer-Encoding", "x-custom"}},
                         crlfText(kHtml + "\n"));
  EXPECT_EQ(re.verdict.action, Action::Reject);
  // A long part header line is not a part's content: refused, not sent broken.
  re = reencodeLongLines({{"Content-Type", "multipart/mixed; boundary=m"}},
                         crlfText("--m\nContent-Type: text/plain; name=\"" + std::string(1200, 'n') + "\"\n\nx\n--m--\n"));
  EXPECT_EQ(re.verdict.action, Action::Reject);
}

TEST(BodyCopy, KeepsInMemoryThenSpillsAndDropsPastTheLimit) {
  std::string chunk(1000, 'x');
  BodyCopy small(0, 4096);
  for (int i = 0; i < 3; ++i) small.append(reinterpret_cast<const unsigned char*>(chunk.data()), chunk.size());
  EXPECT_FALSE(small.spilled());
  EXPECT_EQ(*small.contents(), chunk + chunk + chunk);
  BodyCopy big(0, 4096);
  std::string all;
  for (int i = 0; i < 10; ++i) {
    std::string c = std::string(1000, static_cast<char>('a' + i));
    big.append(reinterpret_cast<const unsigned char*>(c.data()), c.size());
    all += c;
  }
  EXPECT_TRUE(big.spilled());
  EXPECT_EQ(*big.contents(), all);
  BodyCopy limited(2500, 4096);
  for (int i = 0; i < 3; ++i) limited.append(reinterpret_cast<const unsigned char*>(chunk.data()), chunk.size());
  EXPECT_TRUE(limited.tooBig());
  EXPECT_FALSE(limited.contents());
  BodyCopy nowhere(0, 10, "/nonexistent-dir");
  nowhere.append(reinterpret_cast<const unsigned char*>(chunk.data()), chunk.size());
  EXPECT_FALSE(nowhere.failure().empty());
  EXPECT_FALSE(nowhere.contents());
}

}  // namespace

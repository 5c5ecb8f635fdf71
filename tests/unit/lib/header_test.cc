// header_test.cc — RFC 5322 From parsing over a table of real-world values
// (display names, comments, quoted local parts, groups, encoded words, IDNs,
// missing angle brackets, garbage), unfolding and RFC 2047 decoding.
#include "mailgate/header.h"

#include <gtest/gtest.h>

using namespace mailgate;

namespace {

struct FromCase {
  const char* value;
  const char* address;  // "" = EMPTY-FROM, "!" = an address that fails validation (refused)
  const char* display;
};

const FromCase kFromCases[] = {
    {"alice@example.com", "alice@example.com", ""},
    {"<alice@example.com>", "alice@example.com", ""},
    {"Alice <alice@example.com>", "alice@example.com", "Alice"},
    {"Alice Smith <alice@example.com>", "alice@example.com", "Alice Smith"},
    {"\"Smith, Alice\" <alice@example.com>", "alice@example.com", "Smith, Alice"},
    {"\"Alice \\\"Al\\\" Smith\" <alice@example.com>", "alice@example.com", "Alice \"Al\" Smith"},
    {"alice@example.com (Alice Smith)", "alice@example.com", "Alice Smith"},
    {"Alice <alice@example.com> (work)", "alice@example.com", "Alice"},
    {"Alice (the boss) <alice@example.com>", "alice@example.com", "Alice"},
    {"alice@EXAMPLE.COM", "alice@example.com", ""},
    {"Alice.Smith@Example.com", "Alice.Smith@example.com", ""},
    {"\"alice smith\"@example.com", "\"alice smith\"@example.com", ""},
    {"\"quoted@at\"@example.com", "\"quoted@at\"@example.com", ""},
    {"first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk", ""},
    {"=?UTF-8?B?0JjQstCw0L0=?= <ivan@example.ru>", "ivan@example.ru", "Иван"},
    {"=?utf-8?q?Caf=C3=A9_Bar?= <cafe@example.fr>", "cafe@example.fr", "Café Bar"},
    {"=?UTF-8?Q?a?= =?UTF-8?Q?b?= <ab@example.com>", "ab@example.com", "ab"},
    {"=?ISO-8859-1?Q?Andr=E9?= Pirard <pirard@example.be>", "pirard@example.be", "Andr\xe9 Pirard"},
    {"=?UTF-8?B?bm90IGFuIGFkZHJlc3M=?=", "", ""},
    {"=?UTF-8?B?YWxpY2VAZXhhbXBsZS5jb20=?=", "", ""},
    {"Sales Team", "", ""},
    {"<>", "", ""},
    {"", "", ""},
    {"   ", "", ""},
    {"undisclosed-recipients:;", "", ""},
    {"Team: alice@example.com, bob@example.com;", "alice@example.com", ""},
    {"Team: Alice <alice@example.com>;", "alice@example.com", "Alice"},
    {"alice@example.com, bob@example.com", "alice@example.com", ""},
    {"Alice\r\n <alice@example.com>", "alice@example.com", "Alice"},
    {"Alice\n\t<alice@example.com>", "alice@example.com", "Alice"},
    {"Иван <ivan@пример.рф>", "ivan@xn--e1afmkfd.xn--p1ai", "Иван"},
    {"ivan@xn--e1afmkfd.xn--p1ai", "ivan@xn--e1afmkfd.xn--p1ai", ""},
    {"用户@例子.广告", "用户@xn--fsqu00a.xn--4rr70v", ""},
    {"alice@[192.0.2.1]", "alice@[192.0.2.1]", ""},
    {"<@relay.example:alice@example.com>", "alice@example.com", ""},
    {"alice", "", ""},
    {"alice@", "!", ""},
    {"@example.com", "!", ""},
    {"alice@@example.com", "!", ""},
    {"alice@exa mple.com", "!", ""},
    {"<alice@example.com", "alice@example.com", ""},
    {"Alice <alice@example.com>>", "alice@example.com", "Alice"},
    {"Alice <not an address>", "", ""},
    {"\"unterminated <alice@example.com>", "", ""},
    {"(only a comment)", "", ""},
    {"Shop <no-reply@shop.example>, Other <other@example.com>", "no-reply@shop.example", "Shop"},
    {"a..b@example.com", "!", ""},
    {"Mr. John Q. Public <jqp@example.com>", "jqp@example.com", "Mr. John Q. Public"},
    {"x@\xcc\x81victim.example", "!", ""},  // U+0301 starts a label: libidn2 refuses it
    {"Victim <x@\xcc\x81victim.example>", "!", ""},
    {"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv@victim.example", "!", ""},  // 65 octets
    {"Shop <news@shop.example>, x@\xcc\x81victim.example", "news@shop.example", "Shop"},  // and invalid
    {"news@shop.example, a..b@victim.example", "news@shop.example", ""},                  // and invalid
};

TEST(Header, FromTable) {
  static_assert(sizeof kFromCases / sizeof kFromCases[0] >= 40);
  for (const auto& c : kFromCases) {
    bool invalid = false;
    auto list = parseAddressList(c.value, &invalid);
    auto from = list.empty() ? std::nullopt : std::optional<HeaderAddress>(list.front());
    std::string_view value = c.value;
    EXPECT_EQ(invalid, std::string(c.address) == "!" || value.find(", a..b@") != std::string_view::npos ||
                           value.find(", x@") != std::string_view::npos)
        << c.value;
    if (std::string(c.address).empty() || std::string(c.address) == "!") {
      EXPECT_FALSE(from.has_value()) << "\"" << c.value << "\" gave " << (from ? from->address : "");
      continue;
    }
    ASSERT_TRUE(from.has_value()) << "\"" << c.value << "\"";
    EXPECT_EQ(from->address, c.address) << c.value;
    EXPECT_EQ(from->display, c.display) << c.value;
  }
}

TEST(Header, AddressLists) {
  auto list = parseAddressList("a@x.example, \"B, b\" <b@y.example>, group: c@z.example, d@z.example;, e@w.example");
  ASSERT_EQ(list.size(), 5u);
  EXPECT_EQ(list[1].display, "B, b");
  EXPECT_EQ(list[4].address, "e@w.example");
}

TEST(Header, IdnDomainsBecomeALabels) {
  auto list = parseAddressList("=?UTF-8?B?SsO2cmc=?= <Jörg@Bücher.example>, x@BÜCHER.example");
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].display, "Jörg");
  EXPECT_EQ(list[0].address, "Jörg@xn--bcher-kva.example");
  EXPECT_EQ(list[1].address, "x@xn--bcher-kva.example");
}

// Every line of "From: <value>" within 78 octets, and the value reads back as given.
void expectFoldedMailbox(const std::string& display, const std::string& value) {
  std::string field = "From: " + value;
  size_t start = 0;
  for (size_t nl = field.find('\n'); ; nl = field.find('\n', start)) {
    std::string line = field.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    EXPECT_LE(line.size(), 78u) << line;
    EXPECT_NE(line.find_first_not_of(" "), std::string::npos) << "blank line in " << value;
    if (start > 0) {
      EXPECT_EQ(line[0], ' ') << value;
    }
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  auto back = parseAddressList(value);
  ASSERT_EQ(back.size(), 1u) << value;
  EXPECT_EQ(back[0].display, display) << value;
  EXPECT_EQ(back[0].address, "default@shop.example") << value;
}

TEST(Header, FormatMailboxFoldsLongDisplayNames) {
  EXPECT_EQ(formatMailbox("Sales Team", "default@shop.example"), "\"Sales Team\" <default@shop.example>");
  EXPECT_EQ(formatMailbox("a \"b\" \\c", "d@shop.example"), "\"a \\\"b\\\" \\\\c\" <d@shop.example>");
  EXPECT_EQ(formatMailbox("Иван", "default@shop.example"), "=?UTF-8?B?0JjQstCw0L0=?= <default@shop.example>");
  EXPECT_EQ(formatMailbox("", "default@shop.example"), "<default@shop.example>");
  EXPECT_EQ(formatMailbox("a  b", "d@shop.example"), "\"a  b\" <d@shop.example>");
  EXPECT_EQ(formatMailbox(std::string(70, 'w'), "d@shop.example"), "\"" + std::string(70, 'w') + "\"\n <d@shop.example>");
  std::string words;
  for (int i = 0; i < 250; ++i) words += i ? " Sales" : "Sales";
  std::string many_blanks = "a" + std::string(200, ' ') + "b";
  for (const std::string& display : {words, std::string(1200, 'x'), std::string("Отдел продаж ") + std::string(900, 'y'),
                                     std::string(600, 'z') + " end", many_blanks, std::string("tab\there"),
                                     std::string(40, 'y') + std::string(70, 'z'), std::string(70, 'w'),
                                     std::string(71, 'w')}) {
    std::string value = formatMailbox(display, "default@shop.example");
    expectFoldedMailbox(display, value);
  }
  std::string utf8;
  for (int i = 0; i < 300; ++i) utf8 += "Продажи€𝄞";
  std::string value = formatMailbox(utf8, "default@shop.example");
  EXPECT_EQ(value.find("\"") , std::string::npos);
  expectFoldedMailbox(utf8, value);
  // Each encoded word is whole UTF-8 characters (RFC 2047 5.) and at most 75 octets.
  for (size_t start = 0; start < value.size();) {
    size_t end = value.find_first_of(" \n", start);
    std::string word = value.substr(start, end == std::string::npos ? std::string::npos : end - start);
    start = end == std::string::npos ? value.size() : end + 1;
    if (!word.starts_with("=?")) continue;
    EXPECT_LE(word.size(), 75u);
    std::string text = decodeEncodedWords(word);
    ASSERT_FALSE(text.empty()) << word;
    EXPECT_NE(static_cast<unsigned char>(text[0]) & 0xc0, 0x80) << word;
  }
}

TEST(Header, TrimBlanks) {
  EXPECT_EQ(trimBlanks(" \t<a@b> \t"), "<a@b>");
  EXPECT_EQ(trimBlanks("Sales Team"), "Sales Team");
  EXPECT_EQ(trimBlanks(" \t "), "");
  EXPECT_EQ(trimBlanks(""), "");
}

TEST(Header, UnfoldAndDecode) {
  EXPECT_EQ(unfoldHeader("a\r\n b\n\tc"), "a b\tc");
  EXPECT_EQ(decodeEncodedWords("=?UTF-8?B?SGVsbG8=?= world"), "Hello world");
  EXPECT_EQ(decodeEncodedWords("=?bogus?= stays"), "=?bogus?= stays");
  EXPECT_EQ(decodeEncodedWords("=?UTF-8?X?abc?="), "=?UTF-8?X?abc?=");
  EXPECT_EQ(decodeEncodedWords("=?UTF-8?Q?a=2?="), "a=2");
}

}  // namespace

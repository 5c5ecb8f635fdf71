// address_test.cc — RFC 5321/6531 Mailbox validation, normalisation (IDN
// domains to A-labels), match keys, recipient forms with +tags, and parent domains.
#include "mailgate/address.h"

#include <gtest/gtest.h>

using namespace mailgate;

TEST(Address, ValidMailboxes) {
  for (const char* ok : {"a@b.example", "<a@b.example>", "first.last+tag@sub.example.com", "\"a b\"@example.com",
                         "\"a\\\"b\"@example.com", "user@[192.0.2.1]", "user@[IPv6:2001:db8::1]", "x@localhost",
                         "!#$%&'*+-/=?^_`{|}~@example.com"}) {
    EXPECT_TRUE(parseMailbox(ok).has_value()) << ok;
  }
}

TEST(Address, InvalidMailboxes) {
  std::string long_local(65, 'a');
  for (std::string bad : std::vector<std::string>{"", "<>", "@example.com", "a@", "a", "a@@b", ".a@b.example", "a.@b.example",
                          "a..b@example.com", "a b@example.com", "a@exa mple.com", "a@-x.example", "a@x-.example",
                          "a@x..example", "a@[300.1.1.1]", "\"unterminated@example.com", long_local + "@x.example",
                          "a@" + std::string(64, 'x') + ".example", "a\n@b.example", "a@b.example\r"}) {
    EXPECT_FALSE(parseMailbox(bad).has_value()) << bad;
  }
}

TEST(Address, NormalisesTheDomainOnly) {
  auto m = parseMailbox("John.Doe@EXAMPLE.Com");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->str(), "John.Doe@example.com");
}

TEST(Address, KeyIgnoresTheCaseOfAsciiLetters) {
  auto m = parseMailbox("John.Doe@EXAMPLE.Com");
  EXPECT_EQ(m->key(), "john.doe@example.com");
  EXPECT_EQ(parseMailbox("\"John Doe\"@Example.com")->key(), "\"john doe\"@example.com");
}

TEST(Address, Utf8LocalPartsAndIdnDomains) {
  auto m = parseMailbox("<Jörg.Müller@Bücher.Example>");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->local, "Jörg.Müller");
  EXPECT_EQ(m->domain, "xn--bcher-kva.example");
  EXPECT_EQ(m->str(), "Jörg.Müller@xn--bcher-kva.example");
  EXPECT_EQ(m->key(), "jörg.müller@xn--bcher-kva.example");
  // The U-label and A-label forms of one address have one key, whatever the case of the domain.
  for (const char* same : {"jörg.müller@BÜCHER.example", "JÖRG.MÜLLER@xn--bcher-kva.example",
                           "jörg.müller@XN--BCHER-KVA.EXAMPLE"}) {
    auto s = parseMailbox(same);
    ASSERT_TRUE(s) << same;
    EXPECT_EQ(s->domain, "xn--bcher-kva.example") << same;
  }
  EXPECT_EQ(parseMailbox("JöRG.MüLLER@BÜCHER.example")->key(), m->key());
  EXPECT_EQ(parseMailbox("почта@пример.рф")->str(), "почта@xn--e1afmkfd.xn--p1ai");
  EXPECT_EQ(parseMailbox(m->str())->str(), m->str());
  for (std::string bad : std::vector<std::string>{"a\xff@example.com", "a\xc3@example.com", "\xc3\xa9\xc3@x.example",
                                                  "a\xed\xa0\x80@x.example", "a\xc0\xaf@x.example",
                                                  "a@b\xc3.example", "a@b\xff.example", "a@bü..example",
                                                  "a@" + std::string(60, 'x') + "ü.example"}) {
    EXPECT_FALSE(parseMailbox(bad).has_value()) << bad;
  }
}

TEST(Address, NormalisedAddressLiteralsStillParse) {
  auto m = parseMailbox("a@[IPv6:2001:DB8::1]");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->domain, "[ipv6:2001:db8::1]");
  EXPECT_TRUE(parseMailbox(m->str()));  // found by tests/fuzz/fuzz_mailbox.cc
}

TEST(Address, RecipientForms) {
  auto m = *parseMailbox("Bob+News@Example.NET");
  EXPECT_EQ(recipientForms(m, false), std::vector<std::string>{"bob+news@example.net"});
  EXPECT_EQ(recipientForms(m, true), (std::vector<std::string>{"bob+news@example.net", "bob@example.net"}));
  EXPECT_EQ(recipientForms(*parseMailbox("+x@example.net"), true), std::vector<std::string>{"+x@example.net"});
  // A base that is no address ("a.") is not looked up (found by fuzz_mailbox).
  EXPECT_EQ(recipientForms(*parseMailbox("a.+x@example.net"), true), std::vector<std::string>{"a.+x@example.net"});
  EXPECT_EQ(recipientForms(*parseMailbox("Jörg+x@Bücher.example"), true),
            (std::vector<std::string>{"jörg+x@xn--bcher-kva.example", "jörg@xn--bcher-kva.example"}));
}

TEST(Address, RecipientKeysOfAddressesPostfixAcceptsButRfc5321DoesNot) {
  std::string tag(70, 'A');
  EXPECT_FALSE(parseMailbox("victim+" + tag + "@example.com"));  // local part over 64 octets
  EXPECT_EQ(recipientKeys("<Victim+" + tag + "@EXAMPLE.com>", true),
            (std::vector<std::string>{"victim+" + toLower(tag) + "@example.com", "victim@example.com"}));
  EXPECT_EQ(recipientKeys("victim+" + tag + "@Bücher.example", false),
            std::vector<std::string>{"victim+" + toLower(tag) + "@xn--bcher-kva.example"});
  EXPECT_EQ(recipientKeys("a..b+x@example.com", true),
            (std::vector<std::string>{"a..b+x@example.com"}));  // base "a..b" is no address
  EXPECT_EQ(recipientKeys("Bob+News@Example.NET", true), recipientForms(*parseMailbox("Bob+News@Example.NET"), true));
  // Undecodable: refused by the callers, never skipped.
  for (std::string bad : std::vector<std::string>{"victim+\xff@example.com", "victim@\xcc\x81" "example.com",
                                                  "victim", "@example.com", "victim@", "vic\ttim@example.com",
                                                  "victim@exa_mple.com", ""}) {
    EXPECT_FALSE(recipientKeys(bad, true)) << bad;
  }
}

TEST(Address, QuotedLocalPartThatNeedsNoQuotesHasTheKeyOfTheDotAtom) {
  EXPECT_EQ(parseMailbox("\"victim\"@example.com")->key(), "victim@example.com");
  EXPECT_EQ(parseMailbox("\"Vic.Tim\"@Example.com")->key(), "vic.tim@example.com");
  EXPECT_EQ(parseMailbox("\"v\\ictim\"@example.com")->key(), "victim@example.com");
  EXPECT_EQ(parseMailbox("\"vic tim\"@example.com")->key(), "\"vic tim\"@example.com");
  EXPECT_EQ(parseMailbox("\"a..b\"@example.com")->key(), "\"a..b\"@example.com");
  EXPECT_EQ(recipientForms(*parseMailbox("\"Victim+x\"@example.com"), true),
            (std::vector<std::string>{"victim+x@example.com", "victim@example.com"}));
}

TEST(Address, ParentDomains) {
  EXPECT_EQ(parentDomains("a.b.example.com"), (std::vector<std::string>{"b.example.com", "example.com", "com"}));
  EXPECT_TRUE(parentDomains("localhost").empty());
}

// list_unsubscribe_test.cc — the unsubscribe part of the message plan, as
// the header leaves (plan.headers, what DKIM signs): one-click and header
// modes, the merge with the sender's List-Unsubscribe, the sender's
// X-Mailgate-Unsubscribe (removed always; "no" means no link), several
// recipients, no secret, and a merged line past 998 octets folded.
#include "mailgate/list_unsubscribe.h"

#include <gtest/gtest.h>

#include "mailgate/unsubscribe_token.h"

using namespace mailgate;

namespace {

constexpr int64_t kNow = 1795650000000;  // 2026-11-25T...Z
const std::string kSecret = "unit-test-secret-0123456789abcdefghijkl";
const std::string kQueueId = "4ABCD12345";

HeaderList standard() {
  return {{"From", "Shop <news@shop.example>"}, {"To", "bob@example.net"}, {"Subject", "Hi"},
          {"Date", "Wed, 25 Nov 2026 10:00:00 +0000"}, {"Message-Id", "<1@x>"}, {"MIME-Version", "1.0"},
          {"Content-Type", "text/plain"}, {"X-Campaign-Id", "spring"}};
}

struct Plan {
  Config config = parseConfig("web_base_url = https://mail.example.com/\n", "t.conf");
  MessageAccount account;
  Plan(UnsubscribeMode mode = UnsubscribeMode::OneClick) {
    config.web_secrets = {kSecret, "previous-secret-0123456789abcdefghijklm"};
    account.policy.exists = true;
    account.policy.state = AccountState::Active;
    account.policy.domains["shop.example"] = DomainEntry{DomainStatus::Verified, false};
    account.unsubscribe = mode;
  }
  MessagePlan operator()(const HeaderList& h, std::vector<std::string> rcpts = {"bob@example.net"}) {
    MessageFacts f = extractFacts(h, config, kNow);
    return decideMessage(f, h, "shop", account, rcpts, config, kNow, "mx.test", kQueueId);
  }
};

std::string ourLink(const std::string& rcpt = "bob@example.net") {
  auto token = issueUnsubscribeToken({"shop", rcpt, "spring", kQueueId, kNow / 1000}, kSecret);
  return "<https://mail.example.com/u/" + token.value() + ">";
}

// Every field named `name` as it leaves.
std::vector<std::string> leaving(const MessagePlan& p, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& [k, v] : p.headers) {
    if (sameFieldName(k, name)) out.push_back(v);
  }
  return out;
}

TEST(ListUnsubscribe, OneClickAddsBothFieldsWithAVerifiableToken) {
  Plan plan;
  MessagePlan p = plan(standard());
  ASSERT_EQ(p.verdict.action, Action::Dunno) << p.verdict.reply;
  EXPECT_EQ(p.unsubscribe, "one-click");
  // Golden: the format of unsubscribe_token.h, pinned.
  EXPECT_EQ(leaving(p, "List-Unsubscribe"),
            std::vector<std::string>{"<https://mail.example.com/u/"
                                     "AWsHcdAEc2hvcA9ib2JAZXhhbXBsZS5uZXQGc3ByaW5nCjRBQkNEMTIzNDU2arOTVknS7ou0Yrw9OSGx>"});
  EXPECT_EQ(leaving(p, "List-Unsubscribe-Post"), std::vector<std::string>{"List-Unsubscribe=One-Click"});
  std::string value = leaving(p, "List-Unsubscribe").front();
  std::string token = value.substr(value.find("/u/") + 3);
  token.pop_back();
  TokenCheck check = verifyUnsubscribeToken(token, plan.config.web_secrets, kNow / 1000 + 86400,
                                            plan.config.unsubscribe_token_lifetime);
  ASSERT_TRUE(check.ok()) << tokenErrorText(check.error);
  EXPECT_EQ(*check.token, (UnsubscribeToken{"shop", "bob@example.net", "spring", kQueueId, kNow / 1000}));
  // Added, not changed: the MTA appends them; the plan's header is its edits applied.
  EXPECT_EQ(p.headers, applyHeaderEdits(standard(), p.edits));
}

TEST(ListUnsubscribe, HeaderModeAddsOnlyTheLink) {
  Plan plan(UnsubscribeMode::Header);
  MessagePlan p = plan(standard());
  EXPECT_EQ(p.unsubscribe, "header");
  EXPECT_EQ(leaving(p, "List-Unsubscribe"), std::vector<std::string>{ourLink()});
  EXPECT_TRUE(leaving(p, "List-Unsubscribe-Post").empty());
}

TEST(ListUnsubscribe, SendersFieldsAreMergedIntoOneOursFirst) {
  Plan plan;
  HeaderList h = standard();
  h.push_back({"List-Unsubscribe", "<mailto:unsub@shop.example?subject=stop> (ours),\n <https://shop.example/u/1>"});
  h.push_back({"List-Unsubscribe-Post", "List-Unsubscribe=One-Click"});
  h.push_back({"List-Unsubscribe", "<MAILTO:unsub@shop.example?subject=stop>, <mailto:list@shop.example>, "
                                   "<ftp://shop.example/x>"});
  MessagePlan p = plan(h);
  // One field each, in the place of the sender's first; https: entries
  // dropped (one-click names one HTTPS URI), each mailto: once (the scheme
  // in any case), other schemes dropped.
  EXPECT_EQ(leaving(p, "List-Unsubscribe"),
            std::vector<std::string>{ourLink() + ", <mailto:unsub@shop.example?subject=stop>, "
                                                 "<mailto:list@shop.example>"});
  EXPECT_EQ(leaving(p, "List-Unsubscribe-Post"), std::vector<std::string>{"List-Unsubscribe=One-Click"});
  EXPECT_EQ(p.headers, applyHeaderEdits(h, p.edits));
  size_t at = 0;
  while (at < p.headers.size() && p.headers[at].first != "List-Unsubscribe") ++at;
  EXPECT_EQ(at, standard().size() - 1);  // where the sender had it (X-Campaign-Id leaves)
}

TEST(ListUnsubscribe, HeaderModeKeepsTheSendersHttpsUnlessItAsksForAPost) {
  Plan plan(UnsubscribeMode::Header);
  HeaderList h = standard();
  h.push_back({"List-Unsubscribe", "<https://shop.example/u/1>, <mailto:u@shop.example>, <HTTPS" + ourLink().substr(6)});
  EXPECT_EQ(leaving(plan(h), "List-Unsubscribe"),
            std::vector<std::string>{ourLink() + ", <https://shop.example/u/1>, <mailto:u@shop.example>"});
  h.push_back({"List-Unsubscribe-Post", "List-Unsubscribe=One-Click"});
  MessagePlan p = plan(h);
  EXPECT_EQ(leaving(p, "List-Unsubscribe"), std::vector<std::string>{ourLink() + ", <mailto:u@shop.example>"});
  EXPECT_EQ(leaving(p, "List-Unsubscribe-Post"), std::vector<std::string>{"List-Unsubscribe=One-Click"});
}

TEST(ListUnsubscribe, SenderSaysNo) {
  Plan plan;
  HeaderList h = standard();
  h.push_back({"List-Unsubscribe", "<https://shop.example/u/1>"});
  h.push_back({"X-Mailgate-Unsubscribe", " No "});
  MessagePlan p = plan(h);
  EXPECT_EQ(p.unsubscribe, "sender-no");
  EXPECT_EQ(leaving(p, "List-Unsubscribe"), std::vector<std::string>{"<https://shop.example/u/1>"});
  EXPECT_TRUE(leaving(p, "List-Unsubscribe-Post").empty());
  EXPECT_TRUE(leaving(p, "X-Mailgate-Unsubscribe").empty());
}

TEST(ListUnsubscribe, OptOutFieldNeverLeaves) {
  for (UnsubscribeMode mode : {UnsubscribeMode::Off, UnsubscribeMode::OneClick}) {
    Plan plan(mode);
    HeaderList h = standard();
    h.push_back({"X-Mailgate-Unsubscribe", "yes"});
    h.push_back({"x-mailgate-unsubscribe", "maybe"});
    MessagePlan p = plan(h);
    EXPECT_TRUE(leaving(p, "X-Mailgate-Unsubscribe").empty());
    EXPECT_EQ(p.headers, applyHeaderEdits(h, p.edits));
    // Any other value than "no" leaves the account's mode in force.
    EXPECT_EQ(leaving(p, "List-Unsubscribe").size(), mode == UnsubscribeMode::Off ? 0u : 1u);
  }
}

TEST(ListUnsubscribe, OffLeavesTheSendersFieldsUntouched) {
  Plan plan(UnsubscribeMode::Off);
  HeaderList h = standard();
  h.push_back({"List-Unsubscribe", "<https://shop.example/u/1>"});
  MessagePlan p = plan(h);
  EXPECT_EQ(p.unsubscribe, "");
  EXPECT_EQ(leaving(p, "List-Unsubscribe"), std::vector<std::string>{"<https://shop.example/u/1>"});
  EXPECT_TRUE(leaving(p, "List-Unsubscribe-Post").empty());
}

TEST(ListUnsubscribe, OnlyForOneDeliveredRecipient) {
  Plan plan;
  MessagePlan two = plan(standard(), {"bob@example.net", "carol@example.net"});
  EXPECT_EQ(two.unsubscribe, "several-recipients");
  EXPECT_TRUE(leaving(two, "List-Unsubscribe").empty());
  // A sink recipient is not delivered to: the link names the one who is.
  plan.config.sink_recipients = {"sink@test.example"};
  MessagePlan sink = plan(standard(), {"sink@test.example", "carol@example.net"});
  EXPECT_EQ(sink.unsubscribe, "one-click");
  EXPECT_EQ(leaving(sink, "List-Unsubscribe"), std::vector<std::string>{ourLink("carol@example.net")});
}

TEST(ListUnsubscribe, WithoutSecretOrBaseUrlNoLink) {
  Plan plan;
  plan.config.web_secrets.clear();
  EXPECT_EQ(plan(standard()).unsubscribe, "unconfigured");
  EXPECT_TRUE(leaving(plan(standard()), "List-Unsubscribe").empty());
  Plan no_url;
  no_url.config.web_base_url.clear();
  EXPECT_EQ(no_url(standard()).unsubscribe, "unconfigured");
  Plan long_rcpt;
  EXPECT_EQ(long_rcpt(standard(), {std::string(250, 'b') + "@example.net"}).unsubscribe, "too-long");
}

TEST(ListUnsubscribe, MergedLinePastTheLimitIsFoldedBetweenEntries) {
  Plan plan;
  HeaderList h = standard();
  h.push_back({"List-Unsubscribe", "<mailto:" + std::string(900, 'u') + "@shop.example>"});
  MessagePlan p = plan(h);
  ASSERT_EQ(p.verdict.action, Action::Dunno) << p.verdict.reply;
  std::string value = leaving(p, "List-Unsubscribe").front();
  EXPECT_EQ(unfoldHeader(value), ourLink() + ", <mailto:" + std::string(900, 'u') + "@shop.example>");
  EXPECT_NE(value.find('\n'), std::string::npos);
  EXPECT_EQ(listUnsubscribeUrls(value).size(), 2u);
}

TEST(ListUnsubscribe, UrlsOfAValue) {
  EXPECT_EQ(listUnsubscribeUrls("<mailto:a@b> (comment <not-this>), < https://x/y\n\t z >, <broken"),
            (std::vector<std::string>{"mailto:a@b", "https://x/yz"}));
  EXPECT_EQ(listUnsubscribeUrls("(a \\) (b <c>)) <d>"), std::vector<std::string>{"d"});
  EXPECT_TRUE(listUnsubscribeUrls("").empty());
  EXPECT_TRUE(listUnsubscribeUrls("<>").empty());
}

}  // namespace

namespace mailgate {
namespace {

TEST(ListUnsubscribe, LongSenderEntriesAreFoldedOrDropped) {
  Plan plan;
  HeaderList h = standard();
  std::string long_mailto = "mailto:" + std::string(900, 'x') + "@shop.example";
  std::string too_long = "mailto:" + std::string(1000, 'y') + "@shop.example";
  h.push_back({"List-Unsubscribe", "<" + long_mailto + ">, <" + too_long + ">"});
  MessagePlan p = plan(h);
  ASSERT_EQ(p.verdict.action, Action::Dunno) << p.verdict.reply;
  EXPECT_EQ(leaving(p, "List-Unsubscribe"), std::vector<std::string>{ourLink() + ",\n <" + long_mailto + ">"});
  EXPECT_TRUE(p.folded_headers.empty());  // folded here, not by long_lines
}

}  // namespace
}  // namespace mailgate

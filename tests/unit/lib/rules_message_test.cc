// rules_message_test.cc — each message rule of the milter with its exact
// reply, the EMPTY-FROM modes, tags and Feedback-ID, sink and sandbox, mail
// without an account, and what end of message does with the plan.
#include "mailgate/rules_message.h"

#include <gtest/gtest.h>

#include "mailgate/limits.h"

using namespace mailgate;

namespace {

constexpr int64_t kNow = 1795650000000;  // 2026-11-25T...Z

HeaderList standard(const std::string& from = "Shop <news@shop.example>") {
  return {{"From", from},      {"To", "bob@example.net"}, {"Subject", "Hi"},  {"Date", "Wed, 25 Nov 2026 10:00:00 +0000"},
          {"Message-Id", "<1@x>"}, {"MIME-Version", "1.0"},   {"Content-Type", "text/plain"}};
}

MessageAccount shopAccount() {
  MessageAccount a;
  a.policy.exists = true;
  a.policy.state = AccountState::Active;
  a.policy.domains["shop.example"] = DomainEntry{DomainStatus::Verified, false};
  a.policy.domains["mod.example"] = DomainEntry{DomainStatus::OnModeration, false};
  a.default_sender = "default@shop.example";
  return a;
}

struct Rules {
  Config config = parseConfig("", "t.conf");
  MessagePlan plan(const HeaderList& h, const MessageAccount& a = shopAccount(),
                   std::vector<std::string> rcpts = {"bob@example.net"}) {
    MessageFacts f = extractFacts(h, config, kNow);
    return decideMessage(f, h, "shop", a, rcpts, config, kNow, "mx.test", "4ABCD12345");
  }
};

const HeaderEdit* findEdit(const MessagePlan& p, const std::string& name) {
  for (const auto& e : p.edits) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

TEST(RulesMessage, AcceptedMessageGetsFeedbackIdAndDailyCampaign) {
  Rules r;
  auto p = r.plan(standard());
  EXPECT_EQ(p.verdict.action, Action::Dunno);
  EXPECT_EQ(p.recorded_from, "news@shop.example");
  ASSERT_NE(findEdit(p, "Feedback-ID"), nullptr);
  EXPECT_EQ(findEdit(p, "Feedback-ID")->value, utcDate(kNow) + ":shop:mailgate");
  EXPECT_EQ(p.deliver_rcpts, std::vector<std::string>{"bob@example.net"});
  EXPECT_TRUE(p.discard.empty());
}

TEST(RulesMessage, TheSendersFeedbackIdIsReplacedByOurs) {
  Rules r;
  HeaderList h = standard();
  h.push_back({"Feedback-ID", "c:otheraccount:mailgate"});  // would charge complaints to another account
  h.push_back({"Feedback-ID", "x:y:z"});
  auto p = r.plan(h);
  ASSERT_EQ(p.verdict.action, Action::Dunno) << p.verdict.reply;
  EXPECT_EQ(p.headers, applyHeaderEdits(h, p.edits));
  std::vector<std::string> ids;
  for (const auto& [name, value] : p.headers)
    if (name == "Feedback-ID") ids.push_back(value);
  EXPECT_EQ(ids, std::vector<std::string>{utcDate(kNow) + ":shop:mailgate"});
}

TEST(RulesMessage, PlanCarriesTheHeaderAsItWillLeave) {
  Rules r;
  r.config = parseConfig("strip_tag_headers = yes\nempty_from = rewrite\n", "t.conf");
  HeaderList h = {{"From", "Sales Team"}, {"To", "bob@example.net"}, {"X-Campaign-Id", "c1"},
                  {"Subject", "Hi"}, {"X-Letter-Id", "l1"}, {"MIME-Version", "1.0"},
                  {"Content-Type", "text/plain"}};  // Date and Message-Id added
  auto p = r.plan(h);
  ASSERT_EQ(p.verdict.action, Action::Dunno) << p.verdict.reply;
  EXPECT_EQ(p.headers, applyHeaderEdits(h, p.edits));
  EXPECT_EQ(p.headers.size(), h.size() - 2 + 3);  // tags stripped; Date, Message-Id, Feedback-ID added
  EXPECT_NE(p.headers.front().second.find("default@shop.example"), std::string::npos);
  auto refused = r.plan({{"To", "bob@example.net"}});
  EXPECT_EQ(refused.verdict.action, Action::Reject);
  EXPECT_TRUE(refused.headers.empty());
}

TEST(RulesMessage, MissingAndDuplicateHeaders) {
  Rules r;
  auto h = standard();
  h.erase(h.begin() + 1);  // To
  EXPECT_EQ(r.plan(h).verdict.reply, "550 5.6.0 no To:");
  h = standard();
  h.erase(h.begin() + 2);  // Subject
  EXPECT_EQ(r.plan(h).verdict.reply, "550 5.6.0 no Subject:");
  h = standard();
  h.push_back({"subject", "again"});
  EXPECT_EQ(r.plan(h).verdict.reply, "550 5.6.0 duplicate Subject:");
  h = standard();
  h.push_back({"From", "x@shop.example"});
  EXPECT_EQ(r.plan(h).verdict.reply, "550 5.6.0 duplicate From:");
  h = standard();
  h.erase(h.begin());  // From
  EXPECT_EQ(r.plan(h).verdict.reply, "550 5.6.0 no From:");
}

TEST(RulesMessage, DateAndMessageIdAreAddedWhenAllowed) {
  Rules r;
  HeaderList h = standard();
  h.erase(h.begin() + 3, h.begin() + 5);  // Date, Message-Id
  auto p = r.plan(h);
  EXPECT_EQ(p.verdict.action, Action::Dunno);
  ASSERT_NE(findEdit(p, "Date"), nullptr);
  EXPECT_EQ(findEdit(p, "Date")->value, rfc5322Date(kNow));
  ASSERT_NE(findEdit(p, "Message-Id"), nullptr);
  EXPECT_TRUE(findEdit(p, "Message-Id")->value.ends_with("@mx.test>"));
  r.config = parseConfig("add_missing_headers = Date\n", "t.conf");
  EXPECT_EQ(r.plan(h).verdict.reply, "550 5.6.0 no Message-Id:");
}

TEST(RulesMessage, EmptyFromModes) {
  Rules r;
  auto p = r.plan(standard("Sales Team"));
  EXPECT_EQ(p.verdict.action, Action::Dunno);
  EXPECT_EQ(p.recorded_from, "EMPTY-FROM");
  ASSERT_NE(findEdit(p, "X-Mailgate-From"), nullptr);
  EXPECT_EQ(findEdit(p, "X-Mailgate-From")->value, "EMPTY-FROM");

  MessageAccount a = shopAccount();
  a.empty_from = EmptyFromMode::Reject;
  EXPECT_EQ(r.plan(standard("<>"), a).verdict.reply, "550 5.6.0 no email in From:");

  a.empty_from = EmptyFromMode::Rewrite;
  p = r.plan(standard("Sales Team"), a);
  ASSERT_NE(findEdit(p, "From"), nullptr);
  EXPECT_EQ(findEdit(p, "From")->kind, HeaderEdit::Kind::Change);
  EXPECT_EQ(findEdit(p, "From")->value, "\"Sales Team\" <default@shop.example>");
  p = r.plan(standard("=?UTF-8?B?0JjQstCw0L0=?="), a);
  EXPECT_EQ(findEdit(p, "From")->value, "=?UTF-8?B?0JjQstCw0L0=?= <default@shop.example>");
  p = r.plan(standard("<>"), a);
  EXPECT_EQ(findEdit(p, "From")->value, "<default@shop.example>");
  a.default_sender.clear();
  p = r.plan(standard("Sales Team"), a);
  EXPECT_NE(findEdit(p, "X-Mailgate-From"), nullptr);  // nothing to rewrite to: marked
}

TEST(RulesMessage, FromWithAnInvalidMailboxIsRefusedNotEmpty) {
  Rules r;
  MessageAccount rewrite = shopAccount();
  rewrite.empty_from = EmptyFromMode::Rewrite;
  for (const char* from : {"x@\xcc\x81victim.example", "Victim <x@\xcc\x81victim.example>",
                           "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv@shop.example",
                           "Shop <news@shop.example>, x@\xcc\x81victim.example", "news@shop.example, a..b@victim.example",
                           "alice@"}) {
    for (const MessageAccount& a : {shopAccount(), rewrite}) {
      auto p = r.plan(standard(from), a);
      EXPECT_EQ(p.verdict.reply, "550 5.6.0 invalid From:") << from;
      EXPECT_EQ(p.verdict.rule, "invalid_from") << from;
      EXPECT_TRUE(p.edits.empty()) << from;
    }
  }
  // No address at all is still EMPTY-FROM.
  for (const char* from : {"Victim <not an address>", "Sales Team", "<>"}) {
    EXPECT_EQ(r.plan(standard(from)).verdict.action, Action::Dunno) << from;
  }
}

TEST(RulesMessage, FromDomainMustBeASendingDomain) {
  Rules r;
  EXPECT_EQ(r.plan(standard("a@other.example")).verdict.reply, "550 5.7.1 error/sender/unknown");
  EXPECT_EQ(r.plan(standard("=?UTF-8?B?c2hvcC5leGFtcGxl?= <a@mod.example>")).verdict.reply,
            "550 5.7.1 error/sender/onmoderation");
  EXPECT_EQ(r.plan(standard("\"a@shop.example\" <a@other.example>")).verdict.reply,
            "550 5.7.1 error/sender/unknown");
}

TEST(RulesMessage, EveryFromMailboxMustBeASendingDomain) {
  Rules r;
  for (const char* from : {"Shop <news@shop.example>, Other <a@other.example>", "news@shop.example, a@other.example",
                           "Team: news@shop.example, a@other.example;"}) {
    auto h = standard(from);
    h.push_back({"Sender", "news@shop.example"});
    auto p = r.plan(h);
    EXPECT_EQ(p.verdict.reply, "550 5.7.1 error/sender/unknown") << from;
    EXPECT_EQ(p.recorded_from, "news@shop.example") << from;
  }
  EXPECT_EQ(r.plan(standard("news@shop.example, a@mod.example")).verdict.reply, "550 5.7.1 error/sender/onmoderation");
  auto f = extractFacts(standard("a@shop.example, B <b@Shop.Example>, c@mod.example"), r.config, kNow);
  EXPECT_EQ(f.from_domains, (std::vector<std::string>{"shop.example", "mod.example"}));
  EXPECT_EQ(r.plan(standard("news@shop.example, Sales <sales@shop.example>")).verdict.action, Action::Dunno);
}

TEST(RulesMessage, RewrittenFromIsFolded) {
  Rules r;
  MessageAccount a = shopAccount();
  a.empty_from = EmptyFromMode::Rewrite;
  std::string name;
  for (int i = 0; i < 250; ++i) name += i ? " Sales" : "Sales";
  auto p = r.plan(standard(name), a);
  ASSERT_NE(findEdit(p, "From"), nullptr);
  std::string value = findEdit(p, "From")->value;
  EXPECT_NE(value.find('\n'), std::string::npos);
  EXPECT_LT(value.find('\n'), 78u);
  EXPECT_EQ(unfoldHeader(value), "\"" + name + "\" <default@shop.example>");
}

TEST(RulesMessage, Tags) {
  Rules r;
  auto h = standard();
  h.push_back({"X-Campaign-Id", "spring_sale-2026"});
  h.push_back({"X-Letter-Id", "L42"});
  MessageFacts f = extractFacts(h, r.config, kNow);
  EXPECT_EQ(f.campaign, "spring_sale-2026");
  EXPECT_EQ(f.letter_id, "L42");
  auto p = r.plan(h);
  EXPECT_EQ(findEdit(p, "Feedback-ID")->value, "spring_sale-2026:shop:mailgate");
  ASSERT_NE(findEdit(p, "X-Campaign-Id"), nullptr);
  EXPECT_EQ(findEdit(p, "X-Campaign-Id")->value, "");  // deleted
  r.config = parseConfig("strip_tag_headers = no\n", "t.conf");
  EXPECT_EQ(findEdit(r.plan(h), "X-Campaign-Id"), nullptr);

  for (const char* bad : {"has space", "", "semi;colon", "x\r\nBcc: evil@example.com", "ünï"}) {
    auto hb = standard();
    hb.push_back({"X-Campaign-Id", bad});
    EXPECT_EQ(r.plan(hb).verdict.reply, "550 5.6.0 invalid X-Campaign-Id") << bad;
  }
  auto hl = standard();
  hl.push_back({"X-Letter-Id", std::string(129, 'a')});
  EXPECT_EQ(r.plan(hl).verdict.reply, "550 5.6.0 invalid X-Letter-Id");
  EXPECT_TRUE(validTag(std::string(128, 'a')));
}

TEST(RulesMessage, BlockedCampaign) {
  Rules r;
  MessageAccount a = shopAccount();
  a.campaign_blocked = true;
  EXPECT_EQ(r.plan(standard(), a).verdict.reply, "550 5.7.1 issue is blocked");
}

TEST(RulesMessage, SinkAndSandbox) {
  Rules r;
  auto p = r.plan(standard(), shopAccount(), {"Test@Test.ru", "bob@example.net"});
  EXPECT_EQ(p.sink_rcpts, std::vector<std::string>{"Test@Test.ru"});
  EXPECT_EQ(p.deliver_rcpts, std::vector<std::string>{"bob@example.net"});
  EXPECT_TRUE(p.discard.empty());
  p = r.plan(standard(), shopAccount(), {"test@test.ru"});
  EXPECT_EQ(p.discard, "sink");
  MessageAccount a = shopAccount();
  a.sandbox = true;
  p = r.plan(standard(), a);
  EXPECT_EQ(p.discard, "sandbox");
  // A sandbox key's message is still checked first.
  EXPECT_EQ(r.plan(standard("a@other.example"), a).verdict.reply, "550 5.7.1 error/sender/unknown");
}

TEST(RulesMessage, MailWithoutAnAccountPassesOrIsRefusedByLocalSubmission) {
  Config config = parseConfig("", "t.conf");
  EXPECT_EQ(config.local_submission, LocalSubmission::Pass);
  Verdict v = checkLocalSubmission(config);
  EXPECT_EQ(v.action, Action::Dunno);
  EXPECT_EQ(v.rule, "local_submission=pass");
  config = parseConfig("local_submission = reject\n", "t.conf");
  v = checkLocalSubmission(config);
  EXPECT_EQ(v.action, Action::Reject);
  EXPECT_EQ(v.reply, "550 5.7.1 mail without an account is not accepted here");
  EXPECT_THROW(parseConfig("local_submission = sign\n", "t.conf"), ConfigError);
}

// End of message: the message rules before suppression (a blocked campaign is
// refused even when every recipient is suppressed), DKIM trouble only for mail
// that is delivered, and on_redis_failure = accept keeps the plan.
TEST(FinishMessage, RulesThenSuppressionThenDkim) {
  MessagePlan deliver, blocked, sandbox;
  blocked.verdict = Verdict{Action::Reject, "550 5.7.1 issue is blocked", "campaign_blocked"};
  sandbox.discard = "sandbox";
  const std::string kInternal = "451 4.3.0 internal service error";
  struct Case {
    const char* name;
    const MessagePlan& plan;
    bool all_suppressed;
    SigningState dkim;
    const char* conf;
    Finish finish;
    std::string reply, note;
  };
  const Case cases[] = {
      {"plain", deliver, false, {}, "", Finish::Carry, "", ""},
      {"blocked, every rcpt suppressed", blocked, true, {}, "", Finish::Refuse, "550 5.7.1 issue is blocked", ""},
      {"every rcpt suppressed", deliver, true, {}, "", Finish::DiscardSuppressed, "", ""},
      {"sandbox, keys unreadable", sandbox, false, {true, false, false}, "", Finish::Carry, "", ""},
      {"keys unreadable, tempfail", deliver, false, {true, false, false}, "", Finish::RedisTempfail, "", ""},
      {"keys unreadable, accept", deliver, false, {true, false, false}, "on_redis_failure = accept\n", Finish::Carry,
       "", " dkim=unavailable"},
      {"keys unreadable, accept, dkim_required", deliver, false, {true, false, false},
       "on_redis_failure = accept\ndkim_required = yes\n", Finish::Refuse, kInternal, ""},
      {"signing failed", deliver, false, {false, false, true}, "", Finish::Refuse, kInternal, ""},
      {"signing failed, accept-unsigned", deliver, false, {false, false, true}, "dkim_on_error = accept-unsigned\n",
       Finish::Carry, "", " dkim=error"},
      {"no key", deliver, false, {false, true, false}, "", Finish::Carry, "", " dkim=none"},
      {"no key, dkim_required", deliver, false, {false, true, false}, "dkim_required = yes\n", Finish::Refuse,
       kInternal, ""},
      {"sandbox, no key, dkim_required", sandbox, false, {false, true, false}, "dkim_required = yes\n", Finish::Carry,
       "", ""},
  };
  for (const Case& c : cases) {
    EndOfMessage end = finishMessage(c.plan, c.all_suppressed, c.dkim, parseConfig(c.conf, "t.conf"));
    EXPECT_EQ(end.finish, c.finish) << c.name;
    EXPECT_EQ(end.refusal.reply, c.reply) << c.name;
    EXPECT_EQ(end.dkim_note, c.note) << c.name;
  }
}

TEST(RulesMessage, Rfc5322Date) { EXPECT_EQ(rfc5322Date(0), "Thu, 01 Jan 1970 00:00:00 +0000"); }

}  // namespace

// Exim's data ACL passes only the From and tag fields (x_header_*): the
// same replies as the milter gives for the same fields, in a table.
TEST(RulesMessage, HeaderFieldsAloneGetTheMilterReplies) {
  Rules r;
  struct Case {
    std::optional<std::string> from, campaign;
    std::optional<EmptyFromMode> empty_from;
    bool blocked;
    const char* reply;  // "" passes
  };
  const Case cases[] = {
      {"Shop <news@shop.example>", {}, {}, false, ""},
      {"CEO <ceo@other.example>", {}, {}, false, "550 5.7.1 error/sender/unknown"},
      {"Shop <news@shop.example>, CEO <ceo@other.example>", {}, {}, false, "550 5.7.1 error/sender/unknown"},
      {"news@mod.example", {}, {}, false, "550 5.7.1 error/sender/onmoderation"},
      {"news@shop.example, a..b@victim.example", {}, {}, false, "550 5.6.0 invalid From:"},
      {"alice@", {}, {}, false, "550 5.6.0 invalid From:"},
      {std::nullopt, {}, {}, false, "550 5.6.0 no From:"},
      {"Victim <not an address>", {}, {}, false, ""},
      {"Victim <not an address>", {}, EmptyFromMode::Reject, false, "550 5.6.0 no email in From:"},
      {"Victim <not an address>", {}, EmptyFromMode::Rewrite, false, ""},
      {"news@shop.example", "spring-2026", {}, false, ""},
      {"news@shop.example", "bad campaign!", {}, false, "550 5.6.0 invalid X-Campaign-Id"},
      {"alice@", "bad campaign!", {}, false, "550 5.6.0 invalid X-Campaign-Id"},
      {"news@shop.example", "spring-2026", {}, true, "550 5.7.1 issue is blocked"},
      {"CEO <ceo@other.example>", "spring-2026", {}, true, "550 5.7.1 error/sender/unknown"},
  };
  for (const auto& c : cases) {
    MessageAccount a = shopAccount();
    a.empty_from = c.empty_from;
    a.campaign_blocked = c.blocked;
    MessageFacts f = headerFieldFacts(c.from, c.campaign, std::nullopt, kNow);
    EXPECT_EQ(f.campaign, c.campaign && validTag(*c.campaign) ? *c.campaign : utcDate(kNow));
    EXPECT_EQ(checkHeaderFields(f, a, r.config).reply, c.reply) << c.from.value_or("(none)");
    // The milter answers the same for a message with these fields.
    if (c.from) {
      HeaderList h = standard(*c.from);
      if (c.campaign) h.emplace_back("X-Campaign-Id", *c.campaign);
      EXPECT_EQ(r.plan(h, a).verdict.reply, c.reply) << *c.from;
    }
  }
}

// Exim's $h_from: joins two From fields (a second can hide in a comment the
// first opens) and misses "From :": the ACL's count of From fields and the
// header size decide what x_header_from cannot show, as the milter answers.
TEST(HeaderFieldFacts, FromFieldCountAndHeaderSizeComeFirst) {
  Rules r;
  struct Case {
    std::optional<std::string> from;
    uint64_t from_fields, header_bytes;
    const char* reply;
  };
  const Case cases[] = {
      {"news@shop.example", 1, 300, ""},
      {"news@shop.example ( ceo@other.example)", 2, 300, "550 5.6.0 duplicate From:"},
      {"news@shop.example", 2, 300, "550 5.6.0 duplicate From:"},
      {"a..b@victim.example", 2, 300, "550 5.6.0 duplicate From:"},
      {"news@shop.example", 1, kEximHeaderBytes - 1, ""},
      {"news@shop.example", 1, kEximHeaderBytes, "550 5.6.0 too many header fields"},
      {std::nullopt, 1, 300, "550 5.6.0 no From:"},  // "From : ..." alone, From required
      {std::nullopt, 0, 300, "550 5.6.0 no From:"},
  };
  for (const auto& c : cases) {
    MessageFacts f = headerFieldFacts(c.from, std::string("bad campaign!"), std::nullopt, kNow);
    addHeaderSection(c.from_fields, c.header_bytes, f);
    std::string want = *c.reply ? c.reply : "550 5.6.0 invalid X-Campaign-Id";
    EXPECT_EQ(checkHeaderFields(f, shopAccount(), r.config).reply, want) << c.from.value_or("(none)");
  }
  // Without From in required_headers, a From field $h_from: missed is refused too.
  r.config.required_headers = {"To"};
  MessageFacts f = headerFieldFacts(std::nullopt, std::nullopt, std::nullopt, kNow);
  addHeaderSection(1, 300, f);
  EXPECT_EQ(checkHeaderFields(f, shopAccount(), r.config).reply, "550 5.6.0 invalid From:");
}

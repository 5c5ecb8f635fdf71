// tracking_test.cc — delivery results mapped to events: statuses, orig_to,
// suppression only for the recipient's own mailbox codes (under the
// submitted address), lines for recipients not submitted ignored, expiry of
// waiting recipients, soft bounces, unknown and finished messages ignored,
// q:<queueid> decoding, and the rate limit on logging ignored lines.
#include "mailgate/tracking.h"

#include <gtest/gtest.h>

namespace mailgate {
namespace {

TrackedMessage acme() {
  TrackedMessage m;
  m.known = true;
  m.account = "acme";
  m.key_id = "k1";
  m.campaign = "spring";
  m.letter_id = "L7";
  m.from = "news@example.org";
  m.message_id = "<m1@example.org>";
  return m;
}

LogRecord line(const std::string& text) { return parsePostfixLogLine(text); }

const char* kSent =
    "Nov 26 01:00:00 h postfix/smtp[5]: 1A2B3C4D5E: to=<bob@example.net>, relay=mx[192.0.2.1]:25, delay=1, "
    "delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X)";

TEST(Tracking, SentBecomesDelivered) {
  TrackedMessage m = acme();
  TrackingUpdate u = trackLine(line(kSent), m, 1000);
  ASSERT_EQ(u.events.size(), 1u);
  const Event& e = u.events[0];
  EXPECT_EQ(e.status, "delivered");
  EXPECT_EQ(e.queue_id, "1A2B3C4D5E");
  EXPECT_EQ(e.account, "acme");
  EXPECT_EQ(e.key_id, "k1");
  EXPECT_EQ(e.campaign, "spring");
  EXPECT_EQ(e.letter_id, "L7");
  EXPECT_EQ(e.message_id, "<m1@example.org>");
  EXPECT_EQ(e.rcpt, "bob@example.net");
  EXPECT_EQ(e.code, "2.0.0");
  EXPECT_EQ(e.text, "250 2.0.0 Ok: queued as X");
  EXPECT_EQ(e.time_ms, 1000);
  EXPECT_TRUE(u.suppress.empty());
  EXPECT_EQ(m.rcpt_status["bob@example.net"], "delivered");
}

TEST(Tracking, HardBounceOfTheMailboxSuppresses) {
  TrackedMessage m = acme();
  auto u = trackLine(line("Nov 26 01:00:00 h postfix/smtp[5]: 1A2B3C4D5E: to=<Gone@Example.NET>, relay=mx[192.0.2.1]:25, "
                          "delay=1, delays=0/0/0.5/0.5, dsn=5.1.1, status=bounced (host mx[192.0.2.1] said: 550 5.1.1 "
                          "no such user (in reply to RCPT TO command))"),
                     m, 5);
  ASSERT_EQ(u.events.size(), 1u);
  EXPECT_EQ(u.events[0].status, "bounced");
  ASSERT_EQ(u.suppress.size(), 1u);
  EXPECT_EQ(u.suppress[0].address, "gone@example.net");  // the key the policy looks up
  EXPECT_EQ(u.suppress[0].account, "acme");
  EXPECT_EQ(u.suppress[0].dsn, "5.1.1");
  EXPECT_EQ(u.suppress[0].queue_id, "1A2B3C4D5E");
}

// Which bounces suppress the recipient for every account: only a dead
// mailbox or domain, never the sender's own problem (issue 14 item 2).
TEST(Tracking, OnlyRecipientMailboxCodesSuppress) {
  struct Case {
    const char* dsn;
    const char* text;
    bool suppress;
  } cases[] = {
      {"5.1.1", "host mx[192.0.2.1] said: 550 5.1.1 <a@example.net>: Recipient address rejected: User unknown "
                "(in reply to RCPT TO command)", true},
      {"5.1.1", "mailbox unknown", true},  // error(8)
      {"5.1.2", "host mx[192.0.2.1] said: 550 5.1.2 bad destination system address (in reply to RCPT TO command)",
       true},
      {"5.1.6", "host mx[192.0.2.1] said: 550 5.1.6 mailbox has moved (in reply to RCPT TO command)", true},
      {"5.1.10", "Host or domain name not found. Name service error for name=example.net type=MX: Null MX", true},
      {"5.1.1", "host mx[192.0.2.1] said: 550 5.1.1 The email account that you tried to reach does not exist "
                "(in reply to end of DATA command)", true},
      // The sender's address or domain: one customer's broken domain.
      {"5.1.8", "host mx[192.0.2.1] said: 550 5.1.8 <news@example.com>: Sender address rejected: Domain not found "
                "(in reply to RCPT TO command)", false},
      {"5.1.8", "550 5.1.8 <news@example.com>: Sender address rejected: Domain not found", false},
      {"5.1.7", "host mx[192.0.2.1] said: 553 5.1.7 The sender address <news@example.com> is not a valid RFC 5321 "
                "address (in reply to MAIL FROM command)", false},
      // Codes misused for the sender: the reply says so.
      {"5.1.1", "host mx[192.0.2.1] said: 550 5.1.1 <news@example.com>: Sender address rejected: undeliverable "
                "address (in reply to RCPT TO command)", false},
      {"5.1.1", "host mx[192.0.2.1] said: 550 5.1.1 unknown sender (in reply to MAIL FROM command)", false},
      {"5.1.2", "host mx[192.0.2.1] said: 550 5.1.2 sender domain does not resolve (In reply to MAIL FROM command)",
       false},
      // Not the mailbox, or not for good.
      {"5.1.3", "host mx[192.0.2.1] said: 501 5.1.3 Bad recipient address syntax (in reply to RCPT TO command)",
       false},
      {"5.1.4", "ambiguous", false},
      {"5.1.0", "host said: 550 5.1.0 Address rejected", false},
      {"5.1.9", "non-compliant", false},
      {"5.1.11", "future code", false},
      {"5.1.", "truncated", false},
      {"5.2.2", "mailbox full", false},
      {"5.7.1", "host mx[192.0.2.1] said: 550 5.7.1 spam", false},
      {"5.0.0", "host said: 550 no", false},
      {"5.3.0", "other", false},
      {"4.1.1", "deferred", false},
      {"", "", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(isSuppressingBounce(c.dsn, c.text), c.suppress) << c.dsn << " " << c.text;
    TrackedMessage m = acme();
    std::string status = c.dsn[0] == '4' ? "deferred" : "bounced";
    auto u = trackLine(line(std::string("Nov 26 01:00:00 h postfix/smtp[5]: 1A2B3C4D5E: to=<a@example.net>, "
                                        "relay=mx[192.0.2.1]:25, delay=1, dsn=") +
                            c.dsn + ", status=" + status + " (" + c.text + ")"),
                       m, 5);
    if (*c.dsn == 0) continue;  // no dsn field: no delivery line
    ASSERT_EQ(u.events.size(), 1u) << c.dsn << " " << c.text;
    EXPECT_EQ(u.events[0].text, c.text);
    EXPECT_EQ(u.suppress.size(), c.suppress ? 1u : 0u) << c.dsn << " " << c.text;
  }
}

TEST(Tracking, RewrittenRecipientIsSuppressedAsSubmitted) {
  TrackedMessage m = acme();
  m.recipients = std::set<std::string>{"alias@example.com"};
  auto u = trackLine(line("Nov 26 01:00:00 h postfix/smtp[5]: 1A2B3C4D5E: to=<real@example.net>, "
                          "orig_to=<Alias@Example.COM>, relay=mx[192.0.2.1]:25, delay=1, dsn=5.1.1, "
                          "status=bounced (host mx[192.0.2.1] said: 550 5.1.1 no such user)"),
                     m, 5);
  ASSERT_EQ(u.events.size(), 1u);
  EXPECT_EQ(u.events[0].rcpt, "Alias@Example.COM");
  ASSERT_EQ(u.suppress.size(), 1u);
  EXPECT_EQ(u.suppress[0].address, "alias@example.com");  // what the policy service looks up for RCPT TO
}

TEST(Tracking, LinesForRecipientsNotSubmittedAreIgnored) {
  TrackedMessage m = acme();
  m.recipients = std::set<std::string>{"bob@example.net", "alias@example.com"};
  const std::string bounce = ", relay=none, delay=1, dsn=5.1.1, status=bounced (no such user)";
  for (const std::string& fields : {std::string("to=<victim@example.org>"),
                                    std::string("to=<bob@example.net>, orig_to=<victim@example.org>")}) {
    auto u = trackLine(line("Nov 26 01:00:00 h postfix/smtp[5]: 1A2B3C4D5E: " + fields + bounce), m, 5);
    EXPECT_TRUE(u.events.empty()) << fields;
    EXPECT_TRUE(u.suppress.empty()) << fields;
    EXPECT_TRUE(u.rcpt_status.empty()) << fields;
    EXPECT_EQ(u.ignored, "recipient <victim@example.org> was not submitted with this message") << fields;
  }
  // As Postfix logs them: any case; rewritten ones by their orig_to.
  for (const std::string& fields : {std::string("to=<BOB@example.NET>"),
                                    std::string("to=<real@example.org>, orig_to=<alias@example.com>")}) {
    auto u = trackLine(line("Nov 26 01:00:00 h postfix/smtp[5]: 1A2B3C4D5E: " + fields + bounce), m, 5);
    EXPECT_EQ(u.events.size(), 1u) << fields;
    EXPECT_TRUE(u.ignored.empty()) << fields;
  }
}

TEST(Tracking, RecipientsAreDecodedFromTheQueueRecord) {
  redisReply k{}, v{}, arr{};
  k.type = v.type = REDIS_REPLY_STRING;
  k.str = const_cast<char*>("rcpts");
  k.len = 5;
  std::string list = "bob@example.net\n\"a b\"@example.net";
  v.str = list.data();
  v.len = list.size();
  redisReply* fields[] = {&k, &v};
  arr.type = REDIS_REPLY_ARRAY;
  arr.elements = 2;
  arr.element = fields;
  TrackedMessage m = trackedMessageFromHash(&arr);
  ASSERT_TRUE(m.recipients.has_value());
  EXPECT_EQ(*m.recipients, (std::set<std::string>{"bob@example.net", "\"a b\"@example.net"}));
  EXPECT_FALSE(trackedMessageFromHash(nullptr).recipients.has_value());  // an older record: not checked
}

TEST(Tracking, IgnoredLinesAreLoggedOncePerQueueIdAndCapped) {
  IgnoredLines notes;
  uint64_t unlogged = 99;
  EXPECT_TRUE(notes.shouldLog("AAAAAA1", 0, unlogged));
  EXPECT_EQ(unlogged, 0u);
  EXPECT_FALSE(notes.shouldLog("AAAAAA1", 1, unlogged));
  // A flood of queue ids: kPerMinute lines a minute, the rest counted.
  unsigned logged = 1;
  for (int i = 0; i < 1000; ++i) logged += notes.shouldLog("B" + std::to_string(100000 + i), 10, unlogged);
  EXPECT_EQ(logged, IgnoredLines::kPerMinute);
  EXPECT_TRUE(notes.shouldLog("CCCCCC1", 60000, unlogged));
  EXPECT_EQ(unlogged, 1000u - (IgnoredLines::kPerMinute - 1));
  // Memory is bounded: old queue ids are forgotten.
  for (size_t i = 0; i < IgnoredLines::kRemembered; ++i) (void)notes.shouldLog("D" + std::to_string(i), 60000, unlogged);
  EXPECT_TRUE(notes.shouldLog("AAAAAA1", 120000, unlogged));
}

TEST(Tracking, OrigToIsTheReportedRecipient) {
  TrackedMessage m = acme();
  auto u = trackLine(line("Nov 26 01:00:00 h postfix/smtp[5]: 1A2B3C4D5E: to=<real@example.net>, "
                          "orig_to=<alias@example.net>, relay=none, delay=1, dsn=4.4.1, status=deferred (refused)"),
                     m, 5);
  ASSERT_EQ(u.events.size(), 1u);
  EXPECT_EQ(u.events[0].rcpt, "alias@example.net");
  EXPECT_EQ(u.events[0].status, "deferred");
}

TEST(Tracking, ExpiryReportsRecipientsStillWaiting) {
  TrackedMessage m = acme();
  m.rcpt_status["done@example.net"] = "delivered";
  m.rcpt_status["wait@example.net"] = "deferred";
  auto u = trackLine(line("Nov 26 01:00:00 h postfix/qmgr[5]: 1A2B3C4D5E: from=<news@example.org>, status=expired, "
                          "returned to sender"),
                     m, 9);
  ASSERT_EQ(u.events.size(), 1u);
  EXPECT_EQ(u.events[0].rcpt, "wait@example.net");
  EXPECT_EQ(u.events[0].status, "expired");
  EXPECT_EQ(m.rcpt_status["wait@example.net"], "expired");
}

TEST(Tracking, MailboxDeferralsAndExpiriesAreSoftBounces) {
  TrackedMessage m = acme();
  const std::string prefix = "Nov 26 01:00:00 h postfix/smtp[5]: 1A2B3C4D5E: ";
  auto full = trackLine(line(prefix + "to=<real@example.net>, orig_to=<Alias@Example.NET>, relay=mx[192.0.2.1]:25, "
                                      "delay=1, dsn=4.2.2, status=deferred (host mx[192.0.2.1] said: 452 4.2.2 "
                                      "Mailbox full (in reply to RCPT TO command))"),
                        m, 7);
  ASSERT_EQ(full.soft_bounces.size(), 1u);
  const SoftBounce& b = full.soft_bounces[0];
  EXPECT_EQ(b.address, "alias@example.net");  // as suppressed: the submitted recipient's lookup key
  EXPECT_EQ(b.kind, "4.2");
  // The event written if this one reaches the limit.
  EXPECT_EQ(b.event.status, "suppressed");
  EXPECT_EQ(b.event.rcpt, "Alias@Example.NET");
  EXPECT_EQ(b.event.code, "4.2.2");
  EXPECT_EQ(b.event.text, "soft-bounce-limit");
  EXPECT_EQ(b.event.queue_id, "1A2B3C4D5E");
  EXPECT_EQ(b.event.campaign, "spring");
  EXPECT_EQ(b.event.time_ms, 7);
  EXPECT_EQ(full.events.at(0).status, "deferred");  // reported as before

  // A host or network problem, a policy deferral (greylisting): not about the mailbox.
  for (const char* dsn : {"4.4.1", "4.7.1", "4.3.0", "4.0.0"}) {
    auto u = trackLine(line(prefix + "to=<bob@example.net>, relay=none, delay=1, dsn=" + dsn +
                            ", status=deferred (x)"),
                       m, 7);
    EXPECT_TRUE(u.soft_bounces.empty()) << dsn;
  }
  auto sent = trackLine(line(kSent), m, 8);
  EXPECT_TRUE(sent.soft_bounces.empty());
  EXPECT_EQ(sent.delivered, std::vector<std::string>{"bob@example.net"});

  m.rcpt_status["wait@example.net"] = "deferred";
  auto expired = trackLine(line("Nov 26 01:00:00 h postfix/qmgr[5]: 1A2B3C4D5E: from=<news@example.org>, "
                                "status=expired, returned to sender"),
                           m, 9);
  ASSERT_EQ(expired.soft_bounces.size(), 2u);  // alias@ (deferred above) and wait@
  for (const SoftBounce& e : expired.soft_bounces) {
    EXPECT_EQ(e.kind, "expired");
    EXPECT_EQ(e.event.code, "4.4.7");
  }
}

TEST(Tracking, SoftBounceKinds) {
  EXPECT_EQ(softBounceKind("4.2.2"), "4.2");
  EXPECT_EQ(softBounceKind("4.2.0"), "4.2");
  EXPECT_EQ(softBounceKind("4.1.1"), "4.1");
  EXPECT_EQ(softBounceKind("4.2.123"), "4.2");
  for (const char* dsn : {"", "4.2", "4.2.", "4.2.1234", "4.2.2x", "4.22.1", "5.2.2", "2.0.0", "4.4.7", "4.7.1",
                          "4.3.1", "4.5.0", "4.6.0", "4.0.0"}) {
    EXPECT_EQ(softBounceKind(dsn), "") << dsn;
  }
}

TEST(Tracking, UnknownAndFinishedMessagesAreIgnored) {
  TrackedMessage unknown;
  EXPECT_TRUE(trackLine(line(kSent), unknown, 1).events.empty());
  TrackedMessage m = acme();
  auto removed = trackLine(line("Nov 26 01:00:00 h postfix/qmgr[5]: 1A2B3C4D5E: removed"), m, 1);
  EXPECT_TRUE(removed.removed);
  EXPECT_TRUE(m.done);
  EXPECT_TRUE(trackLine(line(kSent), m, 1).events.empty());
}

TEST(Tracking, NotificationQueueId) {
  TrackedMessage m = acme();
  auto u = trackLine(line("Nov 26 01:00:00 h postfix/bounce[6]: 1A2B3C4D5E: sender non-delivery notification: "
                          "9F8E7D6C5B"),
                     m, 1);
  EXPECT_EQ(u.notification_qid, "9F8E7D6C5B");
  EXPECT_TRUE(u.events.empty());
}

}  // namespace
}  // namespace mailgate

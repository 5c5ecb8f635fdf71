// tracking_test.cc — delivery results mapped to events: statuses, orig_to,
// 5.1.x suppression only, expiry of waiting recipients, unknown and
// finished messages ignored, q:<queueid> decoding.
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

TEST(Tracking, HardBounceSuppressesOnly51x) {
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

  for (const char* dsn : {"5.2.2", "5.7.1", "5.0.0", "4.1.1"}) {
    TrackedMessage other = acme();
    std::string status = dsn[0] == '5' ? "bounced" : "deferred";
    auto v = trackLine(line(std::string("Nov 26 01:00:00 h postfix/smtp[5]: 1A2B3C4D5E: to=<a@example.net>, "
                                        "relay=none, delay=1, dsn=") +
                            dsn + ", status=" + status + " (x)"),
                       other, 5);
    EXPECT_EQ(v.events.size(), 1u) << dsn;
    EXPECT_TRUE(v.suppress.empty()) << dsn;
  }
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

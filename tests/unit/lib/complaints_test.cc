// complaints_test.cc — planComplaint: which reports are complaints, which
// are kept and why, and the complained event's fields.
#include <gtest/gtest.h>

#include "mailgate/complaints.h"
#include "mailgate/unsubscribe_token.h"

namespace mailgate {
namespace {

ComplaintReport report() {
  ComplaintReport r;
  r.format = "arf";
  r.feedback_type = "abuse";
  r.user_agent = "Yahoo!-Mail-Feedback/2.0";
  r.reporting_mta = "dns; mta.example";
  r.original_mail_from = "<bounces@news.example.org>";
  r.message_id = "<m@news.example.org>";
  r.account = "acme";
  r.campaign = "weekly";
  r.letter_id = "L-1";
  r.recipient = "jane@example.net";
  r.received_ids = {"PROVIDER1", "4ZyQ7m3Lh2z9"};
  return r;
}

TEST(Complaints, AnAbuseReportIsAComplaint) {
  ComplaintPlan p = planComplaint(report(), 1700000000000);
  EXPECT_EQ(p.outcome, "complained");
  const Event& e = p.event;
  EXPECT_EQ(e.status, "complained");
  EXPECT_EQ(e.time_ms, 1700000000000);
  EXPECT_EQ(e.account, "acme");
  EXPECT_EQ(e.campaign, "weekly");
  EXPECT_EQ(e.letter_id, "L-1");
  EXPECT_EQ(e.rcpt, "jane@example.net");
  EXPECT_EQ(e.queue_id, "4ZyQ7m3Lh2z9");  // the first Received: ours
  EXPECT_EQ(e.from, "bounces@news.example.org");
  EXPECT_EQ(e.message_id, "<m@news.example.org>");
  EXPECT_EQ(e.code, "abuse");
  EXPECT_EQ(e.text, "Yahoo!-Mail-Feedback/2.0 via dns; mta.example");
}

TEST(Complaints, FraudAndVirusAreComplaintsTheOtherTypesAreKept) {
  for (const char* t : {"fraud", "virus"}) {
    ComplaintReport r = report();
    r.feedback_type = t;
    EXPECT_EQ(planComplaint(r, 0).outcome, "complained") << t;
  }
  for (const char* t : {"not-spam", "auth-failure", "other", "dmarc"}) {
    ComplaintReport r = report();
    r.feedback_type = t;
    ComplaintPlan p = planComplaint(r, 0);
    EXPECT_EQ(p.outcome, "ignored") << t;
    EXPECT_EQ(p.reason, std::string("Feedback-Type ") + t + " is not a complaint");
  }
}

TEST(Complaints, ReportsWithoutAccountOrRecipientAreUnattributed) {
  ComplaintReport r = report();
  r.account.clear();
  EXPECT_EQ(planComplaint(r, 0).outcome, "unattributed");
  EXPECT_EQ(planComplaint(r, 0).reason, "no Feedback-ID of ours in the original message");
  r = report();
  r.recipient.clear();  // redacted
  EXPECT_EQ(planComplaint(r, 0).outcome, "unattributed");
}

TEST(Complaints, AParseErrorIsUnparseable) {
  ComplaintPlan p = planComplaint(Result<ComplaintReport>(Error{Error::Kind::Invalid, "not a MIME message"}), 5);
  EXPECT_EQ(p.outcome, "unparseable");
  EXPECT_EQ(p.reason, "not a MIME message");
  EXPECT_EQ(p.event.time_ms, 5);
}

TEST(Complaints, OurUnsubscribeTokenAttributesARedactedReport) {
  const std::string secret = "complaint-test-secret-0123456789abcdef";
  const int64_t issued = 1700000000;
  ComplaintReport r = report();
  r.account.clear();  // a Feedback-ID the provider dropped, a redacted recipient
  r.recipient.clear();
  auto token = issueUnsubscribeToken({"acme", "Jane@Example.NET", "weekly", "4QID1", issued}, secret);
  ASSERT_TRUE(token);
  r.list_unsubscribe = "<mailto:u@news.example.org>, <https://mail.example.com/u/" + *token + ">";
  ComplaintReport forged = r;
  // Two years later: a complaint is not an unsubscribe, any age counts.
  ASSERT_TRUE(attributeByUnsubscribeToken(r, {"other-secret-0123456789abcdefghijklmnop", secret}, issued + 2 * 365 * 86400));
  ComplaintPlan p = planComplaint(r, 1700000000000);
  EXPECT_EQ(p.outcome, "complained");
  EXPECT_EQ((std::vector<std::string>{p.event.account, p.event.rcpt, p.event.campaign, p.event.queue_id}),
            (std::vector<std::string>{"acme", "jane@example.net", "weekly", "4QID1"}));
  forged.list_unsubscribe.insert(forged.list_unsubscribe.size() - 5, "A");
  EXPECT_FALSE(attributeByUnsubscribeToken(forged, {secret}, issued));
  EXPECT_EQ(planComplaint(forged, 1700000000000).outcome, "unattributed");
  EXPECT_FALSE(attributeByUnsubscribeToken(r, {}, issued));  // no web_secret_file
}

}  // namespace
}  // namespace mailgate

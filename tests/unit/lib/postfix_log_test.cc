// postfix_log_test.cc — the Postfix log parser over real Postfix 3.x lines:
// syslog, journal short and cat forms, short and long queue ids, IPv6 relays,
// quoted addresses, status texts with parentheses, lines to ignore, the
// syslog tag read only where syslog writes it, and which tags are Postfix's.
#include "mailgate/postfix_log.h"

#include <gtest/gtest.h>

namespace mailgate {
namespace {

using Kind = LogRecord::Kind;

TEST(PostfixLog, SentViaSmtpSyslog) {
  auto r = parsePostfixLogLine(
      "Nov 26 01:17:30 mx1 postfix/smtp[12345]: C3CD21F3E90: to=<bob@example.org>, "
      "relay=mx.example.org[203.0.113.5]:25, delay=1.4, delays=0.05/0.01/0.6/0.7, dsn=2.0.0, "
      "status=sent (250 2.0.0 Ok: queued as 4B1C1D2)\n");
  EXPECT_EQ(r.kind, Kind::Delivery);
  EXPECT_EQ(r.program, "postfix/smtp");
  EXPECT_EQ(r.queue_id, "C3CD21F3E90");
  EXPECT_EQ(r.rcpt, "bob@example.org");
  EXPECT_EQ(r.relay, "mx.example.org[203.0.113.5]:25");
  EXPECT_EQ(r.dsn, "2.0.0");
  EXPECT_EQ(r.status, "sent");
  EXPECT_EQ(r.text, "250 2.0.0 Ok: queued as 4B1C1D2");
}

TEST(PostfixLog, BouncedWithNestedParenthesesIso8601) {
  auto r = parsePostfixLogLine(
      "2026-11-26T01:17:30.123456+00:00 mx1 postfix/smtp[999]: 3Pt2mN2VXxznjll: to=<x.y@gmail.com>, "
      "relay=gmail-smtp-in.l.google.com[2a00:1450:400c:c0b::1a]:25, delay=0.61, "
      "delays=0.01/0/0.3/0.3, dsn=5.1.1, status=bounced (host gmail-smtp-in.l.google.com"
      "[2a00:1450:400c:c0b::1a] said: 550-5.1.1 The email account that you tried to reach does not exist "
      "(see https://support.google.com/mail/?p=NoSuchUser) x1-20020a (in reply to RCPT TO command))");
  EXPECT_EQ(r.kind, Kind::Delivery);
  EXPECT_EQ(r.queue_id, "3Pt2mN2VXxznjll");
  EXPECT_EQ(r.rcpt, "x.y@gmail.com");
  EXPECT_EQ(r.relay, "gmail-smtp-in.l.google.com[2a00:1450:400c:c0b::1a]:25");
  EXPECT_EQ(r.dsn, "5.1.1");
  EXPECT_EQ(r.status, "bounced");
  EXPECT_EQ(r.text,
            "host gmail-smtp-in.l.google.com[2a00:1450:400c:c0b::1a] said: 550-5.1.1 The email account that "
            "you tried to reach does not exist (see https://support.google.com/mail/?p=NoSuchUser) x1-20020a "
            "(in reply to RCPT TO command)");
}

TEST(PostfixLog, DeferredWithOrigToAndConnUse) {
  auto r = parsePostfixLogLine(
      "Nov  3 09:01:02 gw postfix/submission/smtp[77]: 4F3A2B1C0D: to=<list@example.net>, "
      "orig_to=<alias@example.com>, relay=mx.example.net[198.51.100.7]:25, conn_use=2, delay=301, "
      "delays=0.1/300/0.2/0.7, dsn=4.2.2, status=deferred (host mx.example.net[198.51.100.7] said: 452 4.2.2 "
      "Mailbox full (in reply to RCPT TO command))");
  EXPECT_EQ(r.kind, Kind::Delivery);
  EXPECT_EQ(r.program, "postfix/submission/smtp");
  EXPECT_EQ(r.rcpt, "list@example.net");
  EXPECT_EQ(r.orig_rcpt, "alias@example.com");
  EXPECT_EQ(r.dsn, "4.2.2");
  EXPECT_EQ(r.status, "deferred");
}

TEST(PostfixLog, RelayNoneAndQuotedLocalPartWithComma) {
  auto r = parsePostfixLogLine(
      "Nov 26 01:00:00 h postfix/error[5]: ABCDEF123: to=<\"a,b>c\"@example.com>, relay=none, delay=0.02, "
      "delays=0.01/0/0/0.01, dsn=4.4.1, status=deferred (delivery temporarily suspended: connect to "
      "example.com[192.0.2.1]:25: Connection refused)");
  EXPECT_EQ(r.kind, Kind::Delivery);
  EXPECT_EQ(r.rcpt, "\"a,b>c\"@example.com");
  EXPECT_EQ(r.relay, "none");
  EXPECT_EQ(r.text, "delivery temporarily suspended: connect to example.com[192.0.2.1]:25: Connection refused");
}

TEST(PostfixLog, JournalCatForm) {
  auto r = parsePostfixLogLine(
      "C3CD21F3E90: to=<bob@example.org>, relay=127.0.0.1[127.0.0.1]:2525, delay=0.1, "
      "delays=0/0/0/0.1, dsn=5.0.0, status=bounced (host 127.0.0.1[127.0.0.1] said: 550 5.0.0 no (in reply to "
      "end of DATA command))");
  EXPECT_EQ(r.kind, Kind::Delivery);
  EXPECT_EQ(r.program, "");
  EXPECT_EQ(r.status, "bounced");
}

TEST(PostfixLog, LmtpLocalAndTlsField) {
  auto r = parsePostfixLogLine(
      "Nov 26 01:00:00 h postfix/lmtp[5]: 1A2B3C4D5E: to=<u@example.com>, relay=mail[private/dovecot-lmtp], "
      "delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 <u@example.com> nlI2FwBvdWNwAQAA Saved)");
  EXPECT_EQ(r.kind, Kind::Delivery);
  EXPECT_EQ(r.relay, "mail[private/dovecot-lmtp]");
  r = parsePostfixLogLine(
      "Nov 26 01:00:00 h postfix/local[5]: 1A2B3C4D5E: to=<root@h.example>, orig_to=<root>, relay=local, "
      "delay=0.01, delays=0/0/0/0, dsn=2.0.0, status=sent (delivered to mailbox)");
  EXPECT_EQ(r.kind, Kind::Delivery);
  EXPECT_EQ(r.orig_rcpt, "root");
}

TEST(PostfixLog, SoftBounceAndVerifyProbes) {
  auto r = parsePostfixLogLine(
      "Nov 26 01:00:00 h postfix/smtp[5]: 1A2B3C4D5E: to=<u@example.com>, relay=none, delay=1, "
      "delays=0/0/1/0, dsn=5.1.1, status=SOFTBOUNCE (host said 550)");
  EXPECT_EQ(r.kind, Kind::Delivery);
  EXPECT_EQ(r.status, "softbounce");
  r = parsePostfixLogLine(
      "Nov 26 01:00:00 h postfix/smtp[5]: 1A2B3C4D5E: to=<u@example.com>, relay=mx[192.0.2.1]:25, delay=1, "
      "delays=0/0/1/0, dsn=2.1.5, status=deliverable (250 2.1.5 Ok)");
  EXPECT_EQ(r.kind, Kind::Other);
}

TEST(PostfixLog, ExpiredNotificationRemoved) {
  auto r = parsePostfixLogLine(
      "Nov 26 01:00:00 h postfix/qmgr[5]: 1A2B3C4D5E: from=<s@example.com>, status=expired, returned to sender");
  EXPECT_EQ(r.kind, Kind::Expired);
  EXPECT_EQ(r.queue_id, "1A2B3C4D5E");
  EXPECT_EQ(r.status, "expired");
  r = parsePostfixLogLine(
      "Nov 26 01:00:00 h postfix/bounce[6]: 1A2B3C4D5E: sender non-delivery notification: 9F8E7D6C5B");
  EXPECT_EQ(r.kind, Kind::Notification);
  EXPECT_EQ(r.new_queue_id, "9F8E7D6C5B");
  r = parsePostfixLogLine("Nov 26 01:00:00 h postfix/qmgr[5]: 1A2B3C4D5E: removed");
  EXPECT_EQ(r.kind, Kind::Removed);
}

TEST(PostfixLog, LinesToIgnore) {
  for (const char* line : {
           "Nov 26 01:00:00 h postfix/qmgr[5]: 1A2B3C4D5E: from=<s@example.com>, size=1234, nrcpt=1 (queue active)",
           "Nov 26 01:00:00 h postfix/smtpd[5]: NOQUEUE: reject: RCPT from x[192.0.2.1]: 550 5.7.1 no; "
           "from=<a@b> to=<c@d> proto=ESMTP helo=<x>",
           "Nov 26 01:00:00 h postfix/smtpd[5]: connect from localhost[127.0.0.1]",
           "Nov 26 01:00:00 h postfix/cleanup[5]: 1A2B3C4D5E: message-id=<x@y>",
           "Nov 26 01:00:00 h kernel: [12.3] ABCDEF: to=<a@b>, status=sent (x)",
           "Nov 26 01:00:00 h postfix/smtp[5]: warning: ABCDEF: to=<a@b>, status=sent (x)",
           "Nov 26 01:00:00 h postfix/smtp[5]: abcdef1: to=<a@b>, status=sent (x)",
           "",
           "]: ",
           "to=<a@b>, status=sent",
           "Nov 26 01:00:00 h postfix/smtp[5]: ABCDEF: to=<",
           "Nov 26 01:00:00 h postfix/smtp[5]: ABCDEF: to=<a@b>, dsn=2.0.0, status=",
       }) {
    EXPECT_EQ(parsePostfixLogLine(line).kind, Kind::Other) << line;
  }
}

// The tag is the word after the time stamp and the host, nothing further on:
// the message of any program (logger -t x "...") may quote a Postfix tag.
TEST(PostfixLog, TagIsTakenOnlyFromTheSyslogPrefix) {
  const std::string msg = "1A2B3C4D5E: to=<a@example.net>, relay=none, delay=1, dsn=5.1.1, status=bounced (x)";
  for (const std::string& line : {
           "Dec  2 18:00:00 h x[1]: foo postfix/smtp[5]: " + msg,
           "Dec  2 18:00:00 h x: foo postfix/smtp[5]: " + msg,
           "Dec  2 18:00:00 h x foo postfix/smtp[5]: " + msg,
           "Dec  2 18:00:00 h postfix/smtp: " + msg,        // no pid: not how Postfix logs
           "Dec  2 18:00:00 h postfix/smtp[]: " + msg,
           "Dec  2 18:00:00 h postfix/smtp[5a]: " + msg,
           "Dec  2 18:00:00 h [5]: " + msg,
           "Dec  2 18:00:00 postfix/smtp[5]: " + msg,         // no host
           "Foo  2 18:00:00 h postfix/smtp[5]: " + msg,
           "Dec 123 18:00:00 h postfix/smtp[5]: " + msg,
           "Dec  2 18:00:00 h postfix/smtp[5]:  " + msg,      // two spaces
           "host postfix/smtp[5]: " + msg,
       }) {
    EXPECT_EQ(parsePostfixLogLine(line).kind, Kind::Other) << line;
  }
  for (const std::string& line : {
           "Dec  2 18:00:00 h postfix/smtp[5]: " + msg,
           "Dec 02 18:00:00.123456 h postfix/smtp[5]: " + msg,   // journalctl -o short-precise
           "2026-12-02T18:00:00+0000 h postfix/smtp[5]: " + msg,  // -o short-iso
           "1764698400.123456 h postfix/smtp[5]: " + msg,         // -o short-unix
           msg,                                                  // -o cat
       }) {
    EXPECT_EQ(parsePostfixLogLine(line).kind, Kind::Delivery) << line;
  }
  EXPECT_EQ(parsePostfixLogLine("Dec  2 18:00:00 h evil/smtp[5]: " + msg).program, "evil/smtp");
}

TEST(PostfixLog, PostfixTagsOfTheConfiguredSyslogNames) {
  const std::vector<std::string> dflt{"postfix*"};
  for (const char* tag : {"postfix/smtp", "postfix/lmtp", "postfix/local", "postfix/virtual", "postfix/pipe",
                          "postfix/error", "postfix/retry", "postfix/discard", "postfix/qmgr", "postfix/oqmgr",
                          "postfix/bounce", "postfix/postsuper", "postfix-out/smtp", "postfix/relay/smtp",
                          "postfix/submission/smtp"}) {
    EXPECT_TRUE(isPostfixTag(tag, dflt)) << tag;
  }
  for (const char* tag : {"evil/smtp", "postfix/cleanup", "postfix/smtpd", "postfix/logger", "postfix", "smtp",
                          "/smtp", "postfix/smtp/", "xpostfix/smtp", ""}) {
    EXPECT_FALSE(isPostfixTag(tag, dflt)) << tag;
  }
  const std::vector<std::string> exact{"postfix", "postfix-out"};
  EXPECT_TRUE(isPostfixTag("postfix/smtp", exact));
  EXPECT_TRUE(isPostfixTag("postfix-out/qmgr", exact));
  EXPECT_FALSE(isPostfixTag("postfix-in/smtp", exact));
  EXPECT_FALSE(isPostfixTag("postfix/relay/smtp", exact));
}

TEST(PostfixLog, QueueIds) {
  EXPECT_TRUE(isQueueId("C3CD21F3E90"));
  EXPECT_TRUE(isQueueId("3Pt2mN2VXxznjll"));
  EXPECT_TRUE(isQueueId("4dJ8Bq0vXfz1mR5"));
  EXPECT_FALSE(isQueueId("NOQUEUE"));
  EXPECT_FALSE(isQueueId("warning"));
  EXPECT_FALSE(isQueueId("ABCDE"));
  EXPECT_FALSE(isQueueId("3Pt2mN2VXxynjll"));
  EXPECT_FALSE(isQueueId("3Pt2mN2VX-znjll"));
}

}  // namespace
}  // namespace mailgate

// recorder_test.cc — the tracker's batch recording against a real
// redis-server: a batch whose EXEC reply was lost is not applied again when
// it is given again, identical stdin batches both count; lines from foreign
// syslog tags, bare lines in a log file and lines for recipients the milter
// did not record change nothing; rewritten recipients are suppressed under
// the submitted address; soft bounces on distinct messages suppress once.
#include "recorder.h"

#include <ctime>
#include <gtest/gtest.h>

#include "mailgate/store.h"
#include "../lib/redis_server.h"

using namespace mailgate;
using mailgate::testing::ReplyDroppingProxy;

namespace {

constexpr const char* kQid = "4F3A2B1C0D";

std::string delivery(const std::string& tag, const std::string& fields, const std::string& status) {
  return std::string("Dec  2 18:00:00 mx1 ") + tag + "[4242]: " + kQid + ": " + fields +
         ", relay=mx.example.net[192.0.2.7]:25, delay=1, delays=0/0/0.5/0.5, " + status;
}

class RecorderTest : public mailgate::testing::RedisFixture {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis_.command({"FLUSHDB"}));
    // As mailgate-milter records it: recipients in trackedRecipientKey() form.
    ASSERT_TRUE(redis_.command({"HSET", keys_.queueRecord(kQid), "account", "acme", "campaign", "spring", "rcpts",
                                "bob@example.net\nalias@example.com"}));
  }
  std::shared_ptr<const Config> config(const std::string& extra = "") {
    return std::make_shared<const Config>(parseConfig(
        "redis_server = tcp:127.0.0.1:" + std::to_string(server_->port()) + "\nredis_prefix = t:\n" + extra, "x"));
  }
  long long integer(const Command& cmd) {
    auto r = redis_.command(cmd);
    return r ? (*r)->integer : -1;
  }
  long long events() { return integer({"XLEN", "t:events"}); }
  std::string stat(const std::string& field) {
    char day[16];
    time_t now = time(nullptr);
    tm utc{};
    strftime(day, sizeof day, "%Y-%m-%d", gmtime_r(&now, &utc));
    auto r = redis_.command({"HGET", keys_.stats("acme", day), field});
    return r ? replyString(r->get()) : "";
  }
  std::vector<std::string> bounced() {
    auto r = redis_.command({"SMEMBERS", keys_.bouncedGlobal()});
    std::vector<std::string> out;
    for (size_t i = 0; r && i < (*r)->elements; ++i) out.push_back(replyString((*r)->element[i]));
    return out;
  }

  StoreKeys keys_{"t:"};
  RedisConn redis_{server_->settings()};
};

TEST_F(RecorderTest, BatchWhoseReplyWasLostIsNotRecordedTwice) {
  ReplyDroppingProxy proxy(server_->port());
  RedisConn conn(proxy.settings());
  tracker::Recorder recorder(config(), conn, "node1");
  std::vector<std::string> lines{
      delivery("postfix/smtp", "to=<bob@example.net>", "dsn=4.2.2, status=deferred (452 4.2.2 Mailbox full)"),
      delivery("postfix/smtp", "to=<bob@example.net>", "dsn=2.0.0, status=sent (250 2.0.0 Ok)")};
  tracker::LogPosition position;
  position.inode = 42;
  position.offset = 4096;

  proxy.dropReplyTo("EXEC");  // Redis applies the batch; the tracker never hears so
  EXPECT_FALSE(recorder.record(lines, &position));
  EXPECT_EQ(events(), 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));  // the reconnect backoff after a failure
  auto again = recorder.record(lines, &position);  // what the tracker does next: the same lines again
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(events(), 2);
  EXPECT_EQ(stat("deferred"), "1");
  EXPECT_EQ(stat("delivered"), "1");
  auto offset = redis_.command({"HGET", keys_.tracker("node1"), "offset"});
  ASSERT_TRUE(offset);
  EXPECT_EQ(replyString(offset->get()), "4096");

  // The next batch (other lines, or the same lines further on) is recorded.
  tracker::LogPosition next;
  next.inode = 42;
  next.offset = 8192;
  ASSERT_TRUE(recorder.record(lines, &next));
  EXPECT_EQ(events(), 4);
  EXPECT_EQ(stat("delivered"), "2");
}

TEST_F(RecorderTest, StdinBatchWhoseReplyWasLostIsNotRecordedTwice) {
  ReplyDroppingProxy proxy(server_->port());
  RedisConn conn(proxy.settings());
  tracker::Recorder recorder(config("tracker_log = -\n"), conn, "node1");
  std::vector<std::string> lines{std::string(kQid) +
                                 ": to=<bob@example.net>, relay=none, delay=1, dsn=4.4.1, status=deferred (refused)"};
  proxy.dropReplyTo("EXEC");
  EXPECT_FALSE(recorder.record(lines, nullptr));
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  auto again = recorder.record(lines, nullptr);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(events(), 1);
  EXPECT_EQ(stat("deferred"), "1");
}

// `journalctl -o cat` lines carry no time stamp and stdin no position: the
// same lines read again later (postqueue -f twice within a second defers a
// message twice with the same delay) are a new batch, not a lost reply.
TEST_F(RecorderTest, IdenticalStdinBatchesAreBothRecorded) {
  tracker::Recorder recorder(config("tracker_log = -\n"), redis_, "node1");
  std::vector<std::string> lines{std::string(kQid) +
                                 ": to=<bob@example.net>, relay=none, delay=1, dsn=4.4.1, status=deferred (refused)"};
  ASSERT_TRUE(recorder.record(lines, nullptr));
  ASSERT_TRUE(recorder.record(lines, nullptr));
  EXPECT_EQ(events(), 2);
  EXPECT_EQ(stat("deferred"), "2");

  // Nor does a restarted tracker take its first batch for the last one of the one before.
  tracker::Recorder restarted(config("tracker_log = -\n"), redis_, "node1");
  ASSERT_TRUE(restarted.record(lines, nullptr));
  EXPECT_EQ(events(), 3);
}

TEST_F(RecorderTest, ForgedLinesChangeNothing) {
  tracker::Recorder recorder(config(), redis_, "node1");
  const std::string bounce = "dsn=5.1.1, status=bounced (host said: 550 5.1.1 no such user)";
  std::vector<std::string> lines{
      // Not a Postfix syslog_name, not a Postfix program, no pid.
      delivery("evil/smtp", "to=<bob@example.net>", bounce),
      delivery("postfix/cleanup", "to=<bob@example.net>", bounce),
      std::string("Dec  2 18:00:00 mx1 postfix/smtp: ") + kQid + ": to=<bob@example.net>, relay=none, " + bounce,
      // A Postfix tag quoted in the message of another one (logger -t x 'foo postfix/smtp[1]: ...').
      std::string("Dec  2 18:00:00 mx1 x[1]: foo postfix/smtp[4242]: ") + kQid + ": to=<bob@example.net>, " + bounce,
      std::string("Dec  2 18:00:00 mx1 x foo postfix/smtp[4242]: ") + kQid + ": to=<bob@example.net>, " + bounce,
      // The right tag, but a recipient the message was not submitted to.
      delivery("postfix/smtp", "to=<victim@example.org>", bounce),
      delivery("postfix/smtp", "to=<bob@example.net>, orig_to=<victim@example.org>", bounce),
      std::string("Dec  2 18:00:00 mx1 postfix/qmgr[9]: ") + kQid + ": removed",
  };
  tracker::LogPosition position;
  position.inode = 1;
  position.offset = 100;
  ASSERT_TRUE(recorder.record(lines, &position));
  EXPECT_EQ(events(), 0);
  EXPECT_TRUE(bounced().empty());
  auto done = redis_.command({"HGET", keys_.queueRecord(kQid), "done"});
  ASSERT_TRUE(done);
  EXPECT_EQ(replyString(done->get()), "1");  // the one line from Postfix's qmgr
}

// A syslog daemon that keeps line breaks in messages (syslog-ng without
// flags(no-multi-line), rsyslog with control characters not escaped) writes
// `logger -p mail.info $'x\n<qid>: to=<...>, ... status=bounced'` as a bare
// line: in a log file, a line without a tag is no Postfix line.
TEST_F(RecorderTest, BareLinesInALogFileChangeNothing) {
  tracker::Recorder recorder(config(), redis_, "node1");
  std::vector<std::string> lines{
      "Dec  2 18:00:00 mx1 user[77]: x",
      std::string(kQid) + ": to=<bob@example.net>, relay=none, delay=1, dsn=5.1.1, status=bounced (no such user)"};
  tracker::LogPosition position;
  position.inode = 1;
  position.offset = 100;
  ASSERT_TRUE(recorder.record(lines, &position));
  EXPECT_EQ(events(), 0);
  EXPECT_TRUE(bounced().empty());
}

TEST_F(RecorderTest, RecordedRecipientsOfEveryPostfixInstanceAreTracked) {
  tracker::Recorder recorder(config("tracker_syslog_names = postfix, postfix-out\n"), redis_, "node1");
  std::vector<std::string> lines{
      delivery("postfix/smtp", "to=<Bob@Example.NET>", "dsn=2.0.0, status=sent (250 ok)"),
      // Rewritten by virtual_alias_maps: suppressed under the submitted address.
      delivery("postfix-out/smtp", "to=<real@example.org>, orig_to=<alias@example.com>",
               "dsn=5.1.1, status=bounced (host said: 550 5.1.1 <real@example.org>: Recipient address rejected)"),
      delivery("postfix-in/smtp", "to=<bob@example.net>", "dsn=2.0.0, status=sent (250 ok)"),
      delivery("postfix-out/relay/smtp", "to=<bob@example.net>", "dsn=2.0.0, status=sent (250 ok)"),
  };
  tracker::LogPosition position;
  position.inode = 1;
  position.offset = 100;
  ASSERT_TRUE(recorder.record(lines, &position));
  EXPECT_EQ(events(), 2);
  EXPECT_EQ(bounced(), std::vector<std::string>{"alias@example.com"});
}

TEST_F(RecorderTest, RecordsWithoutRecipientListAreStillTracked) {
  // q: records written by a milter before recipients were recorded (an upgrade with mail in the queue).
  ASSERT_TRUE(redis_.command({"HDEL", keys_.queueRecord(kQid), "rcpts"}));
  tracker::Recorder recorder(config(), redis_, "node1");
  tracker::LogPosition position;
  position.inode = 1;
  position.offset = 100;
  ASSERT_TRUE(recorder.record({delivery("postfix/smtp", "to=<carol@example.net>", "dsn=2.0.0, status=sent (ok)")},
                              &position));
  EXPECT_EQ(events(), 1);
}

// Soft bounces (soft_bounce.h) of one recipient on distinct messages, in
// the tracker's transaction: a message deferred over and over counts once,
// a batch applied but whose reply was lost (given again, also to a
// restarted tracker) does not count again, the suppression is made once.
class RecorderSoftBounceTest : public RecorderTest {
 protected:
  void SetUp() override {
    RecorderTest::SetUp();
    for (const char* qid : kQids) {
      ASSERT_TRUE(redis_.command({"HSET", keys_.queueRecord(qid), "account", "acme", "rcpts", "full@example.net"}));
    }
  }
  static std::string line(const char* qid, const std::string& result) {
    return std::string("Dec  2 18:00:00 mx1 postfix/smtp[4242]: ") + qid +
           ": to=<full@example.net>, relay=mx.example.net[192.0.2.7]:25, delay=1, delays=0/0/0.5/0.5, " + result;
  }
  static std::string full(const char* qid) {
    return line(qid, "dsn=4.2.2, status=deferred (host mx.example.net[192.0.2.7] said: 452 4.2.2 Mailbox full "
                     "(in reply to RCPT TO command))");
  }
  std::vector<Event> suppressed() {
    auto r = redis_.command({"XRANGE", "t:events", "-", "+"});
    std::vector<Event> out;
    for (size_t i = 0; r && i < (*r)->elements; ++i) {
      Event e = eventFromEntry((*r)->element[i]);
      if (e.status == "suppressed") out.push_back(e);
    }
    return out;
  }
  static tracker::LogPosition at(uint64_t offset) {
    tracker::LogPosition p;
    p.inode = 7;
    p.offset = offset;
    return p;
  }
  static constexpr const char* kQids[] = {"5A0000000A", "5A0000000B", "5A0000000C", "5A0000000D"};
};

TEST_F(RecorderSoftBounceTest, DistinctMessagesSuppressOnceAndALostReplyDoesNotCountAgain) {
  ReplyDroppingProxy proxy(server_->port());
  RedisConn conn(proxy.settings());
  tracker::Recorder recorder(config(), conn, "node1");
  std::vector<std::string> first(500, full(kQids[0]));  // one message, 500 retries
  first.push_back(full(kQids[1]));
  auto p1 = at(1000);
  ASSERT_TRUE(recorder.record(first, &p1));
  EXPECT_TRUE(bounced().empty());
  EXPECT_TRUE(suppressed().empty());

  std::vector<std::string> second{full(kQids[1]), full(kQids[2])};
  auto p2 = at(2000);
  proxy.dropReplyTo("EXEC");  // applied, the tracker never hears so
  EXPECT_FALSE(recorder.record(second, &p2));
  EXPECT_EQ(bounced(), std::vector<std::string>{"full@example.net"});
  std::this_thread::sleep_for(std::chrono::milliseconds(150));  // the reconnect backoff after a failure
  auto again = recorder.record(second, &p2);
  ASSERT_TRUE(again) << again.error().message;
  tracker::Recorder restarted(config(), redis_, "node1");
  ASSERT_TRUE(restarted.record(second, &p2));

  auto ev = suppressed();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].queue_id, kQids[2]);
  EXPECT_EQ(ev[0].rcpt, "full@example.net");
  EXPECT_EQ(ev[0].code, "4.2.2");
  EXPECT_EQ(ev[0].text, "soft-bounce-limit");
  EXPECT_EQ(ev[0].account, "acme");
  auto info = redis_.command({"HGET", keys_.bouncedInfo(), "full@example.net"});
  ASSERT_TRUE(info);
  EXPECT_NE(replyString(info->get()).find("\"reason\":\"soft-bounce-limit\""), std::string::npos);
  auto member = redis_.command({"SISMEMBER", keys_.bounced("acme"), "full@example.net"});
  EXPECT_EQ((*member)->integer, 1);
  EXPECT_EQ(stat("deferred"), "503");  // the deferrals themselves are all recorded, as before
  EXPECT_EQ(stat("suppressed"), "");   // the milter's count of recipients it dropped

  // Messages still queued keep being deferred: suppressed once only.
  auto p3 = at(3000);
  ASSERT_TRUE(restarted.record({full(kQids[3]), full(kQids[0])}, &p3));
  EXPECT_EQ(suppressed().size(), 1u);
}

TEST_F(RecorderSoftBounceTest, ADeliveryForgetsTheSoftBounces) {
  tracker::Recorder recorder(config(), redis_, "node1");
  auto p = at(1000);
  ASSERT_TRUE(recorder.record({full(kQids[0]), full(kQids[1]), line(kQids[2], "dsn=2.0.0, status=sent (250 Ok)"),
                               full(kQids[3]), full(kQids[0])},
                              &p));
  EXPECT_TRUE(bounced().empty());
  // Counted after the delivery: kQids[3] and kQids[0] again; one more suppresses.
  auto p2 = at(2000);
  ASSERT_TRUE(recorder.record({full(kQids[1])}, &p2));
  EXPECT_EQ(bounced(), std::vector<std::string>{"full@example.net"});
}

TEST_F(RecorderSoftBounceTest, ZeroLimitCountsNothing) {
  tracker::Recorder recorder(config("soft_bounce_limit = 0\n"), redis_, "node1");
  auto p = at(1000);
  ASSERT_TRUE(recorder.record({full(kQids[0]), full(kQids[1]), full(kQids[2]), full(kQids[3])}, &p));
  EXPECT_TRUE(bounced().empty());
  EXPECT_EQ(integer({"EXISTS", keys_.softBounces("full@example.net")}), 0);
  EXPECT_EQ(events(), 4);
}

}  // namespace

// events_record_test.cc — recordMessage() against a real redis-server: one
// MULTI/EXEC per message (nothing applied when Redis refuses it, exactly
// once when the reply is lost or late), the cap on distinct campaigns a day
// and the shorter life of per-campaign counters, refusals without account.
#include <gtest/gtest.h>

#include "mailgate/events.h"
#include "mailgate/limits.h"
#include "mailgate/store.h"
#include "redis_server.h"

using namespace mailgate;
using mailgate::testing::ReplyDroppingProxy;
using namespace std::chrono_literals;

namespace {

constexpr int64_t kNow = 1767225600000;  // 2026-01-01T00:00:00Z

class RecordMessage : public mailgate::testing::RedisFixture {
 protected:
  void SetUp() override { ASSERT_TRUE(redis_.command({"FLUSHDB"})); }

  static Event event(const std::string& account, const std::string& campaign, const std::string& status,
                     const std::string& rcpt = "r@example.net") {
    Event e;
    e.time_ms = kNow;
    e.queue_id = "4ABC";
    e.account = account;
    e.campaign = campaign;
    e.rcpt = rcpt;
    e.status = status;
    e.code = status == "accepted" ? "250" : "550";
    return e;
  }
  long long integer(const Command& cmd) {
    auto r = redis_.command(cmd);
    EXPECT_TRUE(r) << r.error().message;
    return r ? (*r)->integer : -1;
  }
  std::string field(const std::string& key, const std::string& name) {
    auto r = redis_.command({"HGET", key, name});
    return r ? replyString(r->get()) : "<error>";
  }
  long long events() { return integer({"XLEN", eventsStreamKey(config_)}); }

  Config config_ = parseConfig("redis_prefix = t:\n", "x");
  StoreKeys keys_{"t:"};
  RedisConn redis_{server_->settings()};
  std::string day_ = utcDate(kNow);
};

TEST_F(RecordMessage, CountsEventsAndStatuses) {
  ASSERT_TRUE(recordMessage(redis_, config_,
                            {event("acme", "spring", "accepted", "a@x"), event("acme", "spring", "accepted", "b@x"),
                             event("acme", "spring", "rejected", "c@x")},
                            nullptr));
  EXPECT_EQ(events(), 3);
  EXPECT_EQ(field(keys_.stats("acme", day_), "accepted"), "2");
  EXPECT_EQ(field(keys_.stats("acme", day_), "rejected"), "1");
  EXPECT_EQ(field(keys_.campaignStats("acme", day_), "spring:accepted"), "2");
  EXPECT_EQ(field(keys_.campaignStats("acme", day_), "spring:rejected"), "1");
  EXPECT_EQ(integer({"LLEN", keys_.errors("acme")}), 1);
}

TEST_F(RecordMessage, RefusedByRedisAppliesNothing) {
  // A write Redis refuses (here: out of memory) must not leave half an
  // outcome: with a plain pipeline the DEL of the old q: record and the
  // EXPIREs went through while the XADD and counters did not.
  ASSERT_TRUE(redis_.command({"HSET", keys_.queueRecord("4ABC"), "account", "old"}));
  QueueRecord record{"4ABC", "acme", "k1", "spring", "", "a@x", "", kNow, 1, "<m@x>", {"b@y"}};
  ASSERT_TRUE(redis_.command({"CONFIG", "SET", "maxmemory", "1"}));
  Status st = recordMessage(redis_, config_, {event("acme", "spring", "accepted")}, &record);
  ASSERT_TRUE(redis_.command({"CONFIG", "SET", "maxmemory", "0"}));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, Error::Kind::Server);
  EXPECT_EQ(field(keys_.queueRecord("4ABC"), "account"), "old");
  EXPECT_EQ(events(), 0);
  EXPECT_EQ(integer({"EXISTS", keys_.stats("acme", day_), keys_.campaignStats("acme", day_)}), 0);
}

TEST_F(RecordMessage, LostReplyRecordsExactlyOnce) {
  ReplyDroppingProxy proxy(server_->port());
  RedisConn via_proxy(proxy.settings());
  // The first record loads the script (EVALSHA: NOSCRIPT, then EVAL); the second's reply is lost.
  ASSERT_TRUE(recordMessage(via_proxy, config_, {event("acme", "spring", "accepted")}, nullptr));
  proxy.dropNextReply();
  Status st = recordMessage(via_proxy, config_, {event("acme", "spring", "accepted")}, nullptr);
  EXPECT_FALSE(st);  // the caller cannot know it was recorded: it answers as for a Redis failure
  EXPECT_EQ(events(), 2);
  EXPECT_EQ(field(keys_.stats("acme", day_), "accepted"), "2");
}

// A Redis that stalls (DEBUG SLEEP here; SIGSTOP or a long fork in life) past the
// caller's timeout runs the record when it wakes: it must write nothing then, since
// the caller answered as for a Redis failure (451, and the sender sends it again).
TEST_F(RecordMessage, RecordRunLateAfterATimeoutWritesNothing) {
  RedisConn sleeper(server_->settings(5000ms));
  RedisConn impatient(server_->settings(200ms));
  ASSERT_TRUE(impatient.command({"PING"}));
  std::thread t([&] { (void)sleeper.command({"DEBUG", "SLEEP", "0.6"}); });
  std::this_thread::sleep_for(100ms);
  Status st = recordMessage(impatient, config_, {event("acme", "spring", "accepted")}, nullptr);
  t.join();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, Error::Kind::Timeout);
  EXPECT_EQ(events(), 0);
  EXPECT_EQ(field(keys_.stats("acme", day_), "accepted"), "");
  // The next message on the same connection is recorded normally.
  ASSERT_TRUE(recordMessage(impatient, config_, {event("acme", "spring", "accepted")}, nullptr));
  EXPECT_EQ(events(), 1);
}

// An ACL that refuses TIME: records are written without a deadline (warned once),
// not refused: a missing permission must not stop all mail.
TEST_F(RecordMessage, AServerRefusingTimeStillRecords) {
  ASSERT_TRUE(redis_.command({"ACL", "SETUSER", "default", "-time"}));
  RedisConn fresh(server_->settings());
  Status st = recordMessage(fresh, config_, {event("acme", "spring", "accepted")}, nullptr);
  ASSERT_TRUE(redis_.command({"ACL", "SETUSER", "default", "+time"}));
  EXPECT_TRUE(st) << st.error().message;
  EXPECT_EQ(events(), 1);
}

// Records in time are written, campaign counters too (count_campaign inside the script).
TEST_F(RecordMessage, RecordInTimeIsWrittenWithTheCampaignCounters) {
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(recordMessage(redis_, config_, {event("acme", "spring", "accepted")}, nullptr));
  }
  EXPECT_EQ(events(), 20);
  EXPECT_EQ(field(keys_.campaignStats("acme", day_), "spring:accepted"), "20");
}

TEST_F(RecordMessage, DistinctCampaignsPerDayAreCapped) {
  // A sender putting a UUID in every X-Campaign-Id gets max_campaigns_per_day
  // fields, the rest in one bucket; the account totals stay exact.
  Config capped = parseConfig("redis_prefix = t:\nmax_campaigns_per_day = 3\n", "x");
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(recordMessage(redis_, capped, {event("acme", "c" + std::to_string(i), "accepted")}, nullptr));
  }
  ASSERT_TRUE(recordMessage(redis_, capped, {event("acme", "c1", "accepted"), event("acme", "c9", "bounced")},
                            nullptr));
  ASSERT_TRUE(recordMessage(redis_, capped, {event("other", "c9", "accepted")}, nullptr));  // caps are per account
  std::string cstats = keys_.campaignStats("acme", day_);
  EXPECT_EQ(integer({"HLEN", cstats}), 5);
  EXPECT_EQ(field(cstats, "c0:accepted"), "1");
  EXPECT_EQ(field(cstats, "c1:accepted"), "2");
  EXPECT_EQ(field(cstats, "c2:accepted"), "1");
  EXPECT_EQ(field(cstats, "_other:accepted"), "7");
  EXPECT_EQ(field(cstats, "_other:bounced"), "1");
  EXPECT_EQ(integer({"SCARD", keys_.campaigns("acme", day_)}), 3);
  EXPECT_EQ(field(keys_.stats("acme", day_), "accepted"), "11");
  EXPECT_EQ(integer({"HLEN", keys_.stats("acme", day_)}), 2);  // totals only: accepted, bounced
  EXPECT_EQ(field(keys_.campaignStats("other", day_), "c9:accepted"), "1");
}

TEST_F(RecordMessage, CampaignCountersExpireBeforeTotals) {
  Config c = parseConfig("redis_prefix = t:\ncampaign_stats_days = 7\n", "x");
  ASSERT_TRUE(recordMessage(redis_, c, {event("acme", "spring", "accepted")}, nullptr));
  EXPECT_EQ(integer({"TTL", keys_.stats("acme", day_)}), 400 * 86400);
  EXPECT_EQ(integer({"TTL", keys_.campaignStats("acme", day_)}), 7 * 86400);
  EXPECT_EQ(integer({"TTL", keys_.campaigns("acme", day_)}), 7 * 86400);
}

TEST_F(RecordMessage, RefusalsWithoutAccountAreCountedNotStreamed) {
  // 530s to scanners would push customers' events out of the capped stream.
  Event scan = event("", "", "rejected");
  scan.code = "530";
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(recordRefusal(redis_, config_, scan));
  EXPECT_EQ(events(), 0);
  EXPECT_EQ(field(keys_.refusedWithoutAccount(day_), "530"), "3");
  EXPECT_EQ(integer({"TTL", keys_.refusedWithoutAccount(day_)}), 400 * 86400);
  ASSERT_TRUE(recordRefusal(redis_, config_, event("acme", "", "rejected")));
  EXPECT_EQ(events(), 1);
}

}  // namespace

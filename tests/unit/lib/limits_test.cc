// limits_test.cc — the rate/quota script against a real redis-server: the
// GCRA admits the configured rate (counted over time, not timed) from 1/h to
// 50,000/s, refuses the excess without consuming, per-key rates, and the
// daily quota.
#include "mailgate/limits.h"

#include "mailgate/events.h"
#include "redis_server.h"

using namespace mailgate;
using mailgate::testing::RedisServer;
using namespace std::chrono_literals;

namespace {

class LimitsTest : public mailgate::testing::RedisFixture {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis_.command({"FLUSHALL"}));
    account_.name = "acme";
    account_.exists = true;
    account_.state = AccountState::Active;
  }
  LimitResult consume(const std::string& key_id = "k1") {
    auto r = consumeMessage(redis_, keys_, account_, key_id, "20261125");
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : LimitResult::Ok;
  }

  RedisConn redis_{server_->settings()};
  StoreKeys keys_{"mg:"};
  AccountPolicy account_;
};

TEST_F(LimitsTest, NoLimitsNoRedisWork) {
  for (int i = 0; i < 100; ++i) EXPECT_EQ(consume(), LimitResult::Ok);
  auto keys = redis_.command({"DBSIZE"});
  EXPECT_EQ((*keys)->integer, 0);
}

TEST_F(LimitsTest, GcraAdmitsTheRateOverTimeAndRefusesTheExcess) {
  account_.limits.rate = Rate{10, 1000};  // 10/s, burst 10
  int admitted = 0, refused = 0;
  auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < 2s) {
    (consume() == LimitResult::Ok ? admitted : refused)++;
    std::this_thread::sleep_for(5ms);
  }
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Burst of 10, then 10 per second: about 30 in 2 s.
  EXPECT_GE(admitted, 10 + static_cast<int>(10 * elapsed) - 2) << "elapsed " << elapsed;
  EXPECT_LE(admitted, 10 + static_cast<int>(10 * elapsed) + 2) << "elapsed " << elapsed;
  EXPECT_GT(refused, 100);
}

// From a fresh state a rate of N per period admits exactly its burst (N)
// plus what the elapsed time earns: calls made within E seconds admit at most
// N + floor(rate * E) (the calls' Redis times lie inside the measured window)
// and at least min(calls, N). The calls are pipelined so that they outrun
// even 50,000/s; on a machine too slow for that the upper bound still holds.
struct RateCase {
  Rate rate;
  int calls;
};
void PrintTo(const RateCase& c, std::ostream* os) { *os << formatRate(c.rate) << ", " << c.calls << " calls"; }

class GcraRates : public LimitsTest, public ::testing::WithParamInterface<RateCase> {};

TEST_P(GcraRates, AdmitsTheBurstPlusTheElapsedTimeAndNoMore) {
  const RateCase& c = GetParam();
  account_.limits.rate = c.rate;
  auto call = limitCall(keys_, account_, "k1", "20261125");
  ASSERT_TRUE(call);
  ASSERT_TRUE(redis_.command({"SCRIPT", "LOAD", limitScript().source}));
  Command evalsha{"EVALSHA", limitScript().sha1, std::to_string(call->keys.size())};
  evalsha.insert(evalsha.end(), call->keys.begin(), call->keys.end());
  evalsha.insert(evalsha.end(), call->args.begin(), call->args.end());
  constexpr int kBatch = 5000;
  int admitted = 0, refused = 0;
  auto start = std::chrono::steady_clock::now();
  for (int done = 0; done < c.calls; done += kBatch) {
    auto replies = redis_.pipeline(std::vector<Command>(std::min(kBatch, c.calls - done), evalsha));
    ASSERT_TRUE(replies) << replies.error().message;
    for (const Reply& r : *replies) {
      auto outcome = limitOutcome(r.get());
      ASSERT_TRUE(outcome) << outcome.error().message;
      (*outcome == LimitResult::Ok ? admitted : refused)++;
    }
  }
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double per_second = static_cast<double>(c.rate.count) * 1000.0 / static_cast<double>(c.rate.period_ms);
  int burst = static_cast<int>(c.rate.count);
  EXPECT_GE(admitted, std::min(c.calls, burst)) << "elapsed " << elapsed;
  EXPECT_LE(admitted, burst + static_cast<int>(per_second * elapsed)) << "elapsed " << elapsed << " s";
  EXPECT_EQ(admitted + refused, c.calls);
}

INSTANTIATE_TEST_SUITE_P(Rates, GcraRates,
                         ::testing::Values(RateCase{Rate{1, 3600000}, 5}, RateCase{Rate{10, 1000}, 40},
                                           RateCase{Rate{800, 1000}, 3000}, RateCase{Rate{5000, 1000}, 20000},
                                           RateCase{Rate{50000, 1000}, 200000}),
                         [](const ::testing::TestParamInfo<RateCase>& info) {
                           return std::to_string(info.param.rate.count) +
                                  (info.param.rate.period_ms == 1000 ? "PerSecond" : "PerHour");
                         });

TEST_F(LimitsTest, PerKeyRateOnlyForThatKey) {
  account_.limits.key_rates["k1"] = Rate{2, 60000};
  EXPECT_EQ(consume("k1"), LimitResult::Ok);
  EXPECT_EQ(consume("k1"), LimitResult::Ok);
  EXPECT_EQ(consume("k1"), LimitResult::RateLimited);
  EXPECT_EQ(consume("k2"), LimitResult::Ok);
  EXPECT_EQ(consume(""), LimitResult::Ok);
}

TEST_F(LimitsTest, DailyQuotaCountsOnlyAdmittedMessages) {
  account_.limits.daily = 3;
  account_.limits.rate = Rate{2, 60000};
  EXPECT_EQ(consume(), LimitResult::Ok);
  EXPECT_EQ(consume(), LimitResult::Ok);
  EXPECT_EQ(consume(), LimitResult::RateLimited);  // refused by rate: not counted
  auto count = redis_.command({"GET", "mg:quota:{acme}:20261125"});
  EXPECT_EQ(replyString(count->get()), "2");
  account_.limits.rate = Rate{};
  EXPECT_EQ(consume(), LimitResult::Ok);
  EXPECT_EQ(consume(), LimitResult::QuotaExceeded);
  auto ttl = redis_.command({"TTL", "mg:quota:{acme}:20261125"});
  EXPECT_GT((*ttl)->integer, 86400);
}

TEST_F(LimitsTest, Verdicts) {
  EXPECT_EQ(limitVerdict(LimitResult::RateLimited).reply, "451 4.7.1 rate limit exceeded, try again later");
  EXPECT_EQ(limitVerdict(LimitResult::QuotaExceeded).reply, "452 4.5.3 daily quota exceeded");
  EXPECT_EQ(limitVerdict(LimitResult::Ok).action, Action::Dunno);
  EXPECT_EQ(utcDay(0), "19700101");
  EXPECT_EQ(utcDate(86400000), "1970-01-02");
}

TEST_F(LimitsTest, RefusalsAreRecorded) {
  Config config = parseConfig("", "x");
  Event e;
  e.time_ms = 86400000;
  e.account = "acme";
  e.rcpt = "b@example.net";
  setRefusal(e, "550 5.0.0 Email is in the account stoplist");
  EXPECT_EQ(e.status, "rejected");
  EXPECT_EQ(e.code, "550");
  EXPECT_EQ(e.text, "5.0.0 Email is in the account stoplist");
  for (int i = 0; i < 105; ++i) ASSERT_TRUE(recordRefusal(redis_, config, e));
  auto stats = redis_.command({"HGET", "mg:stats:{acme}:1970-01-02", "rejected"});
  EXPECT_EQ(replyString(stats->get()), "105");
  auto len = redis_.command({"LLEN", "mg:acct:{acme}:errors"});
  EXPECT_EQ((*len)->integer, 100);
  auto errors = latestErrors(redis_, config, "acme", 5);
  ASSERT_TRUE(errors);
  ASSERT_EQ(errors->size(), 5u);
  EXPECT_EQ((*errors)[0].text, "5.0.0 Email is in the account stoplist");
  EXPECT_EQ((*errors)[0].rcpt, "b@example.net");
  Event t;
  setRefusal(t, "451 4.7.1 rate limit exceeded, try again later");
  EXPECT_EQ(t.status, "tempfailed");
}

}  // namespace

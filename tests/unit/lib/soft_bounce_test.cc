// soft_bounce_test.cc — the soft-bounce script against a real redis-server:
// distinct messages of one kind within the window suppress at the limit
// (bounce sets, bounced:info, one `suppressed` event), the same message
// counts once, kinds count apart, old ones age out, the counter expires, an
// address suppressed already is left alone, a reset forgets; the config keys.
#include "mailgate/soft_bounce.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "mailgate/store.h"
#include "redis_server.h"

namespace mailgate {
namespace {

constexpr int64_t kDay = 86400 * 1000;
constexpr int64_t kNow = 1764700000000;  // 2025-12-02

class SoftBounceTest : public testing::RedisFixture {
 protected:
  void SetUp() override { ASSERT_TRUE(redis_.command({"FLUSHDB"})); }

  static Config config(const std::string& extra = "") { return parseConfig("redis_prefix = t:\n" + extra, "x"); }

  static SoftBounce bounce(const std::string& qid, int64_t time_ms, const std::string& kind = "4.2",
                           const std::string& dsn = "4.2.2") {
    SoftBounce b;
    b.address = "full@example.net";
    b.kind = kind;
    b.event.time_ms = time_ms;
    b.event.queue_id = qid;
    b.event.account = "acme";
    b.event.campaign = "spring";
    b.event.rcpt = "Full@example.net";
    b.event.status = "suppressed";
    b.event.code = dsn;
    b.event.text = kSoftBounceReason;
    return b;
  }

  long long run(const Config& c, const SoftBounce& b) {
    auto r = redis_.command(softBounceCommand(c, b));
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    if (!r) return -1;
    EXPECT_EQ((*r)->type, REDIS_REPLY_INTEGER) << replyString(r->get());
    return (*r)->integer;
  }
  long long integer(const Command& cmd) {
    auto r = redis_.command(cmd);
    return r ? (*r)->integer : -1;
  }
  bool bounced(const std::string& set) { return integer({"SISMEMBER", set, "full@example.net"}) == 1; }
  std::vector<Event> events() {
    auto r = redis_.command({"XRANGE", "t:events", "-", "+"});
    std::vector<Event> out;
    for (size_t i = 0; r && i < (*r)->elements; ++i) out.push_back(eventFromEntry((*r)->element[i]));
    return out;
  }

  StoreKeys keys_{"t:"};
  RedisConn redis_{server_->settings()};
};

TEST_F(SoftBounceTest, DistinctMessagesWithinTheWindowSuppressAtTheLimit) {
  Config c = config();
  EXPECT_EQ(run(c, bounce("AAAAAA1", kNow)), 1);
  // The same message deferred again (every retry) counts once.
  for (int i = 0; i < 100; ++i) EXPECT_EQ(run(c, bounce("AAAAAA1", kNow + i)), 1);
  EXPECT_EQ(run(c, bounce("AAAAAA2", kNow + 1000)), 2);
  EXPECT_FALSE(bounced(keys_.bouncedGlobal()));
  EXPECT_TRUE(events().empty());
  // The counter lives a window after the last soft bounce, no longer.
  long long ttl = integer({"PTTL", keys_.softBounces("full@example.net")});
  EXPECT_GT(ttl, 7 * kDay - 60000);
  EXPECT_LE(ttl, 7 * kDay);

  EXPECT_EQ(run(c, bounce("AAAAAA3", kNow + 2000, "4.2", "4.2.0")), 3);
  EXPECT_TRUE(bounced(keys_.bouncedGlobal()));
  EXPECT_TRUE(bounced(keys_.bounced("acme")));
  auto info = redis_.command({"HGET", keys_.bouncedInfo(), "full@example.net"});
  ASSERT_TRUE(info);
  auto j = nlohmann::json::parse(replyString(info->get()));
  EXPECT_EQ(j["reason"], "soft-bounce-limit");
  EXPECT_EQ(j["dsn"], "4.2.0");
  EXPECT_EQ(j["qid"], "AAAAAA3");
  EXPECT_EQ(j["account"], "acme");
  EXPECT_EQ(j["time"], kNow + 2000);
  auto ev = events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].status, "suppressed");
  EXPECT_EQ(ev[0].text, "soft-bounce-limit");
  EXPECT_EQ(ev[0].code, "4.2.0");
  EXPECT_EQ(ev[0].queue_id, "AAAAAA3");
  EXPECT_EQ(ev[0].rcpt, "Full@example.net");
  EXPECT_EQ(ev[0].campaign, "spring");
  EXPECT_EQ(integer({"EXISTS", keys_.softBounces("full@example.net")}), 0);

  // Suppressed already (messages still queued keep being deferred): nothing more.
  EXPECT_EQ(run(c, bounce("AAAAAA4", kNow + 3000)), 0);
  EXPECT_EQ(run(c, bounce("AAAAAA5", kNow + 3000)), 0);
  EXPECT_EQ(run(c, bounce("AAAAAA6", kNow + 3000)), 0);
  EXPECT_EQ(events().size(), 1u);
  EXPECT_EQ(integer({"EXISTS", keys_.softBounces("full@example.net")}), 0);
}

TEST_F(SoftBounceTest, KindsCountApartAndOldOnesAgeOut) {
  Config c = config("soft_bounce_limit = 2\nsoft_bounce_window = 1d\n");
  EXPECT_EQ(run(c, bounce("BBBBBB1", kNow, "4.1", "4.1.1")), 1);
  EXPECT_EQ(run(c, bounce("BBBBBB2", kNow, "expired", "4.4.7")), 1);
  EXPECT_EQ(run(c, bounce("BBBBBB3", kNow + 1, "4.2")), 1);
  EXPECT_FALSE(bounced(keys_.bouncedGlobal()));
  // A day later the first ones are out of the window.
  EXPECT_EQ(run(c, bounce("BBBBBB4", kNow + kDay + 10, "4.1", "4.1.1")), 1);
  EXPECT_EQ(run(c, bounce("BBBBBB5", kNow + kDay + 10, "expired", "4.4.7")), 1);
  EXPECT_FALSE(bounced(keys_.bouncedGlobal()));
  // A message still retried within the window stays in it (its last time counts).
  EXPECT_EQ(run(c, bounce("BBBBBB4", kNow + 2 * kDay, "4.1", "4.1.1")), 1);
  EXPECT_EQ(run(c, bounce("BBBBBB6", kNow + 2 * kDay, "4.1", "4.1.1")), 2);
  EXPECT_TRUE(bounced(keys_.bouncedGlobal()));
  ASSERT_EQ(events().size(), 1u);
  EXPECT_EQ(events()[0].code, "4.1.1");
}

TEST_F(SoftBounceTest, AResetForgetsAndAHardBounceWins) {
  Config c = config();
  EXPECT_EQ(run(c, bounce("CCCCCC1", kNow)), 1);
  EXPECT_EQ(run(c, bounce("CCCCCC2", kNow)), 2);
  ASSERT_TRUE(redis_.command(softBounceResetCommand(c, "full@example.net")));  // delivered
  EXPECT_EQ(run(c, bounce("CCCCCC3", kNow)), 1);
  // Suppressed by a hard bounce in the meantime: its entry stays as it was.
  ASSERT_TRUE(redis_.command({"SADD", keys_.bouncedGlobal(), "full@example.net"}));
  ASSERT_TRUE(redis_.command({"HSET", keys_.bouncedInfo(), "full@example.net", "{\"dsn\":\"5.1.1\"}"}));
  EXPECT_EQ(run(c, bounce("CCCCCC4", kNow)), 0);
  EXPECT_EQ(run(c, bounce("CCCCCC5", kNow)), 0);
  auto info = redis_.command({"HGET", keys_.bouncedInfo(), "full@example.net"});
  EXPECT_EQ(replyString(info->get()), "{\"dsn\":\"5.1.1\"}");
  EXPECT_TRUE(events().empty());
}

TEST(SoftBounceConfig, DefaultsLimitsAndOff) {
  Config d = parseConfig("", "x");
  EXPECT_EQ(d.soft_bounce_limit, 3u);
  EXPECT_EQ(d.soft_bounce_window, std::chrono::milliseconds(7 * kDay));
  EXPECT_TRUE(softBouncesSuppress(d));
  EXPECT_FALSE(softBouncesSuppress(parseConfig("soft_bounce_limit = 0\n", "x")));
  EXPECT_FALSE(softBouncesSuppress(parseConfig("soft_bounce_window = 0\n", "x")));
  EXPECT_EQ(parseConfig("soft_bounce_limit = 1000\nsoft_bounce_window = 365d\n", "x").soft_bounce_limit, 1000u);
  for (const char* bad : {"soft_bounce_limit = 1001\n", "soft_bounce_limit = -1\n", "soft_bounce_limit = x\n",
                          "soft_bounce_window = 500ms\n", "soft_bounce_window = 366d\n",
                          "soft_bounce_window = 1w\n"}) {
    EXPECT_THROW(parseConfig(bad, "x"), ConfigError) << bad;
  }
}

}  // namespace
}  // namespace mailgate

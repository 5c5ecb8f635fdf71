// webhooks_test.cc — the webhook dispatcher against a real redis-server:
// pending entries the events stream lost to its cap are dead-lettered
// (webhook:dead:trimmed) and acknowledged, not dropped silently.
#include "webhooks.h"

#include <gtest/gtest.h>

#include "mailgate/store.h"
#include "../lib/redis_server.h"

using namespace mailgate;
using namespace std::chrono_literals;

namespace {

class WebhookDispatcherTest : public mailgate::testing::RedisFixture {};

TEST_F(WebhookDispatcherTest, PendingEntriesTrimmedAwayAreDeadLettered) {
  LiveConfig live(parseConfig("redis_server = tcp:127.0.0.1:" + std::to_string(server_->port()) +
                                  "\nredis_prefix = t:\n",
                              "x"));
  StoreKeys keys("t:");
  std::string stream = eventsStreamKey(*live.get());
  RedisConn redis(server_->settings());
  ASSERT_TRUE(redis.command({"FLUSHDB"}));
  ASSERT_TRUE(redis.command({"XGROUP", "CREATE", stream, kWebhookGroup, "$", "MKSTREAM"}));
  ASSERT_TRUE(redis.command({"HSET", keys.account("acme"), "state", "active", "webhook_url",
                             "http://127.0.0.1:" + std::to_string(mailgate::testing::freePort()) + "/"}));
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto id = redis.command({"XADD", stream, "*", "account", "acme", "status", "delivered"});
    ASSERT_TRUE(id);
    ids.push_back(replyString(id->get()));
  }
  // Read by this tracker before it stopped, then trimmed while pending.
  ASSERT_TRUE(redis.command({"XREADGROUP", "GROUP", kWebhookGroup, "node1", "COUNT", "10", "STREAMS", stream, ">"}));
  ASSERT_TRUE(redis.command({"XTRIM", stream, "MAXLEN", "0"}));

  tracker::WebhookDispatcher dispatcher(live, "node1");
  std::atomic<bool> stop{false};
  std::thread t([&] { dispatcher.run(stop); });
  std::string dead = keys.webhookDeadTrimmed();
  for (int i = 0; i < 100 && (*redis.command({"XLEN", dead}))->integer < 3; ++i) std::this_thread::sleep_for(50ms);
  stop = true;
  t.join();

  auto entries = redis.command({"XRANGE", dead, "-", "+"});
  ASSERT_TRUE(entries);
  ASSERT_EQ((*entries)->elements, 3u);
  for (size_t i = 0; i < 3; ++i) {
    const redisReply* fields = (*entries)->element[i]->element[1];
    EXPECT_EQ(hashField(fields, "id"), ids[i]);
    EXPECT_EQ(hashField(fields, "error"), "trimmed");
  }
  auto pending = redis.command({"XPENDING", stream, kWebhookGroup});
  ASSERT_TRUE(pending);
  EXPECT_EQ((*pending)->element[0]->integer, 0);
}

}  // namespace

// webhooks_test.cc — the webhook dispatcher against a real redis-server:
// entries the events stream lost to its cap, pending or never read, are
// dead-lettered (webhook:dead:trimmed) once and logged, not dropped silently.
#include "webhooks.h"

#include <functional>
#include <gtest/gtest.h>

#include "mailgate/store.h"
#include "../lib/redis_server.h"

using namespace mailgate;
using namespace std::chrono_literals;

namespace {

class WebhookDispatcherTest : public mailgate::testing::RedisFixture {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis_.command({"FLUSHDB"}));
    ASSERT_TRUE(redis_.command({"XGROUP", "CREATE", stream_, kWebhookGroup, "$", "MKSTREAM"}));
    ASSERT_TRUE(redis_.command({"HSET", keys_.account("acme"), "state", "active", "webhook_url",
                                "http://127.0.0.1:" + std::to_string(mailgate::testing::freePort()) + "/"}));
  }
  void TearDown() override { EXPECT_TRUE(redis_.command({"ACL", "SETUSER", "default", "+@all"})); }
  std::vector<std::string> add(int n) {
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) {
      auto id = redis_.command({"XADD", stream_, "*", "account", "acme", "status", "delivered"});
      EXPECT_TRUE(id);
      ids.push_back(replyString(id->get()));
    }
    return ids;
  }
  long long len(const std::string& key) { return (*redis_.command({"XLEN", key}))->integer; }
  // Runs a dispatcher until `done` holds (at most 5 s), then for `extra` more.
  void runUntil(const std::function<bool()>& done, std::chrono::milliseconds extra = 0ms) {
    tracker::WebhookDispatcher dispatcher(live_, "node1");
    std::atomic<bool> stop{false};
    std::thread t([&] { dispatcher.run(stop); });
    for (int i = 0; i < 100 && !done(); ++i) std::this_thread::sleep_for(50ms);
    std::this_thread::sleep_for(extra);
    stop = true;
    t.join();
  }

  LiveConfig live_{parseConfig("redis_server = tcp:127.0.0.1:" + std::to_string(server_->port()) +
                                   "\nredis_prefix = t:\n",
                               "x")};
  StoreKeys keys_{"t:"};
  std::string stream_ = eventsStreamKey(*live_.get());
  std::string dead_ = keys_.webhookDeadTrimmed();
  RedisConn redis_{server_->settings()};
};

TEST_F(WebhookDispatcherTest, PendingEntriesTrimmedAwayAreDeadLettered) {
  auto ids = add(3);
  // Read by this tracker before it stopped, then trimmed while pending.
  ASSERT_TRUE(redis_.command({"XREADGROUP", "GROUP", kWebhookGroup, "node1", "COUNT", "10", "STREAMS", stream_, ">"}));
  ASSERT_TRUE(redis_.command({"XTRIM", stream_, "MAXLEN", "0"}));

  runUntil([&] { return len(dead_) >= 3; });

  auto entries = redis_.command({"XRANGE", dead_, "-", "+"});
  ASSERT_TRUE(entries);
  ASSERT_EQ((*entries)->elements, 3u);
  for (size_t i = 0; i < 3; ++i) {
    const redisReply* fields = (*entries)->element[i]->element[1];
    EXPECT_EQ(hashField(fields, "id"), ids[i]);
    EXPECT_EQ(hashField(fields, "error"), "trimmed");
  }
  auto pending = redis_.command({"XPENDING", stream_, kWebhookGroup});
  ASSERT_TRUE(pending);
  EXPECT_EQ((*pending)->element[0]->integer, 0);
}

TEST_F(WebhookDispatcherTest, EntriesTrimmedBeforeAnyReadAreDeadLetteredOnce) {
  auto done = add(2);  // read and delivered before the backlog
  ASSERT_TRUE(redis_.command({"XREADGROUP", "GROUP", kWebhookGroup, "node1", "COUNT", "10", "STREAMS", stream_, ">"}));
  ASSERT_TRUE(redis_.command({"XACK", stream_, kWebhookGroup, done[0], done[1]}));
  auto read = redis_.command({"XINFO", "GROUPS", stream_});
  std::string last = hashField((*read)->element[0], "last-delivered-id");
  auto lost = add(5);
  auto kept = add(2);  // still in the stream after the trim
  ASSERT_TRUE(redis_.command({"XTRIM", stream_, "MAXLEN", "2"}));

  ::testing::internal::CaptureStderr();
  runUntil([&] { return len(dead_) > 0; }, 1500ms);  // later rounds must not report it again
  std::string log = ::testing::internal::GetCapturedStderr();
  auto entries = redis_.command({"XRANGE", dead_, "-", "+"});
  ASSERT_TRUE(entries);
  ASSERT_EQ((*entries)->elements, 1u);
  const redisReply* fields = (*entries)->element[0]->element[1];
  std::string from = hashField(fields, "from"), to = hashField(fields, "to");
  // Stream ids in id order ("ms-seq": "5-18446744073709551615" < "6-0").
  auto id = [](const std::string& text) {
    size_t dash = text.find('-');
    return std::pair(std::stoull(text.substr(0, dash)), std::stoull(text.substr(dash + 1)));
  };
  EXPECT_GT(id(from), id(last)) << from;
  EXPECT_LE(id(from), id(lost.front())) << from;
  EXPECT_GE(id(to), id(lost.back())) << to;
  EXPECT_LT(id(to), id(kept.front())) << to;
  EXPECT_EQ(hashField(fields, "count"), "5");
  EXPECT_EQ(hashField(fields, "error"), "trimmed-unread");
  size_t lines = 0;
  for (size_t at = 0; (at = log.find("trimmed from", at)) != std::string::npos; ++at) ++lines;
  EXPECT_EQ(lines, 1u) << log;
  EXPECT_NE(log.find(from + " to " + to + " (5 entries)"), std::string::npos) << log;

  // A tracker started afterwards finds nothing new to report.
  runUntil([] { return true; }, 1000ms);
  EXPECT_EQ(len(dead_), 1);
}

TEST_F(WebhookDispatcherTest, TrimmedPendingEntriesSurviveARefusedDeadLetterWrite) {
  auto ids = add(3);
  ASSERT_TRUE(redis_.command({"XREADGROUP", "GROUP", kWebhookGroup, "node1", "COUNT", "10", "STREAMS", stream_, ">"}));
  ASSERT_TRUE(redis_.command({"XTRIM", stream_, "MAXLEN", "0"}));
  // Redis refuses the dead-letter XADD (as when out of memory) but not XACK.
  ASSERT_TRUE(redis_.command({"ACL", "SETUSER", "default", "-xadd"}));
  tracker::WebhookDispatcher dispatcher(live_, "node1");
  std::atomic<bool> stop{false};
  std::thread t([&] { dispatcher.run(stop); });
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(len(dead_), 0);
  ASSERT_TRUE(redis_.command({"ACL", "SETUSER", "default", "+xadd"}));
  for (int i = 0; i < 100 && len(dead_) < 3; ++i) std::this_thread::sleep_for(50ms);
  std::this_thread::sleep_for(500ms);
  stop = true;
  t.join();
  EXPECT_EQ(len(dead_), 3);  // kept until written, and written once
  auto pending = redis_.command({"XPENDING", stream_, kWebhookGroup});
  EXPECT_EQ((*pending)->element[0]->integer, 0);
}

}  // namespace

// webhooks_test.cc — the webhook dispatcher against a real redis-server:
// entries the events stream lost to its cap, pending or never read, are
// dead-lettered (webhook:dead:trimmed) once and logged, not dropped silently;
// a dead endpoint with a backlog larger than memory may hold delays no other
// account, and gets each of its events once when it is back (also after a
// restart); a dead tracker's events are taken over and a read whose reply
// was lost is read back, whatever dead endpoints hold; a URL's query never
// reaches the log.
#include "webhooks.h"

#include <functional>
#include <gtest/gtest.h>
#include <iostream>
#include <set>

#include "mailgate/store.h"
#include "../lib/http_receiver.h"
#include "../lib/redis_server.h"

using namespace mailgate;
using namespace std::chrono_literals;

namespace {

// Waits until count() reaches `target`, giving up only when it stopped
// growing for `stall` (a loaded CI machine or ASan slows delivery; a lost or
// stuck event stops it). True when the target was reached.
bool waitWhileGrowing(const std::function<size_t()>& count, size_t target, std::chrono::milliseconds stall = 10s) {
  size_t last = count();
  auto moved = std::chrono::steady_clock::now();
  while (last < target) {
    std::this_thread::sleep_for(50ms);
    size_t now = count();
    if (now != last) {
      last = now;
      moved = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - moved > stall) {
      return false;
    }
  }
  return true;
}

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

  std::string configText() const {
    return "redis_server = tcp:127.0.0.1:" + std::to_string(server_->port()) +
           "\nredis_prefix = t:\nwebhook_allow_networks = 127.0.0.0/8\n";
  }
  LiveConfig live_{parseConfig(configText(), "x")};
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

TEST_F(WebhookDispatcherTest, NonPublicEndpointIsRefusedWithOneTextAndNoUrlTokenInTheLog) {
  mailgate::testing::HttpReceiver listener;
  ASSERT_TRUE(redis_.command({"HSET", keys_.account("acme"), "webhook_url",
                              listener.url("/hook/abc?token=SECRETTOKEN"), "webhook_secret", "s"}));
  add(2);
  // No webhook_allow_networks: 127.0.0.1 is refused.
  LiveConfig config{parseConfig("redis_server = tcp:127.0.0.1:" + std::to_string(server_->port()) +
                                    "\nredis_prefix = t:\nwebhook_retry_initial = 50ms\nwebhook_retry_max = 100ms\n"
                                    "webhook_retry_for = 1s\n",
                                "x")};
  ::testing::internal::CaptureStderr();
  {
    tracker::WebhookDispatcher dispatcher(config, "node1");
    std::atomic<bool> stop{false};
    std::thread t([&] { dispatcher.run(stop); });
    for (int i = 0; i < 200 && len(keys_.webhookDead("acme")) < 2; ++i) std::this_thread::sleep_for(50ms);
    stop = true;
    t.join();
  }
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(listener.accepts(), 0u);
  auto failures = redis_.command({"XRANGE", keys_.webhookDead("acme"), "-", "+"});
  ASSERT_TRUE(failures);
  ASSERT_EQ((*failures)->elements, 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(hashField((*failures)->element[i]->element[1], "error"), kWebhookAddressRefused);
  }
  EXPECT_EQ(log.find("SECRETTOKEN"), std::string::npos) << log;
  EXPECT_EQ(log.find("token="), std::string::npos) << log;
  EXPECT_EQ(log.find("/abc"), std::string::npos) << log;
  EXPECT_NE(log.find("POST http://127.0.0.1:" + std::to_string(listener.port()) + "/hook... failed (" +
                     kWebhookAddressRefused + ")"),
            std::string::npos)
      << log;
}

TEST_F(WebhookDispatcherTest, ADeadEndpointDelaysNoOtherAccountAndGetsEachEventOnceWhenBack) {
  auto started = std::chrono::steady_clock::now();
  auto seconds = [](std::chrono::steady_clock::time_point since) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
  };
  uint16_t dead_port = mailgate::testing::freePort();  // nothing listens: connection refused
  mailgate::testing::HttpReceiver live;
  ASSERT_TRUE(redis_.command({"HSET", keys_.account("dead"), "state", "active", "webhook_url",
                              "http://127.0.0.1:" + std::to_string(dead_port) + "/hook", "webhook_secret", "s1"}));
  ASSERT_TRUE(redis_.command({"HSET", keys_.account("live"), "state", "active", "webhook_url", live.url(),
                              "webhook_secret", "s2"}));
  // 60,000 events: 50,000 of the dead account (more than the old shared cap
  // of 50,000), then 5,000 of each, interleaved.
  std::set<std::string> dead_ids, live_ids;
  std::vector<Command> batch;
  std::vector<std::string> accounts;
  auto flush = [&] {
    auto r = redis_.pipeline(batch);
    ASSERT_TRUE(r);
    for (size_t i = 0; i < r->size(); ++i) (accounts[i] == "dead" ? dead_ids : live_ids).insert(replyString((*r)[i].get()));
    batch.clear();
    accounts.clear();
  };
  for (int i = 0; i < 60000; ++i) {
    std::string account = i < 50000 || i % 2 == 0 ? "dead" : "live";
    batch.push_back({"XADD", stream_, "*", "account", account, "status", "delivered", "rcpt",
                     "r" + std::to_string(i) + "@example.net"});
    accounts.push_back(account);
    if (batch.size() == 1000) flush();
  }
  ASSERT_EQ(dead_ids.size(), 55000u);
  ASSERT_EQ(live_ids.size(), 5000u);
  std::cout << "[ timing   ] 60000 events added in " << seconds(started) << " s\n";

  LiveConfig live_config{parseConfig(configText() +
                                         "webhook_max_held_per_account = 1000\nwebhook_batch_size = 500\n"
                                         "webhook_retry_initial = 50ms\nwebhook_retry_max = 200ms\n",
                                     "x")};
  ::testing::internal::CaptureStderr();
  tracker::WebhookDispatcher dispatcher(live_config, "node1");
  std::atomic<bool> stop{false};
  std::thread t([&] { dispatcher.run(stop); });
  auto waitFor = [](const std::function<bool()>& done, double limit) {
    auto since = std::chrono::steady_clock::now();
    while (!done() && std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count() < limit) {
      std::this_thread::sleep_for(20ms);
    }
    return done();
  };
  auto run_started = std::chrono::steady_clock::now();
  // ASan as CI runs it (fast_unwind_on_malloc=0) makes every allocation ~8x
  // slower: the 50,000 dead events before the live ones take that much longer
  // to read past, so the limits (not the assertions) scale with it; TSan
  // likewise (CI: 48,500 of 55,000 in the unscaled 40 s on a loaded machine).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  const double slow = 8;
#else
  const double slow = 1;
#endif
  bool live_done = waitFor([&] { return live.idCount() >= 5000; }, 20 * slow);
  double live_seconds = seconds(run_started);
  std::cout << "[ timing   ] the live account's 5000 events delivered in " << live_seconds << " s\n";
  EXPECT_TRUE(live_done) << live.idCount() << " of 5000 live events delivered";
  auto got = live.ids();
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()), live_ids);
  EXPECT_EQ(got.size(), 5000u);
  // The dead account's events all wait in Redis: pending, none dead-lettered.
  auto pending = [&] { return (*redis_.command({"XPENDING", stream_, kWebhookGroup}))->element[0]->integer; };
  EXPECT_TRUE(waitFor([&] { return pending() == 55000; }, 5 * slow)) << pending();
  EXPECT_EQ(len(keys_.webhookDead("dead")), 0);

  mailgate::testing::HttpReceiver back(dead_port);
  auto back_started = std::chrono::steady_clock::now();
  bool back_done = waitFor([&] { return back.idCount() >= 55000; }, 40 * slow);
  std::cout << "[ timing   ] the dead account's 55000 events delivered " << seconds(back_started)
            << " s after its endpoint came back\n";
  EXPECT_TRUE(back_done) << back.idCount() << " of 55000 events delivered";
  std::this_thread::sleep_for(500ms);  // a repeat would arrive now
  stop = true;
  t.join();
  std::string log = ::testing::internal::GetCapturedStderr();
  got = back.ids();
  EXPECT_EQ(got.size(), 55000u) << "an event was delivered twice";
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()), dead_ids);
  EXPECT_EQ(pending(), 0);
  EXPECT_EQ(len(keys_.webhookDead("dead")), 0);
  EXPECT_NE(log.find("webhooks: dead: 1000 events held in memory"), std::string::npos) << log.substr(0, 3000);
  EXPECT_NE(log.find("webhooks: dead: no more events wait in Redis"), std::string::npos);
  std::cout << "[ timing   ] whole test " << seconds(started) << " s\n";
}

TEST_F(WebhookDispatcherTest, ManyDeadEndpointsShareTheMemoryBoundAndDelayNoOtherAccount) {
  uint16_t dead_port = mailgate::testing::freePort();
  mailgate::testing::HttpReceiver live;
  for (const char* account : {"d1", "d2", "d3"}) {
    ASSERT_TRUE(redis_.command({"HSET", keys_.account(account), "state", "active", "webhook_url",
                                "http://127.0.0.1:" + std::to_string(dead_port) + "/", "webhook_secret", "s"}));
  }
  ASSERT_TRUE(redis_.command({"HSET", keys_.account("live"), "webhook_url", live.url(), "webhook_secret", "s"}));
  // 2,000 events of each dead account, then 500 of the live one: the dead
  // ones alone are more than the 1,000 all accounts may hold together.
  std::vector<std::string> dead_ids, live_ids;
  std::vector<Command> cmds;
  for (int i = 0; i < 6500; ++i) {
    std::string account = i < 6000 ? "d" + std::to_string(i % 3 + 1) : "live";
    cmds.push_back({"XADD", stream_, "*", "account", account, "status", "delivered"});
  }
  auto r = redis_.pipeline(cmds);
  ASSERT_TRUE(r);
  for (size_t i = 0; i < r->size(); ++i) (i < 6000 ? dead_ids : live_ids).push_back(replyString((*r)[i].get()));
  LiveConfig config{parseConfig(configText() +
                                    "webhook_max_held = 1000\nwebhook_max_held_per_account = 1000\n"
                                    "webhook_retry_initial = 50ms\nwebhook_retry_max = 200ms\n",
                                "x")};
  ::testing::internal::CaptureStderr();
  tracker::WebhookDispatcher dispatcher(config, "node1");
  std::atomic<bool> stop{false};
  std::thread t([&] { dispatcher.run(stop); });
  waitWhileGrowing([&] { return live.idCount(); }, 500);
  auto got = live.ids();
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()), std::set<std::string>(live_ids.begin(), live_ids.end()));
  EXPECT_EQ(got.size(), 500u);
  auto pending = [&] { return (*redis_.command({"XPENDING", stream_, kWebhookGroup}))->element[0]->integer; };
  for (int i = 0; i < 100 && pending() != 6000; ++i) std::this_thread::sleep_for(50ms);
  EXPECT_EQ(pending(), 6000);
  // A restart reads them back from the pending list, within the caps again.
  stop = true;
  t.join();
  tracker::WebhookDispatcher restarted(config, "node1");
  stop = false;
  std::thread t2([&] { restarted.run(stop); });
  mailgate::testing::HttpReceiver back(dead_port);
  waitWhileGrowing([&] { return back.idCount(); }, 6000);
  std::this_thread::sleep_for(300ms);
  stop = true;
  t2.join();
  std::string log = ::testing::internal::GetCapturedStderr();
  got = back.ids();
  EXPECT_EQ(got.size(), 6000u) << "an event was delivered twice, or not at all";
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()), std::set<std::string>(dead_ids.begin(), dead_ids.end()));
  EXPECT_EQ(pending(), 0);
  for (const char* account : {"d1", "d2", "d3"}) EXPECT_EQ(len(keys_.webhookDead(account)), 0) << account;
}

TEST_F(WebhookDispatcherTest, ADeadConsumersEventsAreTakenOverWhileDeadEndpointsFillTheMemoryBound) {
  uint16_t dead_port = mailgate::testing::freePort();
  mailgate::testing::HttpReceiver live;
  for (const char* account : {"d1", "d2"}) {
    ASSERT_TRUE(redis_.command({"HSET", keys_.account(account), "state", "active", "webhook_url",
                                "http://127.0.0.1:" + std::to_string(dead_port) + "/", "webhook_secret", "s"}));
  }
  ASSERT_TRUE(redis_.command({"HSET", keys_.account("live"), "webhook_url", live.url(), "webhook_secret", "s"}));
  // This tracker read 150 events of each dead account before it restarted:
  // they fill all it may hold (2 x 100).
  std::vector<Command> cmds;
  for (int i = 0; i < 300; ++i) {
    cmds.push_back({"XADD", stream_, "*", "account", i % 2 == 0 ? "d1" : "d2", "status", "delivered"});
  }
  ASSERT_TRUE(redis_.pipeline(cmds));
  ASSERT_TRUE(redis_.command({"XREADGROUP", "GROUP", kWebhookGroup, "node1", "COUNT", "1000", "STREAMS", stream_, ">"}));
  // Another tracker read an event of the live account and died 10 minutes ago.
  auto id = redis_.command({"XADD", stream_, "*", "account", "live", "status", "delivered"});
  ASSERT_TRUE(id);
  std::string live_id = replyString(id->get());
  ASSERT_TRUE(redis_.command({"XREADGROUP", "GROUP", kWebhookGroup, "node2", "COUNT", "1", "STREAMS", stream_, ">"}));
  ASSERT_TRUE(redis_.command({"XCLAIM", stream_, kWebhookGroup, "node2", "0", live_id, "IDLE", "600000", "JUSTID"}));
  LiveConfig config{parseConfig(configText() +
                                    "webhook_max_held = 200\nwebhook_max_held_per_account = 100\n"
                                    "webhook_retry_initial = 50ms\nwebhook_retry_max = 200ms\n",
                                "x")};
  ::testing::internal::CaptureStderr();
  tracker::WebhookDispatcher dispatcher(config, "node1");
  std::atomic<bool> stop{false};
  std::thread t([&] { dispatcher.run(stop); });
  for (int i = 0; i < 100 && live.idCount() < 1; ++i) std::this_thread::sleep_for(50ms);
  stop = true;
  t.join();
  ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(live.ids(), std::vector<std::string>{live_id}) << "the dead consumer's event was not taken over";
}

TEST_F(WebhookDispatcherTest, EventsOfAReadWhoseReplyWasLostAreReadBackAtOnce) {
  mailgate::testing::HttpReceiver live;
  ASSERT_TRUE(redis_.command({"HSET", keys_.account("acme"), "webhook_url", live.url(), "webhook_secret", "s"}));
  mailgate::testing::ReplyDroppingProxy proxy(server_->port());
  LiveConfig config{parseConfig("redis_server = tcp:127.0.0.1:" + std::to_string(proxy.settings().endpoint.port) +
                                    "\nredis_prefix = t:\nwebhook_allow_networks = 127.0.0.0/8\n",
                                "x")};
  ::testing::internal::CaptureStderr();
  tracker::WebhookDispatcher dispatcher(config, "node1");
  std::atomic<bool> stop{false};
  std::thread t([&] { dispatcher.run(stop); });
  std::this_thread::sleep_for(500ms);
  // While the dispatcher waits for new entries (XREADGROUP BLOCK), an event
  // arrives, Redis hands it to the dispatcher (now pending for it) and the
  // reply is lost on the way.
  std::vector<std::string> ids;
  for (int round = 0; round < 3; ++round) {
    proxy.dropNextReply();
    std::this_thread::sleep_for(100ms);
    ids.push_back(add(1).front());
    std::this_thread::sleep_for(1500ms);
  }
  // Not only after the 5 minutes of a take-over.
  for (int i = 0; i < 80 && live.idCount() < ids.size(); ++i) std::this_thread::sleep_for(50ms);
  stop = true;
  t.join();
  ::testing::internal::GetCapturedStderr();
  auto got = live.ids();
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()), std::set<std::string>(ids.begin(), ids.end()));
  EXPECT_EQ(got.size(), ids.size());
  EXPECT_EQ((*redis_.command({"XPENDING", stream_, kWebhookGroup}))->element[0]->integer, 0);
}

}  // namespace

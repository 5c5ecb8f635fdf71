// redis_test.cc — the Redis layer against a real redis-server started by the
// test on a free loopback port: commands, pipelines, unix sockets, AUTH and
// SELECT, scripts after SCRIPT FLUSH, server errors, timeouts, outages and
// reconnection (one try per interval for all of a server's connections, all
// back once one is answered), no resend once written, transactions, and the
// pool's bound.
#include "mailgate/redis.h"

#include <iostream>
#include <optional>
#include <thread>

#include "redis_server.h"

using namespace mailgate;
using mailgate::testing::freePort;
using mailgate::testing::ReplyDroppingProxy;
using mailgate::testing::RedisServer;
using namespace std::chrono_literals;

namespace {

class RedisTest : public mailgate::testing::RedisFixture {
 protected:
};

TEST_F(RedisTest, CommandAndPipeline) {
  RedisConn c(server_->settings());
  auto set = c.command({"SET", "k 1", "value with spaces"});
  ASSERT_TRUE(set) << set.error().message;
  auto replies = c.pipeline({{"GET", "k 1"}, {"INCR", "counter"}, {"HSET", "k 1", "f", "v"}});
  ASSERT_TRUE(replies);
  ASSERT_EQ(replies->size(), 3u);
  EXPECT_EQ(replyString((*replies)[0].get()), "value with spaces");
  EXPECT_EQ((*replies)[1]->type, REDIS_REPLY_INTEGER);
  EXPECT_EQ((*replies)[2]->type, REDIS_REPLY_ERROR);  // WRONGTYPE stays a reply in a pipeline
}

TEST_F(RedisTest, ServerErrorIsAValue) {
  RedisConn c(server_->settings());
  ASSERT_TRUE(c.command({"SET", "str", "x"}));
  auto r = c.command({"INCR", "str"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Error::Kind::Server);
  EXPECT_TRUE(c.connected());  // a server error does not drop the connection
}

TEST_F(RedisTest, UnixSocketAndSelect) {
  RedisSettings s = server_->settings();
  s.endpoint = Endpoint{Endpoint::Kind::Unix, server_->socketPath(), "", 0};
  s.db = 3;
  RedisConn c(s);
  ASSERT_TRUE(c.command({"SET", "in-db-3", "yes"}));
  RedisConn other(server_->settings());
  auto r = other.pipeline({{"SELECT", "3"}, {"GET", "in-db-3"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(replyString((*r)[1].get()), "yes");
}

TEST_F(RedisTest, AuthGoodAndBadPassword) {
  RedisConn admin(server_->settings());
  ASSERT_TRUE(admin.command({"CONFIG", "SET", "requirepass", "s3cret"}));
  RedisSettings good = server_->settings();
  good.password = "s3cret";
  RedisConn ok(good);
  EXPECT_TRUE(ok.command({"PING"}));
  RedisSettings bad = good;
  bad.password = "wrong";
  RedisConn refused(bad);
  auto r = refused.command({"PING"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message.find("wrong"), std::string::npos) << "password leaked into the error";
  EXPECT_NE(r.error().message.find("AUTH failed"), std::string::npos) << r.error().message;
  ASSERT_TRUE(ok.command({"CONFIG", "SET", "requirepass", ""}));
}

TEST_F(RedisTest, EvalShaReloadsAfterScriptFlush) {
  RedisConn c(server_->settings());
  RedisScript script("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  auto first = c.eval(script, {"ev"}, {"2"});
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ((*first)->integer, 2);
  ASSERT_TRUE(c.command({"SCRIPT", "FLUSH"}));
  auto again = c.eval(script, {"ev"}, {"3"});
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ((*again)->integer, 5);
  auto exists = c.command({"SCRIPT", "EXISTS", script.sha1});
  ASSERT_TRUE(exists);
  EXPECT_EQ((*exists)->element[0]->integer, 1);
}

TEST_F(RedisTest, CommandTimeoutDoesNotHang) {
  RedisConn sleeper(server_->settings(5000ms));
  RedisConn c(server_->settings(200ms));
  ASSERT_TRUE(c.command({"PING"}));
  std::thread t([&] { (void)sleeper.command({"DEBUG", "SLEEP", "1"}); });
  std::this_thread::sleep_for(100ms);
  auto start = std::chrono::steady_clock::now();
  auto r = c.command({"PING"});
  auto took = std::chrono::steady_clock::now() - start;
  t.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Error::Kind::Timeout);
  EXPECT_LT(took, 700ms);
}

TEST_F(RedisTest, LostReplyIsNotResent) {
  // The server applied the INCR but its reply never came back: sending it
  // again on a fresh connection would count twice.
  ReplyDroppingProxy proxy(server_->port());
  RedisConn c(proxy.settings());
  RedisConn admin(server_->settings());
  ASSERT_TRUE(admin.command({"DEL", "lost"}));
  ASSERT_TRUE(c.command({"INCR", "lost"}));
  proxy.dropNextReply();
  auto r = c.command({"INCR", "lost"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Error::Kind::Unavailable);
  EXPECT_EQ(replyString(admin.command({"GET", "lost"})->get()), "2");
  std::this_thread::sleep_for(150ms);  // the reconnect backoff after a failure
  auto next = c.command({"INCR", "lost"});  // the connection comes back for the next command
  ASSERT_TRUE(next) << next.error().message;
  EXPECT_EQ((*next)->integer, 3);
}

TEST_F(RedisTest, ReplyTimeoutIsNotResent) {
  RedisConn sleeper(server_->settings(5000ms));
  RedisConn admin(server_->settings());
  RedisConn c(server_->settings(200ms));
  ASSERT_TRUE(admin.command({"DEL", "slow"}));
  ASSERT_TRUE(c.command({"PING"}));
  std::thread t([&] { (void)sleeper.command({"DEBUG", "SLEEP", "0.6"}); });
  std::this_thread::sleep_for(100ms);
  auto r = c.command({"INCR", "slow"});
  t.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Error::Kind::Timeout);
  EXPECT_EQ(replyString(admin.command({"GET", "slow"})->get()), "1");  // applied once, late
}

TEST_F(RedisTest, IdleConnectionClosedByTheServerIsReplacedBeforeSending) {
  // A Redis restart closes idle connections; the next command must not fail.
  RedisConn c(server_->settings());
  RedisConn admin(server_->settings());
  ASSERT_TRUE(admin.command({"DEL", "idle"}));
  auto id = c.command({"CLIENT", "ID"});
  ASSERT_TRUE(id);
  ASSERT_TRUE(admin.command({"CLIENT", "KILL", "ID", std::to_string((*id)->integer)}));
  std::this_thread::sleep_for(50ms);
  auto r = c.command({"INCR", "idle"});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ((*r)->integer, 1);
}

TEST_F(RedisTest, TransactionRefusedWhileQueuedAppliesNothing) {
  RedisConn c(server_->settings());
  ASSERT_TRUE(c.command({"SET", "tx:kept", "1"}));
  ASSERT_TRUE(c.command({"CONFIG", "SET", "maxmemory", "1"}));  // every write that may grow memory is refused
  auto r = transaction(c, {{"DEL", "tx:kept"}, {"INCR", "tx:counter"}});
  ASSERT_TRUE(c.command({"CONFIG", "SET", "maxmemory", "0"}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Error::Kind::Server);
  EXPECT_NE(r.error().message.find("OOM"), std::string::npos) << r.error().message;
  EXPECT_EQ((*c.command({"EXISTS", "tx:kept", "tx:counter"}))->integer, 1);  // DEL was not applied either
  auto ok = transaction(c, {{"DEL", "tx:kept"}, {"INCR", "tx:counter"}});
  ASSERT_TRUE(ok) << ok.error().message;
  ASSERT_EQ((*ok)->elements, 2u);
  EXPECT_EQ((*ok)->element[1]->integer, 1);
  // A command failing while run does not undo the others (Redis has no rollback): an error.
  auto failed = transaction(c, {{"INCR", "tx:counter"}, {"HSET", "tx:counter", "f", "v"}});
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.error().message.find("WRONGTYPE"), std::string::npos) << failed.error().message;
  EXPECT_EQ(replyString(c.command({"GET", "tx:counter"})->get()), "2");
}

TEST_F(RedisTest, WatchedTransactionIsNotAppliedAfterTheKeyChanged) {
  RedisConn c(server_->settings());
  RedisConn other(server_->settings());
  ASSERT_TRUE(c.command({"DEL", "w:pos", "w:n"}));
  ASSERT_TRUE(c.command({"WATCH", "w:pos"}));
  ASSERT_TRUE(other.command({"SET", "w:pos", "moved"}));
  auto r = watchedTransaction(c, {{"INCR", "w:n"}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->has_value());
  EXPECT_EQ((*c.command({"EXISTS", "w:n"}))->integer, 0);
  ASSERT_TRUE(c.command({"WATCH", "w:pos"}));  // EXEC ended the last WATCH
  auto ok = watchedTransaction(c, {{"INCR", "w:n"}});
  ASSERT_TRUE(ok) << ok.error().message;
  ASSERT_TRUE(ok->has_value());
  EXPECT_EQ((**ok)->element[0]->integer, 1);
}

TEST_F(RedisTest, WatchedTransactionNeverGoesToANewConnection) {
  // A new connection would not watch: the transaction must fail instead.
  RedisConn c(server_->settings());
  RedisConn admin(server_->settings());
  ASSERT_TRUE(admin.command({"DEL", "w:n"}));
  ASSERT_TRUE(c.command({"WATCH", "w:pos"}));
  auto id = c.command({"CLIENT", "ID"});
  ASSERT_TRUE(id);
  ASSERT_TRUE(admin.command({"CLIENT", "KILL", "ID", std::to_string((*id)->integer)}));
  std::this_thread::sleep_for(50ms);
  auto r = watchedTransaction(c, {{"INCR", "w:n"}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Error::Kind::Unavailable);
  EXPECT_EQ((*admin.command({"EXISTS", "w:n"}))->integer, 0);
  EXPECT_TRUE(c.command({"PING"}));  // other commands reconnect as before
}

TEST(RedisDown, UnreachableServerIsAnErrorAndBacksOff) {
  RedisSettings s;
  s.endpoint = Endpoint{Endpoint::Kind::Tcp, "", "127.0.0.1", freePort()};
  s.timeout = 200ms;
  RedisConn c(s);
  auto r = c.command({"PING"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Error::Kind::Unavailable);
  auto start = std::chrono::steady_clock::now();
  auto again = c.command({"PING"});
  EXPECT_LT(std::chrono::steady_clock::now() - start, 50ms);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("backing off"), std::string::npos);
  RedisSettings u = s;
  u.endpoint = Endpoint{Endpoint::Kind::Unix, "/nonexistent/redis.sock", "", 0};
  RedisConn cu(u);
  EXPECT_FALSE(cu.command({"PING"}));
}

TEST(RedisRestart, ReconnectsWhenTheServerComesBack) {
  RedisServer server;
  RedisConn c(server.settings());
  ASSERT_TRUE(c.command({"PING"}));
  server.stop();
  EXPECT_FALSE(c.command({"PING"}));
  server.start();
  bool recovered = false;
  for (int i = 0; i < 100 && !recovered; ++i) {
    recovered = c.command({"PING"}).ok();
    if (!recovered) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(recovered);
}

TEST(RedisRestart, EveryConnectionReconnectsAsSoonAsOneIsAnsweredHoweverLongTheOutage) {
  // A connection that kept failing during a long outage must not sit out a
  // grown backoff once Redis is back: the connections to a server share one
  // outage state, and one of them answered (here: RedisServer::start()'s PING)
  // lets every other reconnect with its next command.
  RedisServer server;
  RedisConn busy(server.settings()), idle(server.settings());
  ASSERT_TRUE(busy.command({"PING"}));
  ASSERT_TRUE(idle.command({"PING"}));
  server.stop();
  auto down_until = std::chrono::steady_clock::now() + 1600ms;
  int tries = 0, fast = 0;
  while (std::chrono::steady_clock::now() < down_until) {
    auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(busy.command({"PING"}));
    fast += std::chrono::steady_clock::now() - start < 50ms;
    ++tries;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(fast, tries);  // a refused try costs no timeout, a held-back one nothing
  server.start();
  auto back = std::chrono::steady_clock::now();
  bool recovered = false;
  while (!recovered && std::chrono::steady_clock::now() - back < 3s) {
    recovered = busy.command({"PING"}).ok();
    if (!recovered) std::this_thread::sleep_for(10ms);
  }
  auto took = std::chrono::steady_clock::now() - back;
  std::cout << "[redis] reconnected "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
            << " ms after another connection was answered, after a 1.6 s outage\n";
  EXPECT_TRUE(recovered);
  EXPECT_LT(took, 300ms);  // per-connection backoff: up to 1.5 s here
  auto r = idle.command({"PING"});  // lost its connection in the restart, tried nothing during it
  EXPECT_TRUE(r) << r.error().message;
}

TEST(RedisDown, OneTryPerIntervalForAllConnectionsToTheServer) {
  RedisSettings s;
  s.endpoint = Endpoint{Endpoint::Kind::Tcp, "", "127.0.0.1", freePort()};
  s.timeout = 200ms;
  RedisConn first(s), second(s);
  ASSERT_FALSE(first.command({"PING"}));
  auto r = second.command({"PING"});  // a new connection, but the server is known to be down
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("backing off"), std::string::npos) << r.error().message;
  std::this_thread::sleep_for(150ms);
  auto again = second.command({"PING"});  // the interval passed: this one tries (and is refused)
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message.find("backing off"), std::string::npos) << again.error().message;
  auto held = first.command({"PING"});
  ASSERT_FALSE(held);
  EXPECT_NE(held.error().message.find("backing off"), std::string::npos) << held.error().message;
}

TEST_F(RedisTest, PoolIsBoundedAndReusesConnections) {
  RedisPool pool(server_->settings(100ms), 2);
  {
    auto a = pool.acquire();
    auto b = pool.acquire();
    ASSERT_TRUE(a);
    ASSERT_TRUE(b);
    auto c = pool.acquire();
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().kind, Error::Kind::Timeout);
    ASSERT_TRUE((*a)->command({"PING"}));
  }
  auto again = pool.acquire();
  ASSERT_TRUE(again);
  EXPECT_TRUE((*again)->connected());  // an idle, already connected one came back
}

TEST_F(RedisTest, PoolWaitsPastTheTimeoutWhileConnectionsComeBack) {
  RedisPool pool(server_->settings(150ms), 1);
  auto first = pool.acquire();
  ASSERT_TRUE(first);
  std::optional<RedisPool::Lease> held(std::move(*first));
  bool second_ok = false, third_ok = false;
  std::thread second([&] {
    auto lease = pool.acquire();
    second_ok = lease.ok();
    std::this_thread::sleep_for(100ms);
  });
  std::this_thread::sleep_for(20ms);
  std::thread third([&] { third_ok = pool.acquire().ok(); });  // served at ~200 ms, past its 150 ms
  std::this_thread::sleep_for(80ms);
  held.reset();
  second.join();
  third.join();
  EXPECT_TRUE(second_ok);
  EXPECT_TRUE(third_ok);
}

TEST_F(RedisTest, PoolWaitIsBoundedWhileOthersKeepTakingTheConnection) {
  // One connection that three busy threads keep giving back and taking
  // again: a waiter sees progress all the time, and may keep losing the race
  // for it (which thread wins is the scheduler's choice, so this does not fail
  // every time without the bound). Whatever happens, one acquire() ends
  // within kPoolWaitTimeouts Redis timeouts: on_redis_failure, not a wait as
  // long as the others keep winning.
  RedisPool pool(server_->settings(100ms), 1);
  std::atomic<bool> stop{false};
  std::vector<std::thread> busy;
  for (int i = 0; i < 3; ++i) {
    busy.emplace_back([&] {
      while (!stop) {
        auto lease = pool.acquire();
        std::this_thread::sleep_for(40ms);
      }
    });
  }
  std::this_thread::sleep_for(20ms);
  std::chrono::steady_clock::duration longest{};
  for (int i = 0; i < 10; ++i) {
    auto start = std::chrono::steady_clock::now();
    { auto lease = pool.acquire(); }
    longest = std::max(longest, std::chrono::steady_clock::now() - start);
  }
  stop = true;
  for (auto& t : busy) t.join();
  EXPECT_LT(longest, 100ms * RedisPool::kPoolWaitTimeouts + 300ms);
}

}  // namespace

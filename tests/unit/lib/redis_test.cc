// redis_test.cc — the Redis layer against a real redis-server started by the
// test on a free loopback port: commands, pipelines, unix sockets, AUTH and
// SELECT, scripts after SCRIPT FLUSH, server errors, timeouts, outages and
// reconnection, and the pool's bound.
#include "mailgate/redis.h"

#include "redis_server.h"

using namespace mailgate;
using mailgate::testing::freePort;
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

}  // namespace

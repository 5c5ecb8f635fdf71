// redis_sentinel_test.cc — redis_server = sentinel:...: the spec's parser,
// reading SENTINEL get-master-addr-by-name and ROLE replies, the errors that
// send a connection back to the Sentinels, every Sentinel unreachable, and
// threads sharing a pool that finds its master through a real Sentinel
// (run under ThreadSanitizer in CI).
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include "mailgate/config.h"
#include "mailgate/redis_sentinel.h"
#include "redis_server.h"

namespace mailgate {
namespace {

struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};

// A reply as hiredis parses it from RESP bytes.
std::unique_ptr<redisReply, ReplyFree> parse(const std::string& resp) {
  redisReader* reader = redisReaderCreate();
  redisReaderFeed(reader, resp.data(), resp.size());
  void* raw = nullptr;
  EXPECT_EQ(redisReaderGetReply(reader, &raw), REDIS_OK);
  redisReaderFree(reader);
  return std::unique_ptr<redisReply, ReplyFree>(static_cast<redisReply*>(raw));
}

TEST(RedisSentinel, ParsesBothSpellings) {
  RedisSentinel a = parseRedisSentinel("sentinel:mymaster@10.0.0.1:26379,10.0.0.2:26380, [::1]:26381");
  EXPECT_EQ(a.master, "mymaster");
  ASSERT_EQ(a.sentinels.size(), 3u);
  EXPECT_EQ(a.sentinels[0].host, "10.0.0.1");
  EXPECT_EQ(a.sentinels[1].port, 26380);
  EXPECT_EQ(a.sentinels[2].host, "::1");
  EXPECT_EQ(a.toString(), "sentinel:mymaster@10.0.0.1:26379,10.0.0.2:26380,[::1]:26381");
  RedisSentinel b = parseRedisSentinel("sentinel:h1:26379,h2:26379/mymaster");
  EXPECT_EQ(b.master, "mymaster");
  EXPECT_EQ(b.toString(), "sentinel:mymaster@h1:26379,h2:26379");
}

TEST(RedisSentinel, RefusesMalformedSpecs) {
  for (const char* bad : {"sentinel:", "sentinel:mymaster", "sentinel:@h:1", "sentinel:m@", "sentinel:m@h",
                          "sentinel:m@h:0", "sentinel:m@h:70000", "sentinel:m@h:1,x", "sentinel:h:1/"}) {
    EXPECT_THROW(parseRedisSentinel(bad), std::invalid_argument) << bad;
  }
}

TEST(RedisSentinel, ConfigKeepsTheSpecAndTheSentinelPassword) {
  Config c = parseConfig("redis_server = sentinel:mg@127.0.0.1:26379,127.0.0.1:26380\n"
                         "redis_sentinel_password = s3cret\n", "x.conf");
  ASSERT_TRUE(c.redis_sentinel.has_value());
  EXPECT_EQ(c.redis_sentinel->sentinels.size(), 2u);
  EXPECT_EQ(c.redis_sentinel_password, "s3cret");
  EXPECT_EQ(c.redisServerString(), "sentinel:mg@127.0.0.1:26379,127.0.0.1:26380");
  try {
    parseConfig("redis_server = sentinel:mg@127.0.0.1\n", "x.conf");
    FAIL() << "accepted a Sentinel without a port";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("\"127.0.0.1\" is not host:port; expected sentinel:MASTERNAME@host:port"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(parseConfig("redis_server = tcp:127.0.0.1:6379\n", "x.conf").redis_sentinel.has_value());
}

TEST(RedisSentinel, ReadsTheMastersAddress) {
  auto ok = parseRedisSentinel("sentinel:m@h:1");
  auto r = masterFromSentinelReply(parse("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n").get(), ok.master);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->host, "127.0.0.1");
  EXPECT_EQ(r->port, 6380);
  auto unknown = masterFromSentinelReply(parse("*-1\r\n").get(), "m");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().message, "does not know master m");
  for (const char* bad : {"*1\r\n$1\r\nh\r\n", "*2\r\n$1\r\nh\r\n$1\r\nx\r\n", "*2\r\n$1\r\nh\r\n$6\r\n700000\r\n",
                          "*2\r\n$0\r\n\r\n$1\r\n1\r\n", ":1\r\n", "+OK\r\n"}) {
    EXPECT_FALSE(masterFromSentinelReply(parse(bad).get(), "m").ok()) << bad;
  }
}

TEST(RedisSentinel, RoleAndNotMasterErrors) {
  EXPECT_TRUE(roleIsMaster(parse("*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n").get()));
  EXPECT_FALSE(roleIsMaster(parse("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:6379\r\n$9\r\nconnected\r\n:1\r\n").get()));
  EXPECT_FALSE(roleIsMaster(parse("*0\r\n").get()));
  EXPECT_FALSE(roleIsMaster(parse("-ERR unknown command\r\n").get()));
  EXPECT_FALSE(roleIsMaster(nullptr));
  EXPECT_TRUE(isNotMasterError("READONLY You can't write against a read only replica."));
  EXPECT_TRUE(isNotMasterError("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."));
  EXPECT_FALSE(isNotMasterError("ERR wrong number of arguments"));
  EXPECT_FALSE(isNotMasterError("NOSCRIPT No matching script."));
}

TEST(RedisSentinel, EverySentinelUnreachableNamesEach) {
  // Ports 1 and 2 on loopback: nothing listens (connection refused at once).
  RedisSentinel s = parseRedisSentinel("sentinel:mg@127.0.0.1:1,127.0.0.1:2");
  size_t next = 1;
  auto r = askSentinels(s, "", std::chrono::milliseconds(200), next);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, Error::Kind::Unavailable);
  const std::string& m = r.error().message;
  EXPECT_TRUE(m.starts_with("no Sentinel named the master mg (127.0.0.1:2: connect: Connection refused; "
                            "127.0.0.1:1: connect: Connection refused)"))
      << m;  // asked from `next` on
  EXPECT_EQ(next, 1u);
}

// A redis-sentinel on a free loopback port that monitors one master.
class SentinelProcess {
 public:
  explicit SentinelProcess(uint16_t master_port) : port_(testing::freePort()) {
    char tmpl[] = "/tmp/mg-sentinel-XXXXXX";
    dir_ = mkdtemp(tmpl);
    std::string conf = dir_ + "/sentinel.conf";
    std::ofstream(conf) << "port " << port_ << "\nbind 127.0.0.1\ndir " << dir_
                        << "\nsentinel monitor mg 127.0.0.1 " << master_port
                        << " 1\nsentinel down-after-milliseconds mg 60000\n";
    pid_ = fork();
    if (pid_ == 0) {
      execlp("redis-server", "redis-server", conf.c_str(), "--sentinel", "--loglevel", "warning",
             static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~SentinelProcess() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    std::string cmd = "rm -rf " + dir_;
    if (system(cmd.c_str()) != 0) perror("rm");
  }
  std::string spec() const { return "sentinel:mg@127.0.0.1:" + std::to_string(port_); }

 private:
  uint16_t port_;
  std::string dir_;
  pid_t pid_;
};

TEST(RedisSentinel, ThreadsShareAPoolThatAsksTheSentinel) {
  testing::RedisServer master;
  SentinelProcess sentinel(master.port());
  RedisSettings settings;
  settings.sentinel = parseRedisSentinel(sentinel.spec());
  settings.timeout = std::chrono::milliseconds(500);
  bool answered = false;
  for (int i = 0; i < 100 && !answered; ++i) {  // until the Sentinel listens
    RedisConn probe(settings);
    answered = probe.command({"PING"}).ok();
    if (!answered) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(answered);
  RedisPool pool(settings, 3);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        auto lease = pool.acquire();
        if (!lease || !(*lease)->command({"INCR", "sentinel-test"})) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  RedisConn direct(master.settings());
  auto n = direct.command({"GET", "sentinel-test"});
  ASSERT_TRUE(n);
  EXPECT_EQ(replyString(n->get()), "400");
}

}  // namespace
}  // namespace mailgate

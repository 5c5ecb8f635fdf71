// admin_test.cc — CheckedRedis, the only way Admin reaches Redis, against a
// real redis-server: a refused command, an error inside EXEC's result and a
// discarded transaction each come back as an Error, and a refused
// transaction applies nothing.
#include "mailgate/admin.h"

#include "redis_server.h"

using namespace mailgate;

namespace {

class CheckedRedisTest : public mailgate::testing::RedisFixture {
 protected:
  void SetUp() override { ASSERT_TRUE(conn_.command({"FLUSHALL"})); }

  RedisConn conn_{server_->settings()};
  CheckedRedis redis_{conn_};
};

TEST_F(CheckedRedisTest, TransactionReturnsEachCommandsReply) {
  auto r = redis_.transaction({{"SADD", "s", "a", "b"}, {"SCARD", "s"}, {"HGET", "h", "f"}});
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0]->integer, 2);
  EXPECT_EQ((*r)[1]->integer, 2);
  EXPECT_EQ((*r)[2]->type, REDIS_REPLY_NIL);
}

TEST_F(CheckedRedisTest, RefusedCommandFailsAndAppliesNothing) {
  auto r = redis_.transaction({{"SET", "k", "1"}, {"SADD", "s"}});  // wrong arity: refused while queuing
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Error::Kind::Server);
  EXPECT_EQ(r.error().message, "ERR wrong number of arguments for 'sadd' command");
  EXPECT_EQ((*conn_.command({"EXISTS", "k"}))->integer, 0);
}

TEST_F(CheckedRedisTest, ErrorInsideExecResultFails) {
  ASSERT_TRUE(conn_.command({"SET", "str", "x"}));
  auto r = redis_.transaction({{"SET", "k", "1"}, {"SADD", "str", "a"}});
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().message.starts_with("WRONGTYPE")) << r.error().message;
}

TEST_F(CheckedRedisTest, DiscardedTransactionFails) {
  ASSERT_TRUE(conn_.command({"WATCH", "w"}));
  RedisConn other(server_->settings());
  ASSERT_TRUE(other.command({"SET", "w", "changed"}));
  auto r = redis_.transaction({{"SET", "k", "1"}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "redis discarded the transaction");
  EXPECT_EQ((*conn_.command({"EXISTS", "k"}))->integer, 0);
}

TEST_F(CheckedRedisTest, PipelineFailsOnAnyErrorReply) {
  ASSERT_TRUE(conn_.command({"SET", "str", "x"}));
  auto r = redis_.pipeline({{"GET", "str"}, {"SMEMBERS", "str"}});
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().message.starts_with("WRONGTYPE")) << r.error().message;
}

TEST_F(CheckedRedisTest, AdminWriteRefusedByRedisChangesNothing) {
  StoreKeys keys("mg:");
  Admin admin(conn_, keys);
  ASSERT_TRUE(admin.addAccount("acme", ""));
  auto key = admin.createKey("acme", true, false);
  ASSERT_TRUE(key);
  ASSERT_TRUE(conn_.command({"CONFIG", "SET", "min-replicas-to-write", "1"}));
  auto revoked = admin.revokeKey(key->view.id);
  ASSERT_TRUE(conn_.command({"CONFIG", "SET", "min-replicas-to-write", "0"}));
  ASSERT_FALSE(revoked);
  EXPECT_TRUE(revoked.error().message.starts_with("NOREPLICAS")) << revoked.error().message;
  EXPECT_EQ((*conn_.command({"EXISTS", keys.keyId(key->view.id)}))->integer, 1);
  EXPECT_EQ((*conn_.command({"SCARD", keys.accountKeys("acme")}))->integer, 1);
}

TEST_F(CheckedRedisTest, AccountDomainsAndDefaultSenderAreStoredInNormalForm) {
  StoreKeys keys("mg:");
  Admin admin(conn_, keys);
  ASSERT_TRUE(admin.addAccount("acme", "News@Bücher.Example"));
  auto field = [&](const char* name) { return replyString(conn_.command({"HGET", keys.account("acme"), name})->get()); };
  EXPECT_EQ(field("default_sender"), "News@xn--bcher-kva.example");
  ASSERT_TRUE(admin.setAccount("acme", {"dkim_domain=Bücher.example", "default_sender=Jörg@BÜCHER.example"}));
  EXPECT_EQ(field("dkim_domain"), "xn--bcher-kva.example");  // where mailgatectl dkim stores its keys
  EXPECT_EQ(field("default_sender"), "Jörg@xn--bcher-kva.example");
  ASSERT_TRUE(admin.setAccount("acme", {"dkim_domain=", "default_sender="}));
  EXPECT_EQ(field("dkim_domain"), "");
  EXPECT_EQ(field("default_sender"), "");
  std::string long_sender = std::string(64, 'a') + "@" + std::string(60, 'b') + "." + std::string(60, 'c') + "." +
                            std::string(60, 'd') + ".example";  // 256 octets
  for (const std::string& bad : {long_sender, std::string("a@[192.0.2.1]"), std::string("x@\xcc\x81" "b.example"),
                                 std::string("a b@example.com")}) {
    auto r = admin.setAccount("acme", {"default_sender=" + bad});
    ASSERT_FALSE(r) << bad;
    EXPECT_TRUE(r.error().message.starts_with("bad default sender")) << r.error().message;
    EXPECT_FALSE(admin.addAccount("other", bad)) << bad;
  }
  EXPECT_FALSE(admin.setAccount("acme", {"dkim_domain=\xcc\x81" "x.example"}));
  EXPECT_FALSE(admin.setAccount("acme", {"dkim_domain=[192.0.2.1]"}));
}

}  // namespace

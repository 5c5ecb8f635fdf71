// dkim_signer_test.cc — the DKIM key cache against a real redis-server: keys
// changed while another message fetches them (interleaved through the
// cache's after-fetch seam) must not stay cached under the new version.
#include "mailgate/dkim_signer.h"

#include "mailgate/store.h"
#include "redis_server.h"

using namespace mailgate;

namespace {

class DkimKeyCacheTest : public mailgate::testing::RedisFixture {
 protected:
  void SetUp() override {
    ASSERT_TRUE(admin_.command({"FLUSHDB"}));
    putKey("old");
  }
  void putKey(const std::string& selector) {
    ASSERT_TRUE(transaction(admin_, {{"HSET", keys_.dkim("example.com"), selector,
                                      R"({"algo":"rsa-sha256","key":"PEM-)" + selector + R"("})"},
                                     {"INCR", keys_.dkimVersion()}}));
  }
  void removeKeys() {  // as `mailgatectl dkim remove example.com`
    ASSERT_TRUE(transaction(admin_, {{"DEL", keys_.dkim("example.com")}, {"INCR", keys_.dkimVersion()}}));
  }
  std::vector<std::string> selectors(DkimKeyCache& cache, RedisConn& redis) {
    auto keys = cache.keysFor(redis, {"example.com"});
    EXPECT_TRUE(keys) << keys.error().message;
    std::vector<std::string> out;
    if (keys) {
      for (const auto& k : keys->at("example.com")) out.push_back(k.selector);
    }
    return out;
  }

  StoreKeys keys_{"t:"};
  RedisConn admin_{server_->settings()};
  RedisConn milter_a_{server_->settings()}, milter_b_{server_->settings()};
};

TEST_F(DkimKeyCacheTest, KeyRemovedDuringAFetchIsNotCachedUnderTheNewVersion) {
  // Message A fetches the key; meanwhile the key is removed and message B
  // sees the new version. A's key must not end up cached under it.
  DkimKeyCache* cache = nullptr;
  bool interleaved = false;
  DkimKeyCache c(keys_, [&] {
    if (std::exchange(interleaved, true)) return;
    removeKeys();
    EXPECT_TRUE(selectors(*cache, milter_b_).empty());
  });
  cache = &c;
  EXPECT_EQ(selectors(c, milter_a_), std::vector<std::string>{"old"});  // A read it before the removal
  EXPECT_TRUE(interleaved);
  EXPECT_TRUE(selectors(c, milter_a_).empty()) << "removed key still cached";
}

TEST_F(DkimKeyCacheTest, KeyRotatedDuringAFetchIsReadAgain) {
  bool interleaved = false;
  DkimKeyCache c(keys_, [&] {
    if (std::exchange(interleaved, true)) return;
    removeKeys();
    putKey("new");
  });
  EXPECT_EQ(selectors(c, milter_a_), std::vector<std::string>{"old"});
  EXPECT_EQ(selectors(c, milter_a_), std::vector<std::string>{"new"});
  EXPECT_EQ(selectors(c, milter_b_), std::vector<std::string>{"new"});
}

TEST_F(DkimKeyCacheTest, UnchangedVersionIsServedFromTheCache) {
  int fetches = 0;
  DkimKeyCache c(keys_, [&] { ++fetches; });
  EXPECT_EQ(selectors(c, milter_a_), std::vector<std::string>{"old"});
  EXPECT_EQ(selectors(c, milter_b_), std::vector<std::string>{"old"});
  EXPECT_EQ(fetches, 1);
  putKey("new");
  EXPECT_EQ(selectors(c, milter_a_), (std::vector<std::string>{"old", "new"}));
  EXPECT_EQ(fetches, 2);
}

// The milter may list a domain twice (the From domain's parent and the
// account's dkim_domain): still one fetch, then served from the cache.
TEST_F(DkimKeyCacheTest, RepeatedDomainsAreServedFromTheCache) {
  int fetches = 0;
  DkimKeyCache c(keys_, [&] { ++fetches; });
  for (int i = 0; i < 3; ++i) {
    auto keys = c.keysFor(milter_a_, {"mail.example.com", "example.com", "com", "example.com"});
    ASSERT_TRUE(keys) << keys.error().message;
    EXPECT_EQ(keys->at("example.com").size(), 1u);
    EXPECT_TRUE(keys->at("com").empty());
  }
  EXPECT_EQ(fetches, 1);
}

}  // namespace

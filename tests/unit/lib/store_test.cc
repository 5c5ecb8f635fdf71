// store_test.cc — accounts, keys and networks against a real redis-server:
// what mailgatectl writes (Admin) is what the daemons read (Store): key
// lookup, cache TTL and revocation, brute-force counting, IP pinning, and the
// admin errors for unknown accounts, duplicates and bad CIDRs.
#include "mailgate/store.h"

#include "mailgate/account_policy.h"
#include "mailgate/admin.h"
#include "mailgate/crypto.h"
#include "mailgate/rules_envelope.h"
#include "mailgate/rules_message.h"
#include "redis_server.h"

using namespace mailgate;
using mailgate::testing::RedisServer;
using namespace std::chrono_literals;

namespace {

class StoreTest : public mailgate::testing::RedisFixture {
 protected:
  void SetUp() override { ASSERT_TRUE(redis_.command({"FLUSHALL"})); }

  Config config(const std::string& extra = "") {
    return parseConfig("auth_cache_ttl = 300ms\nauth_fail_limit = 3\n" + extra, "test.conf");
  }

  RedisConn redis_{server_->settings()};
  StoreKeys keys_{"mg:"};
  Admin admin_{redis_, keys_};
};

TEST_F(StoreTest, CreatedKeyIsFoundStoredOnlyAsHashAndRevocable) {
  ASSERT_TRUE(admin_.addAccount("acme", "news@acme.example"));
  auto k = admin_.createKey("acme", true, true);
  ASSERT_TRUE(k) << k.error().message;
  EXPECT_EQ(k->key.size(), 35u);  // "mg_" + 32 base64url chars = 192 bits
  auto raw = redis_.command({"EXISTS", "mg:key:" + sha256Hex(k->key)});
  EXPECT_EQ((*raw)->integer, 1);
  auto all = redis_.command({"KEYS", "*"});
  for (size_t i = 0; i < (*all)->elements; ++i) {
    EXPECT_EQ(replyString((*all)->element[i]).find(k->key), std::string::npos);
  }

  Store store(config());
  auto found = store.lookupKey(redis_, k->key, "192.0.2.1");
  ASSERT_TRUE(found);
  ASSERT_EQ(found->kind, KeyLookup::Kind::Found);
  EXPECT_EQ(found->info.account, "acme");
  EXPECT_EQ(found->info.key_id, k->view.id);
  EXPECT_TRUE(found->info.smtp);
  EXPECT_TRUE(found->info.sandbox);
  EXPECT_EQ(found->info.account_state, AccountState::Active);

  ASSERT_TRUE(admin_.revokeKey(k->view.id));
  EXPECT_EQ(store.lookupKey(redis_, k->key, "192.0.2.1")->kind, KeyLookup::Kind::Found);  // cached
  std::this_thread::sleep_for(350ms);
  EXPECT_EQ(store.lookupKey(redis_, k->key, "192.0.2.1")->kind, KeyLookup::Kind::Unknown);
  EXPECT_FALSE(admin_.revokeKey(k->view.id));
}

TEST_F(StoreTest, AccountStateAndKeyFlagsReachTheLookup) {
  ASSERT_TRUE(admin_.addAccount("acme", ""));
  auto k = admin_.createKey("acme", false, false);
  ASSERT_TRUE(admin_.setAccount("acme", {"state=blocked"}));
  Store store(config());
  auto found = store.lookupKey(redis_, k->key, "");
  EXPECT_FALSE(found->info.smtp);
  EXPECT_EQ(found->info.account_state, AccountState::Blocked);
  auto keys = admin_.listKeys("acme");
  ASSERT_TRUE(keys);
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].id, k->view.id);
  EXPECT_FALSE((*keys)[0].smtp);
}

TEST_F(StoreTest, UnknownKeysAreCountedPerClientAndThrottled) {
  Store store(config());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(store.lookupKey(redis_, "nope", "192.0.2.9")->kind, KeyLookup::Kind::Unknown);
  EXPECT_EQ(store.lookupKey(redis_, "nope", "192.0.2.9")->kind, KeyLookup::Kind::Throttled);
  EXPECT_EQ(store.lookupKey(redis_, "nope", "192.0.2.10")->kind, KeyLookup::Kind::Unknown);
  auto ttl = redis_.command({"TTL", "mg:authfail:192.0.2.9"});
  EXPECT_GT((*ttl)->integer, 500);  // auth_fail_window default 10m
}

TEST_F(StoreTest, AllowedNetworksLongestPrefixWins) {
  ASSERT_TRUE(admin_.addAccount("wide", ""));
  ASSERT_TRUE(admin_.addAccount("narrow", ""));
  EXPECT_EQ(*admin_.allowNet("wide", "192.0.2.0/24"), "192.0.2.0/24");
  EXPECT_EQ(*admin_.allowNet("narrow", "192.0.2.77/32"), "192.0.2.77/32");
  EXPECT_EQ(*admin_.allowNet("narrow", "2001:db8::/32"), "2001:db8::/32");
  Store store(config());
  EXPECT_EQ(store.accountForAddress(redis_, "192.0.2.5")->value_or(""), "wide");
  EXPECT_EQ(store.accountForAddress(redis_, "192.0.2.77")->value_or(""), "narrow");
  EXPECT_EQ(store.accountForAddress(redis_, "2001:db8::7")->value_or(""), "narrow");
  EXPECT_FALSE(store.accountForAddress(redis_, "198.51.100.1")->has_value());
  ASSERT_TRUE(admin_.denyNet("narrow", "192.0.2.77"));
  std::this_thread::sleep_for(350ms);
  EXPECT_EQ(store.accountForAddress(redis_, "192.0.2.77")->value_or(""), "wide");
}

TEST_F(StoreTest, AdminErrors) {
  ASSERT_TRUE(admin_.addAccount("acme", ""));
  EXPECT_EQ(admin_.addAccount("acme", "").error().message, "account \"acme\" already exists");
  EXPECT_EQ(admin_.addAccount("a/b", "").error().message,
            "bad account name \"a/b\": use 1-64 letters, digits, '.', '_' or '-'");
  EXPECT_EQ(admin_.addAccount("x", "not-an-address").error().message,
            "bad default sender \"not-an-address\": expected local@domain, at most 254 octets");
  EXPECT_EQ(admin_.createKey("ghost", true, false).error().message, "unknown account \"ghost\"");
  EXPECT_EQ(admin_.setAccount("acme", {"state=sleeping"}).error().message,
            "bad state \"sleeping\": expected active, blocked or deleted");
  EXPECT_EQ(admin_.setAccount("acme", {"colour=red"}).error().message,
            "unknown account setting \"colour\" (state, default_sender, suppression, subaddress, empty_from, dkim_domain, "
            "unsubscribe, unsubscribe_scope)");
  EXPECT_EQ(admin_.allowNet("acme", "192.0.2.0/33").error().message,
            "bad CIDR \"192.0.2.0/33\": expected e.g. 192.0.2.0/24 or 2001:db8::/32");
  EXPECT_EQ(admin_.allowNet("acme", "0.0.0.0/0").error().message,
            "network 0.0.0.0/0 is wider than /16: anyone in it could send and relay as the account; "
            "give --wide if that is meant");
  EXPECT_EQ(admin_.allowNet("acme", "2001:db8::/31").error().message,
            "network 2001:db8::/31 is wider than /32: anyone in it could send and relay as the account; "
            "give --wide if that is meant");
  EXPECT_EQ(*admin_.allowNet("acme", "10.0.0.0/8", true), "10.0.0.0/8");
  ASSERT_TRUE(admin_.denyNet("acme", "10.0.0.0/8"));
  ASSERT_TRUE(admin_.addAccount("other", ""));
  ASSERT_TRUE(admin_.allowNet("acme", "192.0.2.0/24"));
  EXPECT_EQ(admin_.allowNet("other", "192.0.2.1/24").error().message,
            "network 192.0.2.0/24 already belongs to account \"acme\"");
  EXPECT_EQ(admin_.denyNet("other", "192.0.2.0/24").error().message,
            "network 192.0.2.0/24 is not allowed for account \"other\"");
  EXPECT_EQ(admin_.revokeKey("kdeadbeef").error().message, "unknown key id \"kdeadbeef\"");
  auto shown = admin_.showAccount("acme");
  ASSERT_TRUE(shown);
  EXPECT_EQ(shown->state, "active");
  EXPECT_EQ(shown->nets, std::vector<std::string>{"192.0.2.0/24"});
}

}  // namespace

namespace {

TEST_F(StoreTest, LoadsOnlyWhatTheRulesNeedInOneRoundTrip) {
  ASSERT_TRUE(admin_.addAccount("acme", ""));
  ASSERT_TRUE(admin_.addDomain("acme", "Corp.Example", "verified", true));
  ASSERT_TRUE(admin_.addDomain("acme", "other.example", "prohibited", false));
  ASSERT_TRUE(admin_.stoplistAdd("acme", "Bob@EXAMPLE.net"));
  ASSERT_TRUE(redis_.command({"SADD", "mg:bounced", "gone@example.net"}));
  ASSERT_TRUE(admin_.setAccount("acme", {"subaddress=yes"}));
  ASSERT_TRUE(admin_.setLimit("acme", "", {"rate=5/s"}));
  Store store(config());
  auto p = store.loadAccountPolicy(redis_, "acme", "mail.corp.example", "Bob+x@example.net");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_TRUE(p->exists);
  EXPECT_TRUE(p->subaddress);
  EXPECT_EQ(p->limits.rate.count, 5u);
  EXPECT_EQ(p->domains.size(), 1u);
  EXPECT_TRUE(p->domains.at("corp.example").subdomains);
  EXPECT_EQ(p->stoplist, std::set<std::string>{"bob@example.net"});
  auto q = store.loadAccountPolicy(redis_, "acme", "", "gone@example.net");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->bounced, std::set<std::string>{"gone@example.net"});
  // UTF-8 addresses and IDN domains (SMTPUTF8): stored and found under their key.
  EXPECT_EQ(*admin_.stoplistAdd("acme", "Jörg@Bücher.example"), "jörg@xn--bcher-kva.example");
  auto u = store.loadAccountPolicy(redis_, "acme", "", "JöRG@BÜCHER.example");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->stoplist, std::set<std::string>{"jörg@xn--bcher-kva.example"});
  auto m = store.loadMessageAccount(redis_, "acme", "", {"corp.example", "mail.corp.example", "other.example"}, "c",
                                    {"jörg@xn--bcher-kva.example", "BOB@example.net"});
  ASSERT_TRUE(m);
  EXPECT_EQ(m->policy.stoplist, (std::set<std::string>{"bob@example.net", "jörg@xn--bcher-kva.example"}));
  EXPECT_EQ(m->policy.domains.size(), 2u);  // corp.example (for itself and its subdomain) and other.example
  EXPECT_EQ(m->dkim_version, "");  // no key ever imported
  ASSERT_TRUE(redis_.command({"SET", "mg:dkim:version", "7"}));
  auto v = store.loadMessageAccount(redis_, "acme", "", {}, "c", {});
  ASSERT_TRUE(v);
  EXPECT_EQ(v->dkim_version, "7");  // read in the same round trip, for DkimKeyCache::keysFor
  ASSERT_TRUE(admin_.stoplistRemove("acme", "JöRG@xn--BCHER-kva.example"));
  auto missing = store.loadAccountPolicy(redis_, "ghost", "x.example", "");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->exists);
}

TEST_F(StoreTest, UnsubscribeSettingsAreCheckedShownAndLoaded) {
  ASSERT_TRUE(admin_.addAccount("acme", ""));
  Store store(config());
  auto unset = store.loadMessageAccount(redis_, "acme", "", {}, "c", {});
  ASSERT_TRUE(unset);
  EXPECT_EQ(unset->unsubscribe, UnsubscribeMode::Off);
  EXPECT_EQ(admin_.showAccount("acme")->unsubscribe, "off");
  EXPECT_EQ(admin_.showAccount("acme")->unsubscribe_scope, "account");
  EXPECT_EQ(admin_.setAccount("acme", {"unsubscribe=yes"}).error().message,
            "bad unsubscribe \"yes\": expected off, header or one-click");
  EXPECT_EQ(admin_.setAccount("acme", {"unsubscribe=header", "unsubscribe_scope=list"}).error().message,
            "bad unsubscribe_scope \"list\": expected account or campaign");
  ASSERT_TRUE(admin_.setAccount("acme", {"unsubscribe=one-click", "unsubscribe_scope=campaign"}));
  auto m = store.loadMessageAccount(redis_, "acme", "", {}, "c", {});
  ASSERT_TRUE(m);
  EXPECT_EQ(m->unsubscribe, UnsubscribeMode::OneClick);
  EXPECT_EQ(admin_.showAccount("acme")->unsubscribe, "one-click");
  EXPECT_EQ(admin_.showAccount("acme")->unsubscribe_scope, "campaign");
  ASSERT_TRUE(admin_.setAccount("acme", {"unsubscribe=header"}));
  EXPECT_EQ(store.loadMessageAccount(redis_, "acme", "", {}, "c", {})->unsubscribe, UnsubscribeMode::Header);
  ASSERT_TRUE(redis_.command({"HSET", "mg:acct:{acme}", "unsubscribe", "bogus"}));  // hand-written: off
  EXPECT_EQ(store.loadMessageAccount(redis_, "acme", "", {}, "c", {})->unsubscribe, UnsubscribeMode::Off);
}

TEST_F(StoreTest, TheCampaignListIsLoadedForTheMessagesCampaign) {
  ASSERT_TRUE(admin_.addAccount("acme", ""));
  Store store(config());
  ASSERT_TRUE(redis_.command({"SADD", "mg:acct:{acme}:stop:spring", "bob@example.net"}));
  auto spring = store.loadMessageAccount(redis_, "acme", "", {}, "spring", {"Bob@Example.NET", "ann@example.net"});
  ASSERT_TRUE(spring);
  EXPECT_EQ(spring->policy.campaign_stoplist, (std::set<std::string>{"bob@example.net"}));
  EXPECT_TRUE(spring->policy.stoplist.empty());
  EXPECT_EQ(checkCampaignUnsubscribed("Bob@Example.NET", spring->policy).rule, "campaign_unsubscribed");
  EXPECT_EQ(checkCampaignUnsubscribed("ann@example.net", spring->policy).rule, "");
  auto autumn = store.loadMessageAccount(redis_, "acme", "", {}, "autumn", {"bob@example.net"});
  ASSERT_TRUE(autumn);
  EXPECT_TRUE(autumn->policy.campaign_stoplist.empty());
}

TEST_F(StoreTest, RecipientSetsReplaceThoseOfTheLastRecipient) {
  ASSERT_TRUE(admin_.addAccount("acme", ""));
  ASSERT_TRUE(admin_.addDomain("acme", "corp.example", "verified", false));
  ASSERT_TRUE(admin_.stoplistAdd("acme", "bob@example.net"));
  ASSERT_TRUE(redis_.command({"SADD", "mg:bounced:{acme}", "gone@example.net"}));
  ASSERT_TRUE(admin_.setAccount("acme", {"subaddress=yes"}));
  Store store(config());
  auto p = store.loadAccountPolicy(redis_, "acme", "corp.example", "bob@example.net");
  ASSERT_TRUE(p);
  ASSERT_EQ(p->stoplist, std::set<std::string>{"bob@example.net"});
  ASSERT_TRUE(store.loadRecipientSets(redis_, *p, "Gone+tag@example.net"));
  EXPECT_TRUE(p->stoplist.empty());
  EXPECT_EQ(p->bounced, std::set<std::string>{"gone@example.net"});
  // The rest of what was read stays.
  EXPECT_TRUE(p->subaddress);
  EXPECT_EQ(p->domains.size(), 1u);
  ASSERT_TRUE(store.loadRecipientSets(redis_, *p, "carol@example.net"));
  EXPECT_TRUE(p->stoplist.empty());
  EXPECT_TRUE(p->bounced.empty());
}

TEST_F(StoreTest, DomainStoplistBouncedAndLimitAdmin) {
  ASSERT_TRUE(admin_.addAccount("acme", ""));
  EXPECT_EQ(admin_.addDomain("acme", "bad domain", "verified", false).error().message, "bad domain \"bad domain\"");
  EXPECT_EQ(admin_.addDomain("acme", "x.example", "great", false).error().message,
            "bad status \"great\": expected verified, onmoderation or prohibited");
  ASSERT_TRUE(admin_.addDomain("acme", "x.example", "onmoderation", false));
  EXPECT_EQ(admin_.addDomain("acme", "X.example", "verified", false).error().message,
            "domain x.example already belongs to account \"acme\"");
  ASSERT_TRUE(admin_.setDomain("acme", "x.example", "verified", true));
  EXPECT_EQ(admin_.listDomains("acme")->at(0).second, "verified,subdomains");
  EXPECT_EQ(admin_.setDomain("acme", "y.example", "verified", std::nullopt).error().message,
            "unknown domain y.example for account \"acme\"");
  ASSERT_TRUE(admin_.removeDomain("acme", "x.example"));
  EXPECT_FALSE(admin_.removeDomain("acme", "x.example"));
  EXPECT_EQ(admin_.stoplistAdd("acme", "not an address").error().message, "bad address \"not an address\"");
  EXPECT_EQ(admin_.stoplistRemove("acme", "a@b.example").error().message,
            "a@b.example is not in the stoplist of account \"acme\"");
  ASSERT_TRUE(redis_.command({"SADD", "mg:bounced", "gone@example.net"}));
  ASSERT_TRUE(redis_.command({"SADD", "mg:bounced:{acme}", "gone@example.net"}));
  EXPECT_EQ(admin_.bouncedList("")->size(), 1u);
  EXPECT_EQ(*admin_.bouncedRemove("gone@example.net"), "gone@example.net");
  EXPECT_EQ(admin_.bouncedRemove("gone@example.net").error().message, "gone@example.net is not in a bounce list");
  EXPECT_EQ(admin_.setLimit("acme", "", {"rate=fast"}).error().message, "bad rate \"fast\": expected N/s, N/m or N/h");
  EXPECT_EQ(admin_.setLimit("acme", "", {"speed=1"}).error().message,
            "unknown limit \"speed\" (rate, daily, rcpts, size)");
  EXPECT_EQ(admin_.setLimit("acme", "k1", {"daily=5"}).error().message, "only rate= can be set per key");
  EXPECT_EQ(admin_.setLimit("acme", "knope", {"rate=1/s"}).error().message,
            "unknown key id \"knope\" for account \"acme\"");
  ASSERT_TRUE(admin_.setLimit("acme", "", {"daily=100"}));
  ASSERT_TRUE(admin_.setLimit("acme", "", {"daily=none"}));
  auto daily = redis_.command({"HEXISTS", "mg:acct:{acme}", "daily"});
  EXPECT_EQ((*daily)->integer, 0);
}

}  // namespace

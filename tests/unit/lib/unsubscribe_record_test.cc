// unsubscribe_record_test.cc — planUnsubscribe() and recordUnsubscribe()
// against a real redis-server: the stoplist member mailgatectl would store,
// event `unsubscribed` once per (account, recipient, scope), the campaign
// list with unsubscribe_scope=campaign.
#include <gtest/gtest.h>

#include "mailgate/events.h"
#include "mailgate/limits.h"
#include "mailgate/store.h"
#include "mailgate/unsubscribe_record.h"
#include "redis_server.h"

using namespace mailgate;

namespace {

constexpr int64_t kNow = 1767225600000;  // 2026-01-01T00:00:00Z

class RecordUnsubscribe : public mailgate::testing::RedisFixture {
 protected:
  void SetUp() override { ASSERT_TRUE(redis_.command({"FLUSHDB"})); }
  long long integer(const Command& cmd) {
    auto r = redis_.command(cmd);
    EXPECT_TRUE(r) << r.error().message;
    return r ? (*r)->integer : -1;
  }
  UnsubscribePlan plan(const std::string& rcpt, const std::string& campaign = "spring") {
    auto p = planUnsubscribe(config_, UnsubscribeToken{"acme", rcpt, campaign, "4ABC", kNow / 1000}, kNow);
    EXPECT_TRUE(p) << p.error().message;
    return p ? *p : UnsubscribePlan{};
  }
  long long events() { return integer({"XLEN", eventsStreamKey(config_)}); }

  Config config_ = parseConfig("redis_prefix = t:\n", "x");
  StoreKeys keys_{"t:"};
  RedisConn redis_{server_->settings()};
};

TEST(PlanUnsubscribe, StoplistMemberInNormalFormAndTheEvent) {
  Config config = parseConfig("redis_prefix = t:\n", "x");
  auto p = planUnsubscribe(config, UnsubscribeToken{"acme", "Bob@Example.NET", "spring", "4ABC", 1}, kNow);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->guard.member, "bob@example.net");  // as mailgatectl stoplist add stores it
  EXPECT_EQ(p->guard.set_else, "t:acct:{acme}:stop");
  EXPECT_EQ(p->guard.set_if_equal, "t:acct:{acme}:stop:spring");
  EXPECT_EQ(p->guard.hash, "t:acct:{acme}");
  EXPECT_EQ(p->guard.field, "unsubscribe_scope");
  EXPECT_EQ(p->guard.value, "campaign");
  EXPECT_EQ(p->event.status, "unsubscribed");
  EXPECT_EQ(p->event.queue_id, "4ABC");
  EXPECT_EQ(p->event.campaign, "spring");
  EXPECT_EQ(p->event.time_ms, kNow);
}

TEST(PlanUnsubscribe, ABadRecipientIsInvalid) {
  Config config = parseConfig("", "x");
  auto p = planUnsubscribe(config, UnsubscribeToken{"acme", "not an address", "c", "q", 1}, kNow);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().kind, Error::Kind::Invalid);
}

TEST_F(RecordUnsubscribe, AddsToTheStoplistAndRecordsOnce) {
  auto first = recordUnsubscribe(redis_, plan("bob@example.net"));
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(*first);
  EXPECT_EQ(integer({"SISMEMBER", keys_.stoplist("acme"), "bob@example.net"}), 1);
  EXPECT_EQ(events(), 1);
  auto second = recordUnsubscribe(redis_, plan("bob@example.net"));
  ASSERT_TRUE(second);
  EXPECT_FALSE(*second);
  EXPECT_EQ(events(), 1);
  auto r = redis_.command({"HGET", keys_.campaignStats("acme", utcDate(kNow)), "spring:unsubscribed"});
  ASSERT_TRUE(r);
  EXPECT_EQ(replyString(r->get()), "1");
}

TEST_F(RecordUnsubscribe, CampaignScopeUsesTheCampaignList) {
  ASSERT_TRUE(redis_.command({"HSET", keys_.account("acme"), "unsubscribe_scope", "campaign"}));
  ASSERT_TRUE(recordUnsubscribe(redis_, plan("bob@example.net", "spring")));
  auto other = recordUnsubscribe(redis_, plan("bob@example.net", "autumn"));
  ASSERT_TRUE(other);
  EXPECT_TRUE(*other);  // another campaign: another list, another event
  EXPECT_EQ(integer({"SISMEMBER", keys_.campaignStoplist("acme", "spring"), "bob@example.net"}), 1);
  EXPECT_EQ(integer({"SISMEMBER", keys_.campaignStoplist("acme", "autumn"), "bob@example.net"}), 1);
  EXPECT_EQ(integer({"EXISTS", keys_.stoplist("acme")}), 0);
  EXPECT_EQ(events(), 2);
  // Without X-Campaign-Id the campaign is the day's: the account stoplist
  // (a list of the day would let tomorrow's mail through).
  ASSERT_TRUE(recordUnsubscribe(redis_, plan("carol@example.net", "2026-12-03")));
  EXPECT_EQ(integer({"SISMEMBER", keys_.stoplist("acme"), "carol@example.net"}), 1);
  EXPECT_EQ(integer({"EXISTS", keys_.campaignStoplist("acme", "2026-12-03")}), 0);
  EXPECT_TRUE(isDailyCampaign("2026-12-03"));
  EXPECT_FALSE(isDailyCampaign("2026-12-3x"));
  EXPECT_FALSE(isDailyCampaign("spring-2026"));
}

}  // namespace

// account_policy_test.cc — parsing of domain entries, rates and account fields.
#include "mailgate/account_policy.h"

#include <gtest/gtest.h>

using namespace mailgate;

TEST(AccountPolicy, DomainEntries) {
  auto e = parseDomainEntry("onmoderation,subdomains");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, DomainStatus::OnModeration);
  EXPECT_TRUE(e->subdomains);
  EXPECT_EQ(formatDomainEntry(*e), "onmoderation,subdomains");
  EXPECT_FALSE(parseDomainEntry("verified,bogus"));
  EXPECT_FALSE(parseDomainEntry("maybe"));
  EXPECT_FALSE(parseDomainEntry(""));
}

TEST(AccountPolicy, Rates) {
  EXPECT_EQ(parseRate("20/s")->period_ms, 1000u);
  EXPECT_EQ(parseRate("600/m")->count, 600u);
  EXPECT_EQ(parseRate("5/h")->period_ms, 3600000u);
  EXPECT_EQ(formatRate(*parseRate("600/m")), "600/m");
  for (const char* bad : {"", "5", "5/d", "0/s", "-1/s", "x/s", "5/"}) EXPECT_FALSE(parseRate(bad)) << bad;
}

TEST(AccountPolicy, Fields) {
  AccountPolicy a;
  EXPECT_FALSE(a.exists);
  for (auto [k, v] : std::vector<std::pair<const char*, const char*>>{
           {"state", "blocked"}, {"suppression", "accept-and-drop"}, {"subaddress", "yes"}, {"rate", "10/s"},
           {"rate:k1", "2/m"}, {"daily", "500"}, {"rcpts", "50"}, {"size", "1048576"}, {"unknown", "x"}}) {
    a.applyField(k, v);
  }
  EXPECT_TRUE(a.exists);
  EXPECT_EQ(a.state, AccountState::Blocked);
  EXPECT_EQ(a.suppression, Suppression::AcceptAndDrop);
  EXPECT_TRUE(a.subaddress);
  EXPECT_EQ(a.limits.rate.count, 10u);
  EXPECT_EQ(a.limits.key_rates.at("k1").period_ms, 60000u);
  EXPECT_EQ(a.limits.daily, 500u);
  EXPECT_EQ(a.limits.rcpts, 50u);
  EXPECT_EQ(a.limits.size, 1048576u);
}

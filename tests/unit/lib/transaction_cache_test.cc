// transaction_cache_test.cc — the policy service's per-connection cache of a
// transaction's account data: one entry per transaction and sender (instance,
// sasl_username, client address, account), expiry, the sender domain and the
// recipient it holds.
#include "mailgate/transaction_cache.h"

#include <gtest/gtest.h>

using namespace mailgate;
using namespace std::chrono_literals;
using Clock = TransactionCache::Clock;

namespace {

PolicyRequest request(const std::string& instance, const std::string& user = "acme/k1",
                      const std::string& client = "192.0.2.10") {
  PolicyRequest r;
  r.attrs = {{"request", "smtpd_access_policy"}, {"instance", instance}, {"sasl_username", user},
             {"client_address", client}};
  return r;
}

AccountPolicy policyOf(const std::string& name) {
  AccountPolicy p;
  p.name = name;
  p.exists = true;
  p.state = AccountState::Active;
  return p;
}

TEST(TransactionCache, OneEntryPerTransactionAndSender) {
  TransactionCache cache(5s);
  auto now = Clock::now();
  std::string key = cache.keyOf(request("a1.b2"), "acme");
  cache.store(key, policyOf("acme"), "example.org", "bob@example.net", now);
  ASSERT_NE(cache.account(key, "example.org", now), nullptr);
  EXPECT_EQ(cache.account(key, "", now)->name, "acme");
  EXPECT_EQ(cache.account(key, "EXAMPLE.org", now)->name, "acme");

  // Another transaction, key, client or account: never the cached data.
  EXPECT_EQ(cache.account(cache.keyOf(request("a1.b3"), "acme"), "", now), nullptr);
  EXPECT_EQ(cache.account(cache.keyOf(request("a1.b2", "other/k9"), "acme"), "", now), nullptr);
  EXPECT_EQ(cache.account(cache.keyOf(request("a1.b2", "acme/k2"), "acme"), "", now), nullptr);
  EXPECT_EQ(cache.account(cache.keyOf(request("a1.b2", "acme/k1", "192.0.2.11"), "acme"), "", now), nullptr);
  EXPECT_EQ(cache.account(cache.keyOf(request("a1.b2"), "other"), "", now), nullptr);
  // Parts cannot be shifted into one another.
  EXPECT_NE(cache.keyOf(request("a1.b2", "acme/k1", "192.0.2.10"), "x"),
            cache.keyOf(request("a1.b2\nacme/k1", "192.0.2.10", ""), "x"));

  // A new transaction replaces the entry.
  std::string next = cache.keyOf(request("a1.b3"), "acme");
  cache.store(next, policyOf("acme"), "example.org", "", now);
  EXPECT_EQ(cache.account(key, "", now), nullptr);
  EXPECT_NE(cache.account(next, "", now), nullptr);
}

TEST(TransactionCache, NothingWithoutInstanceOrTtl) {
  TransactionCache cache(5s);
  EXPECT_EQ(cache.keyOf(request(""), "acme"), "");
  EXPECT_EQ(cache.account("", "", Clock::now()), nullptr);
  TransactionCache off(0ms);
  EXPECT_EQ(off.keyOf(request("a1.b2"), "acme"), "");
}

TEST(TransactionCache, ExpiresAfterTtl) {
  TransactionCache cache(200ms);
  auto t0 = Clock::now();
  std::string key = cache.keyOf(request("a1.b2"), "acme");
  cache.store(key, policyOf("acme"), "example.org", "bob@example.net", t0);
  EXPECT_NE(cache.account(key, "", t0 + 199ms), nullptr);
  EXPECT_TRUE(cache.holdsRecipient("bob@example.net", t0 + 199ms));
  EXPECT_EQ(cache.account(key, "", t0 + 200ms), nullptr);
  EXPECT_FALSE(cache.holdsRecipient("bob@example.net", t0 + 200ms));
}

TEST(TransactionCache, SenderDomainAndRecipientHeld) {
  TransactionCache cache(5s);
  auto now = Clock::now();
  std::string key = cache.keyOf(request("a1.b2"), "acme");
  // Read by a recipient-context request: no sender domain entries.
  cache.store(key, policyOf("acme"), "", "bob@example.net", now);
  EXPECT_NE(cache.account(key, "", now), nullptr);
  EXPECT_EQ(cache.account(key, "example.org", now), nullptr);
  EXPECT_TRUE(cache.holdsRecipient("bob@example.net", now));
  EXPECT_FALSE(cache.holdsRecipient("carol@example.net", now));

  cache.store(key, policyOf("acme"), "example.org", "", now);
  EXPECT_FALSE(cache.holdsRecipient("", now));
  EXPECT_FALSE(cache.holdsRecipient("bob@example.net", now));
  cache.storeRecipient("carol@example.net", now + 1s);
  EXPECT_TRUE(cache.holdsRecipient("carol@example.net", now + 1s));
  // The recipient's entries expire on their own clock.
  TransactionCache shortlived(2s);
  shortlived.store(key, policyOf("acme"), "example.org", "", now);
  shortlived.storeRecipient("carol@example.net", now + 1500ms);
  EXPECT_TRUE(shortlived.holdsRecipient("carol@example.net", now + 3s));
  EXPECT_EQ(shortlived.account(key, "", now + 3s), nullptr);

  cache.clear();
  EXPECT_EQ(cache.account(key, "", now), nullptr);
  EXPECT_FALSE(cache.holdsRecipient("carol@example.net", now));
}

}  // namespace

// store.h — what the daemons read about accounts: API-key lookup for AUTH
// (one Redis round trip, brute-force counter included, cached for
// auth_cache_ttl) and the allowed-networks index for IP pinning. Redis key
// layout is in man/mailgate-redis.7; writes live in admin.h.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mailgate/cidr.h"
#include "mailgate/config.h"
#include "mailgate/redis.h"
#include "mailgate/result.h"

namespace mailgate {

enum class AccountState { Active, Blocked, Deleted };
struct AccountPolicy;
struct MessageAccount;
std::optional<AccountState> parseAccountState(std::string_view s);
const char* accountStateName(AccountState s);

struct KeyInfo {
  std::string account, key_id;
  bool smtp = true, sandbox = false;
  AccountState account_state = AccountState::Deleted;
};

struct KeyLookup {
  enum class Kind { Found, Unknown, Throttled };
  Kind kind = Kind::Unknown;
  KeyInfo info;
  // This unknown key was the client's auth_fail_limit-th failure: from now on
  // (until auth_fail_window passes without failures) it is Throttled.
  bool throttling_starts = false;
};

// Names of the Redis keys, in one place.
struct StoreKeys {
  explicit StoreKeys(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string apiKey(std::string_view sha256_hex) const { return prefix_ + "key:" + std::string(sha256_hex); }
  std::string keyId(std::string_view id) const { return prefix_ + "keyid:" + std::string(id); }
  std::string account(std::string_view a) const { return prefix_ + "acct:{" + std::string(a) + "}"; }
  std::string accountKeys(std::string_view a) const { return account(a) + ":keys"; }
  std::string accountNets(std::string_view a) const { return account(a) + ":nets"; }
  std::string accounts() const { return prefix_ + "accounts"; }
  std::string nets() const { return prefix_ + "nets"; }
  std::string authFailures(std::string_view ip) const { return prefix_ + "authfail:" + std::string(ip); }
  std::string domains(std::string_view a) const { return account(a) + ":domains"; }
  std::string stoplist(std::string_view a) const { return account(a) + ":stop"; }
  std::string errors(std::string_view a) const { return account(a) + ":errors"; }
  // Recipients unsubscribed from one campaign (unsubscribe_scope=campaign).
  std::string campaignStoplist(std::string_view a, std::string_view campaign) const {
    return account(a) + ":stop:" + std::string(campaign);
  }
  std::string complaints(std::string_view a) const { return prefix_ + "complaints:{" + std::string(a) + "}"; }
  // Unsubscribe clicks recorded by mailgate-web: field "RCPT CAMPAIGN".
  std::string unsubscribes(std::string_view a) const { return prefix_ + "unsubscribes:{" + std::string(a) + "}"; }
  std::string fblKept() const { return prefix_ + "fbl:kept"; }
  std::string fblStats(std::string_view day) const { return prefix_ + "fbl:stats:" + std::string(day); }
  std::string blockedCampaigns(std::string_view a) const { return account(a) + ":blocked"; }
  std::string dkim(std::string_view domain) const { return prefix_ + "dkim:" + std::string(domain); }
  std::string dkimDomains() const { return prefix_ + "dkim:domains"; }
  std::string dkimVersion() const { return prefix_ + "dkim:version"; }
  std::string bounced(std::string_view a) const { return prefix_ + "bounced:{" + std::string(a) + "}"; }
  std::string bouncedGlobal() const { return prefix_ + "bounced"; }
  std::string bouncedInfo() const { return prefix_ + "bounced:info"; }
  std::string softBounces(std::string_view address) const { return prefix_ + "softbounce:" + std::string(address); }
  std::string webhookDead(std::string_view a) const { return prefix_ + "webhook:dead:{" + std::string(a) + "}"; }
  std::string webhookDeadTrimmed() const { return prefix_ + "webhook:dead:trimmed"; }
  std::string queueRecord(std::string_view qid) const { return prefix_ + "q:" + std::string(qid); }
  std::string tracker(std::string_view node) const { return prefix_ + "tracker:" + std::string(node); }
  std::string trackers() const { return prefix_ + "trackers"; }
  std::string stats(std::string_view a, std::string_view day) const {
    return prefix_ + "stats:{" + std::string(a) + "}:" + std::string(day);
  }
  std::string campaignStats(std::string_view a, std::string_view day) const {
    return prefix_ + "cstats:{" + std::string(a) + "}:" + std::string(day);
  }
  std::string campaigns(std::string_view a, std::string_view day) const {
    return prefix_ + "campaigns:{" + std::string(a) + "}:" + std::string(day);
  }
  std::string refusedWithoutAccount(std::string_view day) const { return prefix_ + "noaccount:" + std::string(day); }
  std::string unrecorded(std::string_view day) const { return prefix_ + "unrecorded:" + std::string(day); }
  std::string quota(std::string_view a, std::string_view day) const {
    return prefix_ + "quota:{" + std::string(a) + "}:" + std::string(day);
  }
  std::string rate(std::string_view a) const { return prefix_ + "rl:{" + std::string(a) + "}"; }
  std::string keyRate(std::string_view a, std::string_view id) const { return rate(a) + ":" + std::string(id); }
  const std::string& prefix() const { return prefix_; }

 private:
  std::string prefix_;
};

class Store {
 public:
  explicit Store(const Config& config);

  // Looks up an API key (given in clear, hashed here). Counts a failure for
  // `client_ip` when the key is unknown and reports Throttled once the
  // client is over auth_fail_limit. Found keys are cached for auth_cache_ttl.
  Result<KeyLookup> lookupKey(RedisConn& redis, std::string_view api_key, std::string_view client_ip);

  // The account whose allowed networks contain `ip` (longest prefix wins),
  // or nullopt. The networks index is cached for auth_cache_ttl.
  Result<std::optional<std::string>> accountForAddress(RedisConn& redis, std::string_view ip);

  // The account data the envelope rules need for one request, in one round
  // trip: the account hash, the sender domain's entries (and its parents'),
  // and whether the recipient (or its base address) is in the stoplist or a
  // bounce set. `sender_domain` / `recipient` may be empty.
  Result<AccountPolicy> loadAccountPolicy(RedisConn& redis, const std::string& account,
                                          const std::string& sender_domain, const std::string& recipient);

  // Replaces `policy`'s stoplist and bounce entries by those of `recipient`
  // (or its base address), in one round trip; `policy` is unchanged on error.
  Status loadRecipientSets(RedisConn& redis, AccountPolicy& policy, const std::string& recipient);

  // What the message rules need at end of message, in one round trip: the
  // account's state, EMPTY-FROM mode and default sender, the entries of the
  // From domains (every From mailbox's), whether `campaign` is blocked, whether the key is a sandbox key,
  // which recipients are in the stoplist or a bounce set, and dkim:version
  // (so that signing with cached keys costs no round trip of its own).
  Result<MessageAccount> loadMessageAccount(RedisConn& redis, const std::string& account, const std::string& key_id,
                                            const std::vector<std::string>& from_domains,
                                            const std::string& campaign,
                                            const std::vector<std::string>& rcpts);

  const StoreKeys& keys() const { return keys_; }

  // Applies a reloaded configuration's auth_cache_ttl and auth_fail_* settings.
  void reconfigure(const Config& config);

 private:
  using Clock = std::chrono::steady_clock;

  StoreKeys keys_;
  std::atomic<std::chrono::milliseconds> ttl_;
  std::atomic<unsigned> fail_limit_;
  std::atomic<std::chrono::seconds> fail_window_;

  std::mutex mutex_;
  std::unordered_map<std::string, std::pair<Clock::time_point, KeyInfo>> key_cache_;
  std::vector<std::pair<Cidr, std::string>> nets_;
  Clock::time_point nets_loaded_{};
  bool nets_valid_ = false;
};

}  // namespace mailgate

// admin.h — the writes behind mailgatectl: accounts, API keys and allowed
// networks. Every function checks its input and returns a one-line Error for
// unknown accounts, duplicates, bad values and every Redis error reply.
#pragma once

#include <openssl/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mailgate/dkim_keys.h"
#include "mailgate/redis.h"
#include "mailgate/result.h"
#include "mailgate/store.h"

namespace mailgate {

struct AccountView {
  std::string name, state, default_sender, created;
  std::string unsubscribe, unsubscribe_scope;  // "off" and "account" when unset
  std::vector<std::string> nets;
  size_t keys = 0;
};

struct KeyView {
  std::string id, account, created;
  bool smtp = true, sandbox = false;
};

struct DkimEntry {
  std::string domain, selector, algo, account, created, pem;
  int bits = 0;
  // The private key parsed once (parseDkimPrivateKey, dkim_signer.h), shared
  // by every signature made with it; pem is wiped then. Empty when unparsed
  // or unreadable.
  std::shared_ptr<EVP_PKEY> parsed = nullptr;
};

// The keys of a dkim:<domain> hash (selector -> JSON); bad entries are skipped.
std::vector<DkimEntry> parseDkimHash(const std::string& domain, const redisReply* hash);

// A hard-bounced address, with what the tracker recorded (empty if unknown).
struct BounceEntry {
  std::string address;
  int64_t time_ms = 0;
  std::string account, queue_id, dsn, reason;
};

struct WebhookView {
  std::string account, url, secret;
  uint64_t failures = 0;  // entries in the dead-letter stream
};

struct WebhookFailure {
  std::string id;  // of the dead-letter entry
  int64_t time_ms = 0;
  unsigned attempts = 0;
  std::string error, event;  // event: its webhook JSON
};

struct NewKey {
  std::string key;  // shown once, never stored
  KeyView view;
};

// Account names: 1-64 of [A-Za-z0-9._-] (they appear in "ACCOUNT/KEYID").
bool validAccountName(std::string_view name);

// The only way Admin talks to Redis: no reply goes unchecked. command() and
// pipeline() fail on the first error reply; transaction() runs its commands
// as one MULTI/EXEC and fails when Redis refuses one of them (then nothing is
// applied), discards the transaction, or answers one with an error inside
// EXEC's result. The Error's message is Redis's own error text.
class CheckedRedis {
 public:
  explicit CheckedRedis(RedisConn& conn) : conn_(conn) {}
  Result<Reply> command(const Command& command) { return conn_.command(command); }
  Result<std::vector<Reply>> pipeline(const std::vector<Command>& commands);
  // The replies of `commands` (not of MULTI/EXEC), in order.
  Result<std::vector<Reply>> transaction(const std::vector<Command>& commands);

 private:
  RedisConn& conn_;
};

class Admin {
 public:
  Admin(RedisConn& redis, const StoreKeys& keys) : redis_(redis), keys_(keys) {}

  Status addAccount(const std::string& name, const std::string& default_sender);
  // Each assignment is e.g. "state=active|blocked|deleted" or
  // "default_sender=ADDR"; all are checked before any is stored.
  Status setAccount(const std::string& name, const std::vector<std::string>& assignments);
  Result<AccountView> showAccount(const std::string& name);

  Result<NewKey> createKey(const std::string& account, bool smtp, bool sandbox);
  Result<std::vector<KeyView>> listKeys(const std::string& account);
  Result<KeyView> revokeKey(const std::string& key_id);

  // Sending domains: status verified|onmoderation|prohibited; `subdomains`
  // lets the entry cover every subdomain. add fails on an existing domain.
  Status addDomain(const std::string& account, const std::string& domain, const std::string& status,
                   bool subdomains);
  Status setDomain(const std::string& account, const std::string& domain, const std::string& status,
                   std::optional<bool> subdomains);
  Status removeDomain(const std::string& account, const std::string& domain);
  Result<std::vector<std::pair<std::string, std::string>>> listDomains(const std::string& account);

  // Stoplist entries are normalised addresses (domain in lower case).
  Result<std::string> stoplistAdd(const std::string& account, const std::string& address);
  Result<std::string> stoplistRemove(const std::string& account, const std::string& address);
  Result<std::vector<std::string>> stoplistList(const std::string& account);

  // The global hard-bounce set (and each account's bounced set).
  Result<std::vector<BounceEntry>> bouncedList(const std::string& address_or_empty);
  Result<std::string> bouncedRemove(const std::string& address);

  // Each assignment is rate=N/s|N/m|N/h, daily=N, rcpts=N or size=N (0 or
  // "none" removes the limit); with `key_id`, only rate= and it applies to
  // that key. All are checked before any is stored.
  Status setLimit(const std::string& account, const std::string& key_id, const std::vector<std::string>& assignments);

  // Blocked campaigns: their messages get "550 5.7.1 issue is blocked".
  Status blockCampaign(const std::string& account, const std::string& campaign);
  Status unblockCampaign(const std::string& account, const std::string& campaign);

  // DKIM keys: dkim:<domain> hash selector -> JSON {algo, bits, key, account,
  // created}; every change bumps dkim:version so signers reload.
  Status putDkimKey(const std::string& domain, const std::string& selector, const DkimKey& key,
                    const std::string& account);
  // Removes one selector, or every key of the domain when `selector` is empty.
  Status removeDkimKey(const std::string& domain, const std::string& selector);
  // All keys, or those of one domain.
  Result<std::vector<DkimEntry>> listDkimKeys(const std::string& domain);

  // Returns the canonical CIDR text.
  // Networks wider than /16 (IPv4) or /32 (IPv6) need `wide`: an allowed
  // network may also relay (policy_context=relay), so 0.0.0.0/0 by mistake
  // would make an open relay under the account's name.
  Result<std::string> allowNet(const std::string& account, const std::string& cidr, bool wide = false);
  Result<std::string> denyNet(const std::string& account, const std::string& cidr);

  // Webhooks (acct:{A} webhook_url, webhook_secret): set returns the new
  // secret; failures are the newest entries of webhook:dead:{A}.
  Result<std::string> setWebhook(const std::string& account, const std::string& url);
  Status removeWebhook(const std::string& account);
  Result<WebhookView> showWebhook(const std::string& account);
  Result<std::vector<WebhookFailure>> webhookFailures(const std::string& account, unsigned count);

 private:
  Status requireAccount(const std::string& name);

  CheckedRedis redis_;
  const StoreKeys& keys_;
};

}  // namespace mailgate

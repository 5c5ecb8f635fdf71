// account_policy.h — what the envelope rules need to know about an account:
// state, sending domains, stoplist and bounce hits, suppression mode and
// limits. Parsed from the account's Redis hashes (mailgate-redis(7)); the
// loader fills domains/stoplist/bounced only for the addresses in question.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "mailgate/store.h"

namespace mailgate {

enum class DomainStatus { Verified, OnModeration, Prohibited };

struct DomainEntry {
  DomainStatus status = DomainStatus::Verified;
  bool subdomains = false;  // the entry also covers its subdomains
};
// "verified", "onmoderation", "prohibited", each optionally ",subdomains".
std::optional<DomainEntry> parseDomainEntry(std::string_view text);
std::string formatDomainEntry(const DomainEntry& entry);
std::optional<DomainStatus> parseDomainStatus(std::string_view text);
const char* domainStatusName(DomainStatus s);

// A message rate: `count` messages per `period_ms` (GCRA, burst = count).
struct Rate {
  uint64_t count = 0, period_ms = 0;
  bool set() const { return count > 0; }
};
// "20/s", "600/m", "10000/h"; nullopt on anything else.
std::optional<Rate> parseRate(std::string_view text);
std::string formatRate(const Rate& rate);

struct Limits {
  Rate rate;                           // per account
  std::map<std::string, Rate> key_rates;  // per key id
  uint64_t daily = 0;                  // messages per UTC day, 0 = unlimited
  uint64_t rcpts = 0;                  // per message, 0 = max_recipients
  uint64_t size = 0;                   // bytes, 0 = max_message_size
};

enum class Suppression { Reject, AcceptAndDrop };

// unsubscribe=off|header|one-click: what the milter adds to the account's
// mail (list_unsubscribe.h); unsubscribe_scope=account|campaign: what a
// click stops (mailgate-web: the account's stoplist or the campaign's list).
enum class UnsubscribeMode { Off, Header, OneClick };
std::optional<UnsubscribeMode> parseUnsubscribeMode(std::string_view text);
enum class UnsubscribeScope { Account, Campaign };
std::optional<UnsubscribeScope> parseUnsubscribeScope(std::string_view text);

struct AccountPolicy {
  std::string name;
  bool exists = false;
  AccountState state = AccountState::Deleted;
  Suppression suppression = Suppression::Reject;
  bool subaddress = false;  // "+tag" recipients match their base address
  Limits limits;
  std::map<std::string, DomainEntry> domains;  // sending domains (those loaded)
  std::set<std::string> stoplist, bounced;     // members (those loaded)
  // Recipients unsubscribed from the message's campaign (unsubscribe_scope=
  // campaign; loaded by Store::loadMessageAccount only, the milter drops them).
  std::set<std::string> campaign_stoplist;

  // Applies one field of the acct:{A} hash; unknown fields are ignored.
  void applyField(std::string_view name, std::string_view value);
};

}  // namespace mailgate

// store.cc — daemon-side reads of accounts and keys: the key lookup script
// (failure counter + key + account state in one EVALSHA), the key cache, and
// the allowed-networks index used for IP pinning.
#include "mailgate/store.h"

#include <algorithm>

#include "mailgate/account_policy.h"
#include "mailgate/address.h"
#include "mailgate/crypto.h"
#include "mailgate/rules_envelope.h"
#include "mailgate/rules_message.h"

namespace mailgate {
namespace {

// KEYS[1] key:<sha256>  KEYS[2] authfail:<ip>
// ARGV[1] prefix  ARGV[2] failure limit (0 = off)  ARGV[3] failure window (s)
const RedisScript kLookupKey(R"lua(
local limit = tonumber(ARGV[2])
if limit > 0 and tonumber(redis.call('GET', KEYS[2]) or '0') >= limit then
  return {'throttled'}
end
local k = redis.call('HMGET', KEYS[1], 'account', 'id', 'smtp', 'sandbox')
if not k[1] then
  if limit > 0 then
    local failures = redis.call('INCR', KEYS[2])
    redis.call('EXPIRE', KEYS[2], ARGV[3])
    if failures == limit then return {'unknown', 'throttling'} end
  end
  return {'unknown'}
end
local state = redis.call('HGET', ARGV[1] .. 'acct:{' .. k[1] .. '}', 'state')
return {'found', k[1], k[2] or '', k[3] or '1', k[4] or '0', state or 'deleted'}
)lua");

// The three sets a recipient is looked up in, for each of `forms`.
void addMembershipQueries(std::vector<Command>& cmds, const StoreKeys& keys, const std::string& account,
                          const std::vector<std::string>& forms) {
  if (forms.empty()) return;
  for (const std::string& set : {keys.stoplist(account), keys.bounced(account), keys.bouncedGlobal()}) {
    Command cmd{"SMISMEMBER", set};
    cmd.insert(cmd.end(), forms.begin(), forms.end());
    cmds.push_back(std::move(cmd));
  }
}

// Reads the replies of addMembershipQueries (starting at `first`) into the policy.
void applyMemberships(AccountPolicy& policy, const std::vector<Reply>& replies, size_t first,
                      const std::vector<std::string>& forms) {
  if (forms.empty()) return;
  for (size_t set = 0; set < 3; ++set) {
    const redisReply* members = replies[first + set].get();
    for (size_t i = 0; i < members->elements && i < forms.size(); ++i) {
      if (members->element[i]->integer == 1) (set == 0 ? policy.stoplist : policy.bounced).insert(forms[i]);
    }
  }
}

// The sending-domain entries of `wanted` (empty ones skipped) and their
// parents: the query, and the domains it asks for (in HMGET order, each once).
std::vector<std::string> addDomainQuery(std::vector<Command>& cmds, const StoreKeys& keys,
                                        const std::string& account, const std::vector<std::string>& wanted) {
  std::vector<std::string> domains;
  for (const auto& domain : wanted) {
    if (domain.empty()) continue;
    std::vector<std::string> forms = parentDomains(domain);
    forms.insert(forms.begin(), toLower(domain));
    for (auto& d : forms) {
      if (std::find(domains.begin(), domains.end(), d) == domains.end()) domains.push_back(std::move(d));
    }
  }
  if (domains.empty()) return domains;
  Command hmget{"HMGET", keys.domains(account)};
  hmget.insert(hmget.end(), domains.begin(), domains.end());
  cmds.push_back(std::move(hmget));
  return domains;
}

// Reads the reply of addDomainQuery into the policy.
void applyDomainEntries(AccountPolicy& policy, const redisReply* entries, const std::vector<std::string>& domains) {
  for (size_t i = 0; i < entries->elements && i < domains.size(); ++i) {
    if (auto e = parseDomainEntry(replyString(entries->element[i]))) policy.domains[domains[i]] = *e;
  }
}

// Every address the recipients are looked up under (with and without +tag).
std::vector<std::string> lookupForms(const std::vector<std::string>& rcpts) {
  std::vector<std::string> forms;
  for (const auto& r : rcpts) {
    if (auto keys = recipientKeys(r, true)) {
      for (auto& f : *keys) forms.push_back(std::move(f));
    }
  }
  return forms;
}

}  // namespace

std::optional<AccountState> parseAccountState(std::string_view s) {
  if (s == "active") return AccountState::Active;
  if (s == "blocked") return AccountState::Blocked;
  if (s == "deleted") return AccountState::Deleted;
  return std::nullopt;
}

const char* accountStateName(AccountState s) {
  switch (s) {
    case AccountState::Active: return "active";
    case AccountState::Blocked: return "blocked";
    case AccountState::Deleted: return "deleted";
  }
  return "deleted";
}

Store::Store(const Config& config)
    : keys_(config.redis_prefix),
      ttl_(config.auth_cache_ttl),
      fail_limit_(config.auth_fail_limit),
      fail_window_(config.auth_fail_window) {}

void Store::reconfigure(const Config& config) {
  ttl_ = config.auth_cache_ttl;
  fail_limit_ = config.auth_fail_limit;
  fail_window_ = config.auth_fail_window;
}

Result<KeyLookup> Store::lookupKey(RedisConn& redis, std::string_view api_key, std::string_view client_ip) {
  std::string sha = sha256Hex(api_key);
  auto now = Clock::now();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = key_cache_.find(sha);
    if (it != key_cache_.end()) {
      if (now - it->second.first < ttl_.load()) return KeyLookup{KeyLookup::Kind::Found, it->second.second};
      key_cache_.erase(it);
    }
  }
  unsigned fail_limit = fail_limit_;
  bool count_failures = fail_limit > 0 && !client_ip.empty();
  auto r = redis.eval(kLookupKey, {keys_.apiKey(sha), keys_.authFailures(count_failures ? client_ip : "-")},
                      {keys_.prefix(), count_failures ? std::to_string(fail_limit) : "0",
                       std::to_string(fail_window_.load().count())});
  if (!r) return r.error();
  const redisReply* reply = r->get();
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) {
    return Error{Error::Kind::Protocol, "key lookup: unexpected reply"};
  }
  std::string kind = replyString(reply->element[0]);
  if (kind == "throttled") return KeyLookup{KeyLookup::Kind::Throttled, {}};
  if (kind == "unknown") {
    KeyLookup unknown;
    unknown.throttling_starts = reply->elements == 2 && replyString(reply->element[1]) == "throttling";
    return unknown;
  }
  if (kind != "found" || reply->elements != 6) return Error{Error::Kind::Protocol, "key lookup: unexpected reply"};
  KeyInfo info;
  info.account = replyString(reply->element[1]);
  info.key_id = replyString(reply->element[2]);
  info.smtp = replyString(reply->element[3]) == "1";
  info.sandbox = replyString(reply->element[4]) == "1";
  info.account_state = parseAccountState(replyString(reply->element[5])).value_or(AccountState::Deleted);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (key_cache_.size() > 100000) key_cache_.clear();  // bound memory under a flood of keys
    key_cache_[sha] = {now, info};
  }
  return KeyLookup{KeyLookup::Kind::Found, info};
}

Result<AccountPolicy> Store::loadAccountPolicy(RedisConn& redis, const std::string& account,
                                              const std::string& sender_domain, const std::string& recipient) {
  std::vector<Command> cmds{{"HGETALL", keys_.account(account)}};
  std::vector<std::string> domains = addDomainQuery(cmds, keys_, account, {sender_domain});
  std::vector<std::string> forms = lookupForms({recipient});
  addMembershipQueries(cmds, keys_, account, forms);
  auto replies = checkedPipeline(redis, cmds);
  if (!replies) return replies.error();
  AccountPolicy policy;
  policy.name = account;
  const redisReply* hash = (*replies)[0].get();
  for (size_t i = 0; i + 1 < hash->elements; i += 2) {
    policy.applyField(replyString(hash->element[i]), replyString(hash->element[i + 1]));
  }
  size_t next = 1;
  if (!domains.empty()) {
    applyDomainEntries(policy, (*replies)[next++].get(), domains);
  }
  applyMemberships(policy, *replies, next, forms);
  return policy;
}

Status Store::loadRecipientSets(RedisConn& redis, AccountPolicy& policy, const std::string& recipient) {
  std::vector<std::string> forms = lookupForms({recipient});
  AccountPolicy sets;
  if (!forms.empty()) {
    std::vector<Command> cmds;
    addMembershipQueries(cmds, keys_, policy.name, forms);
    auto replies = checkedPipeline(redis, cmds);
    if (!replies) return replies.error();
    applyMemberships(sets, *replies, 0, forms);
  }
  policy.stoplist = std::move(sets.stoplist);
  policy.bounced = std::move(sets.bounced);
  return okStatus();
}

Result<MessageAccount> Store::loadMessageAccount(RedisConn& redis, const std::string& account,
                                                 const std::string& key_id,
                                                 const std::vector<std::string>& from_domains,
                                                 const std::string& campaign, const std::vector<std::string>& rcpts) {
  static const char* kFields[] = {"state", "suppression", "subaddress", "empty_from", "default_sender",
                                  "dkim_domain", "unsubscribe"};
  std::vector<Command> cmds{{"HMGET", keys_.account(account)}};
  cmds[0].insert(cmds[0].end(), std::begin(kFields), std::end(kFields));
  cmds.push_back({"SISMEMBER", keys_.blockedCampaigns(account), campaign});
  cmds.push_back({"HGET", keys_.keyId(key_id.empty() ? "-" : key_id), "sandbox"});
  cmds.push_back({"GET", keys_.dkimVersion()});
  std::vector<std::string> domains = addDomainQuery(cmds, keys_, account, from_domains);
  std::vector<std::string> forms = lookupForms(rcpts);
  addMembershipQueries(cmds, keys_, account, forms);
  const bool campaign_list = !forms.empty() && !campaign.empty();
  if (campaign_list) {
    cmds.push_back({"SMISMEMBER", keys_.campaignStoplist(account, campaign)});
    cmds.back().insert(cmds.back().end(), forms.begin(), forms.end());
  }
  auto replies = checkedPipeline(redis, cmds);
  if (!replies) return replies.error();
  MessageAccount data;
  data.policy.name = account;
  const redisReply* fields = (*replies)[0].get();
  for (size_t i = 0; i < fields->elements && i < std::size(kFields); ++i) {
    std::string value = replyString(fields->element[i]);
    // mailgatectl stores the default sender and dkim_domain in normal form; an
    // older or hand-written entry is normalised here (an invalid one ignored).
    if (i == 3) {
      data.empty_from = parseEmptyFromMode(value);
    } else if (i == 4) {
      auto sender = parseMailbox(value);
      data.default_sender = sender ? sender->str() : "";
    } else if (i == 5) {
      data.dkim_domain = normalHostname(value).value_or("");
    } else if (i == 6) {
      data.unsubscribe = parseUnsubscribeMode(value).value_or(UnsubscribeMode::Off);
    } else if (fields->element[i]->type != REDIS_REPLY_NIL) {
      data.policy.applyField(kFields[i], value);
    }
  }
  data.campaign_blocked = (*replies)[1]->integer == 1;
  data.sandbox = replyString((*replies)[2].get()) == "1";
  data.dkim_version = replyString((*replies)[3].get());
  size_t next = 4;
  if (!domains.empty()) {
    applyDomainEntries(data.policy, (*replies)[next++].get(), domains);
  }
  applyMemberships(data.policy, *replies, next, forms);
  if (campaign_list) {
    const redisReply* members = replies->back().get();
    for (size_t i = 0; i < members->elements && i < forms.size(); ++i) {
      if (members->element[i]->integer == 1) data.policy.campaign_stoplist.insert(forms[i]);
    }
  }
  return data;
}

Result<std::optional<std::string>> Store::accountForAddress(RedisConn& redis, std::string_view ip) {
  auto now = Clock::now();
  std::unique_lock<std::mutex> lock(mutex_);
  if (!nets_valid_ || now - nets_loaded_ >= ttl_.load()) {
    lock.unlock();
    auto r = redis.command({"HGETALL", keys_.nets()});
    if (!r) return r.error();
    std::vector<std::pair<Cidr, std::string>> nets;
    for (size_t i = 0; i + 1 < (*r)->elements; i += 2) {
      if (auto cidr = parseCidr(replyString((*r)->element[i]))) {
        nets.emplace_back(*cidr, replyString((*r)->element[i + 1]));
      }
    }
    lock.lock();
    nets_ = std::move(nets);
    nets_loaded_ = now;
    nets_valid_ = true;
  }
  const std::pair<Cidr, std::string>* best = nullptr;
  for (const auto& entry : nets_) {
    if (entry.first.contains(ip) && (best == nullptr || entry.first.prefix > best->first.prefix)) best = &entry;
  }
  if (best == nullptr) return std::optional<std::string>();
  return std::optional<std::string>(best->second);
}

}  // namespace mailgate

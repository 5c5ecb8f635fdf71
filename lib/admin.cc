// admin.cc — account, key and network administration in Redis (see
// man/mailgate-redis.7 for the keys), every reply checked (CheckedRedis).
// API keys are generated from OpenSSL's RNG, shown once and stored only as
// their SHA-256.
#include "mailgate/admin.h"

#include <algorithm>
#include <utility>
#include <nlohmann/json.hpp>

#include "mailgate/account_policy.h"
#include "mailgate/address.h"
#include "mailgate/cidr.h"
#include "mailgate/crypto.h"
#include "mailgate/events.h"
#include "mailgate/limits.h"
#include "mailgate/rules_message.h"

namespace mailgate {
namespace {

Error invalid(std::string message) { return Error{Error::Kind::Invalid, std::move(message)}; }

std::string nowIso() { return utcTimestamp(nowMillis()); }

// A default sender as stored: an RFC 5321 mailbox in its normal form (IDN
// domain as A-labels), at most 254 octets (RFC 5321 4.5.3.1.3); "" stays "".
Result<std::string> normalSender(const std::string& sender) {
  if (sender.empty()) return sender;
  auto m = parseMailbox(sender);
  if (!m || m->domain.front() == '[' || m->str().size() > 254) {
    return invalid("bad default sender \"" + sender + "\": expected local@domain, at most 254 octets");
  }
  return m->str();
}

}  // namespace

bool validAccountName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-';
    if (!ok) return false;
  }
  return true;
}

Result<std::vector<Reply>> CheckedRedis::pipeline(const std::vector<Command>& commands) {
  return checkedPipeline(conn_, commands);
}

Result<std::vector<Reply>> CheckedRedis::transaction(const std::vector<Command>& commands) {
  auto exec = mailgate::transaction(conn_, commands);
  if (!exec) return exec.error();
  std::vector<Reply> out;
  for (size_t i = 0; i < (*exec)->elements; ++i) {
    out.emplace_back(std::exchange((*exec)->element[i], nullptr));  // freeReplyObject skips null elements
  }
  return out;
}

Status Admin::requireAccount(const std::string& name) {
  auto r = redis_.command({"SISMEMBER", keys_.accounts(), name});
  if (!r) return r.error();
  if ((*r)->integer != 1) return invalid("unknown account \"" + name + "\"");
  return okStatus();
}

Status Admin::addAccount(const std::string& name, const std::string& default_sender) {
  if (!validAccountName(name)) {
    return invalid("bad account name \"" + name + "\": use 1-64 letters, digits, '.', '_' or '-'");
  }
  auto sender = normalSender(default_sender);
  if (!sender) return sender.error();
  auto added = redis_.command({"SADD", keys_.accounts(), name});
  if (!added) return added.error();
  if ((*added)->integer == 0) return invalid("account \"" + name + "\" already exists");
  auto r = redis_.command({"HSET", keys_.account(name), "state", "active", "default_sender", *sender,
                           "created", nowIso()});
  if (!r) return r.error();
  return okStatus();
}

namespace {

// "name=value" split at the first '='.
Result<std::pair<std::string, std::string>> assignmentParts(const std::string& assignment) {
  size_t eq = assignment.find('=');
  if (eq == std::string::npos) return invalid("expected name=value, got \"" + assignment + "\"");
  return std::pair{assignment.substr(0, eq), assignment.substr(eq + 1)};
}

// The value an account setting is stored as, checked (and normalised: domains
// and the default sender in their Redis form).
Result<std::string> accountSetting(const std::string& key, const std::string& value) {
  if (key == "state") {
    if (!parseAccountState(value)) return invalid("bad state \"" + value + "\": expected active, blocked or deleted");
  } else if (key == "suppression") {
    if (value != "reject" && value != "accept-and-drop") {
      return invalid("bad suppression \"" + value + "\": expected reject or accept-and-drop");
    }
  } else if (key == "dkim_domain") {
    if (value.empty()) return value;
    auto d = normalHostname(value);
    if (!d) return invalid("bad dkim_domain \"" + value + "\"");
    return *d;
  } else if (key == "empty_from") {
    if (!parseEmptyFromMode(value)) return invalid("bad empty_from \"" + value + "\": expected mark, reject or rewrite");
  } else if (key == "subaddress") {
    if (value != "yes" && value != "no") return invalid("bad subaddress \"" + value + "\": expected yes or no");
  } else if (key == "default_sender") {
    return normalSender(value);
  } else {
    return invalid("unknown account setting \"" + key + "\" (state, default_sender, suppression, subaddress, empty_from, dkim_domain)");
  }
  return value;
}

}  // namespace

Status Admin::setAccount(const std::string& name, const std::vector<std::string>& assignments) {
  Command hset{"HSET", keys_.account(name)};  // one command: all settings or none
  for (const auto& assignment : assignments) {
    auto kv = assignmentParts(assignment);
    if (!kv) return kv.error();
    auto value = accountSetting(kv->first, kv->second);
    if (!value) return value.error();
    hset.push_back(kv->first);
    hset.push_back(*value);
  }
  if (assignments.empty()) return invalid("expected name=value");
  if (Status s = requireAccount(name); !s) return s;
  auto r = redis_.command(hset);
  if (!r) return r.error();
  return okStatus();
}

Result<AccountView> Admin::showAccount(const std::string& name) {
  if (Status s = requireAccount(name); !s) return s.error();
  auto r = redis_.pipeline({{"HGETALL", keys_.account(name)},
                            {"SMEMBERS", keys_.accountNets(name)},
                            {"SCARD", keys_.accountKeys(name)}});
  if (!r) return r.error();
  AccountView v;
  v.name = name;
  v.state = hashField((*r)[0].get(), "state");
  v.default_sender = hashField((*r)[0].get(), "default_sender");
  v.created = hashField((*r)[0].get(), "created");
  for (size_t i = 0; i < (*r)[1]->elements; ++i) v.nets.push_back(replyString((*r)[1]->element[i]));
  v.keys = static_cast<size_t>((*r)[2]->integer);
  return v;
}

Result<NewKey> Admin::createKey(const std::string& account, bool smtp, bool sandbox) {
  if (Status s = requireAccount(account); !s) return s.error();
  NewKey k;
  k.key = "mg_" + base64UrlEncode(randomBytes(24));  // 192 random bits
  k.view = KeyView{"k" + toHex(randomBytes(6)), account, nowIso(), smtp, sandbox};
  std::string sha = sha256Hex(k.key);
  auto claimed = redis_.command({"HSETNX", keys_.keyId(k.view.id), "sha256", sha});
  if (!claimed) return claimed.error();
  if ((*claimed)->integer == 0) return invalid("key id collision, try again");
  auto r = redis_.transaction({
      {"HSET", keys_.keyId(k.view.id), "account", account, "sandbox", sandbox ? "1" : "0"},
      {"HSET", keys_.apiKey(sha), "account", account, "id", k.view.id, "smtp", smtp ? "1" : "0", "sandbox",
       sandbox ? "1" : "0", "created", k.view.created},
      {"SADD", keys_.accountKeys(account), k.view.id},
  });
  if (!r) return r.error();
  return k;
}

Result<std::vector<KeyView>> Admin::listKeys(const std::string& account) {
  if (Status s = requireAccount(account); !s) return s.error();
  auto ids = redis_.command({"SMEMBERS", keys_.accountKeys(account)});
  if (!ids) return ids.error();
  std::vector<Command> lookups;
  for (size_t i = 0; i < (*ids)->elements; ++i) {
    lookups.push_back({"HGET", keys_.keyId(replyString((*ids)->element[i])), "sha256"});
  }
  auto shas = redis_.pipeline(lookups);
  if (!shas) return shas.error();
  std::vector<Command> details;
  for (const auto& sha : *shas) details.push_back({"HGETALL", keys_.apiKey(replyString(sha.get()))});
  auto infos = redis_.pipeline(details);
  if (!infos) return infos.error();
  std::vector<KeyView> keys;  // ids from the set: a dangling one is still listed
  for (size_t i = 0; i < infos->size(); ++i) {
    const redisReply* info = (*infos)[i].get();
    keys.push_back(KeyView{replyString((*ids)->element[i]), account, hashField(info, "created"),
                           hashField(info, "smtp") == "1", hashField(info, "sandbox") == "1"});
  }
  return keys;
}

Result<KeyView> Admin::revokeKey(const std::string& key_id) {
  auto r = redis_.command({"HGETALL", keys_.keyId(key_id)});
  if (!r) return r.error();
  std::string sha = hashField(r->get(), "sha256"), account = hashField(r->get(), "account");
  if (sha.empty()) return invalid("unknown key id \"" + key_id + "\"");
  auto done = redis_.transaction({{"DEL", keys_.apiKey(sha)},
                                  {"DEL", keys_.keyId(key_id)},
                                  {"SREM", keys_.accountKeys(account), key_id}});
  if (!done) return done.error();
  return KeyView{key_id, account, "", false, false};
}

Status Admin::addDomain(const std::string& account, const std::string& domain, const std::string& status,
                        bool subdomains) {
  auto d = normalHostname(domain);
  if (!d) return invalid("bad domain \"" + domain + "\"");
  auto st = parseDomainStatus(status);
  if (!st) return invalid("bad status \"" + status + "\": expected verified, onmoderation or prohibited");
  if (Status s = requireAccount(account); !s) return s;
  auto r = redis_.command({"HSETNX", keys_.domains(account), *d, formatDomainEntry(DomainEntry{*st, subdomains})});
  if (!r) return r.error();
  if ((*r)->integer == 0) return invalid("domain " + *d + " already belongs to account \"" + account + "\"");
  return okStatus();
}

Status Admin::setDomain(const std::string& account, const std::string& domain, const std::string& status,
                        std::optional<bool> subdomains) {
  auto d = normalHostname(domain);
  if (!d) return invalid("bad domain \"" + domain + "\"");
  if (Status s = requireAccount(account); !s) return s;
  auto cur = redis_.command({"HGET", keys_.domains(account), *d});
  if (!cur) return cur.error();
  auto entry = parseDomainEntry(replyString(cur->get()));
  if (!entry) return invalid("unknown domain " + *d + " for account \"" + account + "\"");
  if (!status.empty()) {
    auto st = parseDomainStatus(status);
    if (!st) return invalid("bad status \"" + status + "\": expected verified, onmoderation or prohibited");
    entry->status = *st;
  }
  if (subdomains) entry->subdomains = *subdomains;
  auto r = redis_.command({"HSET", keys_.domains(account), *d, formatDomainEntry(*entry)});
  if (!r) return r.error();
  return okStatus();
}

Status Admin::removeDomain(const std::string& account, const std::string& domain) {
  auto d = normalHostname(domain);
  if (!d) return invalid("bad domain \"" + domain + "\"");
  if (Status s = requireAccount(account); !s) return s;
  auto r = redis_.command({"HDEL", keys_.domains(account), *d});
  if (!r) return r.error();
  if ((*r)->integer == 0) return invalid("unknown domain " + *d + " for account \"" + account + "\"");
  return okStatus();
}

Result<std::vector<std::pair<std::string, std::string>>> Admin::listDomains(const std::string& account) {
  if (Status s = requireAccount(account); !s) return s.error();
  auto r = redis_.command({"HGETALL", keys_.domains(account)});
  if (!r) return r.error();
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i + 1 < (*r)->elements; i += 2) {
    out.emplace_back(replyString((*r)->element[i]), replyString((*r)->element[i + 1]));
  }
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

// The key an address is stored under in the stoplist and bounce sets.
Result<std::string> normalAddress(const std::string& address) {
  auto m = parseMailbox(address);
  if (!m) return Error{Error::Kind::Invalid, "bad address \"" + address + "\""};
  return m->key();
}

std::vector<std::string> sortedMembers(const redisReply* r) {
  std::vector<std::string> out;
  for (size_t i = 0; r != nullptr && i < r->elements; ++i) out.push_back(replyString(r->element[i]));
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

Result<std::string> Admin::stoplistAdd(const std::string& account, const std::string& address) {
  auto a = normalAddress(address);
  if (!a) return a;
  if (Status s = requireAccount(account); !s) return s.error();
  auto r = redis_.command({"SADD", keys_.stoplist(account), *a});
  if (!r) return r.error();
  return a;
}

Result<std::string> Admin::stoplistRemove(const std::string& account, const std::string& address) {
  auto a = normalAddress(address);
  if (!a) return a;
  if (Status s = requireAccount(account); !s) return s.error();
  auto r = redis_.command({"SREM", keys_.stoplist(account), *a});
  if (!r) return r.error();
  if ((*r)->integer == 0) return invalid(*a + " is not in the stoplist of account \"" + account + "\"");
  return a;
}

Result<std::vector<std::string>> Admin::stoplistList(const std::string& account) {
  if (Status s = requireAccount(account); !s) return s.error();
  auto r = redis_.command({"SMEMBERS", keys_.stoplist(account)});
  if (!r) return r.error();
  return sortedMembers(r->get());
}

Result<std::vector<BounceEntry>> Admin::bouncedList(const std::string& address) {
  std::vector<std::string> members;
  if (address.empty()) {
    auto r = redis_.command({"SMEMBERS", keys_.bouncedGlobal()});
    if (!r) return r.error();
    members = sortedMembers(r->get());
  } else {
    auto a = normalAddress(address);
    if (!a) return a.error();
    auto r = redis_.command({"SISMEMBER", keys_.bouncedGlobal(), *a});
    if (!r) return r.error();
    if ((*r)->integer == 1) members.push_back(*a);
  }
  std::vector<BounceEntry> out;
  if (members.empty()) return out;
  Command hmget{"HMGET", keys_.bouncedInfo()};
  hmget.insert(hmget.end(), members.begin(), members.end());
  auto info = redis_.command(hmget);
  if (!info) return info.error();
  for (size_t i = 0; i < members.size(); ++i) {
    BounceEntry e;
    e.address = members[i];
    auto j = nlohmann::json::parse(replyString((*info)->element[i]), nullptr, false);
    if (j.is_object()) {
      e.time_ms = j.value("time", int64_t{0});
      e.account = j.value("account", "");
      e.queue_id = j.value("qid", "");
      e.dsn = j.value("dsn", "");
      e.reason = j.value("reason", "");
    }
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::string> Admin::bouncedRemove(const std::string& address) {
  auto a = normalAddress(address);
  if (!a) return a;
  auto accounts = redis_.command({"SMEMBERS", keys_.accounts()});
  if (!accounts) return accounts.error();
  std::vector<Command> cmds{{"SREM", keys_.bouncedGlobal(), *a}, {"HDEL", keys_.bouncedInfo(), *a}};
  for (size_t i = 0; i < (*accounts)->elements; ++i) {
    cmds.push_back({"SREM", keys_.bounced(replyString((*accounts)->element[i])), *a});
  }
  // Its soft bounces too: else the next one of a message still queued would suppress it again.
  cmds.push_back({"DEL", keys_.softBounces(*a)});
  auto r = redis_.transaction(cmds);
  if (!r) return r.error();
  long long removed = 0;
  for (size_t i = 0; i + 1 < r->size(); ++i) removed += (*r)[i]->integer;
  if (removed == 0) return invalid(*a + " is not in a bounce list");
  return a;
}

namespace {

Status checkLimit(const std::string& name, const std::string& value, bool remove, bool per_key) {
  if (name == "rate") {
    if (!remove && !parseRate(value)) return invalid("bad rate \"" + value + "\": expected N/s, N/m or N/h");
  } else if (per_key) {
    return invalid("only rate= can be set per key");
  } else if (name == "daily" || name == "rcpts" || name == "size") {
    if (!remove && (value.empty() || value.find_first_not_of("0123456789") != std::string::npos)) {
      return invalid("bad " + name + " \"" + value + "\": expected a number");
    }
  } else {
    return invalid("unknown limit \"" + name + "\" (rate, daily, rcpts, size)");
  }
  return okStatus();
}

}  // namespace

Status Admin::setLimit(const std::string& account, const std::string& key_id,
                       const std::vector<std::string>& assignments) {
  std::vector<Command> cmds;  // one transaction: all limits or none
  for (const auto& assignment : assignments) {
    auto kv = assignmentParts(assignment);
    if (!kv) return kv.error();
    const auto& [name, value] = *kv;
    bool remove = value == "0" || value == "none";
    if (Status s = checkLimit(name, value, remove, !key_id.empty()); !s) return s;
    std::string field = key_id.empty() ? name : "rate:" + key_id;
    cmds.push_back(remove ? Command{"HDEL", keys_.account(account), field}
                          : Command{"HSET", keys_.account(account), field, value});
  }
  if (cmds.empty()) return invalid("expected name=value");
  if (Status s = requireAccount(account); !s) return s;
  if (!key_id.empty()) {
    auto owner = redis_.command({"HGET", keys_.keyId(key_id), "account"});
    if (!owner) return owner.error();
    if (replyString(owner->get()) != account) {
      return invalid("unknown key id \"" + key_id + "\" for account \"" + account + "\"");
    }
  }
  auto r = redis_.transaction(cmds);
  if (!r) return r.error();
  return okStatus();
}

Status Admin::blockCampaign(const std::string& account, const std::string& campaign) {
  if (!validTag(campaign)) return invalid("bad campaign \"" + campaign + "\": expected [A-Za-z0-9_-]{1,128}");
  if (Status s = requireAccount(account); !s) return s;
  auto r = redis_.command({"SADD", keys_.blockedCampaigns(account), campaign});
  if (!r) return r.error();
  return okStatus();
}

Status Admin::unblockCampaign(const std::string& account, const std::string& campaign) {
  if (Status s = requireAccount(account); !s) return s;
  auto r = redis_.command({"SREM", keys_.blockedCampaigns(account), campaign});
  if (!r) return r.error();
  if ((*r)->integer == 0) return invalid("campaign " + campaign + " of account \"" + account + "\" is not blocked");
  return okStatus();
}

namespace {

bool validSelector(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::vector<DkimEntry> parseDkimHash(const std::string& domain, const redisReply* h) {
  std::vector<DkimEntry> out;
  for (size_t j = 0; h != nullptr && j + 1 < h->elements; j += 2) {
    auto json = nlohmann::json::parse(replyString(h->element[j + 1]), nullptr, false);
    if (json.is_discarded() || !json.is_object()) continue;
    out.push_back(DkimEntry{domain, replyString(h->element[j]), json.value("algo", ""), json.value("account", ""),
                            json.value("created", ""), json.value("key", ""), json.value("bits", 0)});
  }
  return out;
}

Status Admin::putDkimKey(const std::string& domain, const std::string& selector, const DkimKey& key,
                         const std::string& account) {
  auto d = normalHostname(domain);
  if (!d) return invalid("bad domain \"" + domain + "\"");
  if (!validSelector(selector)) return invalid("bad selector \"" + selector + "\"");
  if (!account.empty()) {
    if (Status s = requireAccount(account); !s) return s;
  }
  nlohmann::json entry{{"algo", dkimAlgoName(key.algo)}, {"bits", key.bits},     {"key", key.pem},
                       {"account", account},             {"created", nowIso()}};
  auto r = redis_.transaction({{"HSET", keys_.dkim(*d), selector, entry.dump()},
                                {"SADD", keys_.dkimDomains(), *d},
                                {"INCR", keys_.dkimVersion()}});
  if (!r) return r.error();
  return okStatus();
}

Status Admin::removeDkimKey(const std::string& domain, const std::string& selector) {
  auto d = normalHostname(domain);
  if (!d) return invalid("bad domain \"" + domain + "\"");
  std::vector<Command> cmds;
  if (selector.empty()) {
    cmds = {{"DEL", keys_.dkim(*d)}, {"SREM", keys_.dkimDomains(), *d}};
  } else {
    cmds = {{"HDEL", keys_.dkim(*d), selector}};
  }
  cmds.push_back({"INCR", keys_.dkimVersion()});
  auto r = redis_.transaction(cmds);
  if (!r) return r.error();
  if ((*r)[0]->integer == 0) {
    return invalid("no DKIM key for " + *d + (selector.empty() ? "" : " with selector " + selector));
  }
  if (!selector.empty()) {
    auto left = redis_.command({"HLEN", keys_.dkim(*d)});
    if (!left) return left.error();
    if ((*left)->integer == 0) {
      if (auto r = redis_.command({"SREM", keys_.dkimDomains(), *d}); !r) return r.error();
    }
  }
  return okStatus();
}

Result<std::vector<DkimEntry>> Admin::listDkimKeys(const std::string& domain) {
  std::vector<std::string> domains;
  if (domain.empty()) {
    auto r = redis_.command({"SMEMBERS", keys_.dkimDomains()});
    if (!r) return r.error();
    for (size_t i = 0; i < (*r)->elements; ++i) domains.push_back(replyString((*r)->element[i]));
    std::sort(domains.begin(), domains.end());
  } else {
    auto d = normalHostname(domain);
    if (!d) return invalid("bad domain \"" + domain + "\"");
    domains.push_back(*d);
  }
  std::vector<Command> cmds;
  for (const auto& d : domains) cmds.push_back({"HGETALL", keys_.dkim(d)});
  auto r = redis_.pipeline(cmds);
  if (!r) return r.error();
  std::vector<DkimEntry> out;
  for (size_t i = 0; i < domains.size(); ++i) {
    for (auto& e : parseDkimHash(domains[i], (*r)[i].get())) out.push_back(std::move(e));
  }
  if (!domain.empty() && out.empty()) return invalid("no DKIM key for " + domains[0]);
  return out;
}

Result<std::string> Admin::allowNet(const std::string& account, const std::string& text, bool wide) {
  auto cidr = parseCidr(text);
  if (!cidr) return invalid("bad CIDR \"" + text + "\": expected e.g. 192.0.2.0/24 or 2001:db8::/32");
  if (!wide && cidr->prefix < (cidr->v6 ? 32u : 16u)) {
    return invalid("network " + cidr->toString() + " is wider than /" + (cidr->v6 ? "32" : "16") +
                   ": anyone in it could send and relay as the account; give --wide if that is meant");
  }
  if (Status s = requireAccount(account); !s) return s.error();
  std::string net = cidr->toString();
  auto set = redis_.transaction({{"HSETNX", keys_.nets(), net, account}, {"HGET", keys_.nets(), net}});
  if (!set) return set.error();
  std::string owner = replyString((*set)[1].get());
  if (owner != account) return invalid("network " + net + " already belongs to account \"" + owner + "\"");
  auto added = redis_.command({"SADD", keys_.accountNets(account), net});
  if (!added) return added.error();
  return net;
}

Result<std::string> Admin::denyNet(const std::string& account, const std::string& text) {
  auto cidr = parseCidr(text);
  if (!cidr) return invalid("bad CIDR \"" + text + "\": expected e.g. 192.0.2.0/24 or 2001:db8::/32");
  if (Status s = requireAccount(account); !s) return s.error();
  std::string net = cidr->toString();
  auto owner = redis_.command({"HGET", keys_.nets(), net});
  if (!owner) return owner.error();
  if (replyString(owner->get()) != account) {
    return invalid("network " + net + " is not allowed for account \"" + account + "\"");
  }
  auto r = redis_.transaction({{"HDEL", keys_.nets(), net}, {"SREM", keys_.accountNets(account), net}});
  if (!r) return r.error();
  return net;
}

}  // namespace mailgate

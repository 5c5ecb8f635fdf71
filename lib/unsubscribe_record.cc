// unsubscribe_record.cc — the Redis writes of one unsubscribe click: the
// list the recipient joins (account stoplist or campaign list, chosen by the
// account's unsubscribe_scope inside the script), its record and event
// `unsubscribed`; listing and forgetting them (mailgatectl unsubscribes).
#include "mailgate/unsubscribe_record.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "mailgate/address.h"
#include "mailgate/store.h"

namespace mailgate {

bool isDailyCampaign(std::string_view c) {
  if (c.size() != 10 || c[4] != '-' || c[7] != '-') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9})
    if (c[i] < '0' || c[i] > '9') return false;
  return true;
}

Result<UnsubscribePlan> planUnsubscribe(const Config& config, const UnsubscribeToken& token, int64_t now_ms) {
  auto mailbox = parseMailbox(token.recipient);
  if (!mailbox) return Error{Error::Kind::Invalid, "bad recipient in token"};
  StoreKeys keys(config.redis_prefix);
  UnsubscribePlan plan;
  // A message without X-Campaign-Id is in the day's campaign (YYYY-MM-DD):
  // a list of that campaign would let tomorrow's mail through, so such an
  // unsubscribe joins the account's stoplist whatever the scope.
  bool daily = isDailyCampaign(token.campaign);
  plan.guard = OnceGuard{keys.account(token.account),
                         "unsubscribe_scope",
                         "campaign",
                         daily ? keys.stoplist(token.account) : keys.campaignStoplist(token.account, token.campaign),
                         keys.stoplist(token.account),
                         mailbox->key()};
  Event& e = plan.event;
  e.time_ms = now_ms;
  e.queue_id = token.queue_id;
  e.account = token.account;
  e.campaign = token.campaign;
  e.rcpt = mailbox->key();
  e.status = "unsubscribed";
  plan.commands = outcomeCommands(config, {e}, nullptr);
  nlohmann::json entry{{"time", now_ms}, {"rcpt", e.rcpt}, {"campaign", e.campaign}, {"qid", e.queue_id}};
  plan.commands.push_back({"HSET", keys.unsubscribes(token.account), e.rcpt + " " + e.campaign, jsonText(entry)});
  return plan;
}

Result<std::vector<UnsubscribeEntry>> listUnsubscribes(RedisConn& redis, const Config& config,
                                                       const std::string& account, const std::string& address) {
  std::string key;
  if (!address.empty()) {
    auto mailbox = parseMailbox(address);
    if (!mailbox) return Error{Error::Kind::Invalid, "\"" + address + "\" is not an address"};
    key = mailbox->key();
  }
  auto r = redis.command({"HVALS", StoreKeys(config.redis_prefix).unsubscribes(account)});
  if (!r) return r.error();
  std::vector<UnsubscribeEntry> out;
  for (size_t i = 0; (*r)->type == REDIS_REPLY_ARRAY && i < (*r)->elements; ++i) {
    auto j = nlohmann::json::parse(replyString((*r)->element[i]), nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    UnsubscribeEntry u{j.value("time", int64_t{0}), j.value("rcpt", ""), j.value("campaign", ""), j.value("qid", "")};
    if (key.empty() || u.recipient == key) out.push_back(std::move(u));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.time_ms > b.time_ms; });
  return out;
}

Result<long long> removeUnsubscribes(RedisConn& redis, const Config& config, const std::string& account,
                                     const std::string& address) {
  auto entries = listUnsubscribes(redis, config, account, address);
  if (!entries) return entries.error();
  if (entries->empty()) return 0;
  StoreKeys keys(config.redis_prefix);
  const std::string& rcpt = entries->front().recipient;
  auto scope = redis.command({"HGET", keys.account(account), "unsubscribe_scope"});
  if (!scope) return scope.error();
  std::vector<Command> cmds;
  for (const auto& u : *entries) {
    cmds.push_back({"HDEL", keys.unsubscribes(account), u.recipient + " " + u.campaign});
    cmds.push_back({"SREM", keys.campaignStoplist(account, u.campaign), u.recipient});
  }
  bool joined_stoplist = replyString(scope->get()) != "campaign" ||
                         std::any_of(entries->begin(), entries->end(),
                                     [](const UnsubscribeEntry& u) { return isDailyCampaign(u.campaign); });
  if (joined_stoplist) cmds.push_back({"SREM", keys.stoplist(account), rcpt});
  auto r = redis.pipeline(cmds);
  if (!r) return r.error();
  return static_cast<long long>(entries->size());
}

Result<bool> recordUnsubscribe(RedisConn& redis, const UnsubscribePlan& plan) {
  return writeRecordOnce(redis, plan.guard, plan.commands);
}

}  // namespace mailgate

// events.cc — encodes outcome events as XADD commands, day counters (with
// the per-account cap on distinct campaigns) and q:<queueid> hashes, decodes
// stream entries for mailgatectl, and writes one message's outcome in one
// script that writes nothing once its client stopped waiting.
#include "mailgate/events.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <tuple>
#include <nlohmann/json.hpp>

#include "mailgate/address.h"
#include "mailgate/limits.h"
#include "mailgate/store.h"

namespace mailgate {

int64_t nowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::pair<std::string, std::string> splitAuthUser(std::string_view user) {
  size_t slash = user.find('/');
  if (slash == std::string_view::npos) return {std::string(user), ""};
  return {std::string(user.substr(0, slash)), std::string(user.substr(slash + 1))};
}

std::string jsonText(const nlohmann::json& json, int indent) {
  return json.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string eventsStreamKey(const Config& config) { return redisKey(config.redis_prefix, "events"); }

const redisReply* streamEntries(const redisReply* r) {
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements == 0) return nullptr;
  const redisReply* stream = r->element[0];
  if (stream->type != REDIS_REPLY_ARRAY || stream->elements != 2) return nullptr;
  const redisReply* entries = stream->element[1];
  return entries->type == REDIS_REPLY_ARRAY ? entries : nullptr;
}

Command xaddCommand(const Config& config, const Event& e) {
  return {"XADD",       eventsStreamKey(config),
          "MAXLEN",     "~",
          std::to_string(config.events_maxlen),
          "*",
          "time",       std::to_string(e.time_ms),
          "qid",        e.queue_id,
          "account",    e.account,
          "key",        e.key_id,
          "campaign",   e.campaign,
          "letter",     e.letter_id,
          "from",       e.from,
          "rcpt",       e.rcpt,
          "msgid",      e.message_id,
          "status",     e.status,
          "code",       e.code,
          "text",       e.text};
}

std::string trackedRecipientKey(std::string_view address) {
  auto keys = recipientKeys(address, false);
  return keys && !keys->empty() ? keys->front() : std::string(address);
}

std::vector<Command> queueRecordCommands(const Config& config, const QueueRecord& r) {
  std::string key = StoreKeys(config.redis_prefix).queueRecord(r.queue_id);
  // The recipients the tracker accepts delivery lines for, one a line (SMTP
  // addresses hold no line breaks).
  std::string rcpts;
  for (const auto& rcpt : r.rcpts) rcpts += (rcpts.empty() ? "" : "\n") + trackedRecipientKey(rcpt);
  return {
      {"DEL", key},  // a short queue id may be reused: start afresh
      {"HSET", key, "account", r.account, "key", r.key_id, "campaign", r.campaign, "letter", r.letter_id, "from",
       r.from, "subject_sha256", r.subject_hash, "time", std::to_string(r.time_ms), "nrcpt",
       std::to_string(r.nrcpt), "msgid", r.message_id, "rcpts", rcpts},
      {"EXPIRE", key, std::to_string(config.queue_record_ttl.count())},
  };
}

Event eventFromEntry(const redisReply* entry) {
  Event e;
  if (entry == nullptr || entry->type != REDIS_REPLY_ARRAY || entry->elements != 2) return e;
  e.id = replyString(entry->element[0]);
  const redisReply* fields = entry->element[1];
  if (fields == nullptr || fields->type != REDIS_REPLY_ARRAY) return e;
  for (size_t i = 0; i + 1 < fields->elements; i += 2) {
    std::string name = replyString(fields->element[i]);
    std::string value = replyString(fields->element[i + 1]);
    if (name == "time") e.time_ms = std::strtoll(value.c_str(), nullptr, 10);
    else if (name == "qid") e.queue_id = value;
    else if (name == "account") e.account = value;
    else if (name == "key") e.key_id = value;
    else if (name == "campaign") e.campaign = value;
    else if (name == "letter") e.letter_id = value;
    else if (name == "from") e.from = value;
    else if (name == "rcpt") e.rcpt = value;
    else if (name == "msgid") e.message_id = value;
    else if (name == "status") e.status = value;
    else if (name == "code") e.code = value;
    else if (name == "text") e.text = value;
  }
  return e;
}


void setRefusal(Event& e, std::string_view reply) {
  e.code = std::string(reply.substr(0, 3));
  e.text = reply.size() > 4 ? std::string(reply.substr(4)) : "";
  e.status = reply.starts_with("4") ? "tempfailed" : "rejected";
}

namespace {

constexpr int64_t kDaySeconds = 86400;
constexpr int64_t kTotalsDays = 400;

// Counts one message's outcomes for one campaign of an account and day,
// under the campaign while fewer than the cap of distinct campaigns were
// counted that day (or it is one of them), else under kOtherCampaigns.
// k1 the day's campaign set  k2 the day's per-campaign counters
// a[first] campaign, cap, TTL (s), bucket, then status, count, ... up to a[last]
const char* const kCountCampaignFunction = R"lua(
local function count_campaign(k1, k2, a, first, last)
  local c = a[first]
  if redis.call('SISMEMBER', k1, c) == 0 then
    if redis.call('SCARD', k1) < tonumber(a[first + 1]) then
      redis.call('SADD', k1, c)
      redis.call('EXPIRE', k1, a[first + 2])
    else
      c = a[first + 3]
    end
  end
  for i = first + 4, last, 2 do
    redis.call('HINCRBY', k2, c .. ':' .. a[i], a[i + 1])
  end
  redis.call('EXPIRE', k2, a[first + 2])
  return c
end
)lua";

// KEYS[1] campaign set  KEYS[2] counters  ARGV as count_campaign's `a`.
const RedisScript kCountCampaign(std::string(kCountCampaignFunction) +
                                 "return count_campaign(KEYS[1], KEYS[2], ARGV, 1, #ARGV)\n");

// Runs a record's commands unless it runs after ARGV[1], the deadline its
// client stopped waiting at (RedisConn::evalWithDeadline): then it writes
// nothing and returns 0 ("0": no deadline). ARGV[2..]: each command as its length, then its
// words; "_campaign k1 k2 ..." is count_campaign; "_once hash field value
// set_if set_else member" (first, when present) adds member to set_if when
// the hash's field equals value, else to set_else, and returns 2 without
// writing anything more when it was already there; "_guard CMD ..." (first,
// when present) runs CMD (HSETNX) and returns 2 when it answers 0. KEYS:
// every key written.
const RedisScript kRecordScript(std::string(kCountCampaignFunction) + R"lua(
if ARGV[1] ~= '0' then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[1]) then return 0 end
end
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  if ARGV[i + 1] == '_campaign' then
    count_campaign(ARGV[i + 2], ARGV[i + 3], ARGV, i + 4, i + n)
  elseif ARGV[i + 1] == '_once' then
    local set = ARGV[i + 6]
    if redis.call('HGET', ARGV[i + 2], ARGV[i + 3]) == ARGV[i + 4] then set = ARGV[i + 5] end
    if redis.call('SADD', set, ARGV[i + 7]) == 0 then return 2 end
  elseif ARGV[i + 1] == '_guard' then
    if redis.call(unpack(ARGV, i + 2, i + n)) == 0 then return 2 end
  else
    redis.call(unpack(ARGV, i + 1, i + n))
  end
  i = i + n + 1
end
return 1
)lua");

bool isRefusal(const std::string& status) { return status == "rejected" || status == "tempfailed"; }

// "HINCRBY key field n" for each counted field, then EXPIRE.
void addCounters(std::vector<Command>& cmds, const std::string& key, const std::map<std::string, int>& counts,
                 int64_t ttl_seconds) {
  for (const auto& [field, n] : counts) cmds.push_back({"HINCRBY", key, field, std::to_string(n)});
  cmds.push_back({"EXPIRE", key, std::to_string(ttl_seconds)});
}

}  // namespace

std::vector<Command> outcomeCommands(const Config& config, const std::vector<Event>& events,
                                     const QueueRecord* record) {
  std::vector<Command> cmds;
  StoreKeys keys(config.redis_prefix);
  using Counts = std::map<std::string, int>;
  std::map<std::pair<std::string, std::string>, Counts> totals;                 // (account, day) -> status
  std::map<std::tuple<std::string, std::string, std::string>, Counts> by_campaign;  // (account, day, campaign)
  std::map<std::string, Counts> without_account;                                // day -> reply code
  bool error_listed = false;
  for (const Event& e : events) {
    std::string day = utcDate(e.time_ms);
    if (e.account.empty() && isRefusal(e.status)) {
      // Scanners and clients that never authenticated: no customer reads
      // these, so they are counted and kept out of the events stream.
      ++without_account[day][e.code];
      continue;
    }
    cmds.push_back(xaddCommand(config, e));
    if (e.account.empty()) continue;
    if (e.status != "sink" && e.status != "sandbox") {
      ++totals[{e.account, day}][e.status];
      if (!e.campaign.empty()) ++by_campaign[{e.account, day, e.campaign}][e.status];
    }
    if (isRefusal(e.status) && !error_listed) {
      nlohmann::json entry{{"time", e.time_ms}, {"qid", e.queue_id}, {"code", e.code},
                           {"text", e.text},    {"from", e.from},    {"rcpt", e.rcpt}};
      cmds.push_back({"LPUSH", keys.errors(e.account), jsonText(entry)});
      cmds.push_back({"LTRIM", keys.errors(e.account), "0", "99"});
      error_listed = true;
    }
  }
  for (const auto& [at, counts] : totals) {
    addCounters(cmds, keys.stats(at.first, at.second), counts, kTotalsDays * kDaySeconds);
  }
  std::string campaign_ttl = std::to_string(config.campaign_stats_days * kDaySeconds);
  for (const auto& [at, counts] : by_campaign) {
    const auto& [account, day, campaign] = at;
    // EVAL, not EVALSHA: inside MULTI a NOSCRIPT could not be retried.
    Command eval{"EVAL", kCountCampaign.source, "2", keys.campaigns(account, day), keys.campaignStats(account, day),
                 campaign, std::to_string(config.max_campaigns_per_day), campaign_ttl, kOtherCampaigns};
    for (const auto& [status, n] : counts) {
      eval.push_back(status);
      eval.push_back(std::to_string(n));
    }
    cmds.push_back(std::move(eval));
  }
  for (const auto& [day, counts] : without_account) {
    addCounters(cmds, keys.refusedWithoutAccount(day), counts, kTotalsDays * kDaySeconds);
  }
  if (record != nullptr) {
    for (auto& c : queueRecordCommands(config, *record)) cmds.push_back(std::move(c));
  }
  return cmds;
}

namespace {

// Runs kRecordScript over `commands`, after `once` or `guard` when given:
// its reply.
Result<long long> runRecordScript(RedisConn& redis, const OnceGuard* once, const Command* guard,
                                  const std::vector<Command>& commands) {
  std::vector<std::string> keys, args;
  if (once != nullptr) {
    keys.insert(keys.end(), {once->hash, once->set_if_equal, once->set_else});
    args.insert(args.end(), {"7", "_once", once->hash, once->field, once->value, once->set_if_equal, once->set_else,
                             once->member});
  }
  if (guard != nullptr && guard->size() > 1) {
    keys.push_back((*guard)[1]);
    args.push_back(std::to_string(guard->size() + 1));
    args.push_back("_guard");
    args.insert(args.end(), guard->begin(), guard->end());
  }
  for (const Command& cmd : commands) {
    bool campaign = cmd.size() > 4 && cmd[0] == "EVAL" && cmd[1] == kCountCampaign.source;
    if (campaign) {
      keys.insert(keys.end(), {cmd[3], cmd[4]});
      args.push_back(std::to_string(cmd.size() - 2));
      args.push_back("_campaign");
      args.insert(args.end(), cmd.begin() + 3, cmd.end());
      continue;
    }
    if (cmd.size() > 1) keys.push_back(cmd[1]);
    args.push_back(std::to_string(cmd.size()));
    args.insert(args.end(), cmd.begin(), cmd.end());
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  auto r = redis.evalWithDeadline(kRecordScript, keys, args);
  if (!r) return r.error();
  long long result = (*r)->type == REDIS_REPLY_INTEGER ? (*r)->integer : 0;
  if (result != 0) return result;
  return Error{Error::Kind::Timeout, "redis " + redis.name() + ": the record ran after redis_timeout (Redis " +
                                         "stalled or was slow) and was not written"};
}

}  // namespace

Status writeRecord(RedisConn& redis, const std::vector<Command>& commands) {
  if (commands.empty()) return okStatus();
  auto r = runRecordScript(redis, nullptr, nullptr, commands);
  if (!r) return r.error();
  return okStatus();
}

Result<bool> writeRecordOnce(RedisConn& redis, const OnceGuard& guard, const std::vector<Command>& commands) {
  auto r = runRecordScript(redis, &guard, nullptr, commands);
  if (!r) return r.error();
  return *r == 1;
}

Result<bool> writeRecordOnce(RedisConn& redis, const Command& guard, const std::vector<Command>& commands) {
  auto r = runRecordScript(redis, nullptr, &guard, commands);
  if (!r) return r.error();
  return *r == 1;
}

Status recordMessage(RedisConn& redis, const Config& config, const std::vector<Event>& events,
                     const QueueRecord* record) {
  return writeRecord(redis, outcomeCommands(config, events, record));
}

Status recordRefusal(RedisConn& redis, const Config& config, const Event& e) {
  return recordMessage(redis, config, {e}, nullptr);
}

Result<std::vector<ErrorEntry>> latestErrors(RedisConn& redis, const Config& config, const std::string& account,
                                             unsigned count) {
  StoreKeys keys(config.redis_prefix);
  auto r = redis.command({"LRANGE", keys.errors(account), "0", std::to_string(count - 1)});
  if (!r) return r.error();
  std::vector<ErrorEntry> out;
  for (size_t i = 0; i < (*r)->elements; ++i) {
    auto j = nlohmann::json::parse(replyString((*r)->element[i]), nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    out.push_back(ErrorEntry{j.value("time", int64_t{0}), j.value("qid", ""), j.value("code", ""),
                             j.value("text", ""), j.value("from", ""), j.value("rcpt", "")});
  }
  return out;
}

Result<std::vector<Event>> latestEvents(RedisConn& redis, const Config& config, unsigned count) {
  auto r = redis.command({"XREVRANGE", eventsStreamKey(config), "+", "-", "COUNT", std::to_string(count)});
  if (!r) return r.error();
  std::vector<Event> events;
  if ((*r)->type != REDIS_REPLY_ARRAY) return events;
  for (size_t i = 0; i < (*r)->elements; ++i) events.push_back(eventFromEntry((*r)->element[i]));
  return events;
}

}  // namespace mailgate

namespace mailgate {

Result<std::vector<Event>> eventsAfter(RedisConn& redis, const Config& config, const std::string& after,
                                       unsigned block_ms) {
  auto r = redis.command({"XREAD", "COUNT", "1000", "BLOCK", std::to_string(block_ms), "STREAMS",
                          eventsStreamKey(config), after});
  if (!r) return r.error();
  std::vector<Event> events;
  const redisReply* entries = streamEntries(r->get());
  for (size_t i = 0; entries != nullptr && i < entries->elements; ++i) {
    events.push_back(eventFromEntry(entries->element[i]));
  }
  return events;
}

Result<std::vector<Event>> eventsOfMessage(RedisConn& redis, const Config& config, const std::string& queue_id,
                                           unsigned scan) {
  std::vector<Event> found;
  std::string end = "+";
  unsigned seen = 0;
  while (seen < scan) {
    auto r = redis.command({"XREVRANGE", eventsStreamKey(config), end, "-", "COUNT", "1000"});
    if (!r) return r.error();
    if ((*r)->elements == 0) break;
    for (size_t i = 0; i < (*r)->elements; ++i) {
      Event e = eventFromEntry((*r)->element[i]);
      if (e.queue_id == queue_id) found.push_back(e);
      end = "(" + e.id;
    }
    seen += static_cast<unsigned>((*r)->elements);
    if ((*r)->elements < 1000) break;
  }
  std::reverse(found.begin(), found.end());
  return found;
}

}  // namespace mailgate

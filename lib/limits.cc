// limits.cc — the GCRA + daily quota Lua script (one EVALSHA per message;
// Redis TIME is the one clock for all nodes) and its verdicts.
#include "mailgate/limits.h"

#include <ctime>

namespace mailgate {
namespace {

// KEYS: rl account, rl key, quota.  ARGV: account count, period ms, key count,
// period ms, daily quota, quota ttl s. Both rates are checked before either
// is written, so a refused message costs nothing.
const RedisScript kConsume(R"lua(
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local daily = tonumber(ARGV[5])
if daily > 0 and tonumber(redis.call('GET', KEYS[3]) or '0') >= daily then return 'quota' end
local function gcra(key, limit, period)
  if limit <= 0 then return nil end
  local T = period / limit
  local tau = T * limit
  local tat = math.max(tonumber(redis.call('GET', key)) or now, now)
  local new = tat + T
  if now < new - tau then return false end
  return new
end
local a = gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
local k = gcra(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
if a == false or k == false then return 'rate' end
if a then redis.call('SET', KEYS[1], string.format('%d', a), 'PX', math.ceil(a - now) + 1) end
if k then redis.call('SET', KEYS[2], string.format('%d', k), 'PX', math.ceil(k - now) + 1) end
if daily > 0 then
  redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], ARGV[6])
end
return 'ok'
)lua");

std::string formatTime(int64_t ms, const char* fmt) {
  time_t t = static_cast<time_t>(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, fmt, &tm);
  return buf;
}

}  // namespace

std::string utcDay(int64_t ms) { return formatTime(ms, "%Y%m%d"); }
std::string utcDate(int64_t ms) { return formatTime(ms, "%Y-%m-%d"); }
std::string utcTimestamp(int64_t ms) { return formatTime(ms, "%Y-%m-%dT%H:%M:%SZ"); }

Result<LimitResult> consumeMessage(RedisConn& redis, const StoreKeys& keys, const AccountPolicy& account,
                                   const std::string& key_id, const std::string& day) {
  const Limits& l = account.limits;
  Rate key_rate;
  if (auto it = l.key_rates.find(key_id); it != l.key_rates.end() && !key_id.empty()) key_rate = it->second;
  if (!l.rate.set() && !key_rate.set() && l.daily == 0) return LimitResult::Ok;
  auto r = redis.eval(kConsume,
                      {keys.rate(account.name), keys.keyRate(account.name, key_id.empty() ? "-" : key_id),
                       keys.quota(account.name, day)},
                      {std::to_string(l.rate.count), std::to_string(l.rate.period_ms), std::to_string(key_rate.count),
                       std::to_string(key_rate.period_ms), std::to_string(l.daily), "172800"});
  if (!r) return r.error();
  std::string outcome = replyString(r->get());
  if (outcome == "quota") return LimitResult::QuotaExceeded;
  if (outcome == "rate") return LimitResult::RateLimited;
  if (outcome == "ok") return LimitResult::Ok;
  return Error{Error::Kind::Protocol, "limits script: unexpected reply \"" + outcome + "\""};
}

Verdict limitVerdict(LimitResult result) {
  switch (result) {
    case LimitResult::Ok: return dunno();
    case LimitResult::RateLimited:
      return Verdict{Action::TempFail, "451 4.7.1 rate limit exceeded, try again later", "rate"};
    case LimitResult::QuotaExceeded: return Verdict{Action::TempFail, "452 4.5.3 daily quota exceeded", "quota"};
  }
  return dunno();
}

}  // namespace mailgate

// limits.cc — the GCRA + daily quota Lua script (one EVALSHA per message;
// Redis TIME is the one clock for all nodes) and its verdicts.
#include "mailgate/limits.h"

#include <ctime>

namespace mailgate {
namespace {

// KEYS: rl account, rl key, quota. ARGV: for the account then the key rate
// N messages per period P: N, floor(P / N) and P mod N, P in microseconds
// (N = 0: no rate); then the daily quota and the quota's TTL in seconds.
// GCRA on Redis TIME in microseconds, in integers: the theoretical arrival
// time (TAT) is stored as "us:r", where r in [0, N) counts N-ths of a
// microsecond, so the emission interval P/N is exact at every rate up to
// 1,000,000/s (a TAT kept in whole milliseconds truncated P/N below 1 ms and
// left rates above 1,000/s unlimited). Burst: N. Both rates are checked
// before either is written, so a refused message costs nothing.
const RedisScript kConsume(R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local daily = tonumber(ARGV[7])
if daily > 0 and tonumber(redis.call('GET', KEYS[3]) or '0') >= daily then return 'quota' end
local function gcra(key, limit, step, step_rem)
  if limit <= 0 then return nil end
  local us, r = string.match(redis.call('GET', key) or '', '^(%d+):(%d+)$')
  us, r = tonumber(us), tonumber(r)
  if not us or us < now then us, r = now, 0 end
  us, r = us + step, r + step_rem
  if r >= limit then us, r = us + 1, r - limit end
  local earliest = us - (step * limit + step_rem)  -- TAT - period, plus r/limit us
  if now < earliest or (now == earliest and r > 0) then return false end
  return {us, r}
end
local a = gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
local k = gcra(KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]))
if a == false or k == false then return 'rate' end
local function store(key, tat)
  if tat then redis.call('SET', key, string.format('%d:%d', tat[1], tat[2]), 'PX', math.ceil((tat[1] - now) / 1000) + 1) end
end
store(KEYS[1], a)
store(KEYS[2], k)
if daily > 0 then
  redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], ARGV[8])
end
return 'ok'
)lua");

// The three GCRA arguments of `rate` (see kConsume).
void addRateArgs(std::vector<std::string>& args, const Rate& rate) {
  uint64_t period_us = rate.period_ms * 1000;
  uint64_t n = rate.count;
  args.push_back(std::to_string(n));
  args.push_back(std::to_string(n ? period_us / n : 0));
  args.push_back(std::to_string(n ? period_us % n : 0));
}

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

const RedisScript& limitScript() { return kConsume; }

std::optional<LimitCall> limitCall(const StoreKeys& keys, const AccountPolicy& account, const std::string& key_id,
                                   const std::string& day) {
  const Limits& l = account.limits;
  Rate key_rate;
  if (auto it = l.key_rates.find(key_id); it != l.key_rates.end() && !key_id.empty()) key_rate = it->second;
  if (!l.rate.set() && !key_rate.set() && l.daily == 0) return std::nullopt;
  LimitCall call{{keys.rate(account.name), keys.keyRate(account.name, key_id.empty() ? "-" : key_id),
                  keys.quota(account.name, day)},
                 {}};
  addRateArgs(call.args, l.rate);
  addRateArgs(call.args, key_rate);
  call.args.push_back(std::to_string(l.daily));
  call.args.push_back("172800");
  return call;
}

Result<LimitResult> limitOutcome(const redisReply* reply) {
  std::string outcome = replyString(reply);
  if (outcome == "quota") return LimitResult::QuotaExceeded;
  if (outcome == "rate") return LimitResult::RateLimited;
  if (outcome == "ok") return LimitResult::Ok;
  return Error{Error::Kind::Protocol, "limits script: unexpected reply \"" + outcome + "\""};
}

Result<LimitResult> consumeMessage(RedisConn& redis, const StoreKeys& keys, const AccountPolicy& account,
                                   const std::string& key_id, const std::string& day) {
  std::optional<LimitCall> call = limitCall(keys, account, key_id, day);
  if (!call) return LimitResult::Ok;
  auto r = redis.eval(kConsume, call->keys, call->args);
  if (!r) return r.error();
  return limitOutcome(r->get());
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

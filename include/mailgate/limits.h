// limits.h — per-message accounting against an account's limits: message
// rate per account and per key (GCRA, burst = one period's worth) and the
// daily quota (UTC day), checked and consumed atomically in one EVALSHA.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "mailgate/account_policy.h"
#include "mailgate/redis.h"
#include "mailgate/result.h"
#include "mailgate/verdict.h"

namespace mailgate {

enum class LimitResult { Ok, RateLimited, QuotaExceeded };

// Counts one message for `account` (and `key_id`) on `day` ("YYYYMMDD").
Result<LimitResult> consumeMessage(RedisConn& redis, const StoreKeys& keys, const AccountPolicy& account,
                                   const std::string& key_id, const std::string& day);

// consumeMessage() in parts, for callers that pipeline many calls (the rate
// tests): the script, its keys and arguments (nullopt when the account has
// no limit), and the outcome of one reply.
struct LimitCall {
  std::vector<std::string> keys, args;
};
const RedisScript& limitScript();
std::optional<LimitCall> limitCall(const StoreKeys& keys, const AccountPolicy& account, const std::string& key_id,
                                   const std::string& day);
Result<LimitResult> limitOutcome(const redisReply* reply);

Verdict limitVerdict(LimitResult result);

// A time (UTC) as "YYYYMMDD", as "YYYY-MM-DD" and as "YYYY-MM-DDTHH:MM:SSZ".
std::string utcDay(int64_t unix_ms);
std::string utcDate(int64_t unix_ms);
std::string utcTimestamp(int64_t unix_ms);

}  // namespace mailgate

// verdict.h — what a rule decides: no objection, a permit (relay check only),
// a permanent rejection or a temporary failure, with the exact SMTP reply (or
// policy action) and the rule's name for logs.
#pragma once

#include <string>

#include "mailgate/config.h"

namespace mailgate {

// Permit ends a Postfix restriction list with OK; only the relay check
// (policy_context=relay) gives it. Discard (accept and drop the message) is
// answered only to Exim's data ACL (x_checks=message: a sandbox key's mail).
enum class Action { Dunno, Permit, Reject, TempFail, Discard };

struct Verdict {
  Action action = Action::Dunno;
  std::string reply;  // "550 5.7.1 error/sender/unknown", "OK" for Permit, "DISCARD ..."; empty for Dunno
  std::string rule;   // "unauthenticated", "redis", ...
};

inline Verdict dunno() { return {}; }

// The verdict when Redis cannot answer, by on_redis_failure.
inline Verdict redisFailureVerdict(RedisFailure mode) {
  if (mode == RedisFailure::Accept) return Verdict{Action::Dunno, "", "redis"};
  return Verdict{Action::TempFail, "451 4.3.0 internal service error", "redis"};
}

}  // namespace mailgate

// redis_sentinel.h — finding the Redis master through Redis Sentinel
// (redis_server = sentinel:NAME@host:port,...): reading the Sentinels' and
// ROLE's replies (pure, unit-tested) and asking the Sentinels in turn.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include <hiredis/hiredis.h>

#include "mailgate/config.h"
#include "mailgate/result.h"

namespace mailgate {

// The master in a reply to SENTINEL get-master-addr-by-name: [host, port];
// nil when that Sentinel does not know `master`.
Result<Endpoint> masterFromSentinelReply(const redisReply* reply, std::string_view master);

// Whether a reply to ROLE says "master" (a replica answers ["slave", ...]).
bool roleIsMaster(const redisReply* reply);

// Whether an error reply means the server is not (or no longer) the master:
// -READONLY (a replica refusing a write) or -MASTERDOWN.
bool isNotMasterError(std::string_view error);

// Asks the Sentinels, starting at `next` (updated to the one that answered,
// so it is asked first next time), for the master's address; each within
// `timeout`. The error names every Sentinel and what it said.
Result<Endpoint> askSentinels(const RedisSentinel& sentinel, const std::string& password,
                              std::chrono::milliseconds timeout, size_t& next);

}  // namespace mailgate

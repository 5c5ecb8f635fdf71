// soft_bounce.cc — which soft bounces count toward suppression, and the
// script that counts a recipient's distinct messages per kind within the
// window and suppresses it at the limit, atomically with the check that it
// is not suppressed already (so a recipient is suppressed, and its event
// written, once).
#include "mailgate/soft_bounce.h"

#include <nlohmann/json.hpp>

#include "mailgate/store.h"

namespace mailgate {

std::string softBounceKind(std::string_view dsn) {
  // RFC 3463: class.subject.detail, each 1-3 digits.
  if (dsn.size() < 5 || dsn[0] != '4' || dsn[1] != '.' || (dsn[2] != '1' && dsn[2] != '2') || dsn[3] != '.') {
    return "";
  }
  std::string_view detail = dsn.substr(4);
  if (detail.size() > 3 || detail.find_first_not_of("0123456789") != std::string_view::npos) return "";
  return std::string(dsn.substr(0, 3));
}

bool softBouncesSuppress(const Config& config) {
  return config.soft_bounce_limit > 0 && config.soft_bounce_window.count() > 0;
}

namespace {

// KEYS[1] softbounce:<address>  KEYS[2] bounced  KEYS[3] bounced:{account}
// KEYS[4] bounced:info  KEYS[5] events
// ARGV[1] address  ARGV[2] kind  ARGV[3] queue id  ARGV[4] now (ms)
// ARGV[5] the oldest time still in the window  ARGV[6] the window (ms)
// ARGV[7] limit  ARGV[8] the bounced:info entry  ARGV[9..] XADD's arguments
// after the key. The kind has no space (a DSN class or "expired").
const RedisScript kSoftBounceScript(R"lua(
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
local prefix = ARGV[2] .. ' '
redis.call('ZADD', KEYS[1], ARGV[4], prefix .. ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
local n = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(m, 1, #prefix) == prefix then n = n + 1 end
end
if n < tonumber(ARGV[7]) then return n end
redis.call('DEL', KEYS[1])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[8])
redis.call('XADD', KEYS[5], unpack(ARGV, 9))
return n
)lua");

}  // namespace

Command softBounceCommand(const Config& config, const SoftBounce& b) {
  StoreKeys keys(config.redis_prefix);
  const Event& e = b.event;
  nlohmann::json info{{"time", e.time_ms}, {"account", e.account}, {"qid", e.queue_id},
                      {"dsn", e.code},     {"reason", kSoftBounceReason}};
  int64_t window = config.soft_bounce_window.count();
  // EVAL, not EVALSHA: inside MULTI a NOSCRIPT could not be retried.
  Command cmd{"EVAL",
              kSoftBounceScript.source,
              "5",
              keys.softBounces(b.address),
              keys.bouncedGlobal(),
              keys.bounced(e.account),
              keys.bouncedInfo(),
              eventsStreamKey(config),
              b.address,
              b.kind,
              e.queue_id,
              std::to_string(e.time_ms),
              std::to_string(e.time_ms - window),
              std::to_string(window),
              std::to_string(config.soft_bounce_limit),
              jsonText(info)};
  Command xadd = xaddCommand(config, e);
  cmd.insert(cmd.end(), xadd.begin() + 2, xadd.end());
  return cmd;
}

Command softBounceResetCommand(const Config& config, std::string_view address) {
  return {"DEL", StoreKeys(config.redis_prefix).softBounces(address)};
}

}  // namespace mailgate

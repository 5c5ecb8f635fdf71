// unrecorded.cc — counting the outcome records lost during a Redis gap, the
// commands that add the count to unrecorded:<day>, and writing it with the
// next records that reach Redis.
#include "mailgate/unrecorded.h"

#include <algorithm>

#include "mailgate/events.h"
#include "mailgate/limits.h"
#include "mailgate/log.h"
#include "mailgate/store.h"

namespace mailgate {

bool UnrecordedGap::add(uint64_t recipients, int64_t now_ms) {
  std::lock_guard lock(mutex_);
  if (pending_.messages == 0) pending_.since_ms = now_ms;
  ++pending_.messages;
  pending_.recipients += recipients;
  pending_.until_ms = now_ms;
  bool opens = !open_;
  open_ = true;
  return opens;
}

std::optional<UnrecordedCount> UnrecordedGap::take() {
  std::lock_guard lock(mutex_);
  if (pending_.messages == 0) return std::nullopt;
  UnrecordedCount taken = pending_;
  pending_ = UnrecordedCount{};
  return taken;
}

void UnrecordedGap::restore(const UnrecordedCount& count) {
  std::lock_guard lock(mutex_);
  open_ = true;  // another writer may have closed the gap meanwhile: this count still ends it
  if (pending_.messages == 0) {
    pending_ = count;
    return;
  }
  pending_.messages += count.messages;
  pending_.recipients += count.recipients;
  pending_.since_ms = std::min(pending_.since_ms, count.since_ms);
  pending_.until_ms = std::max(pending_.until_ms, count.until_ms);
}

bool UnrecordedGap::pending() {
  std::lock_guard lock(mutex_);
  return pending_.messages != 0;
}

bool UnrecordedGap::settled() {
  std::lock_guard lock(mutex_);
  if (!open_ || pending_.messages != 0) return false;
  open_ = false;
  return true;
}

std::vector<Command> unrecordedCommands(const Config& config, const UnrecordedCount& count, const std::string& host) {
  std::string key = StoreKeys(config.redis_prefix).unrecorded(utcDate(count.since_ms));
  return {
      {"HINCRBY", key, "messages", std::to_string(count.messages)},
      {"HINCRBY", key, "recipients", std::to_string(count.recipients)},
      {"HSET", key, "last_since", std::to_string(count.since_ms), "last_until", std::to_string(count.until_ms),
       "last_host", host},
      {"EXPIRE", key, std::to_string(400 * 86400)},
  };
}

Status writeWithUnrecorded(RedisConn& redis, const Config& config, UnrecordedGap& gap, std::vector<Command> cmds,
                           const std::string& host) {
  std::optional<UnrecordedCount> count = gap.take();
  if (count) {
    for (auto& cmd : unrecordedCommands(config, *count, host)) cmds.push_back(std::move(cmd));
  }
  if (Status st = writeRecord(redis, cmds); !st) {
    if (count) gap.restore(*count);
    return st.error();
  }
  if (count && gap.settled()) {
    MG_LOG_WARN("redis: outcome records are written again; %llu messages (%llu recipients) from %s to %s had "
                "none and are counted in unrecorded:%s (mailgatectl status)",
                static_cast<unsigned long long>(count->messages), static_cast<unsigned long long>(count->recipients),
                utcTimestamp(count->since_ms).c_str(), utcTimestamp(count->until_ms).c_str(),
                utcDate(count->since_ms).c_str());
  }
  return okStatus();
}

}  // namespace mailgate

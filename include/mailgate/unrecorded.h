// unrecorded.h — the outcome records a daemon could not write while Redis
// was away (on_redis_failure = accept, or refusals recorded best effort):
// counted in memory during the gap, logged once when it opens and once when
// the count reaches Redis (unrecorded:<day>, shown by `mailgatectl status`).
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "mailgate/config.h"
#include "mailgate/redis.h"
#include "mailgate/result.h"

namespace mailgate {

// What a gap left unrecorded: written to Redis with the next record that succeeds.
struct UnrecordedCount {
  uint64_t messages = 0, recipients = 0;
  int64_t since_ms = 0, until_ms = 0;  // the first and the last message without its record
};

// Thread-safe: the milter's connections share one.
class UnrecordedGap {
 public:
  // One message (with `recipients` recipients) whose record was lost; true
  // for the first of a gap (the caller logs the gap once).
  bool add(uint64_t recipients, int64_t now_ms);
  // The count not yet in Redis, taken out to be written (nullopt: none).
  // The caller hands it back with settled() after the write or restore()
  // when the write failed.
  std::optional<UnrecordedCount> take();
  void restore(const UnrecordedCount& count);
  bool pending();
  // After a successful write of a taken count: true when that closed the gap
  // (nothing was lost meanwhile), and the caller logs the gap's end once.
  bool settled();

 private:
  std::mutex mutex_;
  UnrecordedCount pending_;
  bool open_ = false;  // a gap is open: logged at its start, not yet at its end
};

// Sends `cmds` (none: the count alone) in one MULTI/EXEC together with the
// gap's pending count, which goes back to the gap when the write fails; logs
// the gap's end once when this write closed it. A Redis failure is returned.
Status writeWithUnrecorded(RedisConn& redis, const Config& config, UnrecordedGap& gap, std::vector<Command> cmds,
                           const std::string& host);

// HINCRBY unrecorded:<day> messages/recipients (day of the gap's first
// message, kept 400 days), the last gap's bounds and host.
std::vector<Command> unrecordedCommands(const Config& config, const UnrecordedCount& count, const std::string& host);

}  // namespace mailgate

// recorder.h — turns a batch of log lines into Redis writes: one round trip
// loads the q:<queueid> records the lines refer to, a second writes events,
// stats, recipient statuses, suppression entries and the log position in
// one MULTI/EXEC, so a restart neither loses nor repeats a line.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "log_follower.h"
#include "mailgate/config.h"
#include "mailgate/redis.h"
#include "mailgate/result.h"
#include "mailgate/tracking.h"

namespace mailgate::tracker {

class Recorder {
 public:
  Recorder(std::shared_ptr<const Config> config, RedisConn& redis, const std::string& node);

  // A reloaded configuration for the next batches.
  void setConfig(std::shared_ptr<const Config> config) { config_ = std::move(config); }

  Result<std::optional<LogPosition>> loadPosition();

  // Records what `lines` mean; `position` (nullptr for stdin) is saved with it.
  // On error nothing was written and the same lines may be given again.
  Status record(const std::vector<std::string>& lines, const LogPosition* position);

  // Marks this tracker alive (tracker:<node> heartbeat, trackers set) for
  // `mailgatectl status`; called at start and every few seconds.
  Status heartbeat();

 private:
  std::vector<Command> commandsFor(const TrackingUpdate& update, const std::string& queue_id);

  std::shared_ptr<const Config> config_;
  RedisConn& redis_;
  std::string node_;
  std::string position_key_;
};

}  // namespace mailgate::tracker

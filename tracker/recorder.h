// recorder.h — turns a batch of log lines into Redis writes: one round trip
// loads the q:<queueid> records the lines refer to and WATCHes the log
// position, a second writes events, stats, recipient statuses, suppressions,
// soft-bounce counts and the position with the batch's id in one MULTI/EXEC,
// so a restart neither loses nor repeats a line, and a batch given again
// after a lost reply or a timeout (Redis may have applied it) is not applied twice.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
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

  // Records what `lines` mean; `position` (nullptr for stdin) is saved with
  // it. Lines from a syslog tag that is no Postfix program of
  // tracker_syslog_names, and delivery lines for recipients the message was
  // not submitted to, are ignored and logged (IgnoredLines). On error the
  // same lines may be given again: if Redis applied them after all, that is
  // recognised (by the batch id saved with the position) and not repeated.
  Status record(const std::vector<std::string>& lines, const LogPosition* position);

  // Marks this tracker alive (tracker:<node> heartbeat, trackers set) for
  // `mailgatectl status`; called at start and every few seconds.
  Status heartbeat();

 private:
  // The soft-bounce commands of one batch attempt (soft_bounce.h): each
  // recipient, kind and message once, and what their replies say.
  class SoftBounceCounts {
   public:
    // Adds `update`'s resets and counts to `writes`.
    void add(const Config& config, const TrackingUpdate& update, std::vector<Command>& writes);
    // Logs the suppressions the EXEC reply `exec` says the counts made.
    void logSuppressions(const Config& config, const redisReply* exec) const;

   private:
    std::set<std::string> counted_;  // "address\nkind\nqueueid"
    std::vector<std::pair<size_t, SoftBounce>> commands_;  // index in writes
  };

  std::vector<Command> commandsFor(const TrackingUpdate& update, const std::string& queue_id);
  Status recordBatch(const std::vector<std::string>& lines, const LogPosition* position);
  std::string batchId(const std::vector<std::string>& lines, const LogPosition* position) const;
  void noteIgnored(const std::string& queue_id, const std::string& why, int64_t now);

  std::shared_ptr<const Config> config_;
  RedisConn& redis_;
  std::string node_;
  std::string position_key_;
  IgnoredLines ignored_;
  // Without a position (stdin) the same lines may come again as a new
  // batch: batches are told apart by this process's random id and a count
  // of the batches it recorded.
  std::string process_id_;
  uint64_t stdin_batches_ = 0;
};

}  // namespace mailgate::tracker

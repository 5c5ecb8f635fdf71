// recorder.cc — log lines -> tracking updates -> one MULTI/EXEC per batch,
// applied only once (see recorder.h). Syslog gets one line per delivery
// result and, rate-limited, one per queue id with ignored (forged) lines.
#include "recorder.h"

#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "mailgate/crypto.h"
#include "mailgate/events.h"
#include "mailgate/log.h"
#include "mailgate/postfix_log.h"
#include "mailgate/soft_bounce.h"
#include "mailgate/store.h"

namespace mailgate::tracker {

Recorder::Recorder(std::shared_ptr<const Config> config, RedisConn& redis, const std::string& node)
    : config_(std::move(config)),
      redis_(redis),
      node_(node),
      position_key_(StoreKeys(config_->redis_prefix).tracker(node)),
      process_id_(toHex(randomBytes(8))) {}

Status Recorder::heartbeat() {
  auto r = checkedPipeline(redis_, {{"SADD", StoreKeys(config_->redis_prefix).trackers(), node_},
                                    {"HSET", position_key_, "heartbeat", std::to_string(nowMillis()), "path",
                                     config_->tracker_log}});
  if (!r) return r.error();
  return okStatus();
}

Result<std::optional<LogPosition>> Recorder::loadPosition() {
  auto r = redis_.command(
      {"HMGET", position_key_, "inode", "offset", "fingerprint", "fingerprint_length", "mtime", "time"});
  if (!r) return r.error();
  if ((*r)->elements != 6 || (*r)->element[0]->type != REDIS_REPLY_STRING) return std::optional<LogPosition>{};
  LogPosition p;
  p.inode = std::strtoull(replyString((*r)->element[0]).c_str(), nullptr, 10);
  p.offset = std::strtoull(replyString((*r)->element[1]).c_str(), nullptr, 10);
  p.fingerprint = replyString((*r)->element[2]);  // empty in a position saved before fingerprints: inode only
  p.fingerprint_length = std::strtoull(replyString((*r)->element[3]).c_str(), nullptr, 10);
  // Saved before mtime was: the time of the save is close enough.
  p.mtime_ms = std::strtoll(replyString((*r)->element[(*r)->element[4]->type == REDIS_REPLY_STRING ? 4 : 5]).c_str(),
                            nullptr, 10);
  return std::optional<LogPosition>{p};
}

std::vector<Command> Recorder::commandsFor(const TrackingUpdate& u, const std::string& queue_id) {
  StoreKeys keys(config_->redis_prefix);
  std::vector<Command> cmds = outcomeCommands(*config_, u.events, nullptr);
  std::string q = keys.queueRecord(queue_id);
  for (const auto& [rcpt, status] : u.rcpt_status) cmds.push_back({"HSET", q, "rcpt:" + rcpt, status});
  for (const Suppression& s : u.suppress) {
    nlohmann::json info{{"time", s.time_ms}, {"account", s.account}, {"qid", s.queue_id},
                        {"dsn", s.dsn},      {"reason", s.reason}};
    cmds.push_back({"SADD", keys.bouncedGlobal(), s.address});
    cmds.push_back({"SADD", keys.bounced(s.account), s.address});
    cmds.push_back({"HSET", keys.bouncedInfo(), s.address, jsonText(info)});
  }
  if (!u.notification_qid.empty()) cmds.push_back({"HSET", q, "notification", u.notification_qid});
  if (u.removed) cmds.push_back({"HSET", q, "done", "1"});
  return cmds;
}

namespace {

// Attempts per batch when the position changes between the load and EXEC.
constexpr int kAttempts = 3;

}  // namespace

void Recorder::SoftBounceCounts::add(const Config& config, const TrackingUpdate& u, std::vector<Command>& writes) {
  for (const std::string& address : u.delivered) {
    writes.push_back(softBounceResetCommand(config, address));
    // Counted again after the delivery, as the reset forgot them.
    auto from = counted_.lower_bound(address + '\n');
    auto to = from;
    while (to != counted_.end() && to->starts_with(address + '\n')) ++to;
    counted_.erase(from, to);
  }
  for (const SoftBounce& b : u.soft_bounces) {
    // A recipient deferred many times for one message in one batch counts
    // once (and its script would only set the same time again).
    if (!counted_.insert(b.address + '\n' + b.kind + '\n' + b.event.queue_id).second) continue;
    commands_.emplace_back(writes.size(), b);
    writes.push_back(softBounceCommand(config, b));
  }
}

void Recorder::SoftBounceCounts::logSuppressions(const Config& config, const redisReply* exec) const {
  for (const auto& [index, b] : commands_) {
    if (exec == nullptr || index >= exec->elements) return;
    const redisReply* n = exec->element[index];
    if (n->type != REDIS_REPLY_INTEGER || n->integer < config.soft_bounce_limit) continue;
    std::string what = b.kind == kExpiredKind ? "expired" : "deferred with " + b.kind + ".x";
    MG_LOG_INFO("%s: suppressed <%s> for account %s: %s, %lld messages %s within %llds (last %s)",
                b.event.queue_id.c_str(), printable(b.address).c_str(), printable(b.event.account).c_str(),
                kSoftBounceReason, n->integer, what.c_str(),
                static_cast<long long>(config.soft_bounce_window.count() / 1000), printable(b.event.code).c_str());
  }
}

// Identifies a batch: its lines and where they end (for stdin, which has no
// position: the how-manyth batch of this process it is). The same batch
// given again after a failure gets the same id, and only it.
std::string Recorder::batchId(const std::vector<std::string>& lines, const LogPosition* position) const {
  std::string text = position == nullptr ? "-" + process_id_ + ":" + std::to_string(stdin_batches_)
                                         : std::to_string(position->inode) + ":" + std::to_string(position->offset);
  for (const auto& line : lines) (text += '\n') += line;
  return sha256Hex(text).substr(0, 32);
}

void Recorder::noteIgnored(const std::string& queue_id, const std::string& why, int64_t now) {
  uint64_t unlogged = 0;
  if (!ignored_.shouldLog(queue_id, now, unlogged)) return;
  std::string more = unlogged == 0 ? "" : "; " + std::to_string(unlogged) + " more ignored lines were not logged";
  MG_LOG_WARN("%s: ignored log line: %s (logged once per queue id%s)", printable(queue_id).c_str(),
              printable(why).c_str(), more.c_str());
}

Status Recorder::record(const std::vector<std::string>& lines, const LogPosition* position) {
  Status st = recordBatch(lines, position);
  if (st && position == nullptr) ++stdin_batches_;
  return st;
}

Status Recorder::recordBatch(const std::vector<std::string>& lines, const LogPosition* position) {
  int64_t now = nowMillis();
  std::vector<LogRecord> records;
  std::set<std::string> queue_ids;
  for (const auto& line : lines) {
    LogRecord r = parsePostfixLogLine(line);
    if (r.kind == LogRecord::Kind::Other) continue;
    if (r.program.empty() && position != nullptr) {
      // A log file's lines all have a tag; a bare one is a line break inside
      // another program's message (a syslog daemon that keeps them).
      noteIgnored(r.queue_id, "a line of " + config_->tracker_log + " without a syslog tag", now);
      continue;
    }
    if (!r.program.empty() && !isPostfixTag(r.program, config_->tracker_syslog_names)) {
      noteIgnored(r.queue_id, "syslog tag " + r.program + " is not a Postfix program of tracker_syslog_names", now);
      continue;
    }
    queue_ids.insert(r.queue_id);
    records.push_back(std::move(r));
  }
  const std::string batch = batchId(lines, position);
  Command save_position{"HSET", position_key_, "batch", batch};
  if (position != nullptr) {
    Command fields{"inode", std::to_string(position->inode), "offset", std::to_string(position->offset),
                   "fingerprint", position->fingerprint, "fingerprint_length",
                   std::to_string(position->fingerprint_length), "mtime", std::to_string(position->mtime_ms),
                   "path", config_->tracker_log, "time", std::to_string(now)};
    save_position.insert(save_position.end(), fields.begin(), fields.end());
  }
  if (records.empty()) {
    // Nothing but the position, which is the same when written twice.
    if (position == nullptr) return okStatus();
    if (auto exec = transaction(redis_, {save_position}); !exec) return exec.error();
    return okStatus();
  }

  StoreKeys keys(config_->redis_prefix);
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    // WATCH the position with the loads: the batch applies only if no other
    // transaction (an earlier attempt whose reply was lost) moved it since.
    std::vector<Command> loads{{"UNWATCH"}, {"WATCH", position_key_}, {"HGET", position_key_, "batch"}};
    for (const auto& qid : queue_ids) loads.push_back({"HGETALL", keys.queueRecord(qid)});
    auto replies = checkedPipeline(redis_, loads);
    if (!replies) return replies.error();
    if (replyString((*replies)[2].get()) == batch) {
      MG_LOG_INFO("a batch of %zu log lines was recorded already (its reply was lost or late); not again",
                  lines.size());
      (void)redis_.command({"UNWATCH"});  // else it lingers until the next EXEC
      return okStatus();
    }
    std::map<std::string, TrackedMessage> messages;
    size_t i = 3;
    for (const auto& qid : queue_ids) messages[qid] = trackedMessageFromHash((*replies)[i++].get());

    std::vector<Command> writes;
    std::vector<Event> logged;
    std::vector<std::pair<std::string, Suppression>> suppressed;
    SoftBounceCounts soft_bounces;
    for (const LogRecord& r : records) {
      TrackingUpdate u = trackLine(r, messages[r.queue_id], now);
      if (!u.ignored.empty()) noteIgnored(r.queue_id, u.ignored, now);
      for (auto& c : commandsFor(u, r.queue_id)) writes.push_back(std::move(c));
      if (softBouncesSuppress(*config_)) soft_bounces.add(*config_, u, writes);
      for (auto& e : u.events) logged.push_back(std::move(e));
      for (auto& s : u.suppress) suppressed.emplace_back(r.queue_id, std::move(s));
    }
    writes.push_back(save_position);
    auto exec = watchedTransaction(redis_, writes);
    if (!exec) return exec.error();
    if (!*exec) continue;  // the position moved after the WATCH: look again
    for (const auto& [qid, s] : suppressed) {
      MG_LOG_INFO("%s: suppressed <%s> for account %s: hard bounce %s", qid.c_str(), printable(s.address).c_str(),
                  printable(s.account).c_str(), printable(s.dsn).c_str());
    }
    soft_bounces.logSuppressions(*config_, exec->value().get());
    for (const Event& e : logged) {
      MG_LOG_INFO("%s: %s: to=<%s> dsn=%s account=%s campaign=%s", e.queue_id.c_str(), e.status.c_str(),
                  printable(e.rcpt).c_str(), printable(e.code).c_str(), printable(e.account).c_str(),
                  printable(e.campaign).c_str());
    }
    return okStatus();
  }
  return Error{Error::Kind::Server, "the log position " + position_key_ + " changed during each of " +
                                        std::to_string(kAttempts) +
                                        " attempts to record a batch (another tracker with the same tracker_name?)"};
}

}  // namespace mailgate::tracker

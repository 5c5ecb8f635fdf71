// recorder.cc — log lines -> tracking updates -> one MULTI/EXEC per batch
// (see recorder.h). Syslog gets one line per delivery result.
#include "recorder.h"

#include <map>

#include <nlohmann/json.hpp>

#include "mailgate/events.h"
#include "mailgate/log.h"
#include "mailgate/postfix_log.h"
#include "mailgate/store.h"

namespace mailgate::tracker {

Recorder::Recorder(std::shared_ptr<const Config> config, RedisConn& redis, const std::string& node)
    : config_(std::move(config)),
      redis_(redis),
      node_(node),
      position_key_(StoreKeys(config_->redis_prefix).tracker(node)) {}

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

Status Recorder::record(const std::vector<std::string>& lines, const LogPosition* position) {
  std::vector<LogRecord> records;
  std::map<std::string, TrackedMessage> messages;
  for (const auto& line : lines) {
    LogRecord r = parsePostfixLogLine(line);
    if (r.kind == LogRecord::Kind::Other) continue;
    messages.emplace(r.queue_id, TrackedMessage{});
    records.push_back(std::move(r));
  }
  if (!messages.empty()) {
    std::vector<Command> loads;
    StoreKeys keys(config_->redis_prefix);
    for (const auto& [qid, _] : messages) loads.push_back({"HGETALL", keys.queueRecord(qid)});
    auto replies = checkedPipeline(redis_, loads);
    if (!replies) return replies.error();
    size_t i = 0;
    for (auto& [qid, msg] : messages) msg = trackedMessageFromHash((*replies)[i++].get());
  }

  std::vector<Command> writes;
  int64_t now = nowMillis();
  std::vector<Event> logged;
  for (const LogRecord& r : records) {
    TrackingUpdate u = trackLine(r, messages[r.queue_id], now);
    for (auto& c : commandsFor(u, r.queue_id)) writes.push_back(std::move(c));
    for (auto& e : u.events) logged.push_back(std::move(e));
    for (const auto& s : u.suppress) {
      MG_LOG_INFO("%s: suppressed <%s> for account %s: hard bounce %s", r.queue_id.c_str(),
                  printable(s.address).c_str(), printable(s.account).c_str(), printable(s.dsn).c_str());
    }
  }
  if (position != nullptr) {
    writes.push_back({"HSET", position_key_, "inode", std::to_string(position->inode), "offset",
                      std::to_string(position->offset), "fingerprint", position->fingerprint, "fingerprint_length",
                      std::to_string(position->fingerprint_length), "mtime", std::to_string(position->mtime_ms),
                      "path", config_->tracker_log, "time", std::to_string(now)});
  }
  if (writes.empty()) return okStatus();
  if (auto exec = transaction(redis_, writes); !exec) return exec.error();
  for (const Event& e : logged) {
    MG_LOG_INFO("%s: %s: to=<%s> dsn=%s account=%s campaign=%s", e.queue_id.c_str(), e.status.c_str(),
                printable(e.rcpt).c_str(), printable(e.code).c_str(), printable(e.account).c_str(),
                printable(e.campaign).c_str());
  }
  return okStatus();
}

}  // namespace mailgate::tracker

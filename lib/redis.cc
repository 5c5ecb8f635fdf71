// redis.cc — hiredis wrapper: connection lifecycle (connect, AUTH, SELECT,
// timeouts, reconnect: one probe per interval and configured server while it
// is down, outage logged once, the master asked of the Sentinels and checked
// with ROLE, the server's clock offset from TIME), commands, pipelines (resent
// only when nothing was written), transactions, scripts (also with a
// deadline) and the pool.
#include "mailgate/redis.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <map>
#include <openssl/sha.h>
#include <sys/socket.h>
#include <utility>

#include "mailgate/log.h"
#include "mailgate/redis_sentinel.h"

namespace mailgate {
namespace {

// While a server is down, one connection in the process tries it every
// kProbeInterval and the others fail at once; when that probe gets an answer,
// every connection reconnects on its next command. So service resumes within
// about kProbeInterval of Redis answering, however long the outage was, and a
// frozen Redis costs one redis_timeout per interval, not one per message.
constexpr std::chrono::milliseconds kProbeInterval{100};

int64_t steadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// The outage state of one configured server (its endpoint, or its Sentinel
// spec: a failover moves the master, not the state), shared by every
// connection to it in the process, so that an outage is also logged once,
// not per thread.
struct RedisHealth {
  std::atomic<bool> down{false};
  std::atomic<int64_t> next_probe{0};  // steadyNanos() before which no connection tries
  std::mutex mutex;
  std::string last_error;  // under mutex

  static std::shared_ptr<RedisHealth> of(const RedisSettings& settings) {
    static std::mutex registry_mutex;
    static std::map<std::string, std::shared_ptr<RedisHealth>> registry;
    std::lock_guard<std::mutex> lock(registry_mutex);
    auto& h = registry[settings.sentinel ? settings.sentinel->toString() : settings.endpoint.toString()];
    if (!h) h = std::make_shared<RedisHealth>();
    return h;
  }

  std::string lastError() {
    std::lock_guard<std::mutex> lock(mutex);
    return last_error;
  }

  // True for the one caller that may try a connection now.
  bool mayTry() {
    if (!down.load()) return true;
    int64_t now = steadyNanos(), due = next_probe.load();
    return now >= due && next_probe.compare_exchange_strong(due, now + std::chrono::nanoseconds(kProbeInterval).count());
  }
};

namespace {

int64_t steadyMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A server that refuses TIME (an ACL without it) is logged once per process.
std::atomic<bool> g_time_refused_logged{false};

timeval toTimeval(std::chrono::milliseconds ms) {
  timeval tv;
  tv.tv_sec = ms.count() / 1000;
  tv.tv_usec = (ms.count() % 1000) * 1000;
  return tv;
}

std::vector<const char*> argvPointers(const Command& argv, std::vector<size_t>& lens) {
  std::vector<const char*> ptrs;
  ptrs.reserve(argv.size());
  lens.clear();
  for (const auto& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  return ptrs;
}

}  // namespace

RedisSettings RedisSettings::fromConfig(const Config& config) {
  return RedisSettings{config.redis_server, config.redis_password, config.redis_db,
                       config.redis_timeout, config.redis_sentinel, config.redis_sentinel_password};
}

RedisScript::RedisScript(std::string src) : source(std::move(src)) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(source.data()), source.size(), digest);
  static const char kHex[] = "0123456789abcdef";
  for (unsigned char b : digest) {
    sha1 += kHex[b >> 4];
    sha1 += kHex[b & 15];
  }
}

RedisConn::RedisConn(RedisSettings settings)
    : settings_(std::move(settings)), health_(RedisHealth::of(settings_)), current_(settings_.endpoint) {}

std::string RedisConn::name() const {
  if (!settings_.sentinel) return settings_.endpoint.toString();
  return "master " + settings_.sentinel->master + (current_.port != 0 ? " at " + current_.toString() : "");
}

RedisConn::~RedisConn() {
  if (ctx_ != nullptr) redisFree(ctx_);
}

Error RedisConn::fail(Error::Kind kind, const std::string& what) {
  if (ctx_ != nullptr) {
    redisFree(ctx_);
    ctx_ = nullptr;
  }
  {
    std::lock_guard<std::mutex> lock(health_->mutex);
    health_->last_error = what;
  }
  health_->next_probe = steadyNanos() + std::chrono::nanoseconds(kProbeInterval).count();
  if (!health_->down.exchange(true)) {
    MG_LOG_WARN("redis %s unavailable: %s", name().c_str(), what.c_str());
  }
  return Error{kind, "redis " + name() + ": " + what};
}

void RedisConn::markHealthy() {
  if (health_->down.exchange(false)) {
    MG_LOG_INFO("redis %s reachable again", name().c_str());
  }
}

Status RedisConn::connectNow() {
  timeval tv = toTimeval(settings_.timeout);
  if (settings_.sentinel) {
    auto master = askSentinels(*settings_.sentinel, settings_.sentinel_password, settings_.timeout, next_sentinel_);
    if (!master) return fail(master.error().kind, master.error().message);
    current_ = *master;
  }
  const Endpoint& ep = current_;
  ctx_ = ep.kind == Endpoint::Kind::Unix ? redisConnectUnixWithTimeout(ep.path.c_str(), tv)
                                         : redisConnectWithTimeout(ep.host.c_str(), ep.port, tv);
  if (ctx_ == nullptr) return fail(Error::Kind::Unavailable, "cannot allocate context");
  if (ctx_->err) return fail(Error::Kind::Unavailable, std::string("connect: ") + ctx_->errstr);
  if (redisSetTimeout(ctx_, tv) != REDIS_OK) return fail(Error::Kind::Unavailable, "cannot set timeout");
  if (ep.kind == Endpoint::Kind::Tcp) redisEnableKeepAlive(ctx_);

  std::vector<Command> setup;
  if (!settings_.password.empty()) setup.push_back({"AUTH", settings_.password});
  if (settings_.db != 0) setup.push_back({"SELECT", std::to_string(settings_.db)});
  // A Sentinel's answer may be stale (a failover under way): the server itself says.
  if (settings_.sentinel) setup.push_back({"ROLE"});
  setup.push_back({"TIME"});  // for evalWithDeadline()
  int64_t sent_ms = steadyMillis();
  for (const auto& cmd : setup) {
    std::vector<size_t> lens;
    auto ptrs = argvPointers(cmd, lens);
    redisAppendCommandArgv(ctx_, static_cast<int>(ptrs.size()), ptrs.data(), lens.data());
  }
  for (const auto& cmd : setup) {
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK) {
      return fail(Error::Kind::Unavailable, std::string("setup: ") + ctx_->errstr);
    }
    Reply r(static_cast<redisReply*>(raw));
    if (cmd[0] == "TIME") {
      setServerClock(r.get(), sent_ms);
      continue;
    }
    if (r->type == REDIS_REPLY_ERROR) {
      // Never echo the password: name the command only.
      return fail(Error::Kind::Server, cmd[0] + " failed: " + std::string(r->str, r->len));
    }
    if (cmd[0] == "ROLE" && !roleIsMaster(r.get())) {
      return fail(Error::Kind::Unavailable, "the Sentinels named a server that is not a master (ROLE " +
                                                replyString(r->type == REDIS_REPLY_ARRAY && r->elements > 0
                                                                ? r->element[0]
                                                                : r.get()) +
                                                "); asking again");
    }
  }
  return okStatus();
}

void RedisConn::setServerClock(const redisReply* time_reply, int64_t sent_steady_ms) {
  int64_t received_ms = steadyMillis();
  if (time_reply == nullptr || time_reply->type != REDIS_REPLY_ARRAY || time_reply->elements != 2) {
    has_clock_ = false;
    if (!g_time_refused_logged.exchange(true)) {
      MG_LOG_WARN("redis %s: TIME refused (%s): outcome records are written without a deadline, so a record a "
                  "stalled Redis runs after the writer gave up can still be applied; allow TIME (+time) for "
                  "mailgate's Redis user", name().c_str(),
                  time_reply != nullptr && time_reply->type == REDIS_REPLY_ERROR
                      ? std::string(time_reply->str, time_reply->len).c_str()
                      : "unexpected reply");
    }
    return;
  }
  int64_t server_ms = std::atoll(replyString(time_reply->element[0]).c_str()) * 1000 +
                      std::atoll(replyString(time_reply->element[1]).c_str()) / 1000;
  // Against our steady clock: a step of this host's wall clock changes nothing.
  clock_offset_ms_ = server_ms - (sent_steady_ms + received_ms) / 2;
  clock_uncertainty_ms_ = (received_ms - sent_steady_ms + 1) / 2;
  has_clock_ = true;
}

Status RedisConn::ensureConnected() {
  bool at_once = std::exchange(reconnect_now_, false);
  if (ctx_ != nullptr) return okStatus();
  if (!at_once && !health_->mayTry()) {
    return Error{Error::Kind::Unavailable, "redis " + name() + ": " + health_->lastError() + " (backing off)"};
  }
  return connectNow();
}

Result<std::vector<Reply>> RedisConn::pipeline(const std::vector<Command>& commands) {
  bool unsent = false;
  auto replies = pipelineOnce(commands, unsent);
  if (!replies && unsent && replies.error().kind == Error::Kind::Unavailable) {
    // Not a byte of it reached the server (the write failed on a connection
    // the server had closed), so sending it again cannot apply it twice.
    // Once anything was written, a lost reply is an error: the commands may
    // have been applied.
    reconnect_now_ = true;
    replies = pipelineOnce(commands, unsent);
  }
  return replies;
}

Result<std::vector<Reply>> RedisConn::pipelineOnSameConnection(const std::vector<Command>& commands) {
  bool unsent = false;
  return pipelineOnce(commands, unsent, false);
}

bool RedisConn::closedByServer() const {
  // Redis never speaks first (no RESP3 pushes here): an idle connection
  // that is readable holds an end of file or a reset, e.g. after a restart.
  char byte;
  ssize_t n = recv(ctx_->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

Result<std::vector<Reply>> RedisConn::pipelineOnce(const std::vector<Command>& commands, bool& unsent,
                                                   bool may_connect) {
  unsent = false;
  if (ctx_ != nullptr && closedByServer()) {
    redisFree(ctx_);
    ctx_ = nullptr;
    reconnect_now_ = true;  // a replacement, not a new attempt on a failing server
  }
  if (ctx_ == nullptr && !may_connect) {
    unsent = true;
    return Error{Error::Kind::Unavailable, "redis " + name() + ": connection lost"};
  }
  if (Status s = ensureConnected(); !s) return s.error();
  std::vector<size_t> lens;
  for (const auto& cmd : commands) {
    auto ptrs = argvPointers(cmd, lens);
    if (redisAppendCommandArgv(ctx_, static_cast<int>(ptrs.size()), ptrs.data(), lens.data()) != REDIS_OK) {
      return fail(Error::Kind::Unavailable, std::string("append: ") + ctx_->errstr);
    }
  }
  for (int done = 0, first = 1; !done; first = 0) {
    // A failed redisBufferWrite wrote nothing; a successful one may have
    // written part of the commands.
    if (redisBufferWrite(ctx_, &done) != REDIS_OK) {
      unsent = first;
      bool timeout = errno == EAGAIN || errno == EWOULDBLOCK;
      return fail(timeout ? Error::Kind::Timeout : Error::Kind::Unavailable,
                  std::string("write: ") + ctx_->errstr);
    }
  }
  std::vector<Reply> replies;
  replies.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK) {
      bool timeout = ctx_->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
      return fail(timeout ? Error::Kind::Timeout : Error::Kind::Unavailable,
                  timeout ? "timeout" : std::string(ctx_->errstr));
    }
    replies.emplace_back(static_cast<redisReply*>(raw));
  }
  markHealthy();
  dropIfNotMaster(replies);
  return replies;
}

void RedisConn::dropIfNotMaster(const std::vector<Reply>& replies) {
  if (!settings_.sentinel) return;
  for (const auto& r : replies) {
    if (r->type != REDIS_REPLY_ERROR || !isNotMasterError(std::string_view(r->str, r->len))) continue;
    MG_LOG_WARN("redis %s is no longer the master (%s); asking the Sentinels again", name().c_str(),
                replyString(r.get()).c_str());
    redisFree(ctx_);
    ctx_ = nullptr;
    reconnect_now_ = true;
    return;
  }
}

Result<Reply> RedisConn::command(const Command& argv) {
  auto replies = pipeline({argv});
  if (!replies) return replies.error();
  Reply r = std::move(replies->front());
  if (r->type == REDIS_REPLY_ERROR) return Error{Error::Kind::Server, std::string(r->str, r->len)};
  return r;
}

Result<Reply> RedisConn::eval(const RedisScript& script, const std::vector<std::string>& keys,
                              const std::vector<std::string>& args) {
  Command cmd{"EVALSHA", script.sha1, std::to_string(keys.size())};
  cmd.insert(cmd.end(), keys.begin(), keys.end());
  cmd.insert(cmd.end(), args.begin(), args.end());
  auto r = command(cmd);
  if (!r && r.error().kind == Error::Kind::Server && r.error().message.starts_with("NOSCRIPT")) {
    cmd[0] = "EVAL";
    cmd[1] = script.source;
    return command(cmd);
  }
  return r;
}

Result<Reply> RedisConn::evalWithDeadline(const RedisScript& script, const std::vector<std::string>& keys,
                                          const std::vector<std::string>& args) {
  if (ctx_ != nullptr && closedByServer()) {  // the offset must be the server's that runs it
    redisFree(ctx_);
    ctx_ = nullptr;
    reconnect_now_ = true;
  }
  if (Status s = ensureConnected(); !s) return s.error();
  // "0": no deadline (the server refuses TIME).
  auto deadline = [&] {
    return has_clock_ ? std::to_string(steadyMillis() + clock_offset_ms_ + settings_.timeout.count() -
                                       clock_uncertainty_ms_)
                      : std::string("0");
  };
  Command cmd{"EVALSHA", script.sha1, std::to_string(keys.size())};
  cmd.insert(cmd.end(), keys.begin(), keys.end());
  size_t deadline_at = cmd.size();
  cmd.push_back(deadline());
  cmd.insert(cmd.end(), args.begin(), args.end());
  for (int attempt = 0;; ++attempt) {
    int64_t started = steadyMillis();
    auto r = command(cmd);
    if (!r && r.error().kind == Error::Kind::Server && r.error().message.starts_with("NOSCRIPT")) {
      cmd[0] = "EVAL";
      cmd[1] = script.source;
      cmd[deadline_at] = deadline();
      started = steadyMillis();
      r = command(cmd);
    }
    bool late = r && (*r)->type == REDIS_REPLY_INTEGER && (*r)->integer == 0;
    // "Late" although the answer came well within the timeout: the server's
    // clock stepped since the offset was measured. Nothing was written, so
    // measure again and send it once more.
    if (!late || attempt > 0 || !connected() || steadyMillis() - started >= settings_.timeout.count() / 2) {
      return r;
    }
    int64_t sent = steadyMillis();
    auto time = command({"TIME"});
    setServerClock(time ? time->get() : nullptr, sent);
    cmd[deadline_at] = deadline();
  }
}

RedisPool::RedisPool(RedisSettings settings, size_t max_size)
    : settings_(std::move(settings)), max_size_(std::max<size_t>(max_size, 1)) {}

Result<RedisPool::Lease> RedisPool::acquire() {
  std::unique_lock<std::mutex> lock(mutex_);
  // Busy means no connection came back for a whole Redis timeout (Redis or
  // its holders are stuck); a pool that makes progress is waited out, but
  // never past kPoolWaitTimeouts Redis timeouts in all: a slow Redis must meet
  // on_redis_failure well before Postfix's milter timeouts (30 s), not leave
  // a waiter that keeps losing the race for returned connections.
  auto now = std::chrono::steady_clock::now();
  auto deadline = now + settings_.timeout;
  auto last = now + std::min<std::chrono::steady_clock::duration>(settings_.timeout * kPoolWaitTimeouts, kPoolWaitMax);
  uint64_t seen = released_;
  while (idle_.empty() && created_ >= max_size_) {
    if (available_.wait_until(lock, std::min(deadline, last)) == std::cv_status::timeout && idle_.empty()) {
      now = std::chrono::steady_clock::now();
      if (released_ == seen || now >= last) {
        return Error{Error::Kind::Timeout, "redis: all " + std::to_string(max_size_) + " connections busy"};
      }
      seen = released_;
      deadline = now + settings_.timeout;
    }
  }
  if (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    return Lease(this, std::move(conn));
  }
  ++created_;
  return Lease(this, std::make_unique<RedisConn>(settings_));
}

void RedisPool::release(std::unique_ptr<RedisConn> conn) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++released_;
    idle_.push_back(std::move(conn));
  }
  available_.notify_one();
}

RedisPool::Lease::~Lease() {
  if (conn_) pool_->release(std::move(conn_));
}

Result<std::vector<Reply>> checkedPipeline(RedisConn& redis, const std::vector<Command>& commands) {
  auto replies = redis.pipeline(commands);
  if (!replies) return replies.error();
  for (const auto& r : *replies) {
    if (r->type == REDIS_REPLY_ERROR) return Error{Error::Kind::Server, replyString(r.get())};
  }
  return replies;
}

namespace {

// MULTI, `commands`, EXEC through `send`; EXEC's reply (nil when a watched key changed).
template <class Send>
Result<Reply> multiExec(const std::vector<Command>& commands, Send&& send) {
  std::vector<Command> all;
  all.reserve(commands.size() + 2);
  all.push_back({"MULTI"});
  all.insert(all.end(), commands.begin(), commands.end());
  all.push_back({"EXEC"});
  auto replies = send(all);
  if (!replies) return replies.error();
  // A refusal while queueing explains the EXECABORT that follows.
  for (const auto& r : *replies) {
    if (r->type == REDIS_REPLY_ERROR) return Error{Error::Kind::Server, replyString(r.get())};
  }
  Reply exec = std::move(replies->back());
  if (exec->type == REDIS_REPLY_NIL) return exec;
  if (exec->type != REDIS_REPLY_ARRAY) return Error{Error::Kind::Server, "redis discarded the transaction"};
  for (size_t i = 0; i < exec->elements; ++i) {
    if (exec->element[i]->type == REDIS_REPLY_ERROR) {
      return Error{Error::Kind::Server, replyString(exec->element[i])};
    }
  }
  return exec;
}

}  // namespace

Result<std::optional<Reply>> watchedTransaction(RedisConn& redis, const std::vector<Command>& commands) {
  auto exec = multiExec(commands, [&](const std::vector<Command>& all) { return redis.pipelineOnSameConnection(all); });
  if (!exec) return exec.error();
  if ((*exec)->type == REDIS_REPLY_NIL) return std::optional<Reply>{};
  return std::optional<Reply>{std::move(*exec)};
}

Result<Reply> transaction(RedisConn& redis, const std::vector<Command>& commands) {
  auto exec = multiExec(commands, [&](const std::vector<Command>& all) { return redis.pipeline(all); });
  if (!exec) return exec.error();
  // nil (a key a WATCH left on this connection changed): not applied.
  if ((*exec)->type != REDIS_REPLY_ARRAY) return Error{Error::Kind::Server, "redis discarded the transaction"};
  return exec;
}

std::string redisKey(const std::string& prefix, std::string_view a, std::string_view b) {
  std::string k;
  k.reserve(prefix.size() + a.size() + b.size());
  k += prefix;
  k += a;
  k += b;
  return k;
}

std::string hashField(const redisReply* flat, std::string_view name) {
  for (size_t i = 0; flat != nullptr && flat->type == REDIS_REPLY_ARRAY && i + 1 < flat->elements; i += 2) {
    if (replyString(flat->element[i]) == name) return replyString(flat->element[i + 1]);
  }
  return "";
}

std::string replyString(const redisReply* r) {
  if (r == nullptr) return "";
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR: return std::string(r->str, r->len);
    case REDIS_REPLY_INTEGER: return std::to_string(r->integer);
    default: return "";
  }
}

}  // namespace mailgate

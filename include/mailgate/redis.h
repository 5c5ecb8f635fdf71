// redis.h — the Redis layer on hiredis 0.14: one RedisConn per thread (or
// leased from a RedisPool), connect and command timeouts, reconnect (one
// try per 100 ms and server while it is down, shared by the process's
// connections), AUTH/SELECT, the master found through Sentinel, pipelining
// and EVALSHA with NOSCRIPT reload. Every failure comes back as an Error
// value; nothing here blocks past the timeout.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <hiredis/hiredis.h>

#include "mailgate/config.h"
#include "mailgate/result.h"

namespace mailgate {

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;
using Command = std::vector<std::string>;

struct RedisSettings {
  Endpoint endpoint;  // unless `sentinel` is set
  std::string password;
  int db = 0;
  std::chrono::milliseconds timeout{500};
  std::optional<RedisSentinel> sentinel;  // ask these Sentinels for the master
  std::string sentinel_password;

  static RedisSettings fromConfig(const Config& config);
};

// A Lua script identified by its SHA1, run with EVALSHA and reloaded (EVAL)
// when the server answers NOSCRIPT (after a restart or SCRIPT FLUSH).
struct RedisScript {
  explicit RedisScript(std::string source);
  std::string source;
  std::string sha1;
};

class RedisConn {
 public:
  explicit RedisConn(RedisSettings settings);
  ~RedisConn();
  RedisConn(const RedisConn&) = delete;
  RedisConn& operator=(const RedisConn&) = delete;

  // One command. A server error reply (-ERR ...) becomes Error::Kind::Server.
  Result<Reply> command(const Command& argv);
  // N commands in one round trip; replies in order. Server errors stay
  // replies (type REDIS_REPLY_ERROR) so the caller sees which one failed.
  // Commands are sent again (once) only when not a byte of them was
  // written; after a lost reply or a timeout they may have been applied, so
  // that is an error, never a resend. An idle connection the server closed
  // is replaced before anything is written to it.
  Result<std::vector<Reply>> pipeline(const std::vector<Command>& commands);
  // pipeline() on the connection in use only, never on a new one and never
  // resent: for commands after WATCH, which a new connection would not have.
  Result<std::vector<Reply>> pipelineOnSameConnection(const std::vector<Command>& commands);
  // EVALSHA script keys... args...; on NOSCRIPT, EVAL and so reload it.
  Result<Reply> eval(const RedisScript& script, const std::vector<std::string>& keys,
                     const std::vector<std::string>& args);

  // eval() with the script's first argument set to the time, in the
  // server's clock (Unix ms, by the offset to our steady clock measured with
  // TIME at connect), after which this client no longer waits for the reply
  // ("0" when the server refuses TIME). A script that compares it with TIME
  // and writes nothing when later, answering 0 (kRecordScript in events.cc),
  // is not applied after its caller gave up: a stalled server (SIGSTOP, a
  // long fork) that runs it when it wakes cannot contradict a tempfail. A
  // "late" 0 that came back quickly means the server's clock stepped: the
  // offset is measured again and the script sent once more.
  Result<Reply> evalWithDeadline(const RedisScript& script, const std::vector<std::string>& keys,
                                 const std::vector<std::string>& args);

  bool connected() const { return ctx_ != nullptr; }
  // The server as logs name it: the endpoint, or the Sentinel master's name and address.
  std::string name() const;

 private:
  // `unsent` tells that it failed before a byte of `commands` was written.
  Result<std::vector<Reply>> pipelineOnce(const std::vector<Command>& commands, bool& unsent,
                                          bool may_connect = true);
  bool closedByServer() const;
  Status ensureConnected();
  Status connectNow();
  Error fail(Error::Kind kind, const std::string& what);
  void markHealthy();
  // With Sentinel: a reply saying this server is no longer the master
  // (-READONLY after a failover) drops the connection so that the next
  // command asks the Sentinels again.
  void dropIfNotMaster(const std::vector<Reply>& replies);

  RedisSettings settings_;
  std::shared_ptr<struct RedisHealth> health_;  // shared by the process's connections to the server
  Endpoint current_;          // the server connected to (Sentinel: the master found)
  size_t next_sentinel_ = 0;  // the Sentinel asked first
  redisContext* ctx_ = nullptr;
  bool reconnect_now_ = false;  // the next connect replaces a lost one: not held back by the probe
  // From a TIME reply sent at `sent_steady_ms`: the offset, or none when refused.
  void setServerClock(const redisReply* time_reply, int64_t sent_steady_ms);
  // Server wall clock minus our steady clock (ms) and half the round trip it was measured in.
  int64_t clock_offset_ms_ = 0, clock_uncertainty_ms_ = 0;
  bool has_clock_ = false;
};

// A bounded set of connections shared by threads that may not own one each
// (libmilter's worker pool). acquire() fails ("all N connections busy")
// only when no connection came back for a whole Redis timeout: a burst of
// sessions is waited out while the pool makes progress.
class RedisPool {
 public:
  RedisPool(RedisSettings settings, size_t max_size);

  class Lease {
   public:
    Lease(RedisPool* pool, std::unique_ptr<RedisConn> conn) : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    RedisConn& operator*() { return *conn_; }
    RedisConn* operator->() { return conn_.get(); }

   private:
    RedisPool* pool_;
    std::unique_ptr<RedisConn> conn_;
  };

  // A free connection; waits while others come back, at most
  // kPoolWaitTimeouts Redis timeouts (and kPoolWaitMax) in all.
  Result<Lease> acquire();

  static constexpr int kPoolWaitTimeouts = 4;
  static constexpr std::chrono::seconds kPoolWaitMax{5};

 private:
  void release(std::unique_ptr<RedisConn> conn);

  RedisSettings settings_;
  size_t max_size_;
  size_t created_ = 0;
  uint64_t released_ = 0;  // connections given back, ever
  std::vector<std::unique_ptr<RedisConn>> idle_;
  std::mutex mutex_;
  std::condition_variable available_;
};

// A pipeline whose every reply must succeed: the first server error reply
// becomes Error::Kind::Server.
Result<std::vector<Reply>> checkedPipeline(RedisConn& redis, const std::vector<Command>& commands);

// MULTI, `commands`, EXEC in one round trip: Redis applies all of them or,
// when one is refused while queued (OOM, read-only replica, syntax),
// none. Returns EXEC's array of replies; the first refusal or error reply
// becomes Error::Kind::Server (after EXEC, the other commands did apply:
// Redis has no rollback).
Result<Reply> transaction(RedisConn& redis, const std::vector<Command>& commands);

// transaction() after a WATCH sent on `redis`, on that same connection (an
// error instead of a new one, which would not watch): nullopt when Redis
// did not apply it because a watched key changed.
Result<std::optional<Reply>> watchedTransaction(RedisConn& redis, const std::vector<Command>& commands);

// Builds "<prefix><rest>", e.g. key(prefix, "q:", qid) -> "mg:q:3F2A81C0B1".
std::string redisKey(const std::string& prefix, std::string_view a, std::string_view b = {});

// Text of a reply for logs and tools: strings, status, integers; "" otherwise.
std::string replyString(const redisReply* r);

// The value of `name` in a flat [name, value, ...] reply (HGETALL, XINFO),
// "" when absent.
std::string hashField(const redisReply* flat, std::string_view name);

}  // namespace mailgate

// listener.h — the socket server under both protocols of mailgate-policy:
// worker threads, each with its own epoll loop over the shared listening
// socket, its connections and its own Redis connection. A Session (policy
// or Dovecot auth) turns input bytes into output; this file does I/O only.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "mailgate/listen.h"
#include "mailgate/redis.h"

namespace mailgate::policy {

class Session {
 public:
  virtual ~Session() = default;
  // Bytes sent right after accept (the Dovecot handshake); empty for policy.
  virtual std::string greeting() { return {}; }

  enum class Next {
    Continue,        // keep reading
    CloseAfterWrite, // send `out`, then close gracefully
    CloseNow,        // drop the connection, `out` is discarded
  };
  // New bytes (empty with eof = true when the peer half-closed).
  virtual Next onInput(std::string_view data, bool eof, std::string& out) = 0;
  // Part of a request (or line) is buffered: it must be completed within
  // the listener's request_timeout, however slowly its bytes trickle in.
  virtual bool midRequest() const = 0;
  // Requests (auth: lines) answered so far: a pipelining client's stream of
  // whole requests is never one slow request, even when every read ends
  // inside the next one.
  virtual uint64_t requestsCompleted() const = 0;
};

// What one worker thread owns and lends to its sessions.
struct Worker {
  explicit Worker(RedisSettings settings) : redis(std::move(settings)) {}
  RedisConn redis;
};

using SessionFactory = std::function<std::unique_ptr<Session>(Worker&)>;

struct ListenerOptions {
  std::string name;  // "policy" or "auth", for logs
  unsigned workers = 2;
  std::chrono::milliseconds idle_timeout{330000};
  std::chrono::milliseconds request_timeout{10000};  // from the first byte of a request to its end
  RedisSettings redis;
  unsigned max_connections = 1000;  // more are accepted and closed at once
};

// What the worker loops of one listener share: the open connection count,
// whether a refusal episode (over the cap, out of descriptors) was logged, and
// a spare descriptor (with the lock every accept takes) that makes room to
// refuse a connection when descriptors run out.
struct ListenerState {
  std::atomic<unsigned> open{0};
  std::atomic<bool> at_cap{false};
  std::atomic<bool> out_of_fds{false};
  std::mutex accept_mutex;
  UniqueFd spare;
};

class Listener {
 public:
  Listener(ListenerOptions options, UniqueFd listen_fd, SessionFactory factory);
  ~Listener();

  void start();
  // Stops accepting, lets sessions answer what was already read, closes, joins.
  void stop();

 private:
  ListenerOptions options_;
  UniqueFd listen_fd_;
  UniqueFd stop_fd_;
  SessionFactory factory_;
  ListenerState state_;
  std::vector<std::thread> threads_;
};

}  // namespace mailgate::policy

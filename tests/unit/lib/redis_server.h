// redis_server.h — a throw-away redis-server on a free loopback port (and a
// UNIX socket) for the tests of the Redis-backed parts of libmailgate, and a
// proxy in front of it that can lose a reply on the way back.
#pragma once

#include <arpa/inet.h>
#include <atomic>
#include <poll.h>
#include <vector>
#include <chrono>
#include <csignal>
#include <mutex>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "mailgate/redis.h"

namespace mailgate::testing {

using namespace std::chrono_literals;

inline uint16_t freePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

class RedisServer {
 public:
  RedisServer() : port_(freePort()) {
    char tmpl[] = "/tmp/mg-redis-XXXXXX";
    dir_ = mkdtemp(tmpl);
    start();
  }
  ~RedisServer() {
    stop();
    std::string cmd = "rm -rf " + dir_;
    if (system(cmd.c_str()) != 0) perror("rm");
  }
  void start() {
    std::string port = std::to_string(port_), sock = socketPath();
    pid_ = fork();
    if (pid_ == 0) {
      execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", dir_.c_str(), "--unixsocket", sock.c_str(), "--unixsocketperm",
             "700", "--enable-debug-command", "yes", "--loglevel", "warning", static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 100; ++i) {
      RedisConn probe(settings());
      if (probe.command({"PING"})) return;
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << "redis-server did not start";
  }
  void stop() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  RedisSettings settings(std::chrono::milliseconds timeout = 500ms) const {
    RedisSettings s;
    s.endpoint = Endpoint{Endpoint::Kind::Tcp, "", "127.0.0.1", port_};
    s.timeout = timeout;
    return s;
  }
  std::string socketPath() const { return dir_ + "/redis.sock"; }
  uint16_t port() const { return port_; }

 private:
  uint16_t port_;
  std::string dir_;
  pid_t pid_ = -1;
};

// A TCP proxy to a redis-server. After dropNextReply(), the next bytes the
// server sends are not forwarded: the client's connection is closed
// instead, as when a network path or a Redis failover loses a reply to
// commands the server did apply.
class ReplyDroppingProxy {
 public:
  explicit ReplyDroppingProxy(uint16_t target) : target_(target) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = loopback(0);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    listen(listen_fd_, 16);
    thread_ = std::thread([this] { run(); });
  }
  ~ReplyDroppingProxy() {
    stop_ = true;
    thread_.join();
    for (auto [c, s] : pairs_) {
      close(c);
      close(s);
    }
    close(listen_fd_);
  }
  void dropNextReply() { drop_ = true; }
  // Drops the reply to the next request whose bytes hold `needle` (e.g.
  // "EXEC"): the server got it, the client never hears back.
  void dropReplyTo(std::string needle) {
    std::lock_guard<std::mutex> lock(mutex_);
    needle_ = std::move(needle);
  }
  RedisSettings settings(std::chrono::milliseconds timeout = 500ms) const {
    RedisSettings s;
    s.endpoint = Endpoint{Endpoint::Kind::Tcp, "", "127.0.0.1", port_};
    s.timeout = timeout;
    return s;
  }

 private:
  static sockaddr_in loopback(uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    return a;
  }
  void run() {
    while (!stop_) {
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
      for (auto [c, s] : pairs_) {
        fds.push_back({c, POLLIN, 0});
        fds.push_back({s, POLLIN, 0});
      }
      if (poll(fds.data(), fds.size(), 20) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        int c = accept(listen_fd_, nullptr, nullptr);
        int s = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a = loopback(target_);
        connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
        pairs_.emplace_back(c, s);
        continue;
      }
      for (size_t i = 0; i < pairs_.size(); ++i) {
        auto [c, s] = pairs_[i];
        bool from_server = fds[2 + 2 * i].revents != 0;
        if (fds[1 + 2 * i].revents == 0 && !from_server) continue;
        char buf[65536];
        ssize_t n = read(from_server ? s : c, buf, sizeof buf);
        if (n <= 0 || (from_server && drop_.exchange(false))) {
          close(c);
          close(s);
          pairs_.erase(pairs_.begin() + static_cast<long>(i));
          break;
        }
        if (!from_server) {
          std::lock_guard<std::mutex> lock(mutex_);
          if (!needle_.empty() && std::string_view(buf, static_cast<size_t>(n)).find(needle_) != std::string_view::npos) {
            needle_.clear();
            drop_ = true;
          }
        }
        if (write(from_server ? c : s, buf, static_cast<size_t>(n)) != n) perror("proxy write");
      }
    }
  }

  uint16_t target_, port_ = 0;
  int listen_fd_ = -1;
  std::vector<std::pair<int, int>> pairs_;
  std::atomic<bool> drop_{false}, stop_{false};
  std::mutex mutex_;
  std::string needle_;  // guarded by mutex_
  std::thread thread_;
};

// A test suite with one redis-server for all its tests.
class RedisFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new RedisServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static inline RedisServer* server_ = nullptr;
};

}  // namespace mailgate::testing

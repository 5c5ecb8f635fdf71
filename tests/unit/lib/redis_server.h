// redis_server.h — a throw-away redis-server on a free loopback port (and a
// UNIX socket) for the tests of the Redis-backed parts of libmailgate.
#pragma once

#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <string>
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

 private:
  uint16_t port_;
  std::string dir_;
  pid_t pid_ = -1;
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

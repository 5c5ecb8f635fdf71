// server.h — the policy listener: worker threads, each with its own epoll
// loop over the shared listening socket and its connections. Framing comes
// from lib/policy_proto.cc; decide() is where the rules plug in.
#pragma once

#include <atomic>
#include <thread>
#include <vector>

#include "mailgate/config.h"
#include "mailgate/listen.h"
#include "mailgate/policy_proto.h"

namespace mailgate::policy {

class PolicyServer {
 public:
  PolicyServer(const Config& config, UniqueFd listen_fd);
  ~PolicyServer();

  void start();
  // Stops accepting, answers what was already read, closes and joins.
  void stop();

 private:
  void workerLoop();

  Config config_;
  UniqueFd listen_fd_;
  UniqueFd stop_fd_;  // eventfd, readable once stop() was called
  std::vector<std::thread> workers_;
};

// The answer to one request (an action= value without the "action=").
std::string decide(const PolicyRequest& request);

}  // namespace mailgate::policy

// main.cc — mailgate-policy(8): the Postfix policy service (also Exim's
// readsocket endpoint) on policy_listen and the Dovecot-auth protocol server
// for API-key SMTP AUTH on auth_listen. Serves until SIGTERM.
#include <csignal>

#include "auth_session.h"
#include "listener.h"
#include "mailgate/daemon.h"
#include "mailgate/log.h"
#include "mailgate/signals.h"
#include "policy_session.h"

using namespace mailgate;
using namespace mailgate::policy;

namespace {

UniqueFd listenOrExit(const char* what, const Endpoint& endpoint, const Config& config) {
  auto fd = listenOn(endpoint, config.socket_mode, config.socket_group);
  if (!fd) {
    MG_LOG_ERR("fatal: %s %s: %s", what, endpoint.toString().c_str(), fd.error().message.c_str());
    exit(1);
  }
  return std::move(*fd);
}

void removeSocket(const Endpoint& endpoint) {
  if (endpoint.kind == Endpoint::Kind::Unix) unlink(endpoint.path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  DaemonOptions options = parseDaemonArgs(argc, argv, "mailgate-policy");
  const Config config = startDaemon(options, "mailgate-policy");
  UniqueFd policy_fd = listenOrExit("policy_listen", config.policy_listen, config);
  UniqueFd auth_fd = listenOrExit("auth_listen", config.auth_listen, config);
  detachUnlessForeground(options);
  blockDaemonSignals();

  Store store(config);
  RedisSettings redis = RedisSettings::fromConfig(config);
  Listener policy({"policy", config.policy_workers, config.policy_idle_timeout, redis}, std::move(policy_fd),
                  [&](Worker& w) { return std::make_unique<PolicySession>(config, store, w.redis); });
  Listener auth({"auth", config.policy_workers, config.policy_idle_timeout, redis}, std::move(auth_fd),
                [&](Worker& w) { return std::make_unique<AuthConnection>(config, store, w.redis); });
  policy.start();
  auth.start();
  MG_LOG_INFO("listening on %s (policy) and %s (auth), %u workers each", config.policy_listen.toString().c_str(),
              config.auth_listen.toString().c_str(), config.policy_workers);
  while (true) {
    int sig = waitForSignal();
    if (sig == SIGHUP) {
      MG_LOG_INFO("SIGHUP: configuration reload is not supported yet; restart to apply changes");
      continue;
    }
    MG_LOG_INFO("signal %d: stopping", sig);
    break;
  }
  policy.stop();
  auth.stop();
  removeSocket(config.policy_listen);
  removeSocket(config.auth_listen);
  return 0;
}

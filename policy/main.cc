// main.cc — mailgate-policy(8): the Postfix policy service (also Exim's
// readsocket endpoint) on policy_listen and the Dovecot-auth protocol server
// for API-key SMTP AUTH on auth_listen, as `user` once both are open. SIGHUP
// reloads the configuration (new connections use it); SIGTERM finishes the
// requests in hand and exits.
#include "auth_session.h"
#include "listener.h"
#include "mailgate/daemon.h"
#include "mailgate/live_config.h"
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
  blockDaemonSignals();
  DaemonOptions options = parseDaemonArgs(argc, argv, "mailgate-policy");
  LiveConfig live(startDaemon(options, "mailgate-policy"));
  const std::shared_ptr<const Config> initial = live.get();
  const Config& config = *initial;  // sockets, workers and Redis address: fixed until a restart
  UniqueFd policy_fd = listenOrExit("policy_listen", config.policy_listen, config);
  UniqueFd auth_fd = listenOrExit("auth_listen", config.auth_listen, config);
  detachUnlessForeground(options, "mailgate-policy");
  dropPrivileges(config);

  Store store(config);
  RedisSettings redis = RedisSettings::fromConfig(config);
  probeRedis(config);
  Listener policy({"policy", config.policy_workers, config.policy_idle_timeout, redis}, std::move(policy_fd),
                  [&](Worker& w) { return std::make_unique<PolicySession>(live.get(), store, w.redis); });
  Listener auth({"auth", config.policy_workers, config.policy_idle_timeout, redis}, std::move(auth_fd),
                [&](Worker& w) { return std::make_unique<AuthConnection>(live.get(), store, w.redis); });
  policy.start();
  auth.start();
  std::string status = "listening on " + config.policy_listen.toString() + " (policy) and " +
                       config.auth_listen.toString() + " (auth)";
  MG_LOG_INFO("%s, %u workers each", status.c_str(), config.policy_workers);
  serveUntilStopped(live, status, [&](const Config& reloaded) { store.reconfigure(reloaded); });
  policy.stop();
  auth.stop();
  removeSocket(config.policy_listen);
  removeSocket(config.auth_listen);
  removePidFile();
  return 0;
}

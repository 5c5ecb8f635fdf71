// main.cc — mailgate-policy(8): the Postfix policy service (also Exim's
// readsocket endpoint) on policy_listen and the Dovecot-auth protocol server
// for API-key SMTP AUTH on auth_listen, as `user` once both are open. SIGHUP
// reloads the configuration (new connections use it); SIGTERM finishes the
// requests in hand and exits.
#include <algorithm>

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

// The connections each listener serves: policy_max_connections, after the
// soft open-files limit was raised towards what that needs on both listeners
// (up to the hard limit), or fewer if the limit leaves less room beside the
// daemon's own descriptors (each worker's epoll and Redis connection, spares).
unsigned maxConnections(const Config& config) {
  rlim_t reserve = 32 + 4 * static_cast<rlim_t>(config.policy_workers);
  rlim_t want = 2 * static_cast<rlim_t>(config.policy_max_connections) + reserve;
  rlim_t soft = raiseOpenFilesLimit(want);
  if (soft >= want) return config.policy_max_connections;
  auto fit = static_cast<unsigned>(std::max<rlim_t>(1, soft > reserve ? (soft - reserve) / 2 : 1));
  MG_LOG_WARN("open files limited to %llu (RLIMIT_NOFILE): serving at most %u connections per listener, not "
              "policy_max_connections = %u; raise LimitNOFILE", static_cast<unsigned long long>(soft), fit,
              config.policy_max_connections);
  return fit;
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

  const unsigned max_connections = maxConnections(config);
  Store store(config);
  DkimKeyCache dkim_keys(store.keys());  // Exim's data ACL asks which keys sign
  RedisSettings redis = RedisSettings::fromConfig(config);
  probeRedis(config);
  auto listenerOptions = [&](const char* name) {
    return ListenerOptions{name, config.policy_workers, config.policy_idle_timeout,
                           config.policy_request_timeout, redis, max_connections};
  };
  Listener policy(listenerOptions("policy"), std::move(policy_fd),
                  [&](Worker& w) { return std::make_unique<PolicySession>(live.get(), store, dkim_keys, w.redis); });
  Listener auth(listenerOptions("auth"), std::move(auth_fd),
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

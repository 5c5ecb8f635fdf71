// main.cc — mailgate-policy(8): Postfix policy service (and Exim readsocket
// endpoint). Loads mailgate.conf, binds policy_listen, serves until SIGTERM.
#include <csignal>

#include "mailgate/daemon.h"
#include "mailgate/listen.h"
#include "mailgate/log.h"
#include "mailgate/signals.h"
#include "server.h"

using namespace mailgate;

int main(int argc, char** argv) {
  DaemonOptions options = parseDaemonArgs(argc, argv, "mailgate-policy");
  Config config = startDaemon(options, "mailgate-policy");
  auto fd = listenOn(config.policy_listen, config.socket_mode, config.socket_group);
  if (!fd) {
    MG_LOG_ERR("fatal: policy_listen %s: %s", config.policy_listen.toString().c_str(),
               fd.error().message.c_str());
    return 1;
  }
  detachUnlessForeground(options);
  blockDaemonSignals();
  policy::PolicyServer server(config, std::move(*fd));
  server.start();
  MG_LOG_INFO("listening on %s (%u workers)", config.policy_listen.toString().c_str(), config.policy_workers);
  while (true) {
    int sig = waitForSignal();
    if (sig == SIGHUP) {
      MG_LOG_INFO("SIGHUP: configuration reload is not supported yet; restart to apply changes");
      continue;
    }
    MG_LOG_INFO("signal %d: stopping", sig);
    break;
  }
  server.stop();
  if (config.policy_listen.kind == Endpoint::Kind::Unix) unlink(config.policy_listen.path.c_str());
  return 0;
}

// main.cc — mailgate-web(8): the one-click unsubscribe endpoint (RFC 8058)
// on web_listen, as `user` once the socket is open, behind the admin's
// reverse proxy for TLS. SIGHUP reloads the configuration (secrets, token
// lifetime: the next request uses them); SIGTERM finishes the requests in
// hand and exits.
#include "http_server.h"
#include "mailgate/daemon.h"
#include "mailgate/live_config.h"
#include "mailgate/log.h"
#include "mailgate/signals.h"

using namespace mailgate;

int main(int argc, char** argv) {
  blockDaemonSignals();
  DaemonOptions options = parseDaemonArgs(argc, argv, "mailgate-web");
  LiveConfig live(startDaemon(options, "mailgate-web"));
  const std::shared_ptr<const Config> initial = live.get();
  const Config& config = *initial;  // socket, threads and Redis address: fixed until a restart
  if (config.web_secrets.empty()) {
    MG_LOG_ERR("fatal: web_secret_file is not set: mailgate-web cannot check unsubscribe tokens");
    return 1;
  }
  auto fd = listenOn(config.web_listen, config.socket_mode, config.socket_group);
  if (!fd) {
    MG_LOG_ERR("fatal: web_listen %s: %s", config.web_listen.toString().c_str(), fd.error().message.c_str());
    return 1;
  }
  detachUnlessForeground(options, "mailgate-web");
  dropPrivileges(config);
  raiseOpenFilesLimit(static_cast<rlim_t>(config.web_max_connections) + 64 + 2 * config.web_threads);
  probeRedis(config);
  RedisPool redis(RedisSettings::fromConfig(config), config.web_threads);
  web::HttpServer server(live, redis);
  if (!server.start(std::move(*fd), config.web_threads, config.web_max_connections)) return 1;
  std::string status = "listening on " + config.web_listen.toString();
  MG_LOG_INFO("%s, %u threads", status.c_str(), config.web_threads);
  serveUntilStopped(live, status, [](const Config& reloaded) {
    if (reloaded.web_secrets.empty()) MG_LOG_WARN("web_secret_file is no longer set: every token is refused");
  });
  server.stop();
  if (config.web_listen.kind == Endpoint::Kind::Unix) unlink(config.web_listen.path.c_str());
  removePidFile();
  return 0;
}

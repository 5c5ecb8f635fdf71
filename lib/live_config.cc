// live_config.cc — SIGHUP configuration reload shared by the daemons (see
// live_config.h): parse first, swap only a valid configuration; and the
// signal loop every daemon's main thread runs.
#include "mailgate/live_config.h"

#include <csignal>

#include "mailgate/daemon.h"
#include "mailgate/log.h"
#include "mailgate/signals.h"

namespace mailgate {

LiveConfig::LiveConfig(Config initial) : current_(std::make_shared<const Config>(std::move(initial))) {}

std::shared_ptr<const Config> LiveConfig::get() const {
  std::lock_guard lock(mutex_);
  return current_;
}

Result<std::vector<std::string>> LiveConfig::reload() {
  std::shared_ptr<const Config> old = get();
  std::shared_ptr<const Config> next;
  try {
    next = std::make_shared<const Config>(loadConfig(old->path));
  } catch (const ConfigError& e) {
    return Error{Error::Kind::Invalid, e.what()};
  }
  std::vector<std::string> restart = restartOnlyChanges(*old, *next);
  std::lock_guard lock(mutex_);
  current_ = std::move(next);
  return restart;
}

std::vector<std::string> restartOnlyChanges(const Config& a, const Config& b) {
  std::vector<std::string> out;
  auto check = [&](bool same, const char* name) {
    if (!same) out.push_back(name);
  };
  auto endpoint = [](const Endpoint& e) { return e.toString(); };
  check(a.redisServerString() == b.redisServerString(), "redis_server");
  check(a.redis_sentinel_password == b.redis_sentinel_password, "redis_sentinel_password");
  check(a.redis_password == b.redis_password, "redis_password");
  check(a.redis_db == b.redis_db, "redis_db");
  check(a.redis_timeout == b.redis_timeout, "redis_timeout");
  check(a.redis_prefix == b.redis_prefix, "redis_prefix");
  check(a.redis_pool_size == b.redis_pool_size, "redis_pool_size");
  check(endpoint(a.policy_listen) == endpoint(b.policy_listen), "policy_listen");
  check(a.policy_workers == b.policy_workers, "policy_workers");
  check(a.policy_max_connections == b.policy_max_connections, "policy_max_connections");
  check(a.policy_idle_timeout == b.policy_idle_timeout, "policy_idle_timeout");
  check(a.policy_request_timeout == b.policy_request_timeout, "policy_request_timeout");
  check(endpoint(a.auth_listen) == endpoint(b.auth_listen), "auth_listen");
  check(endpoint(a.web_listen) == endpoint(b.web_listen), "web_listen");
  check(a.web_threads == b.web_threads, "web_threads");
  check(a.web_max_connections == b.web_max_connections, "web_max_connections");
  check(a.milter_listen == b.milter_listen, "milter_listen");
  check(a.socket_mode == b.socket_mode, "socket_mode");
  check(a.socket_group == b.socket_group, "socket_group");
  check(a.user == b.user, "user");
  check(a.dkim_expire == b.dkim_expire, "dkim_expire");
  check(a.tracker_log == b.tracker_log, "tracker_log");
  check(a.tracker_name == b.tracker_name, "tracker_name");
  check(a.webhook_timeout == b.webhook_timeout, "webhook_timeout");
  return out;
}

namespace {

// Reloads `live` and logs the outcome (one line; restart-only changes
// named); returns true when a new configuration is in effect.
bool reloadAndLog(LiveConfig& live) {
  auto r = live.reload();
  if (!r) {
    MG_LOG_ERR("reload: %s; keeping the running configuration", r.error().message.c_str());
    return false;
  }
  std::string names;
  for (const auto& n : *r) names += (names.empty() ? "" : ", ") + n;
  if (names.empty()) MG_LOG_INFO("reload: configuration %s reloaded", live.get()->path.c_str());
  else MG_LOG_WARN("reload: configuration %s reloaded; a restart is needed to apply %s", live.get()->path.c_str(),
                   names.c_str());
  return true;
}

}  // namespace

void serveUntilStopped(LiveConfig& live, const std::string& status,
                       const std::function<void(const Config&)>& on_reload) {
  notifyReady(status);
  while (true) {
    int sig = waitForSignal();
    if (sig != SIGHUP) {
      MG_LOG_INFO("signal %d: stopping", sig);
      notifyStopping();
      return;
    }
    notifyReloading();
    if (reloadAndLog(live) && on_reload) on_reload(*live.get());
    notifyReady(status);
  }
}

}  // namespace mailgate

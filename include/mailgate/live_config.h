// live_config.h — the configuration a daemon serves with, replaceable by
// SIGHUP: readers take a snapshot (per connection, message or batch), a
// reload that fails keeps the running configuration, and parameters that
// only a restart can apply (sockets, Redis address, workers) are named.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mailgate/config.h"
#include "mailgate/result.h"

namespace mailgate {

class LiveConfig {
 public:
  explicit LiveConfig(Config initial);

  std::shared_ptr<const Config> get() const;

  // Re-reads the file the running configuration came from. On success the
  // new configuration is served from now on and the names of changed
  // restart-only parameters are returned; on a bad file (ConfigError) the
  // running configuration stays and the error says why.
  Result<std::vector<std::string>> reload();

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const Config> current_;
};

// Names of the parameters that differ between `a` and `b` and take effect
// only at a restart.
std::vector<std::string> restartOnlyChanges(const Config& a, const Config& b);

// The main thread of a daemon once it serves: tells systemd it is ready
// (`status`), reloads on SIGHUP (then calls `on_reload` with the new
// configuration, when given) and returns at SIGTERM or SIGINT, after telling
// systemd it stops.
void serveUntilStopped(LiveConfig& live, const std::string& status,
                       const std::function<void(const Config&)>& on_reload = {});

}  // namespace mailgate

// daemon.h — what every mailgate daemon does at start: parse -c/-f/-n/-p/-v,
// load the config (one-line error naming file:line and exit 1 when it is
// bad), open the log, detach unless -f or -n (writing a pid file), and tell
// systemd (Type=notify) when it is ready, reloading or stopping.
#pragma once

#include <string>

#include "mailgate/config.h"

namespace mailgate {

constexpr const char* kDefaultConfigPath = "/etc/mailgate/mailgate.conf";

struct DaemonOptions {
  std::string config_path = kDefaultConfigPath;
  bool foreground = false;  // -f: stay attached, log to stderr
  bool no_detach = false;   // -n: stay attached, log to syslog (systemd)
  bool verbose = false;
  std::string pid_file;     // -p FILE; detached daemons default to /run/mailgate/<name>.pid
};

// Parses `-c FILE -f -n -p FILE -v`; prints usage and exits 2 on anything else.
DaemonOptions parseDaemonArgs(int argc, char** argv, const char* ident);

// Loads the config; on ConfigError writes the message to stderr and syslog
// and exits 1. Then initialises logging (syslog, or stderr with -f).
Config startDaemon(const DaemonOptions& options, const char* ident);

// PINGs redis_server once at start and logs a warning when it cannot be
// reached (the daemon serves anyway, with on_redis_failure).
void probeRedis(const Config& config);

// gethostname(), "localhost" if that fails.
std::string localHostname();

// Without -f or -n, detaches from the terminal; call it once the sockets are
// bound so that start-up errors still reach the terminal. Then writes the pid
// file (when detached or -p was given).
void detachUnlessForeground(const DaemonOptions& options, const char* ident);

// Removes the pid file written by detachUnlessForeground().
void removePidFile();

// sd_notify(3) messages; no-ops when not started by systemd.
void notifyReady(const std::string& status);
void notifyReloading();
void notifyStopping();

}  // namespace mailgate

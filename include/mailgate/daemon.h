// daemon.h — what every mailgate daemon does at start: parse -c/-f/-n/-p/-v,
// load the config (one-line error naming file:line and exit 1 when it is
// bad), open the log, detach unless -f or -n (writing a pid file), switch to
// the configured user, tell systemd (Type=notify) when it is ready, reloading
// or stopping, and choose the exit status.
#pragma once

#include <sys/resource.h>

#include <atomic>
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

// Raises the soft open-files limit (RLIMIT_NOFILE) towards `want`, up to the
// hard limit, and returns the soft limit now in effect.
rlim_t raiseOpenFilesLimit(rlim_t want);

// When started as root and `user` is not root: switches to that user, its
// group and its supplementary groups, and checks that root cannot be
// regained; logs "running as user NAME (uid U, gid G)". Call after the
// sockets and the pid file are open and before any thread starts. Exits 1
// with one line when the user does not exist or a step fails. A daemon not
// started as root keeps its identity (systemd's User= already chose it).
void dropPrivileges(const Config& config);

// The exit status of a daemon whose service loop runs in another thread:
// 0 only when the loop returned cleanly after the main thread asked it to
// stop; a loop that returns on its own (or fails) makes it 1, so that
// systemd's Restart=on-failure restarts the daemon.
class ServiceExit {
 public:
  // Main thread, before asking the loop to stop.
  void requestStop() { stop_requested_ = true; }
  // Service thread, when its loop returned; true when nobody asked it to
  // stop (the caller then wakes the main thread).
  bool serviceReturned(bool clean);
  int status() const { return stopped_on_its_own_ || !clean_ ? 1 : 0; }

 private:
  std::atomic<bool> stop_requested_{false};
  bool stopped_on_its_own_ = false;  // written by the service thread before the main thread joins it
  bool clean_ = true;
};

// sd_notify(3) messages; no-ops when not started by systemd.
void notifyReady(const std::string& status);
void notifyReloading();
void notifyStopping();

}  // namespace mailgate

// daemon.h — what every mailgate daemon does at start: parse -c/-f/-v, load
// the config (one-line error naming file:line and exit 1 when it is bad),
// open the log and detach from the terminal unless -f.
#pragma once

#include <string>

#include "mailgate/config.h"

namespace mailgate {

constexpr const char* kDefaultConfigPath = "/etc/mailgate/mailgate.conf";

struct DaemonOptions {
  std::string config_path = kDefaultConfigPath;
  bool foreground = false;
  bool verbose = false;
};

// Parses `-c FILE -f -v`; prints usage and exits 2 on anything else.
DaemonOptions parseDaemonArgs(int argc, char** argv, const char* ident);

// Loads the config; on ConfigError writes the message to stderr and syslog
// and exits 1. Then initialises logging (syslog, or stderr with -f).
Config startDaemon(const DaemonOptions& options, const char* ident);

// gethostname(), "localhost" if that fails.
std::string localHostname();

// Without -f, detaches from the terminal; call it once the sockets are bound
// so that start-up errors still reach the terminal.
void detachUnlessForeground(const DaemonOptions& options);

}  // namespace mailgate

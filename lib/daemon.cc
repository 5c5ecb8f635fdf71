// daemon.cc — shared start-up of the daemons: command line, config loading
// with fatal one-line errors, logging set-up and detaching.
#include "mailgate/daemon.h"

#include <cstdio>
#include <cstdlib>
#include <getopt.h>
#include <syslog.h>
#include <unistd.h>

#include "mailgate/log.h"

namespace mailgate {

DaemonOptions parseDaemonArgs(int argc, char** argv, const char* ident) {
  DaemonOptions o;
  int c;
  while ((c = getopt(argc, argv, "c:fv")) != -1) {
    switch (c) {
      case 'c': o.config_path = optarg; break;
      case 'f': o.foreground = true; break;
      case 'v': o.verbose = true; break;
      default:
        fprintf(stderr, "usage: %s [-c config_file] [-f] [-v]\n", ident);
        exit(2);
    }
  }
  if (optind != argc) {
    fprintf(stderr, "usage: %s [-c config_file] [-f] [-v]\n", ident);
    exit(2);
  }
  return o;
}

Config startDaemon(const DaemonOptions& options, const char* ident) {
  Config config;
  try {
    config = loadConfig(options.config_path);
  } catch (const ConfigError& e) {
    fprintf(stderr, "%s: fatal: %s\n", ident, e.what());
    openlog(ident, LOG_PID, LOG_MAIL);
    syslog(LOG_ERR, "fatal: %s", e.what());
    closelog();
    exit(1);
  }
  logInit(ident, options.foreground, options.verbose);
  return config;
}

void detachUnlessForeground(const DaemonOptions& options) {
  if (!options.foreground && daemon(0, 0) != 0) {
    MG_LOG_ERR("fatal: cannot detach: %m");
    exit(1);
  }
}

std::string localHostname() {
  char buf[256] = "localhost";
  gethostname(buf, sizeof buf - 1);
  return buf;
}

}  // namespace mailgate

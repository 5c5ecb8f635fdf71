// daemon.cc — shared start-up of the daemons: command line, config loading
// with fatal one-line errors, logging set-up and detaching.
#include "mailgate/daemon.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <getopt.h>
#include <sys/stat.h>
#include <syslog.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "mailgate/log.h"
#include "mailgate/redis.h"

namespace mailgate {
namespace {

std::string g_pid_file;

[[noreturn]] void usage(const char* ident) {
  fprintf(stderr, "usage: %s [-c config_file] [-f | -n] [-p pid_file] [-v]\n", ident);
  exit(2);
}

}  // namespace

DaemonOptions parseDaemonArgs(int argc, char** argv, const char* ident) {
  DaemonOptions o;
  int c;
  while ((c = getopt(argc, argv, "c:fnp:v")) != -1) {
    switch (c) {
      case 'c': o.config_path = optarg; break;
      case 'f': o.foreground = true; break;
      case 'n': o.no_detach = true; break;
      case 'p': o.pid_file = optarg; break;
      case 'v': o.verbose = true; break;
      default: usage(ident);
    }
  }
  if (optind != argc) usage(ident);
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

void detachUnlessForeground(const DaemonOptions& options, const char* ident) {
  bool detach = !options.foreground && !options.no_detach;
  if (detach && daemon(0, 0) != 0) {
    MG_LOG_ERR("fatal: cannot detach: %m");
    exit(1);
  }
  std::string pid_file = options.pid_file;
  if (pid_file.empty() && detach) {
    mkdir("/run/mailgate", 0755);
    pid_file = std::string("/run/mailgate/") + ident + ".pid";
  }
  if (pid_file.empty()) return;
  std::ofstream out(pid_file, std::ios::trunc);
  out << getpid() << "\n";
  if (!out) {
    MG_LOG_WARN("cannot write pid file %s", pid_file.c_str());
    return;
  }
  g_pid_file = pid_file;
}

void removePidFile() {
  if (!g_pid_file.empty()) unlink(g_pid_file.c_str());
}

void notifyReady(const std::string& status) { sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str()); }
void notifyReloading() { sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration"); }
void notifyStopping() { sd_notify(0, "STOPPING=1\nSTATUS=stopping"); }

void probeRedis(const Config& config) {
  RedisConn probe(RedisSettings::fromConfig(config));
  if (auto pong = probe.command({"PING"}); !pong) {
    MG_LOG_WARN("redis %s: %s (on_redis_failure applies until it is back)", config.redis_server.toString().c_str(),
                pong.error().message.c_str());
  }
}

std::string localHostname() {
  char buf[256] = "localhost";
  gethostname(buf, sizeof buf - 1);
  return buf;
}

}  // namespace mailgate

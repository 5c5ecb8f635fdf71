// daemon.cc — shared start-up of the daemons: command line, config loading
// with fatal one-line errors, logging set-up, detaching, switching user, and
// the exit status.
#include "mailgate/daemon.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <syslog.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "mailgate/listen.h"
#include "mailgate/log.h"
#include "mailgate/redis.h"

namespace mailgate {
namespace {

constexpr const char* kPidDir = "/run/mailgate/";
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

namespace {

// The default pid directory stays root's (0755): a daemon that switched to
// `user` must not be able to plant a link where root writes at the next start.
bool makeRootPidDir() {
  if (mkdir(kPidDir, 0755) != 0 && errno != EEXIST) return false;
  UniqueFd dir(open(kPidDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  struct stat st;
  if (dir.get() < 0 || fstat(dir.get(), &st) != 0) return false;
  if (geteuid() == 0 && (st.st_uid != 0 || st.st_gid != 0 || (st.st_mode & 07777) != 0755)) {
    // Handed to the user by an earlier version: take it back.
    if (fchown(dir.get(), 0, 0) != 0 || fchmod(dir.get(), 0755) != 0) return false;
  }
  return true;
}

// Writes the pid to a new file beside pid_file (O_EXCL: never an existing
// file or link) and renames it over pid_file, so a symlink planted at
// pid_file is replaced, not followed.
bool writePidFile(const std::string& pid_file) {
  std::string tmp = pid_file + ".new." + std::to_string(getpid());
  unlink(tmp.c_str());  // left by a crashed start with the same pid
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (fd.get() < 0) return false;
  std::string text = std::to_string(getpid()) + "\n";
  bool ok = fchmod(fd.get(), 0644) == 0 && write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size());
  fd.reset();
  if (ok && rename(tmp.c_str(), pid_file.c_str()) == 0) return true;
  unlink(tmp.c_str());
  return false;
}

}  // namespace

void detachUnlessForeground(const DaemonOptions& options, const char* ident) {
  bool detach = !options.foreground && !options.no_detach;
  if (detach && daemon(0, 0) != 0) {
    MG_LOG_ERR("fatal: cannot detach: %m");
    exit(1);
  }
  std::string pid_file = options.pid_file;
  if (pid_file.empty() && detach) {
    if (!makeRootPidDir()) MG_LOG_WARN("cannot prepare %s: %m", kPidDir);
    pid_file = std::string(kPidDir) + ident + ".pid";
  }
  if (pid_file.empty()) return;
  if (!writePidFile(pid_file)) {
    MG_LOG_WARN("cannot write pid file %s: %m", pid_file.c_str());
    return;
  }
  g_pid_file = pid_file;
}

void removePidFile() {
  // After the switch to `user` the pid file's directory is usually root's:
  // the file then stays (stale; the next start replaces it).
  if (!g_pid_file.empty() && unlink(g_pid_file.c_str()) != 0 && errno != ENOENT) {
    MG_LOG_DEBUG("cannot remove pid file %s: %m", g_pid_file.c_str());
  }
}

rlim_t raiseOpenFilesLimit(rlim_t want) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur >= want || limit.rlim_cur == RLIM_INFINITY) return limit.rlim_cur;
  rlimit raised{std::min(want, limit.rlim_max), limit.rlim_max};
  return setrlimit(RLIMIT_NOFILE, &raised) == 0 ? raised.rlim_cur : limit.rlim_cur;
}

void dropPrivileges(const Config& config) {
  if (geteuid() != 0 || config.user == "root") return;
  const char* name = config.user.c_str();
  std::vector<char> buf(16384);
  struct passwd pw;
  struct passwd* found = nullptr;
  if (getpwnam_r(name, &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    MG_LOG_ERR("fatal: user \"%s\" does not exist: create it or set user = root in %s", name,
               config.path.c_str());
    exit(1);
  }
  if (pw.pw_uid == 0) return;
  if (initgroups(name, pw.pw_gid) != 0 || setgid(pw.pw_gid) != 0 || setuid(pw.pw_uid) != 0) {
    MG_LOG_ERR("fatal: cannot switch to user %s: %m", name);
    exit(1);
  }
  if (setuid(0) == 0 || seteuid(0) == 0 || getuid() != pw.pw_uid || geteuid() != pw.pw_uid ||
      getgid() != pw.pw_gid || getegid() != pw.pw_gid) {
    MG_LOG_ERR("fatal: still able to regain root after switching to user %s", name);
    exit(1);
  }
  MG_LOG_INFO("running as user %s (uid %u, gid %u)", name, static_cast<unsigned>(pw.pw_uid),
              static_cast<unsigned>(pw.pw_gid));
  if (access(config.path.c_str(), R_OK) != 0) {
    MG_LOG_WARN("user %s cannot read %s: %m; SIGHUP reloads will fail until it can (give the file to root and "
                "the user's group, mode 0640)", name, config.path.c_str());
  }
}

bool ServiceExit::serviceReturned(bool clean) {
  clean_ = clean;
  stopped_on_its_own_ = !stop_requested_.load();
  return stopped_on_its_own_;
}

void notifyReady(const std::string& status) { sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str()); }
void notifyReloading() { sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration"); }
void notifyStopping() { sd_notify(0, "STOPPING=1\nSTATUS=stopping"); }

void probeRedis(const Config& config) {
  RedisConn probe(RedisSettings::fromConfig(config));
  if (auto pong = probe.command({"PING"}); !pong) {
    MG_LOG_WARN("redis %s: %s (on_redis_failure applies until it is back)", config.redisServerString().c_str(),
                pong.error().message.c_str());
  }
}

std::string localHostname() {
  char buf[256] = "localhost";
  gethostname(buf, sizeof buf - 1);
  return buf;
}

}  // namespace mailgate

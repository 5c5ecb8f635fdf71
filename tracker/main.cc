// main.cc — mailgate-tracker(8): follows the Postfix log (tracker_log) and
// records delivery results (recorder.h) in one thread, delivers webhooks
// (webhooks.h) in another, until SIGTERM or the end of standard input.
// SIGHUP reloads the configuration (webhook and retry settings). Started as
// root it runs as `user`, which must be able to read tracker_log (exit 1
// at start when it cannot).
#include <fcntl.h>
#include <pwd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <thread>

#include "log_follower.h"
#include "mailgate/daemon.h"
#include "mailgate/listen.h"
#include "mailgate/live_config.h"
#include "mailgate/log.h"
#include "mailgate/signals.h"
#include "recorder.h"
#include "webhooks.h"

using namespace mailgate;
using namespace mailgate::tracker;

namespace {

void sleepUnlessStopped(std::chrono::milliseconds d, const std::atomic<bool>& stop) {
  auto until = std::chrono::steady_clock::now() + d;
  while (!stop.load() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void followLog(const LiveConfig& live, const std::string& node, const std::atomic<bool>& stop) {
  const std::shared_ptr<const Config> initial = live.get();
  const Config& config = *initial;  // Redis address and log file: fixed until a restart
  RedisConn redis(RedisSettings::fromConfig(config));
  Recorder recorder(initial, redis, node);
  LogFollower follower(config.tracker_log);
  std::optional<LogPosition> saved;
  if (!follower.isStdin()) {
    for (bool warned = false; !stop.load(); sleepUnlessStopped(std::chrono::seconds(1), stop)) {
      auto p = recorder.loadPosition();
      if (p) {
        saved = *p;
        break;
      }
      if (!warned) MG_LOG_WARN("cannot read the saved log position: %s; retrying", p.error().message.c_str());
      warned = true;
    }
  }
  std::string note;
  if (!follower.start(saved, note)) MG_LOG_WARN("%s", note.c_str());
  else MG_LOG_INFO("%s", note.c_str());

  auto last_heartbeat = std::chrono::steady_clock::time_point{};
  while (!stop.load()) {
    std::vector<std::string> lines = follower.read(1000, std::chrono::milliseconds(500), stop);
    recorder.setConfig(live.get());
    if (auto now = std::chrono::steady_clock::now(); now - last_heartbeat >= std::chrono::seconds(5)) {
      if (recorder.heartbeat()) last_heartbeat = now;
    }
    if (!lines.empty()) {
      LogPosition position = follower.position();
      auto backoff = std::chrono::milliseconds(100);
      bool warned = false;
      while (true) {
        Status st = recorder.record(lines, follower.isStdin() ? nullptr : &position);
        if (st) break;
        if (!warned) MG_LOG_ERR("cannot record delivery results: %s; retrying", st.error().message.c_str());
        warned = true;
        if (stop.load()) return;  // not recorded, position not saved: read again at the next start
        sleepUnlessStopped(backoff, stop);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
      }
      if (warned) MG_LOG_INFO("recording delivery results again");
    }
    if (follower.finished()) {
      kill(getpid(), SIGTERM);
      return;
    }
  }
}

// A tracker_log that exists but that this user may not read would make it
// wait for ever: one fatal line with the fix instead (exit 1). A missing
// file is waited for (Postfix may not have logged yet).
void requireReadableLog(const Config& config) {
  if (config.tracker_log == "-") return;
  UniqueFd fd(open(config.tracker_log.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() >= 0 || errno != EACCES) return;
  const std::string why = std::strerror(errno);
  const struct passwd* pw = getpwuid(geteuid());
  std::string user = pw != nullptr ? pw->pw_name : std::to_string(geteuid());
  MG_LOG_ERR("fatal: user %s cannot read tracker_log %s: %s; add %s to group adm (usermod -aG adm %s) or set "
             "tracker_log to a file it can read",
             user.c_str(), config.tracker_log.c_str(), why.c_str(), user.c_str(), user.c_str());
  exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  blockDaemonSignals();
  DaemonOptions options = parseDaemonArgs(argc, argv, "mailgate-tracker");
  LiveConfig live(startDaemon(options, "mailgate-tracker"));
  const std::shared_ptr<const Config> initial = live.get();
  const Config& config = *initial;
  if (config.tracker_log == "-") options.no_detach = true;  // stdin is the log: stay attached
  detachUnlessForeground(options, "mailgate-tracker");
  dropPrivileges(config);  // before the threads: tracker_log is opened as `user`
  requireReadableLog(config);

  const std::string node = config.tracker_name.empty() ? localHostname() : config.tracker_name;
  std::atomic<bool> stop{false};
  std::thread webhooks([&] {
    WebhookDispatcher dispatcher(live, node);
    dispatcher.run(stop);
  });
  std::thread follower([&] { followLog(live, node, stop); });
  std::string status = "following " + (config.tracker_log == "-" ? std::string("standard input") : config.tracker_log) +
                       " as " + node;
  MG_LOG_INFO("%s", status.c_str());
  serveUntilStopped(live, status);
  stop = true;
  follower.join();
  webhooks.join();
  removePidFile();
  return 0;
}

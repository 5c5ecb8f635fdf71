// main.cc — mailgate-tracker(8): follows the Postfix log (tracker_log) and
// records delivery results (recorder.h) in one thread, delivers webhooks
// (webhooks.h) in another, until SIGTERM or the end of standard input.
#include <csignal>
#include <thread>

#include "log_follower.h"
#include "mailgate/daemon.h"
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

void followLog(const Config& config, const std::string& node, const std::atomic<bool>& stop) {
  RedisConn redis(RedisSettings::fromConfig(config));
  Recorder recorder(config, redis, node);
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

  while (!stop.load()) {
    std::vector<std::string> lines = follower.read(1000, std::chrono::milliseconds(500), stop);
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

}  // namespace

int main(int argc, char** argv) {
  DaemonOptions options = parseDaemonArgs(argc, argv, "mailgate-tracker");
  const Config config = startDaemon(options, "mailgate-tracker");
  if (config.tracker_log == "-") options.foreground = true;  // stdin is the log: stay attached
  detachUnlessForeground(options);
  blockDaemonSignals();

  const std::string node = config.tracker_name.empty() ? localHostname() : config.tracker_name;
  std::atomic<bool> stop{false};
  std::thread webhooks([&] {
    WebhookDispatcher dispatcher(config, node);
    dispatcher.run(stop);
  });
  std::thread follower([&] { followLog(config, node, stop); });
  MG_LOG_INFO("following %s as %s", config.tracker_log == "-" ? "standard input" : config.tracker_log.c_str(),
              node.c_str());
  while (true) {
    int sig = waitForSignal();
    if (sig == SIGHUP) {
      MG_LOG_INFO("SIGHUP: configuration reload is not supported yet; restart to apply changes");
      continue;
    }
    MG_LOG_INFO("signal %d: stopping", sig);
    break;
  }
  stop = true;
  follower.join();
  webhooks.join();
  return 0;
}

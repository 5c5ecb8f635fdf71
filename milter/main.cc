// main.cc — mailgate-milter(8): loads mailgate.conf, opens milter_listen,
// sets the socket's access for Postfix, switches to `user` and runs libmilter
// in a thread while the main thread alone takes the signals
// (libmilter_signals.cc): SIGHUP reloads the configuration (new connections
// use it), SIGTERM stops libmilter after the messages in hand. A libmilter
// that stops without being asked exits 1 (so systemd restarts it). The soft
// open-files limit is raised to the hard one: libmilter holds a descriptor
// (and a thread) per connection and gives up after 16 failed accepts in a row.
// The count of records lost in a Redis gap is written by a thread of its own
// when no message brings it along (unrecorded.h).
#include <libmilter/mfapi.h>

#include <condition_variable>
#include <csignal>
#include <mutex>
#include <stop_token>
#include <thread>

#include "callbacks.h"
#include "libmilter_signals.h"
#include "mailgate/daemon.h"
#include "mailgate/limits.h"
#include "mailgate/listen.h"
#include "mailgate/log.h"
#include "mailgate/signals.h"

using namespace mailgate;

namespace {

// Below this many descriptors a burst of Postfix connections can exhaust them.
constexpr rlim_t kWantedOpenFiles = 4096;

// The filesystem path of a unix:/local: milter spec, "" for inet.
std::string socketPath(const std::string& spec) {
  for (const char* prefix : {"unix:", "local:"}) {
    std::string p(prefix);
    if (spec.rfind(p, 0) == 0) return spec.substr(p.size());
  }
  return "";
}

// Writes the count of records lost in a Redis gap when no message brings it
// along: every 2 s while one is pending, and once more at exit.
void flushUnrecorded(std::stop_token stop, const Config& config, UnrecordedGap& gap, RedisPool& pool,
                     const std::string& host) {
  std::mutex m;
  std::condition_variable_any wake;
  std::unique_lock lock(m);
  // wait_for() returns the predicate's value, false, also when stopped: the loop tests the stop itself.
  while (!stop.stop_requested()) {
    wake.wait_for(lock, stop, std::chrono::seconds(2), [] { return false; });
    if (stop.stop_requested() || !gap.pending()) continue;
    if (auto lease = pool.acquire()) (void)writeWithUnrecorded(**lease, config, gap, {}, host);
  }
  RedisConn redis(RedisSettings::fromConfig(config));
  if (Status st = writeWithUnrecorded(redis, config, gap, {}, host); !st) {
    if (auto lost = gap.take()) {
      MG_LOG_WARN("redis: %llu messages (%llu recipients) from %s to %s had no outcome record and cannot be "
                  "counted in unrecorded:%s either: %s", static_cast<unsigned long long>(lost->messages),
                  static_cast<unsigned long long>(lost->recipients), utcTimestamp(lost->since_ms).c_str(),
                  utcTimestamp(lost->until_ms).c_str(), utcDate(lost->since_ms).c_str(), st.error().message.c_str());
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  blockDaemonSignals();
  DaemonOptions options = parseDaemonArgs(argc, argv, "mailgate-milter");
  static LiveConfig live(startDaemon(options, "mailgate-milter"));
  if (!milter::libmilterSignalsParked()) {
    MG_LOG_ERR("fatal: sigwait() does not resolve to mailgate-milter's own; libmilter would stop on SIGHUP");
    return 1;
  }
  if (rlim_t soft = raiseOpenFilesLimit(RLIM_INFINITY); soft < kWantedOpenFiles) {
    MG_LOG_WARN("open files limited to %llu (RLIMIT_NOFILE): about that many milter connections at once; raise "
                "LimitNOFILE", static_cast<unsigned long long>(soft));
  }
  static milter::MilterContext context;
  context.live = &live;
  const std::shared_ptr<const Config> initial = live.get();
  const Config& config = *initial;  // socket, Redis address, pool size: fixed until a restart
  RedisPool pool(RedisSettings::fromConfig(config), config.redis_pool_size);
  context.redis = &pool;
  Store store(config);
  context.store = &store;
  DkimLibrary dkim(static_cast<uint64_t>(config.dkim_expire.count()));
  if (!dkim.ok()) {
    MG_LOG_ERR("fatal: cannot initialise DKIM signing: OpenSSL offers no SHA-256");
    return 1;
  }
  context.dkim = &dkim;
  DkimKeyCache dkim_keys(store.keys());
  context.dkim_keys = &dkim_keys;
  // Static like the context: libmilter's session threads may still count after main() returns.
  static UnrecordedGap unrecorded;
  context.unrecorded = &unrecorded;
  context.host = localHostname();
  milter::setMilterContext(&context);

  bool opened;
  {
    SocketCreationMode creation(config.socket_mode);  // libmilter binds its socket itself
    opened = smfi_setconn(const_cast<char*>(config.milter_listen.c_str())) != MI_FAILURE &&
             smfi_register(*milter::milterDescription()) != MI_FAILURE && smfi_opensocket(true) != MI_FAILURE;
  }
  if (!opened) {
    MG_LOG_ERR("fatal: cannot open milter socket %s", config.milter_listen.c_str());
    return 1;
  }
  if (std::string path = socketPath(config.milter_listen); !path.empty()) {
    if (Status s = setSocketAccess(path, config.socket_mode, config.socket_group); !s) {
      MG_LOG_ERR("fatal: milter_listen %s: %s", path.c_str(), s.error().message.c_str());
      return 1;
    }
  }
  detachUnlessForeground(options, "mailgate-milter");
  dropPrivileges(config);
  probeRedis(config);
  ServiceExit service_exit;
  std::thread milter_thread([&] {
    int rc = smfi_main();
    if (service_exit.serviceReturned(rc == MI_SUCCESS)) {
      MG_LOG_ERR("libmilter stopped without a stop request (smfi_main returned %d); exiting with status 1", rc);
      kill(getpid(), SIGTERM);  // wake the main thread
    }
  });
  std::jthread flusher([&](std::stop_token stop) { flushUnrecorded(stop, config, unrecorded, pool, context.host); });
  MG_LOG_INFO("listening on %s", config.milter_listen.c_str());
  serveUntilStopped(live, "listening on " + config.milter_listen,
                    [&](const Config& reloaded) { store.reconfigure(reloaded); });
  service_exit.requestStop();
  smfi_stop();
  milter_thread.join();
  flusher.request_stop();
  flusher.join();
  removePidFile();
  MG_LOG_INFO("stopped");
  return service_exit.status();
}

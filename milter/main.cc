// main.cc — mailgate-milter(8): loads mailgate.conf, opens milter_listen,
// sets the socket's access for Postfix and runs libmilter until SIGTERM.
#include <libmilter/mfapi.h>

#include "callbacks.h"
#include "mailgate/daemon.h"
#include "mailgate/listen.h"
#include "mailgate/log.h"

using namespace mailgate;

namespace {

// The filesystem path of a unix:/local: milter spec, "" for inet.
std::string socketPath(const std::string& spec) {
  for (const char* prefix : {"unix:", "local:"}) {
    std::string p(prefix);
    if (spec.rfind(p, 0) == 0) return spec.substr(p.size());
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  DaemonOptions options = parseDaemonArgs(argc, argv, "mailgate-milter");
  static milter::MilterContext context{startDaemon(options, "mailgate-milter")};
  const Config& config = context.config;
  RedisPool pool(RedisSettings::fromConfig(config), config.redis_pool_size);
  context.redis = &pool;
  Store store(config);
  context.store = &store;
  DkimLibrary dkim(static_cast<uint64_t>(config.dkim_expire.count()));
  if (!dkim.ok()) {
    MG_LOG_ERR("fatal: cannot initialise libopendkim");
    return 1;
  }
  context.dkim = &dkim;
  DkimKeyCache dkim_keys(store.keys());
  context.dkim_keys = &dkim_keys;
  milter::setMilterContext(&context);

  if (smfi_setconn(const_cast<char*>(config.milter_listen.c_str())) == MI_FAILURE ||
      smfi_register(*milter::milterDescription()) == MI_FAILURE || smfi_opensocket(true) == MI_FAILURE) {
    MG_LOG_ERR("fatal: cannot open milter socket %s", config.milter_listen.c_str());
    return 1;
  }
  if (std::string path = socketPath(config.milter_listen); !path.empty()) {
    if (Status s = setSocketAccess(path, config.socket_mode, config.socket_group); !s) {
      MG_LOG_ERR("fatal: milter_listen %s: %s", path.c_str(), s.error().message.c_str());
      return 1;
    }
  }
  detachUnlessForeground(options);
  MG_LOG_INFO("listening on %s", config.milter_listen.c_str());
  int rc = smfi_main();
  MG_LOG_INFO("stopped");
  return rc == MI_SUCCESS ? 0 : 1;
}

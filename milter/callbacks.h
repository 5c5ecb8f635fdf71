// callbacks.h — libmilter registration for mailgate-milter: the smfiDesc and
// the process-wide state (config, Redis pool) the callbacks use.
#pragma once

#include <libmilter/mfapi.h>

#include "mailgate/config.h"
#include "mailgate/dkim_signer.h"
#include "mailgate/live_config.h"
#include "mailgate/redis.h"
#include "mailgate/store.h"
#include "mailgate/unrecorded.h"

namespace mailgate::milter {

struct MilterContext {
  LiveConfig* live = nullptr;  // each connection takes a snapshot
  RedisPool* redis = nullptr;
  Store* store = nullptr;
  DkimLibrary* dkim = nullptr;
  DkimKeyCache* dkim_keys = nullptr;
  UnrecordedGap* unrecorded = nullptr;  // records lost while Redis was away
  std::string host;                     // for unrecorded:<day>'s last_host
};

// Sets the state every callback reads; call once before smfi_main().
void setMilterContext(MilterContext* context);

smfiDesc* milterDescription();

}  // namespace mailgate::milter

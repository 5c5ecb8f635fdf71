// soft_bounce.h — persistent soft bounces become suppressions: which
// deferrals and expiries count (pure), and the command the tracker adds to
// its MULTI/EXEC that counts a recipient's distinct messages per kind within
// soft_bounce_window and, at soft_bounce_limit, suppresses it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "mailgate/config.h"
#include "mailgate/events.h"
#include "mailgate/redis.h"

namespace mailgate {

// The reason (bounced:info) and event text of a soft-bounce suppression.
constexpr const char* kSoftBounceReason = "soft-bounce-limit";

// What a deferral with `dsn` counts under: its class and subject, "4.1"
// (addressing: 4.1.x) or "4.2" (mailbox: 4.2.x); "" when it does not count.
// Receivers vary the detail digit for the same state of one mailbox (4.2.0,
// 4.2.2), so it is not part of the kind. Deferrals that say nothing about
// the recipient's own mailbox never count: 4.3 (the receiving system), 4.4
// (network, routing: one host down defers every recipient of its domains),
// 4.5 (protocol), 4.6 (content), 4.7 (policy: greylisting, rate limits and
// reputation judge the sender) and 4.0 (unspecified).
std::string softBounceKind(std::string_view dsn);

// The kind of a recipient whose message expired in the queue.
constexpr const char* kExpiredKind = "expired";

// One soft bounce of one recipient of one message.
struct SoftBounce {
  std::string address;  // the submitted recipient's lookup key, as suppressed
  std::string kind;     // softBounceKind() or kExpiredKind
  // The `suppressed` event written when this soft bounce reaches the limit
  // (time, queue id, account, message fields, recipient, code = the DSN,
  // text kSoftBounceReason).
  Event event;
};

// True when soft_bounce_limit and soft_bounce_window are both non-zero.
bool softBouncesSuppress(const Config& config);

// The EVAL (for inside MULTI) that, unless the address is in the global
// bounce set already: adds the message to softbounce:<address> (a sorted
// set of "<kind> <queueid>" scored by the last time, trimmed to the window,
// expiring a window after the last soft bounce), counts the members of its
// kind and, at soft_bounce_limit, deletes the set, adds the address to the
// global and the account's bounce sets with bounced:info reason
// kSoftBounceReason and appends the `suppressed` event. Its reply: the
// count (>= soft_bounce_limit: suppressed now; 0: suppressed before).
Command softBounceCommand(const Config& config, const SoftBounce& bounce);

// Forgets an address's soft bounces (a delivery to it, or its removal from
// the bounce lists).
Command softBounceResetCommand(const Config& config, std::string_view address);

}  // namespace mailgate

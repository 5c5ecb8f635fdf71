// libmilter_signals.h — mailgate-milter's replacement of sigwait(3), which
// parks libmilter's signal thread so that SIGHUP, SIGTERM and SIGINT reach
// only the main thread (the argument is in libmilter_signals.cc).
#pragma once

namespace mailgate::milter {

// True when libmilter's sigwait() call resolves to ours (checked at start).
bool libmilterSignalsParked();

}  // namespace mailgate::milter

// signals.h — daemons block SIGTERM/SIGINT/SIGHUP in every thread and wait
// for them in main() with waitForSignal(); SIGPIPE is ignored.
#pragma once

namespace mailgate {

// Call before starting any thread.
void blockDaemonSignals();

// Blocks until SIGTERM, SIGINT or SIGHUP arrives and returns its number.
int waitForSignal();

}  // namespace mailgate

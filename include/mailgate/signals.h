// signals.h — daemons block SIGTERM/SIGINT/SIGHUP in every thread and wait
// for them in main() with waitForSignal(); SIGPIPE is ignored.
#pragma once

namespace mailgate {

// Call first in main(), before any thread starts (threads inherit the mask)
// and before detaching: a signal sent during start-up then waits for the
// main loop instead of killing the daemon.
void blockDaemonSignals();

// Blocks until SIGTERM, SIGINT or SIGHUP arrives and returns its number.
int waitForSignal();

}  // namespace mailgate

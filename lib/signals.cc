// signals.cc — signal set-up shared by the daemons (see signals.h).
#include "mailgate/signals.h"

#include <csignal>

namespace mailgate {
namespace {

sigset_t daemonSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

void blockDaemonSignals() {
  signal(SIGPIPE, SIG_IGN);
  sigset_t set = daemonSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

// sigwaitinfo(), not sigwait(): mailgate-milter replaces sigwait() to park
// libmilter's signal thread (milter/libmilter_signals.cc).
int waitForSignal() {
  sigset_t set = daemonSignals();
  int sig;
  while ((sig = sigwaitinfo(&set, nullptr)) < 0) {
  }
  return sig;
}

}  // namespace mailgate

// libmilter_signals.cc — keeps libmilter's own signal thread away from
// SIGHUP, SIGTERM and SIGINT, so that only our main thread takes them (a
// reload can never stop the milter). Why a sigwait(3) of our own is the one
// construction that guarantees it:
//
// smfi_main() starts a thread (libmilter signal.c, mi_signal_thread) that
// calls sigwait() on {SIGHUP, SIGTERM, SIGINT}, a set built inside libmilter,
// and stops the milter on any of them (smfi_main then returns 0). On Linux a
// process-directed signal waits in the process's shared queue, and every
// thread in sigwait() for it may dequeue it: a thread in sigtimedwait has its
// waited set temporarily unblocked, so complete_signal() may pick and wake it
// (the main thread is only preferred while it is not blocking the signal and
// has nothing else pending), and a thread woken for any signal dequeues the
// lowest pending one in its set first, SIGHUP (1). No mask, handler or timing
// in our threads can therefore keep a SIGHUP that arrives while the main
// thread is busy (reloading, starting) from reaching libmilter's thread.
//
// So the thread must not wait for those signals at all. This definition of
// sigwait() is the one libmilter's call binds to: the executable comes first
// in the dynamic linker's lookup scope, and main() refuses to start when that
// is not so (libmilterSignalsParked()). It waits for the requested set minus
// our three signals: libmilter's thread, the only caller of sigwait() here
// (our main thread uses sigwaitinfo(), lib/signals.cc), then waits for
// nothing, and with the three signals blocked in every thread the main
// thread's sigwaitinfo() is the only place they can be taken — a SIGHUP that
// arrives during a reload stays pending until the next wait and reloads then.
#include <dlfcn.h>

#include <cerrno>
#include <csignal>
#include <initializer_list>

#include "libmilter_signals.h"

extern "C" int sigwait(const sigset_t* set, int* sig) {
  sigset_t rest = *set;
  for (int s : {SIGHUP, SIGTERM, SIGINT}) sigdelset(&rest, s);
  int got;
  while ((got = sigwaitinfo(&rest, nullptr)) < 0) {
    if (errno != EINTR) return errno;
  }
  *sig = got;
  return 0;
}

namespace mailgate::milter {

bool libmilterSignalsParked() { return dlsym(RTLD_DEFAULT, "sigwait") == reinterpret_cast<void*>(&sigwait); }

}  // namespace mailgate::milter

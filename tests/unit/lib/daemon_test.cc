// daemon_test.cc — the exit status of a daemon whose service loop runs in a
// thread (mailgate-milter's libmilter): 0 only for a clean stop we asked for.
#include "mailgate/daemon.h"

#include <gtest/gtest.h>

using namespace mailgate;

TEST(ServiceExit, RequestedCleanStopExitsZero) {
  ServiceExit exit;
  exit.requestStop();
  EXPECT_FALSE(exit.serviceReturned(true));
  EXPECT_EQ(exit.status(), 0);
}

TEST(ServiceExit, StopWithoutRequestExitsOneAndWakesTheMainThread) {
  ServiceExit exit;
  EXPECT_TRUE(exit.serviceReturned(true));  // e.g. smfi_main() returned 0 on its own
  exit.requestStop();                        // the main thread then stops as for SIGTERM
  EXPECT_EQ(exit.status(), 1);
}

TEST(ServiceExit, FailedStopExitsOne) {
  ServiceExit exit;
  exit.requestStop();
  EXPECT_FALSE(exit.serviceReturned(false));
  EXPECT_EQ(exit.status(), 1);
}

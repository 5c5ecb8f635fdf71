// unrecorded_test.cc — the count of records lost in a Redis gap: opened and
// closed once, handed back when its write fails, and its commands.
#include "mailgate/unrecorded.h"

#include <gtest/gtest.h>

#include <thread>

namespace mailgate {
namespace {

TEST(UnrecordedGapTest, OpensOnceAndClosesWhenTheCountIsWritten) {
  UnrecordedGap gap;
  EXPECT_FALSE(gap.take());
  EXPECT_TRUE(gap.add(2, 1000));
  EXPECT_FALSE(gap.add(1, 2000));
  EXPECT_FALSE(gap.add(3, 3000));
  auto taken = gap.take();
  ASSERT_TRUE(taken);
  EXPECT_EQ(taken->messages, 3u);
  EXPECT_EQ(taken->recipients, 6u);
  EXPECT_EQ(taken->since_ms, 1000);
  EXPECT_EQ(taken->until_ms, 3000);
  EXPECT_FALSE(gap.take());  // taken once, by one writer
  EXPECT_TRUE(gap.settled());
  EXPECT_FALSE(gap.settled());
  EXPECT_TRUE(gap.add(1, 5000));  // a new gap is logged again
}

TEST(UnrecordedGapTest, AFailedWriteHandsTheCountBack) {
  UnrecordedGap gap;
  gap.add(1, 1000);
  auto taken = gap.take();
  ASSERT_TRUE(taken);
  EXPECT_FALSE(gap.add(4, 2000));  // still the same gap: not logged again
  gap.restore(*taken);
  auto again = gap.take();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->messages, 2u);
  EXPECT_EQ(again->recipients, 5u);
  EXPECT_EQ(again->since_ms, 1000);
  EXPECT_EQ(again->until_ms, 2000);
}

// Writer A takes X, a loss Y, the flusher takes Y, A's write succeeds and closes the
// gap, the flusher's fails and hands Y back: Y's later write still logs the gap's end.
TEST(UnrecordedGapTest, ACountHandedBackAfterTheGapClosedReopensIt) {
  UnrecordedGap gap;
  gap.add(1, 1000);
  ASSERT_TRUE(gap.take());
  gap.add(1, 1500);
  auto y = gap.take();
  ASSERT_TRUE(y);
  EXPECT_TRUE(gap.settled());  // A
  gap.restore(*y);             // the flusher's write failed
  ASSERT_TRUE(gap.take());
  EXPECT_TRUE(gap.settled());
}

TEST(UnrecordedGapTest, LossDuringTheWriteKeepsTheGapOpen) {
  UnrecordedGap gap;
  gap.add(1, 1000);
  ASSERT_TRUE(gap.take());
  gap.add(1, 1500);  // lost while the first count was being written
  EXPECT_FALSE(gap.settled());
  auto rest = gap.take();
  ASSERT_TRUE(rest);
  EXPECT_EQ(rest->messages, 1u);
  EXPECT_TRUE(gap.settled());
}

TEST(UnrecordedGapTest, ThreadsCountEveryMessage) {
  UnrecordedGap gap;
  std::vector<std::thread> threads;
  uint64_t written = 0;
  std::mutex written_mutex;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) {
        gap.add(1, 1000 + i);
        if (i % 10 == t) {
          if (auto c = gap.take()) {
            std::lock_guard lock(written_mutex);
            written += c->messages;
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  if (auto c = gap.take()) written += c->messages;
  EXPECT_EQ(written, 4000u);
}

TEST(UnrecordedGapTest, CommandsCountUnderTheDayTheGapBegan) {
  Config config;
  config.redis_prefix = "mg:";
  UnrecordedCount count{3, 7, 1764806399000, 1764806401000};  // 2025-12-03 23:59:59 to 2025-12-04 00:00:01
  auto cmds = unrecordedCommands(config, count, "mx1");
  ASSERT_EQ(cmds.size(), 4u);
  EXPECT_EQ(cmds[0], (Command{"HINCRBY", "mg:unrecorded:2025-12-03", "messages", "3"}));
  EXPECT_EQ(cmds[1], (Command{"HINCRBY", "mg:unrecorded:2025-12-03", "recipients", "7"}));
  EXPECT_EQ(cmds[2], (Command{"HSET", "mg:unrecorded:2025-12-03", "last_since", "1764806399000", "last_until",
                              "1764806401000", "last_host", "mx1"}));
  EXPECT_EQ(cmds[3], (Command{"EXPIRE", "mg:unrecorded:2025-12-03", "34560000"}));
}

}  // namespace
}  // namespace mailgate

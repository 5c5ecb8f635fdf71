// log_follower_test.cc — following a log file on disk: complete lines only,
// resume at a saved position, rotation by rename (rest of the old file
// first), truncation, a rotated file found at start, overlong lines.
#include "log_follower.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <thread>

namespace mailgate::tracker {
namespace {

using std::chrono::milliseconds;

class LogFollowerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/mg-follow-XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/mail.log";
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  void append(const std::string& text, const std::string& path = "") {
    std::ofstream(path.empty() ? path_ : path, std::ios::app) << text;
  }
  std::vector<std::string> readAll(LogFollower& f, size_t max = 100, milliseconds wait = milliseconds(50)) {
    return f.read(max, wait, stop_);
  }
  // Reads until `n` lines came (or about 4 s passed), e.g. across a rotation.
  std::vector<std::string> collect(LogFollower& f, size_t n) {
    std::vector<std::string> got;
    for (int i = 0; i < 40 && got.size() < n; ++i) {
      for (auto& l : readAll(f, 100, milliseconds(100))) got.push_back(l);
    }
    return got;
  }
  std::string dir_, path_;
  std::atomic<bool> stop_{false};
};

TEST_F(LogFollowerTest, CompleteLinesOnlyAndPositions) {
  append("one\ntwo\nthr");
  LogFollower f(path_);
  std::string note;
  ASSERT_TRUE(f.start(std::nullopt, note)) << note;
  EXPECT_EQ(readAll(f), (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(f.position().offset, 8u);
  append("ee\n");
  EXPECT_EQ(readAll(f), (std::vector<std::string>{"three"}));
  EXPECT_EQ(f.position().offset, 14u);
  EXPECT_TRUE(readAll(f).empty());
}

TEST_F(LogFollowerTest, ResumesAtSavedPosition) {
  append("one\ntwo\n");
  LogPosition saved;
  {
    LogFollower f(path_);
    std::string note;
    ASSERT_TRUE(f.start(std::nullopt, note));
    ASSERT_EQ(readAll(f, 1).size(), 1u);
    saved = f.position();
  }
  append("three\n");
  LogFollower g(path_);
  std::string note;
  ASSERT_TRUE(g.start(saved, note));
  EXPECT_NE(note.find("resuming"), std::string::npos) << note;
  EXPECT_EQ(readAll(g), (std::vector<std::string>{"two", "three"}));
}

TEST_F(LogFollowerTest, RotationByRenameDrainsTheOldFileFirst) {
  append("a\n");
  LogFollower f(path_);
  std::string note;
  ASSERT_TRUE(f.start(std::nullopt, note));
  EXPECT_EQ(readAll(f), (std::vector<std::string>{"a"}));
  ASSERT_EQ(rename(path_.c_str(), (path_ + ".1").c_str()), 0);
  append("late write to the old file\n", path_ + ".1");
  append("new file\n");
  EXPECT_EQ(collect(f, 2), (std::vector<std::string>{"late write to the old file", "new file"}));
}

TEST_F(LogFollowerTest, RotatedWhileStoppedContinuesInTheRotatedFile) {
  append("a\nb\n");
  LogPosition saved;
  {
    LogFollower f(path_);
    std::string note;
    ASSERT_TRUE(f.start(std::nullopt, note));
    ASSERT_EQ(readAll(f, 1).size(), 1u);
    saved = f.position();
  }
  ASSERT_EQ(rename(path_.c_str(), (path_ + ".1").c_str()), 0);
  append("c\n");
  LogFollower g(path_);
  std::string note;
  ASSERT_TRUE(g.start(saved, note));
  EXPECT_NE(note.find(".1"), std::string::npos) << note;
  EXPECT_EQ(collect(g, 2), (std::vector<std::string>{"b", "c"}));
}

TEST_F(LogFollowerTest, TruncationStartsOver) {
  append("first line\nsecond line\n");
  LogFollower f(path_);
  std::string note;
  ASSERT_TRUE(f.start(std::nullopt, note));
  EXPECT_EQ(readAll(f).size(), 2u);
  ASSERT_EQ(truncate(path_.c_str(), 0), 0);
  append("x\n");
  std::vector<std::string> got;
  for (int i = 0; i < 10 && got.empty(); ++i) got = readAll(f);
  EXPECT_EQ(got, (std::vector<std::string>{"x"}));
}

TEST_F(LogFollowerTest, SavedPositionBeyondTheEndStartsOver) {
  append("a\n");
  struct stat st {};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  LogFollower f(path_);
  std::string note;
  ASSERT_TRUE(f.start(LogPosition{st.st_ino, 1000}, note));
  EXPECT_EQ(readAll(f), (std::vector<std::string>{"a"}));
}

TEST_F(LogFollowerTest, OverlongLineIsPassedInPiecesNotBuffered) {
  append(std::string(200 * 1024, 'x') + "\nshort\n");
  LogFollower f(path_);
  std::string note;
  ASSERT_TRUE(f.start(std::nullopt, note));
  std::vector<std::string> got;
  for (int i = 0; i < 10 && (got.empty() || got.back() != "short"); ++i) {
    for (auto& l : readAll(f)) got.push_back(l);
  }
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.back(), "short");
  for (const auto& l : got) EXPECT_LE(l.size(), 64u * 1024);
}

TEST_F(LogFollowerTest, MissingFileIsWaitedFor) {
  LogFollower f(path_);
  std::string note;
  EXPECT_FALSE(f.start(std::nullopt, note));
  EXPECT_NE(note.find("waiting"), std::string::npos) << note;
  EXPECT_TRUE(readAll(f).empty());
  append("appeared\n");
  EXPECT_EQ(readAll(f, 100, milliseconds(500)), (std::vector<std::string>{"appeared"}));
}

}  // namespace
}  // namespace mailgate::tracker

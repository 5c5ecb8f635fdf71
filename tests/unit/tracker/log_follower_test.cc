// log_follower_test.cc — following a log file on disk: complete lines only,
// resume at a saved position, rotation by rename (rest of the old file
// first), truncation, a rotated file found at start, overlong lines; and with
// counted lines (none lost, none read twice): an inode reused after two
// rotations, postfix-logrotate and dateext names, two rotations while stopped
// or before the follower looked, copytruncate while stopped and while running,
// reopening at the same offset after a read error.
#include "log_follower.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <thread>

namespace mailgate::tracker {
namespace {

using std::chrono::milliseconds;

// Log-like lines "<tag> <i>" for i in [from, to], each about 80 bytes, and their text.
std::vector<std::string> numbered(const std::string& tag, int from, int to) {
  std::vector<std::string> out;
  for (int i = from; i <= to; ++i) {
    out.push_back("Dec  2 18:30:00 mx postfix/smtp[4242]: 4Xk" + tag + ": to=<bob@example.net>, status=sent " + tag +
                  " " + std::to_string(i));
  }
  return out;
}
std::string text(const std::vector<std::string>& lines) {
  std::string t;
  for (const auto& l : lines) t += l + "\n";
  return t;
}
std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
// A file system's modification times are coarse: files written after this differ.
void tick() { std::this_thread::sleep_for(milliseconds(30)); }

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
  // Reads until `n` lines came (or about 10 s passed), e.g. across rotations,
  // then a little more: a line read twice would show.
  std::vector<std::string> collect(LogFollower& f, size_t n) {
    std::vector<std::string> got;
    for (int i = 0; i < 100 && got.size() < n; ++i) {
      for (auto& l : readAll(f, 100, milliseconds(100))) got.push_back(l);
    }
    for (auto& l : readAll(f, 100, milliseconds(300))) got.push_back(l);
    return got;
  }
  void mv(const std::string& from, const std::string& to) {
    ASSERT_EQ(rename((path_ + from).c_str(), (path_ + to).c_str()), 0) << from << " -> " << to;
  }
  // Reads the first `n` lines of a fresh follower and returns its position.
  LogPosition readSome(size_t n) {
    LogFollower f(path_);
    std::string note;
    EXPECT_TRUE(f.start(std::nullopt, note)) << note;
    EXPECT_EQ(readAll(f, n).size(), n);
    return f.position();
  }
  uint64_t inodeOf(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
    return st.st_ino;
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
  ASSERT_TRUE(f.start(LogPosition{st.st_ino, 1000, "", 0, 0}, note));
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

TEST_F(LogFollowerTest, InodeReusedAfterTwoRotationsIsANewFile) {
  append(text(numbered("x", 1, 60)));
  LogPosition saved = readSome(40);
  tick();
  mv("", ".1");  // rotation 1 (rotate 1)
  append(text(numbered("y", 1, 60)));
  tick();
  ASSERT_EQ(unlink((path_ + ".1").c_str()), 0);  // rotation 2: the saved file is deleted ...
  mv("", ".1");
  // ... and the new log takes its inode, as ext4 does at once: create files until one does.
  bool reused = false;
  for (int i = 0; i < 200 && !reused; ++i) {
    std::string tmp = dir_ + "/tmp" + std::to_string(i);
    std::ofstream(tmp).flush();
    if (inodeOf(tmp) == saved.inode) reused = rename(tmp.c_str(), path_.c_str()) == 0;
  }
  append(text(numbered("z", 1, 50)));
  if (!reused) saved.inode = inodeOf(path_);  // not reused here: as if it had been
  ASSERT_EQ(inodeOf(path_), saved.inode);
  LogFollower g(path_);
  std::string note;
  ASSERT_TRUE(g.start(saved, note));
  EXPECT_EQ(note.find("resuming"), std::string::npos) << note;
  // x41..60 went with the deleted file; everything after it is read once.
  EXPECT_EQ(collect(g, 110), numbered("y", 1, 60) + numbered("z", 1, 50));
}

TEST_F(LogFollowerTest, TwoRotationsWhileStopped) {
  append(text(numbered("x", 1, 60)));
  LogPosition saved = readSome(40);
  tick();
  mv("", ".1");
  append(text(numbered("y", 1, 60)));
  tick();
  mv(".1", ".2");
  mv("", ".1");
  append(text(numbered("z", 1, 30)));
  LogFollower g(path_);
  std::string note;
  ASSERT_TRUE(g.start(saved, note));
  EXPECT_NE(note.find("resuming " + path_ + ".2 at offset"), std::string::npos) << note;
  EXPECT_NE(note.find("1 newer rotated file"), std::string::npos) << note;
  EXPECT_EQ(collect(g, 110), numbered("x", 41, 60) + numbered("y", 1, 60) + numbered("z", 1, 30));
  LogPosition end = g.position();
  EXPECT_EQ(end.offset, text(numbered("z", 1, 30)).size());
  EXPECT_EQ(end.inode, inodeOf(path_));
}

TEST_F(LogFollowerTest, PostfixLogrotateNamesWhileStopped) {
  append(text(numbered("x", 1, 60)));
  LogPosition saved = readSome(40);
  append(text(numbered("x", 61, 70)));
  append("old and compressed\n", path_ + ".20261130-101500.gz");
  tick();
  mv("", ".20261202-101500");  // postfix logrotate: <log>.YYYYMMDD-HHMMSS
  append(text(numbered("y", 1, 60)));
  tick();
  mv("", ".20261202-101502");
  append(text(numbered("z", 1, 30)));
  LogFollower g(path_);
  std::string note;
  ASSERT_TRUE(g.start(saved, note));
  EXPECT_NE(note.find(".20261202-101500 at offset"), std::string::npos) << note;
  EXPECT_NE(note.find("1 compressed rotated file(s) not read"), std::string::npos) << note;
  EXPECT_EQ(collect(g, 120), numbered("x", 41, 70) + numbered("y", 1, 60) + numbered("z", 1, 30));
}

TEST_F(LogFollowerTest, DateextNamesWhileStopped) {
  append(text(numbered("x", 1, 60)));
  LogPosition saved = readSome(40);
  tick();
  mv("", "-20261201");  // logrotate dateext: <log>-YYYYMMDD
  append(text(numbered("y", 1, 60)));
  tick();
  mv("", "-20261202");
  append(text(numbered("z", 1, 30)));
  LogFollower g(path_);
  std::string note;
  ASSERT_TRUE(g.start(saved, note));
  EXPECT_NE(note.find("-20261201 at offset"), std::string::npos) << note;
  EXPECT_EQ(collect(g, 110), numbered("x", 41, 60) + numbered("y", 1, 60) + numbered("z", 1, 30));
}

TEST_F(LogFollowerTest, CopytruncateWhileStoppedReadsTheRestFromTheCopy) {
  append(text(numbered("x", 1, 60)));
  LogPosition saved = readSome(40);
  append(text(numbered("x", 61, 70)));
  {
    std::ifstream in(path_, std::ios::binary);
    std::ofstream(path_ + ".1", std::ios::binary) << in.rdbuf();
  }
  ASSERT_EQ(truncate(path_.c_str(), 0), 0);
  append(text(numbered("z", 1, 5)));  // shorter than the saved offset
  LogFollower g(path_);
  std::string note;
  ASSERT_TRUE(g.start(saved, note));
  EXPECT_NE(note.find(".1 at offset"), std::string::npos) << note;
  EXPECT_EQ(collect(g, 35), numbered("x", 41, 70) + numbered("z", 1, 5));
}

TEST_F(LogFollowerTest, CopytruncateWhileRunningReadsTheRestFromTheCopy) {
  append(text(numbered("x", 1, 50)));
  LogFollower f(path_);
  std::string note;
  ASSERT_TRUE(f.start(std::nullopt, note));
  EXPECT_EQ(collect(f, 50), numbered("x", 1, 50));
  append(text(numbered("x", 51, 60)));  // not read before the copy
  {
    std::ifstream in(path_, std::ios::binary);
    std::ofstream(path_ + ".1", std::ios::binary) << in.rdbuf();
  }
  ASSERT_EQ(truncate(path_.c_str(), 0), 0);
  append(text(numbered("z", 1, 80)));  // already longer than the old offset when the follower looks
  EXPECT_EQ(collect(f, 90), numbered("x", 51, 60) + numbered("z", 1, 80));
}

TEST_F(LogFollowerTest, TwoRotationsBeforeTheFollowerLookedAreReadInOrder) {
  append(text(numbered("x", 1, 20)));
  LogFollower f(path_);
  std::string note;
  ASSERT_TRUE(f.start(std::nullopt, note));
  EXPECT_EQ(collect(f, 20), numbered("x", 1, 20));
  append(text(numbered("x", 21, 30)));
  tick();
  mv("", ".1");
  append(text(numbered("y", 1, 20)));
  tick();
  mv(".1", ".2");
  mv("", ".1");
  append(text(numbered("z", 1, 10)));
  EXPECT_EQ(collect(f, 40), numbered("x", 21, 30) + numbered("y", 1, 20) + numbered("z", 1, 10));
}

TEST_F(LogFollowerTest, ReadErrorReopensTheSameFileAtTheSameOffset) {
  int mode = 0;  // 1: a short read ending mid-line, then 2: EIO twice, then 0: normal
  int failures = 0;
  LogFollower f(path_, [&](int fd, void* buf, size_t n) -> ssize_t {
    if (mode == 1) {
      mode = 2;
      return ::read(fd, buf, std::min<size_t>(n, 100));
    }
    if (mode == 2) {
      if (++failures == 2) mode = 0;
      errno = EIO;
      return -1;
    }
    return ::read(fd, buf, n);
  });
  append(text(numbered("a", 1, 5)));
  std::string note;
  ASSERT_TRUE(f.start(std::nullopt, note));
  EXPECT_EQ(collect(f, 5), numbered("a", 1, 5));
  append(text(numbered("a", 6, 10)));
  mode = 1;
  EXPECT_EQ(collect(f, 5), numbered("a", 6, 10));
  EXPECT_EQ(failures, 2);
  EXPECT_EQ(f.position().offset, text(numbered("a", 1, 10)).size());
}

TEST_F(LogFollowerTest, PositionWithoutFingerprintStillResumesByInode) {
  append(text(numbered("x", 1, 10)));
  LogPosition saved = readSome(4);
  saved.fingerprint.clear();  // as saved before fingerprints
  saved.fingerprint_length = 0;
  saved.mtime_ms = 0;
  append(text(numbered("x", 11, 12)));
  {
    LogFollower g(path_);
    std::string note;
    ASSERT_TRUE(g.start(saved, note));
    EXPECT_NE(note.find("resuming " + path_ + " at offset"), std::string::npos) << note;
    EXPECT_EQ(collect(g, 8), numbered("x", 5, 12));
  }
  tick();
  mv("", ".20261202-101500");
  append(text(numbered("z", 1, 3)));
  LogFollower g(path_);
  std::string note;
  ASSERT_TRUE(g.start(saved, note));
  EXPECT_EQ(collect(g, 11), numbered("x", 5, 12) + numbered("z", 1, 3));
}

TEST_F(LogFollowerTest, ShortFileFingerprintGrowsWithIt) {
  append("a\n");
  LogFollower f(path_);
  std::string note;
  ASSERT_TRUE(f.start(std::nullopt, note));
  EXPECT_EQ(readAll(f), (std::vector<std::string>{"a"}));
  EXPECT_EQ(f.position().fingerprint_length, 2u);
  append(text(numbered("x", 1, 100)));  // past the fingerprint's 4 KiB
  EXPECT_EQ(collect(f, 100).size(), 100u);
  LogPosition p = f.position();
  EXPECT_EQ(p.fingerprint_length, kFingerprintBytes);
  tick();
  mv("", ".1");
  append("new\n");
  LogFollower g(path_);
  ASSERT_TRUE(g.start(p, note));
  EXPECT_NE(note.find(".1 at offset"), std::string::npos) << note;
  EXPECT_EQ(collect(g, 1), (std::vector<std::string>{"new"}));
}

}  // namespace
}  // namespace mailgate::tracker

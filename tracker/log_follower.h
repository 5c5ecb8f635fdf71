// log_follower.h — reads the MTA log line by line: a file followed across
// rotation by rename (after a grace period for late writes to the old file)
// and by truncation, resumable at a saved (inode, offset); or stdin.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mailgate/listen.h"

namespace mailgate::tracker {

// Where the next unread line starts.
struct LogPosition {
  uint64_t inode = 0;
  uint64_t offset = 0;
};

class LogFollower {
 public:
  // `path` "-" reads stdin (no positions, no rotation).
  explicit LogFollower(std::string path);

  // Opens the log at `saved` when it still names the file (or the rotated
  // file "<path>.1", which is then read to its end first), else at the start.
  // Returns false (and a reason) when the file cannot be opened yet; read()
  // keeps trying.
  bool start(const std::optional<LogPosition>& saved, std::string& note);

  // Up to `max_lines` complete lines, waiting up to `wait` for the first one.
  std::vector<std::string> read(size_t max_lines, std::chrono::milliseconds wait, const std::atomic<bool>& stop);

  // Position after the last line read() returned.
  LogPosition position() const { return {inode_, offset_}; }
  bool isStdin() const { return path_ == "-"; }
  // Standard input reached its end (the tracker then exits).
  bool finished() const { return isStdin() && fd_.get() < 0; }

 private:
  bool openAt(const std::string& path, uint64_t offset);
  void takeLines(std::vector<std::string>& out, size_t max_lines);
  // At EOF: switches to a new file after rotation, rewinds after truncation.
  void checkRotation();

  std::string path_;
  UniqueFd fd_;
  uint64_t inode_ = 0;
  uint64_t offset_ = 0;  // of the first byte in buffer_
  std::string buffer_;   // read but not yet returned (an incomplete line)
  std::optional<std::chrono::steady_clock::time_point> rotated_since_;
};

}  // namespace mailgate::tracker

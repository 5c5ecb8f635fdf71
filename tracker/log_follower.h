// log_follower.h — reads the MTA log line by line: a file followed across
// rotation by rename and by copytruncate, resumable at a saved position that
// names its file by a fingerprint of its first bytes, so that the unread rest
// of a rotated file and every newer one are read first (log_rotation.h); or stdin.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "mailgate/listen.h"
#include "mailgate/log_rotation.h"

namespace mailgate::tracker {

using mailgate::LogPosition;

// read(2) by default; tests inject failures here.
using ReadFn = std::function<ssize_t(int fd, void* buf, size_t n)>;

class LogFollower {
 public:
  // `path` "-" reads stdin (no positions, no rotation).
  explicit LogFollower(std::string path, ReadFn read_fn = {});

  // Continues after `saved` (planResume(): the saved file's unread tail, the
  // newer rotated files, then the log), or reads the log from its start.
  // `note` says which. Returns false when the log cannot be opened yet;
  // read() keeps trying.
  bool start(const std::optional<LogPosition>& saved, std::string& note);

  // Up to `max_lines` complete lines, waiting up to `wait` for the first one.
  std::vector<std::string> read(size_t max_lines, std::chrono::milliseconds wait, const std::atomic<bool>& stop);

  // Position after the last line read() returned.
  LogPosition position() const { return {inode_, offset_, fingerprint_, fingerprint_length_, mtime_ms_}; }
  // The file being read (the log or a rotated copy).
  const std::string& currentFile() const { return current_; }
  bool isStdin() const { return path_ == "-"; }
  // Standard input reached its end (the tracker then exits).
  bool finished() const { return isStdin() && fd_.get() < 0; }

 private:
  // The log and its rotated copies, fingerprinted over their first `length` bytes.
  std::vector<LogCandidate> scan(uint64_t length) const;
  // Opens steps_.front() (dropping rotated files that cannot be opened).
  bool openNext();
  bool openAt(const ReadStep& step);
  void updateFingerprint();
  // The open file no longer starts with the bytes it started with (or is
  // shorter than what was read): it was truncated in place.
  bool truncatedInPlace();
  void takeLines(std::vector<std::string>& out, size_t max_lines);
  // At the end of the file: the next file after a rotated one; rotation by
  // rename or truncation of the log.
  void atEnd();
  // The log was renamed away (we read it to its end) or truncated: continue
  // with its copy or the newer files, then the new log.
  void continueAfterRotation();
  void continueAfterTruncation();
  // After a read error: the same file (found again by fingerprint) at the same offset.
  void reopen();

  std::string path_;
  ReadFn read_fn_;
  UniqueFd fd_;
  std::string current_;
  bool live_ = false;
  uint64_t inode_ = 0;
  uint64_t offset_ = 0;  // of the first byte in buffer_
  std::string fingerprint_;
  uint64_t fingerprint_length_ = 0;
  int64_t mtime_ms_ = 0;  // of the open file, at the last look
  std::string buffer_;  // read but not yet returned (an incomplete line)
  std::deque<ReadStep> steps_;  // what to read next; the last is the log itself
  bool lost_ = false;           // a read error closed the file: reopen()
  unsigned read_errors_ = 0;  // since the last successful read (logged once)
  std::optional<std::chrono::steady_clock::time_point> rotated_since_;
};

}  // namespace mailgate::tracker

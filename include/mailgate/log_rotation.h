// log_rotation.h — which files hold the MTA log across rotation: the rotated
// names of a log (<log>.N, <log>.YYYYMMDD-HHMMSS as `postfix logrotate` makes,
// <log>-YYYYMMDD as logrotate's dateext makes, each maybe compressed), their
// order, and which of them is the file of a saved position. Pure: the tracker
// lists and fingerprints the files (tracker/log_follower.cc).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailgate {

// A file is known by the SHA-256 of its first bytes (at most this many).
constexpr uint64_t kFingerprintBytes = 4096;

// Where the next unread line starts, and which file that is: `fingerprint`
// (hex SHA-256) covers the first `fingerprint_length` bytes; it is empty in a
// position saved before fingerprints (then the inode alone names the file).
// `mtime_ms`: the file's modification time when the position was taken (0:
// unknown); files rotated after it were modified at or after that time.
struct LogPosition {
  uint64_t inode = 0;
  uint64_t offset = 0;
  std::string fingerprint;
  uint64_t fingerprint_length = 0;
  int64_t mtime_ms = 0;
};

enum class RotationScheme { Numbered, Dated };

struct RotatedName {
  RotationScheme scheme = RotationScheme::Numbered;
  uint64_t number = 0;  // Numbered: 1 is the newest
  std::string stamp;    // Dated: digits and '-', in time order as text
  bool compressed = false;  // .gz .xz .bz2 .zst .lz4 .Z: recognized, not read
};

// `name` (a directory entry) as a rotated copy of the log called `base`:
// base.N, base.YYYYMMDD[-HHMMSS...] or base-YYYYMMDD[...], each maybe with a
// compression suffix; nullopt for anything else (base itself, base.lock ...).
std::optional<RotatedName> parseRotatedName(std::string_view base, std::string_view name);

// One file that may hold log lines: the log itself (`rotated` empty) or a
// rotated copy. `prefix_fingerprint`: SHA-256 of its first
// saved.fingerprint_length bytes, nullopt when the file is shorter.
struct LogCandidate {
  std::string path;
  std::optional<RotatedName> rotated;
  uint64_t inode = 0;
  uint64_t size = 0;
  int64_t mtime_ms = 0;
  std::optional<std::string> prefix_fingerprint;
};

// Rotated copies oldest first, then the log itself. One naming scheme is
// ordered by name (.N by decreasing N, dates as text); several schemes mixed
// are ordered by modification time. Compressed copies are dropped (they are
// not read).
std::vector<LogCandidate> orderCandidates(std::vector<LogCandidate> candidates);

// Is `c` the file `saved` was taken in? By fingerprint, or by inode for a
// position without one; a file shorter than the saved offset is not.
bool isSavedFile(const LogPosition& saved, const LogCandidate& c);

struct ReadStep {
  std::string path;
  uint64_t offset = 0;
  bool live = false;  // the log itself: followed, never left at its end
};

enum class ResumeFrom {
  Start,        // no saved position: the log from its beginning
  SavedFile,    // the saved file's unread tail, then the newer files
  NewerFiles,   // saved file gone: every file changed since the save, from 0
};

struct ResumePlan {
  ResumeFrom from = ResumeFrom::Start;
  std::vector<ReadStep> steps;  // in reading order; the last one is the live log
  size_t skipped_compressed = 0;  // compressed copies that were not looked at
};

// What to read, in order, to continue after `saved` given the files there now
// (any order; `live_path` is the log itself, which need not exist yet). The
// newest file that isSavedFile() is read from the saved offset, the newer
// ones from 0; when none is, those modified at or after the saved time.
ResumePlan planResume(const std::optional<LogPosition>& saved, const std::string& live_path,
                      const std::vector<LogCandidate>& candidates);

}  // namespace mailgate

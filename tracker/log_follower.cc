// log_follower.cc — tail -F for the MTA log: chunked reads, complete lines
// only, rotation by rename (old file drained for a grace second first),
// truncation, and a bounded buffer for absurdly long lines.
#include "log_follower.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "mailgate/log.h"

namespace mailgate::tracker {
namespace {

constexpr size_t kChunk = 64 * 1024;
constexpr size_t kMaxLine = 64 * 1024;
constexpr auto kRotationGrace = std::chrono::seconds(1);
constexpr auto kPollInterval = std::chrono::milliseconds(200);

std::optional<struct stat> statPath(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return st;
}

}  // namespace

LogFollower::LogFollower(std::string path) : path_(std::move(path)) {}

bool LogFollower::openAt(const std::string& path, uint64_t offset) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st {};
  if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0) return false;
  if (offset > static_cast<uint64_t>(st.st_size)) offset = 0;  // truncated while we were away
  if (::lseek(fd.get(), static_cast<off_t>(offset), SEEK_SET) < 0) return false;
  fd_ = std::move(fd);
  inode_ = st.st_ino;
  offset_ = offset;
  buffer_.clear();
  rotated_since_.reset();
  return true;
}

bool LogFollower::start(const std::optional<LogPosition>& saved, std::string& note) {
  if (isStdin()) {
    fd_ = UniqueFd(::dup(STDIN_FILENO));
    note = "reading standard input";
    return fd_.get() >= 0;
  }
  if (saved) {
    auto st = statPath(path_);
    if (st && st->st_ino == saved->inode && openAt(path_, saved->offset)) {
      note = "resuming " + path_ + " at offset " + std::to_string(offset_);
      return true;
    }
    std::string rotated = path_ + ".1";
    auto old = statPath(rotated);
    if (old && old->st_ino == saved->inode && openAt(rotated, saved->offset)) {
      note = "resuming rotated " + rotated + " at offset " + std::to_string(offset_);
      return true;
    }
  }
  if (!openAt(path_, 0)) {
    note = "cannot open " + path_ + ": " + std::strerror(errno) + " (waiting for it)";
    return false;
  }
  note = "reading " + path_ + " from the start";
  return true;
}

void LogFollower::takeLines(std::vector<std::string>& out, size_t max_lines) {
  size_t start = 0;
  while (out.size() < max_lines) {
    size_t nl = buffer_.find('\n', start);
    if (nl == std::string::npos) {
      if (buffer_.size() - start < kMaxLine) break;
      nl = start + kMaxLine - 1;  // no newline in 64 KiB: not a log line; pass it on in pieces
      out.push_back(buffer_.substr(start, kMaxLine));
      start = nl + 1;
      continue;
    }
    out.push_back(buffer_.substr(start, nl - start));
    start = nl + 1;
  }
  buffer_.erase(0, start);
  offset_ += start;
}

void LogFollower::checkRotation() {
  struct stat open_st {};
  if (::fstat(fd_.get(), &open_st) == 0 && static_cast<uint64_t>(open_st.st_size) < offset_ + buffer_.size()) {
    MG_LOG_WARN("%s was truncated; reading it from the start", path_.c_str());
    openAt(path_, 0);
    return;
  }
  auto st = statPath(path_);
  if (!st || st->st_ino == inode_) {
    rotated_since_.reset();
    return;
  }
  auto now = std::chrono::steady_clock::now();
  if (!rotated_since_) {
    rotated_since_ = now;
    return;
  }
  if (now - *rotated_since_ < kRotationGrace) return;
  if (!buffer_.empty()) MG_LOG_WARN("rotated log ended in an incomplete line; %zu bytes skipped", buffer_.size());
  if (openAt(path_, 0)) MG_LOG_INFO("log rotated: following the new %s", path_.c_str());
}

std::vector<std::string> LogFollower::read(size_t max_lines, std::chrono::milliseconds wait,
                                           const std::atomic<bool>& stop) {
  std::vector<std::string> out;
  auto deadline = std::chrono::steady_clock::now() + wait;
  char chunk[kChunk];
  while (true) {
    takeLines(out, max_lines);
    if (out.size() >= max_lines) return out;
    bool got = false;
    if (fd_.get() < 0) {
      if (!isStdin() && openAt(path_, 0)) MG_LOG_INFO("%s appeared; reading it", path_.c_str());
    } else {
      bool readable = true;
      if (isStdin()) {
        pollfd p{fd_.get(), POLLIN, 0};
        readable = ::poll(&p, 1, static_cast<int>(kPollInterval.count())) > 0;
      }
      ssize_t n = readable ? ::read(fd_.get(), chunk, sizeof chunk) : -1;
      if (n > 0) {
        buffer_.append(chunk, static_cast<size_t>(n));
        got = true;
      } else if (n == 0 && isStdin()) {
        MG_LOG_INFO("standard input closed");
        fd_.reset();
      } else if (n == 0 || !readable) {
        if (!isStdin()) checkRotation();
      } else if (errno != EINTR && errno != EAGAIN) {
        MG_LOG_ERR("reading %s: %s", path_.c_str(), std::strerror(errno));
        fd_.reset();
      }
    }
    if (got) continue;
    if (!out.empty() || stop.load() || std::chrono::steady_clock::now() >= deadline) return out;
    if (isStdin() && fd_.get() < 0) return out;
    if (!isStdin()) std::this_thread::sleep_for(kPollInterval);
  }
}

}  // namespace mailgate::tracker

// log_follower.cc — tail -F for the MTA log: chunked reads, complete lines
// only, files named by a fingerprint of their first bytes; rotation by rename
// (old file drained for a grace second, then the newer rotated files, then the
// new log), copytruncate (rest read from the copy), reopening at the same
// offset after a read error, and a bounded buffer for absurdly long lines.
#include "log_follower.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>

#include "mailgate/crypto.h"
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

int64_t mtimeMs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
}

int64_t wallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The first `length` bytes of `fd` (fewer when it is shorter).
std::string readPrefix(int fd, uint64_t length) {
  std::string out(length, '\0');
  size_t got = 0;
  while (got < length) {
    ssize_t n = ::pread(fd, out.data() + got, length - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

unsigned long long ull(uint64_t v) { return static_cast<unsigned long long>(v); }

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};

}  // namespace

LogFollower::LogFollower(std::string path, ReadFn read_fn)
    : path_(std::move(path)),
      read_fn_(read_fn ? std::move(read_fn) : ReadFn([](int fd, void* buf, size_t n) { return ::read(fd, buf, n); })) {}

std::vector<LogCandidate> LogFollower::scan(uint64_t length) const {
  size_t slash = path_.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path_.substr(0, slash == 0 ? 1 : slash);
  std::string base = slash == std::string::npos ? path_ : path_.substr(slash + 1);
  std::vector<LogCandidate> out;
  std::unique_ptr<DIR, DirCloser> d(::opendir(dir.c_str()));
  if (!d) return out;
  while (const struct dirent* e = ::readdir(d.get())) {
    std::string name = e->d_name;
    std::optional<RotatedName> rotated;
    if (name != base && !(rotated = parseRotatedName(base, name))) continue;
    std::string full = name == base ? path_ : (dir == "/" ? "" : dir) + "/" + name;
    auto st = statPath(full);
    if (!st || !S_ISREG(st->st_mode)) continue;
    LogCandidate c{full, rotated, static_cast<uint64_t>(st->st_ino), static_cast<uint64_t>(st->st_size),
                   mtimeMs(*st), std::nullopt};
    if (length > 0 && !(rotated && rotated->compressed) && c.size >= length) {
      UniqueFd fd(::open(full.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
      std::string head = fd.get() >= 0 ? readPrefix(fd.get(), length) : std::string();
      if (head.size() == length) c.prefix_fingerprint = sha256Hex(head);
    }
    out.push_back(std::move(c));
  }
  return out;
}

bool LogFollower::openAt(const ReadStep& step) {
  UniqueFd fd(::open(step.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  struct stat st {};
  if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0) return false;
  uint64_t offset = step.offset;
  if (offset > static_cast<uint64_t>(st.st_size)) {
    MG_LOG_WARN("%s is shorter than offset %llu; reading it from the start", step.path.c_str(), ull(offset));
    offset = 0;
  }
  if (::lseek(fd.get(), static_cast<off_t>(offset), SEEK_SET) < 0) return false;
  fd_ = std::move(fd);
  current_ = step.path;
  live_ = step.live;
  inode_ = st.st_ino;
  offset_ = offset;
  mtime_ms_ = mtimeMs(st);
  buffer_.clear();
  rotated_since_.reset();
  updateFingerprint();
  return true;
}

void LogFollower::updateFingerprint() {
  std::string head = readPrefix(fd_.get(), kFingerprintBytes);
  fingerprint_ = sha256Hex(head);
  fingerprint_length_ = head.size();
}

bool LogFollower::openNext() {
  while (!steps_.empty()) {
    ReadStep step = steps_.front();
    if (openAt(step)) {
      steps_.pop_front();
      return true;
    }
    if (step.live) return false;  // waited for: read() tries again
    MG_LOG_WARN("cannot open rotated log %s: %s; skipping it", step.path.c_str(), std::strerror(errno));
    steps_.pop_front();
  }
  steps_.push_back({path_, 0, true});
  return openNext();
}

bool LogFollower::start(const std::optional<LogPosition>& saved, std::string& note) {
  if (isStdin()) {
    fd_ = UniqueFd(::dup(STDIN_FILENO));
    note = "reading standard input";
    return fd_.get() >= 0;
  }
  ResumePlan plan = planResume(saved, path_, scan(saved ? saved->fingerprint_length : 0));
  steps_.assign(plan.steps.begin(), plan.steps.end());
  size_t rotated = steps_.size() - 1;
  switch (plan.from) {
    case ResumeFrom::Start:
      note = "reading " + path_ + " from the start";
      break;
    case ResumeFrom::SavedFile:
      note = "resuming " + steps_.front().path + " at offset " + std::to_string(steps_.front().offset);
      if (rotated > 0) note += ", then " + std::to_string(rotated - 1) + " newer rotated file(s) and " + path_;
      break;
    case ResumeFrom::NewerFiles:
      MG_LOG_WARN("the file of the saved position (offset %llu) is neither %s nor one of its rotated copies; its "
                  "unread lines are lost",
                  ull(saved->offset), path_.c_str());
      note = "reading " + std::to_string(rotated) + " rotated file(s) changed since the saved position, then " +
             path_ + " from the start";
      break;
  }
  if (plan.skipped_compressed > 0) {
    note += " (" + std::to_string(plan.skipped_compressed) + " compressed rotated file(s) not read)";
  }
  if (!openNext()) {
    note += "; cannot open " + path_ + ": " + std::strerror(errno) + " (waiting for it)";
    return false;
  }
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
  // While the file is short the fingerprint grows with it: it always covers what was read.
  if (!isStdin() && fingerprint_length_ < kFingerprintBytes && offset_ > fingerprint_length_) updateFingerprint();
}

bool LogFollower::truncatedInPlace() {
  struct stat st {};
  if (::fstat(fd_.get(), &st) != 0) return false;
  mtime_ms_ = mtimeMs(st);
  if (static_cast<uint64_t>(st.st_size) < offset_ + buffer_.size()) return true;
  if (fingerprint_length_ == 0) return false;
  std::string head = readPrefix(fd_.get(), fingerprint_length_);
  return head.size() < fingerprint_length_ || sha256Hex(head) != fingerprint_;
}

void LogFollower::continueAfterTruncation() {
  LogPosition here = position();
  here.mtime_ms = 0;  // only its copy: the other rotated files are older
  ResumePlan plan = planResume(here, path_, scan(fingerprint_length_));
  if (plan.from == ResumeFrom::SavedFile && !plan.steps.front().live) {
    MG_LOG_INFO("%s was truncated (copytruncate); reading its rest from the copy %s at offset %llu first",
                path_.c_str(), plan.steps.front().path.c_str(), ull(here.offset));
    steps_.assign(plan.steps.begin(), plan.steps.end());
  } else {
    MG_LOG_WARN("%s was truncated and no rotated copy of it was found; reading it from the start (lines after "
                "offset %llu may be lost)",
                path_.c_str(), ull(here.offset));
    steps_.assign({ReadStep{path_, 0, true}});
  }
  fd_.reset();
  openNext();
}

void LogFollower::continueAfterRotation() {
  struct stat st {};
  if (::fstat(fd_.get(), &st) == 0) mtime_ms_ = mtimeMs(st);
  LogPosition here = position();  // when no file has our fingerprint: those written since our last look
  ResumePlan plan = planResume(here, path_, scan(fingerprint_length_));
  steps_.assign(plan.steps.begin(), plan.steps.end());
  bool same_name_again = plan.from == ResumeFrom::SavedFile && steps_.front().live;  // a copy of it, at its old name
  if (plan.from == ResumeFrom::SavedFile && !same_name_again) steps_.pop_front();  // the file we read to its end
  if (!buffer_.empty() && !same_name_again) {
    MG_LOG_WARN("rotated log ended in an incomplete line; %zu bytes skipped", buffer_.size());
  }
  if (steps_.size() > 1) {
    MG_LOG_INFO("log rotated: reading %zu newer rotated file(s), then the new %s", steps_.size() - 1, path_.c_str());
  } else {
    MG_LOG_INFO("log rotated: following the new %s", path_.c_str());
  }
  fd_.reset();
  openNext();
}

void LogFollower::reopen() {
  LogPosition here = position();
  ResumePlan plan = planResume(here, path_, scan(fingerprint_length_));
  if (plan.from != ResumeFrom::SavedFile) {
    MG_LOG_WARN("%s cannot be found again after a read error; its lines after offset %llu are lost", current_.c_str(),
                ull(here.offset));
    lost_ = false;
    if (steps_.empty()) steps_.push_back({path_, 0, true});
    openNext();
    return;
  }
  if (!openAt(plan.steps.front())) return;  // tried again after the poll interval
  steps_.assign(plan.steps.begin() + 1, plan.steps.end());
  lost_ = false;
  if (read_errors_ == 1) MG_LOG_INFO("reopened %s at offset %llu", current_.c_str(), ull(offset_));
}

void LogFollower::atEnd() {
  if (!live_) {
    // A rotated file is done once nothing was written to it for the grace period.
    struct stat st {};
    if (::fstat(fd_.get(), &st) == 0) mtime_ms_ = mtimeMs(st);
    if (wallMs() - mtime_ms_ < std::chrono::milliseconds(kRotationGrace).count()) return;
    if (!buffer_.empty()) MG_LOG_WARN("rotated log %s ended in an incomplete line; %zu bytes skipped", current_.c_str(),
                                      buffer_.size());
    fd_.reset();
    openNext();
    return;
  }
  if (truncatedInPlace()) {
    continueAfterTruncation();
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
  continueAfterRotation();
}

std::vector<std::string> LogFollower::read(size_t max_lines, std::chrono::milliseconds wait,
                                           const std::atomic<bool>& stop) {
  std::vector<std::string> out;
  auto deadline = std::chrono::steady_clock::now() + wait;
  std::vector<char> chunk(kChunk);
  bool checked = isStdin();
  while (true) {
    takeLines(out, max_lines);
    if (out.size() >= max_lines) return out;
    bool got = false;
    if (fd_.get() < 0) {
      if (isStdin()) {
      } else if (lost_) {
        reopen();
      } else if (openNext()) {
        MG_LOG_INFO("%s appeared; reading it", current_.c_str());
      }
    } else if (!checked && live_) {
      // Once per call: a log truncated and written past our offset since then
      // would otherwise be read from the middle.
      checked = true;
      if (truncatedInPlace()) continueAfterTruncation();
      got = true;
    } else {
      bool readable = true;
      if (isStdin()) {
        pollfd p{fd_.get(), POLLIN, 0};
        readable = ::poll(&p, 1, static_cast<int>(kPollInterval.count())) > 0;
      }
      ssize_t n = readable ? read_fn_(fd_.get(), chunk.data(), chunk.size()) : -1;
      if (n > 0) {
        buffer_.append(chunk.data(), static_cast<size_t>(n));
        read_errors_ = 0;
        got = true;
      } else if (n == 0 && isStdin()) {
        MG_LOG_INFO("standard input closed");
        fd_.reset();
      } else if (n == 0 || !readable) {
        if (!isStdin()) atEnd();
      } else if (errno != EINTR && errno != EAGAIN) {
        if (isStdin()) {
          MG_LOG_ERR("reading standard input: %s", std::strerror(errno));
        } else if (++read_errors_ == 1) {
          MG_LOG_ERR("reading %s: %s; reopening it at offset %llu", current_.c_str(), std::strerror(errno),
                     ull(offset_));
        }
        fd_.reset();
        lost_ = !isStdin();
      }
    }
    if (got) continue;
    if (!out.empty() || stop.load() || std::chrono::steady_clock::now() >= deadline) return out;
    if (isStdin() && fd_.get() < 0) return out;
    if (!isStdin()) std::this_thread::sleep_for(kPollInterval);
  }
}

}  // namespace mailgate::tracker

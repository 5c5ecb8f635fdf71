// body_copy.cc — BodyCopy: the body in memory up to a threshold, then in an
// O_TMPFILE file (no name, gone when closed), dropped past the size limit or
// on a write error; read back only at end of message when it is needed.
#include "mailgate/body_copy.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace mailgate {
namespace {

bool writeAll(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = ::write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

BodyCopy::BodyCopy(uint64_t limit, size_t memory, std::string dir)
    : limit_(limit), memory_limit_(memory), dir_(std::move(dir)) {
  if (dir_.empty()) {
    const char* tmp = getenv("TMPDIR");
    dir_ = tmp != nullptr && *tmp == '/' ? tmp : "/tmp";
  }
}

void BodyCopy::drop() {
  std::string().swap(memory_);
  fd_.reset();
}

void BodyCopy::append(const unsigned char* data, size_t len) {
  if (too_big_ || !failure_.empty()) return;
  size_ += len;
  if (limit_ > 0 && size_ > limit_) {
    too_big_ = true;
    drop();
    return;
  }
  const char* text = reinterpret_cast<const char*>(data);
  if (fd_.get() < 0 && memory_.size() + len <= memory_limit_) {
    memory_.append(text, len);
    return;
  }
  if (fd_.get() < 0) {
    fd_ = UniqueFd(::open(dir_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (fd_.get() < 0 || !writeAll(fd_.get(), memory_.data(), memory_.size())) {
      failure_ = "spill file in " + dir_ + ": " + strerror(errno);
      drop();
      return;
    }
    std::string().swap(memory_);
  }
  if (!writeAll(fd_.get(), text, len)) {
    failure_ = "spill file in " + dir_ + ": " + strerror(errno);
    drop();
  }
}

Result<std::string> BodyCopy::contents() const {
  if (too_big_) return Error{Error::Kind::Invalid, "body over the size limit was not kept"};
  if (!failure_.empty()) return Error{Error::Kind::Unavailable, failure_};
  if (fd_.get() < 0) return memory_;
  std::string out(size_, '\0');
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd_.get(), out.data() + done, out.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error{Error::Kind::Unavailable, std::string("spill file read: ") + (n < 0 ? strerror(errno) : "short")};
    done += static_cast<size_t>(n);
  }
  return out;
}

}  // namespace mailgate

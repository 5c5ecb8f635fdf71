// listen.h — listening sockets for the daemons: UNIX (stale socket removed,
// mode and group set so Postfix can connect) or TCP, plus a RAII fd.
#pragma once

#include <string>
#include <sys/types.h>
#include <unistd.h>

#include "mailgate/config.h"
#include "mailgate/result.h"

namespace mailgate {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.release();
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// Binds and listens (non-blocking, close-on-exec). UNIX sockets get `mode`
// and, when it exists, `group`.
Result<UniqueFd> listenOn(const Endpoint& endpoint, unsigned mode, const std::string& group);

// chgrp (and chmod if its mode differs) of the UNIX socket at `path`, done
// on the inode opened without following links: a path that is not a socket
// (a symlink or file planted after the bind) is refused and left alone. An
// unknown group is an error.
Status setSocketAccess(const std::string& path, unsigned mode, const std::string& group);

// Sets the umask so that sockets bound (or created by libmilter) while it
// lives get `mode`; restores the previous umask. Start-up only (the umask is
// per process).
class SocketCreationMode {
 public:
  explicit SocketCreationMode(unsigned mode);
  ~SocketCreationMode();
  SocketCreationMode(const SocketCreationMode&) = delete;
  SocketCreationMode& operator=(const SocketCreationMode&) = delete;

 private:
  mode_t saved_;
};

}  // namespace mailgate

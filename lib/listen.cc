// listen.cc — creates the daemons' listening sockets and sets the access
// rights of UNIX sockets (on the socket itself, never through a swapped path)
// so that the Postfix user can connect.
#include "mailgate/listen.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <memory>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

namespace mailgate {
namespace {

Error sysError(const std::string& what) {
  return Error{Error::Kind::Unavailable, what + ": " + std::strerror(errno)};
}

}  // namespace

Status setSocketAccess(const std::string& path, unsigned mode, const std::string& group) {
  // The directory may be writable by the daemon's user: act on the inode
  // opened here, refused unless it is a socket, never on the path again.
  UniqueFd fd(open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  struct stat st;
  if (fd.get() < 0 || fstat(fd.get(), &st) != 0) return sysError(path);
  if (!S_ISSOCK(st.st_mode)) return Error{Error::Kind::Invalid, path + " is not a socket (replaced after the bind?)"};
  if (!group.empty()) {
    struct group* gr = getgrnam(group.c_str());
    if (gr == nullptr) return Error{Error::Kind::Invalid, "unknown group \"" + group + "\""};
    if (fchownat(fd.get(), "", static_cast<uid_t>(-1), gr->gr_gid, AT_EMPTY_PATH) != 0) return sysError("chgrp " + path);
  }
  if ((st.st_mode & 07777) != mode) {
    // No fchmod() on an O_PATH descriptor; its /proc link names the same inode.
    std::string self = "/proc/self/fd/" + std::to_string(fd.get());
    if (chmod(self.c_str(), mode) != 0) return sysError("chmod " + path);
  }
  return okStatus();
}

SocketCreationMode::SocketCreationMode(unsigned mode) : saved_(umask(~static_cast<mode_t>(mode) & 0777)) {}
SocketCreationMode::~SocketCreationMode() { umask(saved_); }

Result<UniqueFd> listenOn(const Endpoint& endpoint, unsigned mode, const std::string& group) {
  if (endpoint.kind == Endpoint::Kind::Unix) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (endpoint.path.size() >= sizeof addr.sun_path) {
      return Error{Error::Kind::Invalid, "socket path too long: " + endpoint.path};
    }
    std::memcpy(addr.sun_path, endpoint.path.c_str(), endpoint.path.size() + 1);
    UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) return sysError("socket");
    struct stat st;
    if (lstat(endpoint.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) unlink(endpoint.path.c_str());
    {
      SocketCreationMode creation(mode);  // no moment with wider rights than `mode`
      if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        return sysError("bind " + endpoint.path);
      }
    }
    if (Status s = setSocketAccess(endpoint.path, mode, group); !s) return s.error();
    if (listen(fd.get(), 512) != 0) return sysError("listen " + endpoint.path);
    return fd;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(endpoint.port);
  int rc = getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) return Error{Error::Kind::Invalid, endpoint.host + ": " + gai_strerror(rc)};
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
  UniqueFd fd(socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return sysError("socket");
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd.get(), res->ai_addr, res->ai_addrlen) != 0) return sysError("bind " + endpoint.toString());
  if (listen(fd.get(), 512) != 0) return sysError("listen " + endpoint.toString());
  return fd;
}

}  // namespace mailgate

// server.cc — policy protocol server I/O: accept, read, frame, answer, close.
// Many requests per connection, many connections per worker, a size limit
// and an idle timeout per connection; malformed input gets a DEFER and close.
#include "server.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unordered_map>

#include "mailgate/log.h"

namespace mailgate::policy {
namespace {

using Clock = std::chrono::steady_clock;

struct Connection {
  UniqueFd fd;
  PolicyParser parser;
  std::string out;
  bool close_after_write = false;
  // Reply sent and write side shut down; input is read and dropped until EOF
  // so that closing does not reset the connection before the peer read it.
  bool draining = false;
  size_t drained = 0;
  Clock::time_point last_activity = Clock::now();
};

constexpr int kMaxEvents = 64;
constexpr size_t kMaxDrainBytes = 1024 * 1024;
constexpr auto kDrainTimeout = std::chrono::seconds(2);

}  // namespace

std::string decide(const PolicyRequest& request) {
  MG_LOG_DEBUG("%s: policy %s from=<%s> to=<%s>: DUNNO",
               request.get("queue_id").empty() ? "NOQUEUE" : printable(request.get("queue_id")).c_str(),
               printable(request.get("protocol_state")).c_str(), printable(request.get("sender")).c_str(),
               printable(request.get("recipient")).c_str());
  return "DUNNO";
}

PolicyServer::PolicyServer(const Config& config, UniqueFd listen_fd)
    : config_(config), listen_fd_(std::move(listen_fd)), stop_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

PolicyServer::~PolicyServer() { stop(); }

void PolicyServer::start() {
  for (unsigned i = 0; i < config_.policy_workers; ++i) workers_.emplace_back([this] { workerLoop(); });
}

void PolicyServer::stop() {
  uint64_t one = 1;
  if (write(stop_fd_.get(), &one, sizeof one) < 0) MG_LOG_WARN("policy: cannot signal workers: %m");
  for (auto& t : workers_) t.join();
  workers_.clear();
}

void PolicyServer::workerLoop() {
  UniqueFd ep(epoll_create1(EPOLL_CLOEXEC));
  if (ep.get() < 0) {
    MG_LOG_ERR("policy: epoll_create1: %m");
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLEXCLUSIVE;
  ev.data.fd = listen_fd_.get();
  epoll_ctl(ep.get(), EPOLL_CTL_ADD, listen_fd_.get(), &ev);
  ev.events = EPOLLIN;
  ev.data.fd = stop_fd_.get();
  epoll_ctl(ep.get(), EPOLL_CTL_ADD, stop_fd_.get(), &ev);

  std::unordered_map<int, std::unique_ptr<Connection>> conns;
  auto closeConn = [&](int fd) {
    epoll_ctl(ep.get(), EPOLL_CTL_DEL, fd, nullptr);
    conns.erase(fd);
  };
  // Writes what is pending; returns false when the connection is finished.
  auto flush = [&](Connection& c) {
    while (!c.out.empty()) {
      ssize_t n = send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n <= 0) return false;
      c.out.erase(0, static_cast<size_t>(n));
    }
    if (c.out.empty() && c.close_after_write && !c.draining) {
      shutdown(c.fd.get(), SHUT_WR);
      c.draining = true;
    }
    epoll_event mod{};
    mod.events = c.out.empty() ? EPOLLIN : EPOLLIN | EPOLLOUT;
    mod.data.fd = c.fd.get();
    epoll_ctl(ep.get(), EPOLL_CTL_MOD, c.fd.get(), &mod);
    return true;
  };
  // Answers every complete request in the buffer.
  auto answer = [&](Connection& c, bool eof) {
    PolicyRequest req;
    while (!c.close_after_write) {
      auto s = eof ? c.parser.finish(req) : c.parser.next(req);
      if (s == PolicyParser::Status::NeedMore) break;
      if (s == PolicyParser::Status::Malformed) {
        MG_LOG_WARN("policy: malformed request: %s; closing connection", c.parser.error().c_str());
        c.out += formatPolicyReply("DEFER malformed policy request: " + c.parser.error());
        c.close_after_write = true;
        break;
      }
      c.out += formatPolicyReply(decide(req));
    }
    if (eof) c.close_after_write = true;
  };

  bool stopping = false;
  epoll_event events[kMaxEvents];
  while (!stopping) {
    int n = epoll_wait(ep.get(), events, kMaxEvents, 1000);
    if (n < 0 && errno != EINTR) {
      MG_LOG_ERR("policy: epoll_wait: %m");
      break;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == stop_fd_.get()) {
        stopping = true;
        continue;
      }
      if (fd == listen_fd_.get()) {
        int cfd = accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
          if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) MG_LOG_WARN("policy: accept: %m");
          continue;
        }
        auto c = std::make_unique<Connection>();
        c->fd = UniqueFd(cfd);
        epoll_event cev{};
        cev.events = EPOLLIN;
        cev.data.fd = cfd;
        epoll_ctl(ep.get(), EPOLL_CTL_ADD, cfd, &cev);
        conns.emplace(cfd, std::move(c));
        continue;
      }
      auto it = conns.find(fd);
      if (it == conns.end()) continue;
      Connection& c = *it->second;
      c.last_activity = Clock::now();
      if (c.draining) {
        char buf[16384];
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
        c.drained += r > 0 ? static_cast<size_t>(r) : 0;
        if (r <= 0 || c.drained > kMaxDrainBytes) closeConn(fd);
        continue;
      }
      if (events[i].events & EPOLLIN && !c.close_after_write) {
        char buf[16384];
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
        if (r < 0) {
          closeConn(fd);
          continue;
        }
        if (r > 0) c.parser.feed(std::string_view(buf, static_cast<size_t>(r)));
        answer(c, r == 0);
      } else if (!(events[i].events & (EPOLLOUT | EPOLLIN))) {
        closeConn(fd);  // EPOLLERR / EPOLLHUP without data
        continue;
      }
      if (!flush(c)) closeConn(fd);
    }
    auto now = Clock::now();
    for (auto it2 = conns.begin(); it2 != conns.end();) {
      auto limit = it2->second->draining ? std::chrono::duration_cast<std::chrono::milliseconds>(kDrainTimeout)
                                         : config_.policy_idle_timeout;
      if (now - it2->second->last_activity > limit) {
        MG_LOG_DEBUG("policy: closing idle connection");
        epoll_ctl(ep.get(), EPOLL_CTL_DEL, it2->first, nullptr);
        it2 = conns.erase(it2);
      } else {
        ++it2;
      }
    }
  }
  // Answer what was already read, then close everything.
  for (auto& [fd, c] : conns) {
    answer(*c, false);
    flush(*c);
  }
}

}  // namespace mailgate::policy

// listener.cc — epoll worker loops: accept (up to policy_max_connections, and
// without spinning when descriptors run out), read, hand bytes to the session,
// write its answers (EPOLLOUT when the socket is full; input is not read while
// kMaxPendingOutput is unsent), close gracefully (shutdown + drain, so the
// last answer is not lost to a reset), idle and request timeouts.
#include "listener.h"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unordered_map>

#include "mailgate/log.h"

namespace mailgate::policy {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kMaxEvents = 64;
constexpr size_t kMaxDrainBytes = 1024 * 1024;
constexpr std::chrono::milliseconds kDrainTimeout{2000};
// Answers a peer has not read yet beyond which its input is not read: a
// client that pipelines requests without reading gets backpressure, and the
// daemon's memory per connection stays bounded.
constexpr size_t kMaxPendingOutput = 64 * 1024;
// How long the listening socket is not watched when no descriptor is left
// even to refuse a connection.
constexpr std::chrono::milliseconds kFdBackoff{100};

// One of the listener's policy_max_connections, held while a connection lives.
class ConnectionSlot {
 public:
  ConnectionSlot(std::atomic<unsigned>& open, unsigned max) : open_(&open) {
    if (open.fetch_add(1) >= max) release();
  }
  ~ConnectionSlot() { release(); }
  ConnectionSlot(ConnectionSlot&& o) noexcept : open_(std::exchange(o.open_, nullptr)) {}
  ConnectionSlot(const ConnectionSlot&) = delete;
  ConnectionSlot& operator=(const ConnectionSlot&) = delete;
  ConnectionSlot& operator=(ConnectionSlot&&) = delete;
  explicit operator bool() const { return open_ != nullptr; }

 private:
  void release() {
    if (open_ != nullptr) open_->fetch_sub(1);
    open_ = nullptr;
  }
  std::atomic<unsigned>* open_;
};

UniqueFd openSpareFd() { return UniqueFd(open("/dev/null", O_RDONLY | O_CLOEXEC)); }

enum class NoFds { No, Refused, Stuck };

// Accepts one connection. Without a free descriptor it refuses one instead
// (the spare makes room to accept and close it: Refused), or cannot (Stuck).
UniqueFd acceptOne(int listen_fd, ListenerState& state, NoFds& no_fds) {
  std::lock_guard<std::mutex> lock(state.accept_mutex);
  UniqueFd fd(accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
  no_fds = fd.get() < 0 && (errno == EMFILE || errno == ENFILE) ? NoFds::Stuck : NoFds::No;
  if (no_fds == NoFds::No) return fd;
  int err = errno;
  if (state.spare.get() < 0) state.spare = openSpareFd();
  if (state.spare.get() >= 0) {
    state.spare.reset();
    UniqueFd refused(accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
    if (refused.get() >= 0) no_fds = NoFds::Refused;
    refused.reset();
    state.spare = openSpareFd();
  }
  errno = err;
  return fd;
}

struct Connection {
  explicit Connection(ConnectionSlot s) : slot(std::move(s)) {}
  ConnectionSlot slot;
  UniqueFd fd;
  std::unique_ptr<Session> session;
  std::string out;
  bool close_after_write = false;
  uint32_t interest = EPOLLIN;  // the epoll interest set
  // Answer sent and write side shut down: input is read and dropped until
  // EOF so that closing does not reset the connection before the peer read it.
  bool draining = false;
  size_t drained = 0;
  Clock::time_point last_activity = Clock::now();
  // When the session's pending partial request began (Clock::time_point::max()
  // when there is none): it closes at request_timeout even if bytes keep coming.
  Clock::time_point request_started = Clock::time_point::max();
};

class Loop {
 public:
  Loop(const ListenerOptions& options, ListenerState& state, int listen_fd, int stop_fd,
       const SessionFactory& factory)
      : options_(options), state_(state), listen_fd_(listen_fd), stop_fd_(stop_fd), factory_(factory),
        worker_(options.redis), ep_(epoll_create1(EPOLL_CLOEXEC)) {}

  void run() {
    if (ep_.get() < 0) {
      MG_LOG_ERR("%s: epoll_create1: %m", options_.name.c_str());
      return;
    }
    watch(listen_fd_, EPOLLIN | EPOLLEXCLUSIVE, EPOLL_CTL_ADD);
    watch(stop_fd_, EPOLLIN, EPOLL_CTL_ADD);
    epoll_event events[kMaxEvents];
    bool stopping = false;
    while (!stopping) {
      int n = epoll_wait(ep_.get(), events, kMaxEvents, paused_ ? static_cast<int>(kFdBackoff.count()) : 1000);
      if (n < 0 && errno != EINTR) {
        MG_LOG_ERR("%s: epoll_wait: %m", options_.name.c_str());
        break;
      }
      if (paused_ && Clock::now() >= resume_at_) {
        watch(listen_fd_, EPOLLIN | EPOLLEXCLUSIVE, EPOLL_CTL_ADD);
        paused_ = false;
      }
      for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == stop_fd_) stopping = true;
        else if (fd == listen_fd_) accept();
        else serve(fd, events[i].events);
      }
      expireIdle();
    }
  }

 private:
  void watch(int fd, uint32_t events, int op) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    epoll_ctl(ep_.get(), op, fd, &ev);
  }

  void close(int fd) {
    epoll_ctl(ep_.get(), EPOLL_CTL_DEL, fd, nullptr);
    conns_.erase(fd);
  }

  void accept() {
    NoFds no_fds = NoFds::No;
    UniqueFd fd = acceptOne(listen_fd_, state_, no_fds);
    if (fd.get() < 0) {
      if (no_fds != NoFds::No) outOfFds(no_fds == NoFds::Stuck);
      else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        MG_LOG_WARN("%s: accept: %m", options_.name.c_str());
      }
      return;
    }
    ConnectionSlot slot(state_.open, options_.max_connections);
    if (!slot) {  // closed at once: the client sees the connection closed, not a hang
      if (!state_.at_cap.exchange(true)) {
        MG_LOG_WARN("%s: %u connections open, the most it serves; closing new connections until some end",
                    options_.name.c_str(), options_.max_connections);
      }
      return;
    }
    bool was_refusing = state_.at_cap.exchange(false);
    if (state_.out_of_fds.exchange(false) || was_refusing) {
      MG_LOG_INFO("%s: accepting connections again", options_.name.c_str());
    }
    auto c = std::make_unique<Connection>(std::move(slot));
    int raw = fd.get();
    c->fd = std::move(fd);
    c->session = factory_(worker_);
    c->out = c->session->greeting();
    watch(raw, EPOLLIN, EPOLL_CTL_ADD);
    Connection& ref = *c;
    conns_.emplace(raw, std::move(c));
    if (!flush(ref)) close(raw);
  }

  // accept4 found no free descriptor. When not even the spare could refuse
  // the connection (`stuck`), it stays queued and the socket readable, so
  // retrying at once would spin: the socket is not watched for kFdBackoff.
  void outOfFds(bool stuck) {
    if (!state_.out_of_fds.exchange(true)) {
      MG_LOG_WARN("%s: accept: %m; closing new connections until descriptors are free (raise LimitNOFILE "
                  "or lower policy_max_connections)", options_.name.c_str());
    }
    if (!stuck) return;
    epoll_ctl(ep_.get(), EPOLL_CTL_DEL, listen_fd_, nullptr);
    paused_ = true;
    resume_at_ = Clock::now() + kFdBackoff;
  }

  void serve(int fd, uint32_t events) {
    auto it = conns_.find(fd);
    if (it == conns_.end()) return;
    Connection& c = *it->second;
    c.last_activity = Clock::now();
    char buf[16384];
    if (c.draining) {
      ssize_t r = recv(fd, buf, sizeof buf, 0);
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
      c.drained += r > 0 ? static_cast<size_t>(r) : 0;
      if (r <= 0 || c.drained > kMaxDrainBytes) close(fd);
      return;
    }
    if ((events & EPOLLIN) && !c.close_after_write) {
      ssize_t r = recv(fd, buf, sizeof buf, 0);
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
      if (r < 0) {
        close(fd);
        return;
      }
      uint64_t done_before = c.session->requestsCompleted();
      auto next = c.session->onInput(std::string_view(buf, static_cast<size_t>(r)), r == 0, c.out);
      if (next == Session::Next::CloseNow) {
        close(fd);
        return;
      }
      if (next == Session::Next::CloseAfterWrite || r == 0) c.close_after_write = true;
      // The partial request left over began in this read if one completed in it.
      if (!c.session->midRequest()) c.request_started = Clock::time_point::max();
      else if (c.request_started == Clock::time_point::max() || c.session->requestsCompleted() != done_before)
        c.request_started = c.last_activity;
    } else if (!(events & (EPOLLIN | EPOLLOUT))) {
      close(fd);  // EPOLLERR / EPOLLHUP without data
      return;
    }
    if (!flush(c)) close(fd);
  }

  // Writes what is pending; false when the peer is gone.
  bool flush(Connection& c) {
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
    // Only when the interest changes, not one epoll_ctl after every answer
    // (it was one syscall in eight per request).
    uint32_t interest = (c.out.size() < kMaxPendingOutput ? uint32_t{EPOLLIN} : 0u) |
                        (c.out.empty() ? 0u : uint32_t{EPOLLOUT});
    if (interest != c.interest) {
      c.interest = interest;
      watch(c.fd.get(), interest, EPOLL_CTL_MOD);
    }
    return true;
  }

  void expireIdle() {
    auto now = Clock::now();
    for (auto it = conns_.begin(); it != conns_.end();) {
      const Connection& c = *it->second;
      auto limit = c.draining ? kDrainTimeout : options_.idle_timeout;
      bool slow_request = !c.draining && c.request_started != Clock::time_point::max() &&
                          now - c.request_started > options_.request_timeout;
      if (slow_request) {
        MG_LOG_WARN("%s: request not completed within %lld ms (policy_request_timeout); closing connection",
                    options_.name.c_str(), static_cast<long long>(options_.request_timeout.count()));
      }
      if (slow_request || now - c.last_activity > limit) {
        epoll_ctl(ep_.get(), EPOLL_CTL_DEL, it->first, nullptr);
        it = conns_.erase(it);
      } else {
        ++it;
      }
    }
  }

  const ListenerOptions& options_;
  ListenerState& state_;
  int listen_fd_, stop_fd_;
  const SessionFactory& factory_;
  Worker worker_;
  UniqueFd ep_;
  bool paused_ = false;  // listening socket not watched until resume_at_
  Clock::time_point resume_at_;
  std::unordered_map<int, std::unique_ptr<Connection>> conns_;
};

}  // namespace

Listener::Listener(ListenerOptions options, UniqueFd listen_fd, SessionFactory factory)
    : options_(std::move(options)),
      listen_fd_(std::move(listen_fd)),
      stop_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      factory_(std::move(factory)) {}

Listener::~Listener() { stop(); }

void Listener::start() {
  state_.spare = openSpareFd();
  for (unsigned i = 0; i < options_.workers; ++i) {
    threads_.emplace_back([this] { Loop(options_, state_, listen_fd_.get(), stop_fd_.get(), factory_).run(); });
  }
}

void Listener::stop() {
  if (threads_.empty()) return;
  uint64_t one = 1;
  if (write(stop_fd_.get(), &one, sizeof one) < 0) MG_LOG_WARN("%s: cannot stop workers: %m", options_.name.c_str());
  for (auto& t : threads_) t.join();
  threads_.clear();
}

}  // namespace mailgate::policy

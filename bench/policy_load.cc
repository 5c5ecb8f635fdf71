// policy_load.cc — load generator for mailgate-policy: N persistent
// connections (as N Postfix smtpd processes), each sending one request and
// waiting for the answer, for a fixed time. Prints decisions/s and latency
// percentiles. Usage: policy_load SOCKET CONNECTIONS SECONDS [NEW_INSTANCE_EVERY]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Conn {
  int fd = -1;
  Clock::time_point sent;
  std::string in;
  unsigned long n = 0;
};

std::string request(unsigned conn, unsigned long n, unsigned new_instance_every) {
  unsigned long instance = new_instance_every ? n / new_instance_every : 0;
  return "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=192.0.2.10\n"
         "client_name=mx.example.org\nhelo_name=mx.example.org\nsender=alice@shop.example\n"
         "recipient=rcpt" + std::to_string(n % 1000) + "@example.net\nrecipient_count=0\nqueue_id=\n"
         "instance=" + std::to_string(conn) + "." + std::to_string(instance) +
         "\nsize=1200\nsasl_method=plain\nsasl_username=bench/kbench\npolicy_context=recipient\n\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: policy_load SOCKET CONNECTIONS SECONDS [NEW_INSTANCE_EVERY]\n");
    return 2;
  }
  const char* path = argv[1];
  unsigned nconn = static_cast<unsigned>(atoi(argv[2]));
  double seconds = atof(argv[3]);
  unsigned every = argc > 4 ? static_cast<unsigned>(atoi(argv[4])) : 1;
  int ep = epoll_create1(0);
  std::vector<Conn> conns(nconn);
  for (unsigned i = 0; i < nconn; ++i) {
    conns[i].fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    if (connect(conns[i].fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      perror("connect");
      return 1;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
  }
  std::vector<double> lat;
  lat.reserve(1 << 22);
  unsigned long errors = 0;
  auto start = Clock::now();
  auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  for (unsigned i = 0; i < nconn; ++i) {
    std::string r = request(i, 0, every);
    conns[i].sent = Clock::now();
    if (write(conns[i].fd, r.data(), r.size()) < 0) return 1;
  }
  epoll_event events[256];
  char buf[4096];
  while (Clock::now() < end) {
    int n = epoll_wait(ep, events, 256, 100);
    for (int k = 0; k < n; ++k) {
      Conn& c = conns[events[k].data.u32];
      ssize_t r = read(c.fd, buf, sizeof buf);
      if (r <= 0) {
        fprintf(stderr, "connection closed by the server\n");
        return 1;
      }
      c.in.append(buf, static_cast<size_t>(r));
      size_t pos;
      while ((pos = c.in.find("\n\n")) != std::string::npos) {
        auto now = Clock::now();
        lat.push_back(std::chrono::duration<double, std::milli>(now - c.sent).count());
        if (c.in.compare(0, 13, "action=DUNNO\n") != 0) ++errors;
        c.in.erase(0, pos + 2);
        std::string req = request(events[k].data.u32, ++c.n, every);
        c.sent = now;
        if (write(c.fd, req.data(), req.size()) < 0) return 1;
      }
    }
  }
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) { return lat.empty() ? 0.0 : lat[std::min(lat.size() - 1, static_cast<size_t>(p * lat.size()))]; };
  printf("connections=%u decisions=%zu seconds=%.2f rate=%.0f/s p50=%.3fms p99=%.3fms max=%.3fms non_dunno=%lu\n",
         nconn, lat.size(), elapsed, lat.size() / elapsed, pct(0.50), pct(0.99), lat.empty() ? 0 : lat.back(), errors);
  return 0;
}

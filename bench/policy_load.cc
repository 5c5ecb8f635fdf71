// policy_load.cc — load generator for mailgate-policy: C persistent connections
// (as C Postfix smtpd processes, one request outstanding on each), one epoll
// thread. Open loop (--rate): requests are due at fixed times, latency counts
// from the due time, so a slow server cannot hide its queue (coordinated
// omission); closed loop (--closed): as fast as answers come. Requests are
// Postfix's, per message: sender and recipient context at each RCPT, then
// END-OF-MESSAGE, all with the message's `instance`. Prints one line and JSON.
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string socket;
  unsigned connections = 100;
  double seconds = 5, warmup = 1, rate = 0;  // rate 0: closed loop
  unsigned rcpts = 1;                        // recipients per message
  std::string mix = "message";               // message: sender+recipient per RCPT, END-OF-MESSAGE; rcpt: RCPT only
  unsigned rcpt_every = 500;                 // mix=rcpt: a new instance every N requests
  std::string user = "bench/kbench", sender = "alice@shop.example";
  std::vector<std::pair<std::string, int>> cpu_pids;  // name=pid whose CPU is reported
};

// One connection's place in its message stream.
struct Conn {
  int fd = -1;
  unsigned id = 0;
  unsigned long message = 0, step = 0, sent_total = 0;
  std::deque<Clock::time_point> due;  // open loop: requests due but not answered (front in flight)
  bool busy = false;
  Clock::time_point sent_at;
  std::string in;
};

std::string attr(const char* name, const std::string& value) { return std::string(name) + "=" + value + "\n"; }

// The next request of `c` (advances its message stream).
std::string nextRequest(Conn& c, const Options& o) {
  unsigned steps = o.mix == "rcpt" ? 1 : 2 * o.rcpts + 1;
  unsigned long step = c.step++;
  if (o.mix == "rcpt") {
    c.message = o.rcpt_every ? c.sent_total / o.rcpt_every : 0;
  }
  ++c.sent_total;
  bool eod = o.mix != "rcpt" && step == steps - 1;
  if (o.mix == "rcpt" || eod) c.step = 0;
  unsigned rcpt_index = o.mix == "rcpt" ? 0 : static_cast<unsigned>(step / 2);
  const char* context = eod ? nullptr : (o.mix == "rcpt" || step % 2 == 1 ? "recipient" : "sender");
  std::string instance = std::to_string(c.id + 1) + "." + std::to_string(c.message + 1) + ".0";
  std::string qid = (step == 0 && o.mix != "rcpt") ? "" : "4Q" + std::to_string(c.id) + "X" + std::to_string(c.message);
  unsigned long rcpt_no = o.mix == "rcpt" ? c.sent_total : c.message * o.rcpts + (eod ? 0 : rcpt_index);
  std::string rcpt = "rcpt" + std::to_string((rcpt_no * 7 + c.id) % 1000) + "@example.net";
  std::string r;
  r.reserve(900);
  r += attr("request", "smtpd_access_policy");
  r += attr("protocol_state", eod ? "END-OF-MESSAGE" : "RCPT");
  r += attr("protocol_name", "ESMTP");
  r += attr("client_address", "192.0.2." + std::to_string(10 + c.id % 200));
  r += attr("client_name", "mx" + std::to_string(c.id) + ".example.org");
  r += attr("client_port", std::to_string(40000 + c.id));
  r += attr("reverse_client_name", "mx" + std::to_string(c.id) + ".example.org");
  r += attr("server_address", "192.0.2.1");
  r += attr("server_port", "587");
  r += attr("helo_name", "mx" + std::to_string(c.id) + ".example.org");
  r += attr("sender", o.sender);
  r += attr("recipient", eod ? (o.rcpts == 1 ? rcpt : "") : rcpt);
  r += attr("recipient_count", eod ? std::to_string(o.rcpts) : std::to_string(rcpt_index));
  r += attr("queue_id", qid);
  r += attr("instance", instance);
  r += attr("size", eod ? "2187" : "0");
  r += attr("etrn_domain", "");
  r += attr("stress", "");
  r += attr("sasl_method", "PLAIN");
  r += attr("sasl_username", o.user);
  r += attr("sasl_sender", "");
  r += attr("ccert_subject", "");
  r += attr("ccert_issuer", "");
  r += attr("ccert_fingerprint", "");
  r += attr("ccert_pubkey_fingerprint", "");
  r += attr("encryption_protocol", "TLSv1.3");
  r += attr("encryption_cipher", "TLS_AES_256_GCM_SHA384");
  r += attr("encryption_keysize", "256");
  r += attr("policy_context", context ? context : "");
  r += attr("compatibility_level", "3.6");
  r += attr("mail_version", "3.7.11");
  r += "\n";
  if (eod) ++c.message;
  return r;
}

// CPU seconds (user + system) of a process so far, -1 if unreadable.
double processCpu(int pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = fopen(path, "r");
  if (f == nullptr) return -1;
  char buf[1024];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  const char* p = strrchr(buf, ')');  // the command name may hold blanks
  if (p == nullptr) return -1;
  unsigned long utime = 0, stime = 0;
  // After ") ": state(3) ... utime is field 14, stime 15.
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2) return -1;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double selfCpu() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

std::string jsonEscape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (static_cast<unsigned char>(ch) >= 0x20) out += ch;
  }
  return out;
}

[[noreturn]] void usage() {
  fprintf(stderr,
          "usage: policy_load --socket PATH [--connections C] [--seconds S] [--warmup S]\n"
          "         (--rate R | --closed) [--mix message|rcpt] [--rcpts N] [--rcpt-every N]\n"
          "         [--user ACCOUNT/KEYID] [--sender ADDR] [--cpu NAME=PID]...\n");
  exit(2);
}

Options parseArgs(int argc, char** argv) {
  Options o;
  bool closed = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "--socket") o.socket = value();
    else if (a == "--connections") o.connections = static_cast<unsigned>(std::stoul(value()));
    else if (a == "--seconds") o.seconds = std::stod(value());
    else if (a == "--warmup") o.warmup = std::stod(value());
    else if (a == "--rate") o.rate = std::stod(value());
    else if (a == "--closed") closed = true;
    else if (a == "--mix") o.mix = value();
    else if (a == "--rcpts") o.rcpts = std::max(1u, static_cast<unsigned>(std::stoul(value())));
    else if (a == "--rcpt-every") o.rcpt_every = static_cast<unsigned>(std::stoul(value()));
    else if (a == "--user") o.user = value();
    else if (a == "--sender") o.sender = value();
    else if (a == "--cpu") {
      std::string v = value();
      size_t eq = v.find('=');
      if (eq == std::string::npos) usage();
      o.cpu_pids.emplace_back(v.substr(0, eq), std::stoi(v.substr(eq + 1)));
    } else usage();
  }
  if (o.socket.empty() || o.connections == 0 || (o.rate <= 0) == !closed || (o.mix != "message" && o.mix != "rcpt")) {
    usage();
  }
  return o;
}

class Generator {
 public:
  explicit Generator(Options o) : o_(std::move(o)), conns_(o_.connections) {}

  int run() {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    for (unsigned i = 0; i < conns_.size(); ++i) {
      Conn& c = conns_[i];
      c.id = i;
      c.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      strncpy(a.sun_path, o_.socket.c_str(), sizeof a.sun_path - 1);
      if (connect(c.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        perror("connect");
        return 1;
      }
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = i;
      epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev);
    }
    start_ = Clock::now();
    measure_from_ = start_ + toDuration(o_.warmup);
    stop_at_ = measure_from_ + toDuration(o_.seconds);
    bool closed = o_.rate <= 0;
    if (closed) {
      for (auto& c : conns_) enqueue(c, Clock::now());
    }
    unsigned long k = 0;  // open loop: the next request due, at start_ + k / rate, on connection k % C
    auto dueAt = [&](unsigned long n) { return start_ + toDuration(static_cast<double>(n) / o_.rate); };
    epoll_event events[256];
    char buf[16384];
    Clock::time_point drain_until = stop_at_ + std::chrono::seconds(5);
    while (true) {
      auto now = Clock::now();
      if (phase_ == Phase::Warmup && now >= measure_from_) startMeasuring();
      if (phase_ == Phase::Measuring && now >= stop_at_) stopMeasuring(now);
      if (now >= stop_at_ && (closed || outstanding_ == 0 || now >= drain_until)) break;
      if (!closed) {
        for (; now < stop_at_ && dueAt(k) <= now; ++k) enqueue(conns_[k % conns_.size()], dueAt(k));
      }
      timespec timeout{0, 100'000'000};
      if (!closed && now < stop_at_) {
        auto wait = std::max(Clock::duration::zero(), dueAt(k) - now);
        auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
        timeout = {static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
      }
      int n = epoll_pwait2(ep_, events, 256, &timeout, nullptr);
      if (n < 0 && errno != EINTR) {
        perror("epoll_pwait2");
        return 1;
      }
      for (int e = 0; e < n; ++e) {
        Conn& c = conns_[events[e].data.u32];
        ssize_t r = read(c.fd, buf, sizeof buf);
        if (r <= 0) {
          fprintf(stderr, "connection closed by the server\n");
          return 1;
        }
        c.in.append(buf, static_cast<size_t>(r));
        size_t pos;
        while ((pos = c.in.find("\n\n")) != std::string::npos) {
          answered(c, std::string_view(c.in).substr(0, pos));
          c.in.erase(0, pos + 2);
          if (closed && Clock::now() < stop_at_) enqueue(c, Clock::now());
        }
      }
    }
    report();
    return 0;
  }

 private:
  static Clock::duration toDuration(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }

  void enqueue(Conn& c, Clock::time_point due) {
    c.due.push_back(due);
    ++outstanding_;
    if (!c.busy) send(c);
  }

  void send(Conn& c) {
    std::string req = nextRequest(c, o_);
    c.busy = true;
    c.sent_at = Clock::now();
    if (write(c.fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
      perror("write");
      exit(1);
    }
  }

  void answered(Conn& c, std::string_view reply) {
    auto now = Clock::now();
    // Open loop: from the time it was due; closed: from the send.
    Clock::time_point from = o_.rate > 0 ? c.due.front() : c.sent_at;
    if (now >= measure_from_ && now < stop_at_) ++answered_in_window_;
    if (c.due.front() >= measure_from_ && c.due.front() < stop_at_) {
      lat_us_.push_back(std::chrono::duration<double, std::micro>(now - from).count());
      if (reply != "action=DUNNO") {
        if (errors_++ == 0) first_error_ = reply;
      }
    }
    c.due.pop_front();
    --outstanding_;
    c.busy = false;
    if (!c.due.empty()) send(c);
  }

  void startMeasuring() {
    phase_ = Phase::Measuring;
    cpu_start_.clear();
    for (auto& [name, pid] : o_.cpu_pids) cpu_start_.push_back(processCpu(pid));
    self_start_ = selfCpu();
  }

  void stopMeasuring(Clock::time_point now) {
    phase_ = Phase::Done;
    measured_seconds_ = std::chrono::duration<double>(now - measure_from_).count();
    cpu_used_.clear();
    for (size_t i = 0; i < o_.cpu_pids.size(); ++i) cpu_used_.push_back(processCpu(o_.cpu_pids[i].second) - cpu_start_[i]);
    self_used_ = selfCpu() - self_start_;
  }

  void report() {
    unsigned long unanswered = 0;  // open loop: due in the window, no answer after the drain
    for (auto& c : conns_) {
      if (o_.rate <= 0) break;  // closed loop: the last requests are cut off, not lost
      for (auto d : c.due) unanswered += d >= measure_from_ && d < stop_at_;
    }
    std::sort(lat_us_.begin(), lat_us_.end());
    auto pct = [&](double p) {
      return lat_us_.empty() ? 0.0 : lat_us_[std::min(lat_us_.size() - 1, static_cast<size_t>(p * lat_us_.size()))] / 1000;
    };
    double decisions = static_cast<double>(lat_us_.size());
    // Answers that came within the window (at saturation below the target:
    // the rest come in the drain, late).
    double rate = static_cast<double>(answered_in_window_) / measured_seconds_;
    std::string cpu_text, cpu_json;
    for (size_t i = 0; i < o_.cpu_pids.size(); ++i) {
      double per_k = decisions > 0 ? cpu_used_[i] * 1000 / decisions * 1000 : 0;  // ms per 1,000 decisions
      char b[160];
      snprintf(b, sizeof b, " %s_cpu=%.1fms/1k", o_.cpu_pids[i].first.c_str(), per_k);
      cpu_text += b;
      snprintf(b, sizeof b, ", \"%s_cpu_ms_per_1k\": %.2f, \"%s_cpu_s\": %.2f", o_.cpu_pids[i].first.c_str(), per_k,
               o_.cpu_pids[i].first.c_str(), cpu_used_[i]);
      cpu_json += b;
    }
    double self_per_k = decisions > 0 ? self_used_ * 1e6 / decisions : 0;
    printf("%s target=%.0f/s achieved=%.0f/s p50=%.3fms p90=%.3fms p99=%.3fms p99.9=%.3fms max=%.3fms errors=%lu "
           "unanswered=%lu%s generator_cpu=%.1fms/1k\n",
           o_.rate > 0 ? "open" : "closed", o_.rate, rate, pct(0.5), pct(0.9), pct(0.99), pct(0.999),
           lat_us_.empty() ? 0 : lat_us_.back() / 1000, errors_, unanswered, cpu_text.c_str(), self_per_k);
    printf("JSON {\"mode\": \"%s\", \"mix\": \"%s\", \"connections\": %u, \"target_rate\": %.0f, \"rate\": %.1f, "
           "\"decisions\": %.0f, \"seconds\": %.2f, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, "
           "\"p999_ms\": %.3f, \"max_ms\": %.3f, \"errors\": %lu, \"unanswered\": %lu, "
           "\"generator_cpu_ms_per_1k\": %.2f%s, \"first_error\": \"%s\"}\n",
           o_.rate > 0 ? "open" : "closed", o_.mix.c_str(), o_.connections, o_.rate, rate, decisions,
           measured_seconds_, pct(0.5), pct(0.9), pct(0.99), pct(0.999), lat_us_.empty() ? 0 : lat_us_.back() / 1000,
           errors_, unanswered, self_per_k, cpu_json.c_str(), jsonEscape(first_error_).c_str());
    if (errors_ > 0) fprintf(stderr, "first unexpected reply: %s\n", first_error_.c_str());
  }

  Options o_;
  std::vector<Conn> conns_;
  int ep_ = -1;
  Clock::time_point start_, measure_from_, stop_at_;
  enum class Phase { Warmup, Measuring, Done } phase_ = Phase::Warmup;
  std::string first_error_;
  unsigned long outstanding_ = 0, errors_ = 0, answered_in_window_ = 0;
  std::vector<double> lat_us_;
  std::vector<double> cpu_start_, cpu_used_;
  double self_start_ = 0, self_used_ = 0, measured_seconds_ = 0;
};

}  // namespace

int main(int argc, char** argv) { return Generator(parseArgs(argc, argv)).run(); }

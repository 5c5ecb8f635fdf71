// smtp_load.cc — the load client of bench/chain for what smtp-source cannot do
// (STARTTLS, AUTH PLAIN with an API key): SESSIONS threads, each sending one message
// per connection like smtp-source; OpenSSL in C, so the client takes little of the
// CPU it measures. The AUTH password comes from $MG_BENCH_KEY. Exits 1 if any
// message was not accepted. Usage: smtp_load PORT MESSAGES SESSIONS SIZE [--starttls] [--user U]
#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "mailgate/listen.h"

namespace {

struct Options {
  int port = 0;
  long messages = 0;
  int sessions = 20;
  size_t size = 2048;
  bool starttls = false;
  std::string user;
  std::string password;
  bool auth = false;
};

struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};

// One SMTP connection: plain until startTls(), then through OpenSSL.
class Conn {
 public:
  explicit Conn(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    if (fd_.get() < 0) throw std::runtime_error("socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
    int one = 1;
    ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }

  void startTls(SSL_CTX* ctx) {
    ssl_.reset(SSL_new(ctx));
    SSL_set_fd(ssl_.get(), fd_.get());
    if (SSL_connect(ssl_.get()) != 1) throw std::runtime_error("TLS handshake failed");
  }

  void send(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      long n = ssl_ ? SSL_write(ssl_.get(), data.data() + off, static_cast<int>(data.size() - off))
                    : ::write(fd_.get(), data.data() + off, data.size() - off);
      if (n <= 0) throw std::runtime_error("write failed");
      off += static_cast<size_t>(n);
    }
  }

  // Reads one (possibly multi-line) reply; throws unless it starts with `code`.
  void expect(const char* code, const std::string& command = {}) {
    if (!command.empty()) send(command + "\r\n");
    for (;;) {
      size_t start = 0;
      for (size_t eol; (eol = buf_.find("\r\n", start)) != std::string::npos; start = eol + 2) {
        if (eol - start >= 4 && buf_[start + 3] == '-') continue;
        std::string line = buf_.substr(start, eol - start);
        buf_.erase(0, eol + 2);
        if (line.compare(0, 3, code) != 0)
          throw std::runtime_error((command.empty() ? "greeting" : command) + ": " + line);
        return;
      }
      char tmp[4096];
      long n = ssl_ ? SSL_read(ssl_.get(), tmp, sizeof tmp) : ::read(fd_.get(), tmp, sizeof tmp);
      if (n <= 0) throw std::runtime_error("connection closed");
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }

 private:
  mailgate::UniqueFd fd_;
  std::unique_ptr<SSL, SslFree> ssl_;
  std::string buf_;
};

std::string base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string message(const Options& o, long index) {
  char date[64];
  time_t now = time(nullptr);
  tm t{};
  gmtime_r(&now, &t);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &t);
  std::string m = "From: <bench@shop.example>\r\nTo: <rcpt@example.net>\r\nSubject: bench\r\nDate: " +
                  std::string(date) + "\r\nMessage-Id: <" + std::to_string(index) + "." + std::to_string(now) +
                  "@shop.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n";
  const std::string line = "La la la la la la la la la la la la la la la la la la la la la la la la.\r\n";
  for (size_t n = 0; n + line.size() <= o.size || n == 0; n += line.size()) m += line;
  return m + ".\r\n";
}

void sendOne(const Options& o, SSL_CTX* ctx, long index) {
  Conn c(o.port);
  c.expect("220");
  c.expect("250", "EHLO bench.example");
  if (o.starttls) {
    c.expect("220", "STARTTLS");
    c.startTls(ctx);
    c.expect("250", "EHLO bench.example");
  }
  if (o.auth) c.expect("235", "AUTH PLAIN " + base64(std::string(1, '\0') + o.user + '\0' + o.password));
  c.expect("250", "MAIL FROM:<bench@shop.example>");
  c.expect("250", "RCPT TO:<rcpt@example.net>");
  c.expect("354", "DATA");
  c.send(message(o, index));
  c.expect("250");
  c.expect("221", "QUIT");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: smtp_load PORT MESSAGES SESSIONS SIZE [--starttls] [--user U]\n");
    return 2;
  }
  Options o;
  o.port = std::atoi(argv[1]);
  o.messages = std::atol(argv[2]);
  o.sessions = std::atoi(argv[3]);
  o.size = static_cast<size_t>(std::atol(argv[4]));
  for (int i = 5; i < argc; ++i) {
    if (std::strcmp(argv[i], "--starttls") == 0) {
      o.starttls = true;
    } else if (std::strcmp(argv[i], "--user") == 0 && i + 1 < argc) {
      o.user = argv[++i];
      o.auth = true;
      const char* key = std::getenv("MG_BENCH_KEY");
      o.password = key ? key : "";
    }
  }
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  std::atomic<long> next{0}, failed{0};
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < o.sessions; ++t) {
    threads.emplace_back([&] {
      for (long i; (i = next.fetch_add(1)) < o.messages;) {
        try {
          sendOne(o, ctx.get(), i);
        } catch (const std::exception& e) {
          ++failed;
          std::fprintf(stderr, "smtp_load: message %ld: %s\n", i, e.what());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("smtp_load: %ld messages in %.2f s (%.0f/s), %ld failed\n", o.messages, s,
              static_cast<double>(o.messages) / s, failed.load());
  return failed.load() ? 1 : 0;
}

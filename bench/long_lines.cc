// long_lines.cc — what long_lines = encode adds to every message the milter
// may deliver: the line-length scan of each body chunk and the body copy
// (memory up to 256 KiB, then an unlinked temporary file), for bodies of
// 4 KiB to 10 MiB in the 64 KiB chunks Postfix sends, next to the cost of
// hashing the same body for one DKIM signature (SHA-256) for scale; then the
// rare path: re-encoding a body that has a long line (GMime).
// Usage: long_lines [ROUNDS]   (TMPDIR selects the spill file's directory)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <openssl/evp.h>
#include <string>

#include "mailgate/body_copy.h"
#include "mailgate/long_lines.h"
#include "mailgate/mime_reencode.h"

using namespace mailgate;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kChunk = 65535;  // Postfix's MILTER_CHUNK_SIZE

template <class F>
double perMessageUs(int rounds, F&& f) {
  auto start = Clock::now();
  for (int i = 0; i < rounds; ++i) f();
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count() / rounds;
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 200;
  std::string line(76, 'x');
  line += "\r\n";
  printf("%10s %12s %12s %12s %14s\n", "body", "scan us", "copy us", "scan+copy us", "sha256 us");
  for (size_t size : {4096UL, 102400UL, 1048576UL, 10485760UL}) {
    std::string body;
    while (body.size() < size) body += line;
    const auto* data = reinterpret_cast<const unsigned char*>(body.data());
    int n = size >= 1048576 ? std::max(rounds / 20, 5) : rounds;
    auto scan = [&] {
      LineLengthScanner s;
      for (size_t at = 0; at < body.size(); at += kChunk) s.feed(data + at, std::min(kChunk, body.size() - at));
      if (s.tooLong()) abort();
    };
    auto copy = [&] {
      BodyCopy c(50 * 1024 * 1024);
      for (size_t at = 0; at < body.size(); at += kChunk) c.append(data + at, std::min(kChunk, body.size() - at));
      if (c.size() != body.size()) abort();
    };
    auto both = [&] {
      scan();
      copy();
    };
    auto hash = [&] {
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned len = 0;
      EVP_Digest(body.data(), body.size(), md, &len, EVP_sha256(), nullptr);
    };
    printf("%10zu %12.1f %12.1f %12.1f %14.1f\n", body.size(), perMessageUs(n, scan), perMessageUs(n, copy),
           perMessageUs(n, both), perMessageUs(n, hash));
  }
  printf("\n%10s %16s\n", "body", "re-encode us");
  for (size_t size : {5000UL, 102400UL, 1048576UL, 10485760UL}) {
    std::string html = std::string(4998, 'h') + "\r\n";
    std::string body;
    while (body.size() < size) body += html;
    HeaderList headers = {{"Content-Type", "text/html; charset=utf-8"}, {"Content-Transfer-Encoding", "8bit"}};
    int n = size >= 1048576 ? 5 : 50;
    printf("%10zu %16.1f\n", body.size(), perMessageUs(n, [&] {
             if (reencodeLongLines(headers, body).verdict.action != Action::Dunno) abort();
           }));
  }
  return 0;
}

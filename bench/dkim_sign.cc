// dkim_sign.cc — per-message cost of mailgate's DKIM signer (key parsed once,
// relaxed/relaxed, OpenSSL EVP) next to, in the same run and with the same
// key: a raw EVP_DigestSign loop (the floor), SHA-256 of the body alone (the
// unavoidable body hash), the relaxed body hash, and libopendkim 2.11 (which
// parses the PEM key for every message). RSA-2048 and Ed25519, 1 KiB,
// 64 KiB and 1 MiB bodies fed in libmilter's 64 KiB chunks.
// Medians of per-message times. Usage: dkim_sign [MESSAGES]   (bench/run_dkim_bench.sh)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <openssl/evp.h>
#include <string>
#include <vector>

#define _Bool bool
#include <opendkim/dkim.h>
#undef _Bool

#include "mailgate/dkim_canon.h"
#include "mailgate/dkim_keys.h"
#include "mailgate/dkim_signer.h"

using namespace mailgate;
using Clock = std::chrono::steady_clock;

namespace {

const std::vector<std::pair<std::string, std::string>> kHeaders{
    {"From", "Shop <news@shop.example>"},         {"To", "bob@example.net"},
    {"Subject", "Your order"},                    {"Date", "Wed, 25 Nov 2026 10:00:00 +0000"},
    {"Message-Id", "<1@shop.example>"},           {"Feedback-ID", "c:shop:mailgate"}};
constexpr size_t kChunk = 65536;

// Microseconds f() took (negative when it failed).
template <class F>
double timed(F&& f) {
  auto start = Clock::now();
  bool ok = f();
  double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
  return ok ? us : -1e9;
}

double median(std::vector<double>& v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

bool signOurs(const DkimLibrary& lib, const DkimEntry& key, const std::string& body) {
  auto s = DkimSigner::start(lib, key);
  if (!s) return false;
  for (const auto& [n, v] : kHeaders) (void)(*s)->header(n, v);
  if (!(*s)->endOfHeaders()) return false;
  for (size_t i = 0; i < body.size(); i += kChunk) {
    (void)(*s)->body(reinterpret_cast<const unsigned char*>(body.data()) + i, std::min(kChunk, body.size() - i));
  }
  return static_cast<bool>((*s)->finish());
}

// One signature of the size of a DKIM header hash input (~600 bytes of
// canonical headers), as an application using OpenSSL directly would make it.
bool rawSign(EVP_PKEY* pkey, bool rsa, const std::string& data) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned char sig[512];
  size_t len = sizeof sig;
  bool ok = ctx && EVP_DigestSignInit(ctx, nullptr, rsa ? EVP_sha256() : nullptr, nullptr, pkey) == 1 &&
            EVP_DigestSign(ctx, sig, &len, reinterpret_cast<const unsigned char*>(data.data()),
                           rsa ? data.size() : 32) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

bool signOpendkim(DKIM_LIB* lib, const std::string& pem, bool rsa, const std::string& body) {
  DKIM_STAT st = DKIM_STAT_OK;
  DKIM* d = dkim_sign(lib, reinterpret_cast<const u_char*>("Q"), nullptr,
                      reinterpret_cast<dkim_sigkey_t>(const_cast<char*>(pem.c_str())),
                      reinterpret_cast<const u_char*>("s1"), reinterpret_cast<const u_char*>("shop.example"),
                      DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, rsa ? DKIM_SIGN_RSASHA256 : DKIM_SIGN_ED25519SHA256, -1,
                      &st);
  if (d == nullptr) return false;
  bool ok = true;
  for (const auto& [n, v] : kHeaders) {
    std::string f = n + ": " + v;
    ok = ok && dkim_header(d, reinterpret_cast<u_char*>(f.data()), f.size()) == DKIM_STAT_OK;
  }
  ok = ok && dkim_eoh(d) == DKIM_STAT_OK;
  for (size_t i = 0; ok && i < body.size(); i += kChunk) {
    ok = dkim_body(d, reinterpret_cast<u_char*>(const_cast<char*>(body.data())) + i,
                   std::min(kChunk, body.size() - i)) == DKIM_STAT_OK;
  }
  ok = ok && dkim_eom(d, nullptr) == DKIM_STAT_OK;
  dkim_free(d);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 300;
  DkimLibrary lib;
  DKIM_LIB* odk = dkim_init(nullptr, nullptr);
  std::string header_data(600, 'h');
  printf("%-8s %-6s %9s %9s %9s %9s %9s %9s %7s %7s %7s\n", "algo", "body", "signer", "raw sig", "sha256", "relaxed",
         "own", "opendkim", "s/raw", "s/floor", "odk/s");
  printf("%-8s %-6s %9s %9s %9s %9s %9s %9s %7s %7s %7s\n", "", "", "us/msg", "us", "body us", "body us", "us/msg",
         "us/msg", "", "", "");
  for (const char* algo : {"rsa2048", "ed25519"}) {
    auto key = generateDkimKey(algo);
    bool rsa = key->algo == DkimAlgo::Rsa;
    DkimEntry entry{"shop.example", "s1", dkimAlgoName(key->algo), "", "", key->pem, key->bits};
    if (!parseDkimPrivateKey(entry)) return 1;
    for (size_t size : {size_t{1024}, size_t{65536}, size_t{1 << 20}}) {
      std::string body;
      while (body.size() < size) body += "0123456789abcdef0123456789abcdef 0123456789abcdef  0123456789abcdef\r\n";
      body.resize(size - 2);
      body += "\r\n";
      int m = size > 100000 ? std::max(10, n / 10) : n;
      // Each message is measured in every way in turn, so that load on the
      // machine falls on all of them alike; medians, so that a burst of it
      // does not decide.
      std::vector<double> t[5];
      for (int i = 0; i < m; ++i) {
        t[0].push_back(timed([&] { return signOurs(lib, entry, body); }));
        t[1].push_back(timed([&] { return rawSign(entry.parsed.get(), rsa, header_data); }));
        t[2].push_back(timed([&] {
          Sha256 h;
          h.update(body);
          h.finish();
          return h.ok();
        }));
        t[3].push_back(timed([&] {
          RelaxedBodyHash h;
          h.update(reinterpret_cast<const unsigned char*>(body.data()), body.size());
          h.finish();
          return h.ok();
        }));
        t[4].push_back(timed([&] { return signOpendkim(odk, key->pem, rsa, body); }));
      }
      double ours = median(t[0]), raw = median(t[1]), sha = median(t[2]), relaxed = median(t[3]), odkim = median(t[4]);
      if (ours < 0 || raw < 0 || sha < 0 || relaxed < 0 || odkim < 0) return 1;
      printf("%-8s %-6s %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %7.2f %7.2f %7.2f\n", algo,
             size == 1024 ? "1K" : size == 65536 ? "64K" : "1M", ours, raw, sha, relaxed, ours - raw - relaxed, odkim,
             ours / raw, ours / (raw + sha), odkim / ours);
    }
  }
  printf("own = signer - raw signature - relaxed body hash (headers, tags, allocation); s/raw = signer / raw "
         "signature;\ns/floor = signer / (raw signature + SHA-256 of the body); odk/s = libopendkim / signer\n");
  dkim_close(odk);
  return 0;
}

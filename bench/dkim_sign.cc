// dkim_sign.cc — per-message cost of mailgate's DKIM signing (DkimSigner:
// libopendkim parses the key on every dkim_sign, then hashes and signs) next
// to the cost of parsing the PEM key alone; compare with `openssl speed
// rsa2048 ed25519` in the same run (bench/run_dkim_bench.sh).
// Usage: dkim_sign [MESSAGES]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <openssl/pem.h>
#include <string>

#include "mailgate/crypto.h"
#include "mailgate/dkim_keys.h"
#include "mailgate/dkim_signer.h"

using namespace mailgate;
using Clock = std::chrono::steady_clock;

namespace {

// Mean microseconds per signed message, or -1 when libopendkim refuses the key.
double perMessageUs(DkimLibrary& lib, const DkimEntry& key, int n, const std::string& body) {
  auto start = Clock::now();
  for (int i = 0; i < n; ++i) {
    auto s = DkimSigner::start(lib, key, "Q" + std::to_string(i));
    if (!s) return -1;
    (void)(*s)->header("From", "Shop <news@shop.example>");
    (void)(*s)->header("To", "bob@example.net");
    (void)(*s)->header("Subject", "Your order");
    (void)(*s)->header("Date", "Wed, 25 Nov 2026 10:00:00 +0000");
    (void)(*s)->header("Message-Id", "<1@shop.example>");
    (void)(*s)->header("Feedback-ID", "c:shop:mailgate");
    (void)(*s)->endOfHeaders();
    (void)(*s)->body(reinterpret_cast<const unsigned char*>(body.data()), body.size());
    if (!(*s)->finish()) return -1;
  }
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count() / n;
}

double parseUs(const std::string& pem, int n) {
  auto start = Clock::now();
  for (int i = 0; i < n; ++i) {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    EVP_PKEY* k = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    EVP_PKEY_free(k);
    BIO_free(bio);
  }
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count() / n;
}

// The same key as base64 of its DER encoding (the other form libopendkim takes).
std::string derBase64(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* k = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  unsigned char* der = nullptr;
  int len = i2d_PrivateKey(k, &der);
  std::string out = base64Encode(std::string_view(reinterpret_cast<char*>(der), static_cast<size_t>(len)));
  OPENSSL_free(der);
  EVP_PKEY_free(k);
  BIO_free(bio);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 300;
  DkimLibrary lib;
  std::string body;
  for (int i = 0; i < 64; ++i) body += "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n";
  for (const char* algo : {"rsa2048", "ed25519"}) {
    auto key = generateDkimKey(algo);
    DkimEntry entry{"shop.example", "s1", dkimAlgoName(key->algo), "", "", key->pem, key->bits};
    double sign = perMessageUs(lib, entry, n, body);
    double parse = parseUs(key->pem, n);
    printf("%-8s sign 4 KiB message: %8.1f us/msg (%6.0f msg/s per core); PEM parse alone: %6.1f us (%2.0f%%)\n",
           algo, sign, 1e6 / sign, parse, 100 * parse / sign);
    DkimEntry der = entry;
    der.pem = derBase64(key->pem);
    double sign_der = perMessageUs(lib, der, n, body);
    if (sign_der < 0) printf("%-8s same, key given as base64 DER: refused by libopendkim\n", algo);
    else printf("%-8s same, key given as base64 DER: %8.1f us/msg\n", algo, sign_der);
  }
  return 0;
}

// dkim_opendkim_test.cc — the DKIM signer against libopendkim 2.11, which it
// replaced: for edge-case messages fed in several chunkings, the same bh=,
// header hash and b= as libopendkim's dkim_sign with the same key, time and
// options (RSA and Ed25519 are both deterministic), and libopendkim's
// dkim_verify accepts every signature (public key from a lookup callback).
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#define _Bool bool
#include <opendkim/dkim.h>
#undef _Bool

#include "mailgate/crypto.h"
#include "mailgate/dkim_keys.h"
#include "mailgate/dkim_signer.h"

#if defined(__SANITIZE_ADDRESS__)
#define MG_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MG_LSAN 1
#endif
#endif
#ifdef MG_LSAN
#include <sanitizer/lsan_interface.h>
#endif

using namespace mailgate;

namespace {

// libopendkim 2.11 leaks ~270 bytes per signature in dkim_privkey_load()
// (upstream; the reason it was replaced): LSan looks away while it runs.
struct LsanPause {
  LsanPause() {
#ifdef MG_LSAN
    __lsan_disable();
#endif
  }
  ~LsanPause() {
#ifdef MG_LSAN
    __lsan_enable();
#endif
  }
};

const char* kSigned[] = {"from", "reply-to", "to", "cc", "subject", "date", "message-id", "mime-version",
                         "content-type", "content-transfer-encoding", "feedback-id", "list-unsubscribe",
                         "list-unsubscribe-post", nullptr};
const char* kOversigned[] = {"from", "to", "subject", "date", nullptr};

using Headers = std::vector<std::pair<std::string, std::string>>;  // as libmilter gives them (LF folds)

struct Message {
  std::string name;
  Headers headers;
  std::string body;
  bool no_final_crlf = false;  // libopendkim signs it only with DKIM_LIBFLAGS_FIXCRLF
};

struct Signed {
  std::string header;  // the DKIM-Signature value (LF TAB folds)
  std::string header_hash, body_hash;
};

std::map<std::string, std::string>& txtRecords() {  // selector -> TXT value
  static std::map<std::string, std::string> records;
  return records;
}

DKIM_CBSTAT lookupKey(DKIM*, DKIM_SIGINFO* sig, u_char* buf, size_t buflen) {
  auto it = txtRecords().find(reinterpret_cast<const char*>(dkim_sig_getselector(sig)));
  if (it == txtRecords().end() || it->second.size() >= buflen) return DKIM_CBSTAT_NOTFOUND;
  memcpy(buf, it->second.c_str(), it->second.size() + 1);
  return DKIM_CBSTAT_CONTINUE;
}

std::string crlf(const std::string& lf) {
  std::string out;
  for (char c : lf) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

// A libopendkim library set up as DkimLibrary was before it was replaced.
DKIM_LIB* referenceLibrary(uint64_t now, uint64_t expire, bool fixcrlf) {
  DKIM_LIB* lib = dkim_init(nullptr, nullptr);
  if (lib == nullptr) return nullptr;
  uint32_t flags = 0;
  dkim_options(lib, DKIM_OP_GETOPT, DKIM_OPTS_FLAGS, &flags, sizeof flags);
  if (fixcrlf) flags |= DKIM_LIBFLAGS_FIXCRLF;
  dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof flags);
  dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FIXEDTIME, &now, sizeof now);
  if (expire > 0) dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNATURETTL, &expire, sizeof expire);
  dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, static_cast<void*>(kSigned), sizeof(char**));
  dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS, static_cast<void*>(kOversigned), sizeof(char**));
  dkim_set_key_lookup(lib, lookupKey);
  return lib;
}

std::string hex(const void* p, size_t n) {
  return toHex(std::string_view(static_cast<const char*>(p), n));
}

bool feedHeaders(DKIM* d, const Headers& headers) {
  for (const auto& [name, value] : headers) {
    std::string field = crlf(name + ": " + value);
    if (dkim_header(d, reinterpret_cast<u_char*>(field.data()), field.size()) != DKIM_STAT_OK) return false;
  }
  return dkim_eoh(d) == DKIM_STAT_OK;
}

Signed referenceSign(DKIM_LIB* lib, const std::string& pem, const DkimEntry& key, const Message& m) {
  LsanPause pause;
  DKIM_STAT st = DKIM_STAT_OK;
  dkim_alg_t alg = key.algo == "ed25519-sha256" ? DKIM_SIGN_ED25519SHA256 : DKIM_SIGN_RSASHA256;
  DKIM* d = dkim_sign(lib, reinterpret_cast<const u_char*>("REF"), nullptr,
                      reinterpret_cast<dkim_sigkey_t>(const_cast<char*>(pem.c_str())),
                      reinterpret_cast<const u_char*>(key.selector.c_str()),
                      reinterpret_cast<const u_char*>(key.domain.c_str()), DKIM_CANON_RELAXED, DKIM_CANON_RELAXED,
                      alg, -1, &st);
  Signed out;
  if (d == nullptr) return out;
  std::string body = m.body;
  if (feedHeaders(d, m.headers) &&
      (body.empty() || dkim_body(d, reinterpret_cast<u_char*>(body.data()), body.size()) == DKIM_STAT_OK) &&
      dkim_eom(d, nullptr) == DKIM_STAT_OK) {
    u_char* sig = nullptr;
    size_t len = 0;
    if (dkim_getsighdr_d(d, strlen(DKIM_SIGNHEADER) + 2, &sig, &len) == DKIM_STAT_OK) {
      out.header.assign(reinterpret_cast<char*>(sig), len);
      std::erase(out.header, '\r');
    }
    DKIM_SIGINFO** sigs = nullptr;
    int n = 0;
    void *hh = nullptr, *bh = nullptr;
    size_t hhlen = 0, bhlen = 0;
    if (dkim_getsiglist(d, &sigs, &n) == DKIM_STAT_OK && n == 1 &&
        dkim_sig_gethashes(sigs[0], &hh, &hhlen, &bh, &bhlen) == DKIM_STAT_OK) {
      out.header_hash = hex(hh, hhlen);
      out.body_hash = hex(bh, bhlen);
    }
  } else {
    ADD_FAILURE() << m.name << ": libopendkim: " << (dkim_geterror(d) ? dkim_geterror(d) : "?");
  }
  dkim_free(d);
  return out;
}

// libopendkim's verdict on `signature` (LF TAB folds) over `m`.
std::string referenceVerify(DKIM_LIB* lib, const std::string& signature, const Message& m) {
  LsanPause pause;
  DKIM_STAT st = DKIM_STAT_OK;
  DKIM* d = dkim_verify(lib, reinterpret_cast<const u_char*>("VRFY"), nullptr, &st);
  if (d == nullptr) return "dkim_verify failed";
  Headers headers{{"DKIM-Signature", signature}};
  headers.insert(headers.end(), m.headers.begin(), m.headers.end());
  std::string body = m.body;
  std::string verdict = "ok";
  if (!feedHeaders(d, headers)) verdict = "headers refused";
  if (verdict == "ok" && !body.empty() && dkim_body(d, reinterpret_cast<u_char*>(body.data()), body.size()) != DKIM_STAT_OK) {
    verdict = "body refused";
  }
  if (verdict == "ok" && (st = dkim_eom(d, nullptr)) != DKIM_STAT_OK) {
    verdict = std::string(dkim_getresultstr(st)) + ": " + (dkim_geterror(d) ? dkim_geterror(d) : "");
  }
  dkim_free(d);
  return verdict;
}

Signed ourSign(const DkimLibrary& lib, const DkimEntry& key, const Message& m, size_t chunk) {
  Signed out;
  auto s = DkimSigner::start(lib, key);
  EXPECT_TRUE(s) << s.error().message;
  if (!s) return out;
  for (const auto& [name, value] : m.headers) EXPECT_TRUE((*s)->header(name, value));
  EXPECT_TRUE((*s)->endOfHeaders());
  const auto* p = reinterpret_cast<const unsigned char*>(m.body.data());
  for (size_t i = 0; i < m.body.size(); i += chunk) EXPECT_TRUE((*s)->body(p + i, std::min(chunk, m.body.size() - i)));
  auto sig = (*s)->finish();
  EXPECT_TRUE(sig) << sig.error().message;
  if (!sig) return out;
  out.header = *sig;
  out.header_hash = hex((*s)->headerHash().data(), (*s)->headerHash().size());
  size_t bh = sig->find("bh=");
  std::string b64 = sig->substr(bh + 3, sig->find(';', bh) - bh - 3);
  auto raw = base64Decode(b64);
  out.body_hash = raw ? toHex(*raw) : "";
  return out;
}

std::vector<Message> messages() {
  const Headers basic{{"From", "Shop <news@shop.example>"},
                      {"To", "bob@example.net"},
                      {"Subject", "Your order"},
                      {"Date", "Wed, 25 Nov 2026 10:00:00 +0000"},
                      {"Message-ID", "<1@shop.example>"}};
  std::string mb;
  for (int i = 0; mb.size() < (1 << 20); ++i) mb += "line " + std::to_string(i) + " of a 1 MB \t body  \r\n";
  std::vector<Message> out{
      {"plain", basic, "Hello\r\n"},
      {"folded headers",
       {{"From", "\"A very long display name that goes on\"\n\t<news@shop.example>"},
        {"To", "bob@example.net,\n carol@example.net,\n\tdave@example.net"},
        {"Subject", "a subject\n\tfolded\n  twice"}},
       "x\r\n"},
      {"trailing whitespace in headers",
       {{"From", "news@shop.example  \t"}, {"Subject", "spaces at the end   "}, {"To", "\tbob@example.net \t "}},
       "body\r\n"},
      {"empty body", basic, ""},
      {"body without final CRLF", basic, "first\r\nlast line without newline", true},
      {"whitespace-only lines", basic, "a\r\n \t \r\n\t\r\nb  \t\r\n  \r\n\r\n \r\n"},
      {"trailing empty lines", basic, "x\r\n\r\n\r\n\r\n"},
      {"8-bit", {{"From", "Caf\xc3\xa9 <news@shop.example>"}, {"Subject", "r\xc3\xa9sum\xc3\xa9 \xe9\xff"}},
       "caf\xc3\xa9 \xe9\xff\xfe\r\n\x80\x81  \xc3\xa9\t\r\n"},
      {"1 MB body", basic, mb},
      {"oversigned headers only From", {{"From", "news@shop.example"}}, "x\r\n"},
      {"repeated headers",
       {{"Received", "from a"},
        {"To", "one@example.net"},
        {"From", "news@shop.example"},
        {"To", "two@example.net"},
        {"Subject", "first"},
        {"Received", "from b"},
        {"Subject", "second"},
        {"Cc", "c1@example.net"},
        {"Cc", "c2@example.net"}},
       "x\r\n"},
      {"odd-case names",
       {{"FROM", "news@shop.example"},
        {"sUbJeCt", "case"},
        {"message-id", "<2@shop.example>"},
        {"CONTENT-TYPE", "text/plain; charset=utf-8"},
        {"Mime-Version", "1.0"}},
       "x\r\n"},
      {"every signed header (long h=)",
       {{"From", "news@shop.example"},
        {"Reply-To", "help@shop.example"},
        {"To", "bob@example.net"},
        {"Cc", "carol@example.net"},
        {"Subject", "all of them"},
        {"Date", "Wed, 25 Nov 2026 10:00:00 +0000"},
        {"Message-ID", "<3@shop.example>"},
        {"MIME-Version", "1.0"},
        {"Content-Type", "text/plain; charset=utf-8"},
        {"Content-Transfer-Encoding", "8bit"},
        {"Feedback-ID", "c1:shop:mailgate"},
        {"List-Unsubscribe", "<https://shop.example/u/1>, <mailto:u@shop.example>"},
        {"List-Unsubscribe-Post", "List-Unsubscribe=One-Click"},
        {"X-Mailer", "not signed"}},
       "x\r\n"},
      {"whitespace runs", {{"From", "a  \t b <news@shop.example>"}, {"Subject", "x\t\ty  z"}},
       "a  \t b\r\n\t lead\r\n  \r\nend\t\r\n"},
      {"header starting with a fold", {{"From", "news@shop.example"}, {"Subject", "\n\tstarts folded"}}, "x\r\n"},
  };
  return out;
}

struct Key {
  DkimEntry entry;  // parsed
  std::string pem;
};

Key makeKey(const char* algo, const std::string& domain, const std::string& selector) {
  auto k = generateDkimKey(algo);
  EXPECT_TRUE(k);
  txtRecords()[selector] = *dkimTxtValue(*k);
  Key out{DkimEntry{domain, selector, dkimAlgoName(k->algo), "", "", k->pem, k->bits}, k->pem};
  EXPECT_TRUE(parseDkimPrivateKey(out.entry));
  return out;
}

TEST(DkimOpendkim, SameSignaturesAsLibopendkimAndItVerifiesThem) {
  const uint64_t now = static_cast<uint64_t>(time(nullptr));
  std::vector<Key> keys{makeKey("rsa2048", "shop.example", "s1"), makeKey("ed25519", "shop.example", "e1"),
                        makeKey("rsa2048", "a-rather-long-subdomain.of-a-long-domain.example", "selector-2026-11"),
                        makeKey("ed25519", "a-rather-long-subdomain.of-a-long-domain.example", "ed-2026-11")};
  int compared = 0;
  for (uint64_t expire : {uint64_t{0}, uint64_t{604800}}) {
    DkimLibrary ours(expire, [now] { return now; });
    DKIM_LIB* ref = referenceLibrary(now, expire, false);
    DKIM_LIB* ref_fixcrlf = referenceLibrary(now, expire, true);
    ASSERT_NE(ref, nullptr);
    ASSERT_NE(ref_fixcrlf, nullptr);
    for (const auto& m : messages()) {
      DKIM_LIB* r = m.no_final_crlf ? ref_fixcrlf : ref;
      for (const auto& key : keys) {
        SCOPED_TRACE(m.name + " / " + key.entry.algo + " " + key.entry.domain + " x=" + std::to_string(expire));
        Signed want = referenceSign(r, key.pem, key.entry, m);
        ASSERT_FALSE(want.header.empty());
        std::vector<size_t> chunks{1, 7, m.body.size() + 1};
        if (m.body.size() > 100000) chunks = {7, 65536, m.body.size()};
        for (size_t chunk : chunks) {
          Signed got = ourSign(ours, key.entry, m, chunk);
          EXPECT_EQ(got.body_hash, want.body_hash) << "chunk " << chunk;
          EXPECT_EQ(got.header_hash, want.header_hash) << "chunk " << chunk;
          EXPECT_EQ(got.header, want.header) << "chunk " << chunk;
          EXPECT_EQ(referenceVerify(r, got.header, m), "ok") << got.header;
          ++compared;
        }
      }
    }
    dkim_close(ref);
    dkim_close(ref_fixcrlf);
  }
  EXPECT_GE(compared, 2 * 15 * 4 * 3);
}

// A signature over something else fails libopendkim's verifier: the
// comparison above is not vacuous.
TEST(DkimOpendkim, TheVerifierRejectsAChangedMessage) {
  Key key = makeKey("ed25519", "shop.example", "e9");
  DkimLibrary ours;
  DKIM_LIB* ref = referenceLibrary(static_cast<uint64_t>(time(nullptr)), 0, false);
  Message m = messages()[0];
  Signed got = ourSign(ours, key.entry, m, 7);
  EXPECT_EQ(referenceVerify(ref, got.header, m), "ok");
  m.body = "Hello!\r\n";
  EXPECT_NE(referenceVerify(ref, got.header, m), "ok");
  m = messages()[0];
  m.headers[2].second = "Your order (changed)";
  EXPECT_NE(referenceVerify(ref, got.header, m), "ok");
  dkim_close(ref);
}

}  // namespace

// dkim_keys_test.cc — DKIM key generation and import (RSA PKCS#1/PKCS#8,
// Ed25519), refusal of short and broken keys, TXT values and zone records
// split into 255-byte strings; key storage against a real redis-server;
// signing with parsed keys, and no heap growth over 1,000 signatures.
#include "mailgate/dkim_keys.h"

#include <cstdio>
#include <malloc.h>

#include "mailgate/admin.h"
#include "mailgate/crypto.h"
#include "redis_server.h"

using namespace mailgate;

namespace {

std::string opensslKey(const std::string& args) {
  std::string cmd = "openssl " + args + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while (p && (n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  if (p) pclose(p);
  return out;
}

TEST(DkimKeys, GeneratesRsaAndEd25519) {
  auto rsa = generateDkimKey("rsa2048");
  ASSERT_TRUE(rsa) << rsa.error().message;
  EXPECT_EQ(rsa->algo, DkimAlgo::Rsa);
  EXPECT_EQ(rsa->bits, 2048);
  EXPECT_TRUE(rsa->pem.starts_with("-----BEGIN PRIVATE KEY-----"));
  auto txt = dkimTxtValue(*rsa);
  ASSERT_TRUE(txt);
  EXPECT_TRUE(txt->starts_with("v=DKIM1; k=rsa; p=MIIBIjAN")) << *txt;  // SubjectPublicKeyInfo of RSA-2048

  auto ed = generateDkimKey("ed25519");
  ASSERT_TRUE(ed);
  EXPECT_EQ(ed->algo, DkimAlgo::Ed25519);
  auto edtxt = dkimTxtValue(*ed);
  ASSERT_TRUE(edtxt);
  ASSERT_TRUE(edtxt->starts_with("v=DKIM1; k=ed25519; p="));
  EXPECT_EQ(base64Decode(edtxt->substr(22))->size(), 32u);  // the raw public key (RFC 8463)

  EXPECT_EQ(generateDkimKey("dsa").error().message, "unknown algorithm \"dsa\": expected rsa2048 or ed25519");
}

TEST(DkimKeys, ImportsPkcs1AndPkcs8AndRefusesBadKeys) {
  std::string pkcs1 = opensslKey("genrsa -traditional 1024");
  ASSERT_TRUE(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----")) << pkcs1;
  auto k1 = readDkimKey(pkcs1);
  ASSERT_TRUE(k1) << k1.error().message;
  EXPECT_EQ(k1->bits, 1024);
  EXPECT_TRUE(k1->pem.starts_with("-----BEGIN PRIVATE KEY-----"));  // stored as PKCS#8
  auto k8 = readDkimKey(opensslKey("genpkey -algorithm ed25519"));
  ASSERT_TRUE(k8);
  EXPECT_EQ(k8->algo, DkimAlgo::Ed25519);
  EXPECT_EQ(readDkimKey(opensslKey("genrsa 512")).error().message, "RSA key of 512 bits: DKIM needs at least 1024");
  EXPECT_EQ(readDkimKey("-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n").error().message,
            "not a PEM private key");
  EXPECT_EQ(readDkimKey("").error().message, "not a PEM private key");
}

TEST(DkimKeys, ZoneRecordSplitsLongValues) {
  std::string value(600, 'a');
  std::string rec = dkimZoneRecord("s1", "example.com", value);
  EXPECT_EQ(rec, "s1._domainkey.example.com. IN TXT ( \"" + std::string(255, 'a') + "\" \"" + std::string(255, 'a') +
                     "\" \"" + std::string(90, 'a') + "\" )");
  EXPECT_EQ(dkimZoneRecord("ed", "x.example", "v=DKIM1"), "ed._domainkey.x.example. IN TXT ( \"v=DKIM1\" )");
}

class DkimStore : public mailgate::testing::RedisFixture {};

TEST_F(DkimStore, PutListRemoveAndVersion) {
  RedisConn redis(server_->settings());
  ASSERT_TRUE(redis.command({"FLUSHALL"}));
  StoreKeys keys("mg:");
  Admin admin(redis, keys);
  auto rsa = generateDkimKey("rsa2048");
  auto ed = generateDkimKey("ed25519");
  ASSERT_TRUE(admin.putDkimKey("Shop.Example", "rsa1", *rsa, ""));
  ASSERT_TRUE(admin.putDkimKey("shop.example", "ed1", *ed, ""));
  auto list = admin.listDkimKeys("shop.example");
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ(admin.listDkimKeys("")->size(), 2u);
  EXPECT_EQ(replyString(redis.command({"GET", "mg:dkim:version"})->get()), "2");
  EXPECT_EQ(admin.putDkimKey("shop.example", "bad selector", *rsa, "").error().message, "bad selector \"bad selector\"");
  EXPECT_EQ(admin.putDkimKey("shop.example", "s", *rsa, "ghost").error().message, "unknown account \"ghost\"");
  ASSERT_TRUE(admin.removeDkimKey("shop.example", "rsa1"));
  EXPECT_EQ(admin.removeDkimKey("shop.example", "rsa1").error().message,
            "no DKIM key for shop.example with selector rsa1");
  ASSERT_TRUE(admin.removeDkimKey("shop.example", ""));
  EXPECT_EQ(admin.listDkimKeys("shop.example").error().message, "no DKIM key for shop.example");
  EXPECT_TRUE(admin.listDkimKeys("")->empty());
}

}  // namespace

#include "mailgate/dkim_signer.h"
#include "mailgate/rules_message.h"

namespace {

TEST(DkimSigning, KeySelectionWalksParentsThenDefault) {
  std::map<std::string, std::vector<DkimEntry>> loaded;
  loaded["shop.example.com"] = {DkimEntry{"shop.example.com", "s1", "rsa-sha256", "", "", "", 2048}};
  loaded["example.com"] = {DkimEntry{"example.com", "s2", "rsa-sha256", "", "", "", 2048},
                           DkimEntry{"example.com", "e2", "ed25519-sha256", "", "", "", 256}};
  loaded["default.example"] = {DkimEntry{"default.example", "d", "rsa-sha256", "", "", "", 2048}};
  loaded["empty.example"] = {};
  SigningAccount who{"a", {"shop.example.com", "example.com", "default.example"}};
  EXPECT_EQ(selectSigningKeys("News.Shop.Example.com", loaded, "", who)[0].selector, "s1");
  EXPECT_EQ(selectSigningKeys("other.example.com", loaded, "", who).size(), 2u);
  EXPECT_EQ(selectSigningKeys("x.empty.example", loaded, "default.example", who)[0].domain, "default.example");
  EXPECT_EQ(selectSigningKeys("", loaded, "default.example", who)[0].selector, "d");
  EXPECT_TRUE(selectSigningKeys("nowhere.test", loaded, "", who).empty());
}

// Keys owned by an account sign only its mail; keys no account owns sign
// only for an account given their domain (its sending domain, dkim_domain,
// dkim_default_domain). Account b owns example.com and its key; account a
// was given shop.example.com: a's mail is never signed d=example.com.
TEST(DkimSigning, KeysOfAnotherAccountOrOfADomainNotGivenAreNeverUsed) {
  std::map<std::string, std::vector<DkimEntry>> loaded;
  loaded["example.com"] = {DkimEntry{"example.com", "b1", "rsa-sha256", "b", "", "", 2048}};
  loaded["parent.example"] = {DkimEntry{"parent.example", "p1", "rsa-sha256", "", "", "", 2048}};
  loaded["default.example"] = {DkimEntry{"default.example", "d", "rsa-sha256", "", "", "", 2048}};
  loaded["b.example"] = {DkimEntry{"b.example", "bd", "rsa-sha256", "b", "", "", 2048},
                         DkimEntry{"b.example", "ad", "rsa-sha256", "a", "", "", 2048}};
  SigningAccount a{"a", {"shop.example.com", "news.parent.example", "default.example", "b.example"}};
  SigningAccount b{"b", {"example.com"}};
  EXPECT_TRUE(selectSigningKeys("shop.example.com", loaded, "", a).empty());
  EXPECT_EQ(selectSigningKeys("shop.example.com", loaded, "", b)[0].selector, "b1");  // b owns it
  EXPECT_EQ(selectSigningKeys("shop.example.com", loaded, "default.example", a)[0].selector, "d");
  EXPECT_EQ(selectSigningKeys("news.parent.example", loaded, "default.example", a)[0].selector, "d");
  EXPECT_TRUE(selectSigningKeys("news.parent.example", loaded, "default.example", b).empty());
  // A default signing domain whose keys another account owns: only the owner's own keys.
  EXPECT_TRUE(selectSigningKeys("", loaded, "example.com", a).empty());
  auto keys = selectSigningKeys("", loaded, "b.example", a);
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0].selector, "ad");
}

TEST(DkimSigning, SignsWhatTheHeaderEditsProduce) {
  HeaderList received{{"From", "Sales"}, {"X-Campaign-Id", "c1"}, {"Subject", "s"}, {"X-Campaign-Id", "c2"}};
  std::vector<HeaderEdit> edits{{HeaderEdit::Kind::Change, "X-Campaign-Id", 2, ""},
                                {HeaderEdit::Kind::Change, "X-Campaign-Id", 1, ""},
                                {HeaderEdit::Kind::Change, "From", 1, "\"Sales\" <d@shop.example>"},
                                {HeaderEdit::Kind::Add, "Feedback-ID", 1, "c1:shop:mailgate"}};
  HeaderList expected{{"From", "\"Sales\" <d@shop.example>"}, {"Subject", "s"}, {"Feedback-ID", "c1:shop:mailgate"}};
  EXPECT_EQ(applyHeaderEdits(received, edits), expected);
}

TEST(DkimSigning, ProducesASignatureHeaderForBothAlgorithms) {
  DkimLibrary lib;
  ASSERT_TRUE(lib.ok());
  for (const char* algo : {"rsa2048", "ed25519"}) {
    auto key = generateDkimKey(algo);
    DkimEntry entry{"shop.example", "s1", dkimAlgoName(key->algo), "", "", key->pem, key->bits};
    ASSERT_TRUE(parseDkimPrivateKey(entry));
    EXPECT_TRUE(entry.pem.empty());  // wiped once parsed
    auto signer = DkimSigner::start(lib, entry);
    ASSERT_TRUE(signer) << signer.error().message;
    ASSERT_TRUE((*signer)->header("From", "a@shop.example"));
    ASSERT_TRUE((*signer)->header("Subject", "folded\n\tsubject"));
    ASSERT_TRUE((*signer)->endOfHeaders());
    std::string body = "hello\r\n";
    ASSERT_TRUE((*signer)->body(reinterpret_cast<const unsigned char*>(body.data()), body.size()));
    auto sig = (*signer)->finish();
    ASSERT_TRUE(sig) << sig.error().message;
    EXPECT_NE(sig->find(std::string("a=") + dkimAlgoName(key->algo)), std::string::npos) << *sig;
    EXPECT_NE(sig->find("d=shop.example"), std::string::npos);
    EXPECT_EQ(sig->find('\r'), std::string::npos);  // folded with LF for the milter
  }
}

TEST(DkimSigning, BrokenKeysAreErrorsNotCrashes) {
  DkimLibrary lib;
  DkimEntry bad{"shop.example", "s1", "rsa-sha256", "", "", "-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----\n", 0};
  auto parsed = parseDkimPrivateKey(bad);
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().message, "key shop.example/s1: unreadable private key (not a PEM rsa-sha256 key)");
  auto signer = DkimSigner::start(lib, bad);
  ASSERT_FALSE(signer);
  EXPECT_EQ(signer.error().message, parsed.error().message);
  // An Ed25519 key stored as rsa-sha256 is refused too.
  auto ed = generateDkimKey("ed25519");
  DkimEntry mislabelled{"shop.example", "s2", "rsa-sha256", "", "", ed->pem, 256};
  EXPECT_FALSE(parseDkimPrivateKey(mislabelled));
  // So is a short RSA key written to Redis without mailgatectl.
  DkimEntry short_key{"shop.example", "s3", "rsa-sha256", "", "", opensslKey("genpkey -algorithm rsa -pkeyopt rsa_keygen_bits:512"), 512};
  auto refused = parseDkimPrivateKey(short_key);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, "key shop.example/s3: RSA key of 512 bits, at least 1024 needed");
}

TEST(DkimSigning, AMessageWithoutFromIsAnError) {
  DkimLibrary lib;
  auto key = generateDkimKey("ed25519");
  DkimEntry entry{"shop.example", "s1", dkimAlgoName(key->algo), "", "", key->pem, key->bits};
  ASSERT_TRUE(parseDkimPrivateKey(entry));
  auto signer = DkimSigner::start(lib, entry);
  ASSERT_TRUE(signer);
  ASSERT_TRUE((*signer)->header("Subject", "no from"));
  auto eoh = (*signer)->endOfHeaders();
  ASSERT_FALSE(eoh);
  EXPECT_EQ(eoh.error().message, "signing shop.example/s1: required header \"from\" not found");
  EXPECT_FALSE((*signer)->finish());
}

// The key is parsed once and a signer frees all it holds: after 1,000
// dual signatures with the same cached keys the heap has not grown (the
// libopendkim signer leaked ~270 bytes per signature). glibc's counters are
// not those of AddressSanitizer's allocator: skipped under it.
TEST(DkimSigning, NoHeapGrowthOverAThousandSignatures) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "mallinfo2 does not see AddressSanitizer's heap";
#endif
  DkimLibrary lib(604800);
  std::vector<DkimEntry> keys;
  for (const char* algo : {"rsa2048", "ed25519"}) {
    auto key = generateDkimKey(algo);
    keys.push_back(DkimEntry{"shop.example", "s1", dkimAlgoName(key->algo), "", "", key->pem, key->bits});
    ASSERT_TRUE(parseDkimPrivateKey(keys.back()));
  }
  std::string body(8192, 'x');
  body += "\r\n";
  auto signOnce = [&] {
    for (const auto& k : keys) {
      auto s = DkimSigner::start(lib, k);
      ASSERT_TRUE(s);
      ASSERT_TRUE((*s)->header("From", "a@shop.example"));
      ASSERT_TRUE((*s)->header("Subject", "heap"));
      ASSERT_TRUE((*s)->endOfHeaders());
      ASSERT_TRUE((*s)->body(reinterpret_cast<const unsigned char*>(body.data()), body.size()));
      ASSERT_TRUE((*s)->finish());
    }
  };
  for (int i = 0; i < 50; ++i) signOnce();  // OpenSSL's lazily built tables
  malloc_trim(0);
  size_t before = mallinfo2().uordblks;
  for (int i = 0; i < 1000; ++i) signOnce();
  malloc_trim(0);
  size_t after = mallinfo2().uordblks;
  EXPECT_LT(after, before + 4096) << "heap grew by " << (after - before) << " bytes";
}

}  // namespace

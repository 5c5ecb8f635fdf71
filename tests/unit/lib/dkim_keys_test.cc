// dkim_keys_test.cc — DKIM key generation and import (RSA PKCS#1/PKCS#8,
// Ed25519), refusal of short and broken keys, TXT values and zone records
// split into 255-byte strings; key storage against a real redis-server.
#include "mailgate/dkim_keys.h"

#include <cstdio>

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

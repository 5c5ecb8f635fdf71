// auth_proto_test.cc — the Dovecot auth protocol server against a fake
// Authenticator: handshake, PLAIN and LOGIN with and without initial
// response, Postfix's and Exim's request shapes, escapes and bad input.
#include "mailgate/auth_proto.h"

#include <gtest/gtest.h>

#include "mailgate/crypto.h"

using namespace mailgate;

namespace {

class FakeAuth : public Authenticator {
 public:
  AuthResult authenticate(std::string_view username, std::string_view password, std::string_view ip) override {
    calls++;
    last_user = username;
    last_ip = ip;
    if (password == "good") return AuthResult{AuthResult::Kind::Ok, "acme/k1", "", false};
    if (password == "down") return AuthResult{AuthResult::Kind::Fail, "", "internal service error", true};
    if (password == "drop") return AuthResult{AuthResult::Kind::Disconnect, "", "", true};
    return AuthResult{AuthResult::Kind::Fail, "", "wrong api key", false};
  }
  int calls = 0;
  std::string last_user, last_ip;
};

class AuthProto : public ::testing::Test {
 protected:
  AuthProto() : session(fake, 42, 7, "0123456789abcdef0123456789abcdef") {}
  std::string send(std::string_view line, AuthSession::Next expect = AuthSession::Next::Continue) {
    std::string out;
    EXPECT_EQ(session.onLine(line, out), expect) << line;
    return out;
  }
  void hello(const char* version = "VERSION\t1\t0") {
    send(version);
    send("CPID\t1234");
  }
  static std::string plain(std::string_view authzid, std::string_view authcid, std::string_view password) {
    std::string m(authzid);
    m += '\0';
    m += authcid;
    m += '\0';
    m += password;
    return base64Encode(m);
  }
  FakeAuth fake;
  AuthSession session;
};

TEST_F(AuthProto, HandshakeHasMechsBeforeSpidAndEndsWithDone) {
  EXPECT_EQ(session.handshake(),
            "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t42\nCUID\t7\n"
            "COOKIE\t0123456789abcdef0123456789abcdef\nDONE\n");
}

TEST_F(AuthProto, PostfixPlainWithInitialResponse) {
  hello();
  std::string out = send("AUTH\t7\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=192.0.2.10\tsecured\tresp=" +
                         plain("", "", "good"));
  EXPECT_EQ(out, "OK\t7\tuser=acme/k1\n");
  EXPECT_EQ(fake.last_user, "");
  EXPECT_EQ(fake.last_ip, "192.0.2.10");
}

TEST_F(AuthProto, PlainWithoutInitialResponseGetsEmptyCont) {
  hello();
  EXPECT_EQ(send("AUTH\t1\tPLAIN\tservice=smtp\trip=192.0.2.10"), "CONT\t1\t\n");
  EXPECT_EQ(send("CONT\t1\t" + plain("acme", "acme", "good")), "OK\t1\tuser=acme/k1\n");
  EXPECT_EQ(fake.last_user, "acme");
}

TEST_F(AuthProto, EximEmptyRespFromOldClientMeansAbsent) {
  hello("VERSION\t1\t1");
  EXPECT_EQ(send("AUTH\t1\tPLAIN\tservice=smtp\trip=192.0.2.10\tlip=127.0.0.1\tnologin\tresp="), "CONT\t1\t\n");
}

TEST_F(AuthProto, EqualsSignIsAnEmptyInitialResponse) {
  hello();
  EXPECT_EQ(send("AUTH\t3\tPLAIN\tservice=smtp\tresp=="), "FAIL\t3\treason=invalid PLAIN message\n");
  EXPECT_EQ(fake.calls, 0);
}

TEST_F(AuthProto, LoginChallengesAndBlankUsername) {
  hello();
  EXPECT_EQ(send("AUTH\t2\tLOGIN\tservice=smtp\trip=192.0.2.10"), "CONT\t2\tVXNlcm5hbWU6\n");
  EXPECT_EQ(send("CONT\t2\t"), "CONT\t2\tUGFzc3dvcmQ6\n");  // empty username, ask for the password
  EXPECT_EQ(send("CONT\t2\t" + base64Encode("good")), "OK\t2\tuser=acme/k1\n");
  EXPECT_EQ(fake.last_user, "");
}

TEST_F(AuthProto, LoginWithInitialResponseIsTheUsername) {
  hello();
  EXPECT_EQ(send("AUTH\t4\tLOGIN\tservice=smtp\tresp=" + base64Encode("acme")), "CONT\t4\tUGFzc3dvcmQ6\n");
  EXPECT_EQ(send("CONT\t4\t" + base64Encode("bad")), "FAIL\t4\treason=wrong api key\n");
  EXPECT_EQ(fake.last_user, "acme");
}

TEST_F(AuthProto, FailuresAndTemporaryFailures) {
  hello();
  EXPECT_EQ(send("AUTH\t5\tPLAIN\tresp=" + plain("", "", "down")),
            "FAIL\t5\treason=internal service error\tcode=temp_fail\n");
  EXPECT_EQ(send("AUTH\t6\tPLAIN\tresp=" + plain("", "", "drop"), AuthSession::Next::Close), "");
}

TEST_F(AuthProto, BadInput) {
  hello();
  EXPECT_EQ(send("AUTH\t8\tPLAIN\tresp=!!!!"), "FAIL\t8\treason=invalid base64 data\n");
  EXPECT_EQ(send("AUTH\t9\tPLAIN\tresp=" + base64Encode("no-nuls")), "FAIL\t9\treason=invalid PLAIN message\n");
  EXPECT_EQ(send("AUTH\t10\tPLAIN\tresp=" + plain("other", "acme", "good")),
            "FAIL\t10\treason=authorization identity not supported\n");
  EXPECT_EQ(send("AUTH\t11\tCRAM-MD5\tresp="), "FAIL\t11\treason=unsupported authentication mechanism\n");
  EXPECT_EQ(send("AUTH\t12\tPLAIN\tresp=" + base64Encode(std::string(2000, 'x'))),
            "FAIL\t12\treason=invalid base64 data\n");
  EXPECT_EQ(send("CONT\t99\tAAAA"), "FAIL\t99\treason=unknown authentication request\n");
  send("AUTH\t0\tPLAIN", AuthSession::Next::Close);
  EXPECT_EQ(fake.calls, 0);
}

TEST_F(AuthProto, ProtocolViolationsClose) {
  send("AUTH\t1\tPLAIN", AuthSession::Next::Close);  // before VERSION
  AuthSession other(fake, 1, 1, "c");
  std::string out;
  EXPECT_EQ(other.onLine("VERSION\t2\t0", out), AuthSession::Next::Close);
  AuthSession third(fake, 1, 1, "c");
  third.onLine("VERSION\t1\t0", out);
  EXPECT_EQ(third.onLine("BOGUS", out), AuthSession::Next::Close);
  EXPECT_EQ(third.onLine("AUTH\tx\tPLAIN", out), AuthSession::Next::Close);
}

TEST_F(AuthProto, AbandonedRequestsDoNotLockOutTheConnection) {
  // Postfix never reports a client's "*", bad base64 or disconnect: 100
  // abandoned AUTH LOGINs must not keep the next client from authenticating.
  hello();
  for (int id = 1; id <= 100; ++id) {
    EXPECT_EQ(send("AUTH\t" + std::to_string(id) + "\tLOGIN\tservice=smtp"),
              "CONT\t" + std::to_string(id) + "\tVXNlcm5hbWU6\n");
  }
  EXPECT_EQ(send("AUTH\t101\tPLAIN\tresp=" + plain("", "", "good")), "OK\t101\tuser=acme/k1\n");
  // The oldest were dropped; the newest are still answered.
  EXPECT_EQ(send("CONT\t1\t" + base64Encode("acme")), "FAIL\t1\treason=unknown authentication request\n");
  EXPECT_EQ(send("CONT\t100\t" + base64Encode("acme")), "CONT\t100\tUGFzc3dvcmQ6\n");
  EXPECT_EQ(send("CONT\t100\t" + base64Encode("good")), "OK\t100\tuser=acme/k1\n");
  EXPECT_EQ(send("AUTH\t100\tPLAIN\tresp=" + plain("", "", "good")), "OK\t100\tuser=acme/k1\n");
}

TEST_F(AuthProto, PendingRequestsExpire) {
  AuthSession quick(fake, 1, 1, "c", std::chrono::seconds(0));
  std::string out;
  quick.onLine("VERSION\t1\t2", out);
  quick.onLine("AUTH\t1\tLOGIN\tservice=smtp", out);
  quick.onLine("AUTH\t2\tLOGIN\tservice=smtp", out);
  out.clear();
  quick.onLine("CONT\t1\t" + base64Encode("acme"), out);
  EXPECT_EQ(out, "FAIL\t1\treason=unknown authentication request\n");
  out.clear();
  quick.onLine("AUTH\t2\tLOGIN\tservice=smtp", out);  // a duplicate id while pending is refused
  EXPECT_EQ(out, "FAIL\t2\treason=authentication request in progress\n");
}

TEST_F(AuthProto, Escapes) {
  EXPECT_EQ(unescapeAuthField("a\001tb\001nc\0011d\001re\0010f"), std::string("a\tb\nc\001d\re\0f", 11));
  EXPECT_EQ(escapeAuthField(std::string("a\tb\nc\001\0", 7)), "a\001tb\001nc\0011\0010");
  hello();
  std::string out = send("AUTH\t13\tPLAIN\trip=192.0.2.1\001t\tresp=" + plain("", "", "good"));
  EXPECT_EQ(fake.last_ip, "192.0.2.1\t");
}

TEST(PlainDecoding, SplitsAtNuls) {
  auto p = decodePlain(std::string("z\0c\0p", 5));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->authzid, "z");
  EXPECT_EQ(p->authcid, "c");
  EXPECT_EQ(p->password, "p");
  EXPECT_FALSE(decodePlain("abc"));
  EXPECT_FALSE(decodePlain(std::string("a\0b", 3)));
  EXPECT_FALSE(decodePlain(std::string("a\0b\0c\0d", 7)));
  EXPECT_TRUE(decodePlain(std::string("\0\0", 2)));
}

}  // namespace

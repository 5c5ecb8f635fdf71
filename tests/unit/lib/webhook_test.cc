// webhook_test.cc — webhook payloads, the signature (known answer computed
// independently with `openssl dgst -sha256 -hmac`), URL checks, the retry
// schedule (doubling from the initial delay, capped, jittered), stream ids,
// and which addresses a webhook may reach: the range table, the open-socket
// decision, and POSTs to a local listener that counts its connections.
#include "mailgate/webhook.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include "http_receiver.h"

namespace mailgate {
namespace {

using std::chrono::milliseconds;

TEST(Webhook, SignatureKnownAnswer) {
  // printf '1700000000.{"events":[]}' | openssl dgst -sha256 -hmac whsec_test
  EXPECT_EQ(webhookSignature("whsec_test", 1700000000, R"({"events":[]})"),
            "t=1700000000,v1=4f6f9b7a41398ad124e52a1320534f978e522923f3f2b2724e31d7a9dbf78a7f");
  EXPECT_EQ(webhookBody({}), R"({"events":[]})");
}

TEST(Webhook, EventJson) {
  Event e;
  e.id = "1700000000123-0";
  e.time_ms = 1700000000123;
  e.queue_id = "1A2B3C4D5E";
  e.account = "acme";
  e.key_id = "k1";
  e.campaign = "spring";
  e.letter_id = "L7";
  e.from = "news@example.org";
  e.rcpt = "bob@example.net";
  e.message_id = "<m1@example.org>";
  e.status = "bounced";
  e.code = "5.1.1";
  e.text = "host said: 550 5.1.1 \xff bad utf-8";
  auto j = webhookEventJson(e);
  EXPECT_EQ(j["id"], "1700000000123-0");
  EXPECT_EQ(j["event"], "bounced");
  EXPECT_EQ(j["time"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(j["timestamp"], 1700000000123);
  EXPECT_EQ(j["queue_id"], "1A2B3C4D5E");
  EXPECT_EQ(j["message_id"], "<m1@example.org>");
  EXPECT_EQ(j["campaign_id"], "spring");
  EXPECT_EQ(j["letter_id"], "L7");
  EXPECT_EQ(j["recipient"], "bob@example.net");
  EXPECT_EQ(j["code"], "5.1.1");
  // A remote reply with invalid UTF-8 does not break the batch.
  std::string body = webhookBody({e});
  EXPECT_NE(body.find("\"text\":\"host said: 550 5.1.1 \xef\xbf\xbd bad utf-8\""), std::string::npos) << body;
}

TEST(Webhook, RetryScheduleDoublesAndCaps) {
  milliseconds initial(1000), max(600000);
  EXPECT_EQ(retryDelay(1, initial, max, 0.5), milliseconds(1000));
  EXPECT_EQ(retryDelay(2, initial, max, 0.5), milliseconds(2000));
  EXPECT_EQ(retryDelay(5, initial, max, 0.5), milliseconds(16000));
  EXPECT_EQ(retryDelay(10, initial, max, 0.5), milliseconds(512000));
  EXPECT_EQ(retryDelay(11, initial, max, 0.5), milliseconds(600000));
  EXPECT_EQ(retryDelay(1000, initial, max, 0.5), milliseconds(600000));
  EXPECT_EQ(retryDelay(1, initial, max, 0.0), milliseconds(800));
  EXPECT_LT(retryDelay(1, initial, max, 0.999), milliseconds(1200));
}

TEST(Webhook, Urls) {
  EXPECT_TRUE(validWebhookUrl("https://hooks.example.com/mailgate"));
  EXPECT_TRUE(validWebhookUrl("http://127.0.0.1:8080/"));
  EXPECT_FALSE(validWebhookUrl("ftp://example.com/"));
  EXPECT_FALSE(validWebhookUrl("https://"));
  EXPECT_FALSE(validWebhookUrl("https:///path"));
  EXPECT_FALSE(validWebhookUrl("https://a b/"));
  EXPECT_FALSE(validWebhookUrl("example.com"));
  EXPECT_EQ(streamIdMillis("1700000000123-5"), 1700000000123);
}

TEST(Webhook, StreamIdsCompareAsNumbers) {
  EXPECT_LT(StreamId::parse("9-0"), StreamId::parse("10-0"));
  EXPECT_LT(StreamId::parse("5-18446744073709551615"), StreamId::parse("6-0"));
  EXPECT_EQ(StreamId::parse("6-0").previous().toString(), "5-18446744073709551615");
  EXPECT_EQ(StreamId::parse("6-3").previous().toString(), "6-2");
  EXPECT_EQ(StreamId::parse("0-0").previous().toString(), "0-0");
  EXPECT_EQ(StreamId::parse("junk").toString(), "0-0");
  EXPECT_EQ(StreamId::parse("7-").toString(), "0-0");
}

TEST(WebhookAddress, NonPublicRanges) {
  const std::pair<const char*, const char*> table[] = {
      {"127.0.0.1", "loopback"},        {"127.255.0.9", "loopback"},
      {"::1", "loopback"},              {"::ffff:127.0.0.1", "loopback"},
      {"::ffff:7f00:1", "loopback"},    {"0.0.0.0", "unspecified"},
      {"0.1.2.3", "unspecified"},       {"::", "unspecified"},
      {"169.254.169.254", "link-local"}, {"::ffff:169.254.169.254", "link-local"},
      {"fe80::1", "link-local"},        {"febf::1", "link-local"},
      {"10.0.0.1", "private"},          {"10.255.255.255", "private"},
      {"172.16.0.1", "private"},        {"172.31.255.254", "private"},
      {"192.168.1.1", "private"},       {"::ffff:10.1.2.3", "private"},
      {"fc00::1", "unique-local"},      {"fdff:ffff::1", "unique-local"},
      {"100.64.0.1", "shared"},         {"100.127.255.255", "shared"},
      {"224.0.0.1", "multicast"},       {"239.255.255.250", "multicast"},
      {"ff02::1", "multicast"},         {"255.255.255.255", "reserved"},
      {"240.0.0.1", "reserved"},        {"192.0.2.10", "documentation"},
      {"2001:db8::1", "documentation"}, {"198.18.0.1", "reserved"},
      {"::127.0.0.1", "reserved"},      {"fec0::1", "site-local"},
      {"64:ff9b::7f00:1", "loopback"},  {"64:ff9b::a9fe:a9fe", "link-local"},
      {"2002:7f00:1::1", "loopback"},   {"2002:a00:1::1", "private"},
      {"2001::1", "reserved"},          {"64:ff9b:1::1", "private"},
      {"not an address", "invalid"},    {"10.0.0.0/8", "invalid"},
      // Public: the neighbours of the ranges, and ordinary addresses.
      {"8.8.8.8", ""},                  {"172.15.255.255", ""},
      {"172.32.0.0", ""},               {"100.63.255.255", ""},
      {"100.128.0.0", ""},              {"169.253.255.255", ""},
      {"11.0.0.0", ""},                 {"192.167.255.255", ""},
      {"223.255.255.255", ""},          {"2606:4700::1111", ""},
      {"::ffff:8.8.8.8", ""},           {"64:ff9b::808:808", ""},
      {"2002:808:808::1", ""},          {"fbff::1", ""},
  };
  for (const auto& [address, range] : table) EXPECT_EQ(nonPublicRange(address), range) << address;
}

TEST(WebhookAddress, AllowListOpensNonPublicNetworks) {
  std::vector<Cidr> allow{*parseCidr("127.0.0.0/8"), *parseCidr("fd00:1::/32")};
  EXPECT_TRUE(webhookAddressAllowed("8.8.8.8", {}));
  EXPECT_FALSE(webhookAddressAllowed("127.0.0.1", {}));
  EXPECT_TRUE(webhookAddressAllowed("127.0.0.1", allow));
  EXPECT_TRUE(webhookAddressAllowed("::ffff:127.0.0.1", allow));  // mapped forms match IPv4 networks
  EXPECT_FALSE(webhookAddressAllowed("::1", allow));
  EXPECT_TRUE(webhookAddressAllowed("fd00:1::5", allow));
  EXPECT_FALSE(webhookAddressAllowed("fd00:2::5", allow));
  EXPECT_FALSE(webhookAddressAllowed("10.0.0.1", allow));
  EXPECT_FALSE(webhookAddressAllowed("junk", allow));
}

TEST(WebhookAddress, OpenSocketDecisionOnSocketAddresses) {
  auto v4 = [](const char* text) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(443);
    inet_pton(AF_INET, text, &a.sin_addr);
    return a;
  };
  auto v6 = [](const char* text) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(443);
    inet_pton(AF_INET6, text, &a.sin6_addr);
    return a;
  };
  std::vector<Cidr> none, loopback{*parseCidr("127.0.0.0/8")};
  for (const char* refused : {"127.0.0.1", "169.254.169.254", "10.1.1.1", "0.0.0.0", "100.64.1.1"}) {
    sockaddr_in a = v4(refused);
    EXPECT_FALSE(webhookPeerAllowed(reinterpret_cast<sockaddr*>(&a), none)) << refused;
  }
  for (const char* refused : {"::1", "::", "::ffff:127.0.0.1", "fe80::1", "fc00::1", "ff02::1"}) {
    sockaddr_in6 a = v6(refused);
    EXPECT_FALSE(webhookPeerAllowed(reinterpret_cast<sockaddr*>(&a), none)) << refused;
  }
  sockaddr_in pub = v4("93.184.216.34"), lo = v4("127.0.0.1");
  sockaddr_in6 pub6 = v6("2606:4700::1111"), mapped = v6("::ffff:127.0.0.1");
  EXPECT_TRUE(webhookPeerAllowed(reinterpret_cast<sockaddr*>(&pub), none));
  EXPECT_TRUE(webhookPeerAllowed(reinterpret_cast<sockaddr*>(&pub6), none));
  EXPECT_TRUE(webhookPeerAllowed(reinterpret_cast<sockaddr*>(&lo), loopback));
  EXPECT_TRUE(webhookPeerAllowed(reinterpret_cast<sockaddr*>(&mapped), loopback));
  sockaddr other{};
  other.sa_family = AF_UNIX;
  EXPECT_FALSE(webhookPeerAllowed(&other, loopback));
}

TEST(WebhookAddress, LiteralHostsInUrls) {
  std::vector<Cidr> none, loopback{*parseCidr("127.0.0.0/8")};
  const std::pair<const char*, const char*> table[] = {
      {"http://127.0.0.1:6379/", "loopback"},
      {"http://169.254.169.254/latest/meta-data/", "link-local"},
      {"https://user:pw@10.0.0.5/hook", "private"},
      {"http://[::1]:8080/", "loopback"},
      {"http://[::ffff:127.0.0.1]/", "loopback"},
      {"http://[fe80::1%25eth0]/", "link-local"},
      {"http://127.1/", "loopback"},
      {"http://2130706433/", "loopback"},
      {"http://0x7f.0.0.1/", "loopback"},
      {"http://localhost:8080/x", "loopback"},
      {"http://LOCALHOST./x", "loopback"},
      {"http://api.localhost/x", "loopback"},
      {"http://0.0.0.0/", "unspecified"},
      {"https://hooks.example.com/mail", ""},
      {"https://93.184.216.34/hook", ""},
      {"https://10.example.com/", ""},  // a name: checked when connecting
  };
  for (const auto& [url, range] : table) EXPECT_EQ(refusedUrlHost(url, none), range) << url;
  EXPECT_EQ(refusedUrlHost("http://127.0.0.1:6379/", loopback), "");
  EXPECT_EQ(refusedUrlHost("http://localhost/", loopback), "");
  EXPECT_EQ(refusedUrlHost("http://[::1]/", loopback), "loopback");
}

TEST(Webhook, LoggableUrlKeepsHostAndPathPrefixOnly) {
  EXPECT_EQ(loggableUrl("https://hooks.example.com/mail"), "https://hooks.example.com/mail");
  EXPECT_EQ(loggableUrl("https://hooks.example.com/mail?token=s3cret"), "https://hooks.example.com/mail...");
  EXPECT_EQ(loggableUrl("https://hooks.slack.com/services/T000/B000/XXXXsecret"),
            "https://hooks.slack.com/services...");
  EXPECT_EQ(loggableUrl("https://u:pw@h.example:8443/a#frag"), "https://h.example:8443/a...");
  EXPECT_EQ(loggableUrl("https://h.example?k=v"), "https://h.example...");
  EXPECT_EQ(loggableUrl("https://h.example"), "https://h.example");
  EXPECT_EQ(loggableUrl("https://h.example/0123456789abcdefghijklmnopqrstuvwxyz"),
            "https://h.example/0123456789a...");
  EXPECT_EQ(loggableUrl("https://h.example/hooks12345"), "https://h.example/hooks12345");
  EXPECT_EQ(loggableUrl("not a url"), "not a ur...");
}

TEST(Webhook, NonPublicEndpointGetsNoConnectionAndOneFixedError) {
  testing::HttpReceiver listener;
  Event e;
  e.id = "1-0";
  e.status = "test";
  // Refused: no connection at all, the same text as for a closed port.
  WebhookClient refusing(milliseconds(2000), {});
  for (const std::string& url : {listener.url("/hook?token=s3cret"), std::string("http://127.0.0.1:1/closed"),
                                 "http://localhost:" + std::to_string(listener.port()) + "/",
                                 "http://[::ffff:127.0.0.1]:" + std::to_string(listener.port()) + "/"}) {
    HttpResult r = refusing.post(url, "s", {e});
    EXPECT_EQ(r.status, 0) << url;
    EXPECT_EQ(r.error, kWebhookAddressRefused) << url;
  }
  EXPECT_EQ(listener.accepts(), 0u);
  EXPECT_EQ(listener.requests(), 0u);
  // With its network allowed the same endpoint is reached.
  WebhookClient allowing(milliseconds(2000), {*parseCidr("127.0.0.0/8")});
  HttpResult ok = allowing.post(listener.url("/hook?token=s3cret"), "s", {e});
  EXPECT_TRUE(ok.ok()) << ok.error;
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(listener.accepts(), 1u);
  EXPECT_EQ(listener.ids(), std::vector<std::string>{"1-0"});
  // A narrower list applies from the next POST on, also to a host it is connected to.
  allowing.setAllowNetworks({});
  EXPECT_EQ(allowing.post(listener.url(), "s", {e}).error, kWebhookAddressRefused);
}

TEST(Webhook, UnreachableEndpointIsAnErrorNotACrash) {
  WebhookClient client(milliseconds(500), {*parseCidr("127.0.0.0/8")});
  HttpResult r = client.post("http://127.0.0.1:1/none", "s", {});
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.error.empty());
  EXPECT_NE(r.error, kWebhookAddressRefused);
}

}  // namespace
}  // namespace mailgate

// webhook_test.cc — webhook payloads, the signature (known answer computed
// independently with `openssl dgst -sha256 -hmac`), URL checks and the
// retry schedule (doubling from the initial delay, capped, jittered).
#include "mailgate/webhook.h"

#include <gtest/gtest.h>

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

TEST(Webhook, UnreachableEndpointIsAnErrorNotACrash) {
  WebhookClient client(milliseconds(500));
  HttpResult r = client.post("http://127.0.0.1:1/none", "s", {});
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.error.empty());
}

}  // namespace
}  // namespace mailgate

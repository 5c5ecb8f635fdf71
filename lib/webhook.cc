// webhook.cc — webhook payloads and signatures (nlohmann::json, OpenSSL
// HMAC), the retry schedule, and the libcurl client that posts them.
#include "mailgate/webhook.h"

#include <algorithm>
#include <mutex>

#include <curl/curl.h>

#include "mailgate/crypto.h"
#include "mailgate/limits.h"

namespace mailgate {

nlohmann::json webhookEventJson(const Event& e) {
  return {{"id", e.id},
          {"event", e.status},
          {"time", utcTimestamp(e.time_ms)},
          {"timestamp", e.time_ms},
          {"queue_id", e.queue_id},
          {"message_id", e.message_id},
          {"account", e.account},
          {"key_id", e.key_id},
          {"campaign_id", e.campaign},
          {"letter_id", e.letter_id},
          {"from", e.from},
          {"recipient", e.rcpt},
          {"code", e.code},
          {"text", e.text}};
}

std::string webhookBody(const std::vector<Event>& events) {
  nlohmann::json list = nlohmann::json::array();
  for (const Event& e : events) list.push_back(webhookEventJson(e));
  // Invalid UTF-8 from a remote server's reply text is replaced, not fatal.
  return nlohmann::json{{"events", list}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string webhookSignature(const std::string& secret, int64_t unix_time, const std::string& body) {
  std::string t = std::to_string(unix_time);
  return "t=" + t + ",v1=" + hmacSha256Hex(secret, t + "." + body);
}

std::chrono::milliseconds retryDelay(unsigned attempt, std::chrono::milliseconds initial,
                                     std::chrono::milliseconds max, double jitter01) {
  double delay = static_cast<double>(initial.count());
  for (unsigned i = 1; i < attempt && delay < static_cast<double>(max.count()); ++i) delay *= 2;
  delay = std::min(delay, static_cast<double>(max.count()));
  return std::chrono::milliseconds(static_cast<int64_t>(delay * (0.8 + 0.4 * jitter01)));
}

int64_t streamIdMillis(const std::string& id) { return std::strtoll(id.c_str(), nullptr, 10); }

bool validWebhookUrl(const std::string& url) {
  for (const char* scheme : {"https://", "http://"}) {
    if (url.starts_with(scheme)) {
      std::string rest = url.substr(std::string_view(scheme).size());
      return !rest.empty() && rest.front() != '/' && url.find_first_of(" \t\r\n") == std::string::npos;
    }
  }
  return false;
}

namespace {

size_t discardBody(char*, size_t size, size_t n, void*) { return size * n; }

void curlGlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

WebhookClient::WebhookClient(std::chrono::milliseconds timeout) : timeout_(timeout) {
  curlGlobalInit();
  curl_ = curl_easy_init();
}

WebhookClient::~WebhookClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

HttpResult WebhookClient::post(const std::string& url, const std::string& secret, const std::vector<Event>& events) {
  HttpResult result;
  CURL* c = static_cast<CURL*>(curl_);
  if (c == nullptr) {
    result.error = "cannot initialise libcurl";
    return result;
  }
  std::string body = webhookBody(events);
  int64_t now = nowMillis() / 1000;
  std::string signature = "X-Mailgate-Signature: " + webhookSignature(secret, now, body);
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, signature.c_str());
  headers = curl_slist_append(headers, "Expect:");
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_guard(headers, curl_slist_free_all);

  char error[CURL_ERROR_SIZE] = "";
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "mailgate-tracker/1");
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_.count()));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_.count()));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discardBody);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    result.error = error[0] != '\0' ? error : curl_easy_strerror(rc);
    return result;
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &result.status);
  if (result.status < 200 || result.status > 299) result.error = "HTTP " + std::to_string(result.status);
  return result;
}

}  // namespace mailgate

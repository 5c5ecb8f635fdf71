// webhook.cc — webhook payloads and signatures (nlohmann::json, OpenSSL
// HMAC), the retry schedule, and the libcurl multi client that posts them.
#include "mailgate/webhook.h"

#include <algorithm>
#include <cstdio>
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
  return jsonText({{"events", list}});
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

struct WebhookClient::Transfer {
  std::string tag, body, signature;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  char error[CURL_ERROR_SIZE] = "";
  ~Transfer() {
    curl_easy_cleanup(easy);
    curl_slist_free_all(headers);
  }
};

WebhookClient::WebhookClient(std::chrono::milliseconds timeout) : timeout_(timeout) {
  curlGlobalInit();
  multi_ = curl_multi_init();
}

WebhookClient::~WebhookClient() {
  for (auto& t : transfers_) curl_multi_remove_handle(static_cast<CURLM*>(multi_), t->easy);
  transfers_.clear();
  curl_multi_cleanup(static_cast<CURLM*>(multi_));
}

void WebhookClient::start(const std::string& tag, const std::string& url, const std::string& secret,
                          const std::vector<Event>& events) {
  auto t = std::make_unique<Transfer>();
  t->tag = tag;
  t->body = webhookBody(events);
  t->signature = "X-Mailgate-Signature: " + webhookSignature(secret, nowMillis() / 1000, t->body);
  t->headers = curl_slist_append(t->headers, "Content-Type: application/json");
  t->headers = curl_slist_append(t->headers, t->signature.c_str());
  t->headers = curl_slist_append(t->headers, "Expect:");
  t->easy = curl_easy_init();
  CURL* c = t->easy;
  if (c == nullptr || multi_ == nullptr) {
    std::snprintf(t->error, sizeof t->error, "cannot initialise libcurl");
  } else {
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, t->body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->body.size()));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "mailgate-tracker/1");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_.count()));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_.count()));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discardBody);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(c, CURLOPT_PRIVATE, t.get());
    if (curl_multi_add_handle(static_cast<CURLM*>(multi_), c) != CURLM_OK) {
      std::snprintf(t->error, sizeof t->error, "cannot start the transfer");
      curl_easy_cleanup(c);
      t->easy = nullptr;
    }
  }
  transfers_.push_back(std::move(t));
}

std::vector<std::pair<std::string, HttpResult>> WebhookClient::run(std::chrono::milliseconds wait) {
  std::vector<std::pair<std::string, HttpResult>> done;
  // Transfers that could not even start end at once.
  for (auto it = transfers_.begin(); it != transfers_.end();) {
    if ((*it)->easy != nullptr) {
      ++it;
      continue;
    }
    done.push_back({(*it)->tag, HttpResult{0, (*it)->error}});
    it = transfers_.erase(it);
  }
  CURLM* m = static_cast<CURLM*>(multi_);
  if (transfers_.empty() || m == nullptr) return done;
  int running = 0;
  curl_multi_perform(m, &running);
  if (running > 0 && wait.count() > 0) {
    curl_multi_poll(m, nullptr, 0, static_cast<int>(wait.count()), nullptr);
    curl_multi_perform(m, &running);
  }
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(m, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    Transfer* t = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
    HttpResult r;
    if (msg->data.result != CURLE_OK) {
      r.error = t->error[0] != '\0' ? t->error : curl_easy_strerror(msg->data.result);
    } else {
      curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &r.status);
      if (r.status < 200 || r.status > 299) r.error = "HTTP " + std::to_string(r.status);
    }
    curl_multi_remove_handle(m, msg->easy_handle);
    done.push_back({t->tag, std::move(r)});
    std::erase_if(transfers_, [&](const std::unique_ptr<Transfer>& p) { return p.get() == t; });
  }
  return done;
}

HttpResult WebhookClient::post(const std::string& url, const std::string& secret, const std::vector<Event>& events) {
  start("post", url, secret, events);
  while (true) {
    for (auto& [tag, result] : run(std::chrono::milliseconds(200))) {
      if (tag == "post") return result;
    }
  }
}

}  // namespace mailgate

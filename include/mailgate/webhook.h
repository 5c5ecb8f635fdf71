// webhook.h — what a customer's webhook receives: the JSON of events, the
// X-Mailgate-Signature header (HMAC-SHA256 over "<t>.<body>"), the retry
// schedule, and a libcurl POST client (the only I/O here).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "mailgate/events.h"

namespace mailgate {

// {"id","event","time","timestamp","queue_id","message_id","account","key_id",
//  "campaign_id","letter_id","from","recipient","code","text"}
nlohmann::json webhookEventJson(const Event& event);

// {"events":[...]}
std::string webhookBody(const std::vector<Event>& events);

// "t=<unix>,v1=<hex HMAC-SHA256(secret, t + "." + body)>"
std::string webhookSignature(const std::string& secret, int64_t unix_time, const std::string& body);

// Delay before retry number `attempt` (1 = first retry): initial × 2^(attempt-1),
// capped at `max`, times a jitter factor in [0.8, 1.2) from `jitter01` in [0, 1).
std::chrono::milliseconds retryDelay(unsigned attempt, std::chrono::milliseconds initial,
                                     std::chrono::milliseconds max, double jitter01);

// The time an event was written, from its stream id "<ms>-<seq>".
int64_t streamIdMillis(const std::string& id);

struct HttpResult {
  long status = 0;    // HTTP status, 0 when no response arrived
  std::string error;  // transport error or "HTTP 500", empty on 2xx
  bool ok() const { return error.empty(); }
};

// Webhook POSTs over one libcurl multi handle: many transfers at once (one
// per account), connections reused between posts. HTTPS peers and host
// names are verified, redirects are not followed, only http(s) URLs.
class WebhookClient {
 public:
  explicit WebhookClient(std::chrono::milliseconds timeout);
  ~WebhookClient();
  WebhookClient(const WebhookClient&) = delete;
  WebhookClient& operator=(const WebhookClient&) = delete;

  // Starts POSTing `events` to `url`, signed with `secret` now; `tag` comes
  // back with the result.
  void start(const std::string& tag, const std::string& url, const std::string& secret,
             const std::vector<Event>& events);
  // Moves the transfers on for up to `wait` and returns those that ended.
  std::vector<std::pair<std::string, HttpResult>> run(std::chrono::milliseconds wait);
  size_t inFlight() const { return transfers_.size(); }

  // One POST, waiting for its result (mailgatectl webhook test).
  HttpResult post(const std::string& url, const std::string& secret, const std::vector<Event>& events);

 private:
  struct Transfer;
  void* multi_;
  std::chrono::milliseconds timeout_;
  std::vector<std::unique_ptr<Transfer>> transfers_;
};

// A webhook URL must be http:// or https:// and have a host.
bool validWebhookUrl(const std::string& url);

}  // namespace mailgate

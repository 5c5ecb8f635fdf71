// webhook.h — what a customer's webhook receives: the JSON of events, the
// X-Mailgate-Signature header (HMAC-SHA256 over "<t>.<body>"), the retry
// schedule, which addresses a webhook may reach (public ones, and the admin's
// webhook_allow_networks), and a libcurl POST client (the only I/O here).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "mailgate/cidr.h"
#include "mailgate/events.h"

struct sockaddr;

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

// A stream id "<ms>-<seq>", compared as numbers ("9-0" < "10-0").
struct StreamId {
  uint64_t ms = 0, seq = 0;
  // "0-0" for text that is not an id.
  static StreamId parse(std::string_view text);
  std::string toString() const;
  // The id just before this one ("5-0" -> "4-18446744073709551615"); "0-0" stays.
  StreamId previous() const;
  auto operator<=>(const StreamId&) const = default;
};

struct HttpResult {
  long status = 0;    // HTTP status, 0 when no response arrived
  std::string error;  // transport error or "HTTP 500", empty on 2xx
  bool ok() const { return error.empty(); }
};

// The error of a POST whose host has an address webhooks may not reach: one
// text whatever happened (no port scans through the error texts).
constexpr const char* kWebhookAddressRefused = "address not allowed: not a public address (webhook_allow_networks)";

// The special-purpose range `address` (IPv4 or IPv6 text) is in, such as
// "loopback", "private", "link-local", "unique-local", "multicast",
// "unspecified", "shared" (100.64/10), "documentation" or "reserved";
// IPv4-mapped, IPv4-compatible, NAT64 and 6to4 forms count as the IPv4
// address they carry. Empty for a public address, "invalid" for no address.
std::string nonPublicRange(std::string_view address);

// May a webhook connect to `address`: a public one, or one in `allow`?
bool webhookAddressAllowed(std::string_view address, const std::vector<Cidr>& allow);
// The same for a socket address (AF_INET, AF_INET6; other families never):
// the decision of the client's open-socket callback, made for every address
// libcurl connects to, after name resolution (no DNS rebinding around it).
bool webhookPeerAllowed(const sockaddr* address, const std::vector<Cidr>& allow);

// When the host of `url` is an address literal (any form libcurl accepts:
// 127.1, 2130706433, [::ffff:127.0.0.1]) or localhost that webhooks may not
// reach, its range (as nonPublicRange, "loopback" for localhost); else empty.
// Host names are checked when connecting.
std::string refusedUrlHost(const std::string& url, const std::vector<Cidr>& allow);

// The URL as logged: scheme, host, port and the first path segment (at most
// 12 characters with its "/"), "..." when anything was left out; never the
// query, the rest of the path or user info, which may carry tokens.
std::string loggableUrl(const std::string& url);

// Webhook POSTs over one libcurl multi handle: many transfers at once (one
// per account), connections reused between posts. HTTPS peers and host
// names are verified, redirects are not followed, only http(s) URLs, no
// proxy; connections only to addresses webhookPeerAllowed accepts.
class WebhookClient {
 public:
  WebhookClient(std::chrono::milliseconds timeout, std::vector<Cidr> allow);
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
  // The non-public networks POSTs may reach from the next transfer on
  // (connections kept open from before are not reused).
  void setAllowNetworks(std::vector<Cidr> allow);

  // One POST, waiting for its result (mailgatectl webhook test).
  HttpResult post(const std::string& url, const std::string& secret, const std::vector<Event>& events);

  struct Transfer;  // one POST in flight (webhook.cc)

 private:
  void* multi_;
  std::chrono::milliseconds timeout_;
  std::vector<Cidr> allow_;
  bool stale_connections_ = false;  // kept open under another allow list
  std::vector<std::unique_ptr<Transfer>> transfers_;
};

// A webhook URL must be http:// or https:// and have a host.
bool validWebhookUrl(const std::string& url);

}  // namespace mailgate

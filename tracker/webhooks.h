// webhooks.h — the webhook dispatcher: a consumer in the Redis consumer
// group "webhooks" on the events stream. Events of accounts with a webhook
// are POSTed in signed batches (one POST in flight per account, all accounts
// at once over libcurl's multi interface, so a slow endpoint delays no other
// account), acknowledged only after a 2xx, retried with exponential backoff
// and jitter, and moved to the account's dead-letter
// stream once older than webhook_retry_for (entries trimmed from the stream
// before delivery, pending or not yet read: to webhook:dead:trimmed, with a
// log line). Entries held in memory are
// re-claimed every 30 s so other trackers do not take them; entries of a
// consumer silent for 5 minutes are taken over (XAUTOCLAIM).
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "mailgate/config.h"
#include "mailgate/live_config.h"
#include "mailgate/events.h"
#include "mailgate/redis.h"
#include "mailgate/webhook.h"

namespace mailgate::tracker {

class WebhookDispatcher {
 public:
  WebhookDispatcher(const LiveConfig& live, std::string consumer);
  void run(const std::atomic<bool>& stop);

 private:
  using Clock = std::chrono::steady_clock;
  struct Target {
    std::string url, secret;
    Clock::time_point loaded;
  };
  struct Queue {
    std::deque<Event> events;
    size_t in_flight = 0;  // the first in_flight events are being POSTed
    unsigned attempt = 0;
    Clock::time_point next_try{};
    std::string url, last_error;
  };

  bool ensureGroup();
  // Reads entries: our own pending ones ("0") at start, then new ones (">").
  bool readEntries(const std::string& from, unsigned block_ms);
  void takeOver();
  void refreshClaims();
  // Queues an event for its account's webhook, acknowledges one without,
  // and notes an entry that was trimmed while pending ([id, nil]).
  void route(Event event);
  const Target* target(const std::string& account);
  // Starts a POST for every account that is due and has none in flight.
  void startReady();
  // Acknowledges a delivered batch, or schedules the retry.
  void finish(const std::string& account, const HttpResult& result);
  void deadLetter(const std::string& account, Queue& q);
  // Logs and dead-letters (webhook:dead:trimmed) the pending entries that
  // the stream's cap removed before they were delivered, and acknowledges
  // them, in one transaction; kept for the next round when it fails.
  void deadLetterTrimmed();
  // Sent before each read of new entries: dead-letters (one record per
  // range, webhook:dead:trimmed) the entries trimmed before the group read
  // them (Redis 7 and later); its reply is logged.
  Command unreadTrimmedCheck() const;
  void logUnreadTrimmed(const redisReply* reply);
  Command deadLetterEntry(const std::string& stream, const std::string& id, unsigned attempts,
                          const std::string& error, const std::string& event) const;
  Command xack(const std::vector<std::string>& ids) const;
  bool ack(const std::vector<std::string>& ids);
  unsigned waitMillis() const;

  const LiveConfig& live_;
  std::shared_ptr<const Config> config_;  // refreshed from live_ every round
  std::string consumer_;
  std::string stream_;
  RedisConn redis_;
  WebhookClient http_;
  std::map<std::string, Target> targets_;
  std::map<std::string, Queue> queues_;
  std::set<std::string> held_;  // stream ids in queues_
  std::vector<std::string> to_ack_;
  // Pending ids whose entries were trimmed away (a rescan and XAUTOCLAIM may
  // both report one).
  std::set<std::string> trimmed_;
  bool dead_letter_failing_ = false;  // logged once until a write succeeds
  std::mt19937_64 rng_{std::random_device{}()};
  Clock::time_point last_takeover_{};
  bool rescan_pending_ = true;
  bool redis_down_ = false;  // logged once per outage
};

}  // namespace mailgate::tracker

// webhooks.h — the webhook dispatcher: a consumer in the Redis consumer
// group "webhooks" on the events stream. Events of accounts with a webhook
// are POSTed in signed batches (one POST in flight per account, all accounts
// at once over libcurl's multi interface), acknowledged only after a 2xx,
// retried with exponential backoff and jitter, and moved to the account's
// dead-letter stream once older than webhook_retry_for. Memory is bounded per
// account and in all: events beyond the caps stay pending in Redis (the
// group's pending list) and are read back when their account has room, so a
// dead endpoint delays no other account. Entries trimmed from the stream
// before delivery go to webhook:dead:trimmed; held entries are re-claimed
// every 30 s, those of a consumer silent for 5 minutes are taken over.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <optional>
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

  // Where an account's events wait in Redis: every pending entry of ours
  // after `after` may be one of its events not held; all of them up to
  // `after` are held or acknowledged. `refilling` while they are read back.
  struct Backlog {
    StreamId after;
    bool refilling = false;
  };
  enum class Scan { Error, More, End };

  bool ensureGroup();
  // Logs a failed read once per outage (and recreates a missing group).
  void readFailed(const std::string& error);
  // Reads one batch of new entries (">").
  bool readNew(unsigned block_ms);
  // Reads back up to `rounds` batches of our own pending entries after
  // `after`, routing each; stops early when `next` says so.
  Scan scanPending(StreamId after, unsigned rounds, const std::function<bool(const Event&)>& next);
  // Reads back the events of accounts that wait in Redis and have room.
  void refill();
  void takeOver();
  void refreshClaims();
  // Queues an event for its account's webhook (or leaves it pending in
  // Redis when the caps are reached), acknowledges one without, and notes an
  // entry that was trimmed while pending ([id, nil]).
  void route(Event event);
  // May another event of `account` be held in memory now? At the global cap
  // the account holding the most gives one back when it holds more.
  bool mayHold(const std::string& account);
  size_t cap() const;
  size_t heldBy(const std::string& account) const;
  // The account holding the most events it could give back (not in flight).
  std::map<std::string, Queue>::iterator largestQueue();
  // Notes that `id` of `account` stays pending in Redis, not held (logged
  // when the account starts to wait there because it reached a cap).
  void leavePending(const std::string& account, const std::string& id, bool capped = true);
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
  std::map<std::string, Backlog> backlog_;  // one per account with events left pending
  std::vector<std::string> to_ack_;
  // Pending ids whose entries were trimmed away (a rescan and XAUTOCLAIM may
  // both report one).
  std::set<std::string> trimmed_;
  bool dead_letter_failing_ = false;  // logged once until a write succeeds
  std::mt19937_64 rng_{std::random_device{}()};
  Clock::time_point last_takeover_{};
  // Our own pending entries are read back after this id at start (a few
  // batches per round, so new entries are read meanwhile).
  std::optional<StreamId> rescan_ = StreamId{};
  // The newest entry read so far (new, or by the rescan to its end): a failed
  // read of new entries rescans after it.
  StreamId last_new_;
  bool redis_down_ = false;  // logged once per outage
};

}  // namespace mailgate::tracker

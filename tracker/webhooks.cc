// webhooks.cc — the webhook dispatcher loop (see webhooks.h): consumer-group
// reads, per-account queues with caps and backoff (events beyond the caps
// left pending in Redis and read back later), batches, acknowledgements,
// dead letters (also of entries trimmed away, pending or unread), claim
// refresh and take-over of a dead consumer's entries.
#include "webhooks.h"

#include <algorithm>
#include <thread>

#include "mailgate/log.h"
#include "mailgate/store.h"

namespace mailgate::tracker {
namespace {

constexpr size_t kReadCount = 500;
constexpr unsigned kRescanRounds = 20;  // batches of our pending entries read back per round at start
constexpr unsigned kRefillRounds = 4;   // per account and round
constexpr auto kTargetTtl = std::chrono::seconds(5);
constexpr auto kClaimRefresh = std::chrono::seconds(30);
constexpr auto kTakeOverIdle = std::chrono::minutes(5);
constexpr unsigned kMaxWaitMs = 1000;
constexpr int kDeadLetterMaxLen = 10000;

// Finds, atomically, the entries the stream's cap removed before the group
// read them: nothing at or before the group's last-delivered id is left in
// the stream, and Redis counted more entries added than the group read plus
// those left. Dead-letters that range once and moves the group's read
// counter (XGROUP SETID ... ENTRIESREAD) past it, so the same loss is never
// counted again. Needs Redis 7 (entries-read). KEYS: events stream,
// dead-letter stream; ARGV: group, time, dead-letter cap. Returns
// {from, to, count} or nil. Sent with EVAL in the pipeline of each read of
// new entries (no NOSCRIPT round trip that would let the read go first).
constexpr const char* kUnreadTrimmedLua = R"lua(
local function field(t, name)
  for i = 1, #t, 2 do if t[i] == name then return t[i + 1] end end
end
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local stream = redis.call('XINFO', 'STREAM', KEYS[1])
local group
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  if field(g, 'name') == ARGV[1] then group = g end
end
if not group then return false end
local read, length = field(group, 'entries-read'), field(stream, 'length')
if type(read) ~= 'number' then return false end
local lost = field(stream, 'entries-added') - read - length
local last = field(group, 'last-delivered-id')
if lost <= 0 or #redis.call('XREVRANGE', KEYS[1], last, '-', 'COUNT', 1) > 0 then return false end
local function split(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local ms, seq = split(last)
local from = string.format('%d-%d', ms, seq + 1)
local to = field(stream, 'last-generated-id')
if length > 0 then
  ms, seq = split(field(stream, 'first-entry')[1])
  to = seq > 0 and string.format('%d-%d', ms, seq - 1) or string.format('%d-18446744073709551615', ms - 1)
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'from', from, 'to', to, 'count', lost,
           'time', ARGV[2], 'error', 'trimmed-unread')
redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], last, 'ENTRIESREAD', read + lost)
return {from, to, lost}
)lua";

RedisSettings blockingSettings(const Config& config) {
  RedisSettings s = RedisSettings::fromConfig(config);
  s.timeout += std::chrono::milliseconds(kMaxWaitMs + 1000);  // BLOCK must end before the read timeout
  return s;
}

}  // namespace

WebhookDispatcher::WebhookDispatcher(const LiveConfig& live, std::string consumer)
    : live_(live),
      config_(live.get()),
      consumer_(std::move(consumer)),
      stream_(eventsStreamKey(*config_)),
      redis_(blockingSettings(*config_)),
      http_(config_->webhook_timeout, config_->webhook_allow_networks) {}

bool WebhookDispatcher::ensureGroup() {
  auto r = redis_.command({"XGROUP", "CREATE", stream_, kWebhookGroup, "$", "MKSTREAM"});
  if (r) {
    MG_LOG_INFO("webhooks: created consumer group %s on %s", kWebhookGroup, stream_.c_str());
    return true;
  }
  return r.error().message.find("BUSYGROUP") != std::string::npos;
}

void WebhookDispatcher::readFailed(const std::string& error) {
  if (error.find("NOGROUP") != std::string::npos) {
    ensureGroup();
  } else if (!redis_down_) {  // once per outage
    MG_LOG_WARN("webhooks: reading %s: %s; retrying", stream_.c_str(), error.c_str());
    redis_down_ = true;
  }
}

bool WebhookDispatcher::readNew(unsigned block_ms) {
  Command cmd{"XREADGROUP", "GROUP", kWebhookGroup, consumer_, "COUNT", std::to_string(kReadCount)};
  if (block_ms > 0) {
    cmd.push_back("BLOCK");
    cmd.push_back(std::to_string(block_ms));
  }
  cmd.insert(cmd.end(), {"STREAMS", stream_, ">"});
  // Before new entries are read: the check for entries trimmed unread, in
  // the same round trip.
  auto replies = redis_.pipeline({unreadTrimmedCheck(), cmd});
  const redisReply* r = replies ? replies->back().get() : nullptr;
  std::string error = !replies ? replies.error().message : r->type == REDIS_REPLY_ERROR ? replyString(r) : "";
  if (!error.empty()) {
    readFailed(error);
    // Redis may have handed out entries whose reply was lost: they are
    // pending for us now, after the last new entry we saw (a rescan under
    // way reaches them anyway).
    if (!rescan_) rescan_ = last_new_;
    return false;
  }
  if (redis_down_) {
    MG_LOG_INFO("webhooks: reading %s again", stream_.c_str());
    redis_down_ = false;
  }
  logUnreadTrimmed(replies->front().get());
  const redisReply* entries = streamEntries(r);
  for (size_t i = 0; entries != nullptr && i < entries->elements; ++i) {
    Event e = eventFromEntry(entries->element[i]);
    last_new_ = std::max(last_new_, StreamId::parse(e.id));
    route(std::move(e));
  }
  return true;
}

WebhookDispatcher::Scan WebhookDispatcher::scanPending(StreamId after, unsigned rounds,
                                                       const std::function<bool(const Event&)>& next) {
  std::string from = after.toString();
  for (unsigned round = 0; round < rounds; ++round) {
    auto r = redis_.command({"XREADGROUP", "GROUP", kWebhookGroup, consumer_, "COUNT", std::to_string(kReadCount),
                             "STREAMS", stream_, from});
    std::string error = !r ? r.error().message : (*r)->type == REDIS_REPLY_ERROR ? replyString(r->get()) : "";
    if (!error.empty()) {
      readFailed(error);
      return Scan::Error;
    }
    const redisReply* entries = streamEntries(r->get());
    if (entries == nullptr || entries->elements == 0) return Scan::End;
    for (size_t i = 0; i < entries->elements; ++i) {
      Event e = eventFromEntry(entries->element[i]);
      from = e.id;
      route(e);
      if (!next(e)) return Scan::More;
    }
    if (entries->elements < kReadCount) return Scan::End;
  }
  return Scan::More;
}

size_t WebhookDispatcher::cap() const {
  return static_cast<size_t>(std::min(config_->webhook_max_held_per_account, config_->webhook_max_held));
}

size_t WebhookDispatcher::heldBy(const std::string& account) const {
  auto it = queues_.find(account);
  return it == queues_.end() ? 0 : it->second.events.size();
}

std::map<std::string, WebhookDispatcher::Queue>::iterator WebhookDispatcher::largestQueue() {
  auto largest = queues_.end();
  for (auto it = queues_.begin(); it != queues_.end(); ++it) {
    const Queue& q = it->second;
    if (q.events.size() > q.in_flight && (largest == queues_.end() || q.events.size() > largest->second.events.size()))
      largest = it;
  }
  return largest;
}

bool WebhookDispatcher::mayHold(const std::string& account) {
  auto b = backlog_.find(account);
  if (b != backlog_.end() && !b->second.refilling) return false;  // its older events wait in Redis: first those
  size_t size = heldBy(account);
  if (size >= cap()) return false;
  if (held_.size() < config_->webhook_max_held) return true;
  // All accounts together hold the most allowed: the one holding the most
  // gives its newest event back to Redis, if it holds more than this one.
  auto largest = largestQueue();
  if (largest == queues_.end() || largest->second.events.size() <= size + 1) return false;
  std::string id = largest->second.events.back().id;
  largest->second.events.pop_back();
  held_.erase(id);
  leavePending(largest->first, id);
  return true;
}

void WebhookDispatcher::leavePending(const std::string& account, const std::string& id, bool capped) {
  StreamId before = StreamId::parse(id).previous();
  auto [it, fresh] = backlog_.try_emplace(account, Backlog{before});
  if (!fresh) {
    it->second.after = std::min(it->second.after, before);
    it->second.refilling = false;
    return;
  }
  if (!capped) return;
  MG_LOG_INFO("webhooks: %s: %zu events held in memory (webhook_max_held_per_account %zu, %zu of webhook_max_held "
              "%llu for all); later events wait pending in Redis",
              account.c_str(), heldBy(account), cap(), held_.size(),
              static_cast<unsigned long long>(config_->webhook_max_held));
}

void WebhookDispatcher::refill() {
  // An account is read back when it holds at most half its cap and there is
  // room (or another account holds more than it, see mayHold).
  std::vector<std::string> due;
  auto largest = largestQueue();
  size_t most = largest == queues_.end() ? 0 : largest->second.events.size();
  for (const auto& [account, _] : backlog_) {
    size_t size = heldBy(account);
    if (size <= cap() / 2 && (held_.size() < config_->webhook_max_held || most > size + 1)) due.push_back(account);
  }
  for (const auto& account : due) {
    auto b = backlog_.find(account);
    if (b == backlog_.end()) continue;
    b->second.refilling = true;
    Scan scan = scanPending(b->second.after, kRefillRounds, [&](const Event& e) {
      auto it = backlog_.find(account);
      if (it == backlog_.end() || !it->second.refilling) return false;  // full again
      it->second.after = StreamId::parse(e.id);  // everything of it up to here is held now
      return true;
    });
    b = backlog_.find(account);
    if (b == backlog_.end()) continue;
    if (scan == Scan::End && b->second.refilling) {
      backlog_.erase(b);
      MG_LOG_INFO("webhooks: %s: no more events wait in Redis", account.c_str());
    } else {
      b->second.refilling = false;
    }
    // While its endpoint fails, events read back that are already too old
    // are dead-lettered now, not after the next attempt.
    auto q = queues_.find(account);
    if (q != queues_.end() && q->second.attempt > 0 && q->second.in_flight == 0) deadLetter(account, q->second);
  }
}

const WebhookDispatcher::Target* WebhookDispatcher::target(const std::string& account) {
  auto now = Clock::now();
  auto it = targets_.find(account);
  if (it != targets_.end() && now - it->second.loaded < kTargetTtl) return &it->second;
  StoreKeys keys(config_->redis_prefix);
  auto r = redis_.command({"HMGET", keys.account(account), "webhook_url", "webhook_secret"});
  if (!r) return nullptr;
  Target t{replyString((*r)->element[0]), replyString((*r)->element[1]), now};
  targets_[account] = t;
  return &targets_[account];
}

void WebhookDispatcher::route(Event e) {
  // Read again (a rescan, a take-over): held, or delivered and not yet acknowledged.
  if (held_.count(e.id) || std::find(to_ack_.begin(), to_ack_.end(), e.id) != to_ack_.end()) return;
  if (e.status.empty()) {  // [id, nil]: trimmed from the stream while pending
    trimmed_.insert(e.id);
    return;
  }
  if (e.account.empty()) {
    to_ack_.push_back(e.id);
    return;
  }
  const Target* t = target(e.account);
  if (t == nullptr) {  // Redis trouble: leave it pending, read it again later
    leavePending(e.account, e.id, false);
    return;
  }
  if (t->url.empty()) {
    to_ack_.push_back(e.id);
    return;
  }
  if (!mayHold(e.account)) {
    leavePending(e.account, e.id);
    return;
  }
  held_.insert(e.id);
  queues_[e.account].events.push_back(std::move(e));
}

Command WebhookDispatcher::xack(const std::vector<std::string>& ids) const {
  Command cmd{"XACK", stream_, kWebhookGroup};
  cmd.insert(cmd.end(), ids.begin(), ids.end());
  return cmd;
}

bool WebhookDispatcher::ack(const std::vector<std::string>& ids) {
  if (ids.empty()) return true;
  auto r = redis_.command(xack(ids));
  if (!r && !redis_down_) MG_LOG_WARN("webhooks: XACK: %s", r.error().message.c_str());
  return r.ok();
}

Command WebhookDispatcher::deadLetterEntry(const std::string& stream, const std::string& id, unsigned attempts,
                                           const std::string& error, const std::string& event) const {
  return {"XADD", stream, "MAXLEN", "~", std::to_string(kDeadLetterMaxLen), "*", "id", id, "time",
          std::to_string(nowMillis()), "attempts", std::to_string(attempts), "error", error, "event", event};
}

void WebhookDispatcher::deadLetterTrimmed() {
  if (trimmed_.empty()) return;
  // The entries are gone, and with them their account: they go to one
  // dead-letter stream of their own, in one transaction with their XACK. A
  // refused or lost transaction leaves them all here for the next round
  // (ids named by XAUTOCLAIM are no longer pending in Redis).
  std::string dead = StoreKeys(config_->redis_prefix).webhookDeadTrimmed();
  std::vector<std::string> ids(trimmed_.begin(), trimmed_.end());
  std::vector<Command> cmds;
  for (const auto& id : ids) cmds.push_back(deadLetterEntry(dead, id, 0, "trimmed", ""));
  cmds.push_back(xack(ids));
  if (auto r = transaction(redis_, cmds); !r) {
    if (!dead_letter_failing_) {  // once until it works again
      MG_LOG_WARN("webhooks: dead-lettering trimmed events: %s; retrying", r.error().message.c_str());
      dead_letter_failing_ = true;
    }
    return;
  }
  dead_letter_failing_ = false;
  trimmed_.clear();
  MG_LOG_WARN("webhooks: %zu pending events (ids %s to %s) were trimmed from %s before their webhook took them; "
              "they are lost (ids in %s); raise events_maxlen, see mailgate.conf(5)",
              ids.size(), ids.front().c_str(), ids.back().c_str(), stream_.c_str(), dead.c_str());
}

Command WebhookDispatcher::unreadTrimmedCheck() const {
  return {"EVAL", kUnreadTrimmedLua, "2", stream_, StoreKeys(config_->redis_prefix).webhookDeadTrimmed(),
          kWebhookGroup, std::to_string(nowMillis()), std::to_string(kDeadLetterMaxLen)};
}

void WebhookDispatcher::logUnreadTrimmed(const redisReply* r) {
  if (r->type == REDIS_REPLY_ERROR) {  // e.g. out of memory for the dead letter: tried again next round
    if (!dead_letter_failing_) {
      MG_LOG_WARN("webhooks: checking %s for trimmed entries: %s; retrying", stream_.c_str(), replyString(r).c_str());
      dead_letter_failing_ = true;
    }
  } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
    MG_LOG_WARN("webhooks: events %s to %s (%s entries) were trimmed from %s before any webhook read them; they "
                "are lost (range in %s); raise events_maxlen, see mailgate.conf(5)",
                replyString(r->element[0]).c_str(), replyString(r->element[1]).c_str(),
                replyString(r->element[2]).c_str(), stream_.c_str(),
                StoreKeys(config_->redis_prefix).webhookDeadTrimmed().c_str());
  }
}

void WebhookDispatcher::deadLetter(const std::string& account, Queue& q) {
  int64_t cutoff = nowMillis() - config_->webhook_retry_for.count();
  std::vector<Command> cmds;
  std::vector<std::string> ids;
  StoreKeys keys(config_->redis_prefix);
  while (!q.events.empty() && streamIdMillis(q.events.front().id) < cutoff) {
    const Event& e = q.events.front();
    cmds.push_back(deadLetterEntry(keys.webhookDead(account), e.id, q.attempt, q.last_error,
                                   jsonText(webhookEventJson(e))));
    ids.push_back(e.id);
    q.events.pop_front();
  }
  if (ids.empty()) return;
  cmds.push_back(xack(ids));
  for (const auto& id : ids) held_.erase(id);
  if (auto r = checkedPipeline(redis_, cmds); !r) {
    MG_LOG_WARN("webhooks: dead-lettering for %s: %s", account.c_str(), r.error().message.c_str());
    // Still pending: they are read back and dead-lettered again.
    leavePending(account, *std::min_element(ids.begin(), ids.end(), [](const std::string& x, const std::string& y) {
                   return StreamId::parse(x) < StreamId::parse(y);
                 }),
                 false);
  } else {
    MG_LOG_WARN("webhooks: %zu events of account %s gave up after %u attempts (%s); see mailgatectl webhook failures",
                ids.size(), account.c_str(), q.attempt, q.last_error.c_str());
  }
}

void WebhookDispatcher::startReady() {
  auto now = Clock::now();
  for (auto it = queues_.begin(); it != queues_.end();) {
    const std::string& account = it->first;
    Queue& q = it->second;
    if (!q.events.empty() && q.in_flight == 0 && now >= q.next_try) {
      const Target* t = target(account);
      if (t != nullptr && t->url.empty()) {  // the webhook was removed meanwhile: nothing to deliver to
        for (const auto& e : q.events) {
          held_.erase(e.id);
          to_ack_.push_back(e.id);
        }
        q.events.clear();
        q.attempt = 0;
      } else if (t != nullptr) {
        q.in_flight = std::min<size_t>(q.events.size(), config_->webhook_batch_size);
        q.url = t->url;
        std::vector<Event> batch(q.events.begin(), q.events.begin() + static_cast<long>(q.in_flight));
        http_.start(account, t->url, t->secret, batch);
      }
    }
    it = q.events.empty() && q.attempt == 0 && q.in_flight == 0 ? queues_.erase(it) : std::next(it);
  }
}

void WebhookDispatcher::finish(const std::string& account, const HttpResult& res) {
  auto it = queues_.find(account);
  if (it == queues_.end()) return;
  Queue& q = it->second;
  size_t n = q.in_flight;
  q.in_flight = 0;
  if (res.ok()) {
    MG_LOG_INFO("webhooks: %s: %zu events delivered (HTTP %ld)", account.c_str(), n, res.status);
    for (size_t i = 0; i < n; ++i) {
      held_.erase(q.events[i].id);
      to_ack_.push_back(q.events[i].id);
    }
    q.events.erase(q.events.begin(), q.events.begin() + static_cast<long>(n));
    q.attempt = 0;
    q.next_try = Clock::now();
    return;
  }
  ++q.attempt;
  q.last_error = res.error;
  auto delay = retryDelay(q.attempt, config_->webhook_retry_initial, config_->webhook_retry_max,
                          std::uniform_real_distribution<double>(0.0, 1.0)(rng_));
  q.next_try = Clock::now() + delay;
  MG_LOG_WARN("webhooks: %s: POST %s failed (%s); attempt %u, next in %lld ms", account.c_str(),
              loggableUrl(q.url).c_str(), printable(res.error).c_str(), q.attempt,
              static_cast<long long>(delay.count()));
  deadLetter(account, q);
}

void WebhookDispatcher::refreshClaims() {
  // XCLAIM with JUSTID resets the idle time of the entries we still hold, so
  // another tracker's take-over never steals an entry that is only waiting
  // for its retry.
  std::vector<std::string> ids(held_.begin(), held_.end());
  for (size_t i = 0; i < ids.size(); i += 1000) {
    Command cmd{"XCLAIM", stream_, kWebhookGroup, consumer_, "0"};
    cmd.insert(cmd.end(), ids.begin() + static_cast<long>(i),
               ids.begin() + static_cast<long>(std::min(ids.size(), i + 1000)));
    cmd.push_back("JUSTID");
    if (auto r = redis_.command(cmd); !r) return;
  }
}

void WebhookDispatcher::takeOver() {
  // Not bounded by what this tracker holds: route() leaves what does not fit
  // pending (now ours) in Redis, so a dead consumer's events of other
  // accounts are taken over even while dead endpoints fill the memory bound.
  std::string cursor = "0-0";
  size_t taken = 0;
  for (int round = 0; round < 100; ++round) {
    auto r = redis_.command({"XAUTOCLAIM", stream_, kWebhookGroup, consumer_,
                             std::to_string(std::chrono::milliseconds(kTakeOverIdle).count()), cursor, "COUNT",
                             "100"});
    if (!r || (*r)->type != REDIS_REPLY_ARRAY || (*r)->elements < 2) break;
    cursor = replyString((*r)->element[0]);
    const redisReply* entries = (*r)->element[1];
    taken += entries->elements;
    for (size_t i = 0; i < entries->elements; ++i) {
      route(eventFromEntry(entries->element[i]));  // [id, nil] before Redis 7 for a trimmed entry
    }
    // Redis 7 drops trimmed entries from the pending list and names them here.
    for (size_t i = 0; (*r)->elements > 2 && i < (*r)->element[2]->elements; ++i) {
      trimmed_.insert(replyString((*r)->element[2]->element[i]));
    }
    if (cursor == "0-0") break;
  }
  // One line per take-over, every 30 s (events left pending here past the
  // idle time are counted too: they are claimed again).
  if (taken > 0) MG_LOG_INFO("webhooks: took over %zu pending events", taken);
}

unsigned WebhookDispatcher::waitMillis() const {
  auto now = Clock::now();
  auto wait = std::chrono::milliseconds(kMaxWaitMs);
  for (const auto& [_, q] : queues_) {
    if (q.events.empty() || q.in_flight > 0) continue;
    if (q.next_try <= now) return 0;
    wait = std::min(wait, std::chrono::duration_cast<std::chrono::milliseconds>(q.next_try - now) +
                              std::chrono::milliseconds(1));
  }
  return static_cast<unsigned>(wait.count());
}

void WebhookDispatcher::run(const std::atomic<bool>& stop) {
  bool group_ready = false;
  while (!stop.load()) {
    if (auto fresh = live_.get(); fresh != config_) {
      config_ = fresh;
      http_.setAllowNetworks(config_->webhook_allow_networks);
    }
    if (!group_ready && !(group_ready = ensureGroup())) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      continue;
    }
    auto now = Clock::now();
    if (rescan_) {
      Scan scan = scanPending(*rescan_, kRescanRounds, [&](const Event& e) {
        rescan_ = StreamId::parse(e.id);
        return true;
      });
      if (scan == Scan::End) {
        last_new_ = std::max(last_new_, *rescan_);  // everything pending for us so far was read
        rescan_.reset();
      }
    }
    if (now - last_takeover_ >= kClaimRefresh) {
      last_takeover_ = now;
      refreshClaims();
      takeOver();
    }
    refill();
    // While POSTs are in flight, Redis is only polled and the wait is spent
    // on the transfers. New entries are always read: those beyond the caps
    // stay pending in Redis.
    unsigned wait = waitMillis();
    bool posting = http_.inFlight() > 0;
    if (!readNew(posting ? 0 : wait) && !posting) {
      std::this_thread::sleep_for(std::chrono::milliseconds(wait > 0 ? wait : 100));
    }
    startReady();
    for (const auto& [account, result] : http_.run(std::chrono::milliseconds(std::min(wait, 100u)))) {
      finish(account, result);
    }
    deadLetterTrimmed();
    if (ack(to_ack_)) to_ack_.clear();
  }
  // Finish the POSTs in flight (each ends within webhook_timeout), then acknowledge.
  while (http_.inFlight() > 0) {
    for (const auto& [account, result] : http_.run(std::chrono::milliseconds(100))) finish(account, result);
  }
  if (ack(to_ack_)) to_ack_.clear();
}

}  // namespace mailgate::tracker

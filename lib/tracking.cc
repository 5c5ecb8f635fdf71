// tracking.cc — maps Postfix delivery results onto mailgate events:
// sent -> delivered, deferred/softbounce -> deferred, bounced -> bounced
// (a dead mailbox or domain also suppresses), expired -> expired for every
// recipient still waiting (mailbox deferrals and expiries are soft bounces);
// reported as submitted (orig_to), for recipients the milter recorded only.
#include "mailgate/tracking.h"

#include <algorithm>

#include "mailgate/address.h"

namespace mailgate {

TrackedMessage trackedMessageFromHash(const redisReply* reply) {
  TrackedMessage m;
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2) return m;
  for (size_t i = 0; i + 1 < reply->elements; i += 2) {
    std::string name = replyString(reply->element[i]);
    std::string value = replyString(reply->element[i + 1]);
    if (name == "account") m.account = value;
    else if (name == "key") m.key_id = value;
    else if (name == "campaign") m.campaign = value;
    else if (name == "letter") m.letter_id = value;
    else if (name == "from") m.from = value;
    else if (name == "msgid") m.message_id = value;
    else if (name == "done") m.done = value == "1";
    else if (name.starts_with("rcpt:")) m.rcpt_status[name.substr(5)] = value;
    else if (name == "rcpts") {
      m.recipients.emplace();
      for (size_t start = 0; start < value.size();) {
        size_t end = std::min(value.find('\n', start), value.size());
        if (end > start) m.recipients->insert(value.substr(start, end - start));
        start = end + 1;
      }
    }
  }
  m.known = !m.account.empty();
  return m;
}

bool isSuppressingBounce(std::string_view dsn, std::string_view text) {
  // RFC 3463 / RFC 7505 addressing codes. Suppressed (the recipient is dead
  // for every sender): 5.1.1 bad destination mailbox, 5.1.2 bad destination
  // system, 5.1.10 null MX, and 5.1.6 "mailbox has moved, no forwarding
  // address": the address was valid once and takes no mail any more, for
  // good (RFC 3463 uses it for permanent failures only), which is as dead as
  // 5.1.1. Not suppressed: 5.1.7/5.1.8 (the *sender's* address or domain is
  // bad: one customer's broken sending domain must not suppress recipients
  // for all), 5.1.3 (syntax the receiver disputes, e.g. a quoted local
  // part), 5.1.4 (ambiguous), 5.1.0/5.1.5/5.1.9 (not about the mailbox).
  if (dsn != "5.1.1" && dsn != "5.1.2" && dsn != "5.1.6" && dsn != "5.1.10") return false;
  // Receivers misuse codes: a reply to MAIL FROM judges the sender (or the
  // client), and Postfix's sender restrictions say so, whatever the code.
  std::string lower = toLower(text);
  return lower.find("in reply to mail from command") == std::string::npos &&
         lower.find("sender address rejected") == std::string::npos;
}

namespace {

const char* eventStatus(const std::string& postfix_status) {
  if (postfix_status == "sent") return "delivered";
  if (postfix_status == "bounced") return "bounced";
  if (postfix_status == "expired") return "expired";
  return "deferred";  // deferred, softbounce
}

Event baseEvent(const LogRecord& line, const TrackedMessage& msg, int64_t now_ms) {
  Event e;
  e.time_ms = now_ms;
  e.queue_id = line.queue_id;
  e.account = msg.account;
  e.key_id = msg.key_id;
  e.campaign = msg.campaign;
  e.letter_id = msg.letter_id;
  e.from = msg.from;
  e.message_id = msg.message_id;
  return e;
}

bool isFinal(const std::string& status) { return status != "deferred"; }

// The lookup key the policy service finds `rcpt` (as submitted) under; "" if none.
std::string lookupKey(const std::string& rcpt) {
  auto keys = recipientKeys(rcpt, false);
  return keys && !keys->empty() ? keys->front() : "";
}

// Counts `e` (a deferral or expiry) as a soft bounce of `kind`, when it is one.
void addSoftBounce(TrackingUpdate& u, const Event& e, std::string kind) {
  std::string address = lookupKey(e.rcpt);
  if (kind.empty() || address.empty()) return;
  Event suppressed = e;
  suppressed.status = "suppressed";
  suppressed.text = kSoftBounceReason;
  u.soft_bounces.push_back({std::move(address), std::move(kind), std::move(suppressed)});
}

}  // namespace

TrackingUpdate trackLine(const LogRecord& line, TrackedMessage& msg, int64_t now_ms) {
  TrackingUpdate u;
  if (!msg.known || msg.done) return u;
  switch (line.kind) {
    case LogRecord::Kind::Delivery: {
      const std::string& rcpt = line.orig_rcpt.empty() ? line.rcpt : line.orig_rcpt;
      if (msg.recipients && !msg.recipients->contains(trackedRecipientKey(rcpt))) {
        u.ignored = "recipient <" + rcpt + "> was not submitted with this message";
        return u;
      }
      Event e = baseEvent(line, msg, now_ms);
      e.rcpt = rcpt;
      e.status = eventStatus(line.status);
      e.code = line.dsn;
      e.text = line.text;
      msg.rcpt_status[rcpt] = e.status;
      u.rcpt_status.emplace_back(rcpt, e.status);
      if (e.status == "bounced" && isSuppressingBounce(line.dsn, line.text)) {
        // Under the key the policy service looks the submitted recipient up by.
        if (std::string key = lookupKey(rcpt); !key.empty()) {
          u.suppress.push_back({key, msg.account, line.queue_id, line.dsn, line.text, now_ms});
        }
      } else if (e.status == "deferred") {
        addSoftBounce(u, e, softBounceKind(line.dsn));
      } else if (e.status == "expired") {
        addSoftBounce(u, e, kExpiredKind);
      } else if (std::string key = lookupKey(rcpt); e.status == "delivered" && !key.empty()) {
        u.delivered.push_back(std::move(key));
      }
      u.events.push_back(std::move(e));
      break;
    }
    case LogRecord::Kind::Expired:
      for (auto& [rcpt, status] : msg.rcpt_status) {
        if (isFinal(status)) continue;
        Event e = baseEvent(line, msg, now_ms);
        e.rcpt = rcpt;
        e.status = "expired";
        e.code = "4.4.7";
        e.text = "message expired in the queue, returned to sender";
        status = "expired";
        u.rcpt_status.emplace_back(rcpt, status);
        addSoftBounce(u, e, kExpiredKind);
        u.events.push_back(std::move(e));
      }
      break;
    case LogRecord::Kind::Notification:
      u.notification_qid = line.new_queue_id;
      break;
    case LogRecord::Kind::Removed:
      msg.done = true;
      u.removed = true;
      break;
    case LogRecord::Kind::Other:
      break;
  }
  return u;
}

bool IgnoredLines::shouldLog(const std::string& queue_id, int64_t now_ms, uint64_t& unlogged) {
  if (seen_.contains(queue_id)) return false;
  seen_.insert(queue_id);
  order_.push_back(queue_id);
  if (order_.size() > kRemembered) {
    seen_.erase(order_.front());
    order_.pop_front();
  }
  if (now_ms - minute_start_ >= 60000) {
    minute_start_ = now_ms;
    in_minute_ = 0;
  }
  if (in_minute_ >= kPerMinute) {
    ++dropped_;
    return false;
  }
  ++in_minute_;
  unlogged = dropped_;
  dropped_ = 0;
  return true;
}

}  // namespace mailgate

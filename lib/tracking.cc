// tracking.cc — maps Postfix delivery results onto mailgate events:
// sent -> delivered, deferred/softbounce -> deferred, bounced -> bounced
// (5.1.x also suppresses), expired -> expired for every recipient still
// waiting; the recipient as submitted (orig_to) is the one reported.
#include "mailgate/tracking.h"

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
  }
  m.known = !m.account.empty();
  return m;
}

bool isSuppressingDsn(std::string_view dsn) { return dsn.starts_with("5.1."); }

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

}  // namespace

TrackingUpdate trackLine(const LogRecord& line, TrackedMessage& msg, int64_t now_ms) {
  TrackingUpdate u;
  if (!msg.known || msg.done) return u;
  switch (line.kind) {
    case LogRecord::Kind::Delivery: {
      const std::string& rcpt = line.orig_rcpt.empty() ? line.rcpt : line.orig_rcpt;
      Event e = baseEvent(line, msg, now_ms);
      e.rcpt = rcpt;
      e.status = eventStatus(line.status);
      e.code = line.dsn;
      e.text = line.text;
      msg.rcpt_status[rcpt] = e.status;
      u.rcpt_status.emplace_back(rcpt, e.status);
      if (e.status == "bounced" && isSuppressingDsn(line.dsn)) {
        auto mailbox = parseMailbox(line.rcpt);
        if (mailbox) {
          u.suppress.push_back({mailbox->key(), msg.account, line.queue_id, line.dsn, line.text, now_ms});
        }
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

}  // namespace mailgate

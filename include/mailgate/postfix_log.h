// postfix_log.h — parses one Postfix log line (syslog file, `journalctl -o
// short` or `-o cat`) into what delivery tracking needs: per-recipient
// delivery results, expiry, bounce-notification queue ids and `removed`.
// Pure code: no I/O, never throws; unknown lines come back as Kind::Other.
#pragma once

#include <string>
#include <string_view>

namespace mailgate {

struct LogRecord {
  enum class Kind {
    Other,         // not a line tracking cares about
    Delivery,      // <qid>: to=<rcpt>, relay=..., dsn=X.Y.Z, status=S (text)
    Expired,       // <qid>: from=<s>, status=expired, returned to sender
    Notification,  // <qid>: sender non-delivery notification: <new qid>
    Removed,       // <qid>: removed
  };
  Kind kind = Kind::Other;
  std::string queue_id;
  std::string program;  // "postfix/smtp", "" for `-o cat` lines
  std::string rcpt, orig_rcpt, relay, dsn;
  std::string status;  // sent|deferred|bounced|expired|softbounce
  std::string text;    // the parenthesised reason, without the parentheses
  std::string new_queue_id;  // Notification: the DSN's queue id
};

// True for a Postfix queue id: short form (upper-case hex, 6..16 characters)
// or long form (enable_long_queue_ids: 10 characters of time, `z`, inode).
bool isQueueId(std::string_view s);

LogRecord parsePostfixLogLine(std::string_view line);

}  // namespace mailgate

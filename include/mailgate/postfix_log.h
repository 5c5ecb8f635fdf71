// postfix_log.h — parses one Postfix log line (syslog file, `journalctl -o
// short` or `-o cat`) into what delivery tracking needs: per-recipient
// delivery results, expiry, bounce-notification queue ids and `removed`.
// Pure code: no I/O, never throws; unknown lines come back as Kind::Other.
#pragma once

#include <string>
#include <string_view>
#include <vector>

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
  std::string program;  // the syslog tag without [pid], "postfix/smtp"; "" for `-o cat` lines
  std::string rcpt, orig_rcpt, relay, dsn;
  std::string status;  // sent|deferred|bounced|expired|softbounce
  std::string text;    // the parenthesised reason, without the parentheses
  std::string new_queue_id;  // Notification: the DSN's queue id
};

// True for a Postfix queue id: short form (upper-case hex, 6..16 characters)
// or long form (enable_long_queue_ids: 10 characters of time, `z`, inode).
bool isQueueId(std::string_view s);

// Parses a bare message ("<qid>: ...", journalctl -o cat) or a syslog line
// whose tag (after the time stamp and host, nowhere else) has a '/'.
LogRecord parsePostfixLogLine(std::string_view line);

// True when `tag` ("postfix-out/smtp") is NAME/PROGRAM with NAME one of the
// `syslog_names` (tracker_syslog_names: a Postfix syslog_name, or a prefix
// ending in '*') and PROGRAM a Postfix program whose lines tracking reads:
// smtp, lmtp, local, virtual, pipe, error, retry, discard, qmgr, oqmgr,
// bounce, postsuper.
bool isPostfixTag(std::string_view tag, const std::vector<std::string>& syslog_names);

}  // namespace mailgate

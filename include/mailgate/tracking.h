// tracking.h — what one Postfix log line means for a message mailgate
// accepted: delivery events, the recipient's last status, hard-bounce
// suppression, soft bounces to count. Pure: the tracker loads q:<queueid>
// and writes the result.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "mailgate/events.h"
#include "mailgate/postfix_log.h"
#include "mailgate/soft_bounce.h"

namespace mailgate {

// q:<queueid> as the tracker sees it: the milter's record plus the last
// delivery status of each recipient (fields "rcpt:<address>").
struct TrackedMessage {
  bool known = false;  // false: not a message mailgate accepted
  bool done = false;   // Postfix logged "removed"
  std::string account, key_id, campaign, letter_id, from, message_id;
  std::map<std::string, std::string> rcpt_status;
  // The recipients the milter recorded (field rcpts, trackedRecipientKey()
  // form); nullopt for a record written before mailgate recorded them.
  std::optional<std::set<std::string>> recipients;
};

// Decodes an HGETALL reply of q:<queueid>.
TrackedMessage trackedMessageFromHash(const redisReply* reply);

// A recipient to add to the hard-bounce sets.
struct Suppression {
  std::string address, account, queue_id, dsn, reason;
  int64_t time_ms = 0;
};

struct TrackingUpdate {
  std::vector<Event> events;
  std::vector<std::pair<std::string, std::string>> rcpt_status;  // recipient -> status to store
  std::vector<Suppression> suppress;
  // Deferrals of a counted kind and expiries (softBounceKind()), and the
  // recipients delivered to, whose soft bounces are forgotten: lookup keys.
  std::vector<SoftBounce> soft_bounces;
  std::vector<std::string> delivered;
  std::string notification_qid;  // the bounce/delay notification's queue id
  bool removed = false;
  std::string ignored;  // why the line was ignored (for the log), "" when it was not
};

// A hard bounce that suppresses the recipient: DSN 5.1.1, 5.1.2, 5.1.6 or
// 5.1.10 (the recipient's mailbox or domain), unless the reply was to MAIL
// FROM or names a sender problem, whatever code it carries.
bool isSuppressingBounce(std::string_view dsn, std::string_view text);

// Applies one parsed line to `msg` (its recipient statuses are updated, so
// later lines of the same batch see them) and says what to record.
// Lines of unknown or finished messages yield nothing; so does a delivery
// line for a recipient the message was not submitted to (orig_to, else to,
// is checked against msg.recipients), with `ignored` saying so.
// Suppression (and soft-bounce counting) is keyed by the submitted
// recipient (orig_to when Postfix rewrote it), the address the policy
// service looks up.
TrackingUpdate trackLine(const LogRecord& line, TrackedMessage& msg, int64_t now_ms);

// Which ignored lines (forged or foreign) get a log line, so that a flood of
// them cannot flood the log: the first of each queue id (the last
// kRemembered ids are remembered), and at most kPerMinute a minute in all.
// Lines dropped by the minute's cap are counted and the count is reported
// with the next line logged.
class IgnoredLines {
 public:
  static constexpr size_t kRemembered = 10000;
  static constexpr unsigned kPerMinute = 20;

  // True when an ignored line of `queue_id` read at `now_ms` is to be
  // logged; `unlogged` is then the number of lines the cap dropped before it.
  bool shouldLog(const std::string& queue_id, int64_t now_ms, uint64_t& unlogged);

 private:
  std::set<std::string> seen_;
  std::deque<std::string> order_;  // of seen_, oldest first
  int64_t minute_start_ = 0;
  unsigned in_minute_ = 0;
  uint64_t dropped_ = 0;
};

}  // namespace mailgate

// tracking.h — what one Postfix log line means for a message mailgate
// accepted: delivery events, the recipient's last status, hard-bounce
// suppression. Pure: the tracker loads q:<queueid> and writes the result.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "mailgate/events.h"
#include "mailgate/postfix_log.h"

namespace mailgate {

// q:<queueid> as the tracker sees it: the milter's record plus the last
// delivery status of each recipient (fields "rcpt:<address>").
struct TrackedMessage {
  bool known = false;  // false: not a message mailgate accepted
  bool done = false;   // Postfix logged "removed"
  std::string account, key_id, campaign, letter_id, from, message_id;
  std::map<std::string, std::string> rcpt_status;
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
  std::string notification_qid;  // the bounce/delay notification's queue id
  bool removed = false;
};

// A hard bounce that suppresses: bad mailbox or domain, DSN 5.1.x.
bool isSuppressingDsn(std::string_view dsn);

// Applies one parsed line to `msg` (its recipient statuses are updated, so
// later lines of the same batch see them) and says what to record.
// Lines of unknown or finished messages yield nothing.
TrackingUpdate trackLine(const LogRecord& line, TrackedMessage& msg, int64_t now_ms);

}  // namespace mailgate

// events.h — outcome events: the entries of the `events` stream and the
// `q:<queueid>` record that later joins delivery results to a message.
// Building commands and decoding entries is pure; recordOutcome() does I/O.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "mailgate/config.h"
#include "mailgate/redis.h"
#include "mailgate/result.h"

namespace mailgate {

struct Event {
  std::string id;  // stream id, set when read back
  int64_t time_ms = 0;
  std::string queue_id, account, key_id, campaign, letter_id, from, rcpt;
  std::string message_id;  // the Message-Id header, brackets included
  std::string status;  // accepted|rejected|tempfailed|sink|sandbox|suppressed|delivered|...
  std::string code, text;
};

// What the milter knows about a queued message, stored as q:<queueid>.
struct QueueRecord {
  std::string queue_id, account, key_id, campaign, letter_id, from, subject_hash;
  int64_t time_ms = 0;
  unsigned nrcpt = 0;
  std::string message_id;
  std::vector<std::string> rcpts;  // the envelope recipients to deliver, as submitted
};

// The form a recipient is recorded under in q:<queueid> (field rcpts) and
// matched by mailgate-tracker: its lookup key (recipientKeys), or the
// address as given when it has none.
std::string trackedRecipientKey(std::string_view address);

// Splits Postfix's sasl_username / {auth_authen} "ACCOUNT/KEYID".
std::pair<std::string, std::string> splitAuthUser(std::string_view user);

// Compact JSON text of `json`. Texts from outside (remote SMTP replies,
// header addresses) may hold invalid UTF-8: it is replaced by U+FFFD
// instead of making nlohmann::json throw.
std::string jsonText(const nlohmann::json& json, int indent = -1);

std::string eventsStreamKey(const Config& config);

// The consumer group mailgate-tracker delivers webhooks from.
constexpr const char* kWebhookGroup = "webhooks";

// The entries of the first stream of an XREAD/XREADGROUP reply
// ([[stream, [entry...]]]); nullptr for a nil (timed out) or odd reply.
const redisReply* streamEntries(const redisReply* reply);
Command xaddCommand(const Config& config, const Event& event);
std::vector<Command> queueRecordCommands(const Config& config, const QueueRecord& record);

// Decodes one XRANGE/XREVRANGE entry ([id, [field, value, ...]]).
Event eventFromEntry(const redisReply* entry);

// Campaigns past max_campaigns_per_day are counted under this name.
constexpr const char* kOtherCampaigns = "_other";

// The commands recordMessage() sends (without MULTI/EXEC), for callers that
// add their own to the same transaction (mailgate-tracker).
std::vector<Command> outcomeCommands(const Config& config, const std::vector<Event>& events,
                                     const QueueRecord* record);

// Writes `commands` (outcomeCommands() and the like: a key in the second
// word, or the campaign script) atomically in one script (never sent
// twice) that writes nothing when it runs after its client stopped waiting
// (RedisConn::evalWithDeadline): a stalled Redis that wakes up cannot add
// a record for a message the caller tempfailed. Late: Error::Kind::Timeout.
Status writeRecord(RedisConn& redis, const std::vector<Command>& commands);

// The condition of writeRecordOnce(): `member` joins `set_if_equal` when
// field `field` of hash `hash` equals `value`, else `set_else`.
struct OnceGuard {
  std::string hash, field, value, set_if_equal, set_else, member;
};

// writeRecord() of `commands` in the same script, only when the guard's
// member was not yet in the set it joins: true when written, false when it
// was there (nothing written). One round trip.
Result<bool> writeRecordOnce(RedisConn& redis, const OnceGuard& guard, const std::vector<Command>& commands);

// The same behind a guard command run first in the script (HSETNX key field
// value, a key in its second word): when it answers 0 nothing is written and
// the result is false (recorded before).
Result<bool> writeRecordOnce(RedisConn& redis, const Command& guard, const std::vector<Command>& commands);

// Records the decisions about one message with writeRecord(): an event each (typically one per recipient),
// the account's day counters by status (kept 400 days) and by campaign
// ("<campaign>:<status>", kept campaign_stats_days, at most
// max_campaigns_per_day campaigns a day, the rest under kOtherCampaigns;
// sink and sandbox are not counted), the first refusal in the account's
// errors list, and q:<queueid> when `record` is given. Refusals without an
// account are only counted by reply code (noaccount:<day>), not streamed.
Status recordMessage(RedisConn& redis, const Config& config, const std::vector<Event>& events,
                     const QueueRecord* record);

// Fills code ("550") and text ("5.0.0 Email is in the account stoplist")
// from a full SMTP reply, and status rejected (5xx) or tempfailed (4xx).
void setRefusal(Event& event, std::string_view reply);

// Records one refusal (recordMessage with one event).
Status recordRefusal(RedisConn& redis, const Config& config, const Event& event);

// An account's latest refusals from its errors list, newest first.
struct ErrorEntry {
  int64_t time_ms = 0;
  std::string queue_id, code, text, from, rcpt;
};
Result<std::vector<ErrorEntry>> latestErrors(RedisConn& redis, const Config& config, const std::string& account,
                                             unsigned count);

// Events after stream id `after` ("$" = only new ones), waiting up to
// `block_ms` (use a connection whose timeout is longer).
Result<std::vector<Event>> eventsAfter(RedisConn& redis, const Config& config, const std::string& after,
                                       unsigned block_ms);

// The events of one queue id among the latest `scan` entries, oldest first.
Result<std::vector<Event>> eventsOfMessage(RedisConn& redis, const Config& config, const std::string& queue_id,
                                           unsigned scan);

// The latest `count` events, newest first.
Result<std::vector<Event>> latestEvents(RedisConn& redis, const Config& config, unsigned count);

int64_t nowMillis();

}  // namespace mailgate

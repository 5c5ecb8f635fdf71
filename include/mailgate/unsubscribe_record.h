// unsubscribe_record.h — what one verified unsubscribe click writes to Redis
// (mailgate-web): the recipient added to the account's stoplist, or to the
// campaign's list with unsubscribe_scope=campaign, and event `unsubscribed`
// (events stream, counters, hence the webhooks), at most once per
// (account, recipient, scope). Planning is pure; recordUnsubscribe() does I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mailgate/config.h"
#include "mailgate/events.h"
#include "mailgate/redis.h"
#include "mailgate/result.h"
#include "mailgate/unsubscribe_token.h"

namespace mailgate {

struct UnsubscribePlan {
  OnceGuard guard;  // which list the recipient joins (chosen in Redis by the account's unsubscribe_scope)
  std::vector<Command> commands;  // the event and its counters, written only when it joins
  Event event;
};

// "YYYY-MM-DD": the campaign of a message without X-Campaign-Id.
bool isDailyCampaign(std::string_view campaign);

// The plan for `token` at `now_ms`: the recipient in the stoplist's normal
// form (as mailgatectl stoplist add stores it); Error::Invalid when the
// token's recipient is not an address.
Result<UnsubscribePlan> planUnsubscribe(const Config& config, const UnsubscribeToken& token, int64_t now_ms);

// One recorded unsubscribe (unsubscribes:{A}, field "RCPT CAMPAIGN").
struct UnsubscribeEntry {
  int64_t time_ms = 0;
  std::string recipient, campaign, queue_id;
};

// The account's unsubscribes, newest first; only `address`'s when not empty.
Result<std::vector<UnsubscribeEntry>> listUnsubscribes(RedisConn& redis, const Config& config,
                                                       const std::string& account, const std::string& address);

// Forgets `address`'s unsubscribes from the account: their records, the
// campaign lists they joined and, unless the account's unsubscribe_scope is
// campaign, its stoplist entry. The number of records removed (0: none).
Result<long long> removeUnsubscribes(RedisConn& redis, const Config& config, const std::string& account,
                                     const std::string& address);

// Writes `plan` in one script, one round trip: true when the recipient was
// added (event recorded), false when it was already there (nothing written).
Result<bool> recordUnsubscribe(RedisConn& redis, const UnsubscribePlan& plan);

}  // namespace mailgate

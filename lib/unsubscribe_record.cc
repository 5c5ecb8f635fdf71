// unsubscribe_record.cc — the Redis writes of one unsubscribe click: the
// list the recipient joins (account stoplist or campaign list, chosen by the
// account's unsubscribe_scope inside the script) and event `unsubscribed`.
#include "mailgate/unsubscribe_record.h"

#include "mailgate/address.h"
#include "mailgate/store.h"

namespace mailgate {

Result<UnsubscribePlan> planUnsubscribe(const Config& config, const UnsubscribeToken& token, int64_t now_ms) {
  auto mailbox = parseMailbox(token.recipient);
  if (!mailbox) return Error{Error::Kind::Invalid, "bad recipient in token"};
  StoreKeys keys(config.redis_prefix);
  UnsubscribePlan plan;
  plan.guard = OnceGuard{keys.account(token.account),
                         "unsubscribe_scope",
                         "campaign",
                         keys.campaignStoplist(token.account, token.campaign),
                         keys.stoplist(token.account),
                         mailbox->key()};
  Event& e = plan.event;
  e.time_ms = now_ms;
  e.queue_id = token.queue_id;
  e.account = token.account;
  e.campaign = token.campaign;
  e.rcpt = mailbox->key();
  e.status = "unsubscribed";
  plan.commands = outcomeCommands(config, {e}, nullptr);
  return plan;
}

Result<bool> recordUnsubscribe(RedisConn& redis, const UnsubscribePlan& plan) {
  return writeRecordOnce(redis, plan.guard, plan.commands);
}

}  // namespace mailgate

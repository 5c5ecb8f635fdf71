// policy_session.cc — policy requests in, action= lines out. Per request:
// who sends (AUTH or pinned network), the account's data in one Redis round
// trip, the envelope rules, then once per message the rate/quota script.
// Refusals are logged (one line, Postfix style) and recorded in Redis.
#include "policy_session.h"

#include "mailgate/address.h"
#include "mailgate/limits.h"
#include "mailgate/log.h"
#include "mailgate/rules_auth.h"
#include "mailgate/rules_envelope.h"

namespace mailgate::policy {
namespace {

std::string actionOf(const Verdict& v) { return v.action == Action::Dunno ? "DUNNO" : v.reply; }

}  // namespace

void PolicySession::startTransaction(const std::string& instance) {
  if (instance == instance_) return;
  instance_ = instance;
  instance_counted_ = false;
  accepted_rcpts_ = 0;
}

Verdict PolicySession::evaluate(const PolicyRequest& req, Event& event) {
  PolicyScope scope = policyScope(req);
  std::optional<std::string> pinned;
  if (req.get("sasl_username").empty()) {
    auto account = store_.accountForAddress(redis_, req.get("client_address"));
    if (!account) {
      event.text = account.error().message;
      // Relay check: "accept" would mean either an open relay (OK) or a
      // permanent "Relay access denied" for pinned clients (DUNNO); ask to retry.
      return redisFailureVerdict(scope == PolicyScope::Relay ? RedisFailure::TempFail : config_.on_redis_failure);
    }
    pinned = *account;
  }
  SenderIdentity who;
  Verdict v = checkAuthenticated(req, pinned, who);
  event.account = who.account;
  event.key_id = who.key_id;
  if (scope == PolicyScope::Relay) return checkRelay(req, pinned);
  if (v.action != Action::Dunno) return v;

  auto sender = parseMailbox(req.get("sender"));
  auto policy = store_.loadAccountPolicy(redis_, who.account,
                                         sender && scope != PolicyScope::Recipient ? sender->domain : "",
                                         scope != PolicyScope::Sender ? req.get("recipient") : "");
  if (!policy) {
    event.text = policy.error().message;
    return redisFailureVerdict(config_.on_redis_failure);
  }
  v = checkEnvelope(req, *policy, config_, accepted_rcpts_);
  if (v.action != Action::Dunno) return v;

  const std::string& state = req.get("protocol_state");
  bool new_message = scope != PolicyScope::Sender &&
                     (req.get("instance").empty() ? state == "MAIL"
                                                  : !instance_counted_ && (state == "MAIL" || state == "RCPT"));
  if (new_message) {
    auto limit = consumeMessage(redis_, store_.keys(), *policy, who.key_id, utcDay(event.time_ms));
    if (!limit) {
      event.text = limit.error().message;
      return redisFailureVerdict(config_.on_redis_failure);
    }
    Verdict lv = limitVerdict(*limit);
    if (lv.action != Action::Dunno) return lv;
    instance_counted_ = true;
  }
  if (state == "RCPT" && scope != PolicyScope::Sender) ++accepted_rcpts_;
  return v;
}

std::string PolicySession::decide(const PolicyRequest& req) {
  startTransaction(req.get("instance"));
  Event event;
  event.time_ms = nowMillis();
  event.queue_id = req.get("queue_id");
  event.from = req.get("sender");
  event.rcpt = req.get("recipient");
  Verdict v = evaluate(req, event);

  std::string qid = event.queue_id.empty() ? "NOQUEUE" : printable(event.queue_id);
  std::string where = printable(req.get("protocol_state")) + " from [" + printable(req.get("client_address")) + "]";
  if (v.rule == "redis") {
    MG_LOG_WARN("%s: %s: %s: %s; account=%s reason=%s", qid.c_str(),
                v.action == Action::Dunno ? "dunno (on_redis_failure = accept)" : "tempfail", where.c_str(),
                actionOf(v).c_str(), printable(event.account).c_str(), event.text.c_str());
    return actionOf(v);
  }
  if (v.action == Action::Dunno || v.action == Action::Permit) {
    MG_LOG_DEBUG("%s: %s: %s: from=<%s> to=<%s> account=%s key=%s%s", qid.c_str(),
                 v.action == Action::Permit ? "ok" : "dunno", where.c_str(),
                 printable(event.from).c_str(), printable(event.rcpt).c_str(), printable(event.account).c_str(),
                 printable(event.key_id).c_str(), v.rule.empty() ? "" : (" rule=" + v.rule).c_str());
    return actionOf(v);
  }
  MG_LOG_INFO("%s: %s: %s: %s; from=<%s> to=<%s> account=%s key=%s rule=%s", qid.c_str(),
              v.action == Action::Reject ? "reject" : "defer", where.c_str(), v.reply.c_str(),
              printable(event.from).c_str(), printable(event.rcpt).c_str(), printable(event.account).c_str(),
              printable(event.key_id).c_str(), v.rule.c_str());
  setRefusal(event, v.reply);
  if (Status s = recordRefusal(redis_, config_, event); !s) {
    MG_LOG_WARN("%s: refusal not recorded: %s", qid.c_str(), s.error().message.c_str());
  }
  return v.reply;
}

Session::Next PolicySession::onInput(std::string_view data, bool eof, std::string& out) {
  parser_.feed(data);
  PolicyRequest req;
  while (true) {
    auto s = eof ? parser_.finish(req) : parser_.next(req);
    if (s == PolicyParser::Status::NeedMore) return eof ? Next::CloseAfterWrite : Next::Continue;
    if (s == PolicyParser::Status::Malformed) {
      MG_LOG_WARN("policy: malformed request: %s; closing connection", parser_.error().c_str());
      out += formatPolicyReply("DEFER malformed policy request: " + parser_.error());
      return Next::CloseAfterWrite;
    }
    out += formatPolicyReply(decide(req));
  }
}

}  // namespace mailgate::policy

// policy_session.cc — policy requests in, action= lines out: malformed input
// gets a DEFER and a close; each request runs the rules and is logged.
#include "policy_session.h"

#include "mailgate/log.h"
#include "mailgate/rules_auth.h"

namespace mailgate::policy {
namespace {

std::string actionOf(const Verdict& v) { return v.action == Action::Dunno ? "DUNNO" : v.reply; }

}  // namespace

std::string decide(const PolicyRequest& req, const Config& config, Store& store, RedisConn& redis) {
  std::optional<std::string> pinned;
  Verdict verdict;
  if (req.get("sasl_username").empty()) {
    auto account = store.accountForAddress(redis, req.get("client_address"));
    if (!account) {
      verdict = redisFailureVerdict(config.on_redis_failure);
      MG_LOG_WARN("%s: %s: %s from [%s]: %s; reason=%s", req.get("queue_id").empty() ? "NOQUEUE" : req.get("queue_id").c_str(),
                  verdict.action == Action::Dunno ? "accept (on_redis_failure = accept)" : "tempfail",
                  printable(req.get("protocol_state")).c_str(), printable(req.get("client_address")).c_str(),
                  verdict.action == Action::Dunno ? "DUNNO" : verdict.reply.c_str(), account.error().message.c_str());
      return actionOf(verdict);
    }
    pinned = *account;
  }
  SenderIdentity identity;
  verdict = checkAuthenticated(req, pinned, identity);
  const std::string& qid = req.get("queue_id");
  if (verdict.action != Action::Dunno) {
    MG_LOG_INFO("%s: reject: %s from [%s]: %s; from=<%s> to=<%s> rule=%s", qid.empty() ? "NOQUEUE" : printable(qid).c_str(),
                printable(req.get("protocol_state")).c_str(), printable(req.get("client_address")).c_str(),
                verdict.reply.c_str(), printable(req.get("sender")).c_str(),
                printable(req.get("recipient")).c_str(), verdict.rule.c_str());
  } else {
    MG_LOG_DEBUG("%s: dunno: %s from [%s]: from=<%s> to=<%s> account=%s key=%s%s",
                 qid.empty() ? "NOQUEUE" : printable(qid).c_str(), printable(req.get("protocol_state")).c_str(),
                 printable(req.get("client_address")).c_str(), printable(req.get("sender")).c_str(),
                 printable(req.get("recipient")).c_str(), printable(identity.account).c_str(),
                 printable(identity.key_id).c_str(), identity.pinned ? " pinned=yes" : "");
  }
  return actionOf(verdict);
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
    out += formatPolicyReply(decide(req, config_, store_, redis_));
  }
}

}  // namespace mailgate::policy

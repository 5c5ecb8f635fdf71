// policy_session.cc — policy requests in, action= lines out. Per request:
// who sends (AUTH or pinned network), the account's data in one Redis round
// trip (or none: the transaction's requests share one read), the envelope
// rules, then once per message the rate/quota script.
// Refusals are logged (one line, Postfix style) and recorded in Redis.
#include "policy_session.h"

#include "mailgate/address.h"
#include "mailgate/limits.h"
#include "mailgate/log.h"
#include "mailgate/rules_auth.h"
#include "mailgate/rules_envelope.h"
#include "mailgate/rules_message.h"

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
  const std::string& state = req.get("protocol_state");
  // The recipient's stoplist and bounce entries count at RCPT only.
  auto loaded = accountPolicy(req, who.account, sender && scope != PolicyScope::Recipient ? sender->domain : "",
                              state == "RCPT" && scope != PolicyScope::Sender);
  if (!loaded) {
    event.text = loaded.error().message;
    return redisFailureVerdict(config_.on_redis_failure);
  }
  const AccountPolicy* policy = *loaded;
  v = checkEnvelope(req, *policy, config_, accepted_rcpts_);
  if (v.action != Action::Dunno) return v;

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
  if (state == "END-OF-MESSAGE" && req.get("x_checks") == "message") return checkMessage(req, event);
  // Exim's RCPT ACL (x_checks=recipient) drops, for the milter it does not
  // have, sink recipients and those accept-and-drop suppression keeps.
  if (state == "RCPT" && req.get("x_checks") == "recipient") {
    if (v.rule == "stoplist_suppressed" || v.rule == "bounced_suppressed") {
      return Verdict{Action::Discard, "DISCARD suppressed recipient", v.rule};
    }
    if (isSinkRecipient(req.get("recipient"), config_)) return Verdict{Action::Discard, "DISCARD sink recipient", "sink"};
  }
  return v;
}

// The account data `req` needs: the hash, `sender_domain`'s entries (unless
// empty) and, when `wants_recipient`, the recipient's stoplist and bounce
// entries. Read in one round trip, or taken from the transaction cache: at
// each RCPT Postfix asks in sender context, then in recipient context, and
// once more at END-OF-MESSAGE, so a read at RCPT also fetches the recipient's
// entries for the request that follows.
Result<const AccountPolicy*> PolicySession::accountPolicy(const PolicyRequest& req, const std::string& account,
                                                          const std::string& sender_domain, bool wants_recipient) {
  const std::string& recipient = req.get("recipient");
  std::string key = transaction_cache_.keyOf(req, account);
  if (key.empty()) {
    auto policy = store_.loadAccountPolicy(redis_, account, sender_domain, wants_recipient ? recipient : "");
    if (!policy) return policy.error();
    uncached_ = std::move(*policy);
    return &uncached_;
  }
  auto now = TransactionCache::Clock::now();
  if (AccountPolicy* cached = transaction_cache_.account(key, sender_domain, now)) {
    if (wants_recipient && !transaction_cache_.holdsRecipient(recipient, now)) {
      if (Status s = store_.loadRecipientSets(redis_, *cached, recipient); !s) return s.error();
      transaction_cache_.storeRecipient(recipient, now);
    }
    return cached;
  }
  std::string prefetch = req.get("protocol_state") == "RCPT" ? recipient : "";
  auto policy = store_.loadAccountPolicy(redis_, account, sender_domain, prefetch);
  if (!policy) {
    transaction_cache_.clear();
    return policy.error();
  }
  return &transaction_cache_.store(std::move(key), std::move(*policy), sender_domain, std::move(prefetch), now);
}

// Exim's data ACL (contrib/exim/acl.conf): the header From and tags as
// x_header_from, x_header_x_campaign_id, x_header_x_letter_id (absent: the
// message has none), the recipients as x_recipients. The milter's rules on
// those fields, a sandbox key's message discarded, and
// the keys to sign with chosen as the milter chooses them, returned as
// x_account, x_dkim_domain and x_dkim_selectors for the transport.
Verdict PolicySession::checkMessage(const PolicyRequest& req, Event& event) {
  // Exim's $rh_ keeps the blank after the colon and the final newline (the
  // ACL folds them to spaces); the milter gets neither.
  auto field = [&](const char* name) {
    auto it = req.attrs.find(name);
    return it == req.attrs.end() ? std::nullopt : std::optional<std::string>(trimBlanks(it->second));
  };
  MessageFacts facts = headerFieldFacts(field("x_header_from"), field("x_header_x_campaign_id"),
                                        field("x_header_x_letter_id"), event.time_ms);
  // Without the count of From fields a second From could pass unseen: an
  // ACL older than this service's is not trusted to have checked it.
  auto count = [&](const char* name) -> std::optional<uint64_t> {
    const std::string& v = req.get(name);
    if (v.empty() || v.size() > 19 || v.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return std::stoull(v);
  };
  auto from_fields = count("x_header_from_fields");
  auto header_bytes = count("x_header_bytes");
  if (!from_fields || !header_bytes) {
    return Verdict{Action::TempFail, "451 4.3.5 policy request without x_header_from_fields: update the Exim ACL",
                   "exim_acl"};
  }
  addHeaderSection(*from_fields, *header_bytes, facts);
  event.campaign = facts.campaign;
  event.letter_id = facts.letter_id;
  auto data = store_.loadMessageAccount(redis_, event.account, event.key_id, facts.from_domains, facts.campaign, {});
  if (!data) {
    event.text = data.error().message;
    return redisFailureVerdict(config_.on_redis_failure);
  }
  if (Verdict v = checkHeaderFields(facts, *data, config_); v.action != Action::Dunno) return v;
  if (data->sandbox) return Verdict{Action::Discard, "DISCARD sandbox key", "sandbox"};

  std::string from_domain = facts.from ? facts.from->address.substr(facts.from->address.rfind('@') + 1) : "";
  std::string default_domain = defaultSigningDomain(*data, config_);
  std::vector<std::string> domains = signingDomains(from_domain, default_domain);
  SigningState dkim;
  std::vector<DkimEntry> keys;
  if (!domains.empty()) {
    auto loaded = dkim_keys_.keysFor(redis_, domains, &data->dkim_version);
    if (!loaded) {
      dkim.keys_unreadable = true;
      event.text = loaded.error().message;
    } else {
      keys = selectSigningKeys(from_domain, *loaded, default_domain, signingAccount(event.account, *data, config_));
    }
  }
  dkim.no_key = !dkim.keys_unreadable && keys.empty();
  EndOfMessage end = finishMessage(MessagePlan{}, false, dkim, config_);
  if (end.finish == Finish::RedisTempfail) return redisFailureVerdict(RedisFailure::TempFail);
  if (end.finish == Finish::Refuse) return end.refusal;
  reply_attrs_.push_back("x_account=" + event.account);
  std::string rule = "message" + end.dkim_note;
  if (!keys.empty()) {
    std::string selectors;
    for (const auto& k : keys) selectors += (selectors.empty() ? "" : ":") + k.selector;
    reply_attrs_.push_back("x_dkim_domain=" + keys.front().domain);
    reply_attrs_.push_back("x_dkim_selectors=" + selectors);
    rule += " dkim=" + keys.front().domain + "/" + selectors;
  }
  return Verdict{Action::Dunno, "", rule};
}

// What Exim discards, recorded as the milter records it: a sandbox key's
// message as one sandbox event per recipient (x_recipients, Exim's "a@x,
// b@y"), a sink recipient as sink, a suppressed one as suppressed.
void PolicySession::recordDiscard(const PolicyRequest& req, const Verdict& v, const Event& event,
                                  const std::string& qid) {
  std::vector<Event> events;
  auto add = [&](std::string rcpt, const char* status, const char* code, const std::string& text) {
    Event e = event;
    e.rcpt = std::move(rcpt);
    e.status = status;
    e.code = code;
    e.text = text;
    events.push_back(std::move(e));
  };
  if (v.rule == "sink") {
    add(req.get("recipient"), "sink", "250", "");
  } else if (v.rule != "sandbox") {
    add(req.get("recipient"), "suppressed", "", v.rule);
  } else {
    const std::string& list = req.get("x_recipients");
    if (!req.attrs.count("x_recipients")) {
      MG_LOG_WARN("%s: sandbox message not recorded: recipient list too long for the request (%s recipients)",
                  qid.c_str(), printable(req.get("recipient_count")).c_str());
    }
    for (size_t pos = 0; pos <= list.size();) {
      size_t comma = list.find(',', pos);
      if (comma == std::string::npos) comma = list.size();
      std::string rcpt(trimBlanks(std::string_view(list).substr(pos, comma - pos)));
      if (!rcpt.empty()) add(std::move(rcpt), "sandbox", "250", "");
      pos = comma + 1;
    }
  }
  if (events.empty()) return;
  if (Status st = recordMessage(redis_, config_, events, nullptr); !st) {
    MG_LOG_WARN("%s: discard not recorded: %s", qid.c_str(), st.error().message.c_str());
  }
}

std::string PolicySession::decide(const PolicyRequest& req) {
  startTransaction(req.get("instance"));
  reply_attrs_.clear();
  Event event;
  event.time_ms = nowMillis();
  event.queue_id = req.get("queue_id");
  event.from = req.get("sender");
  event.rcpt = req.get("recipient");
  Verdict v = evaluate(req, event);

  std::string qid = event.queue_id.empty() ? "NOQUEUE" : printable(event.queue_id);
  std::string where = printable(req.get("protocol_state")) + " from [" + printable(req.get("client_address")) + "]";
  if (v.rule == "redis") {  // the outage itself is logged once, at warning level, by RedisConn
    MG_LOG_INFO("%s: %s: %s: %s; account=%s reason=%s", qid.c_str(),
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
  if (v.action == Action::Discard) {
    MG_LOG_INFO("%s: discard (%s): %s: from=<%s> to=<%s> account=%s key=%s", qid.c_str(), v.rule.c_str(),
                where.c_str(), printable(event.from).c_str(), printable(event.rcpt).c_str(),
                printable(event.account).c_str(), printable(event.key_id).c_str());
    recordDiscard(req, v, event, qid);
    return v.reply;
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
    std::string action = decide(req);
    out += formatPolicyReply(action, reply_attrs_);
    ++completed_;
  }
}

}  // namespace mailgate::policy

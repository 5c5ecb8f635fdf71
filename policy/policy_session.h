// policy_session.h — one Postfix (or Exim readsocket) policy connection:
// frames requests with PolicyParser and runs the envelope rules on each. A
// Postfix smtpd keeps its connection, so the per-transaction state (which
// `instance` was already counted against the limits, how many recipients it
// has, its account data: transaction_cache.h) lives here. Exim, which has no milter, also asks at end of message for
// the milter's header From rule, sandbox discarding and the DKIM key choice
// (x_checks=message), and at RCPT to drop sink and suppressed recipients
// (x_checks=recipient).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "listener.h"
#include "mailgate/config.h"
#include "mailgate/dkim_signer.h"
#include "mailgate/events.h"
#include "mailgate/policy_proto.h"
#include "mailgate/store.h"
#include "mailgate/transaction_cache.h"
#include "mailgate/verdict.h"

namespace mailgate::policy {

class PolicySession : public Session {
 public:
  // `config` is the snapshot this connection serves with (a SIGHUP reload
  // applies to new connections).
  PolicySession(std::shared_ptr<const Config> config, Store& store, DkimKeyCache& dkim_keys, RedisConn& redis)
      : snapshot_(std::move(config)),
        config_(*snapshot_),
        store_(store),
        dkim_keys_(dkim_keys),
        redis_(redis),
        transaction_cache_(config_.auth_cache_ttl) {}
  Next onInput(std::string_view data, bool eof, std::string& out) override;
  bool midRequest() const override { return parser_.midRequest(); }
  uint64_t requestsCompleted() const override { return completed_; }

  // The action for one request (without "action="); logs and records refusals.
  // Reply attributes beyond action= (Exim's data ACL only) are left in
  // replyAttrs() until the next decide().
  std::string decide(const PolicyRequest& request);
  const std::vector<std::string>& replyAttrs() const { return reply_attrs_; }

 private:
  Verdict evaluate(const PolicyRequest& request, Event& event);
  Result<const AccountPolicy*> accountPolicy(const PolicyRequest& request, const std::string& account,
                                             const std::string& sender_domain, bool wants_recipient);
  Verdict checkMessage(const PolicyRequest& request, Event& event);
  void recordDiscard(const PolicyRequest& request, const Verdict& verdict, const Event& event, const std::string& qid);
  void startTransaction(const std::string& instance);

  std::shared_ptr<const Config> snapshot_;
  const Config& config_;
  Store& store_;
  DkimKeyCache& dkim_keys_;
  RedisConn& redis_;
  std::vector<std::string> reply_attrs_;
  PolicyParser parser_;
  uint64_t completed_ = 0;
  std::string instance_;        // the Postfix transaction seen last
  bool instance_counted_ = false;  // its message was counted against the limits
  uint64_t accepted_rcpts_ = 0;
  TransactionCache transaction_cache_;
  AccountPolicy uncached_;  // accountPolicy()'s answer when the transaction is not cached
};

}  // namespace mailgate::policy

// policy_session.h — one Postfix (or Exim readsocket) policy connection:
// frames requests with PolicyParser and answers each with decide().
#pragma once

#include "listener.h"
#include "mailgate/config.h"
#include "mailgate/policy_proto.h"
#include "mailgate/store.h"

namespace mailgate::policy {

// The action for one request, after the rules of lib/rules_*.cc; logs one
// line per rejection.
std::string decide(const PolicyRequest& request, const Config& config, Store& store, RedisConn& redis);

class PolicySession : public Session {
 public:
  PolicySession(const Config& config, Store& store, RedisConn& redis)
      : config_(config), store_(store), redis_(redis) {}
  Next onInput(std::string_view data, bool eof, std::string& out) override;

 private:
  const Config& config_;
  Store& store_;
  RedisConn& redis_;
  PolicyParser parser_;
};

}  // namespace mailgate::policy

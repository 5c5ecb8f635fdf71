// auth_session.h — one Dovecot-auth connection from Postfix or Exim: splits
// lines, runs the AuthSession state machine and checks keys in the Store.
#pragma once

#include <atomic>
#include <memory>

#include "listener.h"
#include "mailgate/auth_proto.h"
#include "mailgate/config.h"
#include "mailgate/store.h"

namespace mailgate::policy {

// Authenticator over the Store: key lookup, decideAuth(), one log line.
class StoreAuthenticator : public Authenticator {
 public:
  StoreAuthenticator(const Config& config, Store& store, RedisConn& redis)
      : config_(config), store_(store), redis_(redis) {}
  AuthResult authenticate(std::string_view username, std::string_view password,
                          std::string_view client_ip) override;

 private:
  const Config& config_;
  Store& store_;
  RedisConn& redis_;
};

class AuthConnection : public Session {
 public:
  AuthConnection(std::shared_ptr<const Config> config, Store& store, RedisConn& redis);
  std::string greeting() override { return session_.handshake(); }
  Next onInput(std::string_view data, bool eof, std::string& out) override;
  bool midRequest() const override { return !buf_.empty(); }
  uint64_t requestsCompleted() const override { return completed_; }

 private:
  std::shared_ptr<const Config> snapshot_;  // a SIGHUP reload applies to new connections
  StoreAuthenticator authenticator_;
  AuthSession session_;
  std::string buf_;
  uint64_t completed_ = 0;
};

}  // namespace mailgate::policy

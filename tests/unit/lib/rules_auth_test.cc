// rules_auth_test.cc — AUTH answers for every key/account state and the
// unauthenticated-client rule, with the exact reply texts.
#include "mailgate/rules_auth.h"

#include <gtest/gtest.h>

using namespace mailgate;

namespace {

Result<KeyLookup> found(AccountState state, bool smtp = true) {
  KeyLookup k{KeyLookup::Kind::Found, KeyInfo{"acme", "k1", smtp, false, state}};
  return k;
}

TEST(RulesAuth, Answers) {
  auto ok = decideAuth(found(AccountState::Active), "", AuthInternalError::Fail);
  EXPECT_EQ(ok.kind, AuthResult::Kind::Ok);
  EXPECT_EQ(ok.user, "acme/k1");
  EXPECT_EQ(decideAuth(found(AccountState::Active), "acme", AuthInternalError::Fail).kind, AuthResult::Kind::Ok);
  EXPECT_EQ(decideAuth(found(AccountState::Active), "apikey", AuthInternalError::Fail).kind, AuthResult::Kind::Ok);
  EXPECT_EQ(decideAuth(found(AccountState::Active), "other", AuthInternalError::Fail).reason, "wrong api key");
  EXPECT_EQ(decideAuth(found(AccountState::Active), "APIKEY", AuthInternalError::Fail).reason, "wrong api key");
  EXPECT_EQ(decideAuth(Result<KeyLookup>(KeyLookup{}), "", AuthInternalError::Fail).reason, "wrong api key");
  EXPECT_EQ(decideAuth(found(AccountState::Deleted), "", AuthInternalError::Fail).reason, "client is deleted");
  EXPECT_EQ(decideAuth(found(AccountState::Blocked), "", AuthInternalError::Fail).reason, "client is blocked");
  EXPECT_EQ(decideAuth(found(AccountState::Active, false), "", AuthInternalError::Fail).reason,
            "api key doesn't have accesses");
}

TEST(RulesAuth, InternalErrorsAndThrottling) {
  Result<KeyLookup> down = Error{Error::Kind::Unavailable, "redis down"};
  auto fail = decideAuth(down, "", AuthInternalError::Fail);
  EXPECT_EQ(fail.kind, AuthResult::Kind::Fail);
  EXPECT_EQ(fail.reason, "internal service error");
  EXPECT_TRUE(fail.temporary);
  EXPECT_EQ(decideAuth(down, "", AuthInternalError::Disconnect).kind, AuthResult::Kind::Disconnect);
  Result<KeyLookup> throttled = KeyLookup{KeyLookup::Kind::Throttled, {}};
  EXPECT_EQ(decideAuth(throttled, "", AuthInternalError::Fail).kind, AuthResult::Kind::Disconnect);
}

TEST(RulesAuth, UnauthenticatedClients) {
  PolicyRequest req;
  SenderIdentity id;
  Verdict v = checkAuthenticated(req, std::nullopt, id);
  EXPECT_EQ(v.action, Action::Reject);
  EXPECT_EQ(v.reply, "530 5.7.0 no username or password");
  v = checkAuthenticated(req, std::string("acme"), id);
  EXPECT_EQ(v.action, Action::Dunno);
  EXPECT_EQ(id.account, "acme");
  EXPECT_TRUE(id.pinned);
  req.attrs["sasl_username"] = "shop/k9";
  v = checkAuthenticated(req, std::nullopt, id);
  EXPECT_EQ(v.action, Action::Dunno);
  EXPECT_EQ(id.account, "shop");
  EXPECT_EQ(id.key_id, "k9");
  EXPECT_FALSE(id.pinned);
}

TEST(RulesAuth, RelayForAuthenticatedAndPinnedClientsOnly) {
  PolicyRequest req;
  req.attrs["policy_context"] = "relay";
  EXPECT_EQ(checkRelay(req, std::nullopt).action, Action::Dunno);
  Verdict pinned = checkRelay(req, std::string("acme"));
  EXPECT_EQ(pinned.action, Action::Permit);
  EXPECT_EQ(pinned.reply, "OK");
  req.attrs["sasl_username"] = "shop/k9";
  EXPECT_EQ(checkRelay(req, std::nullopt).action, Action::Permit);
}

}  // namespace

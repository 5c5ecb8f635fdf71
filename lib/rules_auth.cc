// rules_auth.cc — AUTH answers (wrong api key, no access, blocked, deleted,
// internal error), the usernames a key may come with, and the policy
// service's rules for unauthenticated clients and for relaying.
#include "mailgate/rules_auth.h"

#include "mailgate/events.h"

namespace mailgate {

bool authUsernameAccepted(std::string_view username, std::string_view account) {
  return username.empty() || username == kApiKeyUsername || username == account;
}

AuthResult decideAuth(const Result<KeyLookup>& lookup, std::string_view username, AuthInternalError on_error) {
  using K = AuthResult::Kind;
  if (!lookup) {
    if (on_error == AuthInternalError::Disconnect) return AuthResult{K::Disconnect, "", "", true};
    return AuthResult{K::Fail, "", "internal service error", true};
  }
  switch (lookup->kind) {
    case KeyLookup::Kind::Throttled: return AuthResult{K::Disconnect, "", "too many failed attempts", true};
    case KeyLookup::Kind::Unknown: return AuthResult{K::Fail, "", "wrong api key", false};
    case KeyLookup::Kind::Found: break;
  }
  const KeyInfo& key = lookup->info;
  if (!authUsernameAccepted(username, key.account)) return AuthResult{K::Fail, "", "wrong api key", false};
  if (key.account_state == AccountState::Deleted) return AuthResult{K::Fail, "", "client is deleted", false};
  if (key.account_state == AccountState::Blocked) return AuthResult{K::Fail, "", "client is blocked", false};
  if (!key.smtp) return AuthResult{K::Fail, "", "api key doesn't have accesses", false};
  return AuthResult{K::Ok, key.account + "/" + key.key_id, "", false};
}

Verdict checkAuthenticated(const PolicyRequest& request, const std::optional<std::string>& pinned_account,
                           SenderIdentity& identity) {
  const std::string& user = request.get("sasl_username");
  if (!user.empty()) {
    auto [account, key_id] = splitAuthUser(user);
    identity = SenderIdentity{account, key_id, false};
    return dunno();
  }
  if (pinned_account) {
    identity = SenderIdentity{*pinned_account, "", true};
    return dunno();
  }
  return Verdict{Action::Reject, "530 5.7.0 no username or password", "unauthenticated"};
}

Verdict checkRelay(const PolicyRequest& request, const std::optional<std::string>& pinned_account) {
  if (!request.get("sasl_username").empty() || pinned_account) return Verdict{Action::Permit, "OK", "relay"};
  return dunno();
}

}  // namespace mailgate

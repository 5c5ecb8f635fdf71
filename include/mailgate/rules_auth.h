// rules_auth.h — who may send: the answer to an SMTP AUTH attempt from the
// key lookup, and the policy rule for clients that did not authenticate
// (IP pinning). Pure functions; the texts are those of DESIGN.md "Replies".
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "mailgate/auth_proto.h"
#include "mailgate/config.h"
#include "mailgate/policy_proto.h"
#include "mailgate/result.h"
#include "mailgate/store.h"
#include "mailgate/verdict.h"

namespace mailgate {

// The SASL usernames a key is accepted with: empty, the literal "apikey"
// (SendGrid's convention, for clients that refuse a blank user) or the
// key's account name. Anything else is "wrong api key".
constexpr std::string_view kApiKeyUsername = "apikey";
bool authUsernameAccepted(std::string_view username, std::string_view account);

AuthResult decideAuth(const Result<KeyLookup>& lookup, std::string_view username, AuthInternalError on_error);

// Who sends this request: the account of sasl_username ("ACCOUNT/KEYID"),
// else the account whose allowed networks hold client_address.
struct SenderIdentity {
  std::string account, key_id;
  bool pinned = false;  // attributed by client address, no AUTH
};

// Rejects (530 5.7.0) a request with neither AUTH nor a pinned network.
Verdict checkAuthenticated(const PolicyRequest& request, const std::optional<std::string>& pinned_account,
                           SenderIdentity& identity);

// policy_context=relay, asked from smtpd_relay_restrictions before
// reject_unauth_destination: Permit ("OK") for a client that authenticated
// or sends from an allowed network (which need not be in mynetworks), no
// objection otherwise (the sender rules answer 530 5.7.0 for those).
Verdict checkRelay(const PolicyRequest& request, const std::optional<std::string>& pinned_account);

}  // namespace mailgate

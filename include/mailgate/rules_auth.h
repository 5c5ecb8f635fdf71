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

// `username` is empty or must equal the key's account.
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

}  // namespace mailgate

// list_unsubscribe.h — the unsubscribe part of a message plan: the
// List-Unsubscribe (RFC 2369) and List-Unsubscribe-Post (RFC 8058) fields
// the milter adds for an account with unsubscribe=header|one-click, merged
// with the sender's own, and the removal of X-Mailgate-Unsubscribe. Pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mailgate/account_policy.h"
#include "mailgate/config.h"
#include "mailgate/rules_message.h"

namespace mailgate {

// "X-Mailgate-Unsubscribe: no" from the sender: no link for this message.
// The field never leaves, whatever its value and the account's mode.
constexpr const char* kUnsubscribeOptOutField = "X-Mailgate-Unsubscribe";
constexpr const char* kOneClickPost = "List-Unsubscribe=One-Click";

// The URLs of a List-Unsubscribe value: each <...> entry with its blanks
// removed, comments skipped, in order; an entry without its '>' is dropped.
std::vector<std::string> listUnsubscribeUrls(std::string_view value);

struct UnsubscribeRequest {
  UnsubscribeMode mode = UnsubscribeMode::Off;
  std::string account, campaign, queue_id;
  std::vector<std::string> rcpts;  // the recipients the message is delivered to
  int64_t now_ms = 0;
};

struct UnsubscribePlan {
  std::vector<HeaderEdit> edits;  // against the header as received
  // For the log (" unsubscribe=..."; empty: the account's mode is off):
  // one-click, header, sender-no (X-Mailgate-Unsubscribe: no),
  // several-recipients, unconfigured (no web secret or web_base_url), too-long.
  std::string note;
};

// With the account's mode header or one-click and no "X-Mailgate-Unsubscribe:
// no", and exactly one recipient (a token names one recipient, and anyone
// else who got the message could unsubscribe that one with it; bulk mail
// goes one message per recipient anyway), List-Unsubscribe becomes
// <https://BASE/u/TOKEN> (token under config.web_secrets.front(), link under
// config.web_base_url) followed by the sender's entries of every
// List-Unsubscribe it sent (the first field is replaced, the others
// deleted): its mailto: entries, and its https: ones unless a
// List-Unsubscribe-Post leaves (RFC 8058 section 3.1: one HTTPS URI),
// each once. For one-click, List-Unsubscribe-Post: List-Unsubscribe=One-Click
// replaces the sender's. Otherwise the sender's fields stay as sent.
UnsubscribePlan planUnsubscribe(const HeaderList& headers, const UnsubscribeRequest& request, const Config& config);

}  // namespace mailgate

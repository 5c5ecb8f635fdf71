// rules_envelope.h — the envelope rules of mailgate-policy (DESIGN.md
// "Replies"): account state, sender address and sending domain, message
// size, recipient count, stoplist and hard bounces. Pure: the request, the
// account's loaded data and the transaction's recipient count in, a Verdict out.
#pragma once

#include <cstdint>

#include "mailgate/account_policy.h"
#include "mailgate/config.h"
#include "mailgate/policy_proto.h"
#include "mailgate/verdict.h"

namespace mailgate {

// Which rules a request asks for, from its policy_context: Postfix renders a
// reply in the context of the restriction list that asked (an address DSN
// such as 5.1.7 survives only in smtpd_sender_restrictions), so main.cf can
// call the service from both lists with policy_context=sender / recipient.
// policy_context=relay (smtpd_relay_restrictions) runs only checkRelay
// (rules_auth.h). Without a context every envelope rule runs.
enum class PolicyScope { All, Sender, Recipient, Relay };
PolicyScope policyScope(const PolicyRequest& request);

// Rules in order; the first objection wins. `accepted_rcpts` counts the
// recipients this transaction already passed (Postfix: same `instance`).
Verdict checkEnvelope(const PolicyRequest& request, const AccountPolicy& account, const Config& config,
                      uint64_t accepted_rcpts);

// The individual rules, for tests and for the milter.
Verdict checkAccountState(const AccountPolicy& account);
Verdict checkSender(std::string_view sender, const AccountPolicy& account);
// The sending-domain part of checkSender (also used for the header From).
Verdict checkSendingDomain(std::string_view domain, const AccountPolicy& account);
Verdict checkSize(uint64_t size, const AccountPolicy& account, const Config& config);
Verdict checkRecipientCount(uint64_t count, const AccountPolicy& account, const Config& config);
Verdict checkRecipient(std::string_view recipient, const AccountPolicy& account);
// A recipient unsubscribed from the message's campaign (account.campaign_stoplist):
// dropped at end of data whatever the suppression mode (the campaign is
// known only then), rule "campaign_unsubscribed"; else dunno().
Verdict checkCampaignUnsubscribed(std::string_view recipient, const AccountPolicy& account);

}  // namespace mailgate

// rules_envelope.cc — every envelope rule of the policy service, each a pure
// function returning the exact reply of DESIGN.md "Replies".
#include "mailgate/rules_envelope.h"

#include <charconv>

#include "mailgate/address.h"

namespace mailgate {
namespace {

Verdict reject(const char* reply, const char* rule) { return Verdict{Action::Reject, reply, rule}; }

uint64_t number(const std::string& v) {
  uint64_t n = 0;
  std::from_chars(v.data(), v.data() + v.size(), n);
  return n;
}

}  // namespace

Verdict checkAccountState(const AccountPolicy& account) {
  if (!account.exists || account.state == AccountState::Deleted) return reject("550 5.7.1 client is deleted", "account");
  if (account.state == AccountState::Blocked) return reject("550 5.7.1 client is blocked", "account");
  return dunno();
}

Verdict checkSender(std::string_view sender, const AccountPolicy& account) {
  auto mailbox = parseMailbox(sender);
  if (!mailbox) return reject("550 5.1.7 invalid from email", "sender");
  return checkSendingDomain(mailbox->domain, account);
}

Verdict checkSendingDomain(std::string_view domain_text, const AccountPolicy& account) {
  std::string domain = toLower(domain_text);
  const DomainEntry* entry = nullptr;
  if (auto it = account.domains.find(domain); it != account.domains.end()) {
    entry = &it->second;
  } else {
    for (const auto& parent : parentDomains(domain)) {
      auto p = account.domains.find(parent);
      if (p != account.domains.end() && p->second.subdomains) {
        entry = &p->second;
        break;
      }
    }
  }
  if (entry == nullptr) return reject("550 5.7.1 error/sender/unknown", "sender_domain");
  switch (entry->status) {
    case DomainStatus::Verified: return dunno();
    case DomainStatus::OnModeration: return reject("550 5.7.1 error/sender/onmoderation", "sender_domain");
    case DomainStatus::Prohibited: return reject("550 5.7.1 error/sender/prohibited", "sender_domain");
  }
  return dunno();
}

Verdict checkSize(uint64_t size, const AccountPolicy& account, const Config& config) {
  uint64_t max = account.limits.size ? account.limits.size : config.max_message_size;
  if (max > 0 && size > max) return reject("552 5.3.4 message too big", "size");
  return dunno();
}

Verdict checkRecipientCount(uint64_t count, const AccountPolicy& account, const Config& config) {
  uint64_t max = account.limits.rcpts ? account.limits.rcpts : config.max_recipients;
  if (max > 0 && count > max) return Verdict{Action::TempFail, "452 4.5.3 too many recipients", "rcpts"};
  return dunno();
}

Verdict checkRecipient(std::string_view recipient, const AccountPolicy& account) {
  // A recipient that cannot be looked up must not pass the suppression checks.
  auto forms = recipientKeys(recipient, account.subaddress);
  if (!forms) return reject("550 5.1.3 Bad recipient address syntax", "recipient_syntax");
  Action action = account.suppression == Suppression::AcceptAndDrop ? Action::Dunno : Action::Reject;
  for (const auto& form : *forms) {
    if (account.stoplist.count(form)) {
      return Verdict{action, action == Action::Dunno ? "" : "550 5.0.0 Email is in the account stoplist",
                     action == Action::Dunno ? "stoplist_suppressed" : "stoplist"};
    }
  }
  for (const auto& form : *forms) {
    if (account.bounced.count(form)) {
      return Verdict{action, action == Action::Dunno ? "" : "550 5.0.0 Email has permanent delivery errors",
                     action == Action::Dunno ? "bounced_suppressed" : "bounced"};
    }
  }
  return dunno();
}

Verdict checkCampaignUnsubscribed(std::string_view recipient, const AccountPolicy& account) {
  auto forms = recipientKeys(recipient, account.subaddress);
  if (!forms) return dunno();
  for (const auto& form : *forms) {
    if (account.campaign_stoplist.count(form)) return Verdict{Action::Dunno, "", "campaign_unsubscribed"};
  }
  return dunno();
}

PolicyScope policyScope(const PolicyRequest& req) {
  const std::string& context = req.get("policy_context");
  if (context == "sender") return PolicyScope::Sender;
  if (context == "recipient") return PolicyScope::Recipient;
  if (context == "relay") return PolicyScope::Relay;
  return PolicyScope::All;
}

Verdict checkEnvelope(const PolicyRequest& req, const AccountPolicy& account, const Config& config,
                      uint64_t accepted_rcpts) {
  PolicyScope scope = policyScope(req);
  Verdict v = checkAccountState(account);
  if (v.action != Action::Dunno) return v;
  if (scope != PolicyScope::Recipient) {
    v = checkSender(req.get("sender"), account);
    if (v.action != Action::Dunno) return v;
    v = checkSize(number(req.get("size")), account, config);
    if (v.action != Action::Dunno) return v;
  }
  if (scope == PolicyScope::Sender) return dunno();
  const std::string& state = req.get("protocol_state");
  if (state == "RCPT") {
    // Exim sends the count of recipients accepted so far; Postfix does not.
    uint64_t before = std::max<uint64_t>(accepted_rcpts, number(req.get("recipient_count")));
    v = checkRecipientCount(before + 1, account, config);
    if (v.action != Action::Dunno) return v;
    return checkRecipient(req.get("recipient"), account);
  }
  if (state == "END-OF-MESSAGE" || state == "DATA") return checkRecipientCount(number(req.get("recipient_count")), account, config);
  return dunno();
}

}  // namespace mailgate

// transaction_cache.h — what mailgate-policy keeps of the SMTP transaction in
// hand on one Postfix connection, so that the requests Postfix sends about one
// message (policy_context=sender and =recipient at each RCPT, END-OF-MESSAGE)
// read the account from Redis once: the account hash with the sender domain's
// entries, and the stoplist and bounce entries of the last recipient looked up.
// One entry, keyed by instance + sasl_username + client_address + account,
// each part used for at most `ttl` after it was read. Pure: no I/O.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "mailgate/account_policy.h"
#include "mailgate/policy_proto.h"

namespace mailgate {

class TransactionCache {
 public:
  using Clock = std::chrono::steady_clock;

  // ttl 0: nothing is kept.
  explicit TransactionCache(std::chrono::milliseconds ttl) : ttl_(ttl) {}

  // The key of `request`'s transaction for `account`; empty (nothing cached)
  // without an `instance` (Exim) or when the cache is off.
  std::string keyOf(const PolicyRequest& request, std::string_view account) const;

  // The account data read for `key` less than ttl ago, holding the entries of
  // `sender_domain` (unless empty); else nullptr.
  AccountPolicy* account(const std::string& key, std::string_view sender_domain, Clock::time_point now);

  // Whether account()'s stoplist and bounce entries are those of `recipient`,
  // read less than ttl ago.
  bool holdsRecipient(std::string_view recipient, Clock::time_point now) const;

  // Replaces the entry: `policy` as read for `key` at `now`, with the entries
  // of `sender_domain` and the stoplist and bounce entries of `recipient`
  // (empty: none were read).
  AccountPolicy& store(std::string key, AccountPolicy policy, std::string sender_domain, std::string recipient,
                       Clock::time_point now);

  // account()'s stoplist and bounce entries were replaced by `recipient`'s.
  void storeRecipient(std::string recipient, Clock::time_point now);

  void clear();

 private:
  std::chrono::milliseconds ttl_;
  std::string key_, sender_domain_, recipient_;
  bool has_recipient_ = false;
  Clock::time_point read_at_{}, recipient_read_at_{};
  AccountPolicy policy_;
};

}  // namespace mailgate

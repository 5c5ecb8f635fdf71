// transaction_cache.cc — the one-entry, per-connection cache of an SMTP
// transaction's account data for mailgate-policy: key building, expiry, and
// which sender domain and recipient the entry holds.
#include "mailgate/transaction_cache.h"

#include "mailgate/address.h"

namespace mailgate {

std::string TransactionCache::keyOf(const PolicyRequest& req, std::string_view account) const {
  const std::string& instance = req.get("instance");
  if (instance.empty() || ttl_.count() <= 0) return "";
  // Attribute values never hold a newline (it ends the line), so the parts
  // cannot run into each other.
  std::string key;
  key.reserve(instance.size() + account.size() + 64);
  key += instance;
  key += '\n';
  key += req.get("sasl_username");
  key += '\n';
  key += req.get("client_address");
  key += '\n';
  key += account;
  return key;
}

AccountPolicy* TransactionCache::account(const std::string& key, std::string_view sender_domain,
                                         Clock::time_point now) {
  if (key.empty() || key != key_ || now - read_at_ >= ttl_) return nullptr;
  if (!sender_domain.empty() && toLower(sender_domain) != sender_domain_) return nullptr;
  return &policy_;
}

bool TransactionCache::holdsRecipient(std::string_view recipient, Clock::time_point now) const {
  return has_recipient_ && recipient == recipient_ && now - recipient_read_at_ < ttl_;
}

AccountPolicy& TransactionCache::store(std::string key, AccountPolicy policy, std::string sender_domain,
                                       std::string recipient, Clock::time_point now) {
  key_ = std::move(key);
  policy_ = std::move(policy);
  sender_domain_ = toLower(sender_domain);
  read_at_ = now;
  has_recipient_ = !recipient.empty();
  recipient_ = std::move(recipient);
  recipient_read_at_ = now;
  return policy_;
}

void TransactionCache::storeRecipient(std::string recipient, Clock::time_point now) {
  recipient_ = std::move(recipient);
  has_recipient_ = true;
  recipient_read_at_ = now;
}

void TransactionCache::clear() {
  key_.clear();
  has_recipient_ = false;
  policy_ = AccountPolicy{};
}

}  // namespace mailgate

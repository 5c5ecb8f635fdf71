// account_policy.cc — parsing of the account fields the rules use: domain
// entries, rates, limits, suppression and unsubscribe modes.
#include "mailgate/account_policy.h"

#include <charconv>

namespace mailgate {
namespace {

uint64_t toNumber(std::string_view v) {
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  return ec == std::errc() && p == v.data() + v.size() ? n : 0;
}

}  // namespace

std::optional<DomainStatus> parseDomainStatus(std::string_view text) {
  if (text == "verified") return DomainStatus::Verified;
  if (text == "onmoderation") return DomainStatus::OnModeration;
  if (text == "prohibited") return DomainStatus::Prohibited;
  return std::nullopt;
}

const char* domainStatusName(DomainStatus s) {
  switch (s) {
    case DomainStatus::Verified: return "verified";
    case DomainStatus::OnModeration: return "onmoderation";
    case DomainStatus::Prohibited: return "prohibited";
  }
  return "prohibited";
}

std::optional<DomainEntry> parseDomainEntry(std::string_view text) {
  DomainEntry e;
  size_t comma = text.find(',');
  if (comma != std::string_view::npos) {
    if (text.substr(comma + 1) != "subdomains") return std::nullopt;
    e.subdomains = true;
    text = text.substr(0, comma);
  }
  auto status = parseDomainStatus(text);
  if (!status) return std::nullopt;
  e.status = *status;
  return e;
}

std::string formatDomainEntry(const DomainEntry& e) {
  return std::string(domainStatusName(e.status)) + (e.subdomains ? ",subdomains" : "");
}

std::optional<UnsubscribeMode> parseUnsubscribeMode(std::string_view text) {
  if (text == "off") return UnsubscribeMode::Off;
  if (text == "header") return UnsubscribeMode::Header;
  if (text == "one-click") return UnsubscribeMode::OneClick;
  return std::nullopt;
}

std::optional<UnsubscribeScope> parseUnsubscribeScope(std::string_view text) {
  if (text == "account") return UnsubscribeScope::Account;
  if (text == "campaign") return UnsubscribeScope::Campaign;
  return std::nullopt;
}

std::optional<Rate> parseRate(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  uint64_t n = toNumber(text.substr(0, slash));
  std::string_view unit = text.substr(slash + 1);
  uint64_t period = unit == "s" ? 1000 : unit == "m" ? 60000 : unit == "h" ? 3600000 : 0;
  if (n == 0 || period == 0 || n > 1000000) return std::nullopt;
  return Rate{n, period};
}

std::string formatRate(const Rate& r) {
  const char* unit = r.period_ms == 1000 ? "s" : r.period_ms == 60000 ? "m" : "h";
  return std::to_string(r.count) + "/" + unit;
}

void AccountPolicy::applyField(std::string_view name, std::string_view value) {
  if (name == "state") {
    exists = true;
    state = parseAccountState(value).value_or(AccountState::Deleted);
  } else if (name == "suppression") {
    suppression = value == "accept-and-drop" ? Suppression::AcceptAndDrop : Suppression::Reject;
  } else if (name == "subaddress") {
    subaddress = value == "yes";
  } else if (name == "rate") {
    limits.rate = parseRate(value).value_or(Rate{});
  } else if (name.starts_with("rate:")) {
    if (auto r = parseRate(value)) limits.key_rates[std::string(name.substr(5))] = *r;
  } else if (name == "daily") {
    limits.daily = toNumber(value);
  } else if (name == "rcpts") {
    limits.rcpts = toNumber(value);
  } else if (name == "size") {
    limits.size = toNumber(value);
  }
}

}  // namespace mailgate

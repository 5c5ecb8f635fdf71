// feedback_stats.h — the complaint rate `mailgatectl stats` shows: a day's
// complaints over its deliveries, for the account and per campaign, and the
// 0.1% line Gmail's bulk-sender rules ask senders to stay under. Pure.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mailgate {

// Google asks bulk senders to keep the spam rate Postmaster Tools shows
// below 0.10% (and never reach 0.30%).
constexpr double kComplaintRateWarn = 0.001;

// complained / delivered; nullopt without deliveries that day (complaints
// about earlier days' mail have no rate of their own).
std::optional<double> complaintRate(long long complained, long long delivered);

// "0.125%" (three decimals), or "n/a".
std::string formatRate(std::optional<double> rate);

struct CampaignFeedback {
  std::string campaign;
  long long delivered = 0, unsubscribed = 0, complained = 0;
  std::optional<double> rate() const { return complaintRate(complained, delivered); }
};

// The campaigns of a day's counters ("CAMPAIGN:STATUS" -> count, as in
// cstats:{A}:DAY) with a delivery, an unsubscribe or a complaint; the
// highest complaint rate first (campaigns without a rate last), then by name.
std::vector<CampaignFeedback> campaignFeedback(const std::map<std::string, long long>& campaign_counts);

}  // namespace mailgate

// feedback_stats.cc — complaint rates for `mailgatectl stats` (see
// feedback_stats.h).
#include "mailgate/feedback_stats.h"

#include <algorithm>
#include <cstdio>

namespace mailgate {

std::optional<double> complaintRate(long long complained, long long delivered) {
  if (delivered <= 0) return std::nullopt;
  return static_cast<double>(complained) / static_cast<double>(delivered);
}

std::string formatRate(std::optional<double> rate) {
  if (!rate) return "n/a";
  char text[32];
  std::snprintf(text, sizeof text, "%.3f%%", *rate * 100.0);
  return text;
}

std::vector<CampaignFeedback> campaignFeedback(const std::map<std::string, long long>& campaign_counts) {
  std::map<std::string, CampaignFeedback> by_name;
  for (const auto& [field, count] : campaign_counts) {
    size_t colon = field.rfind(':');
    if (colon == std::string::npos) continue;
    std::string status = field.substr(colon + 1);
    long long CampaignFeedback::*slot = status == "delivered"      ? &CampaignFeedback::delivered
                                        : status == "unsubscribed" ? &CampaignFeedback::unsubscribed
                                        : status == "complained"   ? &CampaignFeedback::complained
                                                                   : nullptr;
    if (slot == nullptr || count == 0) continue;
    CampaignFeedback& row = by_name[field.substr(0, colon)];
    row.campaign = field.substr(0, colon);
    row.*slot += count;
  }
  std::vector<CampaignFeedback> rows;
  for (auto& [name, row] : by_name) rows.push_back(std::move(row));
  std::stable_sort(rows.begin(), rows.end(), [](const CampaignFeedback& a, const CampaignFeedback& b) {
    return a.rate().value_or(-1.0) > b.rate().value_or(-1.0);
  });
  return rows;
}

}  // namespace mailgate

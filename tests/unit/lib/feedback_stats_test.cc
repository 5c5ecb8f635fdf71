// feedback_stats_test.cc — complaint rates and the per-campaign rows of
// `mailgatectl stats`.
#include "mailgate/feedback_stats.h"

#include <gtest/gtest.h>

namespace mailgate {
namespace {

TEST(ComplaintRate, IsComplaintsOverDeliveries) {
  EXPECT_EQ(formatRate(complaintRate(2, 1600)), "0.125%");
  EXPECT_EQ(formatRate(complaintRate(0, 10)), "0.000%");
  EXPECT_EQ(formatRate(complaintRate(3, 0)), "n/a");
  EXPECT_GT(*complaintRate(2, 1000), kComplaintRateWarn);
  EXPECT_FALSE(*complaintRate(1, 1000) > kComplaintRateWarn);
}

TEST(CampaignFeedback, KeepsCampaignsWithFeedbackHighestRateFirst) {
  std::map<std::string, long long> counts{
      {"spring:delivered", 1000}, {"spring:complained", 1},   {"spring:accepted", 1000},
      {"summer:delivered", 100},  {"summer:complained", 2},   {"summer:unsubscribed", 5},
      {"quiet:accepted", 7},      {"old:complained", 1},      {"a:b:delivered", 4},
      {"nocolon", 9},             {"zero:delivered", 0}};
  auto rows = campaignFeedback(counts);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].campaign, "summer");
  EXPECT_EQ(rows[0].unsubscribed, 5);
  EXPECT_EQ(formatRate(rows[0].rate()), "2.000%");
  EXPECT_EQ(rows[1].campaign, "spring");
  EXPECT_EQ(rows[2].campaign, "a:b");  // a campaign name may hold ':'
  EXPECT_EQ(rows[2].delivered, 4);
  EXPECT_EQ(rows[3].campaign, "old");  // complaints about an earlier day's mail: no rate
  EXPECT_FALSE(rows[3].rate());
}

}  // namespace
}  // namespace mailgate

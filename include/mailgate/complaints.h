// complaints.h — what `mailgatectl fbl` does with one feedback-loop report:
// the plan (pure: a complaint to record, or a report to keep because it is
// unparseable, unattributable or not a complaint) and the one script that
// records it (event `complained`, stoplist, complaint record) or keeps it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mailgate/arf.h"
#include "mailgate/config.h"
#include "mailgate/events.h"
#include "mailgate/redis.h"
#include "mailgate/result.h"

namespace mailgate {

// Reports kept (unparseable, unattributable, not complaints), newest first.
constexpr unsigned kKeptReportsMax = 1000;
// A kept report's message is cut to this many bytes.
constexpr size_t kKeptReportBytes = 64 * 1024;

struct ComplaintPlan {
  // complained: record `event`; else the report is kept, counted under
  // `outcome` (unparseable, unattributed, ignored) with `reason`.
  std::string outcome;
  std::string reason;
  Event event;               // status complained; code = the Feedback-Type
  std::string feedback_type, user_agent, reporting_mta;
};

// Feedback-Types that are complaints (suppress the recipient): abuse,
// fraud, virus. not-spam, auth-failure and other are kept, not suppressing.
bool isComplaintType(const std::string& feedback_type);

ComplaintPlan planComplaint(const Result<ComplaintReport>& report, int64_t now_ms);

// When the original's List-Unsubscribe holds our link (.../u/TOKEN) whose
// token verifies under `secrets` (expired ones too: a complaint may come
// long after the mail), its account, recipient, campaign and queue id
// replace what the headers say: signed, they survive a provider's redaction
// of To and Original-Rcpt-To (Yahoo). False when there is no such token.
bool attributeByUnsubscribeToken(ComplaintReport& report, const std::vector<std::string>& secrets, int64_t now_s);

struct ComplaintEntry {
  int64_t time_ms = 0;
  std::string recipient, campaign, queue_id, feedback_type, user_agent, reporting_mta;
};

// Records `plan` in one script: a complaint adds the complaint record
// (complaints:{A}, field "RCPT QUEUEID", once: false when recorded before,
// nothing written), the stoplist entry and the event with its day counters;
// a kept report is pushed (capped) to fbl:kept with `message` (cut) and
// counted in fbl:stats:DAY.
Result<bool> recordComplaint(RedisConn& redis, const Config& config, const ComplaintPlan& plan,
                             std::string_view message);

// An account's complaints, newest first.
Result<std::vector<ComplaintEntry>> listComplaints(RedisConn& redis, const Config& config,
                                                   const std::string& account);

}  // namespace mailgate

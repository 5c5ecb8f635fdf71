// arf.h — complaint reports from mailbox providers' feedback loops: RFC 5965
// ARF (multipart/report; report-type=feedback-report, as Yahoo and Mail.ru
// send them) and Microsoft JMRP (the original attached as message/rfc822),
// parsed with GMime into the report's fields and the original's headers. Pure.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "mailgate/result.h"

namespace mailgate {

struct ComplaintReport {
  std::string format;  // "arf" or "jmrp"
  // The machine-readable part (message/feedback-report), as given (unfolded,
  // trimmed); a JMRP report without one says feedback_type "abuse".
  std::string feedback_type, user_agent, reporting_mta, version, original_rcpt_to, original_mail_from, arrival_date,
      reported_domain, source_ip;
  // The original message's headers (message/rfc822 or text/rfc822-headers).
  std::string message_id, to, from, feedback_id, campaign_header, letter_id, list_unsubscribe,
      hm_original_recipient;
  // The "id X" of every Received header of the original, top first: our
  // Postfix's queue id is one of them.
  std::vector<std::string> received_ids;
  // From Feedback-ID "CAMPAIGN:ACCOUNT:mailgate" (rules_message.cc), if ours.
  std::string account, campaign;
  // The complaining recipient, a valid mailbox or empty when the provider
  // redacted it: Original-Rcpt-To, else X-HmXmrOriginalRecipient, else the
  // only address in To.
  std::string recipient;
  // Set by attributeByUnsubscribeToken (complaints.h): the queue id our
  // unsubscribe token names.
  std::string queue_id;
};

// Parses one report as delivered (header and body, LF or CRLF). A message
// that is neither ARF nor JMRP, or lacks the original's headers, is an
// Error (Invalid) saying why.
Result<ComplaintReport> parseComplaintReport(std::string_view message);

}  // namespace mailgate

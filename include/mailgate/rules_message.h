// rules_message.h — the message rules of mailgate-milter (DESIGN.md
// "Message rules"): required and duplicate headers, EMPTY-FROM, From domain,
// campaign/letter tags, blocked campaigns, sink recipients and sandbox keys.
// Pure: headers and the account's loaded data in, a MessagePlan out (the
// verdict, the header edits, which recipients go where).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mailgate/account_policy.h"
#include "mailgate/config.h"
#include "mailgate/header.h"
#include "mailgate/verdict.h"

namespace mailgate {

using HeaderList = std::vector<std::pair<std::string, std::string>>;  // name, value as received

// The number of fields named `name`; the value of the first (nullptr: none).
size_t countHeader(const HeaderList& headers, std::string_view name);
const std::string* firstHeader(const HeaderList& headers, std::string_view name);

constexpr const char* kEmptyFrom = "EMPTY-FROM";

// What the headers say, before any account data is needed.
struct MessageFacts {
  std::optional<HeaderAddress> from;  // the first From mailbox; nullopt: EMPTY-FROM (or no From at all)
  bool has_from = false;
  std::vector<std::string> from_domains;  // of every From mailbox (RFC 5322 allows several), each once
  std::string campaign;   // X-Campaign-Id, else the daily campaign YYYY-MM-DD (UTC)
  std::string letter_id;  // X-Letter-Id, may be empty
  std::string subject;
  Verdict header_verdict;  // duplicate/missing headers, invalid tags (checked first)
  std::vector<std::string> missing_to_add;  // Date / Message-Id the milter adds
};

MessageFacts extractFacts(const HeaderList& headers, const Config& config, int64_t now_ms);

// Add what the tag fields (nullptr: absent) and one From field say to
// `facts`, as extractFacts does with the first of each: the campaign (else
// the daily one) and letter id, "550 5.6.0 invalid X-Campaign-Id" /
// "X-Letter-Id"; the From mailboxes, their domains, "550 5.6.0 invalid From:".
void addTagFields(const std::string* campaign, const std::string* letter, int64_t now_ms, MessageFacts& facts);
void addFromField(const std::string& value, MessageFacts& facts);

// The milter keeps at most this many header fields of a message (Postfix
// passes more: its header_size_limit counts bytes); a message with more is
// refused with tooManyHeaderFields(), never checked on the fields kept.
constexpr size_t kMaxHeaderFields = 10000;
Verdict tooManyHeaderFields();

// The sender an outcome records: the From address, or EMPTY-FROM.
inline std::string recordedFrom(const MessageFacts& facts) { return facts.from ? facts.from->address : kEmptyFrom; }

// The account data the rules need, loaded by the milter in one round trip.
struct MessageAccount {
  AccountPolicy policy;  // state, domains (From domain and parents), stoplist/bounced hits
  std::optional<EmptyFromMode> empty_from;  // account override of config empty_from
  std::string default_sender;
  std::string dkim_domain;  // the account's own default signing domain
  bool campaign_blocked = false;
  bool sandbox = false;  // the key is a sandbox key
  std::string dkim_version;  // dkim:version, for DkimKeyCache::keysFor (no round trip of its own)
  UnsubscribeMode unsubscribe = UnsubscribeMode::Off;  // unsubscribe= (list_unsubscribe.h)
};

struct HeaderEdit {
  enum class Kind { Add, Change };  // Change with an empty value deletes
  Kind kind;
  std::string name;
  int index = 1;  // Change: 1-based among headers of that name
  std::string value;
};

struct MessagePlan {
  Verdict verdict;            // Reject: refuse the message with verdict.reply
  std::string discard;        // "sink" or "sandbox": accept and drop the message
  std::vector<HeaderEdit> edits;
  std::vector<std::string> sink_rcpts, deliver_rcpts;
  std::string recorded_from;  // recordedFrom(facts)
  std::string message_id;     // the Message-Id header, or the one the milter adds
  std::string rule;           // for the log: empty_from=mark, ...
  std::string unsubscribe;    // for the log: UnsubscribePlan::note ("" = off)
  std::vector<std::string> folded_headers;  // fields refolded for lines over 998 octets (long_lines)
  // The header as it will leave (applyHeaderEdits(headers, edits), built
  // once): what DKIM signs. Empty when the plan refuses the message.
  HeaderList headers;
};

// Mail without an account (no AUTH and no allowed network, or non-SMTP mail
// from sendmail(1)) is never held to an account's rules nor signed with its
// keys: local_submission = pass lets it through untouched (Dunno), reject
// refuses it.
Verdict checkLocalSubmission(const Config& config);

// `rcpts` are the envelope recipients left after suppression; `account` is
// the sending account (never empty: see checkLocalSubmission); `queue_id`
// goes into the unsubscribe token (planUnsubscribe).
MessagePlan decideMessage(const MessageFacts& facts, const HeaderList& headers, const std::string& account,
                          const MessageAccount& data, const std::vector<std::string>& rcpts, const Config& config,
                          int64_t now_ms, const std::string& hostname, const std::string& queue_id);

// A recipient of sink_recipients: accepted, never delivered, never counted.
bool isSinkRecipient(std::string_view rcpt, const Config& config);

// The From-domain rule of decideMessage: every From domain must be a sending
// domain of the account (checkSendingDomain: 550 5.7.1 error/sender/...).
Verdict checkFromDomains(const MessageFacts& facts, const AccountPolicy& policy);

// The header rules on From and the tags alone, for an MTA without a milter
// (Exim: its data ACL passes those fields to mailgate-policy as
// x_header_from, x_header_x_campaign_id, x_header_x_letter_id, each absent
// when the message has none). The facts of those fields (nullopt: absent).
MessageFacts headerFieldFacts(const std::optional<std::string>& from, const std::optional<std::string>& campaign,
                              const std::optional<std::string>& letter, int64_t now_ms);
// Exim's $h_from: joins every From field into one (a second field can hide
// in a comment the first one opens) and misses "From :" (blanks before the
// colon); its data ACL therefore also counts the From fields of the raw
// header section (x_header_from_fields) and gives the section's size
// (x_header_bytes), which Exim cuts at kEximHeaderBytes. The milter's
// refusals for what x_header_from cannot show, put first into
// facts.header_verdict: "550 5.6.0 duplicate From:", a From field $h_from:
// missed ("550 5.6.0 invalid From:"), and a section past the cut
// (tooManyHeaderFields(): a second From could hide behind it).
constexpr uint64_t kEximHeaderBytes = 64 * 1024;
void addHeaderSection(uint64_t from_fields, uint64_t header_bytes, MessageFacts& facts);
// The milter's checks of them, in its order, with its replies: a missing From
// when required ("550 5.6.0 no From:"), an invalid tag or From ("550 5.6.0
// invalid X-Campaign-Id", "... invalid From:"), one without an address under
// empty_from = reject ("550 5.6.0 no email in From:"), checkFromDomains, and
// a blocked campaign ("550 5.7.1 issue is blocked"; `data` loaded for
// facts.campaign). EMPTY-FROM under mark or rewrite passes unchanged (the
// ACL cannot edit the header).
Verdict checkHeaderFields(const MessageFacts& facts, const MessageAccount& data, const Config& config);

// What DKIM signing set up at end of headers (and met in the body).
struct SigningState {
  bool keys_unreadable = false;  // Redis failed while the keys were read
  bool no_key = false;           // no key for the domain (dkim_required)
  bool failed = false;           // signing failed (dkim_on_error)
};

// What the milter does at end of message before it makes its changes.
enum class Finish {
  Refuse,             // answer `refusal` (reject or tempfail) for every recipient
  RedisTempfail,      // the keys could not be read, on_redis_failure = tempfail
  DiscardSuppressed,  // every recipient was suppressed: drop the message
  Carry,              // carry out the plan: deliver (edits, signatures) or its discard
};

struct EndOfMessage {
  Finish finish = Finish::Carry;
  Verdict refusal;        // Refuse
  std::string dkim_note;  // for the log: " dkim=none", " dkim=error", " dkim=unavailable"
};

// The message rules first (a refused message is refused even when every
// recipient is suppressed), then suppression, then, for a message that is
// delivered, DKIM trouble: unreadable keys (on_redis_failure; with accept the
// plan is carried out unsigned, unless dkim_required tempfails it), a signing
// error (dkim_on_error), no key (dkim_required).
EndOfMessage finishMessage(const MessagePlan& plan, bool every_rcpt_suppressed, const SigningState& dkim,
                           const Config& config);

// The header as it will leave: `edits` applied to `received` (changes and
// deletions in place, additions appended), which is what DKIM signs.
HeaderList applyHeaderEdits(const HeaderList& received, const std::vector<HeaderEdit>& edits);

// [A-Za-z0-9_-]{1,128}
bool validTag(std::string_view value);

// RFC 5322 date in UTC ("Wed, 25 Nov 2026 23:30:00 +0000").
std::string rfc5322Date(int64_t unix_ms);

}  // namespace mailgate

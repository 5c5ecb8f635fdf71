// rules_message.cc — every message rule of the milter, as pure functions over
// the received headers and the account's data. The order of the checks is
// the order of DESIGN.md "Message rules"; the first refusal wins.
#include "mailgate/rules_message.h"

#include <algorithm>
#include <ctime>

#include "mailgate/address.h"
#include "mailgate/crypto.h"
#include "mailgate/limits.h"
#include "mailgate/list_unsubscribe.h"
#include "mailgate/long_lines.h"
#include "mailgate/rules_envelope.h"

namespace mailgate {
namespace {

bool contains(const std::vector<std::string>& list, std::string_view name) {
  for (const auto& n : list) {
    if (sameFieldName(n, name)) return true;
  }
  return false;
}

Verdict reject(std::string reply, std::string rule) { return Verdict{Action::Reject, std::move(reply), std::move(rule)}; }

}  // namespace

size_t countHeader(const HeaderList& headers, std::string_view name) {
  size_t n = 0;
  for (const auto& [k, v] : headers) n += sameFieldName(k, name) ? 1 : 0;
  return n;
}

const std::string* firstHeader(const HeaderList& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (sameFieldName(k, name)) return &v;
  }
  return nullptr;
}

HeaderList applyHeaderEdits(const HeaderList& received, const std::vector<HeaderEdit>& edits) {
  std::vector<std::optional<std::pair<std::string, std::string>>> out(received.begin(), received.end());
  for (const auto& e : edits) {
    if (e.kind == HeaderEdit::Kind::Add) {
      out.emplace_back(std::pair{e.name, e.value});
      continue;
    }
    int seen = 0;
    for (auto& h : out) {
      if (!h || !sameFieldName(h->first, e.name) || ++seen != std::max(e.index, 1)) continue;
      if (e.value.empty()) h.reset();
      else h->second = e.value;
      break;
    }
  }
  HeaderList result;
  for (auto& h : out) {
    if (h) result.push_back(std::move(*h));
  }
  return result;
}

bool validTag(std::string_view v) {
  if (v.empty() || v.size() > 128) return false;
  for (char c : v) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string rfc5322Date(int64_t ms) {
  time_t t = static_cast<time_t>(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  static const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buf[64];
  snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday], tm.tm_mday,
           kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

void addTagFields(const std::string* campaign, const std::string* letter, int64_t now_ms, MessageFacts& f) {
  if (f.header_verdict.action == Action::Dunno && campaign && !validTag(unfoldHeader(*campaign))) {
    f.header_verdict = reject("550 5.6.0 invalid X-Campaign-Id", "invalid_tag");
  }
  if (f.header_verdict.action == Action::Dunno && letter && !validTag(unfoldHeader(*letter))) {
    f.header_verdict = reject("550 5.6.0 invalid X-Letter-Id", "invalid_tag");
  }
  f.campaign = campaign && validTag(unfoldHeader(*campaign)) ? unfoldHeader(*campaign) : utcDate(now_ms);
  f.letter_id = letter && validTag(unfoldHeader(*letter)) ? unfoldHeader(*letter) : "";
}

void addFromField(const std::string& value, MessageFacts& f) {
  f.has_from = true;
  bool invalid = false;
  auto mailboxes = parseAddressList(value, &invalid);
  // Only a From without any address is EMPTY-FROM; a mailbox that fails
  // validation is refused, never skipped (the reader would still see it).
  if (invalid && f.header_verdict.action == Action::Dunno) f.header_verdict = reject("550 5.6.0 invalid From:", "invalid_from");
  if (!mailboxes.empty()) f.from = mailboxes.front();
  for (const auto& m : mailboxes) {
    std::string domain = m.address.substr(m.address.rfind('@') + 1);
    if (std::find(f.from_domains.begin(), f.from_domains.end(), domain) == f.from_domains.end()) {
      f.from_domains.push_back(std::move(domain));
    }
  }
}

MessageFacts extractFacts(const HeaderList& headers, const Config& config, int64_t now_ms) {
  MessageFacts f;
  for (const char* name : {"From", "Subject", "Date"}) {
    if (countHeader(headers, name) > 1) {
      f.header_verdict = reject(std::string("550 5.6.0 duplicate ") + name + ":", "duplicate_header");
      break;
    }
  }
  if (f.header_verdict.action == Action::Dunno) {
    for (const auto& name : config.required_headers) {
      if (countHeader(headers, name) > 0) continue;
      if (contains(config.add_missing_headers, name)) {
        f.missing_to_add.push_back(name);
        continue;
      }
      f.header_verdict = reject("550 5.6.0 no " + name + ":", "missing_header");
      break;
    }
  }
  addTagFields(firstHeader(headers, "X-Campaign-Id"), firstHeader(headers, "X-Letter-Id"), now_ms, f);
  if (const std::string* from = firstHeader(headers, "From")) addFromField(*from, f);
  if (const std::string* subject = firstHeader(headers, "Subject")) f.subject = unfoldHeader(*subject);
  return f;
}

Verdict tooManyHeaderFields() { return reject("550 5.6.0 too many header fields", "too_many_headers"); }

Verdict checkLocalSubmission(const Config& config) {
  if (config.local_submission == LocalSubmission::Reject) {
    return reject("550 5.7.1 mail without an account is not accepted here", "local_submission=reject");
  }
  return Verdict{Action::Dunno, "", "local_submission=pass"};
}

EndOfMessage finishMessage(const MessagePlan& plan, bool every_rcpt_suppressed, const SigningState& dkim,
                           const Config& config) {
  EndOfMessage end;
  auto refuse = [&](Verdict v) {
    end.finish = Finish::Refuse;
    end.refusal = std::move(v);
    return end;
  };
  if (plan.verdict.action != Action::Dunno) return refuse(plan.verdict);
  if (every_rcpt_suppressed) {
    end.finish = Finish::DiscardSuppressed;
    return end;
  }
  if (!plan.discard.empty()) return end;
  Verdict internal = redisFailureVerdict(RedisFailure::TempFail);  // 451 4.3.0 internal service error
  if (dkim.keys_unreadable) {
    if (config.on_redis_failure == RedisFailure::TempFail) {
      end.finish = Finish::RedisTempfail;
      return end;
    }
    // accept sends unsigned, which dkim_required forbids.
    if (config.dkim_required) return refuse({Action::TempFail, internal.reply, "dkim_required"});
    end.dkim_note = " dkim=unavailable";
  }
  if (dkim.failed && config.dkim_on_error_tempfail) return refuse({Action::TempFail, internal.reply, "dkim_error"});
  if (dkim.no_key && config.dkim_required) return refuse({Action::TempFail, internal.reply, "dkim_no_key"});
  if (dkim.no_key) end.dkim_note = " dkim=none";
  else if (dkim.failed) end.dkim_note = " dkim=error";
  return end;
}

bool isSinkRecipient(std::string_view rcpt, const Config& config) {
  auto mailbox = parseMailbox(rcpt);
  return mailbox && contains(config.sink_recipients, mailbox->key());
}

Verdict checkFromDomains(const MessageFacts& facts, const AccountPolicy& policy) {
  // Every From mailbox, not only the first (RFC 5322 allows several, with a Sender:).
  for (const auto& domain : facts.from_domains) {
    Verdict v = checkSendingDomain(domain, policy);
    if (v.action != Action::Dunno) return v;
  }
  return dunno();
}

MessageFacts headerFieldFacts(const std::optional<std::string>& from, const std::optional<std::string>& campaign,
                              const std::optional<std::string>& letter, int64_t now_ms) {
  MessageFacts f;
  addTagFields(campaign ? &*campaign : nullptr, letter ? &*letter : nullptr, now_ms, f);
  if (from) addFromField(*from, f);
  return f;
}

void addHeaderSection(uint64_t from_fields, uint64_t header_bytes, MessageFacts& f) {
  if (header_bytes >= kEximHeaderBytes) f.header_verdict = tooManyHeaderFields();
  else if (from_fields > 1) f.header_verdict = reject("550 5.6.0 duplicate From:", "duplicate_header");
  else if (from_fields == 1 && !f.has_from) f.header_verdict = reject("550 5.6.0 invalid From:", "invalid_from");
}

Verdict checkHeaderFields(const MessageFacts& facts, const MessageAccount& data, const Config& config) {
  if (!facts.has_from && contains(config.required_headers, "From") && !contains(config.add_missing_headers, "From")) {
    return reject("550 5.6.0 no From:", "missing_header");
  }
  if (facts.header_verdict.action != Action::Dunno) return facts.header_verdict;
  if (!facts.from && facts.has_from && data.empty_from.value_or(config.empty_from) == EmptyFromMode::Reject) {
    return reject("550 5.6.0 no email in From:", "empty_from");
  }
  if (Verdict v = checkFromDomains(facts, data.policy); v.action != Action::Dunno) return v;
  if (data.campaign_blocked) return reject("550 5.7.1 issue is blocked", "campaign_blocked");
  return dunno();
}

MessagePlan decideMessage(const MessageFacts& facts, const HeaderList& headers, const std::string& account,
                          const MessageAccount& data, const std::vector<std::string>& rcpts, const Config& config,
                          int64_t now_ms, const std::string& hostname, const std::string& queue_id) {
  MessagePlan plan;
  plan.recorded_from = recordedFrom(facts);
  if (const std::string* id = firstHeader(headers, "Message-Id")) plan.message_id = trimBlanks(unfoldHeader(*id));
  if (facts.header_verdict.action != Action::Dunno) {
    plan.verdict = facts.header_verdict;
    return plan;
  }
  EmptyFromMode mode = data.empty_from.value_or(config.empty_from);
  if (!facts.from && facts.has_from) {
    if (mode == EmptyFromMode::Reject) {
      plan.verdict = reject("550 5.6.0 no email in From:", "empty_from");
      return plan;
    }
    if (mode == EmptyFromMode::Rewrite && !data.default_sender.empty()) {
      // Keep the display name the sender gave ("Sales Team" <default@sender>).
      std::string display = decodeEncodedWords(unfoldHeader(*firstHeader(headers, "From")));
      std::string_view phrase = trimBlanks(display);
      if (display.find_first_of("<>@") != std::string::npos) phrase = {};
      plan.edits.push_back({HeaderEdit::Kind::Change, "From", 1, formatMailbox(phrase, data.default_sender)});
      plan.rule = "empty_from=rewrite";
    } else {
      plan.edits.push_back({HeaderEdit::Kind::Add, "X-Mailgate-From", 1, kEmptyFrom});
      plan.rule = mode == EmptyFromMode::Rewrite ? "empty_from=mark (account has no default sender)" : "empty_from=mark";
    }
  }
  if (Verdict v = checkFromDomains(facts, data.policy); v.action != Action::Dunno) {
    plan.verdict = v;
    return plan;
  }
  if (data.campaign_blocked) {
    plan.verdict = reject("550 5.7.1 issue is blocked", "campaign_blocked");
    return plan;
  }
  for (const auto& name : facts.missing_to_add) {
    if (sameFieldName(name, "Date")) {
      plan.edits.push_back({HeaderEdit::Kind::Add, "Date", 1, rfc5322Date(now_ms)});
    } else {
      plan.message_id = "<" + toHex(randomBytes(12)) + "@" + hostname + ">";
      plan.edits.push_back({HeaderEdit::Kind::Add, "Message-Id", 1, plan.message_id});
    }
  }
  if (config.strip_tag_headers) {
    for (const char* name : {"X-Campaign-Id", "X-Letter-Id"}) {
      // Delete from the last occurrence so the indexes stay valid.
      for (size_t n = countHeader(headers, name); n > 0; --n) {
        plan.edits.push_back({HeaderEdit::Kind::Change, name, static_cast<int>(n), ""});
      }
    }
  }
  // Ours replaces the sender's: mailgatectl fbl charges a complaint to the
  // account a Feedback-ID names, and a customer must not name another.
  for (size_t n = countHeader(headers, "Feedback-ID"); n > 0; --n) {
    plan.edits.push_back({HeaderEdit::Kind::Change, "Feedback-ID", static_cast<int>(n), ""});
  }
  plan.edits.push_back({HeaderEdit::Kind::Add, "Feedback-ID", 1, facts.campaign + ":" + account + ":mailgate"});
  std::vector<std::string> sink, deliver;
  for (const auto& r : rcpts) (isSinkRecipient(r, config) ? sink : deliver).push_back(r);
  // Before DKIM: both fields are signed (dkim_signer.cc).
  UnsubscribePlan unsubscribe =
      planUnsubscribe(headers, {data.unsubscribe, account, facts.campaign, queue_id, deliver, now_ms}, config);
  plan.edits.insert(plan.edits.end(), unsubscribe.edits.begin(), unsubscribe.edits.end());
  plan.unsubscribe = std::move(unsubscribe.note);
  // Lines over 998 octets in the header as it will leave (long_lines), after
  // every other edit: a rewritten From is no longer the sender's.
  HeaderList leaving = applyHeaderEdits(headers, plan.edits);
  HeaderFolding folding = foldLongHeaders(leaving, config.long_lines);
  if (folding.verdict.action != Action::Dunno) {
    plan.verdict = folding.verdict;
    return plan;
  }
  // Edits applied one after the other are those edits applied at once.
  plan.headers = folding.edits.empty() ? std::move(leaving) : applyHeaderEdits(leaving, folding.edits);
  plan.edits.insert(plan.edits.end(), folding.edits.begin(), folding.edits.end());
  plan.folded_headers = std::move(folding.names);
  plan.sink_rcpts = std::move(sink);
  plan.deliver_rcpts = std::move(deliver);
  if (data.sandbox) plan.discard = "sandbox";
  else if (plan.deliver_rcpts.empty()) plan.discard = "sink";
  return plan;
}

}  // namespace mailgate

// arf.cc — GMime glue for complaint reports: finds the feedback-report part
// and the original message (message/rfc822 or text/rfc822-headers) of an ARF
// or JMRP message, reads their fields, and derives account, campaign and
// recipient from what mailgate put in the original (Feedback-ID, To).
#include "mailgate/arf.h"

#include <cctype>
#include <memory>
#include <mutex>
#include <strings.h>

#include <gmime/gmime.h>

#include "mailgate/address.h"
#include "mailgate/gmime_ptr.h"
#include "mailgate/header.h"

namespace mailgate {

std::vector<std::string> rawHeaderValues(GMimeObject* object, const char* name) {
  std::vector<std::string> out;
  GMimeHeaderList* list = g_mime_object_get_header_list(object);
  int n = list == nullptr ? 0 : g_mime_header_list_get_count(list);
  for (int i = 0; i < n; ++i) {
    GMimeHeader* h = g_mime_header_list_get_header_at(list, i);
    const char* hname = g_mime_header_get_name(h);
    const char* raw = g_mime_header_get_raw_value(h);
    if (hname != nullptr && raw != nullptr && strcasecmp(hname, name) == 0) out.emplace_back(raw);
  }
  return out;
}

namespace {

// Reports nest a few levels at most; deeper trees are not walked.
constexpr int kMaxDepth = 8;

Error invalid(std::string message) { return Error{Error::Kind::Invalid, std::move(message)}; }

void initGmime() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

GPtr<GMimeMessage> parseMessage(std::string_view text) {
  GPtr<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(text.data(), text.size()));
  GPtr<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
  return GPtr<GMimeMessage>(g_mime_parser_construct_message(parser.get(), nullptr));
}

// The first value of header `name`, unfolded and trimmed; "" if absent.
std::string header(GMimeObject* object, const char* name) {
  auto values = rawHeaderValues(object, name);
  return values.empty() ? "" : std::string(trimBlanks(unfoldHeader(values.front())));
}

// The "id X" of each Received header (a queue id: letters and digits).
std::vector<std::string> receivedIds(GMimeObject* object) {
  std::vector<std::string> out;
  for (const auto& raw : rawHeaderValues(object, "Received")) {
    std::string value = unfoldHeader(raw);
    size_t pos = 0;
    bool after_id = false;
    while (pos < value.size()) {
      size_t start = value.find_first_not_of(" \t", pos);
      if (start == std::string::npos) break;
      size_t end = value.find_first_of(" \t;", start);
      if (end == std::string::npos) end = value.size();
      std::string_view word(value.data() + start, end - start);
      if (after_id) {
        bool alnum = !word.empty() && word.size() <= 64;
        for (char c : word) alnum = alnum && std::isalnum(static_cast<unsigned char>(c));
        if (alnum) out.emplace_back(word);
        break;
      }
      after_id = word.size() == 2 && strncasecmp(word.data(), "id", 2) == 0;
      pos = end + 1;
    }
  }
  return out;
}

std::string decodedContent(GMimePart* part) {
  GMimeDataWrapper* content = g_mime_part_get_content(part);
  if (content == nullptr) return "";
  GPtr<GMimeStream> mem(g_mime_stream_mem_new());
  g_mime_data_wrapper_write_to_stream(content, mem.get());
  GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem.get()));
  return bytes == nullptr ? "" : std::string(reinterpret_cast<const char*>(bytes->data), bytes->len);
}

bool isType(GMimeObject* object, const char* type, const char* subtype) {
  GMimeContentType* ct = g_mime_object_get_content_type(object);
  return ct != nullptr && g_mime_content_type_is_type(ct, type, subtype);
}

// The parts a report is read from, found in one walk of the MIME tree
// (message/rfc822 parts are not entered: the original's own parts are not
// the report's).
struct ReportParts {
  GMimeObject* feedback = nullptr;  // message/feedback-report
  GMimeObject* original = nullptr;  // message/rfc822 or text/rfc822-headers
};

void findParts(GMimeObject* object, int depth, ReportParts& parts) {
  if (object == nullptr || depth > kMaxDepth) return;
  if (GMIME_IS_MULTIPART(object)) {
    GMimeMultipart* multipart = GMIME_MULTIPART(object);
    int n = g_mime_multipart_get_count(multipart);
    for (int i = 0; i < n; ++i) findParts(g_mime_multipart_get_part(multipart, i), depth + 1, parts);
    return;
  }
  if (isType(object, "message", "feedback-report")) {
    if (parts.feedback == nullptr) parts.feedback = object;
  } else if (isType(object, "message", "rfc822") || isType(object, "text", "rfc822-headers")) {
    if (parts.original == nullptr) parts.original = object;
  }
}

// The header fields of a part: a message part's message, or a leaf part's
// decoded content parsed as a header block.
GPtr<GMimeMessage> fieldsOf(GMimeObject* part) {
  if (GMIME_IS_MESSAGE_PART(part)) {
    GMimeMessage* m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(part));
    if (m != nullptr) g_object_ref(m);
    return GPtr<GMimeMessage>(m);
  }
  if (!GMIME_IS_PART(part)) return nullptr;
  std::string text = decodedContent(GMIME_PART(part));
  // A header block ends at the first empty line; add one if it has none.
  text += "\n\n";
  return parseMessage(text);
}

bool redacted(const Mailbox& m) {
  std::string local = toLower(m.local);
  if (local.find("redacted") != std::string::npos) return true;
  return local.find_first_not_of("x*#.") == std::string::npos;
}

// `text` as a recipient: one valid, unredacted mailbox ("<a@b>" or "a@b",
// "rfc822;" prefix allowed), as its key(); else "".
std::string recipientOf(std::string_view text) {
  text = trimBlanks(text);
  if (text.size() > 7 && strncasecmp(text.data(), "rfc822;", 7) == 0) text = trimBlanks(text.substr(7));
  auto m = parseMailbox(text);
  if (!m || redacted(*m)) return "";
  return m->key();
}

void splitFeedbackId(ComplaintReport& r) {
  // CAMPAIGN:ACCOUNT:mailgate; the campaign may itself hold colons.
  std::string_view id = r.feedback_id;
  size_t last = id.rfind(':');
  if (last == std::string_view::npos || id.substr(last + 1) != "mailgate") return;
  size_t middle = id.rfind(':', last == 0 ? 0 : last - 1);
  if (middle == std::string_view::npos || middle == last) return;
  r.account = std::string(id.substr(middle + 1, last - middle - 1));
  r.campaign = std::string(id.substr(0, middle));
}

}  // namespace

Result<ComplaintReport> parseComplaintReport(std::string_view message) {
  initGmime();
  if (message.empty()) return invalid("empty message");
  GPtr<GMimeMessage> top = parseMessage(message);
  if (!top) return invalid("not a MIME message");
  ReportParts parts;
  findParts(g_mime_message_get_mime_part(top.get()), 0, parts);
  ComplaintReport r;
  if (parts.original == nullptr) return invalid("no original message (message/rfc822 or text/rfc822-headers part)");
  GPtr<GMimeMessage> original = fieldsOf(parts.original);
  if (!original) return invalid("the original message's headers cannot be read");
  auto* o = GMIME_OBJECT(original.get());
  r.message_id = header(o, "Message-Id");
  r.to = header(o, "To");
  r.from = header(o, "From");
  r.feedback_id = header(o, "Feedback-ID");
  r.campaign_header = header(o, "X-Campaign-Id");
  r.letter_id = header(o, "X-Letter-Id");
  r.list_unsubscribe = header(o, "List-Unsubscribe");
  r.hm_original_recipient = header(o, "X-HmXmrOriginalRecipient");
  r.received_ids = receivedIds(o);
  if (parts.feedback != nullptr) {
    GPtr<GMimeMessage> fields = fieldsOf(parts.feedback);
    if (!fields) return invalid("the feedback-report part cannot be read");
    auto* f = GMIME_OBJECT(fields.get());
    r.format = "arf";
    r.feedback_type = toLower(header(f, "Feedback-Type"));
    r.user_agent = header(f, "User-Agent");
    r.reporting_mta = header(f, "Reporting-MTA");
    r.version = header(f, "Version");
    r.original_rcpt_to = header(f, "Original-Rcpt-To");
    r.original_mail_from = header(f, "Original-Mail-From");
    r.arrival_date = header(f, "Arrival-Date");
    if (r.arrival_date.empty()) r.arrival_date = header(f, "Received-Date");
    r.reported_domain = header(f, "Reported-Domain");
    r.source_ip = header(f, "Source-IP");
    if (r.feedback_type.empty()) return invalid("the feedback-report part has no Feedback-Type");
  } else if (!r.hm_original_recipient.empty()) {
    r.format = "jmrp";
    r.feedback_type = "abuse";
  } else {
    return invalid("neither ARF (no message/feedback-report part) nor JMRP (no X-HmXmrOriginalRecipient)");
  }
  splitFeedbackId(r);
  if (!r.campaign_header.empty() && r.campaign.empty()) r.campaign = r.campaign_header;
  r.recipient = recipientOf(r.original_rcpt_to);
  if (r.recipient.empty()) r.recipient = recipientOf(r.hm_original_recipient);
  if (r.recipient.empty()) {
    auto to = parseAddressList(r.to);
    if (to.size() == 1) r.recipient = recipientOf(to[0].address);
  }
  return r;
}

}  // namespace mailgate

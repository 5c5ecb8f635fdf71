// list_unsubscribe.cc — the List-Unsubscribe and List-Unsubscribe-Post
// edits of a message plan (list_unsubscribe.h): the sender's opt-out, the
// one-recipient rule, the token and link, the merge with the sender's URLs.
#include "mailgate/list_unsubscribe.h"

#include <algorithm>

#include "mailgate/header.h"
#include "mailgate/long_lines.h"
#include "mailgate/unsubscribe_token.h"

namespace mailgate {
namespace {

constexpr const char* kListUnsubscribe = "List-Unsubscribe";
constexpr const char* kListUnsubscribePost = "List-Unsubscribe-Post";
// The token fields the milter issues stay within these (unsubscribe_token.h:
// the longest link then fits a header line); queue ids are about 12-20.
constexpr size_t kMaxTokenRecipient = 254, kMaxTokenQueueId = 64;

bool hasScheme(std::string_view url, std::string_view scheme) {
  return url.size() > scheme.size() && sameFieldName(url.substr(0, scheme.size()), scheme);
}

// `url` with its scheme in lower case (RFC 3986 3.1), to find duplicates.
std::string comparable(std::string url) {
  for (size_t i = 0; i < url.size() && url[i] != ':'; ++i) {
    if (url[i] >= 'A' && url[i] <= 'Z') url[i] = static_cast<char>(url[i] - 'A' + 'a');
  }
  return url;
}

// The value of every field named `name` deleted, from the last (so that the
// indexes stay valid) down to `keep` + 1.
void deleteFields(const HeaderList& headers, const char* name, size_t keep, std::vector<HeaderEdit>& edits) {
  for (size_t n = countHeader(headers, name); n > keep; --n) {
    edits.push_back({HeaderEdit::Kind::Change, name, static_cast<int>(n), ""});
  }
}

// The first field named `name` set to `value` (added when there is none), the others deleted.
void replaceFields(const HeaderList& headers, const char* name, const std::string& value,
                   std::vector<HeaderEdit>& edits) {
  deleteFields(headers, name, 1, edits);
  if (countHeader(headers, name) == 0) edits.push_back({HeaderEdit::Kind::Add, name, 1, value});
  else edits.push_back({HeaderEdit::Kind::Change, name, 1, value});
}

}  // namespace

std::vector<std::string> listUnsubscribeUrls(std::string_view value) {
  std::vector<std::string> urls;
  std::string text = unfoldHeader(value);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '(') {  // a comment, nested, with quoted pairs
      int depth = 0;
      for (; i < text.size(); ++i) {
        if (text[i] == '\\') ++i;
        else if (text[i] == '(') ++depth;
        else if (text[i] == ')' && --depth == 0) break;
      }
    } else if (text[i] == '<') {
      size_t end = text.find('>', i);
      if (end == std::string::npos) break;
      std::string url;
      for (size_t k = i + 1; k < end; ++k) {
        if (text[k] != ' ' && text[k] != '\t') url += text[k];
      }
      if (!url.empty()) urls.push_back(std::move(url));
      i = end;
    }
  }
  return urls;
}

UnsubscribePlan planUnsubscribe(const HeaderList& headers, const UnsubscribeRequest& r, const Config& config) {
  UnsubscribePlan plan;
  bool sender_no = false;
  for (const auto& [name, value] : headers) {
    if (sameFieldName(name, kUnsubscribeOptOutField) && sameFieldName(trimBlanks(unfoldHeader(value)), "no")) {
      sender_no = true;
    }
  }
  deleteFields(headers, kUnsubscribeOptOutField, 0, plan.edits);
  if (r.mode == UnsubscribeMode::Off) return plan;
  if (sender_no) {
    plan.note = "sender-no";
    return plan;
  }
  if (r.rcpts.size() != 1) {
    plan.note = "several-recipients";
    return plan;
  }
  if (config.web_secrets.empty() || config.web_base_url.empty()) {
    plan.note = "unconfigured";
    return plan;
  }
  const std::string& rcpt = r.rcpts.front();
  std::optional<std::string> token;
  if (rcpt.size() <= kMaxTokenRecipient && r.queue_id.size() <= kMaxTokenQueueId) {
    token = issueUnsubscribeToken({r.account, rcpt, r.campaign, r.queue_id, r.now_ms / 1000},
                                  config.web_secrets.front());
  }
  if (!token) {
    plan.note = "too-long";
    return plan;
  }
  bool one_click = r.mode == UnsubscribeMode::OneClick;
  bool post_leaves = one_click || countHeader(headers, kListUnsubscribePost) > 0;
  std::vector<std::string> urls{unsubscribeUrl(config.web_base_url, *token)};
  std::vector<std::string> seen{comparable(urls.front())};
  for (const auto& [name, value] : headers) {
    if (!sameFieldName(name, kListUnsubscribe)) continue;
    for (auto& url : listUnsubscribeUrls(value)) {
      bool kept = hasScheme(url, "mailto:") || (!post_leaves && hasScheme(url, "https:"));
      if (!kept || std::find(seen.begin(), seen.end(), comparable(url)) != seen.end()) continue;
      seen.push_back(comparable(url));
      urls.push_back(std::move(url));
    }
  }
  // Folded between entries where a line would pass 998 octets (RFC 5322
  // section 2.1.1); a sender's entry too long for a line of its own is dropped.
  std::string list;
  size_t line = std::string_view(kListUnsubscribe).size() + 2;  // "List-Unsubscribe: "
  for (const auto& url : urls) {
    size_t entry = url.size() + 3;  // "<url>,"
    if (list.empty()) {
      list = "<" + url + ">";
      line += entry - 1;
    } else if (line + 1 + entry <= kMaxLineOctets) {
      list += ", <" + url + ">";
      line += 1 + entry;
    } else if (1 + entry <= kMaxLineOctets) {
      list += ",\n <" + url + ">";
      line = 1 + entry;
    }
  }
  replaceFields(headers, kListUnsubscribe, list, plan.edits);
  if (one_click) replaceFields(headers, kListUnsubscribePost, kOneClickPost, plan.edits);
  plan.note = one_click ? "one-click" : "header";
  return plan;
}

}  // namespace mailgate

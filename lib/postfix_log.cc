// postfix_log.cc — Postfix log line parser for mailgate-tracker: reads the
// syslog prefix strictly (time stamp, host, then the tag), the queue id, then
// `name=value, ` fields (addresses in angle brackets may hold commas; the
// status text runs to the last ')'); and which tags are Postfix's.
#include "mailgate/postfix_log.h"

#include <cctype>

namespace mailgate {
namespace {

bool isHexUpper(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }
bool isAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// "<qid>: rest" -> qid and rest; false if the text does not start that way.
bool splitQueueId(std::string_view msg, std::string_view& qid, std::string_view& rest) {
  size_t colon = msg.find(": ");
  if (colon == std::string_view::npos || !isQueueId(msg.substr(0, colon))) return false;
  qid = msg.substr(0, colon);
  rest = msg.substr(colon + 2);
  return true;
}

// The next space-separated token of `s` (leading spaces skipped), removed from `s`.
std::string_view nextToken(std::string_view& s) {
  size_t start = s.find_first_not_of(' ');
  if (start == std::string_view::npos) start = s.size();
  size_t end = s.find(' ', start);
  if (end == std::string_view::npos) end = s.size();
  std::string_view token = s.substr(start, end - start);
  s.remove_prefix(end);
  return token;
}

bool allOf(std::string_view s, std::string_view chars) {
  return !s.empty() && s.find_first_not_of(chars) == std::string_view::npos;
}

bool isMonth(std::string_view s) {
  constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (std::string_view m : kMonths) {
    if (s == m) return true;
  }
  return false;
}

// "... host tag[pid]: message" as syslog daemons and `journalctl -o short`
// write it: a time stamp ("Nov 26 01:17:30", optionally with fractions, or
// one ISO 8601 or Unix-time token), the host, then the tag, which is taken
// only from there: a "tag[pid]:" further on is part of the message, which
// any local user chooses (logger(1)).
bool splitSyslogPrefix(std::string_view line, std::string_view& program, std::string_view& message) {
  std::string_view s = line;
  std::string_view first = nextToken(s);
  if (isMonth(first)) {
    std::string_view day = nextToken(s), time = nextToken(s);
    if (!allOf(day, "0123456789") || day.size() > 2 || !allOf(time, "0123456789:.")) return false;
  } else if (first.empty() || first[0] < '0' || first[0] > '9') {
    return false;
  }
  if (nextToken(s).empty()) return false;  // the host
  std::string_view tag = nextToken(s);
  if (tag.size() < 5 || !tag.ends_with("]:")) return false;
  size_t open = tag.find('[');
  if (open == 0 || open == std::string_view::npos || !allOf(tag.substr(open + 1, tag.size() - open - 3), "0123456789")) {
    return false;
  }
  if (!s.starts_with(' ')) return false;
  program = tag.substr(0, open);
  message = s.substr(1);
  return true;
}

// Value of an address field starting at `s` ("<...>"): up to the '>' that
// ends the field (followed by ',' or the end), without the brackets.
std::string_view bracketed(std::string_view s, size_t& used) {
  for (size_t i = 1; i < s.size(); ++i) {
    if (s[i] == '>' && (i + 1 == s.size() || s[i + 1] == ',')) {
      used = i + 1;
      return s.substr(1, i - 1);
    }
  }
  used = s.size();
  return s.substr(1);
}

// Reads "name=value, name=<addr>, ..., status=word (text)" into `r`.
void readFields(std::string_view s, LogRecord& r) {
  while (!s.empty()) {
    size_t eq = s.find('=');
    if (eq == std::string_view::npos) return;
    std::string_view name = s.substr(0, eq);
    s.remove_prefix(eq + 1);
    std::string_view value;
    if (!s.empty() && s.front() == '<') {
      size_t used = 0;
      value = bracketed(s, used);
      s.remove_prefix(used);
    } else if (name == "status") {
      size_t end = s.find_first_of(" ,");
      value = s.substr(0, end);
      s = end == std::string_view::npos ? std::string_view{} : s.substr(end);
      if (s.starts_with(" (") && s.back() == ')') r.text = std::string(s.substr(2, s.size() - 3));
      std::string status;
      for (char c : value) status += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.status = status;
      return;
    } else {
      size_t end = s.find(", ");
      value = s.substr(0, end);
      s = end == std::string_view::npos ? std::string_view{} : s.substr(end);
    }
    if (name == "to") r.rcpt = value;
    else if (name == "orig_to") r.orig_rcpt = value;
    else if (name == "relay") r.relay = value;
    else if (name == "dsn") r.dsn = value;
    if (s.starts_with(", ")) s.remove_prefix(2);
    else if (!s.empty()) return;
  }
}

constexpr std::string_view kNotifications[] = {
    "sender non-delivery notification: ",   "postmaster non-delivery notification: ",
    "sender delivery status notification: ", "sender delay notification: ",
    "postmaster delay notification: ",
};

}  // namespace

bool isQueueId(std::string_view s) {
  if (s.size() >= 6 && s.size() <= 16) {
    bool hex = true;
    for (char c : s) hex = hex && isHexUpper(c);
    if (hex) return true;
  }
  if (s.size() < 12 || s.size() > 24 || s[10] != 'z') return false;
  for (char c : s) {
    if (!isAlnum(c)) return false;
  }
  return true;
}

bool isPostfixTag(std::string_view tag, const std::vector<std::string>& syslog_names) {
  // The programs that log the lines tracking reads: delivery agents (to=),
  // qmgr (expired, removed, some deferrals), bounce (notifications) and
  // postsuper (removed).
  constexpr std::string_view kPrograms[] = {"smtp",    "lmtp",    "local", "virtual", "pipe",  "error",
                                            "retry",   "discard", "qmgr",  "oqmgr",   "bounce", "postsuper"};
  size_t slash = tag.rfind('/');
  if (slash == std::string_view::npos) return false;
  std::string_view name = tag.substr(0, slash), program = tag.substr(slash + 1);
  bool known = false;
  for (std::string_view p : kPrograms) known = known || program == p;
  if (!known) return false;
  for (const std::string& pattern : syslog_names) {
    if (pattern.ends_with('*') ? name.starts_with(std::string_view(pattern).substr(0, pattern.size() - 1))
                               : name == pattern) {
      return true;
    }
  }
  return false;
}

LogRecord parsePostfixLogLine(std::string_view line) {
  LogRecord r;
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  std::string_view qid, rest;
  if (!splitQueueId(line, qid, rest)) {
    // syslog / journal "short": "... host syslog_name/program[pid]: message"
    std::string_view program, message;
    if (!splitSyslogPrefix(line, program, message) || program.find('/') == std::string_view::npos) return r;
    if (!splitQueueId(message, qid, rest)) return r;
    r.program = program;
  }
  r.queue_id = qid;
  if (rest == "removed") {
    r.kind = LogRecord::Kind::Removed;
    return r;
  }
  for (std::string_view prefix : kNotifications) {
    if (rest.starts_with(prefix) && isQueueId(rest.substr(prefix.size()))) {
      r.kind = LogRecord::Kind::Notification;
      r.new_queue_id = rest.substr(prefix.size());
      return r;
    }
  }
  if (rest.starts_with("to=<")) {
    readFields(rest, r);
    if (r.status == "sent" || r.status == "deferred" || r.status == "bounced" || r.status == "expired" ||
        r.status == "softbounce") {
      r.kind = LogRecord::Kind::Delivery;
    }
    return r;
  }
  if (rest.starts_with("from=<")) {
    readFields(rest, r);
    if (r.status == "expired") r.kind = LogRecord::Kind::Expired;
    r.rcpt.clear();
  }
  return r;
}

}  // namespace mailgate

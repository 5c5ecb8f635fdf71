// policy_proto.cc — Postfix policy protocol framing: splits name=value lines,
// enforces the request size limit and the required `request` attribute, and
// formats action= replies. Decisions live elsewhere; this is framing only.
#include "mailgate/policy_proto.h"

namespace mailgate {

const std::string& PolicyRequest::get(const std::string& name) const {
  static const std::string kEmpty;
  auto it = attrs.find(name);
  return it == attrs.end() ? kEmpty : it->second;
}

PolicyParser::Status PolicyParser::malformed(std::string why) {
  error_ = std::move(why);
  buf_.clear();
  pos_ = 0;
  request_bytes_ = 0;
  current_ = PolicyRequest{};
  return Status::Malformed;
}

bool PolicyParser::addLine(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  size_t eq = line.find('=');
  if (eq == std::string_view::npos || eq == 0) return false;
  if (line.find('\0') != std::string_view::npos) return false;
  current_.attrs.insert_or_assign(std::string(line.substr(0, eq)), std::string(line.substr(eq + 1)));
  return true;
}

PolicyParser::Status PolicyParser::complete(PolicyRequest& out) {
  request_bytes_ = 0;
  if (current_.get("request") != "smtpd_access_policy") {
    return malformed(current_.attrs.count("request") ? "unsupported request type"
                                                     : "missing request attribute");
  }
  out = std::move(current_);
  current_ = PolicyRequest{};
  return Status::Request;
}

PolicyParser::Status PolicyParser::next(PolicyRequest& out) {
  while (true) {
    size_t nl = buf_.find('\n', pos_);
    if (nl == std::string::npos) {
      if (request_bytes_ + (buf_.size() - pos_) > kMaxPolicyRequestBytes) {
        return malformed("request longer than " + std::to_string(kMaxPolicyRequestBytes) + " bytes");
      }
      // Keep only the unparsed tail so the buffer never grows past one request.
      buf_.erase(0, pos_);
      pos_ = 0;
      return Status::NeedMore;
    }
    std::string_view line(buf_.data() + pos_, nl - pos_);
    pos_ = nl + 1;
    request_bytes_ += line.size() + 1;
    if (request_bytes_ > kMaxPolicyRequestBytes) {
      return malformed("request longer than " + std::to_string(kMaxPolicyRequestBytes) + " bytes");
    }
    if (line.empty() || line == "\r") {
      if (current_.attrs.empty()) {
        request_bytes_ = 0;  // stray blank line between requests
        continue;
      }
      return complete(out);
    }
    if (!addLine(line)) return malformed("malformed attribute line");
  }
}

PolicyParser::Status PolicyParser::finish(PolicyRequest& out) {
  Status s = next(out);
  if (s != Status::NeedMore) return s;
  if (pos_ < buf_.size()) {
    std::string_view tail(buf_.data() + pos_, buf_.size() - pos_);
    pos_ = buf_.size();
    if (!addLine(tail)) return malformed("malformed attribute line");
  }
  if (current_.attrs.empty()) return Status::NeedMore;
  return complete(out);
}

std::string formatPolicyReply(std::string_view action, const std::vector<std::string>& attrs) {
  std::string r;
  r.reserve(action.size() + 9);
  r += "action=";
  r += action;
  r += "\n";
  for (const auto& a : attrs) r += a + "\n";
  r += "\n";
  return r;
}

}  // namespace mailgate

// policy_proto.h — Postfix policy delegation framing (PROTOCOLS.md §1): an
// incremental parser that turns bytes into PolicyRequests (name=value lines up
// to an empty line, or up to EOF for Exim's readsocket) and the reply writer.
// Pure code: no sockets, so it is unit-tested and fuzzed.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mailgate {

constexpr size_t kMaxPolicyRequestBytes = 64 * 1024;

struct PolicyRequest {
  std::unordered_map<std::string, std::string> attrs;  // repeated names: last wins

  // Value of `name`, or "" when absent.
  const std::string& get(const std::string& name) const;
};

class PolicyParser {
 public:
  enum class Status { NeedMore, Request, Malformed };

  void feed(std::string_view data) { buf_.append(data); }

  // Next complete request from the buffered bytes. On Malformed, error()
  // says why and the connection should be answered and closed.
  Status next(PolicyRequest& out);

  // The peer half-closed: a pending request without its empty line is
  // complete (Exim's readsocket). Returns NeedMore when nothing is pending.
  Status finish(PolicyRequest& out);

  const std::string& error() const { return error_; }
  size_t buffered() const { return buf_.size() - pos_; }
  // Part of a request was fed: bytes of a line, or lines without the empty one.
  bool midRequest() const { return buffered() > 0 || !current_.attrs.empty(); }

 private:
  Status malformed(std::string why);
  Status complete(PolicyRequest& out);
  bool addLine(std::string_view line);

  std::string buf_;
  size_t pos_ = 0;  // start of the unparsed part of buf_
  size_t request_bytes_ = 0;
  PolicyRequest current_;
  std::string error_;
};

// "action=<action>\n\n", or with `attrs` ("name=value", for Exim's ACLs:
// Postfix skips attributes other than action) between the two LFs.
std::string formatPolicyReply(std::string_view action, const std::vector<std::string>& attrs = {});

}  // namespace mailgate

// message_edits.h — carries out a message plan's changes through the MTA:
// recipient removals, header edits, a replaced body, then DKIM signatures. MessageEditor is
// the seam (libmilter in mailgate-milter, a fake in tests). libmilter refuses
// a change only when the MTA connection is gone or the action was not
// negotiated, so any refusal means the plan cannot be carried out: tempfail.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "mailgate/rules_message.h"

namespace mailgate {

class MessageEditor {
 public:
  virtual ~MessageEditor() = default;
  // Each returns false when the MTA refused the change.
  virtual bool removeRecipient(const std::string& rcpt) = 0;  // bare address
  virtual bool addHeader(const std::string& name, const std::string& value) = 0;
  // `index` is 1-based among the headers of that name; an empty value deletes.
  virtual bool changeHeader(const std::string& name, int index, const std::string& value) = 0;
  // Inserts before every other header (where a DKIM-Signature goes).
  virtual bool prependHeader(const std::string& name, const std::string& value) = 0;
  // The whole new body (CRLF line ends).
  virtual bool replaceBody(const std::string& body) = 0;
};

struct EditOutcome {
  // The first change the MTA refused ("" = all applied): "<rcpt>", a header
  // name, "body" or DKIM-Signature. Then the message must be tempfailed, without an
  // outcome record (Postfix will not queue it as planned: a removed
  // recipient would be delivered, a signature would not verify).
  std::string refused;
  size_t signatures = 0;  // DKIM-Signature headers added
  bool tempfail() const { return !refused.empty(); }
};

// Removes `remove_rcpts`, applies `edits` in order, replaces the body with
// `body` when given, then prepends each of `signatures` (DKIM-Signature
// values); stops at the first refused change.
EditOutcome applyEdits(MessageEditor& mta, const std::vector<std::string>& remove_rcpts,
                       const std::vector<HeaderEdit>& edits, const std::vector<std::string>& signatures,
                       const std::string* body = nullptr);

}  // namespace mailgate

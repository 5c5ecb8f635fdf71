// message_edits.cc — carries out a MessagePlan's recipient removals, header
// edits, a re-encoded body and DKIM signatures through a MessageEditor; the
// first refused change stops it (the caller tempfails), so no signature
// covers a header or body the MTA did not take and no removed recipient is
// delivered.
#include "mailgate/message_edits.h"

namespace mailgate {

EditOutcome applyEdits(MessageEditor& mta, const std::vector<std::string>& remove_rcpts,
                       const std::vector<HeaderEdit>& edits, const std::vector<std::string>& signatures,
                       const std::string* body) {
  EditOutcome out;
  for (const auto& rcpt : remove_rcpts) {
    if (!mta.removeRecipient(rcpt)) {
      out.refused = "<" + rcpt + ">";
      return out;
    }
  }
  for (const auto& e : edits) {
    bool ok = e.kind == HeaderEdit::Kind::Add ? mta.addHeader(e.name, e.value)
                                               : mta.changeHeader(e.name, e.index, e.value);
    if (!ok) {
      out.refused = e.name;
      return out;
    }
  }
  if (body != nullptr && !mta.replaceBody(*body)) {
    out.refused = "body";
    return out;
  }
  for (const auto& sig : signatures) {
    if (!mta.prependHeader("DKIM-Signature", sig)) {
      out.refused = "DKIM-Signature";
      return out;
    }
    ++out.signatures;
  }
  return out;
}

}  // namespace mailgate

// message_edits.cc — applies a MessagePlan's header edits and then its DKIM
// signatures through a MessageEditor, never a signature over a header the
// MTA did not take as signed.
#include "mailgate/message_edits.h"

namespace mailgate {

EditOutcome applyEdits(MessageEditor& mta, const std::vector<HeaderEdit>& edits,
                       const std::vector<std::string>& signatures, bool dkim_on_error_tempfail) {
  EditOutcome out;
  for (const auto& e : edits) {
    bool ok = e.kind == HeaderEdit::Kind::Add ? mta.addHeader(e.name, e.value)
                                               : mta.changeHeader(e.name, e.index, e.value);
    if (!ok && out.refused.empty()) out.refused = e.name;
  }
  if (!out.refused.empty()) {
    out.signatures_dropped = !signatures.empty();
    out.tempfail = out.signatures_dropped && dkim_on_error_tempfail;
    return out;
  }
  for (const auto& sig : signatures) out.signatures += mta.prependHeader("DKIM-Signature", sig) ? 1 : 0;
  return out;
}

}  // namespace mailgate

// message_edits.h — carries out a message plan's header edits and DKIM
// signatures through the MTA: MessageEditor is the seam (libmilter in
// mailgate-milter, a fake in tests). A signature covers the edited header, so
// it is added only when every edit was applied; dkim_on_error decides the rest.
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
  virtual bool addHeader(const std::string& name, const std::string& value) = 0;
  // `index` is 1-based among the headers of that name; an empty value deletes.
  virtual bool changeHeader(const std::string& name, int index, const std::string& value) = 0;
  // Inserts before every other header (where a DKIM-Signature goes).
  virtual bool prependHeader(const std::string& name, const std::string& value) = 0;
};

struct EditOutcome {
  std::string refused;        // the first edit the MTA refused ("" = all applied)
  size_t signatures = 0;      // DKIM-Signature headers added
  bool signatures_dropped = false;  // an edit was refused: the signatures would not verify
  bool tempfail = false;      // ... and dkim_on_error = tempfail
};

// Applies every one of `edits` in order (a refused one does not stop the
// rest: tags are still stripped), then prepends each of `signatures`
// (DKIM-Signature values) only if every edit was applied.
EditOutcome applyEdits(MessageEditor& mta, const std::vector<HeaderEdit>& edits,
                       const std::vector<std::string>& signatures, bool dkim_on_error_tempfail);

}  // namespace mailgate

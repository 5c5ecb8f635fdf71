// long_lines.h — lines over 998 octets (RFC 5322 2.1.1; Postfix's smtp client
// breaks them with CRLF SPACE after the milter signed): a line-length scanner
// for body chunks and the refolding of header fields (long_lines setting).
// Pure; the body's re-encoding is mime_reencode.h.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailgate/config.h"
#include "mailgate/rules_message.h"
#include "mailgate/verdict.h"

namespace mailgate {

constexpr size_t kMaxLineOctets = 998;  // without CRLF; Postfix's smtp_line_length_limit default

// Follows line lengths across body chunks as libmilter delivers them (CRLF
// line ends, a line may span chunks). Octets are counted without the CRLF.
class LineLengthScanner {
 public:
  void feed(const unsigned char* data, size_t len);
  void feed(std::string_view text) { feed(reinterpret_cast<const unsigned char*>(text.data()), text.size()); }
  // A line over kMaxLineOctets so far (the unterminated last line included).
  bool tooLong() const;

 private:
  size_t current_ = 0;  // octets of the current line so far, a CR included
  unsigned char last_ = 0;
  bool too_long_ = false;
};

bool hasLongLine(std::string_view text);

// "550 5.6.0 message has lines longer than 998 octets" (long_lines = reject,
// or what encode cannot re-encode), rule long_lines.
Verdict longLinesRefusal(std::string rule = "long_lines");

// Whether a line of the header field `name: value` (value as libmilter gives
// it: LF before each continuation line) passes kMaxLineOctets.
bool headerHasLongLine(std::string_view name, std::string_view value);

// `value` with every line over the limit folded before its blanks (lines of
// at most 78 octets where the blanks allow, never over 998); lines within the
// limit are kept. Subject and Comments (unstructured text) with a run of
// non-blanks too long to fold become RFC 2047 encoded words (UTF-8, base64),
// unless they are not UTF-8 or already hold encoded words. nullopt: cannot
// be folded.
std::optional<std::string> refoldHeader(std::string_view name, std::string_view value);

struct HeaderFolding {
  Verdict verdict;                 // Reject: refuse the message
  std::vector<HeaderEdit> edits;   // Change edits with the refolded values
  std::vector<std::string> names;  // the refolded fields, for the log
};

// For the header as it will leave (the plan's edits applied): encode refolds
// every field with a long line (a field that cannot be folded is refused
// with "550 5.6.0 header line longer than 998 octets cannot be folded");
// reject refuses any long line (longLinesRefusal()).
HeaderFolding foldLongHeaders(const HeaderList& headers, LongLines mode);

}  // namespace mailgate

// mime_reencode.h — the re-encoding of a message body whose lines pass 998
// octets (GMime): text parts as quoted-printable, other parts as base64, so
// that the body the milter signs is the body Postfix sends. Pure: headers and
// body in, a new body and header edits (or a refusal) out.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "mailgate/rules_message.h"
#include "mailgate/verdict.h"

namespace mailgate {

struct BodyReencoding {
  Verdict verdict;                 // Reject: cannot be re-encoded (longLinesRefusal)
  std::string body;                // the new body, CRLF line ends, no line over the limit
  std::vector<HeaderEdit> edits;   // top-level Content-Transfer-Encoding, MIME-Version if missing
  std::string parts;               // for the log: "text/html:quoted-printable ..."
  std::string reason;              // for the log when refused
};

// Re-encodes each MIME leaf part of `body` (CRLF, as libmilter gives it)
// that has a line over the limit: text/* as quoted-printable (base64 if it
// was base64), every other type as base64; parts within the limit are left
// as they are. multipart/signed, multipart/encrypted and application/
// (x-)pkcs7-mime are never changed, nor message/partial or parts in an
// unknown transfer encoding: a long line there (or in a part header, a
// preamble, an epilogue) refuses the message. `headers` is the message's
// header as it will leave (Content-Type, Content-Transfer-Encoding,
// MIME-Version are read).
BodyReencoding reencodeLongLines(const HeaderList& headers, std::string_view body);

}  // namespace mailgate

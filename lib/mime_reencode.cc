// mime_reencode.cc — GMime glue for long lines: parses the body under the
// message's top-level MIME fields, re-encodes each leaf part whose encoded
// content has a line over 998 octets, writes the body back (CRLF) and checks
// that no long line is left. Signed and encrypted entities are never changed.
#include "mailgate/mime_reencode.h"

#include <algorithm>
#include <cctype>
#include <memory>
#include <mutex>

#include <gmime/gmime.h>

#include "mailgate/gmime_ptr.h"
#include "mailgate/header.h"
#include "mailgate/long_lines.h"

namespace mailgate {
namespace {

struct FormatFree {
  void operator()(GMimeFormatOptions* o) const { g_mime_format_options_free(o); }
};

void initGmime() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

bool streamHasLongLine(GMimeStream* stream) {
  g_mime_stream_reset(stream);
  LineLengthScanner scan;
  char buf[16384];
  ssize_t n;
  while (!scan.tooLong() && (n = g_mime_stream_read(stream, buf, sizeof buf)) > 0) {
    scan.feed(std::string_view(buf, static_cast<size_t>(n)));
  }
  g_mime_stream_reset(stream);
  return scan.tooLong();
}

std::string mediaType(GMimeObject* object) {
  GMimeContentType* ct = g_mime_object_get_content_type(object);
  if (ct == nullptr) return "text/plain";
  const char* type = g_mime_content_type_get_media_type(ct);
  const char* sub = g_mime_content_type_get_media_subtype(ct);
  std::string out = std::string(type ? type : "") + "/" + (sub ? sub : "");
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

struct Walk {
  std::vector<std::string> parts;  // "type/subtype:encoding"
  std::string top_encoding;        // set when the top-level part was re-encoded
};

// Re-encodes `part` when its (encoded) content has a long line.
void reencodePart(GMimePart* part, bool top, Walk& walk) {
  GMimeDataWrapper* content = g_mime_part_get_content(part);
  if (content == nullptr) return;
  GMimeStream* raw = g_mime_data_wrapper_get_stream(content);
  if (raw == nullptr || !streamHasLongLine(raw)) return;
  GMimeContentEncoding current = g_mime_part_get_content_encoding(part);
  const char* declared = g_mime_object_get_header(GMIME_OBJECT(part), "Content-Transfer-Encoding");
  // An encoding GMime does not know cannot be decoded: left alone (refused).
  if (current == GMIME_CONTENT_ENCODING_DEFAULT && declared != nullptr && !trimBlanks(declared).empty()) return;
  if (current == GMIME_CONTENT_ENCODING_UUENCODE) return;
  std::string type = mediaType(GMIME_OBJECT(part));
  GMimeContentEncoding target = type.starts_with("text/") && current != GMIME_CONTENT_ENCODING_BASE64
                                    ? GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE
                                    : GMIME_CONTENT_ENCODING_BASE64;
  GPtr<GMimeStream> decoded(g_mime_stream_mem_new());
  if (g_mime_data_wrapper_write_to_stream(content, decoded.get()) < 0) return;
  g_mime_stream_reset(decoded.get());
  GPtr<GMimeDataWrapper> plain(g_mime_data_wrapper_new_with_stream(decoded.get(), GMIME_CONTENT_ENCODING_DEFAULT));
  g_mime_part_set_content(part, plain.get());
  g_mime_part_set_content_encoding(part, target);
  const char* name = g_mime_content_encoding_to_string(target);
  walk.parts.push_back(type + ":" + name);
  if (top) walk.top_encoding = name;
}

void visit(GMimeObject* object, bool top, Walk& walk) {
  // Signed and encrypted entities are never changed: any change breaks them.
  if (GMIME_IS_MULTIPART_SIGNED(object) || GMIME_IS_MULTIPART_ENCRYPTED(object)) return;
  if (GMIME_IS_MULTIPART(object)) {
    GMimeMultipart* multipart = GMIME_MULTIPART(object);
    for (int i = 0; i < g_mime_multipart_get_count(multipart); ++i) {
      visit(g_mime_multipart_get_part(multipart, i), false, walk);
    }
    return;
  }
  if (GMIME_IS_MESSAGE_PART(object)) {
    GMimeMessage* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(object));
    GMimeObject* body = inner != nullptr ? g_mime_message_get_mime_part(inner) : nullptr;
    if (body != nullptr) visit(body, false, walk);
    return;
  }
  if (GMIME_IS_APPLICATION_PKCS7_MIME(object) || GMIME_IS_MESSAGE_PARTIAL(object)) return;
  if (GMIME_IS_PART(object)) reencodePart(GMIME_PART(object), top, walk);
}

// GMime writes a multipart's preamble and epilogue with bare LF: all CRLF.
std::string crlf(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 32);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) out += '\r';
    out += text[i];
  }
  return out;
}

std::string crlfValue(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\n' && (out.empty() || out.back() != '\r')) out += '\r';
    out += c;
  }
  return out;
}

}  // namespace

BodyReencoding reencodeLongLines(const HeaderList& headers, std::string_view body) {
  initGmime();
  BodyReencoding out;
  auto refuse = [&](std::string reason) {
    out.verdict = longLinesRefusal("long_lines_unfixable");
    out.reason = std::move(reason);
    out.body.clear();
    out.edits.clear();
    return out;
  };
  // The entity GMime parses: the top-level MIME fields, then the body (one copy).
  std::string fields;
  const std::string* type = firstHeader(headers, "Content-Type");
  const std::string* cte = firstHeader(headers, "Content-Transfer-Encoding");
  if (type != nullptr) fields += "Content-Type: " + crlfValue(*type) + "\r\n";
  if (cte != nullptr) fields += "Content-Transfer-Encoding: " + crlfValue(*cte) + "\r\n";
  fields += "\r\n";
  GPtr<GMimeStream> input(g_mime_stream_mem_new());
  if (g_mime_stream_write(input.get(), fields.data(), fields.size()) < 0 ||
      g_mime_stream_write(input.get(), body.data(), body.size()) < 0) {
    return refuse("MIME body not copied");
  }
  g_mime_stream_reset(input.get());
  GPtr<GMimeParser> parser(g_mime_parser_new_with_stream(input.get()));
  GPtr<GMimeObject> top(g_mime_parser_construct_part(parser.get(), nullptr));
  if (!top) return refuse("MIME structure not parsed");
  Walk walk;
  visit(top.get(), true, walk);
  if (walk.parts.empty()) return refuse("no part that may be re-encoded holds the long line");
  std::unique_ptr<GMimeFormatOptions, FormatFree> options(g_mime_format_options_new());
  g_mime_format_options_set_newline_format(options.get(), GMIME_NEWLINE_FORMAT_DOS);
  GPtr<GMimeStream> written(g_mime_stream_mem_new());
  if (g_mime_object_write_content_to_stream(top.get(), options.get(), written.get()) < 0) {
    return refuse("MIME body not written");
  }
  GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(written.get()));
  out.body = crlf(std::string_view(reinterpret_cast<const char*>(bytes->data), bytes->len));
  // What was left alone (signed parts, part headers, preamble) may still be too long.
  if (hasLongLine(out.body)) return refuse("a long line outside the parts that may be re-encoded");
  if (!walk.top_encoding.empty()) {
    out.edits.push_back(cte != nullptr ? HeaderEdit{HeaderEdit::Kind::Change, "Content-Transfer-Encoding", 1,
                                                    walk.top_encoding}
                                       : HeaderEdit{HeaderEdit::Kind::Add, "Content-Transfer-Encoding", 1,
                                                    walk.top_encoding});
  }
  if (firstHeader(headers, "MIME-Version") == nullptr) out.edits.push_back({HeaderEdit::Kind::Add, "MIME-Version", 1, "1.0"});
  for (const auto& p : walk.parts) out.parts += (out.parts.empty() ? "" : " ") + p;
  return out;
}

}  // namespace mailgate

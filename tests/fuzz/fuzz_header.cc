// fuzz_header.cc — libFuzzer target for RFC 5322/2047 header parsing: every
// address it extracts must be a valid (UTF-8) mailbox; a refolded value has
// no line over 998 octets.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mailgate/address.h"
#include "mailgate/header.h"
#include "mailgate/long_lines.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  for (const auto& a : mailgate::parseAddressList(in)) {
    if (!mailgate::parseMailbox(a.address)) abort();
  }
  mailgate::decodeEncodedWords(in);
  mailgate::unfoldHeader(in);
  for (const char* name : {"Subject", "X-Data"}) {
    auto folded = mailgate::refoldHeader(name, in);
    if (folded && mailgate::headerHasLongLine(name, *folded)) abort();
  }
  return 0;
}

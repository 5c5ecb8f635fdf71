// fuzz_arf.cc — libFuzzer target for complaint report parsing (GMime): any
// input gives a report or an Invalid error; a report's recipient, when set,
// is a valid mailbox.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mailgate/address.h"
#include "mailgate/arf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto r = mailgate::parseComplaintReport(in);
  if (r && !r->recipient.empty() && !mailgate::parseMailbox(r->recipient)) abort();
  if (!r && r.error().kind != mailgate::Error::Kind::Invalid) abort();
  return 0;
}

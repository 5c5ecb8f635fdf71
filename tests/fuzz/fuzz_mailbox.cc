// fuzz_mailbox.cc — libFuzzer target for RFC 5321 mailbox parsing, recipient
// forms and CIDRs: a parsed address must print back to something that parses.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mailgate/address.h"
#include "mailgate/cidr.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto m = mailgate::parseMailbox(in)) {
    if (!mailgate::parseMailbox(m->str())) abort();
    for (const auto& form : mailgate::recipientForms(*m, true)) {
      if (!mailgate::parseMailbox(form)) abort();
    }
    mailgate::parentDomains(m->domain);
  }
  if (auto c = mailgate::parseCidr(in)) {
    if (!mailgate::parseCidr(c->toString())) abort();
    c->contains(in);
  }
  return 0;
}

// fuzz_postfix_log.cc — libFuzzer target for the Postfix log parser: any
// input parses without crashing, and every queue id it reports is valid.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mailgate/postfix_log.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto r = mailgate::parsePostfixLogLine(in);
  if (r.kind != mailgate::LogRecord::Kind::Other && !mailgate::isQueueId(r.queue_id)) abort();
  if (r.kind == mailgate::LogRecord::Kind::Notification && !mailgate::isQueueId(r.new_queue_id)) abort();
  return 0;
}

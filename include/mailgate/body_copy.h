// body_copy.h — a copy of one message body as libmilter streams it, kept
// until end of message for the rare message whose lines must be re-encoded
// (long_lines = encode): in memory up to a threshold, beyond it in an
// unlinked temporary file; bounded by the largest message an account may send.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "mailgate/listen.h"
#include "mailgate/result.h"

namespace mailgate {

constexpr size_t kBodyCopyMemory = 256 * 1024;

class BodyCopy {
 public:
  // `limit` (0 = none): a body past it is not kept (dropped() then says so).
  // `dir`: where the spill file goes ("" = $TMPDIR, else /tmp).
  explicit BodyCopy(uint64_t limit, size_t memory = kBodyCopyMemory, std::string dir = "");
  BodyCopy(const BodyCopy&) = delete;
  BodyCopy& operator=(const BodyCopy&) = delete;

  void append(const unsigned char* data, size_t len);
  uint64_t size() const { return size_; }
  bool tooBig() const { return too_big_; }        // passed `limit`: nothing kept
  const std::string& failure() const { return failure_; }  // the spill file failed: nothing kept
  bool spilled() const { return fd_.get() >= 0; }
  // The whole body (read back from the spill file when there is one).
  Result<std::string> contents() const;

 private:
  void drop();

  uint64_t limit_;
  size_t memory_limit_;
  std::string dir_;
  std::string memory_;
  UniqueFd fd_;
  uint64_t size_ = 0;
  bool too_big_ = false;
  std::string failure_;
};

}  // namespace mailgate

// log_test.cc — printable(): client strings are made safe for one-line logs.
#include "mailgate/log.h"

#include <gtest/gtest.h>

using mailgate::printable;

TEST(Log, PrintableReplacesControlCharacters) {
  EXPECT_EQ(printable("a\r\nb\tc\x7f"), "a??b?c?");
  EXPECT_EQ(printable(std::string("x\0y", 3)), "x?y");
}

TEST(Log, PrintableCutsLongStrings) {
  EXPECT_EQ(printable("abcdef", 3), "abc...");
  EXPECT_EQ(printable("abc", 3), "abc");
}

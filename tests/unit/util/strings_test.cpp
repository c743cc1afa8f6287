#include <doctest/doctest.h>

#include "util/strings.h"

using namespace cyllm::util;

TEST_CASE("trim and split") {
  CHECK(trim("  a b \t\n") == "a b");
  CHECK(trim("   ").empty());
  auto f = split("a,,b", ',');
  REQUIRE(f.size() == 3);
  CHECK(f[1].empty());
  auto w = split_ws(" x \t y  z ");
  REQUIRE(w.size() == 3);
  CHECK(w[2] == "z");
  auto l = split_lines("one\r\ntwo\nthree");
  REQUIRE(l.size() == 3);
  CHECK(l[0] == "one");
  CHECK(l[2] == "three");
  CHECK(split_lines("").empty());
}

TEST_CASE("numbers refuse garbage and overflow") {
  CHECK(parse_u64(" 42\n") == 42u);
  CHECK_FALSE(parse_u64(""));
  CHECK_FALSE(parse_u64("-1"));
  CHECK_FALSE(parse_u64("12kB"));
  CHECK_FALSE(parse_u64("18446744073709551616"));  // 2^64
  CHECK(parse_u64("18446744073709551615") == 18446744073709551615ull);
  CHECK(parse_i64("-1") == -1);
  CHECK(parse_hex_u64("0x10de") == 0x10deu);
  CHECK(parse_hex_u64("19E5") == 0x19e5u);
  CHECK_FALSE(parse_hex_u64("0x"));
  CHECK_FALSE(parse_hex_u64("0xzz"));
  const unsigned char bytes[] = {0x00, 0x0f, 0xa5, 0xff};
  CHECK(hex_lower(bytes, 4) == "000fa5ff");
  CHECK(hex_lower(bytes, 0).empty());
  CHECK(parse_double("8.9") == doctest::Approx(8.9));
  CHECK_FALSE(parse_double("8.9.1"));
  CHECK_FALSE(parse_double("nan-ish"));
}

TEST_CASE("cpu lists") {
  CHECK(count_cpu_list("0-3,8,10-11") == 7);
  CHECK(count_cpu_list("0-13,112-125\n") == 28);
  CHECK(count_cpu_list("") == 0);
  CHECK(count_cpu_list("\n") == 0);
  CHECK_FALSE(count_cpu_list("3-1"));
  CHECK_FALSE(count_cpu_list("0-99999999"));
  CHECK_FALSE(count_cpu_list("a-b"));
}

TEST_CASE("quote escapes and shortens") {
  CHECK(quote("a\"b") == "\"a\\\"b\"");
  CHECK(quote("x\ny") == "\"x\\x0ay\"");
  CHECK(quote(std::string(100, 'a'), 5) == "\"aaaaa...\"");
}

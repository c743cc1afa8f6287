// Pure parsers behind detect_os, public to the tests and the fuzz target.
//   /etc/os-release   KEY=VALUE lines, values optionally in single or double quotes
//   libc.so.6         contains "GNU C Library (...) stable release version 2.36."
#pragma once

#include <string>
#include <string_view>

namespace cyllm::detect {

struct OsRelease {
  std::string name;        // PRETTY_NAME
  std::string id;          // ID
  std::string version_id;  // VERSION_ID
};
// Never fails: unknown keys and malformed lines are ignored.
OsRelease parse_os_release(std::string_view text);

// "2.36" from the banner inside glibc's libc.so.6; "" when there is none.
std::string parse_glibc_banner(std::string_view bytes);

}  // namespace cyllm::detect

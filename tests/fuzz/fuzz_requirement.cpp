// libFuzzer target: PEP 508 requirements and markers. Invariants checked: the printed
// requirement/marker re-parses to the same text and a marker evaluates the same way
// before and after printing, against a fixed target environment.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cyllm/packaging.h"

using namespace cyllm::packaging;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  static const MarkerEnvironment env{"3.11", "3.11.7", "posix", "linux", "6.5.0-1018-aws",
                                     "Linux", "#18~22.04.1-Ubuntu SMP", "x86_64", "CPython",
                                     "cpython", "3.11.7", "gpu"};
  auto r = parse_requirement(text);
  if (r.ok()) {
    std::string printed = r->to_string();
    auto again = parse_requirement(printed);
    CYLLM_ASSERT(again.ok());
    CYLLM_ASSERT(again->to_string() == printed);
    CYLLM_ASSERT(is_valid_name(r->name));
    auto a = r->applies_to(env);
    auto b = again->applies_to(env);
    CYLLM_ASSERT(a.ok() == b.ok());
    if (a.ok()) CYLLM_ASSERT(*a == *b);
  }
  auto m = parse_marker(text);
  if (m.ok()) {
    std::string printed = m->to_string();
    auto again = parse_marker(printed);
    CYLLM_ASSERT(again.ok());
    CYLLM_ASSERT(again->to_string() == printed);
    auto a = m->evaluate(env);
    auto b = again->evaluate(env);
    CYLLM_ASSERT(a.ok() == b.ok());
    if (a.ok()) CYLLM_ASSERT(*a == *b);
  }
  (void)normalize_name(text);
  return 0;
}

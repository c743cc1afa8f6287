// libFuzzer target: PEP 440 versions and specifier sets. Invariants checked:
// the canonical form re-parses to an equal version and is a fixed point; ordering is
// antisymmetric and consistent with ==; a printed specifier set re-parses to the same
// text and gives the same answer for the same version.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cyllm/packaging.h"

using namespace cyllm::packaging;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  // Split on the first '\n': a version on the left, a specifier set on the right.
  std::string_view left = text, right;
  if (auto nl = text.find('\n'); nl != std::string_view::npos) {
    left = text.substr(0, nl);
    right = text.substr(nl + 1);
  }
  auto v = parse_version(left);
  if (v.ok()) {
    std::string canon = v->to_string();
    auto again = parse_version(canon);
    CYLLM_ASSERT(again.ok());
    CYLLM_ASSERT(*again == *v);
    CYLLM_ASSERT(again->to_string() == canon);
    CYLLM_ASSERT((*v <=> *v) == 0);
    CYLLM_ASSERT(v->public_version() <= *v);
    CYLLM_ASSERT(v->base_version().to_string().find_first_of("+abrcpostdev") == std::string::npos);
  }
  auto w = parse_version(right);
  if (v.ok() && w.ok()) {
    auto ab = *v <=> *w;
    auto ba = *w <=> *v;
    CYLLM_ASSERT((ab < 0) == (ba > 0));
    CYLLM_ASSERT((ab == 0) == (*v == *w));
  }
  auto set = parse_specifier_set(right);
  if (set.ok()) {
    std::string printed = set->to_string();
    auto again = parse_specifier_set(printed);
    CYLLM_ASSERT(again.ok());
    CYLLM_ASSERT(again->to_string() == printed);
    if (v.ok()) {
      for (std::optional<bool> pre : {std::optional<bool>{}, std::optional<bool>{true},
                                      std::optional<bool>{false}}) {
        bool a = set->contains(*v, pre);
        CYLLM_ASSERT(a == again->contains(*v, pre));
        // Allowing pre-releases never removes a match.
        if (a) CYLLM_ASSERT(set->contains(*v, true));
      }
      auto f = set->filter({*v});
      CYLLM_ASSERT(f.size() <= 1);
    }
  }
  (void)parse_specifier(text);
  return 0;
}

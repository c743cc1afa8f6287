// The registry's syntax checks delegate to cyllm::packaging, so that the registry and the
// resolver can never disagree on what a well-formed version, specifier or requirement is.
#include "registry/syntax.h"

#include "cyllm/packaging.h"

namespace cyllm::registry::detail {

std::optional<std::string> validate_version_syntax(std::string_view text) {
  auto r = packaging::parse_version(text);
  if (r.ok()) return std::nullopt;
  return r.error().message();
}

std::optional<std::string> validate_specifier_syntax(std::string_view text) {
  auto r = packaging::parse_specifier_set(text);
  if (r.ok()) return std::nullopt;
  return r.error().message();
}

std::optional<std::string> validate_requirement_syntax(std::string_view text) {
  auto r = packaging::parse_requirement(text);
  if (r.ok()) return std::nullopt;
  return r.error().message();
}

}  // namespace cyllm::registry::detail

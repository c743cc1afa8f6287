// Syntax checks for the PEP 440 / PEP 508 strings a registry holds, through
// cyllm/packaging.h. They only decide "well formed or not" (and say why); the semantics
// live in the resolver.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace cyllm::registry::detail {

// Each returns nullopt when `text` is well formed, else a short reason
// ("unknown operator \"=>\"").
std::optional<std::string> validate_version_syntax(std::string_view text);    // PEP 440
std::optional<std::string> validate_specifier_syntax(std::string_view text);  // PEP 440 set
std::optional<std::string> validate_requirement_syntax(std::string_view text);  // PEP 508

}  // namespace cyllm::registry::detail

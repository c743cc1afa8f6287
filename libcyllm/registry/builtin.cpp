// The shipped registry, embedded at build time (see builtin_data.h).
#include "cyllm/registry.h"
#include "registry/builtin_data.h"

namespace cyllm::registry {

const std::vector<SourceText>& builtin_registry_sources() {
  // Built once, immutable afterwards (thread-safe static initialisation).
  static const std::vector<SourceText> sources = [] {
    std::vector<SourceText> v;
    for (std::size_t i = 0; i < detail::kBuiltinFileCount; ++i)
      v.push_back({std::string(detail::kBuiltinFiles[i].name),
                   std::string(detail::kBuiltinFiles[i].text)});
    return v;
  }();
  return sources;
}

Result<Registry> load_builtin_registry() {
  auto r = load_registry_from_strings(builtin_registry_sources());
  if (!r.ok()) return std::move(r).error().with_context("loading the built-in registry");
  return r;
}

}  // namespace cyllm::registry

// The registry files compiled into the library; defined in the builtin_data.cpp that
// scripts/embed_registry.py generates at build time from registry/entries/.
#pragma once

#include <cstddef>
#include <string_view>

namespace cyllm::registry::detail {

struct BuiltinFile {
  std::string_view name;  // "registry/entries/vllm.yaml"
  std::string_view text;
};

extern const BuiltinFile kBuiltinFiles[];
extern const std::size_t kBuiltinFileCount;

}  // namespace cyllm::registry::detail

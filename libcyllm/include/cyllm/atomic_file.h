// Writing files so that readers never see half of one: write a temporary file in the
// same directory, fsync it, then rename it over the target.
#pragma once

#include <string>
#include <string_view>

#include "cyllm/error.h"

namespace cyllm {

// `path` is a path of the running host. On any failure the temporary file is removed and
// the target is untouched. mode applies to a newly created file (umask still applies).
Result<void> write_file_atomic(const std::string& path, std::string_view data, unsigned mode = 0644);

}  // namespace cyllm

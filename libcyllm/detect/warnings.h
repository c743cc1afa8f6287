// Detection never fails as a whole; each problem becomes a Warning in the profile.
#pragma once

#include <string>
#include <vector>

#include "cyllm/detect.h"

namespace cyllm::detect {

inline void add_warning(std::vector<Warning>& warnings, const Error& error) {
  std::string msg = error.message();
  for (const auto& c : error.context()) msg += " (while " + c + ")";
  warnings.push_back({std::string(error.id()), std::move(msg)});
}

inline void add_warning(std::vector<Warning>& warnings, Errc code, std::string message) {
  warnings.push_back({std::string(errc_id(code)), std::move(message)});
}

}  // namespace cyllm::detect

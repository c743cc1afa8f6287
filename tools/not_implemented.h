#pragma once
// Shared by the tools whose job is not built yet: they parse their real flags, then say
// so plainly and exit 1 rather than pretend.
#include "common/cli.h"

namespace cyllm::cli {
inline int not_implemented(ToolEnv& env, const std::string& what, int issue) {
  return env.fail(Error(Errc::NotImplemented,
                        what + " is not implemented yet in this build (tracked as issue #" +
                            std::to_string(issue) + ")"));
}
}  // namespace cyllm::cli

// Builds wheels for the tests with tests/support/make_wheel.py (real zip archives,
// honest or deliberately malicious; see the script's docstring for the --evil kinds).
#pragma once

#include <doctest/doctest.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "cyllm/context.h"
#include "test_support.h"

namespace cyllm::test {

struct BuiltWheel {
  std::string sha256;  // of the whole .whl file
  std::uint64_t size_bytes = 0;
  std::filesystem::path path;
  std::string filename() const { return path.filename().string(); }
};

// make_wheel.py [flags...] OUT NAME VERSION [requires...]; REQUIREs success.
inline BuiltWheel make_wheel(const std::filesystem::path& out, const std::string& name, const std::string& version,
                             const std::vector<std::string>& flags = {},
                             const std::vector<std::string>& requires_dist = {}) {
  PosixCommandRunner r;
  // The real interpreter behind `python3`, looked up once: version-manager shims (pyenv)
  // cost seconds per start, and the tests build dozens of wheels.
  static const std::string python = [&] {
    auto p = r.run({"/usr/bin/env", "python3", "-c", "import sys; print(sys.executable)"}, std::chrono::seconds(60));
    std::string exe = p.ok() && p->exit_code == 0 ? p->out.substr(0, p->out.find('\n')) : "";
    return exe.empty() ? std::string("/usr/bin/python3") : exe;
  }();
  std::vector<std::string> argv = {python, (source_root() / "tests/support/make_wheel.py").string()};
  argv.insert(argv.end(), flags.begin(), flags.end());
  argv.insert(argv.end(), {out.string(), name, version});
  argv.insert(argv.end(), requires_dist.begin(), requires_dist.end());
  auto res = r.run(argv, std::chrono::seconds(60));
  REQUIRE(res.ok());
  REQUIRE_MESSAGE(res->exit_code == 0, res->err);
  std::istringstream in(res->out);
  BuiltWheel b;
  std::string path;
  in >> b.sha256 >> b.size_bytes >> path;
  b.path = path;
  return b;
}

}  // namespace cyllm::test

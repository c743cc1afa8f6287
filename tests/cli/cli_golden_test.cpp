// CLI golden tests: every directory tests/cli/<tool>/<case>/ holds
//   args                  one argument per line; @FIXTURES@ and @ROOT@ are substituted
//   env         (opt.)    K=V lines added to the environment (K= unsets K)
//   root        (opt.)    a fixture root name; it is copied to a temp dir that @ROOT@ names
//   fake-nvml   (opt.)    install the test NVML library into that copy, with the canned
//                         data file named inside (from tests/fixtures/nvml_fake/)
//   stdin       (opt.)    bytes fed to the tool
//   stdin-from  (opt.)    or: the path (under tests/cli) of another case's expected output
//   expected.stderr.contains (opt.) lines that must each appear in stderr
//   expected.stdout.json  compared as JSON, or expected.stdout compared as text
//   expected.exit         the exit code
// Paths of the fixture tree and of the temp root are replaced by @FIXTURES@ / @ROOT@ in
// the output before comparing. CYLLM_UPDATE_GOLDENS=1 rewrites the expected files.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_support.h"

namespace fs = std::filesystem;
using namespace cyllm;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const fs::path& p) {
  std::vector<std::string> out;
  if (!fs::exists(p)) return out;
  std::istringstream in(slurp(p));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
    s.replace(pos, from.size(), to);
}

const std::vector<std::string> kScrubbedEnv = {
    "CUDA_VISIBLE_DEVICES=", "HIP_VISIBLE_DEVICES=", "ROCR_VISIBLE_DEVICES=",
    "ASCEND_RT_VISIBLE_DEVICES=", "CYLLM_FAKE_NVML_DATA=", "NO_COLOR=", "CYLLM_REGISTRY=",
    "XDG_CONFIG_HOME=/nonexistent", "HOME=/nonexistent"};

}  // namespace

TEST_CASE("CLI goldens") {
  const bool update = std::getenv("CYLLM_UPDATE_GOLDENS") != nullptr;
  const fs::path cli_dir = test::source_root() / "tests" / "cli";
  const std::string fixtures = test::fixtures_dir().string();
  std::vector<fs::path> cases;
  for (const auto& tool : fs::directory_iterator(cli_dir)) {
    if (!tool.is_directory()) continue;
    for (const auto& c : fs::directory_iterator(tool.path()))
      if (c.is_directory() && fs::exists(c.path() / "args")) cases.push_back(c.path());
  }
  std::sort(cases.begin(), cases.end());
  REQUIRE_MESSAGE(cases.size() >= 10, "expected the golden cases under " << cli_dir);

  for (const auto& dir : cases) {
    const std::string tool = "cy-llm-" + dir.parent_path().filename().string();
    const std::string name = dir.parent_path().filename().string() + "/" + dir.filename().string();
    CAPTURE(name);
    test::TempDir tmp;
    std::string root;
    if (auto r = lines_of(dir / "root"); !r.empty()) {
      root = (tmp.path() / "root").string();
      test::copy_tree(test::fixtures_dir() / "roots" / r[0], root);
      if (auto data = lines_of(dir / "fake-nvml"); !data.empty()) {
        fs::path lib = fs::path(root) / "usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1";
        fs::create_directories(lib.parent_path());
        fs::copy_file(test::fake_nvml_path(), lib, fs::copy_options::overwrite_existing);
        fs::copy_file(test::fixtures_dir() / "nvml_fake" / data[0],
                      lib.parent_path() / "fake-nvml.txt", fs::copy_options::overwrite_existing);
      }
    }
    auto subst = [&](std::string s) {
      replace_all(s, "@FIXTURES@", fixtures);
      replace_all(s, "@ROOT@", root);
      return s;
    };
    std::vector<std::string> args, env = kScrubbedEnv;
    for (auto& a : lines_of(dir / "args")) args.push_back(subst(a));
    for (auto& e : lines_of(dir / "env")) env.push_back(subst(e));
    std::string input = fs::exists(dir / "stdin") ? subst(slurp(dir / "stdin")) : "";
    if (auto from = lines_of(dir / "stdin-from"); !from.empty()) input = slurp(cli_dir / from[0]);

    test::ToolRun run = test::run_tool(tool, args, input, env);
    std::string out = run.out;
    if (!root.empty()) replace_all(out, root, "@ROOT@");
    replace_all(out, fixtures, "@FIXTURES@");

    const bool json = !fs::exists(dir / "expected.stdout");
    const fs::path expected_out = dir / (json ? "expected.stdout.json" : "expected.stdout");
    if (update) {
      std::ofstream(dir / "expected.exit") << run.exit_code << "\n";
      if (json && !out.empty())
        std::ofstream(expected_out) << nlohmann::ordered_json::parse(out).dump(2) << "\n";
      else
        std::ofstream(expected_out) << out;
      continue;
    }
    REQUIRE_MESSAGE(fs::exists(dir / "expected.exit"), "no expected.exit in " << dir);
    std::string err_text = run.err;  // JSON log lines escape quotes; match the plain text
    replace_all(err_text, "\\\"", "\"");
    for (const auto& needle : lines_of(dir / "expected.stderr.contains"))
      CHECK_MESSAGE(err_text.find(subst(needle)) != std::string::npos,
                    "stderr lacks " << needle << "\nstderr: " << run.err);
    CHECK_MESSAGE(std::to_string(run.exit_code) == lines_of(dir / "expected.exit").at(0),
                  "stderr: " << run.err);
    std::string want = slurp(expected_out);
    if (json && !want.empty() && want != "\n") {
      nlohmann::json got_j, want_j = nlohmann::json::parse(want);
      try {
        got_j = nlohmann::json::parse(out);
      } catch (const std::exception& e) {
        FAIL_CHECK("stdout is not JSON: " << e.what() << "\n" << out);
        continue;
      }
      if (got_j != want_j) {
        auto patch = nlohmann::json::diff(want_j, got_j);
        FAIL_CHECK("stdout differs from " << expected_out << "; JSON patch:\n" << patch.dump(2)
                                          << "\nstderr: " << run.err);
      }
    } else {
      CHECK_MESSAGE(out == (want == "\n" ? "" : want), "stdout differs from " << expected_out);
    }
  }
}

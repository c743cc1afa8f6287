#include <doctest/doctest.h>
#include <sys/stat.h>

#include "cyllm/detect.h"
#include "test_support.h"

using namespace cyllm;
using namespace cyllm::detect;

TEST_CASE("find_tool looks only under the fixture root") {
  test::TempDir dir;
  test::write_file(dir.path() / "usr/local/bin/npu-smi", "#!/bin/sh\n");
  ::chmod((dir.path() / "usr/local/bin/npu-smi").c_str(), 0755);
  test::write_file(dir.path() / "usr/bin/not-executable", "");
  test::FixtureContext fx(dir.path());
  DetectOptions o;
  o.path = {"/bin", "/usr/bin"};  // must be ignored under a fixture root
  CHECK(find_tool(fx.ctx(), o, "npu-smi") == (dir.path() / "usr/local/bin/npu-smi").string());
  CHECK_FALSE(find_tool(fx.ctx(), o, "not-executable"));
  CHECK_FALSE(find_tool(fx.ctx(), o, "sh"));
}

TEST_CASE("find_tool on the host follows PATH, skipping relative entries") {
  test::HostContext host;
  const Context& ctx = host.ctx();
  DetectOptions o;
  o.path = {".", "/bin"};
  CHECK(find_tool(ctx, o, "sh") == std::string("/bin/sh"));
  CHECK_FALSE(find_tool(ctx, o, "cy-llm-no-such-tool"));
}

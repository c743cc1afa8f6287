#include <doctest/doctest.h>

#include <chrono>

#include "cyllm/context.h"

using namespace cyllm;
using namespace std::chrono_literals;

TEST_CASE("PosixCommandRunner captures stdout, stderr and the exit code") {
  PosixCommandRunner r;
  auto out = r.run({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, 5s);
  REQUIRE(out.ok());
  CHECK(out->out == "out\n");
  CHECK(out->err == "err\n");
  CHECK(out->exit_code == 3);
}

TEST_CASE("a missing program is a spawn failure naming it") {
  PosixCommandRunner r;
  auto out = r.run({"/nonexistent/nvidia-smi"}, 1s);
  REQUIRE_FALSE(out.ok());
  CHECK(out.error().code() == Errc::SpawnFailed);
  CHECK(out.error().message().find("/nonexistent/nvidia-smi") != std::string::npos);
}

TEST_CASE("a hanging program and its children are killed at the timeout") {
  PosixCommandRunner r;
  auto t0 = std::chrono::steady_clock::now();
  // The shell forks a sleep that inherits stdout: killing only the shell would hang.
  auto out = r.run({"/bin/sh", "-c", "sleep 30 & sleep 30"}, 200ms);
  auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE_FALSE(out.ok());
  CHECK(out.error().code() == Errc::ToolTimeout);
  CHECK(took < 5s);
}

TEST_CASE("output is capped") {
  PosixCommandRunner r(1000);
  auto out = r.run({"/bin/sh", "-c", "head -c 100000 /dev/zero"}, 5s);
  REQUIRE(out.ok());
  CHECK(out->out.size() == 1000);
  CHECK(out->exit_code == 0);
}

TEST_CASE("a program that closes stdout but keeps running still times out") {
  PosixCommandRunner r;
  auto out = r.run({"/bin/sh", "-c", "exec >&- 2>&-; sleep 30"}, 300ms);
  REQUIRE_FALSE(out.ok());
  CHECK(out.error().code() == Errc::ToolTimeout);
}

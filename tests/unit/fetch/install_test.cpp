// install_venv through a FakeCommandRunner (the exact commands, pip's stderr in the error,
// timeouts, cancellation), and the plan helpers: target_from_plan, plan_installs.
#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>

#include "cyllm/wheelhouse.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace cyllm;
using namespace cyllm::wheelhouse;
using nlohmann::json;

namespace {

struct Fixture {
  test::TempDir tmp;
  std::string venv, wheels, lock;
  test::FakeCommandRunner runner;
  RootedFilesystem fs{"/"};
  SystemClock clock;
  test::RecordingLogger log;
  std::atomic<bool> cancel{false};
  Context ctx{fs, runner, clock, log, &cancel};

  Fixture() {
    venv = (tmp.path() / "venv").string();
    wheels = (tmp.path() / "wheels").string();
    lock = (tmp.path() / "requirements.lock").string();
    fs::create_directories(wheels);
    test::write_file(lock, "a==1 --hash=sha256:" + std::string(64, 'a') + "\n");
  }
  std::string venv_cmd() const { return "/usr/bin/env python3 -m venv " + venv; }
  std::string pip_cmd() const {
    return venv + "/bin/python -m pip install --no-index --find-links " + wheels +
           " --require-hashes --disable-pip-version-check --no-input -r " + lock;
  }
  void make_venv_python() { test::write_file(fs::path(venv) / "bin/python", "#!/bin/sh\n"); }
};

}  // namespace

TEST_CASE("install_venv runs pip on an existing venv with the hash-checking flags") {
  Fixture f;
  f.make_venv_python();
  f.runner.on(f.pip_cmd(), {0, "Successfully installed a-1\n", ""});
  auto r = install_venv(f.ctx, f.venv, f.wheels, f.lock);
  REQUIRE_MESSAGE(r.ok(), r.error().to_string());
  CHECK(f.runner.calls == std::vector<std::string>{f.pip_cmd()});  // no venv creation
}

TEST_CASE("install_venv creates a missing venv first") {
  Fixture f;
  // The fake "creates" nothing, so install_venv notices that bin/python is still missing.
  f.runner.on(f.venv_cmd(), {0, "", ""});
  auto r = install_venv(f.ctx, f.venv, f.wheels, f.lock);
  REQUIRE(!r.ok());
  CHECK(r.error().code() == Errc::InstallFailed);
  CHECK(r.error().message().find("bin/python\" does not exist") != std::string::npos);
  CHECK(f.runner.calls == std::vector<std::string>{f.venv_cmd()});

  InstallOptions o;
  o.python = "/opt/py/bin/python3.12";
  f.runner.on("/opt/py/bin/python3.12 -m venv " + f.venv, {1, "", "Error: ensurepip is not available\n"});
  auto e = install_venv(f.ctx, f.venv, f.wheels, f.lock, o);
  REQUIRE(!e.ok());
  CHECK(e.error().to_string() == "fetch.install_failed: creating the venv " + f.venv +
                                     " failed (exit 1): \"/opt/py/bin/python3.12 -m venv " + f.venv +
                                     "\":\nError: ensurepip is not available");
}

TEST_CASE("a failing pip shows pip's own message") {
  Fixture f;
  f.make_venv_python();
  std::string err;
  for (int i = 0; i < 40; ++i) err += "noise line " + std::to_string(i) + "\n";
  err += "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.\n"
         "    a==1 from /w/a-1-py3-none-any.whl:\n"
         "        Expected sha256 aaaa\n"
         "             Got        bbbb\n\n";
  f.runner.on(f.pip_cmd(), {1, "Processing /w/a-1-py3-none-any.whl\n", err});
  auto r = install_venv(f.ctx, f.venv, f.wheels, f.lock);
  REQUIRE(!r.ok());
  CHECK(r.error().code() == Errc::InstallFailed);
  const auto& m = r.error().message();
  CHECK(m.find("failed (exit 1): \"" + f.pip_cmd() + "\"") != std::string::npos);
  CHECK(m.find("DO NOT MATCH THE HASHES") != std::string::npos);
  CHECK(m.find("Got        bbbb") != std::string::npos);
  CHECK(m.find("noise line 39") != std::string::npos);
  CHECK(m.find("noise line 10\n") == std::string::npos);  // only the tail
}

TEST_CASE("install_venv: timeouts, cancellation and missing inputs") {
  Fixture f;
  f.make_venv_python();
  test::FakeCommandRunner::Canned slow;
  slow.timeout = true;
  f.runner.on(f.pip_cmd(), slow);
  auto t = install_venv(f.ctx, f.venv, f.wheels, f.lock);
  REQUIRE(!t.ok());
  CHECK(t.error().code() == Errc::ToolTimeout);
  CHECK(t.error().to_string().find("while installing") != std::string::npos);

  f.cancel = true;
  f.runner.calls.clear();
  auto c = install_venv(f.ctx, f.venv, f.wheels, f.lock);
  CHECK(c.error().code() == Errc::Cancelled);
  CHECK(f.runner.calls.empty());
  f.cancel = false;

  CHECK(install_venv(f.ctx, f.venv, f.wheels + "/nope", f.lock).error().code() == Errc::NotFound);
  CHECK(install_venv(f.ctx, f.venv, f.wheels, f.lock + ".nope").error().code() == Errc::NotFound);
}

TEST_CASE("target_from_plan reads the plan's target") {
  auto t = target_from_plan(json::parse(R"({"schema":"cy-llm.plan/v1",
      "target":{"python":"3.11","architecture":"aarch64","glibc":"2.28"}})"));
  REQUIRE_MESSAGE(t.ok(), t.error().to_string());
  CHECK(t->python_major == 3);
  CHECK(t->python_minor == 11);
  CHECK(t->architecture == "aarch64");
  CHECK(t->glibc_minor == 28);
  CHECK(describe_target(*t) == "cp311 on aarch64 (glibc 2.28)");
  auto any = target_from_plan(json::parse(R"({"target":{"python":"3.12","architecture":"x86_64","glibc":null}})"));
  REQUIRE(any.ok());
  CHECK(any->glibc_minor == 99);
  CHECK(describe_target(*any) == "cp312 on x86_64 (any glibc)");

  CHECK(target_from_plan(json::parse(R"({})")).error().message() == "the plan has no \"target\" object");
  CHECK(target_from_plan(json::parse(R"({"target":{"python":"three"}})")).error().message() ==
        "the plan's target.python \"\\\"three\\\"\" is not \"3.X\"");
  CHECK(target_from_plan(json::parse(R"({"target":{"python":"3.12","glibc":"2"}})")).error().code() == Errc::Parse);
}

TEST_CASE("plan_installs: one venv per environment, with resolve's lock names") {
  auto one = plan_installs(json::parse(R"({"environments":[{"name":"default"}]})"), "/srv/venv", "/srv/req.lock");
  REQUIRE(one.ok());
  REQUIRE(one->size() == 1);
  CHECK((*one)[0].name == "default");
  CHECK((*one)[0].venv_dir == "/srv/venv");
  CHECK((*one)[0].lock_path == "/srv/req.lock");

  auto two = plan_installs(json::parse(R"({"environments":[{"name":"base"},{"name":"engine"}]})"), "/srv/venv",
                           "/srv/requirements.lock");
  REQUIRE(two.ok());
  REQUIRE(two->size() == 2);
  CHECK((*two)[0].venv_dir == "/srv/venv/base");
  CHECK((*two)[0].lock_path == "/srv/requirements.base.lock");
  CHECK((*two)[1].venv_dir == "/srv/venv/engine");
  CHECK((*two)[1].lock_path == "/srv/requirements.lock");

  CHECK(plan_installs(json::parse(R"({})"), "v", "l").error().code() == Errc::Parse);
  CHECK(plan_installs(json::parse(R"({"environments":[]})"), "v", "l").error().code() == Errc::Parse);
  CHECK(plan_installs(json::parse(R"({"environments":[{"name":"../x"},{"name":"y"}]})"), "v", "l")
            .error()
            .message() == "plan environment name \"../x\" cannot name a directory");
}

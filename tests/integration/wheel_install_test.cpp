// install_venv for real: wheels built by make_wheel.py, verified, a lock filled with their
// hashes, `python3 -m venv` + `pip install --no-index --find-links --require-hashes` into a
// fresh venv, then an import in it. And pip's refusals surfacing as fetch.install_failed.
#include <doctest/doctest.h>

#include "cyllm/wheelhouse.h"
#include "make_wheel.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace cyllm;
using namespace cyllm::wheelhouse;
using namespace std::chrono_literals;

TEST_CASE("a verified wheelhouse installs offline into a fresh venv, and pip's refusals are reported") {
  test::TempDir tmp;
  const fs::path wheels = tmp.path() / "wheelhouse";
  auto alpha = test::make_wheel(wheels, "toyalpha", "1.0", {}, {"toybeta>=2"});
  auto beta = test::make_wheel(wheels, "toybeta", "2.1");

  std::vector<FetchedFile> fetched;
  for (const auto& w : {alpha, beta}) {
    auto info = verify_wheel(w.path.string());
    REQUIRE_MESSAGE(info.ok(), info.error().to_string());
    fetched.push_back({info->name, info->version, w.sha256, w.filename()});
  }
  auto lock = parse_lock("# test lock\ntoyalpha==1.0\ntoybeta==2.1\n");
  REQUIRE(lock.ok());
  auto text = fill_lock(*lock, fetched);
  REQUIRE_MESSAGE(text.ok(), text.error().to_string());
  const std::string lock_path = (tmp.path() / "requirements.lock").string();
  REQUIRE(write_lock(lock_path, *text).ok());

  test::HostContext host;
  const std::string venv = (tmp.path() / "venv").string();
  auto r = install_venv(host.ctx(), venv, wheels.string(), lock_path);
  REQUIRE_MESSAGE(r.ok(), r.error().to_string());
  PosixCommandRunner runner;
  auto imp = runner.run({venv + "/bin/python", "-c",
                         "import toyalpha, toybeta; print(toyalpha.__version__, toybeta.__version__)"},
                        60s);
  REQUIRE(imp.ok());
  CHECK_MESSAGE(imp->exit_code == 0, imp->err);
  CHECK(imp->out == "1.0 2.1\n");

  // A second run reuses the venv (no `python -m venv`) and is a no-op for pip.
  CHECK(install_venv(host.ctx(), venv, wheels.string(), lock_path).ok());

  // A hash that does not match the wheelhouse file: pip's own message comes back.
  std::string tampered = *text;
  auto p = tampered.find(beta.sha256);
  REQUIRE(p != std::string::npos);
  tampered[p] = tampered[p] == '0' ? '1' : '0';
  const std::string bad_lock = (tmp.path() / "tampered.lock").string();
  REQUIRE(write_lock(bad_lock, tampered).ok());
  const std::string venv2 = (tmp.path() / "venv2").string();
  auto bad = install_venv(host.ctx(), venv2, wheels.string(), bad_lock);
  REQUIRE(!bad.ok());
  CHECK(bad.error().code() == Errc::InstallFailed);
  CHECK_MESSAGE(bad.error().message().find("THESE PACKAGES DO NOT MATCH THE HASHES") != std::string::npos,
                bad.error().message());
  CHECK(bad.error().message().find("--require-hashes") != std::string::npos);  // the command is quoted

  // A requirement the wheelhouse cannot satisfy (--no-index: nothing is downloaded).
  const std::string missing_lock = (tmp.path() / "missing.lock").string();
  REQUIRE(write_lock(missing_lock, "toygamma==1.0 --hash=sha256:" + std::string(64, 'c') + "\n").ok());
  auto miss = install_venv(host.ctx(), venv2, wheels.string(), missing_lock);
  REQUIRE(!miss.ok());
  CHECK(miss.error().code() == Errc::InstallFailed);
  CHECK_MESSAGE(miss.error().message().find("toygamma") != std::string::npos, miss.error().message());
  CHECK(miss.error().message().find("ERROR") != std::string::npos);
}

// The corpus of corrupt GGUF files (tests/fixtures/gguf/corrupt/, one per kind of
// corruption, made by make_corrupt.py): each is refused with exactly the error id and
// message of its golden <case>.expected. CYLLM_UPDATE_GOLDENS=1 rewrites the goldens.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cyllm/gguf.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace cyllm::gguf;

namespace {

std::vector<fs::path> corpus() {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(cyllm::test::fixtures_dir() / "gguf" / "corrupt"))
    if (e.path().extension() == ".gguf") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::string outcome(const cyllm::Result<File>& r) {
  if (r.ok()) return "ok\n";
  return std::string(r.error().id()) + "\n" + r.error().message() + "\n";
}

}  // namespace

TEST_CASE("every corrupt GGUF is refused with its golden error") {
  const bool update = std::getenv("CYLLM_UPDATE_GOLDENS") != nullptr;
  const auto files = corpus();
  CHECK(files.size() >= 35);
  int refused = 0;
  for (const fs::path& p : files) {
    CAPTURE(p.filename().string());
    const std::string bytes = cyllm::test::read_text(p);
    auto r = File::parse(std::span(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()));
    const std::string got = outcome(r);
    fs::path golden = p;
    golden.replace_extension(".expected");
    if (update) {
      cyllm::test::write_file(golden, got);
      continue;
    }
    const std::string want = cyllm::test::read_text(golden);
    REQUIRE_MESSAGE(!want.empty(), "missing golden " << golden.string());
    CHECK(got == want);
    if (!r.ok()) {
      ++refused;
      // The same error through open(), with the path as context.
      auto o = File::open(p.string());
      REQUIRE_FALSE(o.ok());
      CHECK(o.error().code() == r.error().code());
      CHECK(o.error().message() == r.error().message());
      REQUIRE(o.error().context().size() == 1);
      CHECK(o.error().context()[0].find(p.filename().string()) != std::string::npos);
    }
  }
  if (!update) CHECK(refused == static_cast<int>(files.size()) - 1);  // all but valid.gguf
}

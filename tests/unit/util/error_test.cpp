#include <doctest/doctest.h>

#include <set>

#include "cyllm/error.h"

using namespace cyllm;

namespace {
Result<int> half(int x) {
  if (x % 2) return Error(Errc::InvalidArgument, "odd value " + std::to_string(x));
  return x / 2;
}
Result<int> quarter(int x) {
  int h = CYLLM_TRY(half(x));
  return CYLLM_TRY(half(h));
}
}  // namespace

TEST_CASE("Result carries a value or an error with context") {
  CHECK(quarter(8).value() == 2);
  auto r = quarter(6);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Errc::InvalidArgument);
  CHECK(r.error().message() == "odd value 3");
  Error e = std::move(r).error().with_context("reading x").with_context("loading y");
  CHECK(e.to_string() == "util.invalid_argument: odd value 3 (while reading x; while loading y)");
}

TEST_CASE("error ids are unique and map onto the shared exit codes") {
  std::set<std::string_view> ids;
  for (int i = 0; i <= static_cast<int>(kLastErrc); ++i) {
    auto id = errc_id(static_cast<Errc>(i));
    CHECK(ids.insert(id).second);
    CHECK(id.find('.') != std::string_view::npos);
  }
  CHECK(exit_code_for(Errc::Usage) == ExitCode::Usage);
  CHECK(exit_code_for(Errc::Internal) == ExitCode::Internal);
  CHECK(exit_code_for(Errc::Cancelled) == ExitCode::Interrupted);
  CHECK(exit_code_for(Errc::ToolTimeout) == ExitCode::Failed);
  CHECK(exit_code_for(Errc::NotImplemented) == ExitCode::Failed);
}

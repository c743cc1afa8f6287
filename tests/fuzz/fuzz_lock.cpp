// libFuzzer target: requirements.lock parsing and filling. Invariants: every accepted
// entry has a normalised name and 64-hex lowercase hashes; filling an accepted lock with
// one fetched file per entry (carrying the entry's own hash when it has one) succeeds, and
// the result parses back to as many entries, each with a hash unless it has a marker.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cyllm/packaging.h"
#include "cyllm/wheelhouse.h"

using namespace cyllm::wheelhouse;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto lock = parse_lock(text);
  if (!lock.ok()) return 0;
  std::vector<FetchedFile> fetched;
  for (const auto& e : lock->entries) {
    CYLLM_ASSERT(e.name == cyllm::packaging::normalize_name(e.name));
    for (const auto& h : e.sha256) {
      CYLLM_ASSERT(h.size() == 64);
      for (char c : h) CYLLM_ASSERT((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
    }
    std::string version = e.version.empty() ? "1.0" : e.version;
    fetched.push_back({e.name, version, e.sha256.empty() ? std::string(64, 'a') : e.sha256.front(), ""});
  }
  auto filled = fill_lock(*lock, fetched);
  if (!filled.ok()) {
    // Only possible when one entry matches fetched files of two versions or with hashes
    // another entry of the same name contributed.
    auto c = filled.error().code();
    CYLLM_ASSERT(c == cyllm::Errc::BadSource || c == cyllm::Errc::HashMismatch);
    return 0;
  }
  auto back = parse_lock(*filled);
  CYLLM_ASSERT(back.ok());
  CYLLM_ASSERT(back->entries.size() == lock->entries.size());
  for (const auto& e : back->entries) CYLLM_ASSERT(!e.sha256.empty() || !e.marker.empty());
  return 0;
}

// libFuzzer target: a wheel's METADATA and RECORD parsers on arbitrary bytes. Invariants:
// an accepted METADATA has a non-empty Name and Version and no value spans lines; an
// accepted RECORD has digests of the length its algorithm gives, and written back with
// Python's csv quoting it parses to the same rows.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cyllm/wheelhouse.h"

using namespace cyllm::wheelhouse;

namespace {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto m = parse_wheel_metadata(text);
  if (m.ok()) {
    CYLLM_ASSERT(!m->name.empty() && !m->version.empty());
    CYLLM_ASSERT(m->name.find('\n') == std::string::npos && m->version.find('\n') == std::string::npos);
    for (const auto& r : m->requires_dist) CYLLM_ASSERT(r.find('\n') == std::string::npos);
  }
  auto rec = parse_wheel_record(text);
  if (rec.ok()) {
    std::string again;
    for (const auto& e : *rec) {
      CYLLM_ASSERT(!e.path.empty());
      if (e.hash_algorithm.empty()) {
        CYLLM_ASSERT(e.digest.empty());
      } else {
        std::size_t n = e.hash_algorithm == "sha256" ? 32 : e.hash_algorithm == "sha384" ? 48 : 64;
        CYLLM_ASSERT(e.digest.size() == n);
      }
      again += csv_field(e.path) + "," +
               (e.hash_algorithm.empty() ? "" : e.hash_algorithm + "=" + record_digest_text(e.digest)) + "," +
               (e.size_bytes ? std::to_string(*e.size_bytes) : "") + "\n";
    }
    auto back = parse_wheel_record(again);
    CYLLM_ASSERT(back.ok());
    CYLLM_ASSERT(back->size() == rec->size());
    for (std::size_t i = 0; i < rec->size(); ++i) {
      CYLLM_ASSERT((*back)[i].path == (*rec)[i].path);
      CYLLM_ASSERT((*back)[i].digest == (*rec)[i].digest);
      CYLLM_ASSERT((*back)[i].size_bytes == (*rec)[i].size_bytes);
    }
  }
  return 0;
}

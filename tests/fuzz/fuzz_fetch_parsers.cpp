// libFuzzer target: the parsers cy-llm-fetch runs on bytes from the network or from
// files a user passes. The first byte picks one:
//   0 simple index page as PEP 691 JSON, 1 as PEP 503 HTML, 2 Content-Range value,
//   3 Retry-After value, 4 the lock reader used to choose what to fetch, 5 a source string.
// Invariants: no crash, no hang; accepted index files have a non-empty filename and URL and
// either no sha256 or 64 lowercase hex digits; an accepted Content-Range is consistent.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cyllm/error.h"
#include "cyllm/fetch.h"

using namespace cyllm;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const int which = data[0] % 6;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (which) {
    case 0:
    case 1: {
      auto r = fetch::parse_index_page(
          text, which == 0 ? "application/vnd.pypi.simple.v1+json" : "text/html",
          "https://index.example/simple/pkg/");
      if (!r.ok()) return 0;
      for (const auto& f : *r) {
        CYLLM_ASSERT(!f.url.empty());
        CYLLM_ASSERT(f.sha256.empty() || f.sha256.size() == 64);
      }
      return 0;
    }
    case 2: {
      auto cr = fetch::parse_content_range(text);
      (void)cr;
      return 0;
    }
    case 3: {
      auto ra = fetch::parse_retry_after(text, std::chrono::system_clock::now());
      if (ra) CYLLM_ASSERT(ra->count() >= 0);
      return 0;
    }
    case 4: {
      auto lock = fetch::parse_lock(text);
      if (!lock.ok()) return 0;
      for (const auto& r : lock->requirements)
        for (const auto& h : r.sha256s) CYLLM_ASSERT(h.size() == 64);
      return 0;
    }
    default: {
      auto a = fetch::parse_source(text, "https://huggingface.co");
      (void)a;
      return 0;
    }
  }
}

// libFuzzer target: the cache index log reader (index/entries.log is read back from disk,
// where a crash, a power loss or another program may have left anything).
// Invariants: no crash, no hang; `consumed` ends at a '\n' (or is 0) and never passes the
// input; every accepted entry has a 64-hex sha256 and re-encodes to a record that parses
// back to the same entry; the direct payload reader, wherever it accepts the input as a
// payload, agrees with the JSON parser.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cyllm/error.h"
#include "fetch/index_log.h"

using namespace cyllm;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto direct = fetch::decode_index_payload_canonical(text)) {
    auto json = fetch::decode_index_payload_json(text);
    CYLLM_ASSERT(json.has_value());
    CYLLM_ASSERT(json->url == direct->url && json->etag == direct->etag && json->sha256 == direct->sha256 &&
                 json->filename == direct->filename && json->hf_commit == direct->hf_commit &&
                 json->size_bytes == direct->size_bytes);
  }
  std::size_t consumed = 0;
  auto entries = fetch::parse_index_records(text, &consumed);
  CYLLM_ASSERT(consumed <= size);
  CYLLM_ASSERT(consumed == 0 || text[consumed - 1] == '\n');
  for (const auto& e : entries) {
    CYLLM_ASSERT(e.sha256.size() == 64);
    auto again = fetch::parse_index_records(fetch::encode_index_record(e));
    CYLLM_ASSERT(again.size() == 1);
    CYLLM_ASSERT(again[0].url == e.url && again[0].etag == e.etag && again[0].sha256 == e.sha256 &&
                 again[0].filename == e.filename && again[0].hf_commit == e.hf_commit &&
                 again[0].size_bytes == e.size_bytes);
  }
  return 0;
}

// The cache's index as one append-only log: <root>/index/entries.log.
//
//   record  := "I1 " CHECK " " PAYLOAD "\n"
//   CHECK   := 16 lower-case hex digits: FNV-1a (64 bits) of PAYLOAD
//   PAYLOAD := one JSON object on one line (control characters escaped, so never a '\n'):
//              {"url","etag","sha256","size_bytes","hf_commit","filename"}
//
// The last record of a URL (and of a sha256) wins. A writer appends one whole record with
// one write() on an O_APPEND descriptor while it holds flock(LOCK_EX) on the log, so the
// records of several processes never interleave. A record cut short (a crash or a power
// loss in the middle of an append, or zeros where the data never reached the disk) fails
// its check and is skipped; the next writer's record then follows it on the same line, and
// a reader finds that record again at its "I1 " marker.
//
// Design goals: one file operation per download instead of the temp file, rename and link
// of one JSON file per URL (about a fifth of a many-small-files run); readers tolerate
// anything a crash can leave. Entries are hints, not synced: a lost one is a cache miss.
// Non-goals: deletion records (compact() rewrites the log without dead entries instead).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cyllm/error.h"
#include "cyllm/fetch.h"

namespace cyllm::fetch {

// One record, '\n' included.
std::string encode_index_record(const IndexEntry& e);

// A record's payload: read directly when it has the form encode_index_record writes, by a
// JSON parser otherwise (then any key order or escape is accepted); nullopt unless it is
// an object with a 64-hex sha256. The two readers are exposed for the fuzz target, which
// checks that they agree wherever the direct one accepts.
std::optional<IndexEntry> decode_index_payload(std::string_view payload);
std::optional<IndexEntry> decode_index_payload_canonical(std::string_view payload);
std::optional<IndexEntry> decode_index_payload_json(std::string_view payload);

// The valid records of `text`, in order. `consumed` gets the length of the prefix that ends
// with the last '\n' (a record still being written, or torn, is left for a later call).
std::vector<IndexEntry> parse_index_records(std::string_view text, std::size_t* consumed = nullptr);

// Thread-safe; shared by the copies of one Cache. The file's reads and writes happen under
// file_mu_, the lookups in memory under mu_ alone: a lookup of the event loop does not wait
// for another thread's append (flock, stat, write, unlock: four system calls).
class IndexLog {
 public:
  explicit IndexLog(std::string path) : path_(std::move(path)) {}
  ~IndexLog();
  IndexLog(const IndexLog&) = delete;
  IndexLog& operator=(const IndexLog&) = delete;

  const std::string& path() const { return path_; }
  Result<void> append(const IndexEntry& e);
  // Several records under one lock and with one write() (a download loop records what
  // finished in one pass of its loop together).
  Result<void> append(const std::vector<IndexEntry>& entries);
  // The last entry of a URL or of a sha256; on a miss the records that other processes
  // appended since the last read are read first (so a process that waited for another's
  // download finds its entry), unless `refresh` is false: then only what was read already
  // (the log is read the first time all the same).
  std::optional<IndexEntry> find_url(std::string_view url, bool refresh = true);
  std::optional<IndexEntry> find_sha256(std::string_view sha256);
  // Rewrites the log with one record per live entry that `keep` accepts (temp file +
  // rename, under the log's lock; appenders holding the old file notice and reopen).
  Result<void> compact(const std::function<bool(const IndexEntry&)>& keep);

 private:
  // With file_mu_ held:
  bool open_locked();     // opens (creating) the log; false when it cannot
  void refresh_locked();  // reads what was appended since the last read (takes mu_ to add it)
  // With mu_ held:
  void add_locked(const IndexEntry& e);
  // Takes the locks itself: the entry of `key` in by_url_ (or by_sha256_).
  std::optional<IndexEntry> find(bool by_url, std::string_view key, bool refresh);

  std::string path_;
  std::mutex file_mu_;  // taken before mu_ when both are
  int fd_ = -1;         // O_RDWR | O_APPEND
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  std::uint64_t consumed_ = 0;  // bytes of fd_'s file parsed so far
  std::mutex mu_;
  bool looked_ = false;  // refresh_locked() ran at least once
  struct Slot {
    IndexEntry entry;
    std::uint64_t seq = 0;  // order of reading: compact() keeps it
  };
  std::uint64_t next_seq_ = 0;
  std::unordered_map<std::string, Slot> by_url_, by_sha256_;
};

}  // namespace cyllm::fetch

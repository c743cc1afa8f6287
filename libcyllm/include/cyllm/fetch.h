// Verified, resumable, parallel downloads into a content-addressed cache.
//
// Layers, lowest first:
//   HttpClient   one HTTP exchange per request, many at once, driven by poll(); the libcurl
//                implementation uses the multi interface. Never follows redirects itself:
//                the Downloader does, so that credentials never cross to another host.
//   Cache        blobs/sha256/<hex> under a root, an index (URL -> sha256/ETag: one
//                append-only log, index/entries.log, one checksummed record per download),
//                per-blob/per-URL flock files (the .part files themselves), LRU gc.
//   Downloader   for a list of Artifacts: cache lookup (a hit makes zero requests), lock,
//                resume from <blob>.part with Range/If-Range, SHA-256 while streaming,
//                retries with backoff, fsync + rename into the cache, link into --dest.
//
// Design goals: nothing half-written where a complete file is expected; a second fetch of
// the same artifact never touches the network; several processes may share one cache.
// Non-goals: HTTP caching semantics (Cache-Control); a hit is never revalidated upstream
// (pin an ETag-stable URL or an hf:// revision to a commit for that).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cyllm/context.h"
#include "cyllm/error.h"

namespace cyllm::fetch {

inline constexpr std::string_view kFetchSchema = "cy-llm.fetch/v1";

// ---- HTTP seam ------------------------------------------------------------------------

struct HttpRequest {
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
};

struct HttpResponseHead {
  long status = 0;
  std::map<std::string, std::string> headers;  // keys lower-case; last value wins
  std::string header(std::string_view lower_name) const;  // "" when absent
};

// How a transfer ended. Ok means an HTTP response was received completely (whatever its
// status); everything else is a transport failure.
struct TransferResult {
  enum class Kind { Ok, Connect, Timeout, Tls, Aborted, WriteFailed, Other };
  Kind kind = Kind::Ok;
  std::string message;
};

struct TransferHandlers {
  // Once, when the final response head is in. Return false to stop the transfer (the body
  // is then neither read nor handed to on_body).
  std::function<bool(const HttpResponseHead&)> on_head;
  // Body bytes. Return false to abort (e.g. a write error); on_done gets Kind::WriteFailed.
  std::function<bool(std::string_view)> on_body;
  std::function<void(const TransferResult&)> on_done;
};

struct HttpOptions {
  std::string ca_bundle;                         // "" = the system store; never disables checks
  std::chrono::milliseconds connect_timeout{15000};
  std::chrono::milliseconds stall_timeout{30000};  // fails when < 1 byte/s for this long
  bool use_netrc = true;                         // ~/.netrc (optional, as curl does)
  std::size_t max_parallel = 8;
  std::string user_agent = "cy-llm-fetch";
  // Proxies, chosen by the tool from the environment (both cases of the names); "" = none.
  // libcurl's own reading of the environment is switched off so that only these count.
  std::string http_proxy, https_proxy, no_proxy;
};

// Starts requests and drives them; handlers run on the thread that calls poll().
// Not thread-safe: one thread owns a client.
class HttpClient {
 public:
  virtual ~HttpClient() = default;
  virtual void start(HttpRequest request, TransferHandlers handlers) = 0;
  // Makes progress for at most `wait`; returns the number of transfers still running.
  virtual std::size_t poll(std::chrono::milliseconds wait) = 0;
  // Aborts every running transfer; each gets on_done(Aborted).
  virtual void abort_all() = 0;
};

// libcurl multi interface; HTTP/1.1 or HTTP/2 (ALPN), TLS verification always on, proxies
// from the environment (http_proxy, HTTPS_PROXY, NO_PROXY... as libcurl reads them).
std::unique_ptr<HttpClient> make_curl_client(const HttpOptions& options);

// ---- Sources --------------------------------------------------------------------------

// One thing to download.
struct Artifact {
  std::string source;          // as given: "https://...", "hf://org/repo/file@rev", "torch==2.4.0"
  std::string url;             // what to GET first
  std::string filename;        // name in --dest
  std::string sha256;          // expected (lower-case hex) or "" when unknown
  std::optional<std::uint64_t> size_bytes;  // expected, when known
  bool hugging_face = false;   // hf:// source: auth/404 explained, X-Repo-Commit recorded
  std::string hf_repo, hf_revision, hf_file;
  std::string environment;     // plan/lock environment, for the manifest
};

// "hf://ORG/REPO/PATH/FILE[@REVISION]" -> Artifact with url
// "{endpoint}/{ORG}/{REPO}/resolve/{REVISION}/{PATH/FILE}". BadSource on malformed input.
Result<Artifact> parse_hf_source(std::string_view source, std::string_view endpoint);
// An https:// or http:// URL (or hf://); the filename is the last path segment.
Result<Artifact> parse_source(std::string_view source, std::string_view hf_endpoint);

// One requirement of a lock file: "name==version" with its hashes and the lock's indexes.
struct LockedRequirement {
  std::string name, version, line;
  std::string specifier;             // a range instead of a pin ("<1.71,>=1.62.1"): the
                                     // highest version on the index that fits is taken
  std::string url;                   // for "name @ https://..." lines
  std::vector<std::string> sha256s;  // from --hash=sha256:...
};
struct LockFile {
  std::vector<std::string> index_urls;  // --index-url first, then --extra-index-url
  std::vector<LockedRequirement> requirements;
};
// pip requirements syntax with backslash continuations and comments. BadSource on a line
// we cannot use (a bad specifier, unknown options).
Result<LockFile> parse_lock(std::string_view text);

// A file listed by a PEP 503/691 simple index page.
struct IndexFile {
  std::string filename, url, sha256;
};
// Parses a simple index project page: PEP 691 JSON or PEP 503 HTML; relative URLs are
// resolved against page_url, "#sha256=" fragments become sha256.
Result<std::vector<IndexFile>> parse_index_page(std::string_view body, std::string_view content_type,
                                                std::string_view page_url);

// ---- Cache ----------------------------------------------------------------------------

struct IndexEntry {
  std::string url, etag, sha256, hf_commit, filename;
  std::uint64_t size_bytes = 0;
};

class IndexLog;

// A content-addressed store. Safe to share between processes (flock); lookups and record()
// may run on several threads (the copies of a Cache share one in-memory index).
class Cache {
 public:
  explicit Cache(std::string root);
  const std::string& root() const { return root_; }
  Result<void> ensure_layout() const;
  std::string blob_path(std::string_view sha256) const;  // root/blobs/sha256/<hex>
  bool has_blob(std::string_view sha256) const;
  // False when the blob's size differs from `size` (0 = unknown, always true).
  bool blob_has_size(std::string_view sha256, std::uint64_t size) const;
  std::optional<IndexEntry> lookup(std::string_view url) const;  // only if its blob exists
  // The same, from what this process has read of the index so far: no file operation on a
  // miss. For a first look before taking the part's lock (lookup() again once it is held).
  std::optional<IndexEntry> lookup_known(std::string_view url) const;
  // The last entry recorded for a blob (for lock lines, which know only the hash).
  std::optional<IndexEntry> lookup_blob(std::string_view sha256) const;
  // Appends the entry to the index log (one record, whole or skipped by readers).
  Result<void> record(const IndexEntry& entry) const;
  Result<void> record(const std::vector<IndexEntry>& entries) const;  // one append for all
  // Marks a blob as just used (mtime), for gc's least-recently-used order.
  void touch(std::string_view sha256) const;
  // Removes least recently used blobs until the blobs total at most max_bytes, then
  // rewrites the index log without the entries of missing blobs. Returns the bytes freed.
  // Blobs locked by another process are skipped.
  Result<std::uint64_t> gc(std::uint64_t max_bytes) const;
  std::string part_path(std::string_view key) const;  // root/partial/<key>.part
  // The part file is also the lock of its key between processes: lock_part opens (creating
  // it when absent) and flocks it, and returns the descriptor, or -1 when another process
  // holds it. Only the holder renames or deletes the path, and a holder checks that the
  // path still names the inode it locked (else it retries), so a part renamed into blobs/
  // or deleted by the previous holder is never written again. unlock_part deletes the part
  // when it is still there and empty (nothing worth resuming), then releases the lock.
  // `size`, when given, gets the part's size (a resume starts there).
  int lock_part(std::string_view key, std::uint64_t* size = nullptr) const;
  void unlock_part(std::string_view key, int fd) const;

 private:
  bool entry_usable(const IndexEntry& e) const;  // its blob is there, with its size

  std::string root_;
  std::shared_ptr<IndexLog> index_;
  bool legacy_url_ = false, legacy_sha256_ = false;  // index/url/, index/sha256/ of old caches
};

// "10G", "500M", "1.5GiB", "0" -> bytes. BadSource-free: InvalidArgument on garbage.
Result<std::uint64_t> parse_size(std::string_view text);

// ---- Downloader ------------------------------------------------------------------------

struct Progress {
  virtual ~Progress() = default;
  virtual void started(std::size_t id, const std::string& name, std::optional<std::uint64_t> total) = 0;
  virtual void advanced(std::size_t id, std::uint64_t done_bytes, std::optional<std::uint64_t> total) = 0;
  virtual void finished(std::size_t id, bool ok, bool cache_hit) = 0;
  virtual void tick() {}  // called ~10x a second while anything runs
};

struct RetryPolicy {
  int max_attempts = 6;                             // per artifact, all failures counted
  std::chrono::milliseconds base_delay{500};        // doubled each attempt, +-50% jitter
  std::chrono::milliseconds max_delay{30000};
  std::chrono::milliseconds max_retry_after{120000};  // cap on a server's Retry-After
};

struct DownloadOptions {
  std::string dest_dir;           // "" = leave the files in the cache only
  bool offline = false;
  // Flush each file to disk (fdatasync) before it becomes visible in the cache, so that
  // even a power loss cannot leave a blob whose bytes are not the ones hashed. Off by
  // default, as in pip, uv, huggingface_hub and curl: a process crash, Ctrl-C or a full
  // disk never leaves a half-written file either way (temp file + rename), and a blob cut
  // short by a power loss is caught by the size check on every cache hit.
  bool fsync = false;
  std::size_t jobs = 4;           // parallel transfers
  std::vector<std::string> extra_headers;  // --header, sent to the first host only
  std::string hf_token;           // Bearer token for hf:// sources and the hub's host
  std::string hf_endpoint = "https://huggingface.co";
  RetryPolicy retry;
  std::uint64_t seed = 0;         // jitter seed; 0 = from the clock
};

struct ArtifactResult {
  Artifact artifact;
  std::string final_url;          // after redirects
  std::string path;               // in dest_dir, or the blob path
  std::string sha256;
  std::uint64_t size_bytes = 0;
  bool cache_hit = false;
  std::string etag, hf_commit;
  std::optional<Error> error;     // set when this artifact failed
};

struct DownloadReport {
  std::vector<ArtifactResult> artifacts;  // in input order
  std::uint64_t requests = 0;             // HTTP requests started (0 on an all-hit run)
  std::uint64_t downloaded_bytes = 0;
  bool cancelled = false;
};

// Downloads every artifact (jobs at a time). Failures are per artifact; the function
// itself fails only on an unusable cache. When ctx.cancel is raised: transfers stop, .part
// files stay for a later resume, report.cancelled is set.
Result<DownloadReport> download_all(const Context& ctx, HttpClient& http, const Cache& cache,
                                    const std::vector<Artifact>& artifacts,
                                    const DownloadOptions& options, Progress* progress = nullptr);

// Finds the wheel URLs of a lock's pinned requirements through its indexes (PEP 691 JSON
// or PEP 503 HTML pages), choosing the file whose sha256 is in the lock, else the best
// wheel for the target tags (python "3.12", arch "x86_64", glibc minor). Artifacts come
// back in lock order.
Result<std::vector<Artifact>> locate_wheels(const Context& ctx, HttpClient& http, const Cache& cache,
                                            const LockFile& lock, const DownloadOptions& options,
                                            std::string_view python, std::string_view architecture,
                                            int glibc_minor);

// Progress renderers for tools: bars on a terminal, JSON lines, or nothing.
std::unique_ptr<Progress> make_tty_progress(std::FILE* out, const Clock& clock);
std::unique_ptr<Progress> make_json_progress(std::FILE* out, const Clock& clock);

// The manifest (schema cy-llm.fetch/v1, tools/schema/fetch.v1.json).
nlohmann::ordered_json manifest_json(const DownloadReport& report, const std::string& dest_dir,
                          const std::string& cache_dir);

// Helpers exposed for tests.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value,
                                                           std::chrono::system_clock::time_point now);
struct ContentRange {
  std::optional<std::uint64_t> first, last, total;
};
std::optional<ContentRange> parse_content_range(std::string_view value);
std::string sha256_hex(std::string_view data);
std::string url_host(std::string_view url);  // lower-case host[:port], "" on garbage
std::string resolve_url(std::string_view base, std::string_view location);

}  // namespace cyllm::fetch

// The content-addressed cache:
//
//   <root>/blobs/sha256/<hex>          complete, verified files (read-only, mtime = last use)
//   <root>/index/entries.log           the index: one record per download, appended
//                                      {url, etag, sha256, size_bytes, hf_commit, filename};
//                                      the last record of a URL or a sha256 wins (index_log.h)
//   <root>/partial/<key>.part          resumable downloads (+ .etag: the validator for If-Range),
//                                      each also the flock of its key; key = expected sha256,
//                                      else sha256(url); read-only like the blob it becomes
//
// Caches written before the log kept one JSON file per entry, index/url/<sha256(url)>.json
// and index/sha256/<hex>.json; they are still read when the log has no entry, and an entry
// found there is appended to the log. Index entries are not fsynced (hints: a lost entry
// is a cache miss).
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "cyllm/fetch.h"
#include "fetch/index_log.h"
#include "util/strings.h"

namespace cyllm::fetch {

namespace fs = std::filesystem;

Cache::Cache(std::string root) : root_(std::move(root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
  index_ = std::make_shared<IndexLog>(root_ + "/index/entries.log");
  // Entries of the old layout are looked for only where its directories exist (a failed
  // open per download otherwise).
  struct stat st{};
  legacy_url_ = ::stat((root_ + "/index/url").c_str(), &st) == 0;
  legacy_sha256_ = ::stat((root_ + "/index/sha256").c_str(), &st) == 0;
}

Result<void> Cache::ensure_layout() const {
  for (const char* sub : {"/blobs/sha256", "/index", "/partial"}) {
    std::error_code ec;
    fs::create_directories(root_ + sub, ec);
    if (ec) return Error(Errc::Io, "cannot create the cache directory " + util::quote(root_ + sub) + ": " + ec.message());
  }
  return {};
}

std::string Cache::blob_path(std::string_view sha256) const {
  return root_ + "/blobs/sha256/" + std::string(sha256);
}

bool Cache::has_blob(std::string_view sha256) const {
  struct stat st{};
  return !sha256.empty() && ::stat(blob_path(sha256).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// A blob cut short (a power loss after a download without --fsync) does not match the
// size its index entry recorded; it is then a miss and is downloaded again. A size of 0
// in the entry means unknown.
bool Cache::blob_has_size(std::string_view sha256, std::uint64_t size) const {
  if (size == 0) return true;
  struct stat st{};
  return ::stat(blob_path(sha256).c_str(), &st) == 0 && static_cast<std::uint64_t>(st.st_size) == size;
}

namespace {

// An entry of the old layout (one JSON file per URL or hash), or nothing.
std::optional<IndexEntry> read_legacy_entry(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0 && text.size() < (1 << 20);) text.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  IndexEntry e;
  auto str = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string(); };
  e.url = str("url");
  e.etag = str("etag");
  e.sha256 = str("sha256");
  e.hf_commit = str("hf_commit");
  e.filename = str("filename");
  if (j.contains("size_bytes") && j["size_bytes"].is_number_unsigned()) e.size_bytes = j["size_bytes"].get<std::uint64_t>();
  if (e.sha256.size() != 64 || e.sha256.find_first_not_of("0123456789abcdef") != std::string::npos) return std::nullopt;
  return e;
}

}  // namespace

// One stat: the blob exists and has the size its entry recorded.
bool Cache::entry_usable(const IndexEntry& e) const {
  struct stat st{};
  return !e.sha256.empty() && ::stat(blob_path(e.sha256).c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         (e.size_bytes == 0 || static_cast<std::uint64_t>(st.st_size) == e.size_bytes);
}

std::optional<IndexEntry> Cache::lookup(std::string_view url) const {
  auto e = index_->find_url(url);
  if (e && entry_usable(*e)) return e;
  if (!legacy_url_) return std::nullopt;
  auto old = read_legacy_entry(root_ + "/index/url/" + sha256_hex(url) + ".json");
  if (!old || old->url != url || !entry_usable(*old)) return std::nullopt;
  (void)index_->append(*old);  // migrated: the next lookup finds it in the log
  return old;
}

std::optional<IndexEntry> Cache::lookup_blob(std::string_view sha256) const {
  struct stat st{};
  if (sha256.empty() || ::stat(blob_path(sha256).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  const auto size = static_cast<std::uint64_t>(st.st_size);
  auto e = index_->find_sha256(sha256);
  if (!e && legacy_sha256_) {
    e = read_legacy_entry(root_ + "/index/sha256/" + std::string(sha256) + ".json");
    if (e && e->sha256 != sha256) e.reset();
    if (e) (void)index_->append(*e);
  }
  if (e) {
    if (e->size_bytes != 0 && e->size_bytes != size) return std::nullopt;
    return e;
  }
  IndexEntry bare;
  bare.sha256 = std::string(sha256);
  bare.size_bytes = size;
  return bare;
}

std::optional<IndexEntry> Cache::lookup_known(std::string_view url) const {
  auto e = index_->find_url(url, false);
  if (e && entry_usable(*e)) return e;
  return std::nullopt;
}

Result<void> Cache::record(const IndexEntry& e) const { return index_->append(e); }
Result<void> Cache::record(const std::vector<IndexEntry>& entries) const { return index_->append(entries); }

void Cache::touch(std::string_view sha256) const {
  ::utimensat(AT_FDCWD, blob_path(sha256).c_str(), nullptr, 0);
}

int Cache::lock_part(std::string_view key, std::uint64_t* size) const {
  const std::string path = part_path(key);
  for (int attempt = 0; attempt < 3; ++attempt) {
    // Created read-only, as its blob will be (the descriptor that creates it may write):
    // no chmod per download. A part left read-only by an earlier run is made writable for
    // the open and read-only again through the descriptor.
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0444);
    if (fd < 0 && errno == EACCES && ::chmod(path.c_str(), 0644) == 0) {
      fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
      if (fd >= 0) ::fchmod(fd, 0444);
    }
    if (fd < 0) return -1;
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      return -1;
    }
    struct stat held{}, now{};
    if (::fstat(fd, &held) == 0 && ::stat(path.c_str(), &now) == 0 && held.st_ino == now.st_ino &&
        held.st_dev == now.st_dev) {
      if (held.st_mode & 0222) ::fchmod(fd, 0444);  // a part from before parts were read-only
      if (size) *size = static_cast<std::uint64_t>(held.st_size);
      return fd;
    }
    ::close(fd);  // the previous holder renamed or deleted it meanwhile: take the new one
  }
  return -1;
}

void Cache::unlock_part(std::string_view key, int fd) const {
  if (fd < 0) return;
  const std::string path = part_path(key);
  struct stat held{}, now{};
  if (::fstat(fd, &held) == 0 && held.st_size == 0 && ::stat(path.c_str(), &now) == 0 &&
      held.st_ino == now.st_ino && held.st_dev == now.st_dev)
    ::unlink(path.c_str());
  ::flock(fd, LOCK_UN);
  ::close(fd);
}
std::string Cache::part_path(std::string_view key) const { return root_ + "/partial/" + std::string(key) + ".part"; }

Result<std::uint64_t> Cache::gc(std::uint64_t max_bytes) const {
  struct Blob {
    std::string hex;
    std::uint64_t size;
    std::int64_t mtime_ns;
  };
  std::vector<Blob> blobs;
  std::uint64_t total = 0;
  std::error_code ec;
  fs::directory_iterator it(root_ + "/blobs/sha256", ec), end;
  if (ec) return std::uint64_t{0};  // no cache yet: nothing to trim
  for (; it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.size() != 64 || name.find('.') != std::string::npos) continue;
    struct stat st{};
    if (::stat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    blobs.push_back({name, static_cast<std::uint64_t>(st.st_size),
                     static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec});
    total += static_cast<std::uint64_t>(st.st_size);
  }
  std::sort(blobs.begin(), blobs.end(), [](const Blob& a, const Blob& b) {
    return a.mtime_ns != b.mtime_ns ? a.mtime_ns < b.mtime_ns : a.hex < b.hex;
  });
  std::uint64_t freed = 0;
  for (const auto& b : blobs) {
    if (total <= max_bytes) break;
    // Skip blobs another process holds (it is linking or verifying them right now).
    int fd = lock_part(b.hex);
    if (fd < 0) continue;
    if (::unlink(blob_path(b.hex).c_str()) == 0) {
      total -= b.size;
      freed += b.size;
      if (legacy_sha256_) ::unlink((root_ + "/index/sha256/" + b.hex + ".json").c_str());
    }
    unlock_part(b.hex, fd);
  }
  // The log keeps only the entries whose blobs are still there. A log that cannot be
  // rewritten (a read-only index) is left as it is: entries of missing blobs are misses.
  (void)index_->compact([this](const IndexEntry& e) { return has_blob(e.sha256); });
  return freed;
}

}  // namespace cyllm::fetch

// The content-addressed cache:
//
//   <root>/blobs/sha256/<hex>          complete, verified files (read-only, mtime = last use)
//   <root>/index/url/<sha256(url)>.json {url, etag, sha256, size_bytes, hf_commit, filename}
//   <root>/index/sha256/<hex>.json     the same, found by content (lock lines know only hashes)
//   <root>/partial/<key>.part          resumable downloads (+ .etag: the validator for If-Range),
//                                      each also the flock of its key; key = expected sha256,
//                                      else sha256(url)
//
// Index files are written atomically (temp + rename), so readers see old or new, never half;
// they are not fsynced (hints: a lost entry is a cache miss).
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "cyllm/fetch.h"
#include "util/strings.h"

namespace cyllm::fetch {

namespace fs = std::filesystem;

Cache::Cache(std::string root) : root_(std::move(root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

Result<void> Cache::ensure_layout() const {
  for (const char* sub : {"/blobs/sha256", "/index/url", "/index/sha256", "/partial"}) {
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

std::optional<IndexEntry> read_entry(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return std::nullopt;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return std::nullopt;
  std::string text;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0 && text.size() < (1 << 20);) text.append(buf, n);
  std::fclose(f);
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

std::optional<IndexEntry> Cache::lookup(std::string_view url) const {
  auto e = read_entry(root_ + "/index/url/" + sha256_hex(url) + ".json");
  if (!e || e->url != url || !has_blob(e->sha256) || !blob_has_size(e->sha256, e->size_bytes)) return std::nullopt;
  return e;
}

std::optional<IndexEntry> Cache::lookup_blob(std::string_view sha256) const {
  if (!has_blob(sha256)) return std::nullopt;
  auto e = read_entry(root_ + "/index/sha256/" + std::string(sha256) + ".json");
  if (e && e->sha256 == sha256 && !blob_has_size(sha256, e->size_bytes)) return std::nullopt;
  if (!e || e->sha256 != sha256) {
    IndexEntry bare;
    bare.sha256 = std::string(sha256);
    struct stat st{};
    if (::stat(blob_path(sha256).c_str(), &st) == 0) bare.size_bytes = static_cast<std::uint64_t>(st.st_size);
    return bare;
  }
  return e;
}

namespace {

// Temp file + rename, without fsync: index entries are hints (a lost one is a cache miss)
// and syncing two of them per download cost more than the download of a small file.
Result<void> write_hint(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Error(Errc::Io, "cannot write " + util::quote(tmp));
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Error(Errc::Io, "cannot write " + util::quote(path));
  }
  return {};
}

}  // namespace

Result<void> Cache::record(const IndexEntry& e) const {
  nlohmann::ordered_json j = {{"url", e.url},       {"etag", e.etag},           {"sha256", e.sha256},
                              {"size_bytes", e.size_bytes}, {"hf_commit", e.hf_commit}, {"filename", e.filename}};
  std::string text = j.dump(2) + "\n";
  const std::string by_hash = root_ + "/index/sha256/" + e.sha256 + ".json";
  if (e.url.empty()) return write_hint(by_hash, text);
  const std::string by_url = root_ + "/index/url/" + sha256_hex(e.url) + ".json";
  if (auto r = write_hint(by_url, text); !r.ok()) return r;
  // The same entry under the hash: a second name for the file just written (one link()
  // instead of four file operations) when there is none yet. Entries are only ever
  // replaced by rename, so the two names never change each other.
  if (::link(by_url.c_str(), by_hash.c_str()) == 0) return {};
  return write_hint(by_hash, text);
}

void Cache::touch(std::string_view sha256) const {
  ::utimensat(AT_FDCWD, blob_path(sha256).c_str(), nullptr, 0);
}

int Cache::lock_part(std::string_view key) const {
  const std::string path = part_path(key);
  for (int attempt = 0; attempt < 3; ++attempt) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      return -1;
    }
    struct stat held{}, now{};
    if (::fstat(fd, &held) == 0 && ::stat(path.c_str(), &now) == 0 && held.st_ino == now.st_ino &&
        held.st_dev == now.st_dev)
      return fd;
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
      ::unlink((root_ + "/index/sha256/" + b.hex + ".json").c_str());
    }
    unlock_part(b.hex, fd);
  }
  return freed;
}

}  // namespace cyllm::fetch

// IndexLog: see index_log.h for the record format and the rules of appending.
#include "fetch/index_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>

#include <nlohmann/json.hpp>

#include "util/strings.h"

namespace cyllm::fetch {
namespace {

constexpr std::string_view kMarker = "I1 ";
constexpr std::size_t kCheckLen = 16;

bool is_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// FNV-1a, 64 bits: catches a torn or zero-filled record; not a defence against an
// attacker (who can write the cache can write its blobs too).
std::string check_of(std::string_view payload) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : payload) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  static const char* hex = "0123456789abcdef";
  std::string out(kCheckLen, '0');
  for (std::size_t i = 0; i < kCheckLen; ++i) out[kCheckLen - 1 - i] = hex[(h >> (4 * i)) & 15];
  return out;
}

// A JSON string literal (control characters, '"' and '\\' escaped; other bytes as they are).
void append_json_string(std::string& out, std::string_view s) {
  static const char* hex = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += ch;
    }
  }
  out += '"';
}

// A JSON string in the form append_json_string writes (ASCII, with \" \\ and \u00XX
// escapes) into `out`, moving `p` past it; false for any other form.
bool take_canonical_string(std::string_view& p, std::string& out) {
  if (p.empty() || p[0] != '"') return false;
  for (std::size_t i = 1; i < p.size(); ++i) {
    std::size_t run = i;  // plain characters are appended a run at a time
    while (run < p.size() && p[run] != '"' && p[run] != '\\' && static_cast<unsigned char>(p[run]) >= 0x20 &&
           static_cast<unsigned char>(p[run]) < 0x80)
      ++run;
    out.append(p.substr(i, run - i));
    i = run;
    if (i >= p.size()) return false;
    const auto c = static_cast<unsigned char>(p[i]);
    if (c == '"') {
      p.remove_prefix(i + 1);
      return true;
    }
    if (c != '\\') return false;  // a control character or a byte past ASCII: the JSON parser decides
    if (i + 1 >= p.size()) return false;
    const char e = p[++i];
    if (e == '"' || e == '\\') {
      out += e;
    } else if (e == 'u' && i + 4 < p.size() && p[i + 1] == '0' && p[i + 2] == '0' && p[i + 3] >= '0' &&
               p[i + 3] <= '7' && std::isxdigit(static_cast<unsigned char>(p[i + 4]))) {
      const char h = p[i + 4];
      const int lo = h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10;
      out += static_cast<char>((p[i + 3] - '0') * 16 + lo);
      i += 4;
    } else {
      return false;
    }
  }
  return false;
}

bool take(std::string_view& p, std::string_view literal) {
  if (!util::starts_with(p, literal)) return false;
  p.remove_prefix(literal.size());
  return true;
}

}  // namespace

// The payload exactly as encode_index_record writes it, read without a JSON parser (a
// tenth of its time: the log is read whole by the first lookup of every process). Any
// other form, valid JSON or not, is nullopt, and decode_index_payload asks the parser.
std::optional<IndexEntry> decode_index_payload_canonical(std::string_view p) {
  IndexEntry e;
  if (!take(p, "{\"url\":") || !take_canonical_string(p, e.url) || !take(p, ",\"etag\":") ||
      !take_canonical_string(p, e.etag) || !take(p, ",\"sha256\":") || !take_canonical_string(p, e.sha256) ||
      !take(p, ",\"size_bytes\":"))
    return std::nullopt;
  std::size_t digits = 0;
  while (digits < p.size() && p[digits] >= '0' && p[digits] <= '9') ++digits;
  if (digits == 0 || (digits > 1 && p[0] == '0')) return std::nullopt;
  for (std::size_t i = 0; i < digits; ++i)
    if (__builtin_mul_overflow(e.size_bytes, 10u, &e.size_bytes) ||
        __builtin_add_overflow(e.size_bytes, static_cast<std::uint64_t>(p[i] - '0'), &e.size_bytes))
      return std::nullopt;  // past 64 bits: the JSON parser reads a float, so the size is unknown
  p.remove_prefix(digits);
  if (!take(p, ",\"hf_commit\":") || !take_canonical_string(p, e.hf_commit) || !take(p, ",\"filename\":") ||
      !take_canonical_string(p, e.filename) || p != "}")
    return std::nullopt;
  return e;
}

std::optional<IndexEntry> decode_index_payload_json(std::string_view payload) {
  auto j = nlohmann::json::parse(payload, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  auto str = [&](const char* k) {
    auto it = j.find(k);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  IndexEntry e;
  e.url = str("url");
  e.etag = str("etag");
  e.sha256 = str("sha256");
  e.hf_commit = str("hf_commit");
  e.filename = str("filename");
  if (auto it = j.find("size_bytes"); it != j.end() && it->is_number_unsigned()) e.size_bytes = it->get<std::uint64_t>();
  return e;
}

std::optional<IndexEntry> decode_index_payload(std::string_view payload) {
  auto e = decode_index_payload_canonical(payload);
  if (!e) e = decode_index_payload_json(payload);
  if (!e || e->sha256.size() != 64 || !is_hex(e->sha256)) return std::nullopt;
  return e;
}

namespace {

// The record that starts at one of the markers of `line` (normally the first; after a torn
// record, a later one).
std::optional<IndexEntry> decode_line(std::string_view line) {
  for (std::size_t p = line.find(kMarker); p != std::string_view::npos; p = line.find(kMarker, p + 1)) {
    std::string_view rest = line.substr(p + kMarker.size());
    if (rest.size() < kCheckLen + 1 || rest[kCheckLen] != ' ' || !is_hex(rest.substr(0, kCheckLen))) continue;
    std::string_view payload = rest.substr(kCheckLen + 1);
    if (check_of(payload) != rest.substr(0, kCheckLen)) continue;
    if (auto e = decode_index_payload(payload)) return e;
  }
  return std::nullopt;
}

bool same_file(int fd, const std::string& path) {
  struct stat a{}, b{};
  return ::fstat(fd, &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

std::string encode_index_record(const IndexEntry& e) {
  // Written by hand (a record per download; nlohmann's tree cost more than the write).
  // Bytes that are not UTF-8 make the reader's JSON parser refuse the record: a miss.
  std::string payload;
  payload.reserve(128 + e.url.size() + e.etag.size() + e.hf_commit.size() + e.filename.size());
  payload += "{\"url\":";
  append_json_string(payload, e.url);
  payload += ",\"etag\":";
  append_json_string(payload, e.etag);
  payload += ",\"sha256\":";
  append_json_string(payload, e.sha256);
  payload += ",\"size_bytes\":" + std::to_string(e.size_bytes) + ",\"hf_commit\":";
  append_json_string(payload, e.hf_commit);
  payload += ",\"filename\":";
  append_json_string(payload, e.filename);
  payload += '}';
  std::string out;
  out.reserve(kMarker.size() + kCheckLen + payload.size() + 2);
  out += kMarker;
  out += check_of(payload);
  out += ' ';
  out += payload;
  out += '\n';
  return out;
}

std::vector<IndexEntry> parse_index_records(std::string_view text, std::size_t* consumed) {
  std::vector<IndexEntry> out;
  std::size_t start = 0;
  for (std::size_t nl; (nl = text.find('\n', start)) != std::string_view::npos; start = nl + 1)
    if (auto e = decode_line(text.substr(start, nl - start))) out.push_back(std::move(*e));
  if (consumed) *consumed = start;
  return out;
}

IndexLog::~IndexLog() {
  if (fd_ >= 0) ::close(fd_);
}

bool IndexLog::open_locked() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);  // a read-only cache still hits
  consumed_ = 0;
  struct stat st{};
  if (fd_ < 0 || ::fstat(fd_, &st) != 0) return false;
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  return true;
}

void IndexLog::add_locked(const IndexEntry& e) {
  const std::uint64_t seq = next_seq_++;
  if (!e.url.empty()) by_url_[e.url] = {e, seq};
  by_sha256_[e.sha256] = {e, seq};
}

void IndexLog::refresh_locked() {
  {
    std::lock_guard<std::mutex> g(mu_);
    looked_ = true;
  }
  struct stat now{};
  const bool exists = ::stat(path_.c_str(), &now) == 0;
  if (fd_ < 0 || (exists && (now.st_ino != ino_ || now.st_dev != dev_))) {
    if (!exists && fd_ < 0) return;  // no log yet: nothing to read (and nothing created)
    if (!open_locked()) return;
  }
  // The path names fd_'s file here, so its size is fd_'s (no fstat).
  struct stat st{};
  if (exists) st = now;
  else if (::fstat(fd_, &st) != 0) return;
  if (static_cast<std::uint64_t>(st.st_size) <= consumed_) return;
  std::string buf(static_cast<std::size_t>(static_cast<std::uint64_t>(st.st_size) - consumed_), '\0');
  std::size_t got = 0;
  while (got < buf.size()) {
    ssize_t n = ::pread(fd_, buf.data() + got, buf.size() - got, static_cast<off_t>(consumed_ + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  buf.resize(got);
  std::size_t used = 0;
  const std::vector<IndexEntry> entries = parse_index_records(buf, &used);
  consumed_ += used;
  std::lock_guard<std::mutex> g(mu_);
  for (const auto& e : entries) add_locked(e);
}

Result<void> IndexLog::append(const IndexEntry& e) { return append(std::vector<IndexEntry>{e}); }

Result<void> IndexLog::append(const std::vector<IndexEntry>& entries) {
  if (entries.empty()) return {};
  std::string record;
  for (const auto& e : entries) record += encode_index_record(e);
  std::lock_guard<std::mutex> g(file_mu_);
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (fd_ < 0 && !open_locked()) break;
    if (::flock(fd_, LOCK_EX) != 0) break;
    // compact() replaces the file under this lock: append to the one the path names.
    struct stat st{};
    if (::stat(path_.c_str(), &st) != 0 || st.st_ino != ino_ || st.st_dev != dev_) {
      ::flock(fd_, LOCK_UN);
      if (!open_locked()) break;
      continue;
    }
    // Under the lock nobody else appends: when everything before the end was read
    // already, this record need not be read back either.
    const bool caught_up = static_cast<std::uint64_t>(st.st_size) == consumed_;
    const bool ok = write_all(fd_, record);
    const int err = errno;
    ::flock(fd_, LOCK_UN);
    if (!ok) return Error(Errc::Io, "cannot append to " + util::quote(path_) + ": " + std::strerror(err));
    if (caught_up) consumed_ += record.size();
    // In memory before file_mu_ is released: whoever reads the file next finds them.
    std::lock_guard<std::mutex> m(mu_);
    for (const auto& e : entries) add_locked(e);
    return {};
  }
  return Error(Errc::Io, "cannot write " + util::quote(path_) + ": " + std::strerror(errno));
}

std::optional<IndexEntry> IndexLog::find(bool by_url, std::string_view key, bool refresh) {
  const std::string k(key);
  auto& map = by_url ? by_url_ : by_sha256_;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (auto it = map.find(k); it != map.end()) return it->second.entry;
    if (!refresh && looked_) return std::nullopt;
  }
  std::lock_guard<std::mutex> f(file_mu_);
  refresh_locked();
  std::lock_guard<std::mutex> g(mu_);
  if (auto it = map.find(k); it != map.end()) return it->second.entry;
  return std::nullopt;
}

std::optional<IndexEntry> IndexLog::find_url(std::string_view url, bool refresh) { return find(true, url, refresh); }

std::optional<IndexEntry> IndexLog::find_sha256(std::string_view sha256) { return find(false, sha256, true); }

Result<void> IndexLog::compact(const std::function<bool(const IndexEntry&)>& keep) {
  std::lock_guard<std::mutex> f(file_mu_);
  struct stat st{};
  if (::stat(path_.c_str(), &st) != 0) return {};  // no log: nothing to compact
  for (int attempt = 0;; ++attempt) {
    if (attempt == 3) return Error(Errc::Io, "cannot lock " + util::quote(path_));
    if (!open_locked()) return Error(Errc::Io, "cannot open " + util::quote(path_) + ": " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX) != 0) return Error(Errc::Io, "cannot lock " + util::quote(path_));
    if (same_file(fd_, path_)) break;
    ::flock(fd_, LOCK_UN);
  }
  // Everything, from the start, under the lock: no append can slip in between.
  {
    std::lock_guard<std::mutex> g(mu_);
    by_url_.clear();
    by_sha256_.clear();
  }
  refresh_locked();
  std::string text;
  {
    // Each live record once, in their original order, so that the last one of every URL
    // and of every sha256 stays the last.
    std::lock_guard<std::mutex> g(mu_);
    std::map<std::uint64_t, const IndexEntry*> live;
    for (const auto& [k, v] : by_url_)
      if (keep(v.entry)) live.emplace(v.seq, &v.entry);
    for (const auto& [k, v] : by_sha256_)
      if (keep(v.entry)) live.emplace(v.seq, &v.entry);
    for (const auto& [seq, e] : live) text += encode_index_record(*e);
  }
  const std::string tmp = path_ + ".tmp." + std::to_string(::getpid());
  int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  bool ok = out >= 0 && write_all(out, text);
  if (out >= 0) ok = ::close(out) == 0 && ok;
  ok = ok && ::rename(tmp.c_str(), path_.c_str()) == 0;
  const int err = errno;
  if (!ok) ::unlink(tmp.c_str());
  ::flock(fd_, LOCK_UN);
  {
    std::lock_guard<std::mutex> g(mu_);
    by_url_.clear();
    by_sha256_.clear();
  }
  if (open_locked()) refresh_locked();
  if (!ok) return Error(Errc::Io, "cannot rewrite " + util::quote(path_) + ": " + std::strerror(err));
  return {};
}

}  // namespace cyllm::fetch

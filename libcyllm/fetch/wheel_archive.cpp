// verify_wheel: a wheel checked as untrusted bytes, without extracting it.
//
// Two passes over the zip's central directory (libarchive's seekable zip reader, which,
// like Python's zipfile and so pip, trusts the central directory rather than the local
// headers):
//   1. names, types and declared sizes of every entry; the dist-info's METADATA, WHEEL and
//      RECORD read into memory (bounded); all checks that need no file contents.
//   2. every regular file decompressed once through the hash RECORD names, counting the
//      bytes actually produced against RECORD's size and the limits.
// A zip bomb therefore costs at most limits.max_total_bytes of decompression, and usually
// nothing, because declared sizes are checked against the limits and against the file's
// own size (the compression ratio) before pass 2.
#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "cyllm/packaging.h"
#include "cyllm/wheelhouse.h"
#include "util/strings.h"

namespace cyllm::wheelhouse {
namespace {

Error bad(std::string message) { return Error(Errc::BadWheel, std::move(message)); }

struct ArchiveCloser {
  void operator()(archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<archive, ArchiveCloser>;

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

Result<ArchivePtr> open_zip(const std::string& path) {
  ArchivePtr a(archive_read_new());
  if (!a) return Error(Errc::Internal, "archive_read_new failed");
  archive_read_support_format_zip_seekable(a.get());
  if (archive_read_open_filename(a.get(), path.c_str(), 1 << 16) != ARCHIVE_OK) {
    const char* why = archive_error_string(a.get());
    return bad(util::quote(path) + " is not a readable zip archive: " + (why ? why : "unknown error"));
  }
  return a;
}

std::string archive_error(archive* a) {
  const char* why = archive_error_string(a);
  return why ? why : "unknown libarchive error";
}

// Why a member name is unsafe to extract, or "" when it is fine. `name` has no trailing
// '/' (directories have had theirs removed).
std::string unsafe_reason(std::string_view name) {
  if (name.empty()) return "an empty name";
  if (name.find('\0') != std::string_view::npos) return "a NUL byte";
  if (name.front() == '/') return "an absolute path";
  if (name.find('\\') != std::string_view::npos) return "a backslash";
  if (name.size() >= 2 && name[1] == ':' &&
      ((name[0] >= 'A' && name[0] <= 'Z') || (name[0] >= 'a' && name[0] <= 'z')))
    return "a drive letter";
  for (auto part : util::split(name, '/')) {
    if (part.empty()) return "an empty path component";
    if (part == "..") return "a \"..\" component";
    if (part == ".") return "a \".\" component";
  }
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f) return "a control character";
  return "";
}

const EVP_MD* digest_for(std::string_view algorithm) {
  if (algorithm == "sha256") return EVP_sha256();
  if (algorithm == "sha384") return EVP_sha384();
  if (algorithm == "sha512") return EVP_sha512();
  return nullptr;
}

// Reads the current entry's data into `out`, refusing more than `cap` bytes.
Result<void> read_entry(archive* a, const std::string& name, std::size_t cap, std::string& out) {
  char buf[1 << 16];
  for (;;) {
    la_ssize_t n = archive_read_data(a, buf, sizeof buf);
    if (n < 0) return bad("entry " + util::quote(name) + " cannot be decompressed: " + archive_error(a));
    if (n == 0) return {};
    if (out.size() + static_cast<std::size_t>(n) > cap)
      return bad("entry " + util::quote(name) + " is larger than " + std::to_string(cap) + " bytes");
    out.append(buf, static_cast<std::size_t>(n));
  }
}

// "3.12" admitted by Requires-Python. The target pins only the minor version, so a set
// that admits some micro release of it (3.12.0 or a late 3.12.x) counts as admitting it.
bool python_admitted(const packaging::SpecifierSet& set, const wheel::TargetEnvironment& t) {
  std::string base = std::to_string(t.python_major) + "." + std::to_string(t.python_minor);
  for (const char* micro : {"", ".0", ".99"}) {
    auto v = packaging::parse_version(base + micro);
    if (v.ok() && set.contains(*v, true)) return true;
  }
  return false;
}

std::string tag_list(const std::vector<wheel::Tag>& tags) {
  std::string out;
  for (std::size_t i = 0; i < tags.size() && i < 8; ++i) out += (i ? ", " : "") + tags[i].to_string();
  if (tags.size() > 8) out += ", ... (" + std::to_string(tags.size()) + " tags)";
  return out;
}

struct Member {
  bool is_dir = false;
  std::uint64_t declared_bytes = 0;
  bool declared = false;
};

}  // namespace

std::string describe_target(const wheel::TargetEnvironment& t) {
  std::string py = t.implementation + std::to_string(t.python_major) + std::to_string(t.python_minor);
  std::string libc = t.glibc_major == 0 ? "no glibc"
                     : t.glibc_minor >= 99 ? "any glibc"
                                          : "glibc " + std::to_string(t.glibc_major) + "." +
                                                std::to_string(t.glibc_minor);
  return py + " on " + t.architecture + " (" + libc + ")";
}

Result<WheelInfo> verify_wheel(const std::string& path, const std::optional<wheel::TargetEnvironment>& target,
                               const WheelLimits& limits) {
  WheelInfo info;
  info.filename = std::filesystem::path(path).filename().string();
  auto fn = CYLLM_TRY(wheel::parse_wheel_filename(info.filename));
  info.tags = fn.tags;
  const std::string dist = packaging::normalize_name(fn.distribution);
  // The target first: a wheel for another platform is refused before any decompression.
  if (target && !wheel::wheel_rank(fn, wheel::supported_tags(*target)))
    return Error(Errc::WheelTagMismatch,
                 util::quote(info.filename) + " has tags " + tag_list(fn.tags) + " but the target is " +
                     describe_target(*target) + ": " + wheel::explain_incompatibility(fn, *target));

  std::error_code ec;
  auto file_bytes = std::filesystem::file_size(path, ec);
  if (ec) return Error(Errc::NotFound, "cannot read wheel " + util::quote(path) + ": " + ec.message());

  // Pass 1: names, types, declared sizes; the dist-info's text files.
  std::map<std::string, Member> members;
  std::string dist_info;  // "name-1.0.dist-info"
  std::string metadata_text, record_text, wheel_text;
  bool have_metadata = false, have_record = false, have_wheel = false;
  std::uint64_t declared_total = 0;
  {
    auto a = CYLLM_TRY(open_zip(path));
    archive_entry* e = nullptr;
    for (;;) {
      int rc = archive_read_next_header(a.get(), &e);
      if (rc == ARCHIVE_EOF) break;
      if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN)
        return bad(util::quote(info.filename) + ": cannot read the zip directory: " + archive_error(a.get()));
      const char* raw = archive_entry_pathname_utf8(e);
      if (!raw) raw = archive_entry_pathname(e);
      if (!raw) return bad(util::quote(info.filename) + " has an entry whose name cannot be read");
      std::string name = raw;
      if (members.size() + 1 > limits.max_entries)
        return bad(util::quote(info.filename) + " has more than " + std::to_string(limits.max_entries) +
                   " entries");
      auto type = archive_entry_filetype(e);
      bool is_dir = type == AE_IFDIR;
      if (is_dir && !name.empty() && name.back() == '/') name.pop_back();
      if (auto why = unsafe_reason(name); !why.empty())
        return bad(util::quote(info.filename) + ": entry " + util::quote(name) + " has " + why);
      if (type == AE_IFLNK || archive_entry_symlink(e) != nullptr)
        return bad(util::quote(info.filename) + ": entry " + util::quote(name) + " is a symbolic link");
      if (archive_entry_hardlink(e) != nullptr)
        return bad(util::quote(info.filename) + ": entry " + util::quote(name) + " is a hard link");
      if (!is_dir && type != AE_IFREG)
        return bad(util::quote(info.filename) + ": entry " + util::quote(name) + " is not a regular file");
      if (archive_entry_is_encrypted(e))
        return bad(util::quote(info.filename) + ": entry " + util::quote(name) + " is encrypted");
      Member m;
      m.is_dir = is_dir;
      if (!is_dir && archive_entry_size_is_set(e)) {
        auto s = archive_entry_size(e);
        if (s < 0) return bad(util::quote(info.filename) + ": entry " + util::quote(name) + " has a negative size");
        m.declared = true;
        m.declared_bytes = static_cast<std::uint64_t>(s);
        if (m.declared_bytes > limits.max_entry_bytes)
          return bad(util::quote(info.filename) + ": entry " + util::quote(name) + " declares " +
                     std::to_string(m.declared_bytes) + " bytes; the limit is " +
                     std::to_string(limits.max_entry_bytes));
        declared_total += m.declared_bytes;
        if (declared_total > limits.max_total_bytes)
          return bad(util::quote(info.filename) + " declares more than " + std::to_string(limits.max_total_bytes) +
                     " uncompressed bytes");
      }
      if (!members.emplace(name, m).second)
        return bad(util::quote(info.filename) + ": entry " + util::quote(name) + " appears twice");
      // Top-level *.dist-info.
      auto slash = name.find('/');
      std::string top = name.substr(0, slash);
      if (util::ends_with(top, ".dist-info")) {
        if (!dist_info.empty() && dist_info != top)
          return bad(util::quote(info.filename) + " has two .dist-info directories: " + util::quote(dist_info) +
                     " and " + util::quote(top));
        dist_info = top;
        std::string rest = slash == std::string::npos ? "" : name.substr(slash + 1);
        std::string* sink = rest == "METADATA" ? &metadata_text
                            : rest == "RECORD" ? &record_text
                            : rest == "WHEEL"  ? &wheel_text
                                               : nullptr;
        if (sink && !is_dir) {
          CYLLM_TRY_VOID(read_entry(a.get(), name, rest == "RECORD" ? kMaxRecordBytes : kMaxMetadataBytes, *sink));
          (rest == "METADATA" ? have_metadata : rest == "RECORD" ? have_record : have_wheel) = true;
          continue;
        }
      }
      archive_read_data_skip(a.get());
    }
  }
  if (declared_total > (1u << 20) && declared_total / std::max<std::uint64_t>(file_bytes, 1) > limits.max_compression_ratio)
    return bad(util::quote(info.filename) + " would expand " + std::to_string(file_bytes) + " bytes into " +
               std::to_string(declared_total) + " (more than " + std::to_string(limits.max_compression_ratio) +
               "x): a zip bomb");
  if (dist_info.empty()) return bad(util::quote(info.filename) + " has no .dist-info directory");
  if (packaging::normalize_name(dist_info.substr(0, dist_info.find('-'))) != dist)
    return bad(util::quote(info.filename) + ": its .dist-info directory " + util::quote(dist_info) +
               " is not named after " + util::quote(fn.distribution));
  if (!have_metadata) return bad(util::quote(info.filename) + " has no " + dist_info + "/METADATA");
  if (!have_record) return bad(util::quote(info.filename) + " has no " + dist_info + "/RECORD");
  if (!have_wheel) return bad(util::quote(info.filename) + " has no " + dist_info + "/WHEEL");

  // WHEEL: only Wheel-Version 1.x is understood (PEP 427: refuse a newer major version).
  {
    std::string wv;
    for (auto line : util::split_lines(wheel_text))
      if (util::starts_with(util::to_lower(line), "wheel-version:")) wv = std::string(util::trim(line.substr(14)));
    if (wv.empty()) return bad(util::quote(info.filename) + ": " + dist_info + "/WHEEL has no Wheel-Version");
    if (wv.substr(0, wv.find('.')) != "1")
      return bad(util::quote(info.filename) + ": Wheel-Version " + util::quote(wv) + " is not supported (1.x)");
  }

  // METADATA against the filename.
  auto md = parse_wheel_metadata(metadata_text);
  if (!md.ok()) return Error(md.error()).with_context("reading " + dist_info + "/METADATA of " + info.filename);
  if (packaging::normalize_name(md->name) != dist)
    return bad(util::quote(info.filename) + ": METADATA Name " + util::quote(md->name) +
               " does not match the filename's " + util::quote(fn.distribution));
  {
    auto mv = packaging::parse_version(md->version);
    auto fv = packaging::parse_version(fn.version);
    if (!mv.ok()) return bad(util::quote(info.filename) + ": METADATA Version " + util::quote(md->version) +
                             " is not a PEP 440 version");
    if (!fv.ok() || !(*mv == *fv))
      return bad(util::quote(info.filename) + ": METADATA Version " + util::quote(md->version) +
                 " does not match the filename's " + util::quote(fn.version));
  }
  std::optional<packaging::SpecifierSet> requires_python;
  if (!md->requires_python.empty()) {
    auto rp = packaging::parse_specifier_set(md->requires_python);
    if (!rp.ok())
      return bad(util::quote(info.filename) + ": METADATA Requires-Python " + util::quote(md->requires_python) +
                 " is not a specifier set: " + rp.error().message());
    requires_python = std::move(*rp);
  }
  if (target && requires_python && !python_admitted(*requires_python, *target))
    return Error(Errc::WheelTagMismatch,
                 util::quote(info.filename) + " has Requires-Python " + util::quote(md->requires_python) +
                     " but the target is " + describe_target(*target));
  for (const auto& r : md->requires_dist)
    if (auto req = packaging::parse_requirement(r); !req.ok())
      return bad(util::quote(info.filename) + ": METADATA Requires-Dist " + util::quote(r) +
                 " is not a PEP 508 requirement: " + req.error().message());

  // RECORD against the member list.
  auto record = parse_wheel_record(record_text);
  if (!record.ok()) return Error(record.error()).with_context("reading " + dist_info + "/RECORD of " + info.filename);
  std::map<std::string, const RecordEntry*> listed;
  for (const auto& r : *record) {
    // libarchive may turn a backslash into '/', so RECORD's own spelling is checked as well.
    if (auto why = unsafe_reason(r.path); !why.empty())
      return bad(util::quote(info.filename) + ": RECORD entry " + util::quote(r.path) + " has " + why);
    if (!listed.emplace(r.path, &r).second)
      return bad(util::quote(info.filename) + ": RECORD lists " + util::quote(r.path) + " twice");
  }
  const std::set<std::string> unhashed = {dist_info + "/RECORD", dist_info + "/RECORD.jws",
                                          dist_info + "/RECORD.p7s"};
  for (const auto& [name, m] : members) {
    if (m.is_dir) continue;
    auto it = listed.find(name);
    if (unhashed.count(name)) continue;  // RECORD and its signatures need not list themselves
    if (it == listed.end())
      return bad(util::quote(info.filename) + ": entry " + util::quote(name) + " is not listed in RECORD");
    if (it->second->hash_algorithm.empty())
      return bad(util::quote(info.filename) + ": RECORD lists " + util::quote(name) + " without a hash");
  }
  for (const auto& [name, r] : listed) {
    auto it = members.find(name);
    if (it == members.end() || it->second.is_dir)
      return bad(util::quote(info.filename) + ": RECORD lists " + util::quote(name) + " but the archive has no such file");
  }

  // Pass 2: hash and count every file.
  {
    auto a = CYLLM_TRY(open_zip(path));
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> md_ctx(EVP_MD_CTX_new());
    if (!md_ctx) return Error(Errc::Internal, "EVP_MD_CTX_new failed");
    archive_entry* e = nullptr;
    std::uint64_t total = 0;
    std::vector<char> buf(1 << 16);
    for (;;) {
      int rc = archive_read_next_header(a.get(), &e);
      if (rc == ARCHIVE_EOF) break;
      if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN)
        return bad(util::quote(info.filename) + ": cannot read the zip directory: " + archive_error(a.get()));
      if (archive_entry_filetype(e) != AE_IFREG) {
        archive_read_data_skip(a.get());
        continue;
      }
      const char* raw = archive_entry_pathname_utf8(e);
      if (!raw) raw = archive_entry_pathname(e);
      std::string name = raw ? raw : "";
      auto m = members.find(name);
      if (m == members.end())  // the directory changed between passes (file replaced?)
        return bad(util::quote(info.filename) + ": entry " + util::quote(name) + " was not seen on the first read");
      auto it = listed.find(name);
      const RecordEntry* r = it == listed.end() ? nullptr : it->second;
      const EVP_MD* algo = r && !r->hash_algorithm.empty() ? digest_for(r->hash_algorithm) : nullptr;
      if (algo && EVP_DigestInit_ex(md_ctx.get(), algo, nullptr) != 1)
        return Error(Errc::Internal, "EVP_DigestInit_ex failed");
      std::uint64_t n_bytes = 0;
      for (;;) {
        la_ssize_t n = archive_read_data(a.get(), buf.data(), buf.size());
        if (n < 0)
          return bad(util::quote(info.filename) + ": entry " + util::quote(name) +
                     " cannot be decompressed: " + archive_error(a.get()));
        if (n == 0) break;
        n_bytes += static_cast<std::uint64_t>(n);
        total += static_cast<std::uint64_t>(n);
        if (n_bytes > limits.max_entry_bytes || (m->second.declared && n_bytes > m->second.declared_bytes))
          return bad(util::quote(info.filename) + ": entry " + util::quote(name) +
                     " expands past its declared size or the limit of " + std::to_string(limits.max_entry_bytes) +
                     " bytes");
        if (total > limits.max_total_bytes)
          return bad(util::quote(info.filename) + " expands past " + std::to_string(limits.max_total_bytes) +
                     " bytes");
        if (algo && EVP_DigestUpdate(md_ctx.get(), buf.data(), static_cast<std::size_t>(n)) != 1)
          return Error(Errc::Internal, "EVP_DigestUpdate failed");
      }
      ++info.n_files;
      if (!algo) continue;  // RECORD itself or a signature
      unsigned char digest[EVP_MAX_MD_SIZE];
      unsigned int digest_len = 0;
      if (EVP_DigestFinal_ex(md_ctx.get(), digest, &digest_len) != 1)
        return Error(Errc::Internal, "EVP_DigestFinal_ex failed");
      std::string got(reinterpret_cast<const char*>(digest), digest_len);
      if (got != r->digest)
        return bad(util::quote(info.filename) + ": entry " + util::quote(name) + " has " + r->hash_algorithm + "=" +
                   record_digest_text(got) + " but RECORD says " + r->hash_algorithm + "=" + record_digest_text(r->digest));
      if (r->size_bytes && *r->size_bytes != n_bytes)
        return bad(util::quote(info.filename) + ": entry " + util::quote(name) + " is " + std::to_string(n_bytes) +
                   " bytes but RECORD says " + std::to_string(*r->size_bytes));
    }
    info.uncompressed_bytes = total;
  }

  info.name = md->name;
  info.version = md->version;
  info.requires_python = md->requires_python;
  info.requires_dist = md->requires_dist;

  return info;
}

std::string record_digest_text(std::string_view bytes) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(k[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(k[(acc << (6 - bits)) & 63]);
  return out;
}

}  // namespace cyllm::wheelhouse

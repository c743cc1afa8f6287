// Wheelhouse: verifying downloaded wheels, filling requirements.lock hashes, installing
// the locked environments into venvs. Used by cy-llm-fetch after its downloads.
//
// A wheel (PEP 427) is a zip archive:
//   {name}/...                         the package files
//   {name}-{version}.dist-info/METADATA  RFC 822 headers: Name, Version, Requires-Python,
//                                        Requires-Dist (repeated); a body after a blank line
//   {name}-{version}.dist-info/WHEEL     Wheel-Version, Tag, ...
//   {name}-{version}.dist-info/RECORD    CSV rows "path,sha256=<urlsafe b64, no '='>,size";
//                                        RECORD itself (and RECORD.jws / RECORD.p7s, the
//                                        signatures) are listed without hash and size
//
// Design goals: a wheel is untrusted bytes. verify_wheel reads the zip's central directory
// (the one pip's zipfile reads), refuses any entry that could escape the install directory
// or that RECORD does not vouch for, checks every RECORD hash and size (pip does not), and
// bounds decompression so a zip bomb costs at most the configured bytes. Non-goals:
// installing wheels ourselves (pip does that, in hash-checking mode, from the wheelhouse);
// verifying RECORD signatures.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cyllm/context.h"
#include "cyllm/error.h"
#include "cyllm/wheel.h"

namespace cyllm::wheelhouse {

// ---------------------------------------------------------------------------------------
// Pure parsers (fuzzed: tests/fuzz/fuzz_wheel_metadata.cpp, fuzz_lock.cpp)

inline constexpr std::size_t kMaxMetadataBytes = 16u << 20;  // METADATA, WHEEL
inline constexpr std::size_t kMaxRecordBytes = 64u << 20;    // RECORD
inline constexpr std::size_t kMaxLockBytes = 16u << 20;      // requirements.lock

struct WheelMetadata {
  std::string metadata_version;            // "2.1"; "" when absent
  std::string name;                        // as written
  std::string version;                     // as written
  std::string requires_python;             // "" when absent
  std::vector<std::string> requires_dist;  // in file order, as written (continuations joined)
};

// METADATA (or any RFC 822 header block). Header names are case-insensitive; continuation
// lines (starting with space or tab) are joined to the previous value with one space; the
// body after the first empty line (or the first line that is not a header, as Python's
// email parser does) is ignored. Fails with fetch.bad_wheel when Name or Version is
// missing, empty or repeated, a continuation comes first, or the text is over
// kMaxMetadataBytes. Values are not validated here (verify_wheel does it).
Result<WheelMetadata> parse_wheel_metadata(std::string_view text);

struct RecordEntry {
  std::string path;
  std::string hash_algorithm;  // "sha256", "sha384", "sha512"; "" when no hash
  std::string digest;          // raw digest bytes (decoded from urlsafe base64)
  std::optional<std::uint64_t> size_bytes;
};

// RECORD: CSV (Python's csv module dialect: ',' separated, '"' quoting with "" escapes,
// \n or \r\n rows), three fields per row. Fails with fetch.bad_wheel naming the row for:
// a wrong field count, an unknown or weak hash algorithm (md5, sha1), bad base64, a digest
// of the wrong length, a size that is not a decimal number, an empty path, or input over
// kMaxRecordBytes. Paths are returned as written (verify_wheel checks them).
Result<std::vector<RecordEntry>> parse_wheel_record(std::string_view text);
// A digest as RECORD writes it: urlsafe base64 without padding.
std::string record_digest_text(std::string_view digest);

// ---------------------------------------------------------------------------------------
// Verifying a wheel

struct WheelLimits {
  std::uint64_t max_total_bytes = 16ull << 30;  // sum of uncompressed entry sizes
  std::uint64_t max_entry_bytes = 8ull << 30;   // one entry, uncompressed
  std::uint64_t max_entries = 200000;
  // A wheel whose declared uncompressed total exceeds 1 MiB and this many times the
  // file's size is a zip bomb (real wheels expand 2-10x; deflate tops out near 1030x, so
  // a single-layer bomb must declare sizes this catches before any decompression).
  std::uint64_t max_compression_ratio = 200;
};

struct WheelInfo {
  std::string filename;                    // base name of the file
  std::string name;                        // METADATA Name, as written
  std::string version;                     // METADATA Version, as written
  std::string requires_python;             // "" when absent
  std::vector<std::string> requires_dist;
  std::vector<wheel::Tag> tags;            // from the filename, expanded
  std::size_t n_files = 0;                 // regular files in the archive (RECORD included)
  std::uint64_t uncompressed_bytes = 0;    // their total size
};

// Opens `path` (a host path) and checks, in this order:
//  - the filename parses (resolve.bad_wheel_filename);
//  - every entry is a regular file or directory with a safe relative name: no leading '/',
//    no drive letter, no backslash, no '.'/'..'/empty component, no NUL, not a duplicate
//    (fetch.bad_wheel naming the entry); limits hold (fetch.bad_wheel);
//  - exactly one top-level *.dist-info directory, named after the wheel, with METADATA and
//    RECORD; METADATA's Name and Version match the filename (PEP 503 names, PEP 440
//    versions); Requires-Python and each Requires-Dist parse (fetch.bad_wheel);
//  - every file is listed in RECORD with a hash (except RECORD, RECORD.jws, RECORD.p7s of
//    the dist-info), every listed file exists, and each hash and size matches the bytes
//    (fetch.bad_wheel naming the entry and both hashes);
//  - with a target: one of the filename's tags is supported and Requires-Python admits the
//    target's Python (fetch.wheel_tag_mismatch listing the wheel's tags and the target).
// The archive is never extracted; nothing is written. Thread-safe.
Result<WheelInfo> verify_wheel(const std::string& path,
                               const std::optional<wheel::TargetEnvironment>& target = std::nullopt,
                               const WheelLimits& limits = {});

// "cp312-cp312-manylinux_2_28_x86_64" style description of a target, for messages.
std::string describe_target(const wheel::TargetEnvironment& target);

// ---------------------------------------------------------------------------------------
// Plans (schema cy-llm.plan/v1, as cy-llm-resolve prints them)

// The plan's "target" object -> TargetEnvironment ("python": "3.12", "architecture",
// "glibc": "2.35" or null = any). Fails with util.parse naming the bad key.
Result<wheel::TargetEnvironment> target_from_plan(const nlohmann::json& plan);

struct EnvironmentInstall {
  std::string name;       // the plan environment's name: "default", "base", "engine"
  std::string venv_dir;   // where its venv goes
  std::string lock_path;  // its lock (resolve::lock_path_for naming)
};

// One entry per plan environment, in plan order. With a single environment the venv is
// `venv_base` itself and the lock `lock_path`; with several, each gets `venv_base/<name>`
// and the lock cy-llm-resolve wrote for it (".base" before the extension for "base").
// Fails with util.parse when "environments" is missing or an entry has no usable name.
Result<std::vector<EnvironmentInstall>> plan_installs(const nlohmann::json& plan,
                                                      const std::string& venv_base,
                                                      const std::string& lock_path);

// ---------------------------------------------------------------------------------------
// requirements.lock

struct LockEntry {
  std::string requirement;          // PEP 508 text without options: "torch==2.9.0", "x @ url"
  std::string name;                 // PEP 503 normalised
  std::vector<std::string> extras;  // normalised, sorted ("[cuda,dev]" -> {"cuda", "dev"})
  std::string version;              // the pinned version of "==V" (no wildcard), else ""
  std::string url;                  // of "name @ url", else ""
  std::string marker;               // canonical marker text, "" when none
  std::vector<std::string> sha256;  // lowercase hex, in file order
  std::vector<std::string> options; // other per-requirement options as written ("--no-deps")
  std::size_t line = 0;             // 1-based line where the entry starts
  std::vector<std::string> comments;  // whole-line comments just above it (after the header)
};

struct Lock {
  std::vector<std::string> comments;  // leading "# ..." lines, kept when rewriting
  std::vector<std::string> options;   // global option lines ("--index-url URL"), as written
  std::vector<LockEntry> entries;
};

// pip requirements-file syntax as cy-llm-resolve writes it: '\' line continuations,
// '#' comments (whole line, or after whitespace), global options on their own line,
// requirement lines with "--hash=sha256:HEX" options. Fails with fetch.bad_source
// "requirements.lock:LINE: ..." for a bad requirement, a hash that is not sha256 with 64
// hex digits, a '-r'/'-c'/'-e' include (not allowed in a lock), text after a requirement's
// options that is not an option, or input over kMaxLockBytes.
Result<Lock> parse_lock(std::string_view text);

// One file that cy-llm-fetch put into the wheelhouse.
struct FetchedFile {
  std::string name;      // distribution name (any spelling; compared PEP 503 normalised)
  std::string version;   // as in the filename / METADATA
  std::string sha256;    // lowercase hex of the file
  std::string filename;  // base name in the wheelhouse ("" when unknown)
};

// The lock rewritten for an offline install from the wheelhouse: each entry keeps its
// requirement, except that "name[extras] @ url[ ; marker]" becomes
// "name[extras]==VERSION[ ; marker]" on the fetched version (so that --find-links finds the
// local file instead of pip downloading the URL), followed by every known --hash. Comments
// above entries are kept; an entry with no hash but a marker is kept as is. An entry's fetched files
// are those with its name and, when pinned, an equal version (or, for a URL entry, the
// URL's file name). A fetched hash that the lock lacks while the lock lists others fails
// with fetch.hash_mismatch; a hash the lock had none of is added under a comment
// "# sha256 first seen by cy-llm-fetch (the registry had none): NAME". An entry with no
// hash at all afterwards fails with fetch.bad_source (pip --require-hashes would refuse).
Result<std::string> fill_lock(const Lock& lock, const std::vector<FetchedFile>& fetched);

// Writes `text` to `path` atomically (temporary file + rename).
Result<void> write_lock(const std::string& path, std::string_view text);

// ---------------------------------------------------------------------------------------
// Installing

struct InstallOptions {
  std::string python = "python3";  // the interpreter that creates the venv (PATH lookup)
  std::chrono::milliseconds venv_timeout{std::chrono::minutes(5)};
  std::chrono::milliseconds pip_timeout{std::chrono::minutes(60)};
};

// Creates `venv_dir` with `python -m venv` unless VENV/bin/python exists, then runs
//   VENV/bin/python -m pip install --no-index --find-links WHEELHOUSE --require-hashes
//       --disable-pip-version-check --no-input -r LOCK
// through ctx.runner. Fails with fetch.install_failed quoting the command and the tail of
// its stderr (pip's own message), util.timeout / detect.tool_timeout when a step runs past
// its timeout, util.cancelled when ctx's cancel flag is raised between steps. Paths are
// host paths. A failed install leaves the venv as pip left it.
Result<void> install_venv(const Context& ctx, const std::string& venv_dir,
                          const std::string& wheelhouse_dir, const std::string& lock_path,
                          const InstallOptions& options = {});

}  // namespace cyllm::wheelhouse

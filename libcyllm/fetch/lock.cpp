// requirements.lock: the pip requirements-file subset that cy-llm-resolve writes, read
// back and rewritten with every hash that cy-llm-fetch saw.
//
//   # comment lines (a header saying how the lock was made)
//   --index-url https://pypi.org/simple          global options, one per line
//   torch==2.9.0 \                                '\' joins the next physical line
//       --hash=sha256:<64 hex>                    per-requirement options after the PEP 508 text
//   x @ https://host/x-1.0-py3-none-any.whl ; python_version >= "3.9" --hash=sha256:...
//
// Design goals: what we write, pip reads the same way (pip's own rules: options start at
// the first whitespace-separated token beginning with '-'; '#' starts a comment at the
// start of a line or after whitespace). Non-goals: nested -r/-c files, editables,
// environment-variable expansion; a lock has none of those.
#include <algorithm>
#include <map>

#include "cyllm/atomic_file.h"
#include "cyllm/packaging.h"
#include "cyllm/wheelhouse.h"
#include "util/strings.h"

namespace cyllm::wheelhouse {
namespace {

Error bad_line(std::size_t line, std::string message) {
  return Error(Errc::BadSource, "requirements.lock:" + std::to_string(line) + ": " + message);
}

bool is_hex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
         });
}

// pip's COMMENT_RE: '#' at the start or after whitespace, to the end of the line.
std::string_view strip_comment(std::string_view line) {
  for (std::size_t i = 0; i < line.size(); ++i)
    if (line[i] == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) return line.substr(0, i);
  return line;
}

bool same_version(std::string_view a, std::string_view b) {
  auto va = packaging::parse_version(a);
  auto vb = packaging::parse_version(b);
  if (va.ok() && vb.ok()) return *va == *vb;
  return util::to_lower(a) == util::to_lower(b);
}

std::string url_basename(std::string_view url) {
  url = url.substr(0, url.find_first_of("?#"));
  auto slash = url.rfind('/');
  return std::string(slash == std::string_view::npos ? url : url.substr(slash + 1));
}

}  // namespace

Result<Lock> parse_lock(std::string_view text) {
  if (text.size() > kMaxLockBytes)
    return Error(Errc::BadSource, "requirements.lock is " + std::to_string(text.size()) +
                                      " bytes; the limit is " + std::to_string(kMaxLockBytes));
  Lock lock;
  auto lines = util::split_lines(text);
  std::vector<std::string> pending;  // comments waiting for the entry below them
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::size_t start = i + 1;
    std::string_view first = lines[i];
    // Whole-line comments before any entry or option form the header.
    if (!util::trim(first).empty() && util::trim(first).front() == '#') {
      if (lock.entries.empty() && lock.options.empty()) lock.comments.emplace_back(util::trim(first));
      else pending.emplace_back(util::trim(first));
      continue;
    }
    // Join '\' continuations (pip joins before stripping comments).
    std::string logical(first);
    while (!logical.empty() && logical.back() == '\\' && i + 1 < lines.size()) {
      logical.pop_back();
      logical += ' ';
      logical += lines[++i];
    }
    if (!logical.empty() && logical.back() == '\\') logical.pop_back();
    std::string_view body = util::trim(strip_comment(logical));
    if (body.empty()) continue;
    auto tokens = util::split_ws(body);
    if (body.front() == '-') {
      std::string_view opt = tokens[0].substr(0, tokens[0].find('='));
      if (opt == "-r" || opt == "--requirement" || opt == "-c" || opt == "--constraint" || opt == "-e" ||
          opt == "--editable" || util::starts_with(opt, "-r") || util::starts_with(opt, "-c") ||
          util::starts_with(opt, "-e"))
        return bad_line(start, "option " + util::quote(tokens[0]) + " is not allowed in a lock");
      lock.options.emplace_back(body);
      pending.clear();
      continue;
    }
    LockEntry e;
    e.line = start;
    e.comments = std::move(pending);
    pending.clear();
    std::size_t t = 0;
    std::string req;
    for (; t < tokens.size() && tokens[t].front() != '-'; ++t) {
      if (!req.empty()) req += ' ';
      req += tokens[t];
    }
    for (; t < tokens.size(); ++t) {
      std::string_view tok = tokens[t];
      std::string_view value;
      if (tok == "--hash") {
        if (t + 1 >= tokens.size()) return bad_line(start, "--hash without a value");
        value = tokens[++t];
      } else if (util::starts_with(tok, "--hash=")) {
        value = tok.substr(7);
      } else if (tok.front() == '-') {
        e.options.emplace_back(tok);
        continue;
      } else {
        // pip would drop it silently; a lock that says more than it means is refused.
        return bad_line(start, "unexpected " + util::quote(tok) + " after the options of " + util::quote(req));
      }
      if (!util::starts_with(value, "sha256:") || !is_hex64(value.substr(7)))
        return bad_line(start, "hash " + util::quote(value) + " is not sha256:<64 hex digits>");
      std::string hex = util::to_lower(value.substr(7));
      if (std::find(e.sha256.begin(), e.sha256.end(), hex) == e.sha256.end()) e.sha256.push_back(hex);
    }
    if (req.empty()) return bad_line(start, "options without a requirement: " + util::quote(body));
    auto parsed = packaging::parse_requirement(req);
    if (!parsed.ok()) return bad_line(start, parsed.error().message());
    e.requirement = req;
    e.name = parsed->normalized_name();
    e.extras = parsed->extras;
    e.url = parsed->url;
    if (parsed->marker) e.marker = parsed->marker->to_string();
    const auto& specs = parsed->specifier.specifiers();
    if (specs.size() == 1 && !specs[0].wildcard() &&
        (specs[0].op() == packaging::SpecOp::Equal || specs[0].op() == packaging::SpecOp::Arbitrary))
      e.version = specs[0].version_text();
    lock.entries.push_back(std::move(e));
  }
  return lock;
}

Result<std::string> fill_lock(const Lock& lock, const std::vector<FetchedFile>& fetched) {
  std::string out;
  for (const auto& c : lock.comments) out += c + "\n";
  for (const auto& o : lock.options) out += o + "\n";
  for (const auto& e : lock.entries) {
    // The fetched files of this entry.
    std::vector<const FetchedFile*> mine;
    for (const auto& f : fetched) {
      if (packaging::normalize_name(f.name) != e.name) continue;
      if (!e.version.empty() && !same_version(f.version, e.version)) continue;
      if (!e.url.empty() && !f.filename.empty() && f.filename != url_basename(e.url)) continue;
      mine.push_back(&f);
    }
    std::string version = e.version;
    for (const auto* f : mine) {
      if (version.empty()) version = f->version;
      else if (!same_version(version, f->version))
        return Error(Errc::BadSource, "requirements.lock:" + std::to_string(e.line) + ": " + util::quote(e.requirement) +
                                          " matches fetched files of two versions, " + util::quote(version) +
                                          " and " + util::quote(f->version));
    }
    std::vector<std::string> hashes = e.sha256;
    bool first_seen = false;
    for (const auto* f : mine) {
      std::string h = util::to_lower(f->sha256);
      if (!is_hex64(h))
        return Error(Errc::InvalidArgument, "fetched file " + util::quote(f->filename) + " has sha256 " +
                                                util::quote(f->sha256) + ", not 64 hex digits");
      if (std::find(hashes.begin(), hashes.end(), h) != hashes.end()) continue;
      if (!e.sha256.empty()) {
        std::string allowed;
        for (const auto& x : e.sha256) allowed += (allowed.empty() ? "" : ", ") + x;
        return Error(Errc::HashMismatch, "requirements.lock:" + std::to_string(e.line) + ": " +
                                             util::quote(e.requirement) + ": fetched file " +
                                             util::quote(f->filename.empty() ? f->name : f->filename) +
                                             " has sha256 " + h + " but the lock allows only " + allowed);
      }
      hashes.push_back(h);
      first_seen = true;
    }
    if (hashes.empty()) {
      // pip skips a requirement whose marker does not hold before it checks hashes, so an
      // unfetched, marker-guarded entry may stay without one.
      if (!e.marker.empty()) {
        for (const auto& c : e.comments) out += c + "\n";
        out += e.requirement + "\n";
        continue;
      }
      return Error(Errc::BadSource, "requirements.lock:" + std::to_string(e.line) + ": " + util::quote(e.requirement) +
                                        " has no --hash and no fetched file; pip --require-hashes would refuse it");
    }
    const std::string mark = "# sha256 first seen by cy-llm-fetch (the registry had none): " + e.name;
    for (const auto& c : e.comments)
      if (c != mark) out += c + "\n";
    bool marked = std::find(e.comments.begin(), e.comments.end(), mark) != e.comments.end();
    if (first_seen || marked) out += mark + "\n";
    // pip --require-hashes accepts only "==" pins, and a URL requirement would make pip
    // download the file again: both a URL and a range ("grpcio>=1.62.1,<1.71") become a pin
    // on the fetched version, which `pip --no-index --find-links WHEELHOUSE` finds locally.
    // Exact pins stay as written.
    std::string extras;
    for (const auto& x : e.extras) extras += (extras.empty() ? "[" : ",") + x;
    if (!extras.empty()) extras += "]";
    bool repin = e.version.empty() && !mine.empty() && !version.empty();
    std::string line = repin ? e.name + extras + "==" + version : e.requirement;
    if (line != e.requirement && !e.marker.empty()) line += " ; " + e.marker;
    out += line;
    for (const auto& o : e.options) out += " " + o;
    for (const auto& h : hashes) out += " \\\n    --hash=sha256:" + h;
    out += "\n";
  }
  return out;
}

Result<void> write_lock(const std::string& path, std::string_view text) {
  auto r = write_file_atomic(path, text);
  if (!r.ok()) return Error(r.error()).with_context("writing the lock " + path);
  return {};
}

}  // namespace cyllm::wheelhouse

// Pure parsers of fetch inputs: sources (URLs, hf://), lock files, simple-index pages,
// and the HTTP header values the downloader acts on (Content-Range, Retry-After).
#include <curl/curl.h>
#include <openssl/evp.h>

#include <cctype>
#include <cmath>
#include <regex>

#include "cyllm/fetch.h"
#include "cyllm/packaging.h"
#include "util/strings.h"

namespace cyllm::fetch {

using util::quote;
using util::starts_with;
using util::trim;

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  return util::hex_lower(md, n);
}

std::string url_host(std::string_view url) {
  auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return "";
  std::string_view rest = url.substr(scheme + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (auto at = rest.rfind('@'); at != std::string_view::npos) rest = rest.substr(at + 1);
  std::string host = util::to_lower(rest);
  std::string s = util::to_lower(url.substr(0, scheme));
  // Default ports are the same origin as no port.
  if (s == "https" && util::ends_with(host, ":443")) host.resize(host.size() - 4);
  if (s == "http" && util::ends_with(host, ":80")) host.resize(host.size() - 3);
  return host;
}

std::string resolve_url(std::string_view base, std::string_view location) {
  CURLU* u = curl_url();
  std::string out(location);
  if (curl_url_set(u, CURLUPART_URL, std::string(base).c_str(), 0) == CURLUE_OK &&
      curl_url_set(u, CURLUPART_URL, std::string(location).c_str(), 0) == CURLUE_OK) {
    char* s = nullptr;
    if (curl_url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK) out = s;
    curl_free(s);
  }
  curl_url_cleanup(u);
  return out;
}

namespace {

std::string last_segment(std::string_view path) {
  path = path.substr(0, path.find_first_of("?#"));
  auto slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

// Percent-encodes a revision the way the hub expects it in a path ("refs/pr/1" -> "refs%2Fpr%2F1").
std::string encode_component(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') out += static_cast<char>(c);
    else {
      char b[4];
      std::snprintf(b, sizeof b, "%%%02X", c);
      out += b;
    }
  }
  return out;
}

bool valid_repo_part(std::string_view s) {
  if (s.empty() || s == "." || s == "..") return false;
  for (unsigned char c : s)
    if (!(std::isalnum(c) || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

}  // namespace

Result<Artifact> parse_hf_source(std::string_view source, std::string_view endpoint) {
  auto bad = [&](const std::string& why) {
    return Error(Errc::BadSource, "hf source " + quote(source) + " " + why +
                                      " (expected hf://ORG/REPO/FILE[@REVISION])");
  };
  if (!starts_with(source, "hf://")) return bad("does not start with hf://");
  std::string_view rest = source.substr(5);
  std::string revision = "main";
  auto parts = util::split(rest, '/');
  if (parts.size() < 3) return bad("names no file");
  std::string_view org = parts[0], repo = parts[1];
  std::string file;
  for (std::size_t i = 2; i < parts.size(); ++i) file += (i > 2 ? "/" : "") + std::string(parts[i]);
  if (auto at = file.rfind('@'); at != std::string::npos) {
    revision = file.substr(at + 1);
    file = file.substr(0, at);
    if (revision.empty()) return bad("has an empty revision");
  }
  if (!valid_repo_part(org) || !valid_repo_part(repo)) return bad("has a bad ORG/REPO");
  for (auto seg : util::split(file, '/'))
    if (seg.empty() || seg == "." || seg == "..") return bad("has a bad file path");
  Artifact a;
  a.source = std::string(source);
  a.hugging_face = true;
  a.hf_repo = std::string(org) + "/" + std::string(repo);
  a.hf_revision = revision;
  a.hf_file = file;
  std::string ep(endpoint);
  while (!ep.empty() && ep.back() == '/') ep.pop_back();
  a.url = ep + "/" + a.hf_repo + "/resolve/" + encode_component(revision) + "/" + file;
  a.filename = last_segment(file);
  return a;
}

Result<Artifact> parse_source(std::string_view source, std::string_view hf_endpoint) {
  if (starts_with(source, "hf://")) return parse_hf_source(source, hf_endpoint);
  std::string lower = util::to_lower(source);
  if (!starts_with(lower, "https://") && !starts_with(lower, "http://"))
    return Error(Errc::BadSource, "source " + quote(source) + " is neither an http(s):// URL nor hf://ORG/REPO/FILE");
  if (url_host(source).empty()) return Error(Errc::BadSource, "source " + quote(source) + " has no host");
  Artifact a;
  a.source = a.url = std::string(source);
  std::string_view after = source.substr(source.find("://") + 3);
  auto slash = after.find('/');
  a.filename = slash == std::string_view::npos ? "" : last_segment(after.substr(slash));
  if (a.filename.empty() || a.filename == "." || a.filename == "..") a.filename = "index.html";
  return a;
}

Result<LockFile> parse_lock(std::string_view text) {
  LockFile lock;
  // Join continuation lines first.
  std::vector<std::string> logical;
  std::string cur;
  for (auto raw : util::split_lines(text)) {
    std::string_view line = raw;
    if (auto hash = line.find(" #"); hash != std::string_view::npos) line = line.substr(0, hash);
    if (starts_with(trim(line), "#")) line = "";
    line = trim(line);
    bool cont = !line.empty() && line.back() == '\\';
    if (cont) line = trim(line.substr(0, line.size() - 1));
    if (!cur.empty() && !line.empty()) cur += ' ';
    cur += line;
    if (!cont) {
      if (!cur.empty()) logical.push_back(cur);
      cur.clear();
    }
  }
  if (!cur.empty()) logical.push_back(cur);
  for (const auto& l : logical) {
    auto words = util::split_ws(l);
    if (words.empty()) continue;
    if (starts_with(words[0], "-")) {
      std::string_view opt = words[0], val = words.size() > 1 ? words[1] : "";
      if (auto eq = opt.find('='); eq != std::string_view::npos) {
        val = opt.substr(eq + 1);
        opt = opt.substr(0, eq);
      }
      if (opt == "--index-url" || opt == "-i") lock.index_urls.insert(lock.index_urls.begin(), std::string(val));
      else if (opt == "--extra-index-url") lock.index_urls.push_back(std::string(val));
      else if (opt == "--find-links" || opt == "-f" || opt == "--no-index" || opt == "--require-hashes") {
      } else return Error(Errc::BadSource, "lock line " + quote(l) + ": unsupported option " + quote(opt));
      continue;
    }
    LockedRequirement r;
    r.line = l;
    std::string spec;
    for (auto w : words) {
      if (starts_with(w, "--hash=")) {
        std::string_view h = w.substr(7);
        if (!starts_with(h, "sha256:"))
          return Error(Errc::BadSource, "lock line " + quote(l) + ": only sha256 hashes are supported, got " + quote(h));
        std::string hex = util::to_lower(h.substr(7));
        if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos)
          return Error(Errc::BadSource, "lock line " + quote(l) + ": bad sha256 " + quote(h.substr(7)));
        r.sha256s.push_back(hex);
      } else if (starts_with(w, "--")) {
        return Error(Errc::BadSource, "lock line " + quote(l) + ": unsupported option " + quote(w));
      } else {
        spec += std::string(w);
        spec += ' ';
      }
    }
    spec = std::string(trim(spec));
    if (auto sc = spec.find(';'); sc != std::string::npos) spec = std::string(trim(spec.substr(0, sc)));
    if (auto at = spec.find(" @ "); at != std::string::npos) {
      r.name = std::string(trim(spec.substr(0, at)));
      r.url = std::string(trim(spec.substr(at + 3)));
    } else {
      std::size_t n = 0;
      while (n < spec.size() && (std::isalnum(static_cast<unsigned char>(spec[n])) || spec[n] == '-' || spec[n] == '_' || spec[n] == '.')) ++n;
      r.name = spec.substr(0, n);
      std::string rest(trim(std::string_view(spec).substr(n)));
      if (!rest.empty() && rest.front() == '[') {
        auto close = rest.find(']');
        if (close == std::string::npos) return Error(Errc::BadSource, "lock line " + quote(l) + " has unbalanced extras");
        rest = std::string(trim(std::string_view(rest).substr(close + 1)));
      }
      if (util::starts_with(rest, "==") && rest.find_first_of(",<>!~*", 2) == std::string::npos &&
          rest.find('=', 2) == std::string::npos) {
        r.version = std::string(trim(std::string_view(rest).substr(2)));
      } else {
        if (!packaging::parse_specifier_set(rest).ok())
          return Error(Errc::BadSource, "lock line " + quote(l) + " has a bad version specifier " + quote(rest));
        r.specifier = rest;
      }
    }
    if (r.name.empty()) return Error(Errc::BadSource, "lock line " + quote(l) + " names no package");
    lock.requirements.push_back(std::move(r));
  }
  return lock;
}

namespace {
// An index's sha256 becomes the expected hash of the download: it must be one (found by
// fuzz_fetch_parsers: a '#sha256=' fragment of any length was accepted).
Result<void> check_index_hash(const IndexFile& f, std::string_view page_url) {
  if (f.sha256.empty()) return {};
  if (f.sha256.size() != 64 || f.sha256.find_first_not_of("0123456789abcdef") != std::string::npos)
    return Error(Errc::BadSource, "index page " + quote(page_url) + " gives " + quote(f.filename) +
                                      " the sha256 " + quote(f.sha256) + ", not 64 hex digits");
  return {};
}
}  // namespace

// A fragment-only link ("#top") points back at the page, and one curl cannot resolve stays
// relative: neither is a file (found by fuzz_fetch_parsers: "#..." with a byte curl refuses
// became an entry with an empty URL).
namespace {
bool is_file_link(std::string_view url, std::string_view page_url) {
  page_url = page_url.substr(0, page_url.find('#'));
  return !url.empty() && url != page_url && url.find("://") != std::string_view::npos;
}
}  // namespace

Result<std::vector<IndexFile>> parse_index_page(std::string_view body, std::string_view content_type,
                                                std::string_view page_url) {
  std::vector<IndexFile> out;
  auto split_fragment = [](IndexFile& f) {
    if (auto hash = f.url.find('#'); hash != std::string::npos) {
      std::string frag = f.url.substr(hash + 1);
      f.url.resize(hash);
      if (starts_with(frag, "sha256=") && f.sha256.empty()) f.sha256 = util::to_lower(frag.substr(7));
    }
  };
  if (content_type.find("json") != std::string_view::npos) {
    auto doc = nlohmann::json::parse(body, nullptr, false);
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("files") || !doc["files"].is_array())
      return Error(Errc::Parse, "index page " + quote(page_url) + " is not PEP 691 JSON");
    for (const auto& f : doc["files"]) {
      if (!f.is_object() || !f.contains("filename") || !f.contains("url") || !f["filename"].is_string() ||
          !f["url"].is_string())
        continue;
      IndexFile x;
      x.filename = f["filename"].get<std::string>();
      x.url = resolve_url(page_url, f["url"].get<std::string>());
      if (f.contains("hashes") && f["hashes"].is_object() && f["hashes"].contains("sha256") &&
          f["hashes"]["sha256"].is_string())
        x.sha256 = util::to_lower(f["hashes"]["sha256"].get<std::string>());
      split_fragment(x);
      if (!is_file_link(x.url, page_url)) continue;
      CYLLM_TRY_VOID(check_index_hash(x, page_url));
      out.push_back(std::move(x));
    }
    return out;
  }
  static const std::regex anchor(R"re(<a\s[^>]*href\s*=\s*["']([^"']+)["'][^>]*>\s*([^<]*?)\s*</a>)re",
                                 std::regex::icase);
  std::string text(body);
  for (auto it = std::sregex_iterator(text.begin(), text.end(), anchor); it != std::sregex_iterator(); ++it) {
    IndexFile x;
    std::string href = (*it)[1];
    // Minimal entity decoding for hrefs (&amp; is the one indexes use).
    for (std::size_t p; (p = href.find("&amp;")) != std::string::npos;) href.replace(p, 5, "&");
    x.url = resolve_url(page_url, href);
    x.filename = (*it)[2];
    split_fragment(x);
    if (!is_file_link(x.url, page_url)) continue;
    if (x.filename.empty()) x.filename = last_segment(x.url);
    CYLLM_TRY_VOID(check_index_hash(x, page_url));
    out.push_back(std::move(x));
  }
  return out;
}

Result<std::uint64_t> parse_size(std::string_view text) {
  std::string_view s = trim(text);
  std::size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  auto num = util::parse_double(s.substr(0, i));
  std::string unit = util::to_lower(trim(s.substr(i)));
  double mult = 0;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib") mult = 1024.0;
  else if (unit == "m" || unit == "mb" || unit == "mib") mult = 1024.0 * 1024;
  else if (unit == "g" || unit == "gb" || unit == "gib") mult = 1024.0 * 1024 * 1024;
  else if (unit == "t" || unit == "tb" || unit == "tib") mult = 1024.0 * 1024 * 1024 * 1024;
  if (!num || *num < 0 || mult == 0 || *num * mult > 1.8e19)
    return Error(Errc::InvalidArgument, "size " + quote(text) + " is not a size like 10G, 500M or 0");
  return static_cast<std::uint64_t>(std::llround(*num * mult));
}

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value,
                                                           std::chrono::system_clock::time_point now) {
  std::string_view v = trim(value);
  if (v.empty()) return std::nullopt;
  if (auto secs = util::parse_u64(v)) {
    if (*secs > 24ull * 3600) return std::chrono::hours(24);
    return std::chrono::milliseconds(*secs * 1000);
  }
  time_t when = curl_getdate(std::string(v).c_str(), nullptr);  // RFC 7231 HTTP-date
  if (when < 0) return std::nullopt;
  // Compare in seconds: a far-future date would overflow system_clock's nanoseconds
  // (found by fuzz_fetch_parsers).
  const time_t now_s = std::chrono::system_clock::to_time_t(now);
  if (when <= now_s) return std::chrono::milliseconds(0);
  if (when - now_s > 24 * 3600) return std::chrono::hours(24);
  return std::chrono::milliseconds(static_cast<std::int64_t>(when - now_s) * 1000);
}

std::optional<ContentRange> parse_content_range(std::string_view value) {
  std::string_view v = trim(value);
  if (!starts_with(v, "bytes ")) return std::nullopt;
  v = trim(v.substr(6));
  auto slash = v.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  ContentRange cr;
  std::string_view range = v.substr(0, slash), total = v.substr(slash + 1);
  if (total != "*") {
    cr.total = util::parse_u64(total);
    if (!cr.total) return std::nullopt;
  }
  if (range != "*") {
    auto dash = range.find('-');
    if (dash == std::string_view::npos) return std::nullopt;
    cr.first = util::parse_u64(range.substr(0, dash));
    cr.last = util::parse_u64(range.substr(dash + 1));
    if (!cr.first || !cr.last || *cr.last < *cr.first) return std::nullopt;
    if (cr.total && *cr.last >= *cr.total) return std::nullopt;
  }
  return cr;
}

}  // namespace cyllm::fetch

// locate_wheels: from pinned lock lines to wheel URLs, through simple indexes.
//
// For each requirement: a blob already in the cache under one of its hashes wins (no
// request at all); otherwise the project page of each index is read (PEP 691 JSON asked
// for first, PEP 503 HTML accepted) and the file chosen is the one whose sha256 is in the
// lock, or, when the index or the lock has no hashes, the best-ranked wheel of the pinned
// version for the target's tags.
#include <thread>

#include "cyllm/fetch.h"
#include "cyllm/packaging.h"
#include "cyllm/wheel.h"
#include "util/strings.h"

namespace cyllm::fetch {
namespace {

using util::quote;

struct Page {
  long status = 0;
  std::string body, content_type, url;
};

// GET with redirects (credentials only to the first host) and a few retries on 5xx.
Result<Page> get_page(const Context& ctx, HttpClient& http, const std::string& url, const DownloadOptions& o) {
  Page page;
  page.url = url;
  const std::string first_host = url_host(url);
  for (int attempt = 0, hops = 0;;) {
    if (ctx.cancelled()) return Error(Errc::Cancelled, "interrupted");
    std::vector<std::string> headers = {
        "Accept: application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"};
    if (url_host(page.url) == first_host)
      for (const auto& h : o.extra_headers) headers.push_back(h);
    HttpResponseHead head;
    std::string body;
    TransferResult result;
    bool done = false;
    http.start(HttpRequest{page.url, headers},
               TransferHandlers{[&](const HttpResponseHead& h) {
                                  head = h;
                                  return h.status == 200;
                                },
                                [&](std::string_view d) {
                                  if (body.size() + d.size() > (64u << 20)) return false;  // 64 MiB cap
                                  body.append(d);
                                  return true;
                                },
                                [&](const TransferResult& r) {
                                  result = r;
                                  done = true;
                                }});
    while (!done) {
      if (ctx.cancelled()) http.abort_all();
      http.poll(std::chrono::milliseconds(100));
    }
    if (result.kind == TransferResult::Kind::Tls)
      return Error(Errc::TlsVerify, page.url + ": " + result.message + " (give the issuing CA with --ca-bundle FILE)");
    bool transient = result.kind != TransferResult::Kind::Ok || head.status == 429 || head.status >= 500;
    if (transient) {
      if (++attempt >= o.retry.max_attempts)
        return Error(result.kind == TransferResult::Kind::Ok ? Errc::HttpStatus : Errc::Network,
                     page.url + ": " + (result.kind == TransferResult::Kind::Ok ? "HTTP " + std::to_string(head.status)
                                                                                : result.message));
      auto delay = o.retry.base_delay * (1 << std::min(attempt, 6));
      if (auto ra = parse_retry_after(head.header("retry-after"), ctx.clock.wall_now())) delay = std::min(*ra, o.retry.max_retry_after);
      std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(delay, o.retry.max_delay));
      continue;
    }
    if (head.status >= 300 && head.status < 400 && !head.header("location").empty()) {
      if (++hops > 10) return Error(Errc::Network, url + ": more than 10 redirects");
      page.url = resolve_url(page.url, head.header("location"));
      continue;
    }
    page.status = head.status;
    page.body = std::move(body);
    page.content_type = head.header("content-type");
    return page;
  }
}

}  // namespace

Result<std::vector<Artifact>> locate_wheels(const Context& ctx, HttpClient& http, const Cache& cache,
                                            const LockFile& lock, const DownloadOptions& o,
                                            std::string_view python, std::string_view architecture,
                                            int glibc_minor) {
  wheel::TargetEnvironment target;
  if (auto dot = python.find('.'); dot != std::string_view::npos) {
    target.python_major = static_cast<int>(util::parse_u64(python.substr(0, dot)).value_or(3));
    target.python_minor = static_cast<int>(util::parse_u64(python.substr(dot + 1)).value_or(12));
  }
  if (!architecture.empty()) target.architecture = std::string(architecture);
  if (glibc_minor > 0) target.glibc_minor = glibc_minor;
  const auto supported = wheel::supported_tags(target);

  std::vector<Artifact> out;
  for (const auto& r : lock.requirements) {
    Artifact a;
    a.source = r.line;
    // 1. Already in the cache under a locked hash.
    bool hit = false;
    for (const auto& h : r.sha256s)
      if (auto e = cache.lookup_blob(h)) {
        a.sha256 = h;
        a.url = e->url;
        a.filename = e->filename.empty() ? packaging::normalize_name(r.name) + "-" + r.version + ".whl" : e->filename;
        hit = true;
        break;
      }
    if (hit) {
      out.push_back(std::move(a));
      continue;
    }
    if (!r.url.empty()) {
      auto direct = parse_source(r.url, o.hf_endpoint);
      if (!direct) return std::move(direct).error().with_context("in lock line " + quote(r.line));
      a.url = direct->url;
      a.filename = direct->filename;
      if (r.sha256s.size() == 1) a.sha256 = r.sha256s[0];
      out.push_back(std::move(a));
      continue;
    }
    if (o.offline)
      return Error(Errc::OfflineMiss, quote(r.line) + " is not in the cache and --offline forbids reading the index");
    if (lock.index_urls.empty())
      return Error(Errc::BadSource, "the lock names no --index-url to find " + quote(r.name) + " in");
    std::optional<packaging::Version> want;
    if (!r.version.empty()) {
      auto v = packaging::parse_version(r.version);
      if (!v) return Error(Errc::BadSource, "lock line " + quote(r.line) + ": bad version " + quote(r.version));
      want = *v;
    }
    auto range = packaging::parse_specifier_set(r.specifier);
    if (!range) return Error(Errc::BadSource, "lock line " + quote(r.line) + ": bad specifier " + quote(r.specifier));
    std::optional<IndexFile> best;
    std::optional<packaging::Version> best_version;
    std::size_t best_rank = SIZE_MAX;
    std::string looked;
    for (const auto& index : lock.index_urls) {
      std::string base = index;
      while (!base.empty() && base.back() == '/') base.pop_back();
      std::string page_url = base + "/" + packaging::normalize_name(r.name) + "/";
      looked += (looked.empty() ? "" : ", ") + page_url;
      auto page = get_page(ctx, http, page_url, o);
      if (!page) return std::move(page).error();
      if (page->status == 404) continue;
      if (page->status != 200)
        return Error(Errc::HttpStatus, page_url + " answered HTTP " + std::to_string(page->status));
      auto files = parse_index_page(page->body, page->content_type, page->url);
      if (!files) return std::move(files).error();
      for (const auto& f : *files) {
        if (!util::ends_with(util::to_lower(f.filename), ".whl")) continue;
        auto wf = wheel::parse_wheel_filename(f.filename);
        if (!wf) continue;
        if (packaging::normalize_name(wf->distribution) != packaging::normalize_name(r.name)) continue;
        auto v = packaging::parse_version(wf->version);
        if (!v) continue;
        if (want ? !(*v == *want) : !range->contains(*v)) continue;
        if (!r.sha256s.empty() && !f.sha256.empty()) {
          if (std::find(r.sha256s.begin(), r.sha256s.end(), f.sha256) == r.sha256s.end()) continue;
        }
        auto rank = wheel::wheel_rank(*wf, supported);
        if (!rank) continue;
        // The highest fitting version, then its best-ranked wheel.
        if (!best_version || *v > *best_version || (*v == *best_version && *rank < best_rank)) {
          best_version = *v;
          best_rank = *rank;
          best = f;
        }
      }
      if (best) break;
    }
    if (!best)
      return Error(Errc::BadSource, "no wheel of " + r.name + (r.version.empty() ? r.specifier : "==" + r.version) + " for Python " + std::string(python) +
                                        " on " + target.architecture +
                                        (r.sha256s.empty() ? "" : " with a locked hash") + " in " + looked);
    a.url = best->url;
    a.filename = best->filename;
    if (!best->sha256.empty()) a.sha256 = best->sha256;
    else if (r.sha256s.size() == 1) a.sha256 = r.sha256s[0];
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace cyllm::fetch

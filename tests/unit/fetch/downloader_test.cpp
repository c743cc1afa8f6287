// download_all against a recording fake HttpClient: cache hits make zero requests,
// redirects drop credentials, error bodies never reach a file, hashes are enforced.
#include <doctest/doctest.h>

#include <deque>
#include <filesystem>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cyllm/fetch.h"
#include "fetch/buffer_pool.h"
#include "test_support.h"

using namespace cyllm;
using namespace cyllm::fetch;
using cyllm::test::TempDir;

namespace {

struct Canned {
  long status = 200;
  std::map<std::string, std::string> headers;
  std::string body;
  TransferResult::Kind fail = TransferResult::Kind::Ok;  // transport failure after the body
};

// Answers by URL from a queue of canned responses (the last one repeats); records requests.
class FakeHttp final : public HttpClient {
 public:
  std::map<std::string, std::deque<Canned>> script;
  std::vector<HttpRequest> requests;

  void start(HttpRequest req, TransferHandlers h) override {
    requests.push_back(req);
    pending_.push_back({std::move(req), std::move(h)});
  }
  std::size_t poll(std::chrono::milliseconds) override {
    auto batch = std::move(pending_);
    pending_.clear();
    for (auto& [req, h] : batch) {
      auto& q = script[req.url];
      Canned c = q.empty() ? Canned{404, {}, "not scripted"} : q.front();
      if (q.size() > 1) q.pop_front();
      HttpResponseHead head;
      head.status = c.status;
      head.headers = c.headers;
      bool go = h.on_head(head);
      TransferResult r;
      if (go && !c.body.empty() && !h.on_body(c.body)) r.kind = TransferResult::Kind::WriteFailed;
      if (c.fail != TransferResult::Kind::Ok) r.kind = c.fail;
      h.on_done(r);
    }
    return pending_.size();
  }
  void abort_all() override {}
  bool sent_header(std::size_t i, const std::string& prefix) const {
    for (const auto& h : requests.at(i).headers)
      if (h.rfind(prefix, 0) == 0) return true;
    return false;
  }

 private:
  std::vector<std::pair<HttpRequest, TransferHandlers>> pending_;
};

struct Env {
  RootedFilesystem fs{"/"};
  PosixCommandRunner runner;
  SystemClock clock;
  NullLogger log;
  Context ctx{fs, runner, clock, log, nullptr};
};

DownloadOptions fast_options(const std::string& dest) {
  DownloadOptions o;
  o.dest_dir = dest;
  o.retry.base_delay = std::chrono::milliseconds(1);
  o.retry.max_attempts = 3;
  o.seed = 1;
  return o;
}

}  // namespace

TEST_CASE("a second fetch of the same URL is a cache hit with zero requests") {
  TempDir tmp;
  Env env;
  Cache cache((tmp.path() / "cache").string());
  FakeHttp http;
  const std::string body = "hello weights";
  http.script["https://h.example/m.bin"] = {{200, {{"etag", "\"e1\""}, {"content-length", "13"}}, body}};
  auto a = parse_source("https://h.example/m.bin", "").value();
  auto o = fast_options((tmp.path() / "dest").string());

  auto r1 = download_all(env.ctx, http, cache, {a}, o);
  REQUIRE(r1.ok());
  REQUIRE_FALSE(r1->artifacts[0].error);
  CHECK_FALSE(r1->artifacts[0].cache_hit);
  CHECK(r1->artifacts[0].sha256 == sha256_hex(body));
  CHECK(r1->artifacts[0].etag == "\"e1\"");
  CHECK(cyllm::test::read_text(tmp.path() / "dest/m.bin") == body);
  CHECK(http.requests.size() == 1);
  // The blob, and dest's link to it, are read-only: writing through dest cannot change
  // what the cache hands out next time.
  CHECK((std::filesystem::status(tmp.path() / "dest/m.bin").permissions() & std::filesystem::perms::all) ==
        std::filesystem::perms(0444));
  CHECK(std::filesystem::is_empty(tmp.path() / "cache/partial"));

  FakeHttp silent;  // no script: any request would 404
  auto r2 = download_all(env.ctx, silent, cache, {a}, o);
  REQUIRE(r2.ok());
  REQUIRE_FALSE(r2->artifacts[0].error);
  CHECK(r2->artifacts[0].cache_hit);
  CHECK(silent.requests.empty());
  CHECK(r2->requests == 0);

  // Offline: hit works, a miss is fetch.offline_miss.
  o.offline = true;
  auto miss = parse_source("https://h.example/other.bin", "").value();
  auto r3 = download_all(env.ctx, silent, cache, {a, miss}, o);
  REQUIRE(r3.ok());
  CHECK_FALSE(r3->artifacts[0].error);
  REQUIRE(r3->artifacts[1].error);
  CHECK(r3->artifacts[1].error->code() == Errc::OfflineMiss);
  CHECK(silent.requests.empty());
}

TEST_CASE("buffer pool: a buffer comes back empty, the last one given first, large enough or new") {
  BufferPool pool;
  std::string a = pool.take(100);
  CHECK(a.empty());
  CHECK(a.capacity() >= 100);
  a = "stale bytes of an earlier file";
  const char* a_data = a.data();
  pool.give(std::move(a));
  std::string b = pool.take(10);
  CHECK(b.empty());             // never the earlier file's bytes
  CHECK(b.data() == a_data);    // the same memory
  std::string big = pool.take(1000);  // nothing large enough is kept: a new one
  CHECK(big.capacity() >= 1000);
  pool.give(std::move(b));
  pool.give(std::move(big));
  CHECK(pool.take(500).capacity() >= 1000);  // the last given that is large enough
  CHECK(pool.take(50).capacity() >= 100);
  std::string none;
  const std::size_t out = pool.out();
  pool.give(std::move(none));  // a string without a buffer of its own is not kept
  CHECK(pool.out() == out);
  CHECK(pool.take(0).capacity() < 100);
  // At most kMaxBytes of capacity is kept (reserved, never touched: no memory is used).
  std::string huge;
  huge.reserve(BufferPool::kMaxBytes);
  std::string small;
  small.reserve(4096);
  const char* small_data = small.data();
  pool.give(std::move(huge));
  pool.give(std::move(small));  // over the limit: freed
  CHECK(pool.take(4096).data() != small_data);
}

TEST_CASE("buffer pool: past max_out buffers out, try_take gives a kept buffer or none") {
  BufferPool pool;
  std::string a, b, c;
  REQUIRE(pool.try_take(100, 2, a));
  REQUIRE(pool.try_take(100, 2, b));
  CHECK(pool.out() == 2);
  CHECK_FALSE(pool.try_take(100, 2, c));  // two out, none kept: none
  CHECK(c.capacity() < 100);
  pool.give(std::move(a));
  CHECK(pool.out() == 1);
  CHECK(pool.try_take(100, 1, c));  // a kept one is given even at the bound
  CHECK(c.capacity() >= 100);
  CHECK(pool.out() == 2);
  pool.give(std::move(b));
  pool.give(std::move(c));
  CHECK(pool.out() == 0);
}

TEST_CASE("write buffers are sized by Content-Length and reused: every body lands whole and alone") {
  // One run with bodies that take buffers of every kind: empty, small ones after a large
  // one (a reused buffer must come back empty), one past the 1 MiB write buffer, one of
  // unknown length, and one longer than its Content-Length (refused).
  TempDir tmp;
  Env env;
  Cache cache((tmp.path() / "cache").string());
  FakeHttp http;
  auto body_of = [](std::size_t n, char seed) {
    std::string b(n, '\0');
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<char>(seed + (i * 131) % 251);
    return b;
  };
  struct File {
    std::string name, body;
    bool announce;  // Content-Length sent
    std::size_t announced;
  };
  std::vector<File> files = {{"empty.bin", "", true, 0},
                             {"big.bin", body_of(3u << 20, 'a'), true, 3u << 20},
                             {"small1.bin", body_of(100, 'b'), true, 100},
                             {"small2.bin", body_of(64 << 10, 'c'), true, 64 << 10},
                             {"small3.bin", body_of(7, 'd'), true, 7},
                             {"unknown.bin", body_of(200 << 10, 'e'), false, 0},
                             {"under.bin", body_of(5000, 'f'), true, 1000}};
  std::vector<Artifact> arts;
  for (const auto& f : files) {
    const std::string url = "https://h.example/" + f.name;
    std::map<std::string, std::string> h;
    if (f.announce) h["content-length"] = std::to_string(f.announced);
    http.script[url] = {{200, h, f.body}};
    arts.push_back(parse_source(url, "").value());
  }
  auto o = fast_options((tmp.path() / "dest").string());
  o.jobs = 2;  // buffers pass from job to job
  auto r = download_all(env.ctx, http, cache, arts, o);
  REQUIRE(r.ok());
  for (std::size_t i = 0; i < files.size(); ++i) {
    CAPTURE(files[i].name);
    if (files[i].announce && files[i].announced != files[i].body.size()) {
      // More bytes than announced: refused (after the retries), and nothing is left.
      REQUIRE(r->artifacts[i].error);
      CHECK(r->artifacts[i].error->to_string().find("ran on to 5000 of 1000 bytes") != std::string::npos);
      CHECK_FALSE(std::filesystem::exists(tmp.path() / "dest" / files[i].name));
      continue;
    }
    REQUIRE_FALSE(r->artifacts[i].error);
    CHECK(r->artifacts[i].sha256 == sha256_hex(files[i].body));
    CHECK(r->artifacts[i].size_bytes == files[i].body.size());
    CHECK(cyllm::test::read_text(tmp.path() / "dest" / files[i].name) == files[i].body);
  }
}

TEST_CASE("a known hash is a cache hit even under another URL") {
  TempDir tmp;
  Env env;
  Cache cache((tmp.path() / "cache").string());
  FakeHttp http;
  http.script["https://a.example/x.whl"] = {{200, {}, "wheel bytes"}};
  auto a = parse_source("https://a.example/x.whl", "").value();
  a.sha256 = sha256_hex("wheel bytes");
  auto o = fast_options("");
  REQUIRE(download_all(env.ctx, http, cache, {a}, o).ok());
  auto b = parse_source("https://mirror.example/x.whl", "").value();
  b.sha256 = a.sha256;
  FakeHttp silent;
  auto r = download_all(env.ctx, silent, cache, {b}, o);
  REQUIRE(r.ok());
  CHECK(r->artifacts[0].cache_hit);
  CHECK(silent.requests.empty());
  CHECK(r->artifacts[0].path == cache.blob_path(a.sha256));
}

TEST_CASE("hash mismatch deletes the file and names both hashes") {
  TempDir tmp;
  Env env;
  Cache cache((tmp.path() / "cache").string());
  FakeHttp http;
  http.script["https://h.example/w.whl"] = {{200, {}, "tampered"}};
  auto a = parse_source("https://h.example/w.whl", "").value();
  a.sha256 = sha256_hex("original");
  auto r = download_all(env.ctx, http, cache, {a}, fast_options((tmp.path() / "d").string()));
  REQUIRE(r.ok());
  REQUIRE(r->artifacts[0].error);
  CHECK(r->artifacts[0].error->code() == Errc::HashMismatch);
  const std::string msg = r->artifacts[0].error->message();
  CHECK(msg.find(a.sha256) != std::string::npos);
  CHECK(msg.find(sha256_hex("tampered")) != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(cache.part_path(a.sha256)));
  CHECK_FALSE(std::filesystem::exists(tmp.path() / "d/w.whl"));
}

TEST_CASE("redirects to another host drop Authorization and --header values") {
  TempDir tmp;
  Env env;
  Cache cache((tmp.path() / "cache").string());
  FakeHttp http;
  http.script["https://hub.example/org/repo/resolve/main/f.bin"] = {
      {302, {{"location", "https://cdn.example/blob?x=1"}, {"x-repo-commit", "abc123"}, {"x-linked-etag", "\"sha\""}}, ""}};
  http.script["https://cdn.example/blob?x=1"] = {{200, {{"etag", "\"cdn\""}}, "model"}};
  auto a = parse_hf_source("hf://org/repo/f.bin", "https://hub.example").value();
  auto o = fast_options("");
  o.hf_endpoint = "https://hub.example";
  o.hf_token = "secret";
  o.extra_headers = {"X-Api-Key: k"};
  auto r = download_all(env.ctx, http, cache, {a}, o);
  REQUIRE(r.ok());
  REQUIRE_FALSE(r->artifacts[0].error);
  REQUIRE(http.requests.size() == 2);
  CHECK(http.sent_header(0, "Authorization: Bearer secret"));
  CHECK(http.sent_header(0, "X-Api-Key: k"));
  CHECK_FALSE(http.sent_header(1, "Authorization"));
  CHECK_FALSE(http.sent_header(1, "X-Api-Key"));
  CHECK(r->artifacts[0].hf_commit == "abc123");
  CHECK(r->artifacts[0].etag == "\"sha\"");
  CHECK(r->artifacts[0].final_url == "https://cdn.example/blob?x=1");
}

TEST_CASE("Hugging Face errors are explained; 4xx is never retried") {
  TempDir tmp;
  Env env;
  Cache cache((tmp.path() / "cache").string());
  FakeHttp http;
  http.script["https://hub.example/org/gated/resolve/main/f.bin"] = {{401, {{"x-error-code", "GatedRepo"}}, "no"}};
  http.script["https://hub.example/org/repo/resolve/v9/g.bin"] = {{404, {{"x-error-code", "RevisionNotFound"}}, "no"}};
  auto o = fast_options("");
  o.hf_endpoint = "https://hub.example";
  auto r = download_all(env.ctx, http, cache,
                        {parse_hf_source("hf://org/gated/f.bin", o.hf_endpoint).value(),
                         parse_hf_source("hf://org/repo/g.bin@v9", o.hf_endpoint).value()},
                        o);
  REQUIRE(r.ok());
  REQUIRE(r->artifacts[0].error);
  CHECK(r->artifacts[0].error->code() == Errc::HubAuth);
  CHECK(r->artifacts[0].error->message().find("HF_TOKEN") != std::string::npos);
  REQUIRE(r->artifacts[1].error);
  CHECK(r->artifacts[1].error->code() == Errc::HubNotFound);
  CHECK(r->artifacts[1].error->message().find("\"v9\"") != std::string::npos);
  CHECK(http.requests.size() == 2);  // one each: no retries on 4xx
}

TEST_CASE("5xx is retried; an error body never reaches the file") {
  TempDir tmp;
  Env env;
  Cache cache((tmp.path() / "cache").string());
  FakeHttp http;
  http.script["https://h.example/f"] = {{503, {}, "<html>down</html>"}, {200, {}, "good"}};
  auto r = download_all(env.ctx, http, cache, {parse_source("https://h.example/f", "").value()}, fast_options(""));
  REQUIRE(r.ok());
  REQUIRE_FALSE(r->artifacts[0].error);
  CHECK(http.requests.size() == 2);
  CHECK(cyllm::test::read_text(r->artifacts[0].path) == "good");
}

TEST_CASE("resume: Range + If-Range from the .part; a 206 at another offset restarts") {
  TempDir tmp;
  Env env;
  Cache cache((tmp.path() / "cache").string());
  REQUIRE(cache.ensure_layout().ok());
  const std::string full = "0123456789";
  auto a = parse_source("https://h.example/r", "").value();
  a.sha256 = sha256_hex(full);
  cyllm::test::write_file(cache.part_path(a.sha256), "01234");
  cyllm::test::write_file(cache.part_path(a.sha256) + ".etag", "\"v1\"");
  FakeHttp http;
  http.script["https://h.example/r"] = {{206, {{"content-range", "bytes 5-9/10"}}, "56789"}};
  auto r = download_all(env.ctx, http, cache, {a}, fast_options(""));
  REQUIRE(r.ok());
  REQUIRE_FALSE(r->artifacts[0].error);
  CHECK(http.sent_header(0, "Range: bytes=5-"));
  CHECK(http.sent_header(0, "If-Range: \"v1\""));
  CHECK(cyllm::test::read_text(r->artifacts[0].path) == full);

  // 416 with the matching total completes from the .part alone.
  const std::string other = "abcdef";
  auto b = parse_source("https://h.example/s", "").value();
  cyllm::test::write_file(cache.part_path(sha256_hex(b.url)), other);
  FakeHttp h2;
  h2.script["https://h.example/s"] = {{416, {{"content-range", "bytes */6"}}, ""}};
  auto r2 = download_all(env.ctx, h2, cache, {b}, fast_options(""));
  REQUIRE(r2.ok());
  REQUIRE_FALSE(r2->artifacts[0].error);
  CHECK(r2->artifacts[0].sha256 == sha256_hex(other));

  // A 206 at the wrong offset is refused: the part is dropped and the download restarts.
  auto c = parse_source("https://h.example/t", "").value();
  cyllm::test::write_file(cache.part_path(sha256_hex(c.url)), "XXX");
  FakeHttp h3;
  h3.script["https://h.example/t"] = {{206, {{"content-range", "bytes 0-3/4"}}, "wxyz"}, {200, {}, "wxyz"}};
  auto r3 = download_all(env.ctx, h3, cache, {c}, fast_options(""));
  REQUIRE(r3.ok());
  REQUIRE_FALSE(r3->artifacts[0].error);
  CHECK(cyllm::test::read_text(r3->artifacts[0].path) == "wxyz");
  CHECK(h3.sent_header(0, "Range: bytes=3-"));
  CHECK_FALSE(h3.sent_header(1, "Range"));
}

TEST_CASE("gc trims least recently used blobs first") {
  TempDir tmp;
  Env env;
  Cache cache((tmp.path() / "cache").string());
  FakeHttp http;
  std::vector<Artifact> arts;
  for (int i = 0; i < 3; ++i) {
    std::string url = "https://h.example/" + std::to_string(i);
    http.script[url] = {{200, {}, std::string(1000, static_cast<char>('a' + i))}};
    arts.push_back(parse_source(url, "").value());
  }
  REQUIRE(download_all(env.ctx, http, cache, arts, fast_options("")).ok());
  // Make blob 0 the oldest, then 1, then 2.
  for (int i = 0; i < 3; ++i) {
    std::string p = cache.blob_path(sha256_hex(std::string(1000, static_cast<char>('a' + i))));
    struct timespec ts[2] = {{1000 + i, 0}, {1000 + i, 0}};
    REQUIRE(::utimensat(AT_FDCWD, p.c_str(), ts, 0) == 0);
  }
  auto freed = cache.gc(1500);
  REQUIRE(freed.ok());
  CHECK(*freed == 2000);
  CHECK_FALSE(cache.has_blob(sha256_hex(std::string(1000, 'a'))));
  CHECK_FALSE(cache.has_blob(sha256_hex(std::string(1000, 'b'))));
  CHECK(cache.has_blob(sha256_hex(std::string(1000, 'c'))));
  CHECK_FALSE(cache.lookup("https://h.example/0"));
}

TEST_CASE("a cached blob cut short (power loss without --fsync) is a miss and is fetched again") {
  TempDir tmp;
  Env env;
  Cache cache((tmp.path() / "cache").string());
  const std::string body = "0123456789abcdef";
  FakeHttp http;
  http.script["https://h.example/w.bin"] = {{200, {{"content-length", "16"}}, body}};
  auto a = parse_source("https://h.example/w.bin", "").value();
  for (bool fsync : {false, true}) {
    CAPTURE(fsync);
    auto o = fast_options("");
    o.fsync = fsync;
    http.requests.clear();
    auto r1 = download_all(env.ctx, http, cache, {a}, o);
    REQUIRE(r1.ok());
    REQUIRE_FALSE(r1->artifacts[0].error);
    const std::string blob = cache.blob_path(sha256_hex(body));
    CHECK(cyllm::test::read_text(blob) == body);
    CHECK(cache.lookup(a.url));
    // What a power loss can leave when the data never reached the disk: the name, short.
    ::chmod(blob.c_str(), 0644);
    REQUIRE(::truncate(blob.c_str(), 0) == 0);
    CHECK_FALSE(cache.lookup(a.url));
    CHECK_FALSE(cache.lookup_blob(sha256_hex(body)));
    auto r2 = download_all(env.ctx, http, cache, {a}, o);
    REQUIRE(r2.ok());
    REQUIRE_FALSE(r2->artifacts[0].error);
    CHECK_FALSE(r2->artifacts[0].cache_hit);
    CHECK(http.requests.size() == 2);
    CHECK(cyllm::test::read_text(blob) == body);
    ::chmod(blob.c_str(), 0644);
    std::filesystem::remove(blob);
  }
  // Every part was either renamed into blobs/ or, empty, removed with its lock.
  CHECK(std::filesystem::is_empty(tmp.path() / "cache/partial"));
}

TEST_CASE("the part file is the lock: a second holder waits, an empty part does not outlive it") {
  TempDir tmp;
  Cache cache((tmp.path() / "cache").string());
  REQUIRE(cache.ensure_layout().ok());
  const std::string key(64, 'a');
  int fd = cache.lock_part(key);
  REQUIRE(fd >= 0);
  CHECK(std::filesystem::exists(cache.part_path(key)));
  CHECK(cache.lock_part(key) == -1);  // another open file description: refused while held
  cache.unlock_part(key, fd);
  CHECK_FALSE(std::filesystem::exists(cache.part_path(key)));  // empty: nothing to resume

  // A part with bytes stays for a resume. Parts are read-only on disk, like the blobs they
  // become, and writable through the holder's descriptor; the size comes with the lock.
  std::uint64_t size = 99;
  fd = cache.lock_part(key, &size);
  REQUIRE(fd >= 0);
  CHECK(size == 0);
  CHECK((std::filesystem::status(cache.part_path(key)).permissions() & std::filesystem::perms::all) ==
        std::filesystem::perms(0444));
  REQUIRE(::write(fd, "abc", 3) == 3);
  cache.unlock_part(key, fd);
  CHECK(cyllm::test::read_text(cache.part_path(key)) == "abc");
  // A writable part left by an older version: taken over and made read-only.
  std::filesystem::permissions(cache.part_path(key), std::filesystem::perms(0644));
  fd = cache.lock_part(key, &size);
  REQUIRE(fd >= 0);
  CHECK(size == 3);
  CHECK((std::filesystem::status(cache.part_path(key)).permissions() & std::filesystem::perms::all) ==
        std::filesystem::perms(0444));
  cache.unlock_part(key, fd);

  // A holder that renamed its part away does not delete the next one's file.
  fd = cache.lock_part(key);
  REQUIRE(fd >= 0);
  const std::string moved = (tmp.path() / "moved").string();
  REQUIRE(::rename(cache.part_path(key).c_str(), moved.c_str()) == 0);
  int next = cache.lock_part(key);  // a new inode at the path: free at once
  REQUIRE(next >= 0);
  REQUIRE(::ftruncate(fd, 0) == 0);
  cache.unlock_part(key, fd);
  CHECK(std::filesystem::exists(cache.part_path(key)));
  CHECK(std::filesystem::exists(moved));
  cache.unlock_part(key, next);
}

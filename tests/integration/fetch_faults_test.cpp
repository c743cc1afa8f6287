// The downloader over real libcurl against a fault-injecting server on 127.0.0.1.
#include <doctest/doctest.h>

#include <filesystem>
#include <thread>

#include "cyllm/fetch.h"
#include "http_servers.h"
#include "test_support.h"

using namespace cyllm;
using namespace cyllm::fetch;
using cyllm::test::FaultServer;
using cyllm::test::Route;
using cyllm::test::TempDir;

namespace {

std::string payload(std::size_t n) {
  std::string s(n, '\0');
  std::uint32_t x = 12345;
  for (auto& c : s) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

struct Rig {
  TempDir tmp;
  RootedFilesystem fs{"/"};
  PosixCommandRunner runner;
  SystemClock clock;
  NullLogger log;
  Context ctx{fs, runner, clock, log, nullptr};
  Cache cache{(tmp.path() / "cache").string()};
  HttpOptions ho;
  DownloadOptions o;
  Rig() {
    ho.stall_timeout = std::chrono::milliseconds(1000);
    ho.connect_timeout = std::chrono::milliseconds(2000);
    o.dest_dir = (tmp.path() / "dest").string();
    o.retry.base_delay = std::chrono::milliseconds(50);
    o.retry.max_attempts = 4;
    o.seed = 7;
  }
  ArtifactResult get(const std::string& url, const std::string& sha = "") {
    auto a = parse_source(url, "").value();
    a.sha256 = sha;
    auto http = make_curl_client(ho);
    auto r = download_all(ctx, *http, cache, {a}, o);
    REQUIRE(r.ok());
    return r->artifacts.at(0);
  }
};

// Serves /f<first> .. /f<first+n-1>, each a payload of its own size (base + i bytes), and
// returns their artifacts.
std::vector<Artifact> serve_files(FaultServer& srv, int first, int n, std::size_t base) {
  std::vector<Artifact> arts;
  for (int i = first; i < first + n; ++i) {
    Route r;
    r.body = payload(base + static_cast<std::size_t>(i));
    srv.route("/f" + std::to_string(i), r);
    arts.push_back(parse_source(srv.url("/f" + std::to_string(i)), "").value());
  }
  return arts;
}

}  // namespace

TEST_CASE("connection dropped mid-body: the retry resumes with Range and the hash is right") {
  FaultServer srv;
  Rig rig;
  const std::string body = payload(300000);
  Route r;
  r.body = body;
  r.drop_after_bytes = 100000;
  srv.route("/big.bin", r);
  auto res = rig.get(srv.url("/big.bin"), sha256_hex(body));
  REQUIRE_FALSE(res.error);
  CHECK(res.sha256 == sha256_hex(body));
  auto reqs = srv.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].header("range").empty());
  CHECK(reqs[1].header("range").rfind("bytes=", 0) == 0);
  CHECK(reqs[1].header("range") != "bytes=0-");
  CHECK(reqs[1].header("if-range") == "\"v1\"");
  CHECK(reqs[1].header("accept-encoding").empty());
  CHECK(cyllm::test::read_text(rig.tmp.path() / "dest/big.bin") == body);
}

TEST_CASE("bodies past 8 MiB are hashed on the hash thread: resume, several at once, a wrong hash") {
  FaultServer srv;
  Rig rig;
  rig.o.jobs = 3;
  // 20 MiB, dropped after 12 MiB: the first attempt's chunks go through the hash thread,
  // the retry hashes the part's prefix and then the rest.
  const std::string big = payload(20u << 20);
  Route dropped;
  dropped.body = big;
  dropped.drop_after_bytes = 12u << 20;
  srv.route("/dropped.bin", dropped);
  // Three more at once, so that chunks of several digests are queued together.
  std::vector<std::string> bodies;
  std::vector<Artifact> artifacts;
  for (int i = 0; i < 3; ++i) {
    bodies.push_back(payload((9u << 20) + static_cast<std::size_t>(i) * 777777u));
    bodies.back()[static_cast<std::size_t>(i)] ^= 0x5a;  // different contents
    Route r;
    r.body = bodies.back();
    srv.route("/p" + std::to_string(i) + ".bin", r);
    artifacts.push_back(parse_source(srv.url("/p" + std::to_string(i) + ".bin"), "").value());
  }
  artifacts.push_back(parse_source(srv.url("/dropped.bin"), "").value());
  artifacts.back().sha256 = sha256_hex(big);
  // And one whose body differs from the expected one in its last byte (expected: a hash
  // not in the cache, or the blob of dropped.bin would satisfy it).
  std::string expected = big, evil = big;
  expected.front() ^= 1;
  evil.front() ^= 1;
  evil.back() ^= 1;
  Route er;
  er.body = evil;
  srv.route("/evil.bin", er);
  artifacts.push_back(parse_source(srv.url("/evil.bin"), "").value());
  artifacts.back().sha256 = sha256_hex(expected);

  auto http = make_curl_client(rig.ho);
  auto report = download_all(rig.ctx, *http, rig.cache, artifacts, rig.o);
  REQUIRE(report.ok());
  const auto& res = report->artifacts;
  REQUIRE(res.size() == 5);
  for (int i = 0; i < 3; ++i) {
    REQUIRE_FALSE(res[static_cast<std::size_t>(i)].error);
    CHECK(res[static_cast<std::size_t>(i)].sha256 == sha256_hex(bodies[static_cast<std::size_t>(i)]));
  }
  REQUIRE_FALSE(res[3].error);
  CHECK(res[3].sha256 == sha256_hex(big));
  CHECK(cyllm::test::read_text(rig.tmp.path() / "dest/dropped.bin") == big);
  REQUIRE(res[4].error);
  CHECK(res[4].error->code() == Errc::HashMismatch);
  CHECK(res[4].error->message().find(sha256_hex(evil)) != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(rig.tmp.path() / "dest/evil.bin"));
}

TEST_CASE("503 then success; 429 with Retry-After is honoured") {
  FaultServer srv;
  Rig rig;
  Route r;
  r.body = "ok-body";
  r.fail_first = 2;
  r.fail_status = 503;
  srv.route("/a", r);
  auto res = rig.get(srv.url("/a"));
  REQUIRE_FALSE(res.error);
  CHECK(srv.count("/a") == 3);
  CHECK(cyllm::test::read_text(res.path) == "ok-body");

  Route t;
  t.body = "throttled-body";
  t.fail_first = 1;
  t.fail_status = 429;
  t.retry_after = "1";
  srv.route("/t", t);
  auto t0 = std::chrono::steady_clock::now();
  auto res2 = rig.get(srv.url("/t"));
  auto waited = std::chrono::steady_clock::now() - t0;
  REQUIRE_FALSE(res2.error);
  CHECK(waited >= std::chrono::milliseconds(950));
  CHECK(srv.count("/t") == 2);
}

TEST_CASE("4xx is not retried and its body is not kept") {
  FaultServer srv;
  Rig rig;
  Route r;
  r.status = 404;
  srv.route("/gone", r);
  auto res = rig.get(srv.url("/gone"));
  REQUIRE(res.error);
  CHECK(res.error->code() == Errc::HttpStatus);
  CHECK(srv.count("/gone") == 1);
  CHECK_FALSE(std::filesystem::exists(rig.cache.part_path(sha256_hex(srv.url("/gone")))));
}

TEST_CASE("a server that ignores Range: the .part is truncated and the download starts over") {
  FaultServer srv;
  Rig rig;
  const std::string body = payload(50000);
  REQUIRE(rig.cache.ensure_layout().ok());
  auto url = srv.url("/norange");
  cyllm::test::write_file(rig.cache.part_path(sha256_hex(url)), body.substr(0, 1000) + "garbage");
  Route r;
  r.body = body;
  r.ignore_range = true;
  srv.route("/norange", r);
  auto res = rig.get(url);
  REQUIRE_FALSE(res.error);
  CHECK(res.sha256 == sha256_hex(body));
  CHECK(srv.requests().at(0).header("range") == "bytes=1007-");
}

TEST_CASE("416: complete when the .part has the total size, else restart") {
  FaultServer srv;
  Rig rig;
  REQUIRE(rig.cache.ensure_layout().ok());
  const std::string body = payload(4000);
  Route r;
  r.body = body;
  r.always_416 = true;
  srv.route("/done", r);
  auto url = srv.url("/done");
  cyllm::test::write_file(rig.cache.part_path(sha256_hex(url)), body);
  auto res = rig.get(url, sha256_hex(body));
  REQUIRE_FALSE(res.error);
  CHECK(srv.count("/done") == 1);

  srv.route("/short", r);
  auto url2 = srv.url("/short");
  cyllm::test::write_file(rig.cache.part_path(sha256_hex(url2)), "xx");
  auto res2 = rig.get(url2);
  REQUIRE_FALSE(res2.error);
  CHECK(res2.sha256 == sha256_hex(body));
  CHECK(srv.count("/short") == 2);  // 416, then a fresh GET
}

TEST_CASE("a redirect to another host (127.0.0.1 -> localhost) does not carry the token") {
  FaultServer srv;
  Rig rig;
  Route target;
  target.body = "weights";
  srv.route("/cdn/file", target);
  Route hop;
  hop.redirect_to = srv.url("/cdn/file", "localhost");
  hop.extra_headers = {"X-Repo-Commit: 0123abcd", "X-Linked-Etag: \"lfs-sha\""};
  srv.route("/org/repo/resolve/main/file", hop);
  rig.o.hf_endpoint = "http://127.0.0.1:" + std::to_string(srv.port());
  rig.o.hf_token = "hf_secret";
  rig.o.extra_headers = {"X-Custom: 1"};
  auto a = parse_hf_source("hf://org/repo/file", rig.o.hf_endpoint).value();
  auto http = make_curl_client(rig.ho);
  auto rep = download_all(rig.ctx, *http, rig.cache, {a}, rig.o);
  REQUIRE(rep.ok());
  const auto& res = rep->artifacts[0];
  REQUIRE_FALSE(res.error);
  auto reqs = srv.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].header("authorization") == "Bearer hf_secret");
  CHECK(reqs[0].header("x-custom") == "1");
  CHECK(reqs[1].header("host").rfind("localhost", 0) == 0);
  CHECK(reqs[1].header("authorization").empty());
  CHECK(reqs[1].header("x-custom").empty());
  CHECK(res.hf_commit == "0123abcd");
  CHECK(res.etag == "\"lfs-sha\"");
}

TEST_CASE("a stalled transfer times out and the retry completes") {
  FaultServer srv;
  Rig rig;
  const std::string body = payload(200000);
  Route r;
  r.body = body;
  r.stall_ms = 5000;
  srv.route("/slow", r);
  auto t0 = std::chrono::steady_clock::now();
  auto res = rig.get(srv.url("/slow"), sha256_hex(body));
  REQUIRE_FALSE(res.error);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(4500));
  CHECK(srv.count("/slow") == 2);
  CHECK(srv.requests().at(1).header("range") == "bytes=100000-");
}

TEST_CASE("a wrong-hash body fails with both hashes and leaves nothing behind") {
  FaultServer srv;
  Rig rig;
  Route r;
  r.body = "evil";
  srv.route("/w.whl", r);
  auto good = sha256_hex("good");
  auto res = rig.get(srv.url("/w.whl"), good);
  REQUIRE(res.error);
  CHECK(res.error->code() == Errc::HashMismatch);
  CHECK(res.error->message().find(good) != std::string::npos);
  CHECK(res.error->message().find(sha256_hex("evil")) != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(rig.cache.part_path(good)));
  CHECK_FALSE(rig.cache.has_blob(sha256_hex("evil")));
  CHECK_FALSE(std::filesystem::exists(rig.tmp.path() / "dest/w.whl"));
}

TEST_CASE("parallel downloads and a second run that is all cache hits") {
  FaultServer srv;
  Rig rig;
  const std::vector<Artifact> arts = serve_files(srv, 0, 12, 10000);
  rig.o.jobs = 4;
  auto http = make_curl_client(rig.ho);
  auto rep = download_all(rig.ctx, *http, rig.cache, arts, rig.o);
  REQUIRE(rep.ok());
  for (const auto& a : rep->artifacts) CHECK_FALSE(a.error);
  CHECK(srv.requests().size() == 12);
  auto rep2 = download_all(rig.ctx, *http, rig.cache, arts, rig.o);
  REQUIRE(rep2.ok());
  for (const auto& a : rep2->artifacts) CHECK(a.cache_hit);
  CHECK(rep2->requests == 0);
  CHECK(srv.requests().size() == 12);

  // The client closes its connections' sockets (through its close-socket callback) when
  // it goes: no descriptor outlives it. The server's ends close when it sees EOF.
  http.reset();
  const auto open_fds = [] {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
    return n;
  };
  // The server closes its ends of the first client's connections when it notices.
  const auto settled = [&] {
    std::size_t n = open_fds();
    for (int i = 0; i < 40; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      const std::size_t m = open_fds();
      if (m == n) break;
      n = m;
    }
    return n;
  };
  const std::size_t before = settled();
  {
    auto fresh = make_curl_client(rig.ho);
    const std::vector<Artifact> more = serve_files(srv, 12, 4, 20000);
    auto rep3 = download_all(rig.ctx, *fresh, rig.cache, more, rig.o);
    REQUIRE(rep3.ok());
    for (const auto& a : rep3->artifacts) CHECK_FALSE(a.error);
  }
  CHECK(settled() == before);
}

TEST_CASE("cancel stops transfers and keeps the .part") {
  FaultServer srv;
  Rig rig;
  const std::string body = payload(100000);
  Route r;
  r.body = body;
  r.stall_ms = 3000;
  srv.route("/c", r);
  std::atomic<bool> cancel{false};
  Context ctx{rig.fs, rig.runner, rig.clock, rig.log, &cancel};
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    cancel = true;
  });
  auto a = parse_source(srv.url("/c"), "").value();
  auto http = make_curl_client(rig.ho);
  auto rep = download_all(ctx, *http, rig.cache, {a}, rig.o);
  t.join();
  REQUIRE(rep.ok());
  CHECK(rep->cancelled);
  REQUIRE(rep->artifacts[0].error);
  CHECK(rep->artifacts[0].error->code() == Errc::Cancelled);
  auto part = rig.cache.part_path(sha256_hex(a.url));
  REQUIRE(std::filesystem::exists(part));
  CHECK(std::filesystem::file_size(part) == 50000);
}

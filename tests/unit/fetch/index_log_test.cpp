// The cache index log: records round-trip, a torn or garbled record is skipped without
// losing the records after it, several processes append without interleaving, gc
// compacts, and caches of the old layout (one JSON file per entry) still hit.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <atomic>
#include <set>
#include <thread>

#include "cyllm/fetch.h"
#include "fetch/index_log.h"
#include "test_support.h"

using namespace cyllm;
using namespace cyllm::fetch;
using cyllm::test::TempDir;
using cyllm::test::read_text;
using cyllm::test::write_file;

namespace {

IndexEntry entry(const std::string& url, const std::string& body) {
  IndexEntry e;
  e.url = url;
  e.sha256 = sha256_hex(body);
  e.etag = "\"e-" + std::to_string(body.size()) + "\"";
  e.filename = url.substr(url.rfind('/') + 1);
  e.size_bytes = body.size();
  return e;
}

std::string put_blob(const Cache& cache, const std::string& body) {
  REQUIRE(cache.ensure_layout().ok());
  const std::string path = cache.blob_path(sha256_hex(body));
  write_file(path, body);
  return path;
}

}  // namespace

TEST_CASE("index records round-trip, escapes included") {
  IndexEntry e = entry("https://h.example/a \"quoted\"\\path\n\x01.bin", "abc");
  e.hf_commit = "0123abcd";
  e.etag = "W/\"tab\there\"";
  const std::string rec = encode_index_record(e);
  CHECK(rec.substr(0, 3) == "I1 ");
  CHECK(rec.back() == '\n');
  CHECK(std::count(rec.begin(), rec.end(), '\n') == 1);  // one line, whatever the fields hold
  std::size_t consumed = 0;
  auto got = parse_index_records(rec, &consumed);
  REQUIRE(got.size() == 1);
  CHECK(consumed == rec.size());
  CHECK(got[0].url == e.url);
  CHECK(got[0].etag == e.etag);
  CHECK(got[0].sha256 == e.sha256);
  CHECK(got[0].hf_commit == "0123abcd");
  CHECK(got[0].filename == e.filename);
  CHECK(got[0].size_bytes == 3);
}

TEST_CASE("payloads in the written form are read directly, others by the JSON parser, alike") {
  IndexEntry e = entry("https://h.example/a \"q\" \\ b", "body");
  e.etag = std::string("W/\"x\"\x01\x1f");
  e.hf_commit = "abc";
  e.size_bytes = 18446744073709551615ull;  // the largest size_bytes
  const std::string rec = encode_index_record(e);
  const std::string payload = rec.substr(rec.find('{'), rec.size() - rec.find('{') - 1);
  auto direct = decode_index_payload_canonical(payload);
  auto json = decode_index_payload_json(payload);
  REQUIRE(direct);
  REQUIRE(json);
  for (const auto* x : {&*direct, &*json}) {
    CHECK(x->url == e.url);
    CHECK(x->etag == e.etag);
    CHECK(x->sha256 == e.sha256);
    CHECK(x->hf_commit == "abc");
    CHECK(x->size_bytes == e.size_bytes);
  }
  // Valid JSON in another form: keys reordered, spaces, another escape, UTF-8 in a name.
  const std::string sha = e.sha256;
  for (const std::string& other :
       {std::string("{\"sha256\":\"") + sha + "\",\"url\":\"u\",\"etag\":\"\",\"size_bytes\":1,\"hf_commit\":\"\",\"filename\":\"f\"}",
        std::string("{\"url\": \"u\",\"etag\":\"\",\"sha256\":\"") + sha + "\",\"size_bytes\":1,\"hf_commit\":\"\",\"filename\":\"f\"}",
        std::string("{\"url\":\"u\\/v\",\"etag\":\"\",\"sha256\":\"") + sha + "\",\"size_bytes\":1,\"hf_commit\":\"\",\"filename\":\"f\"}",
        std::string("{\"url\":\"u\",\"etag\":\"\",\"sha256\":\"") + sha + "\",\"size_bytes\":1,\"hf_commit\":\"\",\"filename\":\"caf\xc3\xa9\"}"}) {
    CAPTURE(other);
    CHECK_FALSE(decode_index_payload_canonical(other));
    auto r = decode_index_payload(other);
    REQUIRE(r);
    CHECK(r->sha256 == sha);
    CHECK(r->size_bytes == 1);
  }
  // Neither reader takes what JSON forbids: bad UTF-8, a raw control character, a
  // number with a leading zero, one past 64 bits (then size_bytes is unknown, 0).
  const std::string head = std::string("{\"url\":\"u\",\"etag\":\"\",\"sha256\":\"") + sha + "\",\"size_bytes\":";
  CHECK_FALSE(decode_index_payload(head + "1,\"hf_commit\":\"\",\"filename\":\"\xff\"}"));
  CHECK_FALSE(decode_index_payload(head + "1,\"hf_commit\":\"\",\"filename\":\"a\x01\"}"));
  CHECK_FALSE(decode_index_payload(head + "01,\"hf_commit\":\"\",\"filename\":\"f\"}"));
  auto big = decode_index_payload(head + "18446744073709551616,\"hf_commit\":\"\",\"filename\":\"f\"}");
  REQUIRE(big);
  CHECK(big->size_bytes == 0);
}

TEST_CASE("a torn record is skipped and the records after it are still found") {
  const std::string a = encode_index_record(entry("https://h.example/a", "a"));
  const std::string b = encode_index_record(entry("https://h.example/b", "b"));
  const std::string c = encode_index_record(entry("https://h.example/c", "c"));

  SUBCASE("cut short at the end: left for a later read") {
    const std::string text = a + b.substr(0, b.size() / 2);
    std::size_t consumed = 0;
    auto got = parse_index_records(text, &consumed);
    REQUIRE(got.size() == 1);
    CHECK(got[0].url == "https://h.example/a");
    CHECK(consumed == a.size());
  }
  SUBCASE("cut short, then another writer's record on the same line") {
    for (std::size_t cut : {std::size_t{1}, std::size_t{3}, std::size_t{20}, b.size() / 2, b.size() - 2}) {
      CAPTURE(cut);
      auto got = parse_index_records(a + b.substr(0, cut) + c);
      REQUIRE(got.size() == 2);
      CHECK(got[0].url == "https://h.example/a");
      CHECK(got[1].url == "https://h.example/c");
    }
  }
  SUBCASE("zeros where a power loss lost the data, then a later record") {
    auto got = parse_index_records(a + std::string(b.size(), '\0') + c);
    REQUIRE(got.size() == 2);
    CHECK(got[1].url == "https://h.example/c");
  }
  SUBCASE("a flipped byte fails the check; garbage lines are ignored") {
    std::string bad = b;
    bad[bad.find("h.example")] = 'H';
    auto got = parse_index_records(a + bad + "not a record\nI1 zz {}\nI1 0000000000000000 {}\n" + c);
    REQUIRE(got.size() == 2);
    CHECK(got[0].url == "https://h.example/a");
    CHECK(got[1].url == "https://h.example/c");
  }
  SUBCASE("a record whose check is right but whose sha256 is not 64 hex digits") {
    IndexEntry e = entry("https://h.example/x", "x");
    e.sha256 = "abc";
    CHECK(parse_index_records(encode_index_record(e)).empty());
  }
}

TEST_CASE("the log: the last record of a URL and of a hash wins; a torn tail is harmless") {
  TempDir tmp;
  const std::string path = (tmp.path() / "entries.log").string();
  IndexEntry old_e = entry("https://h.example/m", "v1"), new_e = entry("https://h.example/m", "v2");
  {
    IndexLog log(path);
    REQUIRE(log.append(old_e).ok());
    REQUIRE(log.append(new_e).ok());
  }
  // A crash in the middle of the next append.
  {
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND);
    REQUIRE(fd >= 0);
    const std::string torn = encode_index_record(entry("https://h.example/t", "t")).substr(0, 30);
    REQUIRE(::write(fd, torn.data(), torn.size()) == static_cast<ssize_t>(torn.size()));
    ::close(fd);
  }
  IndexLog log(path);
  auto e = log.find_url("https://h.example/m");
  REQUIRE(e);
  CHECK(e->sha256 == sha256_hex("v2"));
  REQUIRE(log.find_sha256(sha256_hex("v1")));
  CHECK(log.find_sha256(sha256_hex("v1"))->url == "https://h.example/m");
  CHECK_FALSE(log.find_url("https://h.example/t"));
  // The next append after the torn bytes is read back.
  REQUIRE(log.append(entry("https://h.example/n", "n")).ok());
  IndexLog again(path);
  CHECK(again.find_url("https://h.example/n"));
  CHECK(again.find_url("https://h.example/m"));
}

TEST_CASE("a reader sees what another process appended after its first read") {
  TempDir tmp;
  const std::string path = (tmp.path() / "entries.log").string();
  IndexLog reader(path), writer(path);
  CHECK_FALSE(reader.find_url("https://h.example/late"));  // no log yet
  REQUIRE(writer.append(entry("https://h.example/early", "e")).ok());
  CHECK(reader.find_url("https://h.example/early"));
  CHECK_FALSE(reader.find_url("https://h.example/late"));
  REQUIRE(writer.append(entry("https://h.example/late", "l")).ok());
  CHECK(reader.find_url("https://h.example/late"));
}

TEST_CASE("a batch is appended whole; a lookup without refresh sees only what was read") {
  TempDir tmp;
  const std::string path = (tmp.path() / "entries.log").string();
  IndexLog reader(path), writer(path);
  // The first lookup reads the log even without refresh (there is none yet).
  CHECK_FALSE(reader.find_url("https://h.example/a", false));
  REQUIRE(writer.append(std::vector<IndexEntry>{entry("https://h.example/a", "a"), entry("https://h.example/b", "bb"),
                                                entry("https://h.example/c", "ccc")})
              .ok());
  CHECK(parse_index_records(read_text(path)).size() == 3);  // one record each
  CHECK(writer.find_url("https://h.example/b", false));     // the writer knows its own
  CHECK_FALSE(reader.find_url("https://h.example/a", false));  // not read since
  auto c = reader.find_url("https://h.example/c");              // a miss reads again
  REQUIRE(c);
  CHECK(c->size_bytes == 3);
  CHECK(reader.find_url("https://h.example/a", false));
  REQUIRE(writer.append(std::vector<IndexEntry>{}).ok());  // nothing: no record
  CHECK(parse_index_records(read_text(path)).size() == 3);
}

TEST_CASE("lookups on one thread while another appends: each record is found once appended") {
  // The event loop looks URLs up while the finisher thread appends; an append does its file
  // work outside the lock that lookups take, and adds its entries before it returns.
  TempDir tmp;
  IndexLog log((tmp.path() / "entries.log").string());
  constexpr int kBatches = 60, kPerBatch = 5;
  std::atomic<int> appended{0};
  std::atomic<bool> bad{false};
  std::thread writer([&] {
    for (int b = 0; b < kBatches; ++b) {
      std::vector<IndexEntry> batch;
      for (int i = 0; i < kPerBatch; ++i) {
        const int n = b * kPerBatch + i;
        batch.push_back(entry("https://h.example/f" + std::to_string(n), std::string(static_cast<std::size_t>(n % 7 + 1), 'x')));
      }
      if (!log.append(batch).ok()) bad = true;
      appended = (b + 1) * kPerBatch;
    }
  });
  int checked = 0;
  while (checked < kBatches * kPerBatch) {
    const int upto = appended.load();
    for (; checked < upto; ++checked) {
      auto e = log.find_url("https://h.example/f" + std::to_string(checked), false);
      if (!e || e->size_bytes != static_cast<std::uint64_t>(checked % 7 + 1)) bad = true;
    }
  }
  writer.join();
  CHECK_FALSE(bad.load());
  CHECK(parse_index_records(read_text((tmp.path() / "entries.log").string())).size() == kBatches * kPerBatch);
  IndexLog fresh((tmp.path() / "entries.log").string());  // and another reader finds them all
  for (int n = 0; n < kBatches * kPerBatch; ++n) CHECK(fresh.find_url("https://h.example/f" + std::to_string(n)));
}

TEST_CASE("processes appending at once: every record whole, none lost") {
  TempDir tmp;
  const std::string path = (tmp.path() / "entries.log").string();
  constexpr int kProcs = 4, kEach = 150;
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      IndexLog log(path);
      bool ok = true;
      for (int i = 0; i < kEach; ++i) {
        // Long URLs, so that records are several KiB and a torn write would show.
        std::string url = "https://h.example/p" + std::to_string(p) + "/" + std::string(1000 + 37 * i, 'u') + "/" +
                          std::to_string(i);
        ok = ok && log.append(entry(url, url)).ok();
      }
      ::_exit(ok ? 0 : 1);
    }
    kids.push_back(pid);
  }
  for (pid_t pid : kids) {
    int st = 0;
    REQUIRE(::waitpid(pid, &st, 0) == pid);
    CHECK((WIFEXITED(st) && WEXITSTATUS(st) == 0));
  }
  const std::string text = read_text(path);
  std::size_t consumed = 0;
  auto got = parse_index_records(text, &consumed);
  CHECK(consumed == text.size());
  CHECK(got.size() == static_cast<std::size_t>(kProcs * kEach));
  CHECK(static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) == got.size());
  std::set<std::string> urls;
  for (const auto& e : got) {
    CHECK(e.sha256 == sha256_hex(e.url));
    urls.insert(e.url);
  }
  CHECK(urls.size() == static_cast<std::size_t>(kProcs * kEach));
  IndexLog log(path);
  CHECK(log.find_url("https://h.example/p3/" + std::string(1000 + 37 * 149, 'u') + "/149"));
}

TEST_CASE("gc rewrites the log without the entries of removed blobs; a stale appender follows") {
  TempDir tmp;
  Cache cache((tmp.path() / "cache").string());
  REQUIRE(cache.ensure_layout().ok());
  for (char c : {'a', 'b', 'c'}) {
    std::string body(1000, c);
    put_blob(cache, body);
    REQUIRE(cache.record(entry(std::string("https://h.example/") + c, body)).ok());
    struct timespec ts[2] = {{1000 + c, 0}, {1000 + c, 0}};
    REQUIRE(::utimensat(AT_FDCWD, cache.blob_path(sha256_hex(body)).c_str(), ts, 0) == 0);
  }
  // Re-recorded many times: the log grows, compaction keeps one record per entry.
  for (int i = 0; i < 20; ++i) REQUIRE(cache.record(entry("https://h.example/c", std::string(1000, 'c'))).ok());
  const std::string log_path = (tmp.path() / "cache/index/entries.log").string();
  IndexLog stale(log_path);
  REQUIRE(stale.find_url("https://h.example/a"));  // holds the file gc is about to replace

  auto freed = cache.gc(1500);
  REQUIRE(freed.ok());
  CHECK(*freed == 2000);
  auto left = parse_index_records(read_text(log_path));
  REQUIRE(left.size() == 1);
  CHECK(left[0].url == "https://h.example/c");
  CHECK(cache.lookup("https://h.example/c"));
  CHECK_FALSE(cache.lookup("https://h.example/a"));

  // The other process's descriptor names the old file: its next append goes to the new one.
  const std::string body_d(10, 'd');
  put_blob(cache, body_d);
  REQUIRE(stale.append(entry("https://h.example/d", body_d)).ok());
  CHECK(parse_index_records(read_text(log_path)).size() == 2);
  Cache fresh((tmp.path() / "cache").string());
  CHECK(fresh.lookup("https://h.example/d"));
}

TEST_CASE("a cache of the old layout (one JSON file per entry) still hits, and is migrated") {
  TempDir tmp;
  const std::string root = (tmp.path() / "cache").string();
  const std::string body = "old weights", hex = sha256_hex(body);
  const std::string url = "https://h.example/old.bin";
  std::filesystem::create_directories(root + "/index/url");
  std::filesystem::create_directories(root + "/index/sha256");
  std::filesystem::create_directories(root + "/blobs/sha256");
  write_file(root + "/blobs/sha256/" + hex, body);
  const std::string json = "{\n  \"url\": \"" + url + "\",\n  \"etag\": \"\\\"o1\\\"\",\n  \"sha256\": \"" + hex +
                           "\",\n  \"size_bytes\": 11,\n  \"hf_commit\": \"\",\n  \"filename\": \"old.bin\"\n}\n";
  write_file(root + "/index/url/" + sha256_hex(url) + ".json", json);
  write_file(root + "/index/sha256/" + hex + ".json", json);

  {
    Cache cache(root);
    auto e = cache.lookup(url);
    REQUIRE(e);
    CHECK(e->sha256 == hex);
    CHECK(e->etag == "\"o1\"");
    auto b = cache.lookup_blob(hex);
    REQUIRE(b);
    CHECK(b->url == url);
    CHECK(b->size_bytes == 11);
  }
  // Migrated: found in the log even without the old files.
  auto logged = parse_index_records(read_text(root + "/index/entries.log"));
  REQUIRE_FALSE(logged.empty());
  CHECK(logged[0].url == url);
  std::filesystem::remove(root + "/index/url/" + sha256_hex(url) + ".json");
  Cache cache(root);
  CHECK(cache.lookup(url));

  // A second fetch through download_all: a hit with zero requests.
  struct NoHttp final : HttpClient {
    int started = 0;
    void start(HttpRequest, TransferHandlers) override { ++started; }
    std::size_t poll(std::chrono::milliseconds) override { return 0; }
    void abort_all() override {}
  } http;
  RootedFilesystem fs{"/"};
  PosixCommandRunner runner;
  SystemClock clock;
  NullLogger log;
  Context ctx{fs, runner, clock, log, nullptr};
  DownloadOptions o;
  o.dest_dir = (tmp.path() / "dest").string();
  o.offline = true;
  auto a = parse_source(url, "").value();
  auto r = download_all(ctx, http, cache, {a}, o);
  REQUIRE(r.ok());
  REQUIRE_FALSE(r->artifacts[0].error);
  CHECK(r->artifacts[0].cache_hit);
  CHECK(http.started == 0);
  CHECK(read_text(tmp.path() / "dest/old.bin") == body);
}

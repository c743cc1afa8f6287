// cy-llm-fetch end to end against Debian's nginx and the fault server on 127.0.0.1:
// manifest, Range/ETag serving, TLS with a self-signed CA, two processes on one cache,
// a full disk, --offline, --gc, --lock through a simple index.
#include <doctest/doctest.h>

#include <sys/mount.h>
#include <sys/resource.h>
#include <csignal>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cyllm/fetch.h"
#include "http_servers.h"
#include "make_wheel.h"
#include "test_support.h"

using namespace cyllm;
using namespace cyllm::test;
namespace fs = std::filesystem;

namespace {

std::string payload(std::size_t n, std::uint32_t seed = 99) {
  std::string s(n, '\0');
  for (auto& c : s) {
    seed = seed * 1103515245u + 12345u;
    c = static_cast<char>(seed >> 24);
  }
  return s;
}

nlohmann::json manifest(const ToolRun& r) {
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  if (j.is_discarded()) FAIL("stdout is not JSON: " << r.out << "\nstderr: " << r.err);
  return j;
}

}  // namespace

TEST_CASE("nginx: download, manifest, second run is a hit with zero requests, offline, gc") {
  TempDir tmp;
  fs::create_directories(tmp.path() / "www/models");
  const std::string big = payload(3 << 20);
  write_file(tmp.path() / "www/models/a.bin", big);
  write_file(tmp.path() / "www/b.txt", "hello\n");
  NginxServer nginx(tmp.path() / "nginx", tmp.path() / "www");
  REQUIRE(nginx.running());
  const std::string cache = (tmp.path() / "cache").string(), dest = (tmp.path() / "dest").string();
  std::vector<std::string> args = {"--cache-dir", cache, "--dest", dest, "--progress", "json",
                                   nginx.url("/models/a.bin"), nginx.url("/b.txt")};
  auto r = run_tool("cy-llm-fetch", args);
  CHECK(r.exit_code == 0);
  auto j = manifest(r);
  CHECK(j["schema"] == "cy-llm.fetch/v1");
  {  // the committed schema's required keys are all there
    std::ifstream sf(source_root() / "tools/schema/fetch.v1.json");
    auto schema = nlohmann::json::parse(sf);
    for (const auto& k : schema["required"]) CHECK_MESSAGE(j.contains(k.get<std::string>()), k);
    for (const auto& k : schema["properties"]["artifacts"]["items"]["required"])
      for (const auto& a : j["artifacts"]) CHECK_MESSAGE(a.contains(k.get<std::string>()), k);
    for (const auto& k : schema["properties"]["summary"]["required"])
      CHECK_MESSAGE(j["summary"].contains(k.get<std::string>()), k);
    for (const auto& a : j["artifacts"])
      CHECK(std::find(schema["properties"]["artifacts"]["items"]["properties"]["status"]["enum"].begin(),
                      schema["properties"]["artifacts"]["items"]["properties"]["status"]["enum"].end(),
                      a["status"]) != schema["properties"]["artifacts"]["items"]["properties"]["status"]["enum"].end());
  }
  REQUIRE(j["artifacts"].size() == 2);
  CHECK(j["artifacts"][0]["status"] == "downloaded");
  CHECK(j["artifacts"][0]["sha256"] == fetch::sha256_hex(big));
  CHECK(j["artifacts"][0]["size_bytes"] == big.size());
  CHECK(j["artifacts"][0]["path"] == dest + "/a.bin");
  CHECK(j["artifacts"][0]["etag"].is_string());
  CHECK(read_text(dest + "/a.bin") == big);
  CHECK(r.err.find("\"event\":\"done\"") != std::string::npos);
  CHECK(nginx.count("/models/a.bin") == 1);

  auto r2 = run_tool("cy-llm-fetch", args);
  CHECK(r2.exit_code == 0);
  auto j2 = manifest(r2);
  CHECK(j2["artifacts"][0]["status"] == "cache_hit");
  CHECK(j2["summary"]["requests"] == 0);
  CHECK(nginx.count("/models/a.bin") == 1);
  CHECK(nginx.count("/b.txt") == 1);

  auto off = run_tool("cy-llm-fetch", {"--cache-dir", cache, "--offline", nginx.url("/models/a.bin"), nginx.url("/nope")});
  CHECK(off.exit_code == 1);
  CHECK(off.err.find("fetch.offline_miss") != std::string::npos);

  // b.txt is now the most recently used; trimming to 1 MiB drops a.bin (least recently used).
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(run_tool("cy-llm-fetch", {"--cache-dir", cache, "--offline", nginx.url("/b.txt")}).exit_code == 0);
  auto gc = run_tool("cy-llm-fetch", {"--cache-dir", cache, "--gc", "1M"});
  CHECK(gc.exit_code == 0);
  CHECK_FALSE(fs::exists(cache + "/blobs/sha256/" + fetch::sha256_hex(big)));
  CHECK(fs::exists(cache + "/blobs/sha256/" + fetch::sha256_hex("hello\n")));
}

TEST_CASE("TLS with a self-signed certificate: refused without --ca-bundle, accepted with it") {
  TempDir tmp;
  fs::create_directories(tmp.path() / "www");
  write_file(tmp.path() / "www/m.gguf", "tls payload");
  const std::string cert = (tmp.path() / "cert.pem").string(), key = (tmp.path() / "key.pem").string();
  std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
                    "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout " + key + " -out " + cert + " 2>/dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
  NginxServer nginx(tmp.path() / "nginx", tmp.path() / "www", cert, key);
  REQUIRE(nginx.running());
  const std::string cache = (tmp.path() / "cache").string();
  auto bad = run_tool("cy-llm-fetch", {"--cache-dir", cache, nginx.url("/m.gguf", true)});
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("fetch.tls_verify") != std::string::npos);
  CHECK(bad.err.find("--ca-bundle") != std::string::npos);
  auto ok = run_tool("cy-llm-fetch", {"--cache-dir", cache, "--ca-bundle", cert, nginx.url("/m.gguf", true)});
  CHECK(ok.exit_code == 0);
  CHECK(manifest(ok)["artifacts"][0]["sha256"] == fetch::sha256_hex("tls payload"));
  CHECK(nginx.access_log().find("HTTP/2.0") != std::string::npos);  // ALPN chose HTTP/2
}

TEST_CASE("two processes on one cache and one URL: downloaded once, both succeed") {
  TempDir tmp;
  FaultServer srv;
  const std::string body = payload(400000, 5);
  Route r;
  r.body = body;
  r.stall_ms = 0;
  srv.route("/shared.bin", r);
  // Slow the body down a little so the two processes overlap: cut once and make the
  // retry wait (the loser waits on the lock meanwhile).
  Route slow = r;
  slow.drop_after_bytes = 200000;
  srv.route("/shared.bin", slow);
  const std::string cache = (tmp.path() / "cache").string();
  ToolRun a, b;
  std::thread ta([&] { a = run_tool("cy-llm-fetch", {"--cache-dir", cache, "--dest", (tmp.path() / "d1").string(), srv.url("/shared.bin")}); });
  std::thread tb([&] { b = run_tool("cy-llm-fetch", {"--cache-dir", cache, "--dest", (tmp.path() / "d2").string(), srv.url("/shared.bin")}); });
  ta.join();
  tb.join();
  CHECK(a.exit_code == 0);
  CHECK(b.exit_code == 0);
  CHECK(read_text(tmp.path() / "d1/shared.bin") == body);
  CHECK(read_text(tmp.path() / "d2/shared.bin") == body);
  // One full download (plus its one resume after the cut); the other process was a hit.
  int full_gets = 0;
  for (const auto& q : srv.requests()) full_gets += q.path == "/shared.bin" && q.header("range").empty();
  CHECK(full_gets == 1);
  auto ja = manifest(a), jb = manifest(b);
  CHECK((ja["artifacts"][0]["status"] == "cache_hit") != (jb["artifacts"][0]["status"] == "cache_hit"));
}

TEST_CASE("disk full (a 1 MiB tmpfs cache) fails cleanly with no partial file") {
  TempDir tmp;
  fs::create_directories(tmp.path() / "small");
  const std::string mnt = (tmp.path() / "small").string();
  // A real full filesystem where we may mount one (root / CAP_SYS_ADMIN); elsewhere a 1 MiB
  // file-size limit inherited by the tool, which makes write() fail with EFBIG instead.
  const bool mounted = ::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=1m") == 0;
  const std::string how = mounted ? "a 1 MiB tmpfs" : "RLIMIT_FSIZE = 1 MiB (no permission to mount)";
  MESSAGE("disk full simulated with " << how);
  FaultServer srv;
  Route r;
  r.body = payload(3 << 20, 3);
  srv.route("/huge", r);
  struct rlimit old_limit {};
  ::getrlimit(RLIMIT_FSIZE, &old_limit);
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);  // ignored dispositions survive exec
  if (!mounted) {
    struct rlimit small = old_limit;
    small.rlim_cur = 1 << 20;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  }
  auto run = run_tool("cy-llm-fetch", {"--cache-dir", mnt + "/cache", srv.url("/huge")});
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  ::signal(SIGXFSZ, old_handler);
  CHECK(run.exit_code == 1);
  CHECK(run.err.find("fetch.disk_full") != std::string::npos);
  std::size_t files = 0;
  for (auto& e : fs::recursive_directory_iterator(mnt + "/cache"))
    if (e.is_regular_file()) {  // not even an empty part (the lock) stays behind
      ++files;
      MESSAGE("left behind: " << e.path());
    }
  CHECK(files == 0);
  if (mounted) ::umount2(mnt.c_str(), MNT_DETACH);
}

TEST_CASE("--lock: wheels found through a PEP 503 index, verified, lock filled, installed; then offline") {
  TempDir tmp;
  FaultServer srv;
  auto whl = make_wheel(tmp.path() / "built", "demo_pkg", "1.0");
  auto dep = make_wheel(tmp.path() / "built", "demo_dep", "2.1");
  const std::string whl_bytes = read_text(whl.path), dep_bytes = read_text(dep.path);
  Route page;
  page.content_type = "text/html";
  page.body = "<html><body><a href=\"/files/" + whl.filename() + "#sha256=" + whl.sha256 + "\">" + whl.filename() +
              "</a>\n<a href=\"/files/demo_pkg-0.9-py3-none-any.whl\">demo_pkg-0.9-py3-none-any.whl</a></body></html>";
  srv.route("/simple/demo-pkg/", page);
  Route dep_page;  // PEP 691 JSON without hashes: the hash is first seen by fetch
  dep_page.content_type = "application/vnd.pypi.simple.v1+json";
  dep_page.body = R"({"meta":{"api-version":"1.0"},"name":"demo-dep","files":[{"filename":")" + dep.filename() +
                  R"(","url":"/files/)" + dep.filename() + R"(","hashes":{}}]})";
  srv.route("/simple/demo-dep/", dep_page);
  Route f1, f2;
  f1.body = whl_bytes;
  f2.body = dep_bytes;
  srv.route("/files/" + whl.filename(), f1);
  srv.route("/files/" + dep.filename(), f2);
  const std::string lock = (tmp.path() / "requirements.lock").string();
  write_file(lock, "--index-url " + srv.url("/simple") + "\ndemo_pkg==1.0 \\\n    --hash=sha256:" + whl.sha256 +
                       "\ndemo-dep==2.1\n");
  const std::string cache = (tmp.path() / "cache").string(), dest = (tmp.path() / "wh").string();
  const std::string venv = (tmp.path() / "venv").string();
  auto r = run_tool("cy-llm-fetch", {"--cache-dir", cache, "--dest", dest, "--lock", lock, "--install", venv}, "", {},
                    std::chrono::seconds(300));
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(read_text(dest + "/" + whl.filename()) == whl_bytes);
  const std::string filled = read_text(lock);
  CHECK(filled.find("--hash=sha256:" + dep.sha256) != std::string::npos);
  CHECK(filled.find("first seen by cy-llm-fetch") != std::string::npos);
  PosixCommandRunner runner;
  auto imp = runner.run({venv + "/bin/python", "-c", "import demo_pkg, demo_dep"}, std::chrono::seconds(60));
  REQUIRE(imp.ok());
  CHECK_MESSAGE(imp->exit_code == 0, imp->err);

  auto r2 = run_tool("cy-llm-fetch", {"--cache-dir", cache, "--dest", dest, "--lock", lock, "--offline"});
  CHECK_MESSAGE(r2.exit_code == 0, r2.err);
  CHECK(manifest(r2)["artifacts"][0]["status"] == "cache_hit");
  CHECK(manifest(r2)["summary"]["requests"] == 0);

  write_file(lock, "--index-url " + srv.url("/simple") + "\ndemo_pkg==1.0 --hash=sha256:" + std::string(64, 'e') + "\n");
  auto r3 = run_tool("cy-llm-fetch", {"--cache-dir", (tmp.path() / "c2").string(), "--lock", lock});
  CHECK(r3.exit_code == 1);
  CHECK(r3.err.find("fetch.bad_source") != std::string::npos);  // no file with the locked hash
}

TEST_CASE("a malicious wheel (path traversal) is refused and leaves the wheelhouse") {
  TempDir tmp;
  FaultServer srv;
  auto evil = make_wheel(tmp.path() / "built", "evil_pkg", "1.0", {"--evil", "traversal"});
  Route f;
  f.body = read_text(evil.path);
  srv.route("/" + evil.filename(), f);
  const std::string dest = (tmp.path() / "wh").string();
  auto r = run_tool("cy-llm-fetch", {"--cache-dir", (tmp.path() / "cache").string(), "--dest", dest,
                                     srv.url("/" + evil.filename())});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("fetch.bad_wheel") != std::string::npos);
  CHECK(manifest(r)["artifacts"][0]["status"] == "failed");
  CHECK_FALSE(fs::exists(dest + "/" + evil.filename()));
}

TEST_CASE("SIGINT: exit 130 and the .part stays") {
  TempDir tmp;
  FaultServer srv;
  Route r;
  r.body = payload(100000, 8);
  r.stall_ms = 4000;
  srv.route("/int", r);
  const std::string cache = (tmp.path() / "cache").string();
  pid_t pid = ::fork();
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    std::string exe = (tools_dir() / "cy-llm-fetch").string(), url = srv.url("/int");
    ::execl(exe.c_str(), exe.c_str(), "--cache-dir", cache.c_str(), url.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  ::kill(pid, SIGINT);
  int st = 0;
  ::waitpid(pid, &st, 0);
  REQUIRE(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 130);
  auto part = cache + "/partial/" + fetch::sha256_hex(srv.url("/int")) + ".part";
  REQUIRE(fs::exists(part));
  CHECK(fs::file_size(part) == 50000);
}

TEST_CASE("proxies from the environment: upper-case names work, NO_PROXY bypasses") {
  TempDir tmp;
  FaultServer proxy;  // a forward proxy sees the absolute URL as the request target
  Route r;
  r.body = "via proxy";
  proxy.route("http://files.invalid/p.bin", r);
  const std::string cache = (tmp.path() / "cache").string();
  const std::string px = "http://127.0.0.1:" + std::to_string(proxy.port());
  auto up = run_tool("cy-llm-fetch", {"--cache-dir", cache, "--retries", "1", "http://files.invalid/p.bin"}, "",
                     {"HTTP_PROXY=" + px, "http_proxy="});
  CHECK(up.exit_code == 0);
  CHECK(proxy.count("http://files.invalid/p.bin") == 1);
  auto low = run_tool("cy-llm-fetch", {"--cache-dir", (tmp.path() / "c2").string(), "--retries", "1", "http://files.invalid/p.bin"},
                      "", {"http_proxy=" + px, "HTTP_PROXY="});
  CHECK(low.exit_code == 0);
  CHECK(proxy.count("http://files.invalid/p.bin") == 2);
  auto bypass = run_tool("cy-llm-fetch", {"--cache-dir", (tmp.path() / "c3").string(), "--retries", "1",
                                          "http://files.invalid/p.bin"},
                         "", {"HTTP_PROXY=" + px, "NO_PROXY=files.invalid"});
  CHECK(bypass.exit_code == 1);  // direct: .invalid does not resolve
  CHECK(bypass.err.find("fetch.network") != std::string::npos);
  CHECK(proxy.count("http://files.invalid/p.bin") == 2);
}

TEST_CASE("hf:// through HF_ENDPOINT: token sent to the hub, commit pinned in the manifest, errors explained") {
  TempDir tmp;
  FaultServer hub;
  Route file;
  file.body = "gguf bytes";
  file.extra_headers = {"X-Repo-Commit: 4f3e2d1c0b"};
  hub.route("/org/model/resolve/main/w.gguf", file);
  Route gated;
  gated.status = 403;
  gated.extra_headers = {"X-Error-Code: GatedRepo"};
  hub.route("/org/gated/resolve/main/w.gguf", gated);
  Route missing;
  missing.status = 404;
  missing.extra_headers = {"X-Error-Code: EntryNotFound"};
  hub.route("/org/model/resolve/main/nope.gguf", missing);
  const std::string ep = "http://127.0.0.1:" + std::to_string(hub.port());
  const std::vector<std::string> env = {"HF_ENDPOINT=" + ep, "HF_TOKEN=hf_test"};
  auto r = run_tool("cy-llm-fetch", {"--cache-dir", (tmp.path() / "cache").string(), "hf://org/model/w.gguf"}, "", env);
  CHECK(r.exit_code == 0);
  auto j = manifest(r);
  CHECK(j["artifacts"][0]["hf"]["commit"] == "4f3e2d1c0b");
  CHECK(j["artifacts"][0]["hf"]["revision"] == "main");
  CHECK(hub.requests().at(0).header("authorization") == "Bearer hf_test");
  auto g = run_tool("cy-llm-fetch", {"--cache-dir", (tmp.path() / "cache").string(), "hf://org/gated/w.gguf"}, "", env);
  CHECK(g.exit_code == 1);
  CHECK(g.err.find("fetch.hub_auth") != std::string::npos);
  CHECK(g.err.find("gated") != std::string::npos);
  auto n = run_tool("cy-llm-fetch", {"--cache-dir", (tmp.path() / "cache").string(), "hf://org/model/nope.gguf"}, "", env);
  CHECK(n.exit_code == 1);
  CHECK(n.err.find("fetch.hub_not_found") != std::string::npos);
  CHECK(n.err.find("file \\\"nope.gguf\\\" does not exist in org/model") != std::string::npos);
  CHECK(manifest(n)["artifacts"][0]["error"]["code"] == "fetch.hub_not_found");
}

TEST_CASE("seed flow on loopback: detect | resolve --lock | fetch --plan - --lock --dest --install | import") {
  TempDir tmp;
  FaultServer srv;
  const fs::path built = tmp.path() / "built";
  auto engine = make_wheel(built, "toyengine", "1.2.0", {}, {"toyproto>=6"});
  auto proto5 = make_wheel(built, "toyproto", "5.29.3");
  auto proto6 = make_wheel(built, "toyproto", "6.31.1");
  auto worker = make_wheel(built, "toyworker", "0.3.0");
  for (const auto& w : {engine, proto5, proto6, worker}) {
    Route r;
    r.body = read_text(w.path);
    srv.route("/wheels/" + w.filename(), r);
  }
  PosixCommandRunner runner;
  auto pyver = runner.run({"/usr/bin/env", "python3", "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"},
                          std::chrono::seconds(60));
  REQUIRE(pyver.ok());
  const std::string python = pyver->out.substr(0, pyver->out.find('\n'));
  auto entry = [&](const std::string& key, const BuiltWheel& b, bool with_hash) {
    return "  " + key + ":\n    url: " + srv.url("/wheels/" + b.filename()) + "\n" +
           (with_hash ? "    sha256: " + b.sha256 + "\n" : "");
  };
  write_file(tmp.path() / "registry.yaml",
             "schema_version: 1\nhardware_profiles:\n  any_cpu:\n    architectures: [x86_64, aarch64]\n"
             "engines:\n  toyengine:\n    kind: python\n    tradeoff: test engine\n    versions: [\"1.2.0\"]\n"
             "    default_version: \"1.2.0\"\nwheels:\n" +
                 entry("toyengine-1.2.0", engine, true) + entry("toyproto-5", proto5, true) +
                 entry("toyproto-6", proto6, true) + entry("toyworker-0.3.0", worker, false) +
                 "compatibility_matrix:\n  - hardware: any_cpu\n    engine: toyengine\n    engine_versions: \"==1.2.0\"\n"
                 "    requirements: [{wheel: toyengine-1.2.0}, {wheel: toyproto-6}]\n    verified: true\n"
                 "base_environment:\n  requirements: [{wheel: toyworker-0.3.0}, {wheel: toyproto-5}]\n");
  auto detect = run_tool("cy-llm-detect", {"--root", (fixtures_dir() / "roots/cpu-cgroup2").string()});
  REQUIRE_MESSAGE(detect.exit_code == 0, detect.err);
  const std::string lock = (tmp.path() / "requirements.lock").string();
  auto resolve = run_tool("cy-llm-resolve", {"--registry", (tmp.path() / "registry.yaml").string(), "--python", python,
                                             "--lock", lock, "--yes"},
                          detect.out);
  REQUIRE_MESSAGE(resolve.exit_code == 0, resolve.err);
  const std::string wh = (tmp.path() / "wheelhouse").string(), venvs = (tmp.path() / "venvs").string();
  auto fetch = run_tool("cy-llm-fetch", {"--cache-dir", (tmp.path() / "cache").string(), "--plan", "-", "--lock", lock,
                                         "--dest", wh, "--install", venvs},
                        resolve.out, {}, std::chrono::seconds(400));
  REQUIRE_MESSAGE(fetch.exit_code == 0, fetch.err);
  auto j = manifest(fetch);
  CHECK(j["artifacts"].size() == 4);
  for (const auto& a : j["artifacts"]) CHECK(a["status"] == "downloaded");
  CHECK(read_text(lock.substr(0, lock.size() - 5) + ".base.lock").find("first seen by cy-llm-fetch") != std::string::npos);
  std::map<std::string, std::string> checks = {
      {"engine", "import toyengine, toyproto; assert toyproto.__version__ == '6.31.1', toyproto.__version__"},
      {"base", "import toyworker, toyproto; assert toyproto.__version__ == '5.29.3', toyproto.__version__"}};
  for (const auto& check : checks) {
    const std::string& env = check.first;  // not structured bindings: clang 14 cannot capture those
    const std::string& code = check.second;
    CAPTURE(env);
    auto imp = runner.run({venvs + "/" + env + "/bin/python", "-c", code}, std::chrono::seconds(60));
    REQUIRE(imp.ok());
    CHECK_MESSAGE(imp->exit_code == 0, imp->err);
  }
}

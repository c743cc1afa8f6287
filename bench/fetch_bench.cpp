// fetch_bench: cy-llm-fetch against curl on a loopback nginx, in the same run.
//   build/bench/fetch_bench build/tools/cy-llm-fetch [large_mib=1024] [n_small=200]
// Serves one large file (sparse: all zeros, so the disk is not the bottleneck on the
// server side) and n_small 64 KiB files, then times
//   large: `curl -o` vs `cy-llm-fetch` (which also hashes, verifies and renames)
//   many:  one sequential curl process over all URLs (keep-alive) vs `cy-llm-fetch -j 8`,
//          and `curl --parallel --parallel-max 8` as a second anchor
// and prints the throughput and our ratio to curl (> 1 means faster than curl), best of
// three runs each (nine for the many files: a run of them lasts 0.1 s, and the speed of
// a small VM drifts by a quarter between runs), the tools taking turns, each run after a
// sync(). The same runs with `--fsync` are printed too: curl never syncs, so those lines
// show what durability against power loss costs, not a like-for-like ratio.
// nginx's config is the one the tests use, with Debian's `sendfile on; tcp_nopush on`: on
// loopback it holds the last segment of some responses until the client ACKs, which a
// client that does not ACK at once (curl --parallel) waits up to 40 ms for.
// Every run of the many files writes into directories of its own, and nothing is deleted
// until the last run: on ext4 without a journal, creating a file within a minute of
// deletions makes the inode allocator step over the recently deleted inodes
// (recently_deleted() in fs/ext4/ialloc.c), so deleting one run's 200 files between runs
// charged the next run for them (16-28% of a run's samples in profiles of either tool).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "http_servers.h"

namespace fs = std::filesystem;

namespace {

// Runs argv to completion and returns its wall time. The page cache's dirty data is
// written back first, so that no run pays for the writeback of the one before it.
double run(const std::vector<std::string>& argv) {
  ::sync();
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    ::execvp(a[0], a.data());
    ::_exit(127);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    std::fprintf(stderr, "fetch_bench: %s failed (status %d)\n", argv[0].c_str(), st);
    std::exit(1);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: fetch_bench PATH/cy-llm-fetch [large_mib] [n_small]\n");
    return 2;
  }
  const std::string tool = fs::absolute(argv[1]).string();
  const std::uint64_t large_mib = argc > 2 ? std::stoull(argv[2]) : 1024;
  const int n_small = argc > 3 ? std::stoi(argv[3]) : 200;
  char tmpl[] = "/tmp/cyllm-fetch-bench-XXXXXX";
  const fs::path root = ::mkdtemp(tmpl);
  fs::create_directories(root / "www/small");
  {
    int fd = ::open((root / "www/large.bin").c_str(), O_WRONLY | O_CREAT, 0644);
    if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(large_mib << 20)) != 0) return 1;
    ::close(fd);
  }
  std::string blob(64 << 10, '\0');
  std::uint32_t x = 1;
  std::vector<std::string> small_urls;
  cyllm::test::NginxServer nginx(root / "nginx", root / "www");
  if (!nginx.running()) {
    std::fprintf(stderr, "fetch_bench: nginx did not start (see %s/nginx/logs)\n", root.c_str());
    return 1;
  }
  for (int i = 0; i < n_small; ++i) {
    for (auto& c : blob) c = static_cast<char>((x = x * 1103515245u + 12345u) >> 24);
    std::FILE* f = std::fopen((root / ("www/small/f" + std::to_string(i) + ".bin")).c_str(), "wb");
    std::fwrite(blob.data(), 1, blob.size(), f);
    std::fclose(f);
    small_urls.push_back(nginx.url("/small/f" + std::to_string(i) + ".bin"));
  }
  const std::string large_url = nginx.url("/large.bin");
  const double large_bytes = static_cast<double>(large_mib << 20), small_bytes = static_cast<double>(n_small) * blob.size();

  // Warm the page cache on the server side once.
  run({"curl", "-s", "-o", "/dev/null", large_url});

  // curl and cy-llm-fetch take turns, best of three each, so that a drift of the
  // machine's speed during the run affects both alike.
  double best_curl = 1e9, best_ours[2] = {1e9, 1e9};
  for (int rep = 0; rep < 3; ++rep) {
    fs::remove_all(root / "out");
    fs::create_directories(root / "out");
    best_curl = std::min(best_curl, run({"curl", "-s", "-f", "-o", (root / "out/curl-large.bin").string(), large_url}));
    fs::remove_all(root / "out");
    for (bool fsync : {false, true}) {
      fs::remove_all(root / "out/ours");
      fs::remove_all(root / "cache");
      std::vector<std::string> args = {tool, "--progress", "none", "-q", "--cache-dir", (root / "cache").string(),
                                       "--dest", (root / "out/ours").string(), large_url};
      if (fsync) args.push_back("--fsync");
      best_ours[fsync] = std::min(best_ours[fsync], run(args));
    }
  }
  for (bool fsync : {false, true})
    std::printf("large file (%llu MiB): curl %.2f s (%.0f MiB/s), cy-llm-fetch%s %.2f s (%.0f MiB/s), ratio %.2fx\n",
                static_cast<unsigned long long>(large_mib), best_curl, large_bytes / best_curl / 1048576,
                fsync ? " --fsync" : "", best_ours[fsync], large_bytes / best_ours[fsync] / 1048576,
                best_curl / best_ours[fsync]);
  fs::remove_all(root / "out");
  fs::remove_all(root / "cache");
  fs::create_directories(root / "out");

  std::vector<std::string> curl_many = {"curl", "-s", "-f"};
  for (int i = 0; i < n_small; ++i) {
    curl_many.push_back("-o");
    curl_many.push_back((root / ("out/curl-small/f" + std::to_string(i))).string());
    curl_many.push_back(small_urls[static_cast<std::size_t>(i)]);
  }
  curl_many.push_back("--create-dirs");
  double c_many = 1e9, p_many = 1e9, o_many[2] = {1e9, 1e9};
  for (int rep = 0; rep < 9; ++rep) {
    const std::string r = std::to_string(rep);
    std::vector<std::string> curl_rep = curl_many;
    for (std::string& a : curl_rep)
      if (a.rfind((root / "out/curl-small/").string(), 0) == 0) a.insert((root / "out/curl-small").string().size(), r);
    c_many = std::min(c_many, run(curl_rep));
    std::vector<std::string> par_rep = curl_rep;
    for (std::string& a : par_rep)
      if (a.rfind((root / "out/curl-small").string(), 0) == 0) a.replace(0, (root / "out/curl-small").string().size(), (root / "out/curl-par").string());
    par_rep.insert(par_rep.begin() + 1, {"--parallel", "--parallel-max", "8"});
    p_many = std::min(p_many, run(par_rep));
    for (bool fsync : {false, true}) {
      const std::string tag = r + (fsync ? "-fsync" : "");
      std::vector<std::string> ours_many = {tool, "--progress", "none", "-q", "-j", "8", "--cache-dir",
                                            (root / ("cache-small" + tag)).string(), "--dest",
                                            (root / ("out/ours-small" + tag)).string()};
      if (fsync) ours_many.push_back("--fsync");
      ours_many.insert(ours_many.end(), small_urls.begin(), small_urls.end());
      o_many[fsync] = std::min(o_many[fsync], run(ours_many));
    }
  }
  std::printf("%d x 64 KiB files: curl --parallel-max 8 %.3f s (%.0f MiB/s), cy-llm-fetch -j 8 %.3f s, ratio %.2fx\n",
              n_small, p_many, small_bytes / p_many / 1048576, o_many[0], p_many / o_many[0]);
  for (bool fsync : {false, true})
    std::printf("%d x 64 KiB files: sequential curl %.3f s (%.0f MiB/s), cy-llm-fetch -j 8%s %.3f s (%.0f MiB/s), ratio %.2fx\n",
                n_small, c_many, small_bytes / c_many / 1048576, fsync ? " --fsync" : "", o_many[fsync],
                small_bytes / o_many[fsync] / 1048576, c_many / o_many[fsync]);
  fs::remove_all(root);
  return 0;
}

// A Session whose KV cache cannot be allocated reports engine.out_of_memory and leaves the
// process usable. Runs in a forked child under a lowered RLIMIT_AS.
#include <doctest/doctest.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>

#include "cyllm/model.h"
#include "test_support.h"
#include "tiny_model.h"

#if defined(__SANITIZE_ADDRESS__)
#define CYLLM_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CYLLM_TEST_ASAN 1
#endif
#endif

#ifdef CYLLM_TEST_ASAN
// ASan aborts on a failed malloc unless told to return null as libc does.
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }
#endif

using cyllm::Errc;
using cyllm::model::Model;
using cyllm::model::Session;

namespace {

// Child exit codes.
enum : int { kOk = 0, kBigSessionCreated = 10, kWrongError = 11, kSmallSessionFailed = 12, kEvalFailed = 13,
             kRlimitFailed = 14 };

#ifndef CYLLM_TEST_ASAN
// Current address-space size of this process in bytes (VmSize), 0 when unknown.
std::uint64_t address_space_bytes() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmSize:") {
      std::uint64_t kib = 0;
      in >> kib;
      return kib * 1024;
    }
    in.ignore(1 << 16, '\n');
  }
  return 0;
}
#endif

int child(std::shared_ptr<const Model> model) {
#ifdef CYLLM_TEST_ASAN
  // ASan reserves terabytes of shadow address space, so RLIMIT_AS cannot be lowered
  // under it; a request past its largest allocation fails the same way instead.
  const std::uint32_t huge_ctx = 0xffffffffu;  // 2 TiB per cache with kv_dim 64
#else
  const rlim_t limit = address_space_bytes() + (rlim_t{512} << 20);
  struct rlimit rl = {limit, limit};
  if (setrlimit(RLIMIT_AS, &rl) != 0) return kRlimitFailed;
  const std::uint32_t huge_ctx = 1u << 24;  // 4 GiB per cache with kv_dim 64
#endif
  auto big = Session::create(model, {huge_ctx, 2});
  if (big.ok()) return kBigSessionCreated;
  if (big.error().code() != Errc::OutOfMemory || big.error().id() != "engine.out_of_memory") return kWrongError;
  auto small = Session::create(model, {32, 2});
  if (!small.ok()) return kSmallSessionFailed;
  const std::int32_t tokens[] = {1, 50, 60};
  if (!(*small)->eval(tokens).ok() || (*small)->n_past() != 3) return kEvalFailed;
  return kOk;
}

}  // namespace

TEST_CASE("a session too large for memory is engine.out_of_memory, and a smaller one works") {
  cyllm::test::TempDir dir;
  cyllm::test::TinySpec spec;
  spec.n_head_kv = 4;  // kv_dim 64
  const std::string path = (dir.path() / "m.gguf").string();
  REQUIRE(cyllm::test::make_tiny_model(spec).write(path).ok());
  auto model = Model::load(path);
  REQUIRE_MESSAGE(model.ok(), model.error().to_string());
  CHECK((*model)->kv_bytes_per_token() == 2u * 2 * 64 * 4);

  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) _exit(child(*model));
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE_MESSAGE(WIFEXITED(status), "child died with signal " << WTERMSIG(status));
  CHECK(WEXITSTATUS(status) == kOk);

  // The parent can still create sessions too.
  auto s = Session::create(*model, {16, 1});
  CHECK(s.ok());
}

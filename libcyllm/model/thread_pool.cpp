// ThreadPool: persistent workers that split a loop's chunks between them.
//
// A job is published by bumping a generation counter; workers spin briefly on it (the
// projections of one token follow each other within microseconds) and then sleep on it
// (std::atomic::wait, a futex), so an idle pool costs no CPU. Chunks are handed out by an
// atomic counter, so a worker slowed by another process does not hold the others back.
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cyllm/model.h"
#include "detect/cgroup.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CYLLM_PAUSE() _mm_pause()
#else
#define CYLLM_PAUSE() std::this_thread::yield()
#endif

namespace cyllm::model {
namespace {

std::string read_small(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<int> affinity_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

// Spins of a waiting worker before it sleeps (a pause is ~10-140 cycles): tens of
// microseconds, longer than the gap between two projections of one token.
constexpr int kSpins = 10000;

class PoolImpl final : public ThreadPool {
 public:
  explicit PoolImpl(unsigned n, bool pin) : n_(n) {
    std::vector<int> cpus = pin ? affinity_cpus() : std::vector<int>{};
    threads_.reserve(n - 1);
    for (unsigned i = 1; i < n; ++i) {
      threads_.emplace_back([this, i] { loop(i); });
      if (!cpus.empty()) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpus[i % cpus.size()], &set);
        pthread_setaffinity_np(threads_.back().native_handle(), sizeof set, &set);
      }
    }
  }
  ~PoolImpl() override {
    stop_.store(true, std::memory_order_release);
    gen_.fetch_add(1, std::memory_order_release);
    gen_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  unsigned size() const override { return n_; }

  void parallel_for(std::size_t n, std::size_t grain, const Fn& fn) override {
    if (n == 0) return;
    grain = std::max<std::size_t>(grain, 1);
    const std::size_t chunks = (n + grain - 1) / grain;
    if (n_ == 1 || chunks == 1 || chunks >= (std::size_t{1} << 31)) {
      for (std::size_t b = 0; b < n; b += grain) fn(0, b, std::min(n, b + grain));
      return;
    }
    std::lock_guard<std::mutex> lock(run_mu_);
    // Publish the job as a seqlock: close the counter, write the fields, open it with the
    // new id. A worker that read torn fields finds the counter closed or re-opened under
    // another id and claims nothing.
    const std::uint32_t id = ++job_id_ == 0 ? ++job_id_ : job_id_;
    counter_.store(0, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    fn_.store(&fn, std::memory_order_relaxed);
    n_items_.store(n, std::memory_order_relaxed);
    grain_.store(grain, std::memory_order_relaxed);
    n_chunks_.store(chunks, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    counter_.store(std::uint64_t{id} << 32, std::memory_order_release);
    gen_.store(id, std::memory_order_release);
    gen_.notify_all();
    work(0, id);
    // Wait for chunks, not for workers: a worker the OS has not scheduled yet claims
    // nothing, and the caller runs its share instead.
    for (int spins = 0; done_.load(std::memory_order_acquire) != chunks; ++spins) {
      if (spins < kSpins) CYLLM_PAUSE();
      else std::this_thread::yield();
    }
  }

 private:
  // Claims and runs chunks of job `id` until none is left (or the job is another one).
  void work(unsigned worker, std::uint32_t id) {
    const Fn* fn = fn_.load(std::memory_order_relaxed);
    const std::size_t n = n_items_.load(std::memory_order_relaxed);
    const std::size_t grain = grain_.load(std::memory_order_relaxed);
    const std::size_t chunks = n_chunks_.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    std::uint64_t v = counter_.load(std::memory_order_acquire);
    for (;;) {
      if ((v >> 32) != id || (v & 0xffffffffu) >= chunks) return;
      if (!counter_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      const std::size_t b = (v & 0xffffffffu) * grain;
      (*fn)(worker, b, std::min(n, b + grain));
      done_.fetch_add(1, std::memory_order_acq_rel);
      v = counter_.load(std::memory_order_acquire);
    }
  }

  void loop(unsigned worker) {
    std::uint32_t seen = 0;
    for (;;) {
      std::uint32_t g = gen_.load(std::memory_order_acquire);
      for (int i = 0; g == seen && i < kSpins; ++i) {
        CYLLM_PAUSE();
        g = gen_.load(std::memory_order_acquire);
      }
      while (g == seen) {
        gen_.wait(seen, std::memory_order_acquire);
        g = gen_.load(std::memory_order_acquire);
      }
      seen = g;
      if (stop_.load(std::memory_order_acquire)) return;
      work(worker, g);
    }
  }

  unsigned n_;
  std::vector<std::thread> threads_;
  std::mutex run_mu_;  // one job at a time
  std::uint32_t job_id_ = 0;  // guarded by run_mu_; never 0 for a job
  std::atomic<const Fn*> fn_{nullptr};
  std::atomic<std::size_t> n_items_{0}, grain_{1}, n_chunks_{0};
  std::atomic<std::uint64_t> counter_{0};  // job id << 32 | next chunk; id 0: closed
  std::atomic<std::size_t> done_{0};       // chunks finished
  std::atomic<std::uint32_t> gen_{0};      // the last job's id, or a bump to stop
  std::atomic<bool> stop_{false};
};

}  // namespace

unsigned effective_cpu_count() {
  std::size_t n = affinity_cpus().size();
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  // cgroup v2 cpu.max of this process's group and its ancestors: the smallest quota wins.
  auto membership = detect::parse_proc_self_cgroup(read_small("/proc/self/cgroup"));
  if (membership.ok() && !membership->v2_path.empty()) {
    std::string path = membership->v2_path;
    for (;;) {
      auto quota = detect::parse_cpu_max(read_small("/sys/fs/cgroup" + (path == "/" ? "" : path) + "/cpu.max"));
      if (quota.ok() && quota->has_value() && **quota > 0)
        n = std::min<std::size_t>(n, static_cast<std::size_t>(std::max(1.0, std::ceil(**quota - 1e-9))));
      if (path.empty() || path == "/") break;
      const std::size_t slash = path.rfind('/');
      path = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
    }
  }
  return static_cast<unsigned>(std::clamp<std::size_t>(n, 1, 1024));
}

Result<std::shared_ptr<ThreadPool>> ThreadPool::create(const ThreadPoolOptions& opts) {
  const unsigned n = std::clamp(opts.n_threads ? opts.n_threads : effective_cpu_count(), 1u, 1024u);
  try {
    return std::shared_ptr<ThreadPool>(std::make_shared<PoolImpl>(n, opts.pin));
  } catch (const std::system_error& e) {
    return Error(Errc::OutOfMemory, std::string("cannot start the thread pool's threads: ") + e.what());
  } catch (const std::bad_alloc&) {
    return Error(Errc::OutOfMemory, "out of memory starting the thread pool");
  }
}

}  // namespace cyllm::model

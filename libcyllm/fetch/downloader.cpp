// download_all: the per-artifact state machine on top of HttpClient and Cache.
//
//   Pending --cache hit--> Done
//      | lock busy (another job or process) -> WaitLock (retried every 100 ms; on getting it,
//      | the cache is checked again, so the second process finds the first one's blob)
//      v
//   Running --3xx--> Running (next hop; credentials only while on the first host)
//      |  --429/5xx, connection error, stall, short body--> Backoff --> Running (resume)
//      |  --200/206 complete--> verify size + SHA-256 -> fsync -> rename into blobs/ -> Done
//      v
//   Done with an error (4xx, TLS, hash/size mismatch, disk full, retries exhausted, cancel)
//
// A response body reaches the .part file only after its status was accepted (200, or a
// 206 whose Content-Range starts at the local size), so an error page never lands there.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "cyllm/fetch.h"
#include "fetch/buffer_pool.h"
#include "util/strings.h"

namespace cyllm::fetch {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using util::quote;

// SHA-256, looked up once per run: EVP_sha256() makes every digest init look the
// algorithm up in the provider again (about fifteen allocations each, two per downloaded
// file). hex() is sha256_hex() with this handle.
struct Sha256 {
  EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  Sha256() = default;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  ~Sha256() { EVP_MD_free(md); }
  const EVP_MD* get() const { return md ? md : EVP_sha256(); }
  std::string hex(std::string_view data) const {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_Digest(data.data(), data.size(), out, &n, get(), nullptr);
    return util::hex_lower(out, n);
  }
};

// Feeds the first `len` bytes of a file to a digest. False on a read error.
bool hash_file_prefix(EVP_MD_CTX* md, const std::string& path, std::uint64_t len) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::vector<char> buf(1 << 20);
  std::uint64_t left = len;
  bool ok = true;
  while (left > 0) {
    ssize_t n = ::read(fd, buf.data(), std::min<std::uint64_t>(left, buf.size()));
    if (n <= 0) {
      ok = false;
      break;
    }
    EVP_DigestUpdate(md, buf.data(), static_cast<std::size_t>(n));
    left -= static_cast<std::uint64_t>(n);
  }
  ::close(fd);
  return ok;
}

std::optional<std::uint64_t> file_size(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return static_cast<std::uint64_t>(st.st_size);
}

std::optional<std::uint64_t> fd_size(int fd) {
  struct stat st{};
  if (fd < 0 || ::fstat(fd, &st) != 0) return std::nullopt;
  return static_cast<std::uint64_t>(st.st_size);
}

bool is_disk_full(int e) { return e == ENOSPC || e == EDQUOT || e == EFBIG; }

Error write_error(int e, const std::string& part) {
  return is_disk_full(e) ? Error(Errc::DiskFull, "no space left on the device writing " + quote(part))
                         : Error(Errc::Io, "cannot write " + quote(part) + ": " + std::strerror(e));
}

// Writes all of `data` at `pos`; 0, or the errno of the failure (ENOSPC for a write of 0).
int pwrite_all(int fd, std::string_view data, std::uint64_t pos) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(pos));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : ENOSPC;
    data.remove_prefix(static_cast<std::size_t>(n));
    pos += static_cast<std::uint64_t>(n);
  }
  return 0;
}


std::string read_small(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return "";
  char buf[1024];
  std::size_t n = std::fread(buf, 1, sizeof buf, f);
  std::fclose(f);
  return std::string(util::trim(std::string_view(buf, n)));
}

void write_small(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return;
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
}

// Places the blob at dest/filename: a hard link when the filesystem allows, else a copy;
// through a temporary name and a rename, so dest/filename is never half there.
Result<std::string> place(const std::string& blob, const std::string& dest_dir, const std::string& filename) {
  std::error_code ec;
  std::string target = dest_dir + "/" + filename;
  // Common case: nothing there yet, and link() makes the complete file appear at once
  // (dest_dir is created by the first file that finds it missing).
  if (::link(blob.c_str(), target.c_str()) == 0) return target;
  if (errno == ENOENT) {
    fs::create_directories(dest_dir, ec);
    if (ec) return Error(Errc::Io, "cannot create " + quote(dest_dir) + ": " + ec.message());
    if (::link(blob.c_str(), target.c_str()) == 0) return target;
  }
  struct stat a{}, b{};
  if (errno == EEXIST && ::stat(blob.c_str(), &a) == 0 && ::stat(target.c_str(), &b) == 0 && a.st_ino == b.st_ino &&
      a.st_dev == b.st_dev)
    return target;  // already this blob
  std::string tmp = dest_dir + "/." + filename + ".tmp." + std::to_string(::getpid());
  ::unlink(tmp.c_str());
  if (::link(blob.c_str(), tmp.c_str()) != 0) {
    fs::copy_file(blob, tmp, fs::copy_options::overwrite_existing, ec);
    if (ec) {
      ::unlink(tmp.c_str());
      if (is_disk_full(ec.value())) return Error(Errc::DiskFull, "no space left copying to " + quote(target));
      return Error(Errc::Io, "cannot copy the blob to " + quote(target) + ": " + ec.message());
    }
    ::chmod(tmp.c_str(), 0644);
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return Error(Errc::Io, "cannot rename into " + quote(target) + ": " + std::strerror(e));
  }
  return target;
}

// Finishes downloaded files off the event loop: a task writes the last buffered bytes,
// completes the SHA-256 and verifies it (and with --fsync makes the part durable); then
// publish_batch() records the files of a batch in the index, renames them into blobs/ and
// links them into dest. The event loop only releases the locks (collect_finished).
//   * Without --fsync: one thread, handed tasks in batches (kick). A small file's hash,
//     write, rename and link are about a third of its cost on the event loop. Measured on
//     2 vCPUs, 200 x 64 KiB from a loopback nginx, ten runs each taking turns: the median
//     was 3-9% lower than with everything on the event loop in three sets of runs, at the
//     price of more CPU in all (the thread's renames out of partial/ contend with the
//     event loop's creations in it for the directory's lock). Waking the thread for each
//     file cost more than it moved (the idle vCPU of a VM is woken with an interrupt).
//     Taking the parts' locks on that thread too (no contention) lowered the event loop's
//     CPU by a fifth without moving the wall time, so the locks stay on the event loop.
//   * With --fsync: eight threads, one task each, so that the fsyncs of many small files
//     share journal commits instead of queueing one after another.
//   * n_threads = 0 (not used by download_all, kept for tests of the protocol): tasks run
//     on the event loop and a pass's files are published together in take().
class Finisher {
 public:
  struct Outcome {
    std::size_t job = 0;
    std::optional<Error> error;
    IndexEntry entry;    // to record, then the part is renamed to its blob
    std::string part, etag_file, path, warning;  // path: the blob, or its link in dest
    int part_fd = -1;    // the job's lock, released by the event loop afterwards
  };
  // Records and moves into place the files of a batch of outcomes (publish_batch below).
  using Publish = std::function<void(std::vector<Outcome>&)>;
  Finisher(std::size_t n_threads, Publish publish) : publish_(std::move(publish)), n_threads_(n_threads) {
    for (std::size_t i = 0; i < n_threads; ++i) threads_.emplace_back([this] { work(); });
  }
  ~Finisher() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void submit(std::function<Outcome()> task) {
    if (threads_.empty()) {  // published by take(), with the others of this pass
      Outcome o = task();
      std::lock_guard<std::mutex> g(mu_);
      unpublished_.push_back(std::move(o));
      ++pending_;
      return;
    }
    std::lock_guard<std::mutex> g(mu_);
    queue_.push_back(std::move(task));
    ++pending_;
  }
  // Wakes an idle thread when at least `min_batch` tasks wait; submit() wakes none. Waking
  // the thread for every file cost more CPU than the work it moved (the idle CPU of a VM
  // is woken with an interrupt), so tasks are handed over in small batches.
  void kick(std::size_t min_batch) {
    std::size_t waiting = 0;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (sleeping_ == 0 || queue_.size() < std::max<std::size_t>(1, min_batch)) return;
      waiting = queue_.size();
    }
    if (waiting > 1) cv_.notify_all();
    else cv_.notify_one();
  }
  std::vector<Outcome> take() {
    std::vector<Outcome> batch;
    {
      std::lock_guard<std::mutex> g(mu_);
      batch.swap(unpublished_);
    }
    if (!batch.empty()) publish_(batch);
    std::lock_guard<std::mutex> g(mu_);
    for (auto& o : done_) batch.push_back(std::move(o));
    done_.clear();
    pending_ -= batch.size();
    return batch;
  }
  std::size_t pending() {
    std::lock_guard<std::mutex> g(mu_);
    return pending_;
  }
  // Runs a waiting task on the calling thread and publishes it; false when none waits. The
  // event loop helps when it has no transfer left: the last files of a run were otherwise
  // finished by one thread while the other waited for it.
  bool help() {
    std::function<Outcome()> task;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (threads_.empty() || queue_.empty()) return false;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    std::vector<Outcome> one;
    one.push_back(task());
    publish_(one);
    std::lock_guard<std::mutex> g(mu_);
    done_.push_back(std::move(one.front()));
    return true;
  }
  // Waits until a task's outcome is ready for take(), or `timeout` passes (the event loop
  // with no transfer left: woken by the finisher, not by a timer).
  void wait_done(milliseconds timeout) {
    std::unique_lock<std::mutex> g(mu_);
    if (threads_.empty()) return;
    done_cv_.wait_for(g, timeout, [this] { return !done_.empty() || pending_ == 0; });
  }

 private:
  void work() {
    std::unique_lock<std::mutex> g(mu_);
    for (;;) {
      while (!stop_ && queue_.empty()) {
        ++sleeping_;
        cv_.wait(g);
        --sleeping_;
      }
      if (queue_.empty()) return;
      // One thread runs the waiting tasks one at a time (help() may take some meanwhile)
      // and publishes them together once none waits; several (--fsync) take one each, so
      // that their fsyncs overlap.
      std::vector<Outcome> batch;
      do {
        auto task = std::move(queue_.front());
        queue_.pop_front();
        g.unlock();
        batch.push_back(task());
        g.lock();
      } while (n_threads_ == 1 && !queue_.empty() && batch.size() < 16);
      g.unlock();
      publish_(batch);
      g.lock();
      for (auto& o : batch) done_.push_back(std::move(o));
      done_cv_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;  // work to do; outcomes to take
  std::deque<std::function<Outcome()>> queue_;
  std::vector<Outcome> done_, unpublished_;
  Publish publish_;
  const std::size_t n_threads_;  // threads_.size(), which work() must not read while threads start
  std::size_t pending_ = 0;
  std::size_t sleeping_ = 0;  // threads waiting for work
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// Drops a part's bytes. While its job holds the part as its lock (lock_fd), the file is
// emptied in place (a retry writes it again; unlock_part deletes it if it stays empty), so
// the locked inode and the path stay one file; without the lock it is deleted. The ETag
// sidecar goes too ("" when there is none).
void drop_part(int lock_fd, const std::string& part, const std::string& etag_file) {
  if (lock_fd < 0 || ::ftruncate(lock_fd, 0) != 0) ::unlink(part.c_str());
  if (!etag_file.empty()) ::unlink(etag_file.c_str());
}

// Makes a batch of verified parts visible: their index entries in one append, then each
// part renamed to its blob and linked into dest. Entry before rename: a process that takes
// a part's name after the rename (or that waited for its lock) finds the entry when it
// reads the index. Runs on a finisher thread or on the event loop; touches no Job.
void publish_batch(const Cache& cache, const std::string& dest, std::vector<Finisher::Outcome>& batch) {
  std::vector<IndexEntry> entries;
  for (const auto& o : batch)
    if (!o.error) entries.push_back(o.entry);
  if (entries.empty()) return;
  if (auto r = cache.record(entries); !r.ok()) batch.front().warning = "cannot write the cache index: " + r.error().to_string();
  for (auto& o : batch) {
    if (o.error) continue;
    const std::string blob = cache.blob_path(o.entry.sha256);
    if (::rename(o.part.c_str(), blob.c_str()) != 0) {
      int e = errno;
      drop_part(o.part_fd, o.part, o.etag_file);
      o.error = Error(Errc::Io, "cannot move " + quote(o.part) + " to " + quote(blob) + ": " + std::strerror(e));
      continue;
    }
    if (!o.etag_file.empty()) ::unlink(o.etag_file.c_str());
    // The directory is not fsynced per file: after a crash a rename may be lost, which is
    // a cache miss. With --fsync a blob name never points at unsynced bytes; without it a
    // power loss may leave a short blob, which the size check of lookups refuses.
    o.path = blob;
    if (!dest.empty()) {
      auto placed = place(blob, dest, o.entry.filename);
      if (!placed) o.error = std::move(placed).error();  // the blob stays cached and indexed
      else o.path = *placed;
    }
  }
}

// SHA-256 of large bodies on a thread of its own, so that hashing (about 2 GB/s here)
// overlaps receiving and writing instead of adding to them: a 1 GiB download went from
// 0.86x to about curl's speed on 2 cores. Chunks of one digest are hashed in the order
// given; sync() waits for a digest's chunks before it is read or freed. At most kDepth
// chunks wait, so a slow hash slows the download rather than filling memory.
class HashWorker {
 public:
  explicit HashWorker(BufferPool& pool) : pool_(pool), thread_([this] { work(); }) {}
  ~HashWorker() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();  // hashes what was queued first: the digests stay consistent
  }
  void submit(EVP_MD_CTX* md, std::string&& chunk) {
    std::unique_lock<std::mutex> g(mu_);
    cv_.wait(g, [this] { return queue_.size() < kDepth; });
    queue_.push_back({md, std::move(chunk)});
    cv_.notify_all();
  }
  void sync(EVP_MD_CTX* md) {
    std::unique_lock<std::mutex> g(mu_);
    cv_.wait(g, [&] {
      if (busy_ == md) return false;
      for (const auto& t : queue_)
        if (t.md == md) return false;
      return true;
    });
  }
 private:
  static constexpr std::size_t kDepth = 8;
  struct Task {
    EVP_MD_CTX* md;
    std::string chunk;
  };
  void work() {
    std::unique_lock<std::mutex> g(mu_);
    for (;;) {
      cv_.wait(g, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      Task t = std::move(queue_.front());
      queue_.pop_front();
      busy_ = t.md;
      g.unlock();
      EVP_DigestUpdate(t.md, t.chunk.data(), t.chunk.size());
      pool_.give(std::move(t.chunk));
      g.lock();
      busy_ = nullptr;
      cv_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  BufferPool& pool_;  // where hashed chunks go back
  std::deque<Task> queue_;
  EVP_MD_CTX* busy_ = nullptr;
  bool stop_ = false;
  std::thread thread_;
};

struct Job {
  enum class State { Pending, WaitLock, Running, Backoff, Finalizing, Done };
  enum class Verdict { None, Body, Redirect, Restart, CompleteFromPart, Fail };

  std::size_t id = 0;
  ArtifactResult res;
  State state = State::Pending;
  std::string key, part, etag_file;
  int lock_fd = -1;
  std::string url;
  int attempts = 0, hops = 0;
  Clock::time_point not_before{};
  bool linked_etag = false;
  bool sidecar = false;   // the .etag file next to the part may exist (unlink it when done)
  std::string validator;  // the ETag of this run's 200 response, for If-Range on a retry
  bool progress_started = false;

  // One request.
  Verdict verdict = Verdict::None;
  HttpResponseHead head;
  int fd = -1;  // the part while a body is written to it: lock_fd itself, never closed on its own
  EVP_MD_CTX* md = nullptr;
  std::uint64_t offset = 0, received = 0, writeback_from = 0;
  std::uint64_t write_pos = 0;     // where the next pwrite() goes
  std::optional<std::uint64_t> locked_size;  // the part's size, from taking the lock
  std::optional<std::uint64_t> total;
  std::optional<Error> write_error;
  std::optional<milliseconds> retry_after;
  std::string wbuf;  // received bytes not yet written to the part (libcurl hands over 16 KiB at a time)
  bool direct = false;  // no write buffer: the body is written and hashed as it arrives

  ~Job() {
    if (md) EVP_MD_CTX_free(md);
    if (lock_fd >= 0) ::close(lock_fd);
  }
};

constexpr std::size_t kWriteBuffer = 1u << 20;
// Write buffers out at most, past -j (a run's first files are written before the finisher
// hands any back).
constexpr std::size_t kSpareBuffers = 4;
constexpr std::uint64_t kInlineHash = 8u << 20;  // bodies past this are hashed on a thread

class Run {
 public:
  Run(const Context& ctx, HttpClient& http, const Cache& cache, const DownloadOptions& o, Progress* progress)
      : ctx_(ctx), http_(http), cache_(cache), o_(o), progress_(progress),
        rng_(o.seed ? o.seed : static_cast<std::uint64_t>(ctx.clock.wall_now().time_since_epoch().count())),
        finisher_(o.fsync ? 8 : 1, [this](std::vector<Finisher::Outcome>& b) { publish_batch(cache_, o_.dest_dir, b); }) {}

  // Jobs are made when they start, in order (jobs_[i] is null before, and again once its
  // result is in the report): a run used to allocate all of them first, about 1.5 KB and
  // a fresh page per three files, where now the memory of finished jobs is reused.
  DownloadReport go(const std::vector<Artifact>& artifacts) {
    const std::size_t n = artifacts.size();
    jobs_.resize(n);
    report_.artifacts.resize(n);
    const std::size_t slots = std::max<std::size_t>(1, o_.jobs);
    std::size_t first_open = 0, made = 0;  // jobs before `made` exist or are retired
    for (;;) {
      collect_finished();
      if (ctx_.cancelled()) {
        report_.cancelled = true;
        http_.abort_all();
        while (finisher_.pending() > 0) {  // files already verified are kept
          finisher_.kick(1);
          std::this_thread::sleep_for(milliseconds(2));
          collect_finished();
        }
        const Error cancelled(Errc::Cancelled, "interrupted; the partial file is kept for a later resume");
        for (std::size_t i = 0; i < n; ++i) {
          if (i >= made) jobs_[i] = make_job(i, artifacts[i]);
          if (jobs_[i] && jobs_[i]->state != Job::State::Done) fail(*jobs_[i], cancelled);
        }
        break;
      }
      auto now = ctx_.clock.now();
      // Jobs before first_open are retired: a pass starts after them (a pass over all of
      // them per turn of the loop was quadratic in the number of files).
      while (first_open < made && !jobs_[first_open]) ++first_open;
      std::size_t running = 0, waiting = 0, active = 0;
      for (std::size_t i = first_open; i < made; ++i) running += jobs_[i] && jobs_[i]->state == Job::State::Running;
      for (std::size_t i = first_open; i < n; ++i) {
        if (i >= made) {  // not started yet: the next one starts when a slot is free
          if (running >= slots) {
            waiting += n - i;
            break;
          }
          jobs_[i] = make_job(i, artifacts[i]);
          made = i + 1;
        }
        Job* j = jobs_[i].get();
        if (!j) continue;  // retired
        if (j->state == Job::State::Pending && running < slots) {
          begin(*j);
          running += j->state == Job::State::Running;
        } else if (j->state == Job::State::WaitLock && now >= j->not_before && running < slots) {
          if (try_lock(*j)) {
            after_lock(*j);
            running += j->state == Job::State::Running;
          } else {
            j->not_before = now + milliseconds(100);
          }
        } else if (j->state == Job::State::Backoff && now >= j->not_before) {
          start_request(*j);
        }
        active += j->state == Job::State::Running;
        if (j->state == Job::State::Done) retire(i);
        else ++waiting;
      }
      if (waiting == 0) break;
      // While every slot is busy, more files finish soon: hand them over four at a time.
      finisher_.kick(o_.fsync || active < slots ? 1 : 4);
      if (active > 0) http_.poll(milliseconds(finisher_.pending() > 0 ? 2 : 100));
      else if (finisher_.pending() > 0) {
        if (!finisher_.help()) finisher_.wait_done(milliseconds(20));
      } else {
        std::this_thread::sleep_for(milliseconds(20));  // a lock or a backoff to wait for
      }
      if (progress_) progress_->tick();
    }
    for (std::size_t i = 0; i < n; ++i)
      if (jobs_[i]) retire(i);
    return std::move(report_);
  }

 private:
  // ---- cache -------------------------------------------------------------------------
  // `locked`: the part's lock is held, so the index is read again for what other
  // processes finished meanwhile; before that, what this process read of it is enough.
  bool try_hit(Job& j, bool locked) {
    const Artifact& a = j.res.artifact;
    std::optional<IndexEntry> e;
    if (!a.sha256.empty()) e = cache_.lookup_blob(a.sha256);
    if (!e && !a.url.empty()) {
      e = locked ? cache_.lookup(a.url) : cache_.lookup_known(a.url);
      if (e && !a.sha256.empty() && e->sha256 != a.sha256) e.reset();
    }
    if (!e) return false;
    cache_.touch(e->sha256);
    j.res.cache_hit = true;
    j.res.sha256 = e->sha256;
    j.res.size_bytes = file_size(cache_.blob_path(e->sha256)).value_or(e->size_bytes);
    j.res.etag = e->etag;
    j.res.hf_commit = e->hf_commit;
    j.res.final_url = e->url.empty() ? a.url : e->url;
    if (j.res.artifact.filename.empty()) j.res.artifact.filename = e->filename.empty() ? e->sha256 : e->filename;
    if (a.size_bytes && *a.size_bytes != j.res.size_bytes) {
      fail(j, Error(Errc::SizeMismatch, a.source + ": the cached blob has " + std::to_string(j.res.size_bytes) +
                                            " bytes, expected " + std::to_string(*a.size_bytes)));
      return true;
    }
    if (progress_) progress_->finished(j.id, true, true);
    finish_ok(j);
    return true;
  }

  std::unique_ptr<Job> make_job(std::size_t i, const Artifact& a) {
    auto j = std::make_unique<Job>();
    j->id = i;
    j->res.artifact = a;
    j->url = a.url;
    j->key = a.sha256.empty() ? sha256_.hex(a.url) : a.sha256;
    j->part = cache_.part_path(j->key);
    j->etag_file = j->part + ".etag";
    return j;
  }

  // A finished job: its result into the report, its memory freed for the next jobs.
  void retire(std::size_t i) {
    Job& j = *jobs_[i];
    sync_hash(j);  // no chunk of its digest is still queued on the hash thread
    report_.artifacts[i] = std::move(j.res);
    jobs_[i].reset();
  }

  void begin(Job& j) {
    if (try_hit(j, false)) return;
    if (o_.offline) {
      fail(j, Error(Errc::OfflineMiss, j.res.artifact.source + " is not in the cache " + quote(cache_.root()) +
                                           " and --offline forbids the network"));
      return;
    }
    if (j.url.empty()) {
      fail(j, Error(Errc::BadSource, j.res.artifact.source + " has no URL to download from"));
      return;
    }
    if (!try_lock(j)) {
      j.state = Job::State::WaitLock;
      j.not_before = ctx_.clock.now() + milliseconds(100);
      return;
    }
    after_lock(j);
  }

  bool try_lock(Job& j) {
    if (j.lock_fd < 0) {
      std::uint64_t size = 0;
      j.lock_fd = cache_.lock_part(j.key, &size);
      if (j.lock_fd >= 0) j.locked_size = size;
    }
    return j.lock_fd >= 0;
  }

  void unlock(Job& j) {
    cache_.unlock_part(j.key, j.lock_fd);
    j.lock_fd = -1;
  }

  void after_lock(Job& j) {
    if (try_hit(j, true)) return;  // another process finished it while we waited
    start_request(j);
  }

  // ---- requests ----------------------------------------------------------------------
  std::vector<std::string> headers_for(const Job& j) {
    const Artifact& a = j.res.artifact;
    std::vector<std::string> h;
    const bool first_host = url_host(j.url) == url_host(a.url);
    const bool hub_host = url_host(j.url) == url_host(o_.hf_endpoint);
    if (first_host)
      for (const auto& x : o_.extra_headers)
        if (!util::starts_with(util::to_lower(x), "accept-encoding:")) h.push_back(x);
    if (!o_.hf_token.empty() && ((a.hugging_face && first_host) || hub_host))
      h.push_back("Authorization: Bearer " + o_.hf_token);
    if (j.offset > 0) {
      h.push_back("Range: bytes=" + std::to_string(j.offset) + "-");
      std::string etag = !j.validator.empty() ? j.validator : read_small(j.etag_file);
      if (!etag.empty() && !util::starts_with(etag, "W/")) h.push_back("If-Range: " + etag);
    }
    return h;
  }

  void start_request(Job& j) {
    const Artifact& a = j.res.artifact;
    j.fd = -1;
    sync_hash(j);
    if (j.md) EVP_MD_CTX_free(j.md);
    j.md = nullptr;
    j.verdict = Job::Verdict::None;
    j.head = HttpResponseHead{};
    j.received = 0;
    j.total.reset();
    j.write_error.reset();
    j.retry_after.reset();
    // The size seen when the lock was taken serves the first request; a retry looks again.
    j.offset = (j.locked_size ? j.locked_size : j.lock_fd >= 0 ? fd_size(j.lock_fd) : file_size(j.part)).value_or(0);
    j.locked_size.reset();
    if (j.offset > 0) j.sidecar = true;  // a part from an earlier run may have one
    j.state = Job::State::Running;
    if (progress_ && !j.progress_started) {
      progress_->started(j.id, a.filename.empty() ? a.source : a.filename, a.size_bytes);
      j.progress_started = true;
    }
    ++report_.requests;
    Job* jp = &j;
    HttpRequest req{j.url, headers_for(j)};
    ctx_.log.log(LogLevel::Debug, "GET " + j.url, {{"offset", std::to_string(j.offset)}});
    http_.start(std::move(req), TransferHandlers{
                                    [this, jp](const HttpResponseHead& h) { return on_head(*jp, h); },
                                    [this, jp](std::string_view d) { return on_body(*jp, d); },
                                    [this, jp](const TransferResult& r) { on_done(*jp, r); },
                                });
  }

  // `truncate`: the part has bytes that must go. An empty part is not truncated: ext4
  // flushes a file truncated to zero when it is closed (its auto_da_alloc rule for
  // replace-by-truncate), which made close() write each small file to disk synchronously.
  bool open_part(Job& j, bool truncate) {
    // The locked descriptor is the part itself (Cache::lock_part): the body is written
    // through it with pwrite() at known offsets (no dup, no seek).
    j.fd = j.lock_fd;
    if (j.fd < 0 || (truncate && ::ftruncate(j.fd, 0) != 0)) {
      j.write_error = Error(Errc::Io, "cannot open " + quote(j.part) + ": " + std::strerror(errno));
      close_fd(j);
      return false;
    }
    j.write_pos = truncate ? 0 : j.offset;
    j.md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(j.md, sha256_.get(), nullptr);
    j.writeback_from = truncate ? 0 : j.offset;
    // As large as the rest of the body when the server said (a 64 KiB file takes 64 KiB,
    // not 1 MiB of which 64 KiB are touched), and one that an earlier job used. A body
    // known to be smaller than a buffer goes without one when the finisher holds many
    // already (direct: written and hashed as it arrives, see on_body).
    std::size_t want = kWriteBuffer;
    if (j.total && *j.total >= j.write_pos) want = static_cast<std::size_t>(std::min<std::uint64_t>(want, *j.total - j.write_pos));
    j.direct = false;
    if (j.wbuf.capacity() < want) {
      pool_.give(std::move(j.wbuf));
      if (want == kWriteBuffer) j.wbuf = pool_.take(want);
      else j.direct = !pool_.try_take(want, o_.jobs + kSpareBuffers, j.wbuf);
    }
    return true;
  }

  bool on_head(Job& j, const HttpResponseHead& h) {
    // What the end of the transfer reads (a copy of every header was a tenth of the
    // allocations of a many-small-files run).
    j.head.status = h.status;
    j.head.headers.clear();
    for (const char* name : {"location", "x-error-code", "x-error-message"})
      if (auto v = h.header(name); !v.empty()) j.head.headers.emplace(name, std::move(v));
    const Artifact& a = j.res.artifact;
    if (auto c = h.header("x-repo-commit"); !c.empty()) j.res.hf_commit = c;
    if (auto le = h.header("x-linked-etag"); !le.empty()) {
      j.res.etag = le;
      j.linked_etag = true;
    } else if (auto e = h.header("etag"); !e.empty() && !j.linked_etag && h.status < 300) {
      j.res.etag = e;
    }
    const long s = h.status;
    if (s >= 300 && s < 400 && s != 304 && !h.header("location").empty()) {
      j.verdict = Job::Verdict::Redirect;
      return false;
    }
    if (s == 200) {
      const bool stale = j.offset > 0;  // the size of the part when this request started
      if (stale) ctx_.log.log(LogLevel::Info, a.source + ": the server ignored the range; starting over");
      j.offset = 0;
      j.total = util::parse_u64(h.header("content-length"));
      if (!open_part(j, stale)) return false;
      // The ETag is kept next to the part for a resume after this process dies. Files
      // up to 1 MiB are fetched again from the start instead: cheaper than the sidecar's
      // three file operations, which were a fifth of the time of a many-small-files run.
      const bool resumable = !j.total || *j.total > (1u << 20);
      j.validator = h.header("etag");
      if (auto e = h.header("etag"); !e.empty() && resumable) {
        write_small(j.etag_file, e);
        j.sidecar = true;
      } else if (j.sidecar) {
        ::unlink(j.etag_file.c_str());
        j.sidecar = false;
      }
      j.verdict = Job::Verdict::Body;
      return true;
    }
    if (s == 206) {
      auto cr = parse_content_range(h.header("content-range"));
      if (j.offset == 0 || !cr || !cr->first || *cr->first != j.offset) {
        j.verdict = Job::Verdict::Restart;
        return false;
      }
      j.total = cr->total;
      if (!open_part(j, false)) return false;
      if (!hash_file_prefix(j.md, j.part, j.offset)) {
        j.write_error = Error(Errc::Io, "cannot read back " + quote(j.part));
        return false;
      }
      j.verdict = Job::Verdict::Body;
      return true;
    }
    if (s == 416) {
      auto cr = parse_content_range(h.header("content-range"));
      j.verdict = (cr && cr->total && *cr->total == j.offset && j.offset > 0) ? Job::Verdict::CompleteFromPart
                                                                              : Job::Verdict::Restart;
      return false;
    }
    j.verdict = Job::Verdict::Fail;
    if (s == 429 || s == 503)
      j.retry_after = parse_retry_after(h.header("retry-after"), ctx_.clock.wall_now());
    return false;
  }

  bool on_body(Job& j, std::string_view data) {
    if (j.verdict != Job::Verdict::Body || j.fd < 0) return false;
    j.received += data.size();
    // Buffered (libcurl hands over 16 KiB at a time): a body of up to 1 MiB reaches the
    // part with one pwrite(), and is hashed and written by the finisher once complete.
    if (j.direct) {
      if (!write_out(j, data)) return false;
      EVP_DigestUpdate(j.md, data.data(), data.size());
    } else {
      j.wbuf.append(data);
      if (j.wbuf.size() >= kWriteBuffer && !flush(j)) return false;
    }
    report_.downloaded_bytes += data.size();
    if (progress_) progress_->advanced(j.id, j.offset + j.received, j.total);
    return true;
  }

  // Writes bytes to the part; a failure is kept in j.write_error.
  bool write_out(Job& j, std::string_view data) {
    if (int e = pwrite_all(j.fd, data, j.write_pos); e != 0) {
      j.write_error = write_error(e, j.part);
      return false;
    }
    j.write_pos += data.size();
    return true;
  }

  // Writes the buffered bytes to the part (one write() per MiB instead of one per 16 KiB)
  // and adds them to the digest: here for small bodies, on the hash thread past 8 MiB.
  bool flush(Job& j) {
    if (!write_out(j, j.wbuf)) {
      j.wbuf.clear();
      return false;
    }
    if (j.offset + j.received > kInlineHash) {
      if (!hasher_) hasher_.emplace(pool_);
      hasher_->submit(j.md, std::move(j.wbuf));
      j.wbuf = pool_.take(kWriteBuffer);
    } else {
      EVP_DigestUpdate(j.md, j.wbuf.data(), j.wbuf.size());
    }
    j.wbuf.clear();
    // With --fsync, start writeback of every 32 MiB as it arrives (non-blocking), so the
    // fsync at the end does not have the whole file to write.
    const std::uint64_t written = j.offset + j.received;
    if (o_.fsync && written - j.writeback_from >= (32u << 20)) {
      ::sync_file_range(j.fd, static_cast<off_t>(j.writeback_from), static_cast<off_t>(written - j.writeback_from),
                        SYNC_FILE_RANGE_WRITE);
      j.writeback_from = written;
    }
    return true;
  }

  void sync_hash(Job& j) {
    if (hasher_ && j.md) hasher_->sync(j.md);
  }

  void close_fd(Job& j) {
    j.fd = -1;  // lock_fd's alias: closed with the lock
    pool_.give(std::move(j.wbuf));
    j.wbuf = std::string();
  }

  void remove_part(Job& j) {
    close_fd(j);
    drop_part(j.lock_fd, j.part, j.etag_file);
  }

  void on_done(Job& j, const TransferResult& r) {
    using K = TransferResult::Kind;
    const Artifact& a = j.res.artifact;
    // Whatever arrived is a valid prefix (kept for a resume) or the whole body; the last
    // bytes of a whole body are written and hashed by finalize()'s task.
    const bool whole = r.kind == K::Ok && j.verdict == Job::Verdict::Body && (!j.total || j.offset + j.received == *j.total);
    if (j.fd >= 0 && !j.write_error && !whole) flush(j);
    if (j.write_error) {
      Error e = *j.write_error;
      if (e.code() == Errc::DiskFull) remove_part(j);  // nothing half-written stays behind
      close_fd(j);
      fail(j, std::move(e));
      return;
    }
    switch (r.kind) {
      case K::Aborted:
        close_fd(j);
        fail(j, Error(Errc::Cancelled, "interrupted; the partial file is kept for a later resume"));
        return;
      case K::Tls:
        close_fd(j);
        fail(j, Error(Errc::TlsVerify, "cannot verify the TLS certificate of " + url_host(j.url) + ": " + r.message +
                                           " (give the issuing CA with --ca-bundle FILE)"));
        return;
      case K::Connect:
      case K::Timeout:
      case K::Other:
      case K::WriteFailed:
        close_fd(j);  // what arrived is a valid prefix: the next attempt resumes after it
        retry(j, std::nullopt,
              Error(r.kind == K::Timeout ? Errc::Timeout : Errc::Network, j.url + ": " + r.message));
        return;
      case K::Ok:
        break;
    }
    const long s = j.head.status;
    switch (j.verdict) {
      case Job::Verdict::Redirect: {
        close_fd(j);
        if (++j.hops > 10) {
          fail(j, Error(Errc::Network, a.source + ": more than 10 redirects"));
          return;
        }
        std::string next = resolve_url(j.url, j.head.header("location"));
        if (!util::starts_with(util::to_lower(next), "https://") && !util::starts_with(util::to_lower(next), "http://")) {
          fail(j, Error(Errc::Network, a.source + ": redirect to a non-HTTP location " + quote(next)));
          return;
        }
        j.url = next;
        start_request(j);
        return;
      }
      case Job::Verdict::Restart:
        remove_part(j);
        retry(j, milliseconds(0), Error(Errc::Network, j.url + ": the server's ranges did not match the partial file"));
        return;
      case Job::Verdict::CompleteFromPart:
        close_fd(j);
        finalize(j, true);
        return;
      case Job::Verdict::Body: {
        const std::uint64_t have = j.offset + j.received;
        if (j.total && have != *j.total) {
          close_fd(j);
          retry(j, std::nullopt,
                Error(Errc::Network, j.url + (have < *j.total ? ": the body ended after " : ": the body ran on to ") +
                                         std::to_string(have) + " of " + std::to_string(*j.total) + " bytes"));
          return;
        }
        finalize(j, false);
        return;
      }
      case Job::Verdict::None:
      case Job::Verdict::Fail:
        break;
    }
    close_fd(j);
    if (s == 429 || s >= 500) {
      retry(j, j.retry_after, Error(Errc::HttpStatus, j.url + " answered HTTP " + std::to_string(s)));
      return;
    }
    fail(j, status_error(j, s));
  }

  Error status_error(const Job& j, long s) {
    const Artifact& a = j.res.artifact;
    std::string code = j.head.header("x-error-code");
    std::string msg = j.head.header("x-error-message");
    if (a.hugging_face && (s == 401 || s == 403 || code == "GatedRepo")) {
      return Error(Errc::HubAuth, "Hugging Face answered HTTP " + std::to_string(s) + " for " + a.hf_repo + " (" +
                                      a.source + ")" + (msg.empty() ? "" : ": " + msg) +
                                      ". The repository is gated or private: accept its terms on the hub and "
                                      "set HF_TOKEN to a token with read access" +
                                      (o_.hf_token.empty() ? " (HF_TOKEN is not set)" : " (HF_TOKEN was sent)"));
    }
    if (a.hugging_face && s == 404) {
      std::string what = code == "RepoNotFound"       ? "repository " + quote(a.hf_repo) + " does not exist (or is private: set HF_TOKEN)"
                         : code == "RevisionNotFound" ? "revision " + quote(a.hf_revision) + " does not exist in " + a.hf_repo
                         : code == "EntryNotFound"    ? "file " + quote(a.hf_file) + " does not exist in " + a.hf_repo + " at revision " + quote(a.hf_revision)
                                                      : "repository " + quote(a.hf_repo) + ", revision " + quote(a.hf_revision) + " or file " + quote(a.hf_file) + " was not found";
      return Error(Errc::HubNotFound, "Hugging Face: " + what + (msg.empty() ? "" : " (" + msg + ")"));
    }
    return Error(Errc::HttpStatus, j.url + " answered HTTP " + std::to_string(s) + (msg.empty() ? "" : ": " + msg));
  }

  void retry(Job& j, std::optional<milliseconds> server_delay, Error why) {
    if (++j.attempts >= o_.retry.max_attempts) {
      why.with_context("making " + std::to_string(j.attempts) + " attempts");
      fail(j, std::move(why));
      return;
    }
    milliseconds delay;
    if (server_delay) {
      delay = std::min(*server_delay, o_.retry.max_retry_after);
    } else {
      double base = static_cast<double>(o_.retry.base_delay.count()) * std::pow(2.0, j.attempts - 1);
      base = std::min(base, static_cast<double>(o_.retry.max_delay.count()));
      std::uniform_real_distribution<double> jitter(0.5, 1.5);
      delay = milliseconds(static_cast<long long>(base * jitter(rng_)));
    }
    ctx_.log.log(LogLevel::Info, "retrying " + j.res.artifact.source + " in " + std::to_string(delay.count()) + " ms",
                 {{"reason", why.message()}, {"attempt", std::to_string(j.attempts + 1)}});
    j.state = Job::State::Backoff;
    j.not_before = ctx_.clock.now() + delay;
  }

  // The transfer is complete: verify, make durable, move into the cache (finalize's task),
  // record and link into dest (collect_finished). The bytes still in the write buffer (all
  // of a body up to 1 MiB) are written and hashed by the task, on the finisher's thread:
  // hashing a 64 KiB file costs about as much as receiving it.
  void finalize(Job& j, bool hash_whole_file) {
    const Artifact& a = j.res.artifact;
    std::string hex;  // known here when the part is hashed from the disk
    if (hash_whole_file || !j.md) {
      EVP_MD_CTX* md = EVP_MD_CTX_new();
      EVP_DigestInit_ex(md, sha256_.get(), nullptr);
      bool ok = hash_file_prefix(md, j.part, file_size(j.part).value_or(0));
      unsigned char out[EVP_MAX_MD_SIZE];
      unsigned n = 0;
      EVP_DigestFinal_ex(md, out, &n);
      EVP_MD_CTX_free(md);
      if (!ok) {
        fail(j, Error(Errc::Io, "cannot read back " + quote(j.part)));
        return;
      }
      hex = util::hex_lower(out, n);
    }
    // A body written through j.fd ends at offset + received; a part completed earlier is
    // as large as it is.
    std::uint64_t size = hash_whole_file || j.lock_fd < 0 ? file_size(j.part).value_or(0) : j.offset + j.received;
    if (a.size_bytes && *a.size_bytes != size) {
      remove_part(j);
      fail(j, Error(Errc::SizeMismatch, a.source + ": got " + std::to_string(size) + " bytes, expected " +
                                            std::to_string(*a.size_bytes) + "; the file was deleted"));
      return;
    }
    EVP_MD_CTX* md = nullptr;  // the job's digest, used by the task alone until it is done
    auto tail = std::make_shared<std::string>();
    if (hex.empty()) {
      sync_hash(j);
      md = j.md;
      tail->swap(j.wbuf);
    }
    const std::uint64_t tail_pos = j.write_pos;
    close_fd(j);
    j.res.final_url = j.url;
    j.state = Job::State::Finalizing;
    const IndexEntry base{a.url, j.res.etag, hex, j.res.hf_commit, a.filename, size};
    const std::string part = j.part, etag_file = j.sidecar ? j.etag_file : std::string();
    const std::string expected = a.sha256, source = a.source;
    const std::size_t id = j.id;
    const bool durable = o_.fsync;
    // The part's locked descriptor stays open until collect_finished() unlocks the job.
    const int part_fd = j.lock_fd;
    BufferPool* pool = &pool_;
    finisher_.submit([=]() {
      Finisher::Outcome out;
      out.job = id;
      out.entry = base;
      out.part = part;
      out.etag_file = etag_file;
      out.part_fd = part_fd;
      if (!tail->empty()) {
        if (int e = pwrite_all(part_fd, *tail, tail_pos); e != 0) {
          drop_part(part_fd, part, etag_file);  // nothing half-written stays behind
          out.error = write_error(e, part);
          pool->give(std::move(*tail));
          return out;
        }
      }
      if (md) {
        EVP_DigestUpdate(md, tail->data(), tail->size());
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        EVP_DigestFinal_ex(md, digest, &n);
        out.entry.sha256 = util::hex_lower(digest, n);
      }
      pool->give(std::move(*tail));
      const std::string& hash = out.entry.sha256;
      if (!expected.empty() && expected != hash) {
        drop_part(part_fd, part, etag_file);
        out.error = Error(Errc::HashMismatch, source + ": sha256 mismatch: expected " + expected + ", got " + hash +
                                                  "; the file was deleted");
        return out;
      }
      // With --fsync: durable before visible.
      const bool own_fd = part_fd < 0;
      const int fd = own_fd ? ::open(part.c_str(), O_RDONLY | O_CLOEXEC) : part_fd;
      if (fd < 0 || (durable && ::fdatasync(fd) != 0)) {
        int e = errno;
        if (fd >= 0 && own_fd) ::close(fd);
        if (is_disk_full(e)) {
          ::unlink(part.c_str());
          if (!etag_file.empty()) ::unlink(etag_file.c_str());
        }
        out.error = Error(is_disk_full(e) ? Errc::DiskFull : Errc::Io, "cannot sync " + quote(part) + ": " + std::strerror(e));
        return out;
      }
      if (own_fd) {
        ::fchmod(fd, 0444);  // a locked part is read-only already (Cache::lock_part)
        ::close(fd);
      }
      return out;
    });
  }

  // Applies what the finisher completed and published (on the event-loop thread). The
  // locks are released last: after the index entries and the renames.
  void collect_finished() {
    for (auto& o : finisher_.take()) {
      Job& j = *jobs_[o.job];
      if (!o.warning.empty()) ctx_.log.log(LogLevel::Warn, o.warning);
      if (o.error) {
        fail(j, std::move(*o.error));
        continue;
      }
      j.res.sha256 = o.entry.sha256;
      j.res.size_bytes = o.entry.size_bytes;
      j.res.path = o.path;
      if (progress_) progress_->finished(j.id, true, false);
      // The part is a blob now: nothing is left at its path to clean up, and closing the
      // descriptor releases the lock.
      if (j.lock_fd >= 0) ::close(j.lock_fd);
      j.lock_fd = -1;
      j.state = Job::State::Done;
    }
  }

  void finish_ok(Job& j) {
    const std::string blob = cache_.blob_path(j.res.sha256);
    j.res.path = blob;
    if (!o_.dest_dir.empty()) {
      auto placed = place(blob, o_.dest_dir, j.res.artifact.filename);
      if (!placed) {
        fail(j, std::move(placed).error());
        return;
      }
      j.res.path = *placed;
    }
    unlock(j);
    j.state = Job::State::Done;
  }

  void fail(Job& j, Error e) {
    e.with_context("fetching " + j.res.artifact.source);
    if (progress_ && j.progress_started) progress_->finished(j.id, false, false);
    j.res.error = std::move(e);
    close_fd(j);
    unlock(j);
    j.state = Job::State::Done;
  }

  const Context& ctx_;
  HttpClient& http_;
  const Cache& cache_;
  const DownloadOptions& o_;
  Progress* progress_;
  std::mt19937_64 rng_;
  Sha256 sha256_;  // before jobs_: their digests refer to it
  std::vector<std::unique_ptr<Job>> jobs_;
  BufferPool pool_;  // write buffers; declared before their users, destroyed after them
  // Declared after jobs_: destroyed first, so that no chunk is hashed into a freed digest.
  std::optional<HashWorker> hasher_;  // started by the first body past 8 MiB
  Finisher finisher_;
  DownloadReport report_;
};

}  // namespace

Result<DownloadReport> download_all(const Context& ctx, HttpClient& http, const Cache& cache,
                                    const std::vector<Artifact>& artifacts, const DownloadOptions& options,
                                    Progress* progress) {
  CYLLM_TRY_VOID(cache.ensure_layout());
  for (const auto& a : artifacts)
    if (!a.filename.empty() && (a.filename.find('/') != std::string::npos || a.filename == "." || a.filename == ".."))
      return Error(Errc::BadSource, "unsafe file name " + quote(a.filename) + " for " + a.source);
  Run run(ctx, http, cache, options, progress);
  return run.go(artifacts);
}

}  // namespace cyllm::fetch

// Reusable write buffers for the downloader (see BufferPool).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace cyllm::fetch {

// Write buffers, passed from the event loop to the threads that write and hash them and
// back. A fresh buffer costs a page fault per 4 KiB it receives (about 10 us each in a small
// VM, more than receiving the bytes), so a buffer is sized to its body, comes back as soon
// as its bytes are written and hashed, and the one taken next is the one returned last (its
// pages are mapped already): 8 or 9 buffers serve a run of 200 x 64 KiB files with -j 8,
// where 24 to 30 fresh 1 MiB ones did before. When the finisher falls behind (it shares a
// CPU with the event loop now and then), try_take() refuses to add buffers past a bound,
// and the caller does without one. Thread-safe.
class BufferPool {
 public:
  static constexpr std::size_t kMaxBytes = 64u << 20;  // capacity kept at most

  // An empty buffer of at least `want` bytes' capacity.
  std::string take(std::size_t want) {
    std::string b;
    try_take(want, SIZE_MAX, b);
    return b;
  }
  // Like take(), but when no kept buffer is large enough and `max_out` buffers are out
  // already, gives none and returns false.
  bool try_take(std::size_t want, std::size_t max_out, std::string& out) {
    std::lock_guard<std::mutex> g(mu_);
    for (std::size_t i = free_.size(); i-- > 0;) {
      if (free_[i].capacity() < want) continue;
      out = std::move(free_[i]);
      free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
      bytes_ -= out.capacity();
      ++out_;
      return true;
    }
    if (out_ >= max_out) return false;
    out = std::string();
    out.reserve(want);
    if (out.capacity() > std::string().capacity()) ++out_;
    return true;
  }
  // Takes `b` back; keeps it for reuse unless the pool holds kMaxBytes already.
  void give(std::string b) {
    b.clear();
    if (b.capacity() <= std::string().capacity()) return;  // no buffer of its own
    std::lock_guard<std::mutex> g(mu_);
    if (out_ > 0) --out_;
    if (bytes_ + b.capacity() > kMaxBytes) return;  // freed when b goes out of scope
    bytes_ += b.capacity();
    free_.push_back(std::move(b));
  }
  std::size_t out() {
    std::lock_guard<std::mutex> g(mu_);
    return out_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> free_;
  std::size_t bytes_ = 0;  // capacity held in free_
  std::size_t out_ = 0;    // buffers taken and not given back
};

}  // namespace cyllm::fetch

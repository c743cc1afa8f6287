// Reusable write buffers for the downloader (see BufferPool).
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

namespace cyllm::fetch {

// Write buffers, passed from the event loop to the threads that write and hash them and
// back. A fresh buffer costs a page fault per 4 KiB it receives (about 10 us each in a small
// VM, more than receiving the bytes), so a buffer is sized to its body, comes back as soon
// as its bytes are written and hashed, and the one taken next is the one returned last (its
// pages are mapped already): 8 or 9 buffers now serve a run of 200 x 64 KiB files with -j 8,
// where 24 to 30 fresh 1 MiB ones did before. Thread-safe.
class BufferPool {
 public:
  static constexpr std::size_t kMaxBytes = 64u << 20;  // capacity kept at most

  // An empty buffer of at least `want` bytes' capacity.
  std::string take(std::size_t want) {
    {
      std::lock_guard<std::mutex> g(mu_);
      for (std::size_t i = free_.size(); i-- > 0;) {
        if (free_[i].capacity() < want) continue;
        std::string b = std::move(free_[i]);
        free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
        bytes_ -= b.capacity();
        return b;
      }
    }
    std::string b;
    b.reserve(want);
    return b;
  }
  // Keeps `b` for reuse unless the pool holds kMaxBytes already.
  void give(std::string&& b) {
    b.clear();
    if (b.capacity() == 0) return;
    std::lock_guard<std::mutex> g(mu_);
    if (bytes_ + b.capacity() > kMaxBytes) return;  // freed when b goes out of scope
    bytes_ += b.capacity();
    free_.push_back(std::move(b));
  }

 private:
  std::mutex mu_;
  std::vector<std::string> free_;
  std::size_t bytes_ = 0;  // capacity held in free_
};

}  // namespace cyllm::fetch

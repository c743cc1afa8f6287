// The native CPU engine: BaseEngine over model::Model and one model::Session per request.
//
// Concurrency: a shared_mutex; stream_predict holds it shared for the whole request (the
// Model is immutable and shared), load_model/unload_model hold it exclusively, so they
// wait for in-flight requests and new requests wait for them.
// Memory: each request's KV cache is sized to min(max_model_len, prompt + max_tokens) and
// freed when the request ends, also when it ends in engine.out_of_memory.
// Loading: mmap first; when that fails with an I/O or memory error, retried by reading
// the file into memory (gguf::OpenOptions::use_mmap = false), with a warning logged.
#pragma once

#include <atomic>
#include <memory>
#include <shared_mutex>

#include "cyllm/engine.h"
#include "cyllm/model.h"

namespace cyllm::engine {

class NativeEngine final : public BaseEngine {
 public:
  NativeEngine(const EngineConfig& config, Logger& log);
  Result<void> load_model(const std::string& path, const EngineConfig& config) override;
  Result<Completion> stream_predict(const Request& request, const TokenSink& sink,
                                    const std::atomic<bool>* cancel = nullptr) override;
  void unload_model() override;
  double get_memory_usage() const override;
  std::string_view name() const override { return "native"; }
  bool loaded() const override;

 private:
  Result<Completion> predict_locked(const Request& request, const TokenSink& sink,
                                    const std::atomic<bool>* cancel,
                                    std::chrono::steady_clock::time_point start);

  Logger& log_;
  mutable std::shared_mutex mu_;
  EngineConfig config_;                        // guarded by mu_
  std::shared_ptr<const model::Model> model_;  // guarded by mu_
  double load_ms_ = 0;                         // guarded by mu_
  // One pool of n_threads workers shared by every request's session (jobs of concurrent
  // requests take turns); started with the model.            guarded by mu_
  std::shared_ptr<model::ThreadPool> pool_;
  std::atomic<std::uint64_t> kv_bytes_live_{0};
};

}  // namespace cyllm::engine

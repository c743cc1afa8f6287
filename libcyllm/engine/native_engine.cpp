#include "engine/native_engine.h"

#include <mutex>
#include <new>

#include "engine/generate.h"

namespace cyllm::engine {
namespace {

using Clock = std::chrono::steady_clock;

bool flag_value(const EngineConfig& c, const std::string& key, bool fallback) {
  auto it = c.extra_config.find(key);
  if (it == c.extra_config.end()) return fallback;
  return it->second == "true" || it->second == "1" || it->second == "yes";
}

Result<void> check_config(const EngineConfig& c) {
  if (c.tensor_parallel_size != 1 || c.pipeline_parallel_size != 1)
    return Error(Errc::InvalidRequest,
                 "the native engine runs on one CPU process; tensor_parallel_size=" +
                     std::to_string(c.tensor_parallel_size) + " and pipeline_parallel_size=" +
                     std::to_string(c.pipeline_parallel_size) + " must both be 1");
  if (!c.quantization.empty() && c.quantization != "gguf")
    return Error(Errc::InvalidRequest, "the native engine runs the GGUF file's own tensor types; "
                                       "quantization \"" + c.quantization + "\" is not supported");
  for (const auto& [k, v] : c.extra_config) {
    if (k != "use_mmap" && k != "populate" && k != "kv_type" && k != "repack" && k != "onednn")
      return Error(Errc::InvalidRequest, "unknown extra_config key \"" + k +
                                             "\" for the native engine (known: use_mmap, populate, repack, kv_type, onednn)");
    if (k != "kv_type" && v != "true" && v != "false" && v != "1" && v != "0" && v != "yes" && v != "no")
      return Error(Errc::InvalidRequest, k + "=\"" + v + "\" is not a boolean: use true or false");
    model::KvType t;
    if (k == "kv_type" && !model::parse_kv_type(v, t))
      return Error(Errc::InvalidRequest, "kv_type \"" + v + "\" is not one of f32, f16, q8_0");
  }
  return {};
}

// Load errors worth a second attempt without mmap: the mapping itself failed.
bool retryable(const Error& e) { return e.code() == Errc::Io || e.code() == Errc::OutOfMemory; }

Error load_failed(const std::string& path, const Error& cause) {
  if (cause.code() == Errc::OutOfMemory) return cause;
  Error e(Errc::ModelLoadFailed, "cannot load \"" + path + "\": " + std::string(cause.id()) + ": " +
                                     cause.message());
  for (const auto& c : cause.context()) e.with_context(c);
  return e;
}

// Releases a request's share of the KV-cache accounting when the request ends.
class KvAccount {
 public:
  KvAccount(std::atomic<std::uint64_t>& live, std::uint64_t bytes) : live_(live), bytes_(bytes) {
    live_ += bytes_;
  }
  ~KvAccount() { live_ -= bytes_; }
  KvAccount(const KvAccount&) = delete;
  KvAccount& operator=(const KvAccount&) = delete;

 private:
  std::atomic<std::uint64_t>& live_;
  std::uint64_t bytes_;
};

}  // namespace

NativeEngine::NativeEngine(const EngineConfig& config, Logger& log) : log_(log), config_(config) {}

bool NativeEngine::loaded() const {
  std::shared_lock lock(mu_);
  return model_ != nullptr;
}

void NativeEngine::unload_model() {
  std::unique_lock lock(mu_);
  model_.reset();
}

double NativeEngine::get_memory_usage() const {
  std::uint64_t bytes = kv_bytes_live_.load();
  {
    std::shared_lock lock(mu_, std::try_to_lock);  // never wait behind a load
    if (lock.owns_lock() && model_) bytes += model_->weight_bytes();
  }
  return static_cast<double>(bytes) / 1e9;
}

Result<void> NativeEngine::load_model(const std::string& path, const EngineConfig& config) {
  CYLLM_TRY_VOID(check_config(config));
  std::unique_lock lock(mu_);
  model_.reset();  // free the old model before mapping the new one
  config_ = config;
  config_.model_id = path;
  const auto t0 = Clock::now();
  model::LoadOptions opts;
  opts.file.use_mmap = flag_value(config, "use_mmap", true);
  opts.file.mmap_fallback = false;  // the retry below does it, and logs it
  opts.file.populate = flag_value(config, "populate", false);
  opts.repack = flag_value(config, "repack", true);
  opts.n_threads = config.n_threads;
  auto attempt = [&]() -> Result<std::shared_ptr<const model::Model>> {
    try {
      return model::Model::load(path, opts);
    } catch (const std::bad_alloc&) {
      return Error(Errc::OutOfMemory, "out of memory while loading \"" + path + "\"");
    } catch (const std::exception& e) {
      return Error(Errc::EngineInternal, std::string("loading \"") + path + "\" threw: " + e.what());
    }
  };
  auto m = attempt();
  if (!m.ok() && opts.file.use_mmap && retryable(m.error())) {
    log_.log(LogLevel::Warn, "mapping the model failed; retrying by reading it into memory",
             {{"path", path}, {"error", m.error().to_string()}});
    opts.file.use_mmap = false;
    m = attempt();
  }
  if (!m.ok()) return load_failed(path, m.error());
  if (!pool_ || (config.n_threads && pool_->size() != config.n_threads))
    pool_ = CYLLM_TRY(model::ThreadPool::create(model::ThreadPoolOptions{config.n_threads, false}));
  model_ = std::move(*m);
  load_ms_ = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  return {};
}

Result<Completion> NativeEngine::stream_predict(const Request& request, const TokenSink& sink,
                                                const std::atomic<bool>* cancel) {
  const auto start = Clock::now();
  std::shared_lock lock(mu_);
  if (!model_) return Error(Errc::EngineUnavailable, "no model is loaded");
  try {
    return predict_locked(request, sink, cancel, start);
  } catch (const std::bad_alloc&) {
    // The session (KV cache, activations) was destroyed while unwinding.
    return Error(Errc::OutOfMemory, "out of memory during the request; its caches were released");
  } catch (const std::exception& e) {
    return Error(Errc::EngineInternal, std::string("the request threw: ") + e.what());
  }
}

Result<Completion> NativeEngine::predict_locked(const Request& request, const TokenSink& sink,
                                                const std::atomic<bool>* cancel,
                                                Clock::time_point start) {
  CYLLM_TRY_VOID(validate_request(request));
  const model::Model& m = *model_;
  const tokenizer::Tokenizer& tok = m.tokenizer();
  // KV cache: what this request can use, at most the context length.
  const std::uint64_t max_len = config_.max_model_len ? config_.max_model_len : m.hparams().n_ctx_train;
  auto prepared = CYLLM_TRY(prepare_prompt(m, request, max_len));
  const std::vector<TokenId>& prompt = prepared.tokens;
  const std::string& format_name = prepared.chat_format;
  const std::uint64_t n_ctx = std::min<std::uint64_t>(max_len, prompt.size() + std::max(request.max_tokens, 1u));
  if (n_ctx > 0xffffffffull) return Error(Errc::InvalidRequest, "context length too large");
  model::SessionOptions so;
  so.n_ctx = static_cast<std::uint32_t>(n_ctx);
  so.n_threads = config_.n_threads;
  so.pool = pool_;
  if (auto kv = config_.extra_config.find("kv_type"); kv != config_.extra_config.end())
    model::parse_kv_type(kv->second, so.kv_type);  // validated by load_model
  so.onednn = flag_value(config_, "onednn", false);
  KvAccount account(kv_bytes_live_, n_ctx * model::kv_bytes_per_token(m, so.kv_type));
  auto session = CYLLM_TRY(model::Session::create(model_, so));

  Request req = request;
  req.max_tokens = static_cast<std::uint32_t>(std::min<std::uint64_t>(request.max_tokens, n_ctx - prompt.size()));
  auto out = CYLLM_TRY(generate(*session, tok, prompt, req, sink, cancel, start));
  out.chat_format = format_name;
  out.timings.load_ms = load_ms_;
  return out;
}

std::unique_ptr<BaseEngine> make_native_engine(const EngineConfig& config, Logger& log) {
  return std::make_unique<NativeEngine>(config, log);
}

}  // namespace cyllm::engine

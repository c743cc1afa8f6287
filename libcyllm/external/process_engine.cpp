// ProcessEngine: an engine's OpenAI server as a supervised child process.
//
// Concurrency: lifecycle_mu_ serialises load, unload and restarts; mu_ guards the state
// that requests read (the child, its URL, the in-flight count). A request holds no lock
// while it streams: it counts itself in in_flight_, and unload waits for that to reach 0
// after closing the door (accepting_ = false).
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "cyllm/atomic_file.h"
#include "cyllm/external.h"
#include "external/child_process.h"
#include "external/gpu_memory.h"
#include "external/openai_client.h"

namespace cyllm::external {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

std::string seconds_text(std::chrono::milliseconds d) {
  const double s = static_cast<double>(d.count()) / 1000.0;
  char b[32];
  std::snprintf(b, sizeof b, s == static_cast<long>(s) ? "%.0f s" : "%.1f s", s);
  return b;
}

class ProcessEngine final : public engine::BaseEngine {
 public:
  ProcessEngine(ProcessEngineOptions o, Logger& log) : opt_(std::move(o)), log_(log) {}

  ~ProcessEngine() override {
    unload_model();
    if (own_work_dir_) {
      std::error_code ec;
      fs::remove_all(work_dir_, ec);
    }
  }

  Result<void> load_model(const std::string& path, const engine::EngineConfig& config) override {
    std::lock_guard life(lifecycle_mu_);
    CYLLM_TRY_VOID(ensure_work_dir());
    // Build the launch first: a refused config leaves the running engine as it is.
    const std::uint16_t port = pick_free_port();
    if (port == 0) return Error(Errc::ModelLoadFailed, "no free loopback port for the engine's server");
    auto spec = opt_.launcher ? opt_.launcher(path, config, port, work_dir_)
                              : Result<LaunchSpec>(Error(Errc::EngineInternal, "process engine without a launcher"));
    if (!spec) return spec.error();
    stop_locked();
    {
      std::lock_guard lock(mu_);
      model_ = path;
      config_ = config;
      crashes_ = 0;
      restart_pending_ = false;
    }
    auto started = start_locked(*spec, port);
    if (!started) {
      std::lock_guard lock(mu_);
      loaded_ = false;
      return started.error();
    }
    return {};
  }

  Result<engine::Completion> stream_predict(const engine::Request& request, const engine::TokenSink& sink,
                                            const std::atomic<bool>* cancel) override {
    CYLLM_TRY_VOID(ensure_running());
    ClientOptions client;
    std::string model;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return accepting_ || !loaded_; });
      if (!loaded_) return Error(Errc::EngineUnavailable, "no model is loaded in the " + opt_.name + " engine");
      if (!child_) return Error(Errc::EngineUnavailable, "the " + opt_.name + " engine is restarting");
      client = client_;
      model = served_model_;
      ++in_flight_;
    }
    auto r = stream_completion(client, request, model, sink, cancel);
    bool crashed = false;
    std::string how, tail;
    LaunchSpec spec_copy;
    const bool broken = !r.ok() && r.error().code() == Errc::EngineUnavailable;
    {
      std::unique_lock lock(mu_);
      // A broken stream: did the process die? Give the kernel a moment to report it
      // (without holding up the other requests' bookkeeping).
      for (int i = 0; broken && i < 25 && child_ && child_->running(); ++i) {
        lock.unlock();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        lock.lock();
      }
      if (broken && child_ && !child_->running()) {
        crashed = true;
        how = child_->exit_description();
        tail = tail_lines(child_->log_path(), opt_.log_tail_lines);
        spec_copy = spec_;
        if (!restart_pending_) note_crash_locked();  // one crash, however many requests saw it
      }
      if (--in_flight_ == 0) cv_.notify_all();
    }
    if (crashed) {
      log_.log(LogLevel::Error, "engine process died during a request",
               {{"engine", opt_.name}, {"how", how}, {"request_id", request.id}});
      return with_log(spec_copy, "the " + opt_.name + " engine process " + (how.empty() ? "died" : "ended (" + how + ")") +
                                     " during the request; it restarts on the next request",
                      Errc::EngineUnavailable, tail);
    }
    if (r.ok()) {
      std::lock_guard lock(mu_);
      crashes_ = 0;
    }
    return r;
  }

  void unload_model() override {
    std::lock_guard life(lifecycle_mu_);
    stop_locked();
    std::lock_guard lock(mu_);
    loaded_ = false;
  }

  double get_memory_usage() const override {
    std::lock_guard lock(mu_);
    if (!child_ || !child_->started()) return 0;
    std::uint64_t bytes = 0;
    if (auto gpu = gpu_memory_of_group(child_->pid(), opt_.nvml_library.c_str())) bytes = *gpu;
    else bytes = child_->group_rss_bytes();
    return static_cast<double>(bytes) / 1e9;
  }

  std::string_view name() const override { return opt_.name; }

  bool loaded() const override {
    std::lock_guard lock(mu_);
    return loaded_;
  }

 private:
  Result<void> ensure_work_dir() {
    if (!work_dir_.empty()) return {};
    if (!opt_.work_dir.empty()) {
      std::error_code ec;
      fs::create_directories(opt_.work_dir, ec);
      if (ec) return Error(Errc::Io, "cannot create the engine directory \"" + opt_.work_dir + "\": " + ec.message());
      work_dir_ = fs::absolute(opt_.work_dir).string();
      return {};
    }
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/cy-llm-" + opt_.name + ".XXXXXX";
    if (!::mkdtemp(tmpl.data())) return Error(Errc::Io, "cannot create a directory under " + tmpl);
    work_dir_ = tmpl;
    own_work_dir_ = true;
    return {};
  }

  std::string log_path() const { return work_dir_ + "/engine.log"; }

  // Starts the child for spec_ and waits for it to be ready. lifecycle_mu_ held.
  Result<void> start_locked(const LaunchSpec& spec, std::uint16_t port) {
    for (const auto& f : spec.files) {
      std::error_code ec;
      fs::create_directories(fs::path(f.path).parent_path(), ec);
      CYLLM_TRY_VOID(write_file_atomic(f.path, f.content));
    }
    for (const auto& w : spec.ignored)
      log_.log(LogLevel::Warn, "the engine ignores a setting", {{"engine", opt_.name}, {"setting", w}});
    {
      std::ofstream(log_path(), std::ios::app) << "---- cy-llm: starting " << opt_.name << " on port " << port << "\n";
    }
    auto child = ChildProcess::spawn(spec.argv, spec.env, log_path());
    if (!child) return Error(Errc::ModelLoadFailed, child.error().message());
    auto owned = std::make_unique<ChildProcess>(std::move(*child));
    const std::string root = "http://127.0.0.1:" + std::to_string(port);
    ClientOptions client;
    client.base_url = root + spec.api_base;
    client.api_key = opt_.api_key;
    client.stall_timeout = opt_.stall_timeout;
    client.connect_timeout = std::chrono::seconds(5);
    log_.log(LogLevel::Info, "engine starting",
             {{"engine", opt_.name}, {"pid", std::to_string(owned->pid())}, {"port", std::to_string(port)},
              {"log", log_path()}});
    const auto t0 = Clock::now();
    const auto until = t0 + opt_.ready_timeout;
    for (;;) {
      if (!owned->running()) {
        const std::string how = owned->exit_description();
        return with_log(spec, "the " + opt_.name + " engine exited before it was ready (" + how + ")",
                        Errc::ModelLoadFailed);
      }
      auto health = http_get(root + spec.health_path, client, std::chrono::seconds(2));
      if (health && health->status == 200) break;
      if (Clock::now() >= until) {
        owned->stop(opt_.stop_grace);
        return with_log(spec, "the " + opt_.name + " engine was not ready within " +
                                  seconds_text(opt_.ready_timeout) + " (GET " + spec.health_path +
                                  " never answered 200); it was stopped",
                        Errc::ModelLoadFailed);
      }
      std::this_thread::sleep_for(opt_.poll_interval);
    }
    // The name to send as "model": the first the server lists (vLLM's --served-model-name).
    std::string served;
    if (auto models = http_get(client.base_url + "/models", client, std::chrono::seconds(10));
        models && models->status == 200) {
      auto j = nlohmann::json::parse(models->body, nullptr, false);
      if (!j.is_discarded() && j.is_object() && j.contains("data") && j["data"].is_array() && !j["data"].empty() &&
          j["data"][0].is_object() && j["data"][0].contains("id") && j["data"][0]["id"].is_string())
        served = j["data"][0]["id"].get<std::string>();
    }
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    log_.log(LogLevel::Info, "engine ready",
             {{"engine", opt_.name}, {"model", served}, {"ready_ms", std::to_string(static_cast<long>(ms))}});
    std::lock_guard lock(mu_);
    child_ = std::move(owned);
    spec_ = spec;
    client_ = client;
    served_model_ = served;
    loaded_ = true;
    accepting_ = true;
    cv_.notify_all();
    return {};
  }

  // `what`, with the log's last lines; engine.out_of_memory when they match an OOM pattern.
  Error with_log(const LaunchSpec& spec, std::string what, Errc code, std::string tail = {}) const {
    if (tail.empty()) tail = tail_lines(log_path(), opt_.log_tail_lines);
    for (const auto& p : spec.oom_patterns)
      if (!p.empty() && tail.find(p) != std::string::npos) {
        code = Errc::OutOfMemory;
        what += "; its log says it ran out of memory (\"" + p + "\"): lower max_model_len or gpu_memory_utilization";
        break;
      }
    if (!tail.empty()) what += "; last lines of " + log_path() + ":\n" + tail;
    else what += "; its log " + log_path() + " is empty";
    return Error(code, what);
  }

  // Closes the door, waits for in-flight requests, stops the child. lifecycle_mu_ held.
  void stop_locked() {
    std::unique_ptr<ChildProcess> child;
    {
      std::unique_lock lock(mu_);
      accepting_ = false;
      cv_.wait(lock, [&] { return in_flight_ == 0; });
      child = std::move(child_);
    }
    if (child && child->started()) {
      const pid_t pid = child->pid();
      const bool clean = child->stop(opt_.stop_grace);
      log_.log(clean ? LogLevel::Info : LogLevel::Warn, clean ? "engine stopped" : "engine killed after the grace period",
               {{"engine", opt_.name}, {"pid", std::to_string(pid)}, {"how", child->exit_description()}});
    }
  }

  void note_crash_locked() {  // mu_ held
    // The first crash restarts at once; each further crash in a row (no successful request
    // between) doubles the wait from restart_backoff up to restart_backoff_max.
    ++crashes_;
    std::chrono::milliseconds backoff{0};
    if (crashes_ > 1) {
      backoff = opt_.restart_backoff;
      for (int i = 2; i < crashes_ && backoff < opt_.restart_backoff_max; ++i) backoff *= 2;
      backoff = std::min(backoff, opt_.restart_backoff_max);
    }
    restart_not_before_ = Clock::now() + backoff;
    restart_pending_ = true;
  }

  // Before a request: a loaded engine whose child died is started again, once its back-off
  // has passed; until then requests get engine.unavailable saying when.
  bool needs_restart_locked() {  // mu_ held
    return loaded_ && (!child_ || !child_->running());
  }

  Result<void> ensure_running() {
    {
      std::lock_guard lock(mu_);
      if (!needs_restart_locked()) return {};
    }
    std::lock_guard life(lifecycle_mu_);
    std::string model;
    engine::EngineConfig config;
    {
      std::lock_guard lock(mu_);
      if (!needs_restart_locked()) return {};  // another request restarted it
      const std::string how = child_ ? child_->exit_description() : "its restart failed";
      if (!restart_pending_) note_crash_locked();  // it died while idle
      const auto now = Clock::now();
      if (now < restart_not_before_) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(restart_not_before_ - now);
        return Error(Errc::EngineUnavailable, "the " + opt_.name + " engine process ended (" + how +
                                                  "); restarting it in " + seconds_text(left));
      }
      restart_pending_ = false;
      model = model_;
      config = config_;
    }
    log_.log(LogLevel::Warn, "restarting the engine process", {{"engine", opt_.name}});
    stop_locked();  // reaps the dead group's stragglers
    const std::uint16_t port = pick_free_port();
    auto spec = opt_.launcher(model, config, port, work_dir_);
    Result<void> r = spec ? start_locked(*spec, port) : Result<void>(spec.error());
    if (!r) {
      std::lock_guard lock(mu_);
      note_crash_locked();
      accepting_ = true;  // requests get "restarting in ..." until the next try
      cv_.notify_all();
      return Error(Errc::EngineUnavailable, "restarting the " + opt_.name + " engine failed: " + r.error().message());
    }
    return {};
  }

  ProcessEngineOptions opt_;
  Logger& log_;
  std::string work_dir_;
  bool own_work_dir_ = false;
  std::mutex lifecycle_mu_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::unique_ptr<ChildProcess> child_;
  LaunchSpec spec_;
  ClientOptions client_;
  std::string served_model_;
  std::string model_;
  engine::EngineConfig config_;
  bool loaded_ = false;
  bool accepting_ = false;
  int in_flight_ = 0;
  int crashes_ = 0;
  bool restart_pending_ = false;  // a crash was noted; restart_not_before_ applies
  Clock::time_point restart_not_before_{};
};

}  // namespace

std::unique_ptr<engine::BaseEngine> make_process_engine(ProcessEngineOptions options, Logger& log) {
  return std::make_unique<ProcessEngine>(std::move(options), log);
}

}  // namespace cyllm::external

// llama_runner: the llama.cpp child of bench/engine. Not built by meson: the setup
// script (scripts/setup-llama-bench) compiles it against llama.h from node-llama-cpp's
// source bundle and links node-llama-cpp's prebuilt libraries, so that the header and the
// libraries are the same version. See engine_bench_child.h for the procedure.
//   llama_runner --info
//   llama_runner --model F --mode single|batch --threads T [--reps N] [--budget S] ...
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "engine_bench_child.h"
#include "ggml-backend.h"
#include "llama.h"

#ifndef LLAMA_BINS_DIR
#error "compile with -DLLAMA_BINS_DIR=\"...\" (scripts/setup-llama-bench does)"
#endif

namespace {

void quiet_log(ggml_log_level, const char*, void*) {}

// The CPU variant ggml picked (libggml-cpu-<variant>.so), from our own mappings.
std::string cpu_variant() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const auto p = line.find("libggml-cpu-");
    if (p != std::string::npos) return line.substr(p);
  }
  return "unknown";
}

class LlamaAdapter {
 public:
  ~LlamaAdapter() {
    end();
    if (model_) llama_model_free(model_);
  }
  bool load(const std::string& path, int threads, std::string& err) {
    threads_ = threads;
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    model_ = llama_model_load_from_file(path.c_str(), mp);
    if (!model_) {
      err = "llama_model_load_from_file failed";
      return false;
    }
    n_vocab_ = llama_vocab_n_tokens(llama_model_get_vocab(model_));
    return true;
  }
  bool begin(int n_seqs, int n_ctx, std::string& err) {
    end();
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = static_cast<uint32_t>(n_ctx * n_seqs);
    cp.n_batch = 512;
    cp.n_ubatch = 512;
    cp.n_seq_max = static_cast<uint32_t>(n_seqs);
    cp.kv_unified = false;  // a KV stream per sequence: unrelated prompts, no shared prefix
    cp.n_threads = threads_;
    cp.n_threads_batch = threads_;
    cp.no_perf = true;
    ctx_ = llama_init_from_model(model_, cp);
    if (!ctx_) {
      err = "llama_init_from_model failed";
      return false;
    }
    batch_ = llama_batch_init(512, 0, 1);
    pos_.assign(static_cast<std::size_t>(n_seqs), 0);
    return true;
  }
  int n_vocab() const { return n_vocab_; }
  void clear() {
    llama_memory_clear(llama_get_memory(ctx_), false);
    pos_.assign(pos_.size(), 0);
  }
  bool eval(const std::vector<int>& tokens, std::string& err) {
    std::vector<std::vector<int>> one = {tokens};
    return step(one, err);
  }
  bool step(const std::vector<std::vector<int>>& per_seq, std::string& err) {
    int n = 0;
    for (std::size_t s = 0; s < per_seq.size(); ++s) {
      for (std::size_t i = 0; i < per_seq[s].size(); ++i) {
        if (n == 512) {
          err = "more than 512 tokens in one step";
          return false;
        }
        batch_.token[n] = per_seq[s][i];
        batch_.pos[n] = pos_[s]++;
        batch_.n_seq_id[n] = 1;
        batch_.seq_id[n][0] = static_cast<llama_seq_id>(s);
        batch_.logits[n] = i + 1 == per_seq[s].size();
        ++n;
      }
    }
    batch_.n_tokens = n;
    const int rc = llama_decode(ctx_, batch_);
    llama_synchronize(ctx_);
    if (rc != 0) {
      err = "llama_decode returned " + std::to_string(rc);
      return false;
    }
    return true;
  }
  bool logits_finite() const {
    const float* l = llama_get_logits_ith(ctx_, -1);
    return l && engine_bench::all_finite(l, static_cast<std::size_t>(n_vocab_));
  }
  void end() {
    if (ctx_) {
      llama_batch_free(batch_);
      llama_free(ctx_);
      ctx_ = nullptr;
    }
  }

 private:
  llama_model* model_ = nullptr;
  llama_context* ctx_ = nullptr;
  llama_batch batch_{};
  std::vector<llama_pos> pos_;
  int threads_ = 1;
  int n_vocab_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  llama_log_set(quiet_log, nullptr);
  ggml_backend_load_all_from_path(LLAMA_BINS_DIR);
  llama_backend_init();
  if (argc == 2 && std::strcmp(argv[1], "--info") == 0) {
    // Loading a backend is enough to see the variant; print what identifies this build.
    std::printf("cpu_variant %s\n", cpu_variant().c_str());
    std::printf("system_info %s\n", llama_print_system_info());
    // The build's own version stamp lives in libllama-common (data symbols).
    if (void* h = ::dlopen(LLAMA_BINS_DIR "/libllama-common.so", RTLD_NOW | RTLD_LOCAL)) {
      const auto* commit = static_cast<const char* const*>(::dlsym(h, "LLAMA_COMMIT"));
      const auto* number = static_cast<const int*>(::dlsym(h, "LLAMA_BUILD_NUMBER"));
      if (commit && *commit) std::printf("commit %s\n", *commit);
      if (number) std::printf("build_number %d\n", *number);
    }
    return 0;
  }
  engine_bench::ChildArgs a;
  if (!engine_bench::parse_child_args(argc, argv, 1, a)) {
    std::fprintf(stderr, "usage: llama_runner --info | --model F --mode single|batch --threads T ...\n");
    return 2;
  }
  LlamaAdapter e;
  const int rc = engine_bench::run_child(e, a);
  llama_backend_free();
  return rc;
}

// bench/engine: cy-llm's native engine against llama.cpp on the same GGUF files, with the
// same thread counts.
//   engine_bench [options] MODELS_DIR
// Writes TinyLlama-1.1B-shaped random-weight models (dim 2048, 22 layers, 32 heads, 4 KV
// heads, FFN 5632, vocab 32000, llama architecture, SentencePiece-style byte vocabulary)
// with gguf::Writer / quantize_row into MODELS_DIR (kept between runs), then, per thread
// count and type, runs each engine in a child process and prints prompt processing
// (pp512) and generation (tg128) tokens/s, peak RSS, load time, the ratios to llama.cpp,
// and aggregate decoding tokens/s at 1, 4 and 16 sequences (model::eval_batch; llama.cpp:
// one llama_batch holding every sequence). The measuring procedure is in
// engine_bench_child.h; llama.cpp's child is llama_runner, built by
// scripts/setup-llama-bench (npm node-llama-cpp@3.21.1: prebuilt libraries + llama.h).
// Not part of the test suite. Options: see usage().
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cyllm/gguf.h"
#include "cyllm/model.h"
#include "engine_bench_child.h"

namespace fs = std::filesystem;
using namespace cyllm;

namespace {

// ---- Models ----------------------------------------------------------------------------

struct Shape {
  std::uint32_t n_embd = 2048, n_layer = 22, n_head = 32, n_head_kv = 4, n_ff = 5632,
                n_vocab = 32000, n_ctx = 2048;
};

struct BenchType {
  const char* name;          // as on the command line and in the table
  gguf::TensorType matrices; // every 2-D weight, unless overridden below
  std::uint32_t file_type;   // general.file_type (llama_ftype numbering)
  bool k_mix;                // Q4_K_M-like: Q6_K for output and some attn_v / ffn_down
};

const BenchType kTypes[] = {
    {"f16", gguf::TensorType::F16, 1, false},
    {"q8_0", gguf::TensorType::Q8_0, 7, false},
    {"q4_0", gguf::TensorType::Q4_0, 2, false},
    {"q4_k_m", gguf::TensorType::Q4_K, 15, true},
};

const BenchType* find_type(const std::string& name) {
  for (const auto& t : kTypes)
    if (name == t.name) return &t;
  return nullptr;
}

// Layers whose attn_v and ffn_down get the bigger type in a Q4_K_M file: the first and
// last eighth of the stack and every third layer in between.
bool more_bits(std::uint32_t layer, std::uint32_t n_layer) {
  return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

// Approximately normal draws (sum of four uniforms, variance matched), fast and the same
// on every platform.
class Normal {
 public:
  explicit Normal(std::uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  float operator()() {
    float sum = 0;
    for (int i = 0; i < 4; ++i) {
      s_ ^= s_ << 13;
      s_ ^= s_ >> 7;
      s_ ^= s_ << 17;
      sum += static_cast<float>(s_ >> 40) * (1.0f / 16777216.0f);
    }
    return (sum - 2.0f) * 1.7320508f;  // mean 0, variance 4/12 * 3 = 1
  }

 private:
  std::uint64_t s_;
};

void add_vocab(gguf::Writer& w, std::uint32_t n_vocab) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<std::int32_t> types = {2, 3, 3};  // unknown, control, control
  char buf[16];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    tokens.emplace_back(buf);
    types.push_back(6);  // byte
  }
  for (std::uint32_t i = 0; tokens.size() < n_vocab; ++i) {
    tokens.push_back("\xE2\x96\x81w" + std::to_string(i));  // U+2581 "w<i>": distinct pieces
    types.push_back(1);                                      // normal
  }
  std::vector<float> scores(tokens.size());
  for (std::size_t i = 0; i < scores.size(); ++i) scores[i] = -static_cast<float>(i);
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_strings("tokenizer.ggml.tokens", std::move(tokens));
  w.set_f32s("tokenizer.ggml.scores", std::move(scores));
  w.set_i32s("tokenizer.ggml.token_type", std::move(types));
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
}

Result<void> write_model(const std::string& path, const Shape& s, const BenchType& t) {
  gguf::Writer w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", std::string("cy-llm engine bench (RANDOM weights) ") + t.name);
  w.set_u32("general.file_type", t.file_type);
  w.set_u32("llama.context_length", s.n_ctx);
  w.set_u32("llama.embedding_length", s.n_embd);
  w.set_u32("llama.block_count", s.n_layer);
  w.set_u32("llama.feed_forward_length", s.n_ff);
  w.set_u32("llama.attention.head_count", s.n_head);
  w.set_u32("llama.attention.head_count_kv", s.n_head_kv);
  w.set_u32("llama.rope.dimension_count", s.n_embd / s.n_head);
  w.set_f32("llama.rope.freq_base", 10000.0f);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_u32("llama.vocab_size", s.n_vocab);
  add_vocab(w, s.n_vocab);

  Normal rng(42);
  // N(0, 0.02^2) weights as in a freshly initialised model; norms 1: activations stay
  // small and finite through every layer.
  auto mat = [&](const std::string& name, std::uint64_t cols, std::uint64_t rows, gguf::TensorType type) {
    std::vector<float> v(cols * rows);
    for (float& x : v) x = 0.02f * rng();
    w.add_tensor(name, {cols, rows}, type, v);
  };
  const std::vector<float> ones(s.n_embd, 1.0f);
  const std::uint64_t kv_dim = std::uint64_t{s.n_embd} / s.n_head * s.n_head_kv;
  const gguf::TensorType big = t.k_mix ? gguf::TensorType::Q6_K : t.matrices;
  mat("token_embd.weight", s.n_embd, s.n_vocab, t.matrices);
  for (std::uint32_t l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    const gguf::TensorType vd = t.k_mix && more_bits(l, s.n_layer) ? big : t.matrices;
    w.add_tensor(p + "attn_norm.weight", {s.n_embd}, gguf::TensorType::F32, ones);
    mat(p + "attn_q.weight", s.n_embd, s.n_embd, t.matrices);
    mat(p + "attn_k.weight", s.n_embd, kv_dim, t.matrices);
    mat(p + "attn_v.weight", s.n_embd, kv_dim, vd);
    mat(p + "attn_output.weight", s.n_embd, s.n_embd, t.matrices);
    w.add_tensor(p + "ffn_norm.weight", {s.n_embd}, gguf::TensorType::F32, ones);
    mat(p + "ffn_gate.weight", s.n_embd, s.n_ff, t.matrices);
    mat(p + "ffn_up.weight", s.n_embd, s.n_ff, t.matrices);
    mat(p + "ffn_down.weight", s.n_ff, s.n_embd, vd);
  }
  w.add_tensor("output_norm.weight", {s.n_embd}, gguf::TensorType::F32, ones);
  mat("output.weight", s.n_embd, s.n_vocab, big);
  return w.write(path);
}

// ---- The native child -------------------------------------------------------------------

class NativeAdapter {
 public:
  bool load(const std::string& path, int threads, std::string& err) {
    threads_ = threads;
    model::LoadOptions opts;
    // --no-repack in the parent: the weights used in place (the A/B of repacking).
    const char* repack = std::getenv("CYLLM_BENCH_REPACK");
    opts.repack = !(repack && std::strcmp(repack, "0") == 0);
    auto m = model::Model::load(path, opts);
    if (!m) {
      err = m.error().to_string();
      return false;
    }
    model_ = std::move(*m);
    return true;
  }
  bool begin(int n_seqs, int n_ctx, std::string& err) {
    sessions_.clear();
    model::SessionOptions o;
    o.n_ctx = static_cast<std::uint32_t>(n_ctx);
    o.n_threads = static_cast<std::uint32_t>(threads_);
    for (int i = 0; i < n_seqs; ++i) {
      auto s = model::Session::create(model_, o);
      if (!s) {
        err = s.error().to_string();
        return false;
      }
      sessions_.push_back(std::move(*s));
    }
    return true;
  }
  int n_vocab() const { return static_cast<int>(model_->hparams().n_vocab); }
  void clear() {
    for (auto& s : sessions_) s->truncate(0);
  }
  bool eval(const std::vector<int>& tokens, std::string& err) {
    const std::vector<tokenizer::TokenId> ids(tokens.begin(), tokens.end());
    auto r = sessions_[0]->eval(ids);
    if (!r) err = r.error().to_string();
    return r.ok();
  }
  bool step(const std::vector<std::vector<int>>& per_seq, std::string& err) {
    std::vector<std::vector<tokenizer::TokenId>> ids;
    std::vector<model::BatchEntry> entries;
    for (const auto& t : per_seq) ids.emplace_back(t.begin(), t.end());
    for (std::size_t i = 0; i < ids.size(); ++i) entries.push_back({sessions_[i].get(), ids[i]});
    auto r = model::eval_batch(entries);
    if (!r) err = r.error().to_string();
    return r.ok();
  }
  bool logits_finite() const {
    const auto l = sessions_[0]->logits();
    return engine_bench::all_finite(l.data(), l.size());
  }
  void end() { sessions_.clear(); }

 private:
  std::shared_ptr<const model::Model> model_;
  std::vector<std::unique_ptr<model::Session>> sessions_;
  int threads_ = 1;
};

// ---- The parent -------------------------------------------------------------------------

struct ChildResult {
  bool ok = false;
  std::map<std::string, std::string> values;  // key -> rest of the line
  double peak_rss_mib = 0;                      // ru_maxrss of the child
  std::string error;
};

std::string tail_of_file(const std::string& path, std::size_t max) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (s.size() > max) s = "..." + s.substr(s.size() - max);
  return s;
}

ChildResult run_child_process(const std::vector<std::string>& argv, const std::string& stderr_path) {
  ChildResult res;
  int fds[2];
  if (::pipe(fds) != 0) {
    res.error = "pipe failed";
    return res;
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    const int err = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (err >= 0) ::dup2(err, 2);
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    ::execv(a[0], a.data());
    std::fprintf(stderr, "cannot run %s: %s\n", a[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  struct rusage ru {};
  ::wait4(pid, &status, 0, &ru);
  res.peak_rss_mib = static_cast<double>(ru.ru_maxrss) / 1024.0;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    const auto sp = line.find(' ');
    if (sp == std::string::npos) continue;
    res.values[line.substr(0, sp)] = line.substr(sp + 1);
  }
  res.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!res.ok) {
    auto e = res.values.find("error");
    res.error = e != res.values.end() ? e->second : tail_of_file(stderr_path, 300);
    if (res.error.empty()) res.error = "exit status " + std::to_string(status);
  }
  return res;
}

// First number of a value ("12.3 3" -> 12.3), or nullopt.
std::optional<double> number(const ChildResult& r, const std::string& key) {
  auto it = r.values.find(key);
  if (it == r.values.end()) return std::nullopt;
  return std::atof(it->second.c_str());
}
// Runs behind a median ("12.3 3" -> 3).
int runs_of(const ChildResult& r, const std::string& key) {
  auto it = r.values.find(key);
  if (it == r.values.end()) return 0;
  const auto sp = it->second.find(' ');
  return sp == std::string::npos ? 0 : std::atoi(it->second.c_str() + sp + 1);
}

struct Options {
  std::string models_dir;
  std::string llama_dir;
  std::vector<int> threads = {1, 2};
  std::vector<std::string> types = {"f16", "q8_0", "q4_0", "q4_k_m"};
  int reps = 3;
  double budget = 120;
  bool quick = false;
  bool llama = true;
  bool batch = true;
  bool write_only = false;
  std::vector<int> seqs = {1, 4, 16};
  int steps = 32;
};

void usage() {
  std::fprintf(stderr,
               "usage: engine_bench [options] MODELS_DIR\n"
               "  -t LIST          thread counts (default 1,2)\n"
               "  --types LIST     f16,q8_0,q4_0,q4_k_m (default all)\n"
               "  --reps N         timed runs per test, median reported (default 3)\n"
               "  --budget S       stop adding runs to a test after S seconds (default 120)\n"
               "  --quick          4 layers instead of 22 (development)\n"
               "  --seqs LIST      concurrent sequences for aggregate decoding (default 1,4,16)\n"
               "  --steps N        decoding steps per sequence in that test (default 32)\n"
               "  --no-batch       skip the aggregate decoding test\n"
               "  --no-repack      cy-llm uses its weights in place (LoadOptions::repack = false)\n"
               "  --write-only     write the models that are missing, then stop\n"
               "  --no-llama       native engine only (no ratios)\n"
               "  --llama-dir DIR  where scripts/setup-llama-bench put llama_runner\n"
               "                   (default ${XDG_CACHE_HOME:-~/.cache}/cy-llm/bench)\n");
}

std::string default_llama_dir() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  const std::string base = xdg && *xdg ? xdg : std::string(home ? home : ".") + "/.cache";
  return base + "/cy-llm/bench";
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> v;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');)
    if (!x.empty()) v.push_back(x);
  return v;
}

std::string cpu_name() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

std::string loadavg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string fmt(std::optional<double> v, const char* f = "%.1f") {
  if (!v) return "-";
  char b[32];
  std::snprintf(b, sizeof b, f, *v);
  return b;
}
std::string ratio(std::optional<double> a, std::optional<double> b) {
  if (!a || !b || *b <= 0) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fx", *a / *b);
  return buf;
}
// "12.3 (n=1)" when a median is of fewer runs than asked.
std::string rate(const ChildResult& r, const std::string& key, int reps) {
  auto v = number(r, key);
  if (!r.ok && !v) return "FAIL";
  std::string s = fmt(v);
  const int n = runs_of(r, key);
  if (v && n < reps) s += "(n=" + std::to_string(n) + ")";
  if (key == "tg_tps" && v && r.values.count("tg_tokens")) s += "(" + r.values.at("tg_tokens") + "tok)";
  return s;
}

int parent(const Options& o, const char* self) {
  Shape shape;
  if (o.quick) shape.n_layer = 4;
  std::error_code ec;
  fs::create_directories(o.models_dir, ec);
  if (ec) {
    std::fprintf(stderr, "engine_bench: cannot create %s: %s\n", o.models_dir.c_str(), ec.message().c_str());
    return 1;
  }
  const std::string runner = o.llama_dir + "/llama_runner";
  std::string llama_desc = "not run (--no-llama)";
  if (o.llama && !o.write_only) {
    if (::access(runner.c_str(), X_OK) != 0) {
      std::fprintf(stderr,
                   "engine_bench: llama.cpp is not set up (no %s).\n"
                   "Run scripts/setup-llama-bench%s first (npm node-llama-cpp@3.21.1: prebuilt\n"
                   "libraries and llama.h; a few seconds after the npm download), or pass --no-llama.\n",
                   runner.c_str(), o.llama_dir == default_llama_dir() ? "" : (" " + o.llama_dir).c_str());
      return 1;
    }
    auto info = run_child_process({runner, "--info"}, o.models_dir + "/llama_runner.stderr");
    if (!info.ok) {
      std::fprintf(stderr, "engine_bench: %s --info failed: %s\nRerun scripts/setup-llama-bench.\n",
                   runner.c_str(), info.error.c_str());
      return 1;
    }
    llama_desc = "llama.cpp commit " + info.values["commit"] + " (" + tail_of_file(o.llama_dir + "/llama_runner.txt", 200) +
                 "), CPU backend " + info.values["cpu_variant"];
  }

  // Models first, so that writing them does not disturb any timing.
  std::map<std::string, std::string> paths;
  std::map<std::string, double> sizes;
  for (const auto& tn : o.types) {
    const BenchType* t = find_type(tn);
    const std::string path = o.models_dir + "/tinyllama-shape-" + std::to_string(shape.n_layer) + "L-" + tn + "-v1.gguf";
    if (!fs::is_regular_file(path)) {
      std::fprintf(stderr, "engine_bench: writing %s ...\n", path.c_str());
      const auto t0 = std::chrono::steady_clock::now();
      auto r = write_model(path, shape, *t);
      if (!r) {
        std::fprintf(stderr, "engine_bench: %s\n", r.error().to_string().c_str());
        return 1;
      }
      std::fprintf(stderr, "engine_bench: wrote it in %.1f s\n", engine_bench::seconds_since(t0));
    }
    paths[tn] = path;
    sizes[tn] = static_cast<double>(fs::file_size(path)) / (1 << 20);
  }

  if (o.write_only) return 0;

  std::printf("# cy-llm bench/engine: native engine vs llama.cpp, same GGUF files, same threads\n");
  std::printf("# machine: %s, %ld CPUs online\n", cpu_name().c_str(), ::sysconf(_SC_NPROCESSORS_ONLN));
  std::printf("# llama.cpp: %s\n", llama_desc.c_str());
  std::printf("# load average at start: %s (other work on the machine skews every figure)\n", loadavg().c_str());
  std::printf("# model: TinyLlama-1.1B shape%s: dim %u, %u layers, %u heads, %u KV heads, FFN %u, vocab %u;\n",
              o.quick ? " (--quick: fewer layers)" : "", shape.n_embd, shape.n_layer, shape.n_head,
              shape.n_head_kv, shape.n_ff, shape.n_vocab);
  std::printf("#   random N(0,0.02) weights written by cy-llm (gguf::Writer, quantize_row); f16/q8_0/q4_0:\n"
              "#   every matrix incl. token_embd and output in that type; q4_k_m: Q4_K, with Q6_K for\n"
              "#   output and for attn_v/ffn_down in the first/last 1/8 of layers and every 3rd between.\n");
  std::printf("# method: each engine in its own child process; load = model load + context for 1024\n"
              "#   tokens; warm-up (16-token + 1-token eval), then median of %d runs (fewer, shown as n=,\n"
              "#   when a test passes %.0f s; a tg run stops there too: (Ntok)); pp512 = one 512-token eval (batch 512) from an empty\n"
              "#   cache; tg128 = 128 one-token evals from an empty cache (as llama-bench); peak RSS =\n"
              "#   ru_maxrss of that child. ratio = cy-llm / llama.cpp (speed: >1 is faster; RSS, load:\n"
              "#   <1 is smaller). Aggregate decoding: S sequences, 8-token prompt each, then %d steps\n"
              "#   of one token per sequence in one forward pass (cy-llm: model::eval_batch; llama.cpp:\n"
              "#   one llama_batch with S seq_ids, a KV stream per sequence); tokens/s = S*%d/time.\n",
              o.reps, o.budget, o.steps, o.steps);

  const std::string exe = fs::read_symlink("/proc/self/exe", ec).string();
  auto child_argv = [&](bool native, const std::string& model, const char* mode, int threads) {
    std::vector<std::string> a;
    if (native) a = {ec ? std::string(self) : exe, "--child"};
    else a = {runner};
    const std::vector<std::string> rest = {
        "--model", model, "--mode", mode, "--threads", std::to_string(threads), "--reps",
        std::to_string(o.reps), "--budget", std::to_string(o.budget), "--steps", std::to_string(o.steps)};
    a.insert(a.end(), rest.begin(), rest.end());
    std::string seqs;
    for (int s : o.seqs) seqs += (seqs.empty() ? "" : ",") + std::to_string(s);
    a.push_back("--seqs");
    a.push_back(seqs);
    return a;
  };
  const std::string errfile = o.models_dir + "/child.stderr";
  int failures = 0;
  for (int t : o.threads) {
    std::printf("\n## threads %d\n", t);
    std::printf("%-7s %6s | %-30s | %-34s | %-22s | %-20s\n", "type", "MiB", "pp512 t/s cy-llm/llama", "tg128 t/s cy-llm/llama",
                "peak RSS MiB cy/llama", "load s cy/llama");
    std::fflush(stdout);
    std::map<std::string, std::pair<ChildResult, ChildResult>> batch_results;
    for (const auto& tn : o.types) {
      ChildResult n = run_child_process(child_argv(true, paths[tn], "single", t), errfile);
      ChildResult l;
      if (o.llama) l = run_child_process(child_argv(false, paths[tn], "single", t), errfile);
      for (const ChildResult* r : {&n, &l})
        if (!r->ok && (r == &n || o.llama)) {
          ++failures;
          std::fprintf(stderr, "engine_bench: %s %s -t %d failed: %s\n", r == &n ? "cy-llm" : "llama.cpp", tn.c_str(), t,
                       r->error.c_str());
        }
      for (const ChildResult* r : {&n, &l})
        if (r->ok && r->values.count("logits_finite") && r->values.at("logits_finite") != "1")
          std::fprintf(stderr, "engine_bench: WARNING: %s %s: logits not finite (or all zero) after pp\n",
                       r == &n ? "cy-llm" : "llama.cpp", tn.c_str());
      auto cell = [](const std::string& a, const std::string& b, const std::string& r) {
        return a + " / " + b + (r.empty() ? "" : " (" + r + ")");
      };
      auto rss = [](const ChildResult& r) { return r.ok ? std::optional<double>(r.peak_rss_mib) : std::nullopt; };
      std::printf("%-7s %6.0f | %-30s | %-34s | %-22s | %-20s\n", tn.c_str(), sizes[tn],
                  cell(rate(n, "pp_tps", o.reps), o.llama ? rate(l, "pp_tps", o.reps) : "-",
                       ratio(number(n, "pp_tps"), number(l, "pp_tps"))).c_str(),
                  cell(rate(n, "tg_tps", o.reps), o.llama ? rate(l, "tg_tps", o.reps) : "-",
                       ratio(number(n, "tg_tps"), number(l, "tg_tps"))).c_str(),
                  cell(fmt(rss(n), "%.0f"), fmt(rss(l), "%.0f"), ratio(rss(n), rss(l))).c_str(),
                  cell(fmt(number(n, "load_s"), "%.2f"), fmt(number(l, "load_s"), "%.2f"),
                       ratio(number(n, "load_s"), number(l, "load_s"))).c_str());
      std::fflush(stdout);
    }
    if (!o.batch) continue;
    std::printf("\n%-7s %5s | %-14s %-14s %-7s | %s\n", "type", "seqs", "cy-llm agg t/s", "llama agg t/s", "ratio",
                "cy-llm vs 1 seq");
    for (const auto& tn : o.types) {
      ChildResult n = run_child_process(child_argv(true, paths[tn], "batch", t), errfile);
      ChildResult l;
      if (o.llama) l = run_child_process(child_argv(false, paths[tn], "batch", t), errfile);
      for (const ChildResult* r : {&n, &l})
        if (!r->ok && (r == &n || o.llama)) {
          ++failures;
          std::fprintf(stderr, "engine_bench: batch %s %s -t %d failed: %s\n", r == &n ? "cy-llm" : "llama.cpp",
                       tn.c_str(), t, r->error.c_str());
        }
      const auto one = number(n, "batch_tps_1");
      for (int s : o.seqs) {
        const std::string key = "batch_tps_" + std::to_string(s);
        std::printf("%-7s %5d | %-14s %-14s %-7s | %s\n", tn.c_str(), s, rate(n, key, o.reps).c_str(),
                    o.llama ? rate(l, key, o.reps).c_str() : "-", ratio(number(n, key), number(l, key)).c_str(),
                    ratio(number(n, key), one).c_str());
      }
      std::fflush(stdout);
    }
  }
  std::printf("\n# load average at end: %s\n", loadavg().c_str());
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--child") == 0) {
    engine_bench::ChildArgs a;
    if (!engine_bench::parse_child_args(argc, argv, 2, a)) {
      std::fprintf(stderr, "engine_bench --child: bad arguments\n");
      return 2;
    }
    NativeAdapter e;
    return engine_bench::run_child(e, a);
  }
  Options o;
  o.llama_dir = default_llama_dir();
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (f == "-t" || f == "--threads") o.threads = engine_bench::parse_int_list(next());
    else if (f == "--types") o.types = split(next());
    else if (f == "--reps") o.reps = std::max(1, std::atoi(next()));
    else if (f == "--budget") o.budget = std::atof(next());
    else if (f == "--quick") o.quick = true;
    else if (f == "--seqs") o.seqs = engine_bench::parse_int_list(next());
    else if (f == "--steps") o.steps = std::max(1, std::atoi(next()));
    else if (f == "--no-batch") o.batch = false;
    else if (f == "--no-repack") ::setenv("CYLLM_BENCH_REPACK", "0", 1);
    else if (f == "--write-only") o.write_only = true;
    else if (f == "--no-llama") o.llama = false;
    else if (f == "--llama-dir") o.llama_dir = next();
    else if (f == "-h" || f == "--help") {
      usage();
      return 0;
    } else if (!f.empty() && f[0] == '-') {
      std::fprintf(stderr, "engine_bench: unknown option %s\n", f.c_str());
      usage();
      return 2;
    } else o.models_dir = f;
  }
  if (o.models_dir.empty() || o.threads.empty()) {
    usage();
    return 2;
  }
  for (const auto& t : o.types)
    if (!find_type(t)) {
      std::fprintf(stderr, "engine_bench: unknown type %s (f16, q8_0, q4_0, q4_k_m)\n", t.c_str());
      return 2;
    }
  return parent(o, argv[0]);
}

#include "model/weights.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <new>
#include <thread>
#include <string>

#include "model/repack.h"

namespace cyllm::model {
namespace {

using Shape = std::vector<std::uint64_t>;

std::string shape_text(const Shape& s) {
  std::string r = "[";
  for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

class Binder {
 public:
  Binder(const gguf::File& file, const HParams& hp) : file_(file), hp_(hp) {}

  // The tensor `name` of shape `shape`; nullptr (no error) when optional and absent.
  Result<const gguf::TensorInfo*> find(const std::string& name, const Shape& shape, bool required) {
    const gguf::TensorInfo* t = file_.tensor(name);
    if (!t) {
      if (!required) return static_cast<const gguf::TensorInfo*>(nullptr);
      return Error(Errc::BadModel, "tensor \"" + name + "\" is missing (" + hp_.arch_name +
                                       " needs it, shape " + shape_text(shape) + ")");
    }
    if (t->ne != shape)
      return Error(Errc::BadModel, "tensor \"" + name + "\" has shape " + shape_text(t->ne) + " but " +
                                       hp_.arch_name + " needs " + shape_text(shape));
    const gguf::TypeTraits* tr = gguf::type_traits(static_cast<std::uint32_t>(t->type));
    if (!tr || !tr->computable)
      return Error(Errc::GgufUnsupportedType,
                   "tensor \"" + name + "\" has type " + (tr ? std::string(tr->name) : std::to_string(static_cast<std::uint32_t>(t->type))) +
                       ", which this engine cannot compute");
    if (shape[0] % tr->block_elems != 0)
      return Error(Errc::BadModel, "tensor \"" + name + "\" rows of " + std::to_string(shape[0]) +
                                       " elements are not a whole number of " + std::string(tr->name) + " blocks");
    return t;
  }

  Result<WeightMatrix> matrix(const std::string& name, std::uint64_t n_in, std::uint64_t n_out,
                              bool required = true) {
    const gguf::TensorInfo* t = CYLLM_TRY(find(name, {n_in, n_out}, required));
    WeightMatrix m;
    if (!t) return m;
    m.type = t->type;
    m.n_cols = n_in;
    m.n_rows = n_out;
    m.row_bytes = gguf::row_bytes(t->type, n_in);
    m.data = t->data;
    return m;
  }

  // A 1-D tensor dequantized to f32; empty when optional and absent.
  Result<std::vector<float>> vector(const std::string& name, std::uint64_t n, bool required = true) {
    const gguf::TensorInfo* t = CYLLM_TRY(find(name, {n}, required));
    std::vector<float> v;
    if (!t) return v;
    v.resize(n);
    gguf::dequantize_row(t->type, t->data, v.data(), static_cast<std::int64_t>(n));
    return v;
  }

 private:
  const gguf::File& file_;
  const HParams& hp_;
};

}  // namespace

Result<Weights> bind_weights(const gguf::File& file, const HParams& hp) try {
  Binder b(file, hp);
  const std::uint64_t n_embd = hp.n_embd, n_vocab = hp.n_vocab, n_ff = hp.n_ff;
  const std::uint64_t q_dim = std::uint64_t{hp.n_head} * hp.head_dim;
  const std::uint64_t kv_dim = std::uint64_t{hp.n_head_kv} * hp.head_dim;
  const bool qwen2 = hp.arch == Arch::Qwen2, qwen3 = hp.arch == Arch::Qwen3;

  Weights w;
  w.token_embd = CYLLM_TRY(b.matrix("token_embd.weight", n_embd, n_vocab));
  w.output_norm = CYLLM_TRY(b.vector("output_norm.weight", n_embd));
  w.output = hp.tied_embeddings ? w.token_embd : CYLLM_TRY(b.matrix("output.weight", n_embd, n_vocab));
  w.rope_freqs = CYLLM_TRY(b.vector("rope_freqs.weight", hp.n_rot / 2, false));
  w.layers.resize(hp.n_layer);
  for (std::uint32_t il = 0; il < hp.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    LayerWeights& l = w.layers[il];
    l.attn_norm = CYLLM_TRY(b.vector(p + "attn_norm.weight", n_embd));
    l.wq = CYLLM_TRY(b.matrix(p + "attn_q.weight", n_embd, q_dim));
    l.wk = CYLLM_TRY(b.matrix(p + "attn_k.weight", n_embd, kv_dim));
    l.wv = CYLLM_TRY(b.matrix(p + "attn_v.weight", n_embd, kv_dim));
    l.wo = CYLLM_TRY(b.matrix(p + "attn_output.weight", q_dim, n_embd));
    // QKV biases: required by qwen2, accepted when present for the others.
    l.bq = CYLLM_TRY(b.vector(p + "attn_q.bias", q_dim, qwen2));
    l.bk = CYLLM_TRY(b.vector(p + "attn_k.bias", kv_dim, qwen2));
    l.bv = CYLLM_TRY(b.vector(p + "attn_v.bias", kv_dim, qwen2));
    if (qwen3) {
      l.q_norm = CYLLM_TRY(b.vector(p + "attn_q_norm.weight", hp.head_dim));
      l.k_norm = CYLLM_TRY(b.vector(p + "attn_k_norm.weight", hp.head_dim));
    }
    l.ffn_norm = CYLLM_TRY(b.vector(p + "ffn_norm.weight", n_embd));
    l.w_gate = CYLLM_TRY(b.matrix(p + "ffn_gate.weight", n_embd, n_ff));
    l.w_up = CYLLM_TRY(b.matrix(p + "ffn_up.weight", n_embd, n_ff));
    l.w_down = CYLLM_TRY(b.matrix(p + "ffn_down.weight", n_ff, n_embd));
  }
  return w;
} catch (const std::bad_alloc&) {
  return Error(Errc::OutOfMemory, "out of memory while binding the weights");
}

PageBuffer::PageBuffer(std::size_t n) : n_(n) {
  void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  ::madvise(p, n, MADV_HUGEPAGE);  // a hint: fails harmlessly where THP is off
  p_ = static_cast<std::byte*>(p);
}

PageBuffer::~PageBuffer() {
  if (p_) ::munmap(p_, n_);
}

namespace {

// Drops the whole pages of [p, p + n) from the process (they are read-only pages of a
// private file mapping: a later read would fault them in again from the file).
void drop_pages(const std::byte* p, std::size_t n) {
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t b = (a + page - 1) / page * page, e = (a + n) / page * page;
  if (b < e) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

void repack(WeightMatrix& m, std::vector<PageBuffer>& owned, bool file_mmapped, unsigned n_threads) {
  if (m.empty() || m.x8 || !x8_supported(m.type, m.n_rows, m.n_cols)) return;
  const std::size_t n = m.n_rows * m.row_bytes;
  PageBuffer buf(m.n_rows * x8_row_bytes(m.type, m.row_bytes));
  // Groups of 8 rows split across the threads (the first part on this one).
  const std::size_t groups = m.n_rows / 8, per = (groups + n_threads - 1) / n_threads;
  const std::size_t group_bytes = 8 * m.row_bytes, x8_group_bytes = 8 * x8_row_bytes(m.type, m.row_bytes);
  auto part = [&](std::size_t g0) {
    const std::size_t g1 = std::min(groups, g0 + per);
    if (g0 < g1)
      repack_x8(m.type, m.data + g0 * group_bytes, m.row_bytes, (g1 - g0) * 8, buf.data() + g0 * x8_group_bytes);
  };
  std::vector<std::thread> threads;
  for (unsigned i = 1; i < n_threads && i * per < groups; ++i) threads.emplace_back(part, i * per);
  part(0);
  for (std::thread& t : threads) t.join();
  if (file_mmapped) drop_pages(m.data, n);
  m.data = buf.data();
  m.x8 = true;
  owned.push_back(std::move(buf));
}

}  // namespace

void repack_weights(Weights& w, bool file_mmapped, unsigned n_threads) {
  n_threads = std::max(1u, n_threads);
  // token_embd stays as it is: embedding reads single rows. A tied output is token_embd.
  if (w.output.data != w.token_embd.data) repack(w.output, w.repacked, file_mmapped, n_threads);
  for (LayerWeights& l : w.layers)
    for (WeightMatrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
      repack(*m, w.repacked, file_mmapped, n_threads);
}

}  // namespace cyllm::model

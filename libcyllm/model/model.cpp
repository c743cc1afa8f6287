#include <new>
#include <system_error>

#include "model/hparams.h"
#include "model/model_impl.h"
#include "model/weights.h"

namespace cyllm::model {

std::string ModelImpl::chat_template() const {
  const gguf::Value* v = file_.find("tokenizer.chat_template");
  if (!v) return "";
  auto s = v->as_string();
  return s ? std::string(*s) : std::string();
}

std::uint64_t ModelImpl::weight_bytes() const {
  std::uint64_t total = 0;
  for (const gguf::TensorInfo& t : file_.tensors()) total += t.size_bytes;
  return total;
}

std::uint64_t ModelImpl::kv_bytes_per_token() const {
  // K and V, f32, every layer.
  return 2ull * hp_.n_layer * hp_.n_head_kv * hp_.head_dim * sizeof(float);
}

namespace {

Result<std::shared_ptr<const Model>> load_model(const std::string& path, const LoadOptions& opts) try {
  gguf::File file = CYLLM_TRY(gguf::File::open(path, opts.file));
  HParams hp = CYLLM_TRY(parse_hparams(file));
  Weights weights = CYLLM_TRY(bind_weights(file, hp));
  if (opts.repack) repack_weights(weights, file.mmapped(), opts.n_threads ? opts.n_threads : effective_cpu_count());
  tokenizer::Tokenizer tok = CYLLM_TRY(tokenizer::Tokenizer::load(file));
  if (tok.n_vocab() > hp.n_vocab)
    return Error(Errc::BadModel, "the tokenizer has " + std::to_string(tok.n_vocab()) +
                                     " tokens but token_embd.weight only " + std::to_string(hp.n_vocab) + " rows");
  // The File is moved into the Model; the tensor data it maps does not move, so the
  // bound pointers stay valid.
  return std::shared_ptr<const Model>(
      std::make_shared<ModelImpl>(std::move(file), std::move(hp), std::move(weights), std::move(tok)));
} catch (const std::bad_alloc&) {
  return Error(Errc::OutOfMemory, "out of memory");
} catch (const std::system_error& e) {
  return Error(Errc::OutOfMemory, std::string("cannot start a thread to repack the weights: ") + e.what());
}

}  // namespace

Result<std::shared_ptr<const Model>> Model::load(const std::string& path, const LoadOptions& opts) {
  auto r = load_model(path, opts);
  if (!r.ok()) return std::move(r).error().with_context("while loading model " + path);
  return r;
}

}  // namespace cyllm::model

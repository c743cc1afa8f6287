#include "engine/generate.h"

#include <cmath>

#include "engine/chat_template.h"

namespace cyllm::engine {
namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

Error bad(const std::string& what) { return Error(Errc::InvalidRequest, what); }

}  // namespace

std::string_view finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Deadline: return "deadline";
  }
  return "?";
}

Result<void> validate_request(const Request& r) {
  const SamplingParams& s = r.sampling;
  auto num = [](float v) { return std::to_string(v); };
  if (!std::isfinite(s.temperature)) return bad("temperature " + num(s.temperature) + " is not a number");
  if (!(s.top_p > 0.0f && s.top_p <= 1.0f)) return bad("top_p " + num(s.top_p) + " is outside (0, 1]");
  if (!(s.min_p >= 0.0f && s.min_p <= 1.0f)) return bad("min_p " + num(s.min_p) + " is outside [0, 1]");
  if (!(s.repeat_penalty > 0.0f) || !std::isfinite(s.repeat_penalty))
    return bad("repeat_penalty " + num(s.repeat_penalty) + " must be > 0");
  if (!std::isfinite(s.presence_penalty) || !std::isfinite(s.frequency_penalty))
    return bad("presence/frequency penalties must be finite numbers");
  if (s.penalty_last_n < -1) return bad("penalty_last_n " + std::to_string(s.penalty_last_n) + " is below -1");
  for (const auto& stop : r.stop)
    if (stop.empty()) return bad("a stop string is empty");
  if (r.messages.empty() && r.prompt.empty()) return bad("the prompt is empty");
  return {};
}

Result<PreparedPrompt> prepare_prompt(const model::Model& m, const Request& request,
                                      std::uint64_t max_len) {
  const tokenizer::Tokenizer& tok = m.tokenizer();
  PreparedPrompt out;
  // Prompt text: plain, or the messages through the chat template.
  std::string text = request.prompt;
  bool parse_special = request.parse_special;
  if (!request.messages.empty()) {
    std::optional<ChatFormat> fmt;
    if (!request.chat_template.empty()) {
      fmt = parse_chat_format(request.chat_template);
      if (!fmt) {
        std::string known;
        for (const auto& n : chat_format_names()) known += (known.empty() ? "" : ", ") + n;
        return Error(Errc::InvalidRequest, "unknown chat template \"" + request.chat_template +
                                               "\" (known: " + known + ")");
      }
    } else {
      const std::string jinja = m.chat_template();
      fmt = jinja.empty() ? std::optional(ChatFormat::ChatML) : detect_chat_format(jinja);
      if (!fmt)
        return Error(Errc::InvalidRequest,
                     "the model's chat template is not one of the known families; choose one "
                     "with chat_template (--chat-template): llama2, llama3, chatml, mistral, gemma, phi3");
    }
    text = CYLLM_TRY(apply_chat_template(*fmt, request.messages, true));
    out.chat_format = std::string(chat_format_name(*fmt));
    parse_special = true;
  }
  out.tokens = tok.encode(text, tok.add_bos_by_default(), parse_special);
  if (out.tokens.empty()) return Error(Errc::InvalidRequest, "the prompt has no tokens");
  if (out.tokens.size() >= max_len)
    return Error(Errc::InvalidRequest, "the prompt has " + std::to_string(out.tokens.size()) +
                                           " tokens; the context holds " + std::to_string(max_len));
  return out;
}

Generation::Generation(const tokenizer::Tokenizer& tok, std::span<const TokenId> prompt,
                       const Request& request, std::uint32_t max_tokens, Clock::time_point start)
    : tok_(tok),
      max_tokens_(max_tokens),
      start_(start),
      sampler_(request.sampling),
      decoder_(tok),
      filter_(request.stop),
      history_(prompt.begin(), prompt.end()) {
  out_.usage.prompt_tokens = static_cast<std::uint32_t>(prompt.size());
  out_.finish_reason = FinishReason::Length;
}

void Generation::set_prompt_ms(double ms) {
  out_.timings.prompt_ms = ms;
  if (ms > 0) out_.timings.prompt_tokens_per_s = out_.usage.prompt_tokens * 1000.0 / ms;
}

void Generation::emit(const std::string& text, TokenId id, const Deliver& deliver) {
  if (text.empty()) return;
  out_.text += text;
  if (sink_open_ && deliver && !deliver(text, id)) sink_open_ = false;
}

bool Generation::accept(std::span<const float> logits, const Deliver& deliver,
                        const Interrupt& interrupt) {
  CYLLM_ASSERT(!done_);
  const TokenId id = sampler_.sample(logits, history_);
  t_last_ = Clock::now();
  if (n_sampled_++ == 0) {
    t_first_ = t_last_;
    out_.timings.ttft_ms = ms_between(start_, t_first_);
  }
  if (tok_.is_end_of_generation(id)) {
    finish(FinishReason::Stop, true, deliver);
    return true;
  }
  out_.tokens.push_back(id);
  history_.push_back(id);
  StopFilter::Out piece = filter_.push(decoder_.push(id));
  emit(piece.text, id, deliver);
  if (piece.stopped) {
    finish(FinishReason::Stop, false, deliver);
    return true;
  }
  if (!sink_open_) {
    finish(FinishReason::Cancelled, true, deliver);
    return true;
  }
  if (interrupt) {
    if (auto reason = interrupt()) {
      finish(*reason, true, deliver);
      return true;
    }
  }
  if (n_sampled_ >= max_tokens_) {  // no need to run the last token
    finish(FinishReason::Length, true, deliver);
    return true;
  }
  return false;
}

void Generation::stop(FinishReason reason, const Deliver& deliver) {
  if (!done_) finish(reason, true, deliver);
}

void Generation::finish(FinishReason reason, bool flush, const Deliver& deliver) {
  out_.finish_reason = reason;
  if (flush) {
    // What the decoder held (an unfinished character) and what could have begun a stop
    // string are released now: the generation is over.
    StopFilter::Out tail = filter_.push(decoder_.flush());
    std::string rest = tail.text + (tail.stopped ? "" : filter_.flush());
    if (tail.stopped && out_.finish_reason == FinishReason::Length) out_.finish_reason = FinishReason::Stop;
    if (sink_open_) emit(rest, out_.tokens.empty() ? tokenizer::kNoToken : out_.tokens.back(), deliver);
  }
  out_.usage.completion_tokens = static_cast<std::uint32_t>(out_.tokens.size());
  if (!out_.tokens.empty()) {
    out_.timings.generation_ms = ms_between(t_first_, t_last_);
    if (out_.tokens.size() > 1 && out_.timings.generation_ms > 0)
      out_.timings.generation_tokens_per_s = (out_.tokens.size() - 1) * 1000.0 / out_.timings.generation_ms;
  }
  done_ = true;
}

Result<Completion> generate(model::Session& session, const tokenizer::Tokenizer& tok,
                            std::span<const TokenId> prompt, const Request& request,
                            const TokenSink& sink, const std::atomic<bool>* cancel,
                            Clock::time_point start) {
  auto cancelled = [&] { return cancel != nullptr && cancel->load(std::memory_order_relaxed); };
  auto expired = [&] { return request.deadline && Clock::now() >= *request.deadline; };
  auto stopped_early = [&]() -> std::optional<Error> {
    if (cancelled()) return Error(Errc::EngineCancelled, "the request was cancelled before its first token");
    if (expired()) return Error(Errc::DeadlineExceeded, "the deadline passed before the first token");
    return std::nullopt;
  };
  if (auto e = stopped_early()) return *e;

  // 1. The prompt, in one batch.
  Generation gen(tok, prompt, request, request.max_tokens, start);
  const auto t_prompt = Clock::now();
  CYLLM_TRY_VOID(session.eval(prompt));
  gen.set_prompt_ms(ms_between(t_prompt, Clock::now()));
  if (auto e = stopped_early()) return *e;

  // 2. Sample -> decode -> stop-string filter -> sink, one token at a time.
  Generation::Deliver deliver;
  if (sink) deliver = [&](std::string_view text, TokenId id) { return sink(text, id); };
  const Generation::Interrupt interrupt = [&]() -> std::optional<FinishReason> {
    if (cancelled()) return FinishReason::Cancelled;
    if (expired()) return FinishReason::Deadline;
    return std::nullopt;
  };
  if (gen.max_tokens() == 0) gen.stop(FinishReason::Length, deliver);
  while (!gen.done()) {
    if (gen.accept(session.logits(), deliver, interrupt)) break;
    const TokenId next[1] = {gen.next_input()};
    CYLLM_TRY_VOID(session.eval(next));
  }
  return std::move(gen.completion());
}

}  // namespace cyllm::engine

namespace cyllm::engine {

nlohmann::ordered_json completion_json(const Completion& c) {
  nlohmann::ordered_json j;
  j["schema"] = "cy-llm.run/v1";
  j["text"] = c.text;
  j["tokens"] = c.tokens;
  j["finish_reason"] = finish_reason_name(c.finish_reason);
  j["chat_format"] = c.chat_format.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(c.chat_format);
  j["usage"] = {{"prompt_tokens", c.usage.prompt_tokens},
                {"completion_tokens", c.usage.completion_tokens}};
  j["timings"] = {{"load_ms", c.timings.load_ms},
                  {"prompt_ms", c.timings.prompt_ms},
                  {"ttft_ms", c.timings.ttft_ms},
                  {"generation_ms", c.timings.generation_ms},
                  {"prompt_tokens_per_s", c.timings.prompt_tokens_per_s},
                  {"generation_tokens_per_s", c.timings.generation_tokens_per_s}};
  return j;
}

}  // namespace cyllm::engine

// The generation of one request, as a step-able state machine: the prompt is evaluated by
// the caller (alone, or batched with other sequences), then each step's logits go to
// Generation::accept, which samples, decodes to valid UTF-8, holds back possible stop
// strings and hands out text pieces, until EOS/end-of-turn, a stop string, max_tokens, the
// sink, the cancel flag or the deadline ends it. `generate` drives one Generation on one
// Session (the native engine's single-request path); the server's scheduler drives many
// through model::eval_batch. Both give the same tokens for the same inputs.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cyllm/engine.h"
#include "cyllm/model.h"
#include "engine/sampler.h"
#include "engine/stop_strings.h"

namespace cyllm::engine {

// Checks sampling parameters and limits; engine.invalid_request naming the bad value.
Result<void> validate_request(const Request& request);

// A request's prompt as tokens, after the chat template (when it has messages).
struct PreparedPrompt {
  std::vector<TokenId> tokens;
  std::string chat_format;  // "" for plain prompts
};
// Formats and tokenises the request's prompt. engine.invalid_request for an unknown or
// undetectable chat template, an empty token list, or a prompt that does not fit
// `max_len` positions (the context length).
Result<PreparedPrompt> prepare_prompt(const model::Model& m, const Request& request,
                                      std::uint64_t max_len);

// One sequence's generation after its prompt. Not thread-safe; one per request.
class Generation {
 public:
  using Clock = std::chrono::steady_clock;
  // Receives a piece of final text (never empty) and the token that completed it; returns
  // false when the consumer is gone (the generation then ends as "cancelled").
  using Deliver = std::function<bool(std::string_view text, TokenId token)>;
  // Asked after each sampled token's text was delivered: a reason to stop now
  // (Cancelled, Deadline) or nullopt to go on.
  using Interrupt = std::function<std::optional<FinishReason>()>;

  // `prompt`: for the penalties and usage; `max_tokens` already clamped to the session's room; `start` is when the request began
  // (for ttft).
  Generation(const tokenizer::Tokenizer& tok, std::span<const TokenId> prompt, const Request& request,
             std::uint32_t max_tokens, Clock::time_point start);

  // The prompt's evaluation time, for the timings.
  void set_prompt_ms(double ms);
  // Samples the token after `logits` (the last evaluated position), delivers its text and
  // checks the end conditions. Returns true when the generation is over (then completion()
  // is final); false when next_input() must be evaluated and its logits accepted next.
  bool accept(std::span<const float> logits, const Deliver& deliver, const Interrupt& interrupt);
  // Ends the generation now with `reason`, releasing held-back text to `deliver`.
  void stop(FinishReason reason, const Deliver& deliver);
  bool done() const { return done_; }
  bool started() const { return n_sampled_ > 0; }  // at least one token was sampled
  std::uint32_t max_tokens() const { return max_tokens_; }
  TokenId next_input() const { return out_.tokens.back(); }
  const Completion& completion() const { return out_; }
  Completion& completion() { return out_; }

 private:
  void emit(const std::string& text, TokenId id, const Deliver& deliver);
  void finish(FinishReason reason, bool flush, const Deliver& deliver);

  const tokenizer::Tokenizer& tok_;
  std::uint32_t max_tokens_;
  Clock::time_point start_;
  Sampler sampler_;
  tokenizer::StreamDecoder decoder_;
  StopFilter filter_;
  std::vector<TokenId> history_;  // prompt (as far as the penalties need it) + generated
  Completion out_;
  std::uint32_t n_sampled_ = 0;
  bool sink_open_ = true;
  bool done_ = false;
  Clock::time_point t_first_{}, t_last_{};
};

// Runs `prompt` (already tokenised, non-empty) then generates on `session`, which must be
// empty and have room for prompt.size() + request.max_tokens positions.
// `start` is when the request began (for ttft). engine.cancelled / engine.deadline_exceeded
// when stopped before the first token was sampled; a partial Completion after.
Result<Completion> generate(model::Session& session, const tokenizer::Tokenizer& tok,
                            std::span<const TokenId> prompt, const Request& request,
                            const TokenSink& sink, const std::atomic<bool>* cancel,
                            std::chrono::steady_clock::time_point start);

}  // namespace cyllm::engine

#include "engine/generate.h"

#include <cmath>

#include "engine/sampler.h"
#include "engine/stop_strings.h"

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

Result<Completion> generate(model::Session& session, const tokenizer::Tokenizer& tok,
                            std::span<const TokenId> prompt, const Request& request,
                            const TokenSink& sink, const std::atomic<bool>* cancel,
                            Clock::time_point start) {
  Completion out;
  out.usage.prompt_tokens = static_cast<std::uint32_t>(prompt.size());
  auto cancelled = [&] { return cancel != nullptr && cancel->load(std::memory_order_relaxed); };
  auto expired = [&] { return request.deadline && Clock::now() >= *request.deadline; };
  auto stopped_early = [&]() -> std::optional<Error> {
    if (cancelled()) return Error(Errc::EngineCancelled, "the request was cancelled before its first token");
    if (expired()) return Error(Errc::DeadlineExceeded, "the deadline passed before the first token");
    return std::nullopt;
  };
  if (auto e = stopped_early()) return *e;

  // 1. The prompt, in one batch.
  const auto t_prompt = Clock::now();
  CYLLM_TRY_VOID(session.eval(prompt));
  const auto t_prompt_done = Clock::now();
  out.timings.prompt_ms = ms_between(t_prompt, t_prompt_done);
  if (out.timings.prompt_ms > 0)
    out.timings.prompt_tokens_per_s = prompt.size() * 1000.0 / out.timings.prompt_ms;
  if (auto e = stopped_early()) return *e;

  // 2. Sample -> decode -> stop-string filter -> sink, one token at a time.
  std::vector<TokenId> history(prompt.begin(), prompt.end());
  Sampler sampler(request.sampling);
  tokenizer::StreamDecoder decoder(tok);
  StopFilter filter(request.stop);
  bool sink_open = true;
  auto deliver = [&](const std::string& text, TokenId id) {
    if (text.empty()) return;
    out.text += text;
    if (sink_open && sink && !sink(text, id)) sink_open = false;
  };
  Clock::time_point t_first{}, t_last{};
  out.finish_reason = FinishReason::Length;
  bool flush = true;
  for (std::uint32_t n = 0; n < request.max_tokens; ++n) {
    const TokenId id = sampler.sample(session.logits(), history);
    t_last = Clock::now();
    if (n == 0) {
      t_first = t_last;
      out.timings.ttft_ms = ms_between(start, t_first);
    }
    if (tok.is_end_of_generation(id)) {
      out.finish_reason = FinishReason::Stop;
      break;
    }
    out.tokens.push_back(id);
    history.push_back(id);
    StopFilter::Out piece = filter.push(decoder.push(id));
    deliver(piece.text, id);
    if (piece.stopped) {
      out.finish_reason = FinishReason::Stop;
      flush = false;
      break;
    }
    if (!sink_open || cancelled()) {
      out.finish_reason = FinishReason::Cancelled;
      break;
    }
    if (expired()) {
      out.finish_reason = FinishReason::Deadline;
      break;
    }
    if (n + 1 == request.max_tokens) break;  // no need to run the last token
    const TokenId next[1] = {id};
    CYLLM_TRY_VOID(session.eval(next));
  }
  if (flush) {
    // What the decoder held (an unfinished character) and what could have begun a stop
    // string are released now: the generation is over.
    StopFilter::Out tail = filter.push(decoder.flush());
    std::string rest = tail.text + (tail.stopped ? "" : filter.flush());
    if (tail.stopped && out.finish_reason == FinishReason::Length) out.finish_reason = FinishReason::Stop;
    if (sink_open) deliver(rest, out.tokens.empty() ? tokenizer::kNoToken : out.tokens.back());
  }
  out.usage.completion_tokens = static_cast<std::uint32_t>(out.tokens.size());
  if (!out.tokens.empty()) {
    out.timings.generation_ms = ms_between(t_first, t_last);
    if (out.tokens.size() > 1 && out.timings.generation_ms > 0)
      out.timings.generation_tokens_per_s = (out.tokens.size() - 1) * 1000.0 / out.timings.generation_ms;
  }
  return out;
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

// The generation loop of one request on one Session: prompt in one batch, then sample,
// decode to valid UTF-8, hold back possible stop strings, stream, until EOS/end-of-turn, a
// stop string, max_tokens, the cancel flag, the sink or the deadline ends it.
#pragma once

#include <atomic>
#include <chrono>
#include <span>

#include "cyllm/engine.h"
#include "cyllm/model.h"

namespace cyllm::engine {

// Checks sampling parameters and limits; engine.invalid_request naming the bad value.
Result<void> validate_request(const Request& request);

// Runs `prompt` (already tokenised, non-empty) then generates on `session`, which must be
// empty and have room for prompt.size() + request.max_tokens positions.
// `start` is when the request began (for ttft). engine.cancelled / engine.deadline_exceeded
// when stopped before the first token was sampled; a partial Completion after.
Result<Completion> generate(model::Session& session, const tokenizer::Tokenizer& tok,
                            std::span<const TokenId> prompt, const Request& request,
                            const TokenSink& sink, const std::atomic<bool>* cancel,
                            std::chrono::steady_clock::time_point start);

}  // namespace cyllm::engine

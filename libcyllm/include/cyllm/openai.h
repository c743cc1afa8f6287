// The OpenAI-compatible API as pure functions: request JSON -> engine::Request with
// validation that names the parameter, and engine results -> response, streaming-chunk and
// error objects. No sockets here (http_server.h serves these over HTTP).
//
// Request parameters understood (null is the same as absent; unknown keys are ignored):
//   model (string), prompt (string, or an array of exactly one string; /v1/completions),
//   messages ([{role: system|developer|user|assistant, content: string | [{type:"text",
//   text}]}]; /v1/chat/completions), max_tokens / max_completion_tokens (integer >= 1),
//   temperature [0, 2], top_p (0, 1], top_k (integer; <= 0 off), min_p [0, 1],
//   presence_penalty / frequency_penalty [-2, 2], repetition_penalty (> 0), seed (integer),
//   stop (string or array of up to 4 non-empty strings), stream (bool),
//   stream_options.include_usage (bool; only with stream), n (only 1).
// Refused with 400 and the parameter named: logprobs / top_logprobs (unless null, false or
// 0), echo true, best_of > 1, suffix, tools / functions / response_format other than text.
// Defaults follow OpenAI: temperature 1, top_p 1, top_k and min_p off; max_tokens 16 for
// completions and ParseOptions::default_max_tokens for chat.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "cyllm/engine.h"
#include "cyllm/error.h"

namespace cyllm::openai {

enum class Endpoint { Completions, ChatCompletions };

// The body of an error response: {"error":{"message","type","param","code"}}, with the
// HTTP status to send it with.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // "" -> null
  std::string code;   // "" -> null
  int retry_after_s = 0;  // > 0: send a Retry-After header
};

struct ParseOptions {
  std::string model_id;  // a request naming another model gets 404 model_not_found
  std::uint32_t default_max_tokens = 256;  // chat requests without max_tokens
  std::uint32_t max_tokens_limit = 1u << 20;  // larger values are refused (400 max_tokens)
};

struct ParsedRequest {
  Endpoint endpoint = Endpoint::Completions;
  engine::Request request;
  bool stream = false;
  bool include_usage = false;
};

// Parses and validates a request body. Malformed JSON gives 400 with the byte position.
std::variant<ParsedRequest, ApiError> parse_request(Endpoint endpoint, std::string_view body,
                                                    const ParseOptions& options);

// Maps an error of the predict callback (scheduler or engine) to an HTTP answer:
//   serve.overloaded 429 + Retry-After; serve.queue_timeout 503 + Retry-After;
//   engine.out_of_memory 503; engine.unavailable 503; engine.invalid_request and
//   util.invalid_argument 400 (param guessed from the message); serve.unauthenticated 401;
//   serve.payload_too_large 413; engine.deadline_exceeded 504; cancellations 499; other 500.
ApiError error_from(const Error& error, Endpoint endpoint, int retry_after_s = 1);

// The error object as JSON text.
std::string error_body(const ApiError& error);

// "stop", "length"; a deadline that cut the output reads "length", a cancel "stop".
std::string_view finish_reason(engine::FinishReason r);

// What every response object of one request shares.
struct ResponseMeta {
  std::string id;        // "cmpl-..." or "chatcmpl-..."
  std::int64_t created = 0;  // unix seconds
  std::string model;
};

// The non-streaming response ("text_completion" or "chat.completion").
nlohmann::ordered_json completion_response(Endpoint endpoint, const ResponseMeta& meta,
                                           const engine::Completion& completion);

// Turns one streamed request into the payloads of its server-sent events. Each method
// returns complete SSE text ("data: {...}\n\n"), possibly empty.
class StreamEncoder {
 public:
  StreamEncoder(const ParsedRequest& request, ResponseMeta meta)
      : endpoint_(request.endpoint), include_usage_(request.include_usage), meta_(std::move(meta)) {}
  // Chat: the first chunk with delta {role: "assistant", content: ""}. Completions: "".
  std::string begin();
  std::string piece(std::string_view text);
  // The chunk with finish_reason, the usage chunk when asked for, and "data: [DONE]".
  std::string finish(const engine::Completion& completion);
  // An error after the stream began: an error event, then "data: [DONE]".
  std::string error(const ApiError& error);

 private:
  nlohmann::ordered_json chunk() const;
  Endpoint endpoint_;
  bool include_usage_;
  ResponseMeta meta_;
};

// {"object":"list","data":[{"id":model,"object":"model","created","owned_by":"cy-llm"}]}
nlohmann::ordered_json models_response(std::string_view model_id, std::int64_t created);

// JSON text that never throws on invalid UTF-8 (replaced by U+FFFD).
std::string dump(const nlohmann::ordered_json& j);
// "data: <json>\n\n"
std::string sse_event(const nlohmann::ordered_json& j);

}  // namespace cyllm::openai

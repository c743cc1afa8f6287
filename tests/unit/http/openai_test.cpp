// The OpenAI mapping: request JSON -> engine::Request with validation that names the
// parameter, error mapping of predict's codes, and the response and stream objects.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "cyllm/openai.h"

using namespace cyllm;
using namespace cyllm::openai;
using json = nlohmann::json;

namespace {

ParseOptions opts() {
  ParseOptions o;
  o.model_id = "demo";
  o.default_max_tokens = 77;
  return o;
}

ParsedRequest ok(Endpoint ep, const std::string& body) {
  auto r = parse_request(ep, body, opts());
  if (auto* e = std::get_if<ApiError>(&r)) FAIL_CHECK("unexpected error: " << e->message);
  REQUIRE(std::holds_alternative<ParsedRequest>(r));
  return std::get<ParsedRequest>(r);
}

ApiError err(Endpoint ep, const std::string& body) {
  auto r = parse_request(ep, body, opts());
  REQUIRE_MESSAGE(std::holds_alternative<ApiError>(r), body);
  return std::get<ApiError>(r);
}

}  // namespace

TEST_CASE("a completion request maps every sampling parameter") {
  ParsedRequest p = ok(Endpoint::Completions,
                       R"({"model":"demo","prompt":"Hello","max_tokens":12,"temperature":0,"top_p":0.5,)"
                       R"("top_k":7,"min_p":0.1,"seed":-1,"stop":["a","bb"],"presence_penalty":0.5,)"
                       R"("frequency_penalty":-1,"stream":true,"stream_options":{"include_usage":true},"n":1,)"
                       R"("user":"ignored","logprobs":null})");
  CHECK(p.request.prompt == "Hello");
  CHECK(p.request.messages.empty());
  CHECK(p.request.max_tokens == 12);
  CHECK(p.request.sampling.temperature == 0.0f);
  CHECK(p.request.sampling.top_p == 0.5f);
  CHECK(p.request.sampling.top_k == 7);
  CHECK(p.request.sampling.min_p == doctest::Approx(0.1));
  CHECK(p.request.sampling.seed == ~std::uint64_t{0});
  CHECK(p.request.stop == std::vector<std::string>{"a", "bb"});
  CHECK(p.request.sampling.presence_penalty == 0.5f);
  CHECK(p.request.sampling.frequency_penalty == -1.0f);
  CHECK(p.stream);
  CHECK(p.include_usage);
}

TEST_CASE("defaults follow OpenAI, not the engine") {
  ParsedRequest c = ok(Endpoint::Completions, R"({"prompt":["only one"]})");
  CHECK(c.request.prompt == "only one");
  CHECK(c.request.max_tokens == 16);
  CHECK(c.request.sampling.temperature == 1.0f);
  CHECK(c.request.sampling.top_p == 1.0f);
  CHECK(c.request.sampling.top_k == 0);
  CHECK(c.request.sampling.min_p == 0.0f);
  CHECK_FALSE(c.stream);
  ParsedRequest chat = ok(Endpoint::ChatCompletions, R"({"messages":[{"role":"user","content":"hi"}]})");
  CHECK(chat.request.max_tokens == 77);
}

TEST_CASE("chat messages: roles, text parts, max_completion_tokens") {
  ParsedRequest p = ok(Endpoint::ChatCompletions,
                       R"({"messages":[{"role":"developer","content":"be brief"},)"
                       R"({"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},)"
                       R"({"role":"assistant","content":null}],"max_tokens":5,"max_completion_tokens":9,"stop":"END"})");
  REQUIRE(p.request.messages.size() == 3);
  CHECK(p.request.messages[0].role == "system");
  CHECK(p.request.messages[1].content == "ab");
  CHECK(p.request.messages[2].content.empty());
  CHECK(p.request.max_tokens == 9);
  CHECK(p.request.stop == std::vector<std::string>{"END"});
}

TEST_CASE("validation errors name the parameter") {
  struct Case {
    Endpoint ep;
    const char* body;
    const char* param;
    const char* message_part;
  };
  const Case cases[] = {
      {Endpoint::Completions, R"({})", "prompt", "prompt is required"},
      {Endpoint::Completions, R"({"prompt":5})", "prompt", "must be a string"},
      {Endpoint::Completions, R"({"prompt":["a","b"]})", "prompt", "exactly one string"},
      {Endpoint::Completions, R"({"prompt":"x","max_tokens":0})", "max_tokens", "between 1 and"},
      {Endpoint::Completions, R"({"prompt":"x","max_tokens":2.5})", "max_tokens", "must be an integer"},
      {Endpoint::Completions, R"({"prompt":"x","temperature":2.5})", "temperature", "between 0 and 2, got 2.5"},
      {Endpoint::Completions, R"({"prompt":"x","temperature":"hot"})", "temperature", "must be a number, got string"},
      {Endpoint::Completions, R"({"prompt":"x","top_p":0})", "top_p", "in (0, 1], got 0"},
      {Endpoint::Completions, R"({"prompt":"x","min_p":1.5})", "min_p", "between 0 and 1"},
      {Endpoint::Completions, R"({"prompt":"x","presence_penalty":3})", "presence_penalty", "between -2 and 2"},
      {Endpoint::Completions, R"({"prompt":"x","frequency_penalty":-2.5})", "frequency_penalty", "between -2 and 2"},
      {Endpoint::Completions, R"({"prompt":"x","top_k":-5})", "top_k", "between -1 and"},
      {Endpoint::Completions, R"({"prompt":"x","seed":1.5})", "seed", "must be an integer"},
      {Endpoint::Completions, R"({"prompt":"x","n":2})", "n", "n must be 1"},
      {Endpoint::Completions, R"({"prompt":"x","stop":["a","b","c","d","e"]})", "stop", "at most 4"},
      {Endpoint::Completions, R"({"prompt":"x","stop":""})", "stop", "must not be an empty"},
      {Endpoint::Completions, R"({"prompt":"x","stop":[1]})", "stop", "stop[0]"},
      {Endpoint::Completions, R"({"prompt":"x","logprobs":3})", "logprobs", "not supported"},
      {Endpoint::Completions, R"({"prompt":"x","echo":true})", "echo", "not supported"},
      {Endpoint::Completions, R"({"prompt":"x","best_of":3})", "best_of", "must be 1"},
      {Endpoint::Completions, R"({"prompt":"x","stream":"yes"})", "stream", "must be a boolean"},
      {Endpoint::Completions, R"({"prompt":"x","stream_options":{"include_usage":true}})", "stream_options", "only allowed when stream"},
      {Endpoint::Completions, R"({"prompt":"x","stream":true,"stream_options":{"include_usage":1}})", "stream_options.include_usage", "boolean"},
      {Endpoint::ChatCompletions, R"({"prompt":"x"})", "messages", "messages is required"},
      {Endpoint::ChatCompletions, R"({"messages":[]})", "messages", "must not be empty"},
      {Endpoint::ChatCompletions, R"({"messages":[{"role":"tool","content":"x"}]})", "messages[0].role", "\"tool\" is not supported"},
      {Endpoint::ChatCompletions, R"({"messages":[{"role":"user"}]})", "messages[0].content", "is required"},
      {Endpoint::ChatCompletions, R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", "messages[0].content[0]", "text part"},
      {Endpoint::ChatCompletions, R"({"messages":[{"role":"user","content":"x"}],"logprobs":true})", "logprobs", "not supported"},
      {Endpoint::ChatCompletions, R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]})", "tools", "not supported"},
      {Endpoint::ChatCompletions, R"({"messages":[{"role":"user","content":"x"}],"max_completion_tokens":-3})", "max_completion_tokens", "between 1"},
  };
  for (const Case& c : cases) {
    ApiError e = err(c.ep, c.body);
    CAPTURE(c.body);
    CHECK(e.status == 400);
    CHECK(e.type == "invalid_request_error");
    CHECK(e.param == c.param);
    CHECK_MESSAGE(e.message.find(c.message_part) != std::string::npos, e.message);
  }
}

TEST_CASE("malformed JSON gives the byte position; another model is 404") {
  ApiError e = err(Endpoint::Completions, R"({"prompt": "x",, })");
  CHECK(e.status == 400);
  CHECK(e.code == "invalid_json");
  CHECK(e.param.empty());
  CHECK_MESSAGE(e.message.find("at byte 16: syntax error") != std::string::npos, e.message);
  CHECK(err(Endpoint::Completions, "[1,2]").message.find("must be a JSON object") != std::string::npos);
  ApiError m = err(Endpoint::Completions, R"({"model":"gpt-4","prompt":"x"})");
  CHECK(m.status == 404);
  CHECK(m.param == "model");
  CHECK(m.code == "model_not_found");
}

TEST_CASE("predict errors map to statuses") {
  auto map = [](Errc c, std::string msg = "m") { return error_from(Error(c, std::move(msg)), Endpoint::Completions, 3); };
  ApiError over = map(Errc::Overloaded);
  CHECK(over.status == 429);
  CHECK(over.retry_after_s == 3);
  CHECK(over.code == "serve.overloaded");
  CHECK(map(Errc::QueueTimeout).status == 503);
  CHECK(map(Errc::QueueTimeout).retry_after_s == 3);
  CHECK(map(Errc::OutOfMemory).status == 503);
  CHECK(map(Errc::OutOfMemory).retry_after_s == 0);
  CHECK(map(Errc::EngineUnavailable).status == 503);
  CHECK(map(Errc::Unauthenticated).status == 401);
  CHECK(map(Errc::PayloadTooLarge).status == 413);
  CHECK(map(Errc::DeadlineExceeded).status == 504);
  CHECK(map(Errc::EngineInternal).status == 500);
  ApiError bad = map(Errc::InvalidRequest, "the prompt has 5000 tokens but the context holds 2048");
  CHECK(bad.status == 400);
  CHECK(bad.param == "prompt");
  CHECK(error_from(Error(Errc::InvalidRequest, "the prompt has no tokens"), Endpoint::ChatCompletions).param == "messages");
  CHECK(map(Errc::InvalidRequest, "top_p 2 is outside (0, 1]").param == "top_p");
  CHECK(map(Errc::InvalidArgument, "repeat_penalty 0 must be > 0").param == "repetition_penalty");
  json body = json::parse(error_body(over));
  CHECK(body["error"]["message"] == "m");
  CHECK(body["error"]["type"] == "rate_limit_error");
  CHECK(body["error"]["param"].is_null());
  CHECK(body["error"]["code"] == "serve.overloaded");
}

TEST_CASE("response objects for both endpoints") {
  engine::Completion c;
  c.text = "Hi there";
  c.finish_reason = engine::FinishReason::Stop;
  c.usage.prompt_tokens = 4;
  c.usage.completion_tokens = 2;
  ResponseMeta meta{"cmpl-1", 1700000000, "demo"};
  json a = json::parse(dump(completion_response(Endpoint::Completions, meta, c)));
  CHECK(a["id"] == "cmpl-1");
  CHECK(a["object"] == "text_completion");
  CHECK(a["created"] == 1700000000);
  CHECK(a["model"] == "demo");
  CHECK(a["choices"][0]["index"] == 0);
  CHECK(a["choices"][0]["text"] == "Hi there");
  CHECK(a["choices"][0]["finish_reason"] == "stop");
  CHECK(a["usage"]["total_tokens"] == 6);
  c.finish_reason = engine::FinishReason::Length;
  json b = json::parse(dump(completion_response(Endpoint::ChatCompletions, meta, c)));
  CHECK(b["object"] == "chat.completion");
  CHECK(b["choices"][0]["message"]["role"] == "assistant");
  CHECK(b["choices"][0]["message"]["content"] == "Hi there");
  CHECK(b["choices"][0]["finish_reason"] == "length");
  CHECK(finish_reason(engine::FinishReason::Deadline) == "length");
  json m = json::parse(dump(models_response("demo", 5)));
  CHECK(m["object"] == "list");
  CHECK(m["data"][0]["id"] == "demo");
  CHECK(m["data"][0]["object"] == "model");
}

TEST_CASE("stream chunks: chat role first, finish reason last, usage chunk, [DONE]") {
  ParsedRequest p = ok(Endpoint::ChatCompletions,
                       R"({"messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}})");
  StreamEncoder enc(p, ResponseMeta{"chatcmpl-9", 1, "demo"});
  auto parse_event = [](const std::string& ev) {
    REQUIRE(ev.rfind("data: ", 0) == 0);
    REQUIRE(ev.size() > 8);
    REQUIRE(ev.substr(ev.size() - 2) == "\n\n");
    return json::parse(ev.substr(6, ev.size() - 8));
  };
  json first = parse_event(enc.begin());
  CHECK(first["object"] == "chat.completion.chunk");
  CHECK(first["choices"][0]["delta"]["role"] == "assistant");
  CHECK(first["usage"].is_null());
  json piece = parse_event(enc.piece("tok"));
  CHECK(piece["choices"][0]["delta"]["content"] == "tok");
  CHECK(piece["choices"][0]["finish_reason"].is_null());
  engine::Completion c;
  c.finish_reason = engine::FinishReason::Length;
  c.usage.prompt_tokens = 3;
  c.usage.completion_tokens = 1;
  const std::string fin = enc.finish(c);
  auto e1 = fin.find("\n\n");
  auto e2 = fin.find("\n\n", e1 + 2);
  json last = parse_event(fin.substr(0, e1 + 2));
  CHECK(last["choices"][0]["finish_reason"] == "length");
  CHECK(last["choices"][0]["delta"].empty());
  json usage = parse_event(fin.substr(e1 + 2, e2 - e1));
  CHECK(usage["choices"].empty());
  CHECK(usage["usage"]["completion_tokens"] == 1);
  CHECK(fin.substr(e2 + 2) == "data: [DONE]\n\n");

  ParsedRequest q = ok(Endpoint::Completions, R"({"prompt":"x","stream":true})");
  StreamEncoder plain(q, ResponseMeta{"cmpl-9", 1, "demo"});
  CHECK(plain.begin().empty());
  json t = parse_event(plain.piece("ab"));
  CHECK(t["object"] == "text_completion");
  CHECK(t["choices"][0]["text"] == "ab");
  CHECK_FALSE(t.contains("usage"));
  const std::string end = plain.finish(c);
  CHECK(end.find("\"usage\"") == std::string::npos);
  CHECK(end.substr(end.size() - 14) == "data: [DONE]\n\n");
}

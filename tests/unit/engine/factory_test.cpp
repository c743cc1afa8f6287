#include <doctest/doctest.h>

#include "cyllm/engine.h"
#include "test_support.h"

using namespace cyllm;
using namespace cyllm::engine;

namespace {

// A stand-in external engine, to show that registration works without touching the factory.
class EchoEngine final : public BaseEngine {
 public:
  Result<void> load_model(const std::string&, const EngineConfig&) override { return {}; }
  Result<Completion> stream_predict(const Request& r, const TokenSink& sink,
                                    const std::atomic<bool>*) override {
    Completion c;
    c.text = r.prompt;
    if (sink) sink(r.prompt, 0);
    c.finish_reason = FinishReason::Stop;
    return c;
  }
  void unload_model() override {}
  double get_memory_usage() const override { return 0; }
  std::string_view name() const override { return "echo"; }
  bool loaded() const override { return true; }
};

}  // namespace

TEST_CASE("the built-in engines are native and its alias cpu") {
  EngineFactory f;
  CHECK(f.names() == std::vector<std::string>{"cpu", "native"});
  NullLogger log;
  for (const char* name : {"native", "cpu"}) {
    EngineConfig c;
    c.engine_type = name;
    auto e = f.create(c, log);
    REQUIRE(e.ok());
    CHECK((*e)->name() == "native");
    CHECK_FALSE((*e)->loaded());
  }
}

TEST_CASE("an unknown engine is refused with the list of known ones") {
  EngineFactory f;
  NullLogger log;
  EngineConfig c;
  c.engine_type = "vllm";
  auto e = f.create(c, log);
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().code() == Errc::InvalidRequest);
  CHECK(e.error().id() == "engine.invalid_request");
  CHECK(e.error().message() == "unknown engine \"vllm\" (known: cpu, native)");
}

TEST_CASE("external engines can be registered") {
  EngineFactory f;
  f.register_engine("echo", [](const EngineConfig&, Logger&) { return std::make_unique<EchoEngine>(); });
  CHECK(f.names() == std::vector<std::string>{"cpu", "echo", "native"});
  NullLogger log;
  EngineConfig c;
  c.engine_type = "echo";
  auto e = f.create(c, log);
  REQUIRE(e.ok());
  Request r;
  r.prompt = "hi";
  std::string got;
  auto out = (*e)->stream_predict(r, [&](std::string_view t, TokenId) { got += t; return true; });
  REQUIRE(out.ok());
  CHECK(got == "hi");
  CHECK(finish_reason_name(out->finish_reason) == "stop");
  f.register_engine("broken", [](const EngineConfig&, Logger&) { return std::unique_ptr<BaseEngine>(); });
  c.engine_type = "broken";
  CHECK(f.create(c, log).error().code() == Errc::EngineInternal);
}

TEST_CASE("a native engine without a model is engine.unavailable") {
  NullLogger log;
  auto e = make_native_engine({}, log);
  Request r;
  r.prompt = "x";
  auto out = e->stream_predict(r, {});
  REQUIRE_FALSE(out.ok());
  CHECK(out.error().code() == Errc::EngineUnavailable);
  CHECK(e->get_memory_usage() == 0);
}

TEST_CASE("the run document has the cy-llm.run/v1 keys") {
  Completion c;
  c.text = "hi";
  c.tokens = {5, 6};
  c.finish_reason = FinishReason::Length;
  c.usage = {3, 2};
  auto j = completion_json(c);
  CHECK(j["schema"] == "cy-llm.run/v1");
  CHECK(j["tokens"].dump() == "[5,6]");
  CHECK(j["finish_reason"] == "length");
  CHECK(j["chat_format"].is_null());
  CHECK(j["usage"]["prompt_tokens"] == 3);
  for (const char* k : {"load_ms", "ttft_ms", "prompt_tokens_per_s", "generation_tokens_per_s"})
    CHECK(j["timings"].contains(k));
}

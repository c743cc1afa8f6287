// The Service every transport calls: not ready before a load, ready after the warm-up,
// metrics (readiness, memory, request outcomes), refusal while draining.
#include <doctest/doctest.h>

#include "cyllm/engine.h"
#include "cyllm/serve.h"
#include "test_support.h"

using namespace cyllm;
using namespace cyllm::serve;

namespace {
bool has_line_prefix(const std::string& text, const std::string& prefix) {
  return text.find("\n" + prefix) != std::string::npos || text.rfind(prefix, 0) == 0;
}
}  // namespace

TEST_CASE("the service is unavailable until loaded, ready after the warm-up, and refuses while draining") {
  test::TempDir dir;
  const std::string path = (dir.path() / "demo.gguf").string();
  REQUIRE(engine::write_demo_model(path, 7).ok());
  test::RecordingLogger log;
  Service service(log);
  engine::Request req;
  req.prompt = "hello";
  req.max_tokens = 4;
  req.sampling.temperature = 0;
  req.id = "abc";

  CHECK_FALSE(service.ready());
  CHECK(service.scheduler() == nullptr);
  auto early = service.stream_predict(req, nullptr);
  REQUIRE_FALSE(early.ok());
  CHECK(early.error().code() == Errc::EngineUnavailable);
  CHECK(has_line_prefix(service.metrics_text(), "cyllm_ready 0\n"));

  auto missing = service.load((dir.path() / "nope.gguf").string(), {});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code() == Errc::ModelLoadFailed);
  CHECK_FALSE(service.ready());

  ServiceConfig cfg;
  cfg.scheduler.n_threads = 1;
  REQUIRE(service.load(path, cfg).ok());
  CHECK(service.ready());
  CHECK(service.model_id() == "demo");
  auto r = service.stream_predict(req, nullptr);
  REQUIRE(r.ok());
  CHECK(r->usage.prompt_tokens > 0);
  bool logged = false;
  for (const auto& l : log.lines)
    if (l.find("request finished request_id=abc finish_reason=") != std::string::npos) logged = true;
  CHECK(logged);

  const std::string m = service.metrics_text();
  CHECK(has_line_prefix(m, "cyllm_ready 1\n"));
  CHECK(m.find("\ncyllm_process_resident_memory_bytes ") != std::string::npos);
  CHECK(m.find("\ncyllm_engine_memory_bytes ") != std::string::npos);
  CHECK(m.find("cyllm_requests_total{outcome=\"success\"") != std::string::npos);
  CHECK(m.find("# TYPE cyllm_e2e_request_latency_seconds histogram") != std::string::npos);
  CHECK(m.find("cyllm_prompt_tokens_total ") != std::string::npos);

  CHECK(service.drain(std::chrono::seconds(5)));
  CHECK_FALSE(service.ready());
  CHECK(service.draining());
  auto late = service.stream_predict(req, nullptr);
  REQUIRE_FALSE(late.ok());
  CHECK(late.error().code() == Errc::EngineUnavailable);
  CHECK(has_line_prefix(service.metrics_text(), "cyllm_ready 0\n"));
}

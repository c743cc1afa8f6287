// The OpenAI client's pure parts: the request body sent upstream, and upstream error
// answers mapped back to cy-llm error codes.
#include <doctest/doctest.h>

#include "external/child_process.h"
#include "external/openai_client.h"
#include "test_support.h"

using namespace cyllm;

TEST_CASE("request body: completions vs chat; sampling fields at their off values are left out") {
  engine::Request r;
  r.prompt = "Hi";
  r.max_tokens = 7;
  r.sampling.temperature = 0;
  r.sampling.top_k = 0;
  r.sampling.top_p = 1;
  r.sampling.min_p = 0;
  r.sampling.seed = 9;
  auto j = external::request_body(r, "m");
  CHECK(j.dump() ==
        R"({"max_tokens":7,"model":"m","prompt":"Hi","seed":9,"stream":true,"stream_options":{"include_usage":true},"temperature":0.0})");
  r.messages = {{"system", "Be brief."}, {"user", "Hi"}};
  r.sampling.top_k = 40;
  r.sampling.top_p = 0.5f;
  r.sampling.repeat_penalty = 1.5f;
  r.stop = {"\n\n"};
  j = external::request_body(r, "");
  CHECK_FALSE(j.contains("prompt"));
  CHECK_FALSE(j.contains("model"));
  CHECK(j["messages"].size() == 2);
  CHECK(j["messages"][0]["role"] == "system");
  CHECK(j["top_k"] == 40);
  CHECK(j["top_p"].get<double>() == doctest::Approx(0.5));
  CHECK(j["repetition_penalty"].get<double>() == doctest::Approx(1.5));
  CHECK(j["stop"][0] == "\n\n");
}

TEST_CASE("upstream errors map back to cy-llm codes and quote the URL") {
  const std::string url = "http://10.0.0.5:8000/v1/completions";
  // A cy-llm-serve upstream keeps its own code.
  auto e = external::upstream_error(
      503, R"({"error":{"message":"KV budget exhausted","type":"server_error","param":null,"code":"engine.out_of_memory"}})", url);
  CHECK(e.code() == Errc::OutOfMemory);
  CHECK(e.message() == "KV budget exhausted (http://10.0.0.5:8000/v1/completions answered 503)");
  e = external::upstream_error(429, R"({"error":{"message":"busy","code":"serve.overloaded"}})", url);
  CHECK(e.code() == Errc::Overloaded);
  // vLLM's OpenAI error object, FastAPI's {"detail"}, and plain text.
  e = external::upstream_error(400, R"({"object":"error","message":"max_tokens must be at least 1","type":"BadRequestError","code":400,"error":{"message":"max_tokens must be at least 1"}})", url);
  CHECK(e.code() == Errc::InvalidRequest);
  CHECK(e.message().find("max_tokens must be at least 1") == 0);
  e = external::upstream_error(404, R"({"detail":"Not Found"})", url);
  CHECK(e.code() == Errc::InvalidRequest);
  CHECK(e.message().find("Not Found") != std::string::npos);
  e = external::upstream_error(401, "Unauthorized", url);
  CHECK(e.code() == Errc::EngineUnavailable);
  CHECK(e.message().find("check the API key") != std::string::npos);
  // A cy-llm upstream's own authentication failure is ours to fix, not the caller's.
  e = external::upstream_error(401, R"({"error":{"message":"missing key","code":"serve.unauthenticated"}})", url);
  CHECK(e.code() == Errc::EngineUnavailable);
  e = external::upstream_error(500, R"({"error":{"message":"CUDA out of memory. Tried to allocate 20.00 MiB"}})", url);
  CHECK(e.code() == Errc::OutOfMemory);
  e = external::upstream_error(502, "<html>bad gateway</html>", url);
  CHECK(e.code() == Errc::EngineUnavailable);
  CHECK(e.message() == "http://10.0.0.5:8000/v1/completions answered 502: <html>bad gateway</html>");
}

TEST_CASE("log tails: the last lines of a file, cut at a line boundary") {
  test::TempDir dir;
  const auto p = dir.path() / "log";
  test::write_file(p, "one\ntwo\nthree\nfour\n");
  CHECK(external::tail_lines(p.string(), 2) == "three\nfour");
  CHECK(external::tail_lines(p.string(), 10) == "one\ntwo\nthree\nfour");
  CHECK(external::tail_lines((dir.path() / "none").string(), 3) == "");
  std::string big;
  for (int i = 0; i < 20000; ++i) big += "line " + std::to_string(i) + "\n";
  test::write_file(p, big);
  CHECK(external::tail_lines(p.string(), 2) == "line 19998\nline 19999");
  CHECK(external::pick_free_port() > 0);
}

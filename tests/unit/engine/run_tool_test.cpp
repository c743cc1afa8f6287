// cy-llm-run as a process: the JSON document against tools/schema/run.v1.json, and Ctrl-C
// (SIGINT) mid-generation stopping cleanly with exit 130 after what was generated.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test_support.h"

using namespace cyllm;

namespace {

nlohmann::json load_schema() {
  std::ifstream f(test::source_root() / "tools" / "schema" / "run.v1.json");
  REQUIRE(f.good());
  return nlohmann::json::parse(f);
}

// Every required key present with the schema's type (the subset of JSON Schema it uses).
void check_against(const nlohmann::json& doc, const nlohmann::json& schema, const std::string& where) {
  CAPTURE(where);
  if (schema.contains("const")) CHECK(doc == schema["const"]);
  if (schema.contains("enum")) {
    bool found = false;
    for (const auto& e : schema["enum"]) found = found || e == doc;
    CHECK_MESSAGE(found, doc.dump() << " not in " << schema["enum"].dump());
  }
  if (schema.contains("type")) {
    auto is = [&](const std::string& t) {
      return (t == "object" && doc.is_object()) || (t == "array" && doc.is_array()) ||
             (t == "string" && doc.is_string()) || (t == "integer" && doc.is_number_integer()) ||
             (t == "number" && doc.is_number()) || (t == "null" && doc.is_null());
    };
    bool ok = schema["type"].is_array() ? false : is(schema["type"].get<std::string>());
    if (schema["type"].is_array())
      for (const auto& t : schema["type"]) ok = ok || is(t.get<std::string>());
    CHECK_MESSAGE(ok, where << " is " << doc.dump());
  }
  if (schema.contains("required"))
    for (const auto& k : schema["required"]) CHECK_MESSAGE(doc.contains(k), where << " lacks " << k);
  if (schema.contains("properties") && doc.is_object())
    for (const auto& [k, sub] : schema["properties"].items())
      if (doc.contains(k)) check_against(doc[k], sub, where + "." + k);
  if (schema.contains("items") && doc.is_array())
    for (const auto& x : doc) check_against(x, schema["items"], where + "[]");
}

}  // namespace

TEST_CASE("--format json prints one cy-llm.run/v1 document that satisfies the schema") {
  test::TempDir cache;
  const std::vector<std::string> env = {"XDG_CACHE_HOME=" + cache.path().string()};
  auto plain = test::run_tool("cy-llm-run", {"--demo", "-p", "Hello", "-n", "12", "--seed", "3", "--format", "json"}, "", env);
  REQUIRE_MESSAGE(plain.exit_code == 0, plain.err);
  CHECK(plain.err.find("RANDOM weights") != std::string::npos);
  auto doc = nlohmann::json::parse(plain.out);
  check_against(doc, load_schema(), "$");
  CHECK(doc["usage"]["completion_tokens"] == doc["tokens"].size());
  CHECK(doc["timings"]["load_ms"].get<double>() > 0);
  CHECK(doc["timings"]["ttft_ms"].get<double>() > 0);
  // Streaming text and the JSON text agree.
  auto text = test::run_tool("cy-llm-run", {"--demo", "-p", "Hello", "-n", "12", "--seed", "3"}, "", env);
  REQUIRE(text.exit_code == 0);
  CHECK(text.out == doc["text"].get<std::string>() + "\n");
  auto chat = test::run_tool("cy-llm-run", {"--demo", "--chat", "-p", "Hi", "-n", "4", "--format", "json"}, "", env);
  REQUIRE(chat.exit_code == 0);
  check_against(nlohmann::json::parse(chat.out), load_schema(), "$");
  CHECK(nlohmann::json::parse(chat.out)["chat_format"] == "chatml");
}

TEST_CASE("Ctrl-C stops generation cleanly: what was generated stays printed, exit 130") {
  test::TempDir cache;
  const std::string tool = (test::tools_dir() / "cy-llm-run").string();
  // A context far past the demo model's 2048 so that generation runs for a long time.
  for (const bool json : {false, true}) {
    CAPTURE(json);
    int out[2];
    REQUIRE(::pipe(out) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::dup2(out[1], 1);
      ::close(out[0]);
      ::close(out[1]);
      int devnull = ::open("/dev/null", O_WRONLY);
      ::dup2(devnull, 2);
      ::setenv("XDG_CACHE_HOME", cache.path().c_str(), 1);
      std::vector<std::string> args = {tool, "--demo", "-p", "Go", "-c", "100000", "-n", "99000", "-t", "1"};
      if (json) args.insert(args.end(), {"--format", "json"});
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(tool.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    std::string got;
    char buf[4096];
    auto read_some = [&](int timeout_ms) {
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, timeout_ms) <= 0) return false;
      ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) return false;
      got.append(buf, static_cast<std::size_t>(n));
      return true;
    };
    if (json) {
      ::usleep(3000 * 1000);  // nothing is printed before the end; let it generate a while
    } else {
      REQUIRE(read_some(60000));  // the first streamed text
    }
    ::kill(pid, SIGINT);
    while (read_some(60000)) {
    }
    ::close(out[0]);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 130);
    REQUIRE_FALSE(got.empty());
    if (json) {
      auto doc = nlohmann::json::parse(got);
      CHECK(doc["finish_reason"] == "cancelled");
      CHECK(doc["tokens"].size() > 0);
      CHECK(doc["tokens"].size() < 99000);
    } else {
      CHECK(got.back() == '\n');
    }
  }
}

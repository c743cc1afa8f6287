// OpenAiEngine: BaseEngine over an already-running OpenAI-compatible server.
#include <algorithm>
#include <mutex>

#include "cyllm/external.h"
#include "external/openai_client.h"
#include "util/strings.h"

namespace cyllm::external {
namespace {

ClientOptions client_options(const OpenAiEngineOptions& o) {
  ClientOptions c;
  std::string base = o.base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (!util::ends_with(base, "/v1")) base += "/v1";
  c.base_url = base;
  c.api_key = o.api_key;
  c.ca_bundle = o.ca_bundle;
  c.connect_timeout = o.connect_timeout;
  c.stall_timeout = o.stall_timeout;
  return c;
}

Result<std::vector<std::string>> list_models(const ClientOptions& client) {
  if (!util::starts_with(client.base_url, "http://") && !util::starts_with(client.base_url, "https://"))
    return Error(Errc::InvalidRequest, "the upstream URL \"" + client.base_url +
                                           "\" is not http:// or https:// (pass --upstream http://HOST:PORT/v1)");
  const std::string url = client.base_url + "/models";
  auto reply = http_get(url, client, std::chrono::seconds(30));
  if (!reply) return Error(Errc::ModelLoadFailed, reply.error().message() + " (is the upstream server running?)");
  if (reply->status != 200) return Error(Errc::ModelLoadFailed, upstream_error(reply->status, reply->body, url).message());
  auto j = nlohmann::json::parse(reply->body, nullptr, false);
  std::vector<std::string> ids;
  if (!j.is_discarded() && j.is_object() && j.contains("data") && j["data"].is_array())
    for (const auto& m : j["data"])
      if (m.is_object() && m.contains("id") && m["id"].is_string()) ids.push_back(m["id"].get<std::string>());
  return ids;
}


class OpenAiEngine final : public engine::BaseEngine {
 public:
  OpenAiEngine(const OpenAiEngineOptions& o, Logger& log) : log_(log), client_(client_options(o)) {}

  Result<void> load_model(const std::string& model, const engine::EngineConfig&) override {
    auto listed = list_models(client_);
    if (!listed) return listed.error();
    const std::vector<std::string>& ids = *listed;
    const std::string url = client_.base_url + "/models";
    std::string chosen = model;
    if (chosen.empty()) {
      if (ids.empty()) return Error(Errc::ModelLoadFailed, url + " lists no model; name one with -m/--model");
      chosen = ids.front();
    } else if (std::find(ids.begin(), ids.end(), chosen) == ids.end()) {
      std::string known;
      for (const auto& id : ids) known += (known.empty() ? "" : ", ") + id;
      return Error(Errc::ModelLoadFailed, "the upstream " + client_.base_url + " does not serve \"" + chosen +
                                              "\" (it lists: " + (known.empty() ? "nothing" : known) + ")");
    }
    std::lock_guard lock(mu_);
    model_ = chosen;
    loaded_ = true;
    log_.log(LogLevel::Info, "upstream connected", {{"url", client_.base_url}, {"model", chosen}});
    return {};
  }

  Result<engine::Completion> stream_predict(const engine::Request& request, const engine::TokenSink& sink,
                                            const std::atomic<bool>* cancel) override {
    std::string model;
    {
      std::lock_guard lock(mu_);
      if (!loaded_) return Error(Errc::EngineUnavailable, "no upstream model is loaded");
      model = model_;
    }
    return stream_completion(client_, request, model, sink, cancel);
  }

  void unload_model() override {
    std::lock_guard lock(mu_);
    loaded_ = false;
  }
  double get_memory_usage() const override { return 0; }
  std::string_view name() const override { return "openai"; }
  bool loaded() const override {
    std::lock_guard lock(mu_);
    return loaded_;
  }

 private:
  Logger& log_;
  ClientOptions client_;  // immutable after construction
  mutable std::mutex mu_;
  std::string model_;
  bool loaded_ = false;
};

}  // namespace

std::unique_ptr<engine::BaseEngine> make_openai_engine(OpenAiEngineOptions options, Logger& log) {
  return std::make_unique<OpenAiEngine>(options, log);
}

Result<std::vector<std::string>> list_upstream_models(const OpenAiEngineOptions& options) {
  return list_models(client_options(options));
}

}  // namespace cyllm::external

// OpenAI-compatible client over libcurl's easy interface, one transfer per call (each
// caller thread runs its own; nothing is shared between calls).
#include "external/openai_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdint>

#include "util/strings.h"

namespace cyllm::external {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0, Clock::time_point t1) {
  return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

constexpr std::size_t kMaxErrorBody = 64 * 1024;

struct Easy {
  CURL* h = curl_easy_init();
  curl_slist* headers = nullptr;
  char errbuf[CURL_ERROR_SIZE] = {0};
  ~Easy() {
    curl_slist_free_all(headers);
    if (h) curl_easy_cleanup(h);
  }
  void common(const std::string& url, const ClientOptions& o) {
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o.connect_timeout.count()));
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (!o.ca_bundle.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, o.ca_bundle.c_str());
    if (!o.api_key.empty()) headers = curl_slist_append(headers, ("Authorization: Bearer " + o.api_key).c_str());
  }
  std::string error(CURLcode rc) const {
    return errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
  }
};

size_t collect(char* data, size_t size, size_t n, void* user) {
  auto* body = static_cast<std::string*>(user);
  const size_t len = size * n;
  if (body->size() < kMaxErrorBody) body->append(data, std::min(len, kMaxErrorBody - body->size()));
  return len;
}

std::optional<Errc> errc_from_id(std::string_view id) {
  for (int i = 0; i <= static_cast<int>(kLastErrc); ++i) {
    const auto c = static_cast<Errc>(i);
    if (errc_id(c) == id) return c;
  }
  return std::nullopt;
}

bool mentions_oom(std::string_view text) {
  const std::string t = util::to_lower(text);
  return t.find("out of memory") != std::string::npos || t.find("outofmemory") != std::string::npos;
}

// The state of one streamed transfer, shared with curl's callbacks.
struct Stream {
  explicit Stream(bool chat) : parser(chat) {}
  const engine::TokenSink* sink = nullptr;
  const std::atomic<bool>* cancel = nullptr;
  std::optional<Clock::time_point> deadline;
  CURL* h = nullptr;
  UpstreamStream parser;
  long status = 0;
  std::string error_body;  // the body of a non-200 answer
  bool cancelled = false;
  bool deadline_hit = false;
  engine::Completion out;
  Clock::time_point t0 = Clock::now();
  std::optional<Clock::time_point> first, last;
  std::uint32_t pieces = 0;
};

size_t on_stream_body(char* data, size_t size, size_t n, void* user) {
  auto& s = *static_cast<Stream*>(user);
  const size_t len = size * n;
  if (s.status == 0) curl_easy_getinfo(s.h, CURLINFO_RESPONSE_CODE, &s.status);
  if (s.status != 200) return collect(data, size, n, &s.error_body);
  const bool go_on = s.parser.feed(std::string_view(data, len), [&](std::string_view text) {
    const auto now = Clock::now();
    if (!s.first) s.first = now;
    s.last = now;
    ++s.pieces;
    s.out.text += text;
    return !*s.sink || (*s.sink)(text, tokenizer::kNoToken);  // the OpenAI API carries no ids
  });
  return go_on ? len : 0;  // 0 aborts the transfer: the server sees the hang-up
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto& s = *static_cast<Stream*>(user);
  if (s.cancel && s.cancel->load()) {
    s.cancelled = true;
    return 1;
  }
  if (s.deadline && Clock::now() >= *s.deadline) {
    s.deadline_hit = true;
    return 1;
  }
  return 0;
}

}  // namespace

bool UpstreamStream::feed(std::string_view bytes, const std::function<bool(std::string_view)>& on_piece) {
  if (stopped_) return false;
  sse_.feed(bytes, [&](std::string_view ev) { on_event(ev, on_piece); });
  return !stopped_;
}

void UpstreamStream::on_event(std::string_view data, const std::function<bool(std::string_view)>& on_piece) {
  if (done_ || stopped_) return;
  if (util::trim(data) == "[DONE]") {
    done_ = true;
    return;
  }
  auto j = nlohmann::json::parse(data, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return;  // keep-alives and foreign events
  if (j.contains("error")) {
    error_ = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return;
  }
  if (j.contains("usage") && j["usage"].is_object()) {
    engine::Usage u;
    const auto& uj = j["usage"];
    if (uj.contains("prompt_tokens") && uj["prompt_tokens"].is_number_unsigned())
      u.prompt_tokens = static_cast<std::uint32_t>(std::min<std::uint64_t>(uj["prompt_tokens"].get<std::uint64_t>(), UINT32_MAX));
    if (uj.contains("completion_tokens") && uj["completion_tokens"].is_number_unsigned())
      u.completion_tokens =
          static_cast<std::uint32_t>(std::min<std::uint64_t>(uj["completion_tokens"].get<std::uint64_t>(), UINT32_MAX));
    usage_ = u;
  }
  if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) return;
  const auto& c = j["choices"][0];
  if (!c.is_object()) return;
  std::string text;
  if (chat_) {
    if (c.contains("delta") && c["delta"].is_object() && c["delta"].contains("content") &&
        c["delta"]["content"].is_string())
      text = c["delta"]["content"].get<std::string>();
  } else if (c.contains("text") && c["text"].is_string()) {
    text = c["text"].get<std::string>();
  }
  if (c.contains("finish_reason") && c["finish_reason"].is_string()) finish_reason_ = c["finish_reason"].get<std::string>();
  if (!text.empty() && on_piece && !on_piece(text)) stopped_ = true;
}

Result<HttpReply> http_get(const std::string& url, const ClientOptions& options,
                           std::chrono::milliseconds timeout) {
  Easy e;
  if (!e.h) return Error(Errc::EngineInternal, "curl_easy_init failed");
  e.common(url, options);
  HttpReply reply;
  curl_easy_setopt(e.h, CURLOPT_HTTPHEADER, e.headers);
  curl_easy_setopt(e.h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(e.h, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(e.h, CURLOPT_WRITEDATA, &reply.body);
  const CURLcode rc = curl_easy_perform(e.h);
  if (rc != CURLE_OK) return Error(Errc::EngineUnavailable, "cannot reach " + url + ": " + e.error(rc));
  curl_easy_getinfo(e.h, CURLINFO_RESPONSE_CODE, &reply.status);
  return reply;
}

nlohmann::json request_body(const engine::Request& r, const std::string& model) {
  nlohmann::json j = nlohmann::json::object();
  if (!model.empty()) j["model"] = model;
  if (!r.messages.empty()) {
    j["messages"] = nlohmann::json::array();
    for (const auto& m : r.messages) j["messages"].push_back({{"role", m.role}, {"content", m.content}});
  } else {
    j["prompt"] = r.prompt;
  }
  j["max_tokens"] = r.max_tokens;
  const auto& s = r.sampling;
  j["temperature"] = s.temperature > 0 ? s.temperature : 0.0f;
  if (s.top_p < 1) j["top_p"] = s.top_p;
  if (s.top_k > 0) j["top_k"] = s.top_k;
  if (s.min_p > 0) j["min_p"] = s.min_p;
  if (s.repeat_penalty != 1.0f) j["repetition_penalty"] = s.repeat_penalty;
  if (s.presence_penalty != 0) j["presence_penalty"] = s.presence_penalty;
  if (s.frequency_penalty != 0) j["frequency_penalty"] = s.frequency_penalty;
  j["seed"] = s.seed;
  if (!r.stop.empty()) j["stop"] = r.stop;
  j["stream"] = true;
  j["stream_options"] = {{"include_usage", true}};
  return j;
}

Error upstream_error(long status, std::string_view body, std::string_view url) {
  std::string message, code;
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("error")) {
    const auto& e = j["error"];
    if (e.is_object()) {
      if (e.contains("message") && e["message"].is_string()) message = e["message"].get<std::string>();
      if (e.contains("code") && e["code"].is_string()) code = e["code"].get<std::string>();
    } else if (e.is_string()) {
      message = e.get<std::string>();
    }
  } else if (!j.is_discarded() && j.is_object() && j.contains("detail") && j["detail"].is_string()) {
    message = j["detail"].get<std::string>();  // FastAPI's shape
  }
  if (message.empty()) message = std::string(util::trim(body.substr(0, 300)));
  const std::string where = std::string(url) + " answered " + std::to_string(status);
  if (auto c = errc_from_id(code)) {
    // A cy-llm-serve upstream: keep its code, except that its authentication failures are
    // our configuration's fault, not the caller's.
    if (*c != Errc::Unauthenticated) return Error(*c, message + " (" + where + ")");
  }
  if (mentions_oom(message)) return Error(Errc::OutOfMemory, where + ": " + message);
  if (status == 400 || status == 404 || status == 422)
    return Error(Errc::InvalidRequest, message + " (" + where + ")");
  if (status == 401 || status == 403)
    return Error(Errc::EngineUnavailable, where + ": " + message + "; check the API key for this upstream");
  if (status == 429) return Error(Errc::Overloaded, where + ": " + message);
  return Error(Errc::EngineUnavailable, where + ": " + message);
}

Result<engine::Completion> stream_completion(const ClientOptions& options, const engine::Request& r,
                                             const std::string& model, const engine::TokenSink& sink,
                                             const std::atomic<bool>* cancel) {
  Stream s(!r.messages.empty());
  s.sink = &sink;
  s.cancel = cancel;
  s.deadline = r.deadline;
  const bool chat = !r.messages.empty();
  if (s.deadline && Clock::now() >= *s.deadline)
    return Error(Errc::DeadlineExceeded, "the request's deadline passed before it started");
  const std::string url = options.base_url + (chat ? "/chat/completions" : "/completions");
  const std::string body = request_body(r, model).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  Easy e;
  if (!e.h) return Error(Errc::EngineInternal, "curl_easy_init failed");
  s.h = e.h;
  e.common(url, options);
  e.headers = curl_slist_append(e.headers, "Content-Type: application/json");
  e.headers = curl_slist_append(e.headers, "Accept: text/event-stream");
  curl_easy_setopt(e.h, CURLOPT_HTTPHEADER, e.headers);
  curl_easy_setopt(e.h, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(e.h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(e.h, CURLOPT_WRITEFUNCTION, on_stream_body);
  curl_easy_setopt(e.h, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(e.h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(e.h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(e.h, CURLOPT_XFERINFODATA, &s);
  curl_easy_setopt(e.h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(e.h, CURLOPT_LOW_SPEED_TIME,
                   std::max(1L, static_cast<long>(options.stall_timeout.count() / 1000)));
  const CURLcode rc = curl_easy_perform(e.h);
  if (s.status == 0) curl_easy_getinfo(e.h, CURLINFO_RESPONSE_CODE, &s.status);

  engine::Completion& out = s.out;
  const bool sink_refused = s.parser.stopped();
  const bool stopped_early = s.cancelled || sink_refused || s.deadline_hit;
  if (stopped_early) {
    if (s.pieces == 0 && !sink_refused)
      return s.deadline_hit ? Error(Errc::DeadlineExceeded, "the request's deadline passed before the first token")
                            : Error(Errc::EngineCancelled, "the request was cancelled before the first token");
    out.finish_reason = s.deadline_hit ? engine::FinishReason::Deadline : engine::FinishReason::Cancelled;
  } else if (rc != CURLE_OK) {
    if (s.status != 0 && s.status != 200) return upstream_error(s.status, s.error_body, url);
    return Error(Errc::EngineUnavailable, "the stream from " + url + " broke after " + std::to_string(s.pieces) +
                                              " pieces: " + e.error(rc));
  } else if (s.status != 200) {
    return upstream_error(s.status, s.error_body, url);
  } else if (!s.parser.error_event().empty()) {
    return upstream_error(500, s.parser.error_event(), url);
  } else if (!s.parser.done() && s.parser.finish_reason().empty()) {
    return Error(Errc::EngineUnavailable, "the stream from " + url + " ended without [DONE] after " +
                                              std::to_string(s.pieces) + " pieces");
  } else {
    out.finish_reason = s.parser.finish_reason() == "length" ? engine::FinishReason::Length : engine::FinishReason::Stop;
  }
  if (s.parser.usage()) out.usage = *s.parser.usage();
  else out.usage.completion_tokens = s.pieces;
  out.chat_format = "";  // the upstream applied its own template
  const auto end = s.last.value_or(Clock::now());
  if (s.first) {
    out.timings.ttft_ms = ms_since(s.t0, *s.first);
    out.timings.prompt_ms = out.timings.ttft_ms;
    out.timings.generation_ms = ms_since(*s.first, end);
    if (out.timings.generation_ms > 0 && out.usage.completion_tokens > 1)
      out.timings.generation_tokens_per_s = (out.usage.completion_tokens - 1) * 1000.0 / out.timings.generation_ms;
    if (out.timings.prompt_ms > 0)
      out.timings.prompt_tokens_per_s = out.usage.prompt_tokens * 1000.0 / out.timings.prompt_ms;
  }
  return std::move(out);
}

}  // namespace cyllm::external

#include "cyllm/openai.h"

#include <cmath>
#include <limits>
#include <utility>

namespace cyllm::openai {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

ApiError bad(std::string param, std::string message, std::string code = "invalid_value") {
  ApiError e;
  e.status = 400;
  e.message = std::move(message);
  e.param = std::move(param);
  e.code = std::move(code);
  return e;
}

std::string type_name(const json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  return v.type_name();
}

std::string num_text(double v) {
  if (std::floor(v) == v && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  std::string s = std::to_string(v);
  while (!s.empty() && s.back() == '0') s.pop_back();
  return s;
}

// A parameter value or nullptr when absent or null.
const json* find(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<ApiError> read_number(const json& obj, const char* key, double lo, double hi,
                                    bool lo_open, float& out) {
  const json* v = find(obj, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number())
    return bad(key, std::string(key) + " must be a number, got " + type_name(*v), "invalid_type");
  const double d = v->get<double>();
  const bool below = lo_open ? !(d > lo) : !(d >= lo);
  if (below || !(d <= hi) || !std::isfinite(d))
    return bad(key, std::string(key) + " must be " + (lo_open ? "in (" : "between ") + num_text(lo) +
                        (lo_open ? ", " : " and ") + num_text(hi) + (lo_open ? "]" : "") + ", got " +
                        num_text(d));
  out = static_cast<float>(d);
  return std::nullopt;
}

std::optional<ApiError> read_int(const json& obj, const char* key, std::int64_t lo, std::int64_t hi,
                                 std::int64_t& out) {
  const json* v = find(obj, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number_integer())
    return bad(key, std::string(key) + " must be an integer, got " + type_name(*v), "invalid_type");
  if (v->is_number_unsigned() && v->get<std::uint64_t>() > static_cast<std::uint64_t>(hi))
    return bad(key, std::string(key) + " must be at most " + std::to_string(hi) + ", got " + v->dump());
  const std::int64_t i = v->get<std::int64_t>();
  if (i < lo || i > hi)
    return bad(key, std::string(key) + " must be between " + std::to_string(lo) + " and " +
                        std::to_string(hi) + ", got " + std::to_string(i));
  out = i;
  return std::nullopt;
}

std::optional<ApiError> read_bool(const json& obj, const char* key, bool& out) {
  const json* v = find(obj, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean())
    return bad(key, std::string(key) + " must be a boolean, got " + type_name(*v), "invalid_type");
  out = v->get<bool>();
  return std::nullopt;
}

std::optional<ApiError> read_messages(const json& body, engine::Request& r) {
  const json* m = find(body, "messages");
  if (m == nullptr) return bad("messages", "messages is required", "missing_required_parameter");
  if (!m->is_array()) return bad("messages", "messages must be an array, got " + type_name(*m), "invalid_type");
  if (m->empty()) return bad("messages", "messages must not be empty");
  for (std::size_t i = 0; i < m->size(); ++i) {
    const json& msg = (*m)[i];
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!msg.is_object()) return bad(at, at + " must be an object, got " + type_name(msg), "invalid_type");
    const json* role = find(msg, "role");
    if (role == nullptr || !role->is_string())
      return bad(at + ".role", at + ".role must be a string", "invalid_type");
    std::string rs = role->get<std::string>();
    if (rs == "developer") rs = "system";
    if (rs != "system" && rs != "user" && rs != "assistant")
      return bad(at + ".role", at + ".role " + json(role->get<std::string>()).dump() +
                                   " is not supported (system, developer, user, assistant)");
    std::string content;
    const json* c = find(msg, "content");
    if (c == nullptr) {
      if (rs != "assistant") return bad(at + ".content", at + ".content is required", "missing_required_parameter");
    } else if (c->is_string()) {
      content = c->get<std::string>();
    } else if (c->is_array()) {
      for (std::size_t k = 0; k < c->size(); ++k) {
        const json& part = (*c)[k];
        const std::string pat = at + ".content[" + std::to_string(k) + "]";
        const json* type = part.is_object() ? find(part, "type") : nullptr;
        const json* text = part.is_object() ? find(part, "text") : nullptr;
        if (type == nullptr || !type->is_string() || type->get<std::string>() != "text" ||
            text == nullptr || !text->is_string())
          return bad(pat, pat + " must be a text part {\"type\":\"text\",\"text\":...}; other parts are not supported");
        content += text->get<std::string>();
      }
    } else {
      return bad(at + ".content", at + ".content must be a string or an array of text parts, got " +
                                      type_name(*c), "invalid_type");
    }
    r.messages.push_back({std::move(rs), std::move(content)});
  }
  return std::nullopt;
}

std::optional<ApiError> read_stop(const json& body, engine::Request& r) {
  const json* s = find(body, "stop");
  if (s == nullptr) return std::nullopt;
  if (s->is_string()) {
    if (s->get<std::string>().empty()) return bad("stop", "stop must not be an empty string");
    r.stop.push_back(s->get<std::string>());
    return std::nullopt;
  }
  if (!s->is_array()) return bad("stop", "stop must be a string or an array of strings, got " + type_name(*s), "invalid_type");
  if (s->size() > 4) return bad("stop", "stop has " + std::to_string(s->size()) + " strings; at most 4 are allowed");
  for (std::size_t i = 0; i < s->size(); ++i) {
    const json& e = (*s)[i];
    if (!e.is_string() || e.get<std::string>().empty())
      return bad("stop", "stop[" + std::to_string(i) + "] must be a non-empty string");
    r.stop.push_back(e.get<std::string>());
  }
  return std::nullopt;
}

// Parameters we do not implement: refused rather than silently ignored.
std::optional<ApiError> refuse_unsupported(const json& body) {
  if (const json* v = find(body, "logprobs")) {
    const bool off = (v->is_boolean() && !v->get<bool>()) || (v->is_number_integer() && v->get<std::int64_t>() == 0);
    if (!off) return bad("logprobs", "logprobs are not supported by this server", "unsupported_parameter");
  }
  if (const json* v = find(body, "top_logprobs")) {
    if (!(v->is_number_integer() && v->get<std::int64_t>() == 0))
      return bad("top_logprobs", "top_logprobs are not supported by this server", "unsupported_parameter");
  }
  if (const json* v = find(body, "echo"); v != nullptr && !(v->is_boolean() && !v->get<bool>()))
    return bad("echo", "echo is not supported by this server", "unsupported_parameter");
  if (const json* v = find(body, "best_of"); v != nullptr && !(v->is_number_integer() && v->get<std::int64_t>() == 1))
    return bad("best_of", "best_of must be 1 (this server returns one choice)", "unsupported_value");
  if (const json* v = find(body, "suffix"); v != nullptr && !(v->is_string() && v->get<std::string>().empty()))
    return bad("suffix", "suffix is not supported by this server", "unsupported_parameter");
  for (const char* k : {"tools", "functions", "tool_choice", "function_call"}) {
    const json* v = find(body, k);
    if (v != nullptr && !(v->is_array() && v->empty()) && !(v->is_string() && v->get<std::string>() == "none"))
      return bad(k, std::string(k) + " is not supported by this server", "unsupported_parameter");
  }
  if (const json* v = find(body, "response_format")) {
    const json* t = v->is_object() ? find(*v, "type") : nullptr;
    if (t == nullptr || !t->is_string() || t->get<std::string>() != "text")
      return bad("response_format", "only response_format {\"type\":\"text\"} is supported", "unsupported_value");
  }
  return std::nullopt;
}

ojson usage_json(const engine::Usage& u) {
  ojson j;
  j["prompt_tokens"] = u.prompt_tokens;
  j["completion_tokens"] = u.completion_tokens;
  j["total_tokens"] = u.prompt_tokens + u.completion_tokens;
  return j;
}

ojson timings_json(const engine::Timings& t) {
  ojson j;
  j["prompt_ms"] = t.prompt_ms;
  j["ttft_ms"] = t.ttft_ms;
  j["generation_ms"] = t.generation_ms;
  j["prompt_tokens_per_s"] = t.prompt_tokens_per_s;
  j["generation_tokens_per_s"] = t.generation_tokens_per_s;
  return j;
}

ojson null_or(const std::string& s) { return s.empty() ? ojson() : ojson(s); }

}  // namespace

std::string dump(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

std::string sse_event(const ojson& j) { return "data: " + dump(j) + "\n\n"; }

std::variant<ParsedRequest, ApiError> parse_request(Endpoint endpoint, std::string_view body,
                                                    const ParseOptions& options) {
  json j;
  try {
    j = json::parse(body.begin(), body.end());
  } catch (const json::exception& e) {
    std::string what = e.what();
    if (auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
    if (what.rfind("parse error at ", 0) == 0)  // the position is given once, as a byte
      if (auto p = what.find(": "); p != std::string::npos) what = what.substr(p + 2);
    std::size_t byte = 0;
    if (const auto* pe = dynamic_cast<const json::parse_error*>(&e)) byte = pe->byte;
    ApiError err = bad("", "malformed JSON in the request body at byte " + std::to_string(byte) + ": " + what,
                       "invalid_json");
    return err;
  }
  if (!j.is_object()) return bad("", "the request body must be a JSON object, got " + type_name(j), "invalid_type");

  ParsedRequest out;
  out.endpoint = endpoint;
  engine::Request& r = out.request;
  // OpenAI's defaults rather than the engine's.
  r.sampling.temperature = 1.0f;
  r.sampling.top_p = 1.0f;
  r.sampling.top_k = 0;
  r.sampling.min_p = 0.0f;
  r.max_tokens = endpoint == Endpoint::Completions ? 16 : options.default_max_tokens;

  if (const json* m = find(j, "model")) {
    if (!m->is_string()) return bad("model", "model must be a string, got " + type_name(*m), "invalid_type");
    if (!options.model_id.empty() && m->get<std::string>() != options.model_id) {
      ApiError e = bad("model", "the model " + json(m->get<std::string>()).dump() +
                                    " does not exist; this server serves " + json(options.model_id).dump(),
                       "model_not_found");
      e.status = 404;
      return e;
    }
  }
  if (auto e = refuse_unsupported(j)) return *e;

  if (endpoint == Endpoint::Completions) {
    const json* p = find(j, "prompt");
    if (p == nullptr) return bad("prompt", "prompt is required", "missing_required_parameter");
    if (p->is_string()) {
      r.prompt = p->get<std::string>();
    } else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
      r.prompt = (*p)[0].get<std::string>();
    } else if (p->is_array()) {
      return bad("prompt", "prompt must be a string or an array of exactly one string (batches and token ids are not supported)");
    } else {
      return bad("prompt", "prompt must be a string, got " + type_name(*p), "invalid_type");
    }
  } else {
    if (auto e = read_messages(j, r)) return *e;
  }

  std::int64_t i = 0;
  const std::int64_t limit = options.max_tokens_limit;
  const char* mt_key = endpoint == Endpoint::ChatCompletions && find(j, "max_completion_tokens")
                           ? "max_completion_tokens" : "max_tokens";
  if (find(j, mt_key)) {
    if (auto e = read_int(j, mt_key, 1, limit, i)) return *e;
    r.max_tokens = static_cast<std::uint32_t>(i);
  }
  if (auto e = read_number(j, "temperature", 0, 2, false, r.sampling.temperature)) return *e;
  if (auto e = read_number(j, "top_p", 0, 1, true, r.sampling.top_p)) return *e;
  if (find(j, "top_k")) {
    if (auto e = read_int(j, "top_k", -1, 1 << 20, i)) return *e;
    r.sampling.top_k = static_cast<int>(i);
  }
  if (auto e = read_number(j, "min_p", 0, 1, false, r.sampling.min_p)) return *e;
  if (auto e = read_number(j, "presence_penalty", -2, 2, false, r.sampling.presence_penalty)) return *e;
  if (auto e = read_number(j, "frequency_penalty", -2, 2, false, r.sampling.frequency_penalty)) return *e;
  if (auto e = read_number(j, "repetition_penalty", 0, 10, true, r.sampling.repeat_penalty)) return *e;
  if (const json* s = find(j, "seed")) {
    if (!s->is_number_integer()) return bad("seed", "seed must be an integer, got " + type_name(*s), "invalid_type");
    r.sampling.seed = s->is_number_unsigned() ? s->get<std::uint64_t>()
                                              : static_cast<std::uint64_t>(s->get<std::int64_t>());
  }
  if (find(j, "n")) {
    if (auto e = read_int(j, "n", std::numeric_limits<std::int64_t>::min(),
                          std::numeric_limits<std::int64_t>::max(), i)) return *e;
    if (i != 1) return bad("n", "n must be 1 (this server returns one choice), got " + std::to_string(i), "unsupported_value");
  }
  if (auto e = read_stop(j, r)) return *e;
  if (auto e = read_bool(j, "stream", out.stream)) return *e;
  if (const json* so = find(j, "stream_options")) {
    if (!out.stream) return bad("stream_options", "stream_options is only allowed when stream is true");
    if (!so->is_object()) return bad("stream_options", "stream_options must be an object, got " + type_name(*so), "invalid_type");
    if (const json* iu = find(*so, "include_usage")) {
      if (!iu->is_boolean())
        return bad("stream_options.include_usage", "stream_options.include_usage must be a boolean, got " +
                                                       type_name(*iu), "invalid_type");
      out.include_usage = iu->get<bool>();
    }
  }
  return out;
}

ApiError error_from(const Error& error, Endpoint endpoint, int retry_after_s) {
  ApiError e;
  e.message = error.message();
  e.code = std::string(error.id());
  switch (error.code()) {
    case Errc::Overloaded:
      e.status = 429;
      e.type = "rate_limit_error";
      e.retry_after_s = retry_after_s;
      break;
    case Errc::QueueTimeout:
      e.status = 503;
      e.type = "server_error";
      e.retry_after_s = retry_after_s;
      break;
    case Errc::OutOfMemory:
    case Errc::EngineUnavailable:
      e.status = 503;
      e.type = "server_error";
      break;
    case Errc::InvalidRequest:
    case Errc::InvalidArgument: {
      e.status = 400;
      e.type = "invalid_request_error";
      // Name the parameter the engine's message starts from (its earliest mention).
      const std::string prompt_param = endpoint == Endpoint::Completions ? "prompt" : "messages";
      const std::pair<const char*, std::string> needles[] = {
          {"temperature", "temperature"}, {"top_p", "top_p"}, {"top_k", "top_k"},
          {"min_p", "min_p"}, {"repeat_penalty", "repetition_penalty"},
          {"presence", "presence_penalty"}, {"frequency", "frequency_penalty"},
          {"max_tokens", "max_tokens"}, {"stop", "stop"}, {"seed", "seed"},
          {"prompt", prompt_param}, {"role", "messages"}, {"chat template", "messages"},
          {"message", "messages"}};
      std::size_t best = std::string::npos;
      for (const auto& n : needles) {
        const auto p = e.message.find(n.first);
        if (p < best) {
          best = p;
          e.param = n.second;
        }
      }
      break;
    }
    case Errc::Unauthenticated:
      e.status = 401;
      e.type = "authentication_error";
      break;
    case Errc::PayloadTooLarge:
      e.status = 413;
      e.type = "invalid_request_error";
      break;
    case Errc::DeadlineExceeded:
    case Errc::Timeout:
      e.status = 504;
      e.type = "server_error";
      break;
    case Errc::EngineCancelled:
    case Errc::Cancelled:
      e.status = 499;
      e.type = "server_error";
      break;
    default:
      e.status = 500;
      e.type = "server_error";
      break;
  }
  return e;
}

std::string error_body(const ApiError& error) {
  ojson inner;
  inner["message"] = error.message;
  inner["type"] = error.type;
  inner["param"] = null_or(error.param);
  inner["code"] = null_or(error.code);
  ojson j;
  j["error"] = std::move(inner);
  return dump(j);
}

std::string_view finish_reason(engine::FinishReason r) {
  switch (r) {
    case engine::FinishReason::Stop: return "stop";
    case engine::FinishReason::Length: return "length";
    case engine::FinishReason::Deadline: return "length";
    case engine::FinishReason::Cancelled: return "stop";
  }
  return "stop";
}

ojson completion_response(Endpoint endpoint, const ResponseMeta& meta, const engine::Completion& c) {
  ojson choice;
  choice["index"] = 0;
  if (endpoint == Endpoint::Completions) {
    choice["text"] = c.text;
  } else {
    ojson msg;
    msg["role"] = "assistant";
    msg["content"] = c.text;
    choice["message"] = std::move(msg);
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish_reason(c.finish_reason);
  ojson j;
  j["id"] = meta.id;
  j["object"] = endpoint == Endpoint::Completions ? "text_completion" : "chat.completion";
  j["created"] = meta.created;
  j["model"] = meta.model;
  j["choices"] = ojson::array({std::move(choice)});
  j["usage"] = usage_json(c.usage);
  j["timings"] = timings_json(c.timings);
  return j;
}

ojson StreamEncoder::chunk() const {
  ojson j;
  j["id"] = meta_.id;
  j["object"] = endpoint_ == Endpoint::Completions ? "text_completion" : "chat.completion.chunk";
  j["created"] = meta_.created;
  j["model"] = meta_.model;
  j["choices"] = ojson::array();
  if (include_usage_) j["usage"] = nullptr;
  return j;
}

std::string StreamEncoder::begin() {
  if (endpoint_ == Endpoint::Completions) return {};
  ojson j = chunk();
  ojson delta;
  delta["role"] = "assistant";
  delta["content"] = "";
  j["choices"].push_back({{"index", 0}, {"delta", std::move(delta)}, {"logprobs", nullptr},
                          {"finish_reason", nullptr}});
  return sse_event(j);
}

std::string StreamEncoder::piece(std::string_view text) {
  ojson j = chunk();
  ojson choice;
  choice["index"] = 0;
  if (endpoint_ == Endpoint::Completions) {
    choice["text"] = text;
  } else {
    choice["delta"] = {{"content", text}};
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = nullptr;
  j["choices"].push_back(std::move(choice));
  return sse_event(j);
}

std::string StreamEncoder::finish(const engine::Completion& c) {
  ojson j = chunk();
  ojson choice;
  choice["index"] = 0;
  if (endpoint_ == Endpoint::Completions) {
    choice["text"] = "";
  } else {
    choice["delta"] = ojson::object();
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish_reason(c.finish_reason);
  j["choices"].push_back(std::move(choice));
  j["timings"] = timings_json(c.timings);
  std::string out = sse_event(j);
  if (include_usage_) {
    ojson u = chunk();
    u["usage"] = usage_json(c.usage);
    out += sse_event(u);
  }
  out += "data: [DONE]\n\n";
  return out;
}

std::string StreamEncoder::error(const ApiError& e) {
  return "data: " + error_body(e) + "\n\ndata: [DONE]\n\n";
}

ojson models_response(std::string_view model_id, std::int64_t created) {
  ojson m;
  m["id"] = model_id;
  m["object"] = "model";
  m["created"] = created;
  m["owned_by"] = "cy-llm";
  ojson j;
  j["object"] = "list";
  j["data"] = ojson::array({std::move(m)});
  return j;
}

}  // namespace cyllm::openai

// Launch specs: (engine, version, EngineConfig) -> argv, env and config files, from the
// registry's `launchers` data (registry/README.md "Launchers").
//
// Design goals: everything that differs between engine versions lives in the registry
// entry; this file only knows the EngineConfig fields, the placeholder names and how to
// render JSON/YAML. A set field that the entry does not use is reported in
// LaunchSpec::ignored, never dropped silently. Non-goals: checking that the engine's
// binary exists (the process engine does that when it starts it).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cyllm/external.h"
#include "cyllm/packaging.h"
#include "util/strings.h"

namespace cyllm::external {
namespace {

using registry::Launcher;
using registry::TemplateValue;

// The value of one placeholder.
struct Value {
  enum class Kind { Unset, Text, Number, List };
  Kind kind = Kind::Unset;
  std::string text;                 // Text and Number
  std::vector<std::string> numbers; // List: numbers as text
  bool non_default = false;         // a field set away from its default (passed / ignored)
};

std::string format_double(double d) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, r.ptr);
}

Value text(std::string s, bool non_default) {
  Value v;
  if (!s.empty()) v.kind = Value::Kind::Text;
  v.text = std::move(s);
  v.non_default = non_default && v.kind != Value::Kind::Unset;
  return v;
}
Value number(std::string s, bool non_default) {
  Value v;
  v.kind = Value::Kind::Number;
  v.text = std::move(s);
  v.non_default = non_default;
  return v;
}

Error invalid(std::string message) { return Error(Errc::InvalidRequest, std::move(message)); }

// nlohmann's dump() throws on invalid UTF-8 (registry text is not checked for it): replace
// such bytes with U+FFFD instead.
template <class J>
std::string dump(const J& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The placeholder values of one launch.
struct Values {
  std::map<std::string, Value> by_name;
  std::string venv;

  const Value* find(const std::string& name) const {
    auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : &it->second;
  }
};

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? std::string(sep) : "") + items[i];
  return out;
}

// Splits "{name|default}" contents.
std::pair<std::string, std::optional<std::string>> split_placeholder(std::string_view inner) {
  auto bar = inner.find('|');
  if (bar == std::string_view::npos) return {std::string(inner), std::nullopt};
  return {std::string(inner.substr(0, bar)), std::string(inner.substr(bar + 1))};
}

// Every placeholder name used in `s` goes to `used`.
void collect_names(std::string_view s, std::set<std::string>& used) {
  for (auto pos = s.find('{'); pos != std::string_view::npos; pos = s.find('{', pos + 1)) {
    auto end = s.find('}', pos);
    if (end == std::string_view::npos) return;
    used.insert(split_placeholder(s.substr(pos + 1, end - pos - 1)).first);
  }
}
void collect_names(const TemplateValue& t, std::set<std::string>& used) {
  if (t.kind == TemplateValue::Kind::String) collect_names(t.text, used);
  for (const auto& i : t.items) collect_names(i, used);
  for (const auto& e : t.entries) collect_names(e.value, used);
}

// Replaces the placeholders of a text template. `value` stands for {value}. An unset
// placeholder without a default is an error naming it (`where` says which template).
Result<std::string> substitute(const std::string& tmpl, const Values& vals, const std::string* value,
                               const std::string& where) {
  std::string out;
  std::size_t i = 0;
  while (i < tmpl.size()) {
    if (tmpl[i] != '{') {
      out += tmpl[i++];
      continue;
    }
    auto end = tmpl.find('}', i);
    if (end == std::string::npos) return invalid(where + ": unclosed \"{\" in " + util::quote(tmpl));
    auto [name, def] = split_placeholder(std::string_view(tmpl).substr(i + 1, end - i - 1));
    i = end + 1;
    if (name == "venv_bin" && vals.venv.empty()) {
      if (i < tmpl.size() && tmpl[i] == '/') ++i;  // "{venv_bin}/vllm" -> "vllm" (PATH)
      continue;
    }
    if (name == "value" && value != nullptr) {
      out += *value;
      continue;
    }
    const Value* v = vals.find(name);
    if (v == nullptr || v->kind == Value::Kind::Unset) {
      if (def) {
        out += *def;
        continue;
      }
      return invalid(where + ": " + util::quote(tmpl) + " needs {" + name + "}, which this launch does not set");
    }
    out += v->kind == Value::Kind::List ? join(v->numbers, ",") : v->text;
  }
  return out;
}

// A scalar as YAML would type it: true/false, a number, else text.
TemplateValue typed_scalar(const std::string& s) {
  TemplateValue t;
  t.text = s;
  if (s == "true" || s == "false") t.kind = TemplateValue::Kind::Bool;
  else if (util::parse_i64(s) || (util::parse_double(s) && std::isfinite(*util::parse_double(s))))
    t.kind = TemplateValue::Kind::Number;
  else t.kind = TemplateValue::Kind::String;
  return t;
}

// Substitutes a config-file template; a string that is one placeholder keeps its type.
Result<TemplateValue> substitute_tree(const TemplateValue& t, const Values& vals, const std::string& where) {
  TemplateValue out;
  out.kind = t.kind;
  out.text = t.text;
  if (t.kind == TemplateValue::Kind::String) {
    const std::string& s = t.text;
    bool whole = s.size() > 2 && s.front() == '{' && s.back() == '}' && s.find('{', 1) == std::string::npos;
    if (whole) {
      auto [name, def] = split_placeholder(std::string_view(s).substr(1, s.size() - 2));
      const Value* v = vals.find(name);
      if (v != nullptr && v->kind == Value::Kind::Number) return typed_scalar(v->text);
      if (v != nullptr && v->kind == Value::Kind::List) {
        TemplateValue list;
        list.kind = TemplateValue::Kind::Seq;
        for (const auto& n : v->numbers) list.items.push_back(typed_scalar(n));
        return list;
      }
      if ((v == nullptr || v->kind == Value::Kind::Unset) && def) return typed_scalar(*def);
    }
    auto text = CYLLM_TRY(substitute(s, vals, nullptr, where));
    out.text = std::move(text);
    return out;
  }
  for (const auto& i : t.items) {
    auto item = CYLLM_TRY(substitute_tree(i, vals, where));
    out.items.push_back(std::move(item));
  }
  for (const auto& e : t.entries) {
    auto value = CYLLM_TRY(substitute_tree(e.value, vals, where));
    out.entries.emplace_back(e.key, std::move(value));
  }
  return out;
}

// Sets `value` at a dotted key path ("a.b", "a.list[0].c"), creating mappings on the way.
Result<void> set_path(TemplateValue& root, const std::string& path, TemplateValue value) {
  TemplateValue* cur = &root;
  auto parts = util::split(path, '.');
  for (std::size_t k = 0; k < parts.size(); ++k) {
    std::string_view part = parts[k];
    std::optional<std::size_t> index;
    if (auto lb = part.find('['); lb != std::string_view::npos && part.back() == ']') {
      auto n = util::parse_u64(part.substr(lb + 1, part.size() - lb - 2));
      if (!n) return invalid("config key " + util::quote(path) + ": bad index in " + util::quote(part));
      index = static_cast<std::size_t>(*n);
      part = part.substr(0, lb);
    }
    if (part.empty()) return invalid("config key " + util::quote(path) + " has an empty component");
    if (cur->kind == TemplateValue::Kind::Null) cur->kind = TemplateValue::Kind::Map;
    if (cur->kind != TemplateValue::Kind::Map)
      return invalid("config key " + util::quote(path) + ": " + util::quote(part) + " is not inside a mapping");
    auto it = std::find_if(cur->entries.begin(), cur->entries.end(),
                           [&](const TemplateValue::Entry& e) { return e.key == part; });
    bool last = k + 1 == parts.size();
    if (it == cur->entries.end()) {
      if (index) return invalid("config key " + util::quote(path) + ": no list " + util::quote(part));
      cur->entries.emplace_back(std::string(part), TemplateValue{});
      it = cur->entries.end() - 1;
    }
    cur = &it->value;
    if (index) {
      if (cur->kind != TemplateValue::Kind::Seq || *index >= cur->items.size())
        return invalid("config key " + util::quote(path) + ": " + util::quote(part) + " has no item " +
                       std::to_string(*index));
      cur = &cur->items[*index];
    }
    if (last) *cur = std::move(value);
  }
  return {};
}

nlohmann::ordered_json to_json(const TemplateValue& t) {
  switch (t.kind) {
    case TemplateValue::Kind::Null: return nullptr;
    case TemplateValue::Kind::Bool: return t.text == "true";
    case TemplateValue::Kind::Number:
      if (auto i = util::parse_i64(t.text)) return *i;
      if (auto d = util::parse_double(t.text)) return *d;
      return t.text;
    case TemplateValue::Kind::String: return t.text;
    case TemplateValue::Kind::Seq: {
      auto a = nlohmann::ordered_json::array();
      for (const auto& i : t.items) a.push_back(to_json(i));
      return a;
    }
    case TemplateValue::Kind::Map: {
      auto o = nlohmann::ordered_json::object();
      for (const auto& e : t.entries) o[e.key] = to_json(e.value);
      return o;
    }
  }
  return nullptr;
}

// YAML scalars: strings always double-quoted (JSON escaping is valid YAML), so that "1.0"
// or "true" stay text.
std::string yaml_scalar(const TemplateValue& t) {
  switch (t.kind) {
    case TemplateValue::Kind::Null: return "null";
    case TemplateValue::Kind::Bool: return t.text;
    case TemplateValue::Kind::Number: return dump(to_json(t));
    default: return dump(nlohmann::json(t.text));
  }
}
std::string yaml_key(const std::string& k) {
  bool plain = !k.empty() && std::all_of(k.begin(), k.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
  return plain ? k : dump(nlohmann::json(k));
}
bool is_container(const TemplateValue& t) {
  return (t.kind == TemplateValue::Kind::Map && !t.entries.empty()) ||
         (t.kind == TemplateValue::Kind::Seq && !t.items.empty());
}
void emit_yaml(const TemplateValue& t, int indent, std::string& out) {
  std::string pad(static_cast<std::size_t>(indent), ' ');
  if (t.kind == TemplateValue::Kind::Map) {
    for (const auto& e : t.entries) {
      out += pad + yaml_key(e.key) + ":";
      if (is_container(e.value)) {
        out += "\n";
        emit_yaml(e.value, indent + 2, out);
      } else {
        out += " " + (e.value.kind == TemplateValue::Kind::Map ? "{}"
                      : e.value.kind == TemplateValue::Kind::Seq ? "[]" : yaml_scalar(e.value)) + "\n";
      }
    }
  } else if (t.kind == TemplateValue::Kind::Seq) {
    for (const auto& i : t.items) {
      if (is_container(i)) {
        out += pad + "-\n";
        emit_yaml(i, indent + 2, out);
      } else {
        out += pad + "- " + (i.kind == TemplateValue::Kind::Map ? "{}"
                             : i.kind == TemplateValue::Kind::Seq ? "[]" : yaml_scalar(i)) + "\n";
      }
    }
  }
}

std::string render(const TemplateValue& t, const std::string& format) {
  if (format == "yaml") {
    if (!is_container(t)) return "{}\n";
    std::string out;
    emit_yaml(t, 0, out);
    return out;
  }
  return dump(to_json(t), 4) + "\n";
}

// extra_config key -> command-line flag name: "enforce_eager" -> "enforce-eager".
Result<std::string> flag_name(const std::string& key) {
  bool ok = !key.empty() && key.front() != '-' && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
  if (!ok) return invalid("extra_config key " + util::quote(key) + " is not a flag name (letters, digits, _ - .)");
  std::string out = key;
  std::replace(out.begin(), out.end(), '_', '-');
  return out;
}

struct Chosen {
  const registry::Engine* engine = nullptr;
  const Launcher* launcher = nullptr;
  std::string version;
};

Result<Chosen> choose(const registry::Registry& reg, const LaunchInputs& in) {
  Chosen c;
  c.engine = reg.find_engine(in.engine);
  if (c.engine == nullptr) {
    std::vector<std::string> names;
    for (const auto& l : reg.launchers)
      if (std::find(names.begin(), names.end(), l.engine) == names.end()) names.push_back(l.engine);
    return invalid("unknown engine " + util::quote(in.engine) + " (engines with launchers: " + join(names, ", ") + ")");
  }
  if (c.engine->kind == registry::EngineKind::Native)
    return invalid("engine " + util::quote(in.engine) + " is built in: it runs in-process and has no launcher");
  c.version = in.version.empty() ? c.engine->default_version : in.version;
  if (!packaging::parse_version(c.version).ok())
    return invalid("bad " + in.engine + " version " + util::quote(c.version) + " (expected a PEP 440 version)");
  c.launcher = reg.find_launcher(in.engine, c.version);
  if (c.launcher == nullptr) {
    std::vector<std::string> ranges;
    for (const auto& l : reg.launchers)
      if (l.engine == in.engine) ranges.push_back(l.engine_versions);
    return invalid("no launcher for " + in.engine + " " + c.version + " in the registry" +
                   (ranges.empty() ? " (it has none for this engine)"
                                   : " (its launchers cover: " + join(ranges, "; ") + ")"));
  }
  if (!c.launcher->unsupported.empty())
    return invalid(in.engine + " " + c.version + " cannot be launched: " + c.launcher->unsupported + " (" +
                   c.launcher->loc.to_string() + ")");
  return c;
}

Result<Values> make_values(const LaunchInputs& in, const Launcher& l) {
  const auto& cfg = in.config;
  if (in.model.empty()) return invalid("no model given (the path or hub id the engine loads)");
  if (in.host.empty()) return invalid("host \"\": the server needs an address to listen on");
  if (in.port == 0) return invalid("port 0: the server needs a port");
  if (cfg.tensor_parallel_size == 0) return invalid("tensor_parallel_size 0: must be at least 1");
  if (cfg.pipeline_parallel_size == 0) return invalid("pipeline_parallel_size 0: must be at least 1");
  if (!(cfg.gpu_memory_utilization > 0 && cfg.gpu_memory_utilization <= 1))
    return invalid("gpu_memory_utilization " + format_double(cfg.gpu_memory_utilization) + ": must be in (0, 1]");
  if (l.config_file && (in.work_dir.empty() || in.work_dir.front() != '/'))
    return invalid("work_dir " + util::quote(in.work_dir) + ": the generated config file needs an absolute directory");
  if (in.nnodes == 0) return invalid("nnodes 0: must be at least 1");

  Values v;
  v.venv = in.venv;
  auto& m = v.by_name;
  m["model"] = text(in.model, false);
  std::string base = in.model;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  if (auto slash = base.rfind('/'); slash != std::string::npos) base = base.substr(slash + 1);
  m["model_name"] = text(in.served_model_name.empty() ? base : in.served_model_name, false);
  m["venv_bin"] = text(in.venv.empty() ? "" : in.venv + "/bin", false);
  m["work_dir"] = text(in.work_dir, false);
  m["host"] = text(in.host, in.host != "127.0.0.1");
  m["port"] = number(std::to_string(in.port), true);
  m["served_model_name"] = text(in.served_model_name, true);
  m["max_model_len"] = cfg.max_model_len > 0 ? number(std::to_string(cfg.max_model_len), true) : Value{};
  m["gpu_memory_utilization"] = number(format_double(cfg.gpu_memory_utilization),
                                       std::fabs(cfg.gpu_memory_utilization - 0.90) > 1e-9);
  m["quantization"] = text(cfg.quantization, true);
  m["kv_cache_dtype"] = text(in.kv_cache_dtype == "auto" ? "" : in.kv_cache_dtype, true);  // auto: engine's
  m["tensor_parallel_size"] = number(std::to_string(cfg.tensor_parallel_size), cfg.tensor_parallel_size != 1);
  m["pipeline_parallel_size"] = number(std::to_string(cfg.pipeline_parallel_size), cfg.pipeline_parallel_size != 1);
  std::uint64_t world = std::uint64_t{cfg.tensor_parallel_size} * cfg.pipeline_parallel_size;
  m["world_size"] = number(std::to_string(world), false);
  if (cfg.tensor_parallel_size <= 4096) {  // the devices of one tensor-parallel group
    Value ids;
    ids.kind = Value::Kind::List;
    for (std::uint32_t i = 0; i < cfg.tensor_parallel_size; ++i) ids.numbers.push_back(std::to_string(i));
    m["device_ids"] = ids;
  }
  m["nnodes"] = number(std::to_string(in.nnodes), false);
  if (!in.ray_address.empty()) {
    m["ray_address"] = text(in.ray_address, false);
    auto colon = in.ray_address.rfind(':');
    auto port = colon == std::string::npos ? std::nullopt : util::parse_u64(in.ray_address.substr(colon + 1));
    if (colon == 0 || !port || *port == 0 || *port > 65535)
      return invalid("ray_address " + util::quote(in.ray_address) + ": expected HOST:PORT");
    m["ray_port"] = number(std::to_string(*port), false);
  }
  if (l.config_file) {
    auto path = CYLLM_TRY(substitute(l.config_file->path, v, nullptr, "config_file.path"));
    m["config_file"] = text(path, false);
  }
  return v;
}

// Whether an EngineConfig field is passed even at its default value.
bool always_passed(std::string_view field) {
  return field == "host" || field == "port" || field == "gpu_memory_utilization";
}

Result<std::vector<std::string>> substitute_all(const std::vector<std::string>& tmpls, const Values& vals,
                                                const std::string& where) {
  std::vector<std::string> out;
  for (const auto& t : tmpls) {
    auto s = CYLLM_TRY(substitute(t, vals, nullptr, where));
    out.push_back(std::move(s));
  }
  return out;
}

Result<LaunchSpec> build(const Chosen& c, const LaunchInputs& in, const std::vector<std::string>& serve_args) {
  const Launcher& l = *c.launcher;
  auto vals = CYLLM_TRY(make_values(in, l));
  LaunchSpec spec;
  spec.engine = in.engine;
  spec.version = c.version;
  spec.source = l.loc.to_string();
  spec.verified = l.verified;
  spec.health_path = l.health_path;
  spec.api_base = l.api_base;
  spec.oom_patterns = l.oom_patterns;

  // Which fields the entry's templates use (a MindIE config.json names them directly).
  std::set<std::string> used;
  for (const auto& s : l.command) collect_names(s, used);
  for (const auto& s : l.fixed_args) collect_names(s, used);
  for (const auto& [k, s] : l.env) collect_names(s, used);
  if (l.config_file) collect_names(l.config_file->content, used);
  if (used.count("model_name")) used.insert("served_model_name");  // model_name is built from it

  spec.argv = CYLLM_TRY(substitute_all(l.command, vals, "command"));
  std::optional<TemplateValue> config;
  if (l.config_file) {
    auto tree = CYLLM_TRY(substitute_tree(l.config_file->content, vals, "config_file.content"));
    config = std::move(tree);
  }
  for (const auto& field : registry::launcher_fields()) {
    const Value* v = vals.find(std::string(field));
    bool set = v != nullptr && v->kind != Value::Kind::Unset;
    const registry::LauncherArg* a = l.find_arg(field);
    if (a == nullptr) {
      if (set && v->non_default && !used.count(std::string(field)))
        spec.ignored.push_back(std::string(field) + "=" + v->text);
      continue;
    }
    if (!set || !(v->non_default || always_passed(field))) continue;
    if (!a->config_key.empty()) {
      CYLLM_TRY_VOID(set_path(*config, a->config_key, typed_scalar(v->text)));
      continue;
    }
    for (const auto& t : a->argv) {
      auto s = CYLLM_TRY(substitute(t, vals, &v->text, "args." + std::string(field)));
      spec.argv.push_back(std::move(s));
    }
  }
  if (in.config.n_threads != 0) spec.ignored.push_back("n_threads=" + std::to_string(in.config.n_threads));
  auto fixed = CYLLM_TRY(substitute_all(l.fixed_args, vals, "fixed_args"));
  spec.argv.insert(spec.argv.end(), fixed.begin(), fixed.end());
  for (const auto& [key, value] : in.config.extra_config) {
    switch (l.extra_config) {
      case registry::ExtraConfigMode::Flags: {
        auto flag = CYLLM_TRY(flag_name(key));
        if (value.empty() || value == "true") {
          spec.argv.push_back("--" + flag);
        } else if (value == "false") {
          spec.argv.push_back("--no-" + flag);
        } else {
          spec.argv.push_back("--" + flag);
          spec.argv.push_back(value);
        }
        break;
      }
      case registry::ExtraConfigMode::Config:
        CYLLM_TRY_VOID(set_path(*config, key, typed_scalar(value)));
        break;
      case registry::ExtraConfigMode::None:
        spec.ignored.push_back("extra_config." + key + "=" + value);
        break;
    }
  }
  spec.argv.insert(spec.argv.end(), serve_args.begin(), serve_args.end());
  for (const auto& [name, tmpl] : l.env) {
    auto s = CYLLM_TRY(substitute(tmpl, vals, nullptr, "env." + name));
    spec.env[name] = std::move(s);
  }
  if (config) spec.files.push_back({vals.find("config_file")->text, render(*config, l.config_file->format)});
  return spec;
}

// POSIX shell quoting: bare when safe, else single quotes ('\'' for a quote inside).
std::string shell_quote(const std::string& s) {
  bool safe = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("_-./:=,+@%").find(c) != std::string_view::npos;
  });
  if (safe) return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string command_line(const std::map<std::string, std::string>& env, const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& [k, v] : env) out += k + "=" + shell_quote(v) + " ";
  for (std::size_t i = 0; i < argv.size(); ++i) out += (i ? " " : "") + shell_quote(argv[i]);
  return out;
}

}  // namespace

Result<LaunchSpec> build_launch(const registry::Registry& reg, const LaunchInputs& in) {
  auto chosen = CYLLM_TRY(choose(reg, in));
  return build(chosen, in, {});
}

Result<std::vector<NodeCommand>> build_multinode_launch(const registry::Registry& reg, const LaunchInputs& in) {
  auto chosen = CYLLM_TRY(choose(reg, in));
  const Launcher& l = *chosen.launcher;
  if (!l.multinode)
    return invalid(in.engine + " " + chosen.version + " has no multi-node launch in the registry (" +
                   l.loc.to_string() + ")");
  if (in.ray_address.empty()) return invalid("a multi-node launch needs the head's Ray address (HOST:PORT)");
  std::uint64_t world = std::uint64_t{in.config.tensor_parallel_size} * in.config.pipeline_parallel_size;
  if (in.nnodes > 1 && world < in.nnodes)
    return invalid("tensor_parallel_size x pipeline_parallel_size = " + std::to_string(world) + " is below nnodes " +
                   std::to_string(in.nnodes) + ": set them to the GPUs of all nodes together");
  auto vals = CYLLM_TRY(make_values(in, l));
  std::vector<NodeCommand> out;
  auto head = CYLLM_TRY(substitute_all(l.multinode->head, vals, "multinode.head"));
  out.push_back({"head", "on the head node", std::move(head), {}});
  if (in.nnodes > 1) {
    auto worker = CYLLM_TRY(substitute_all(l.multinode->worker, vals, "multinode.worker"));
    std::string where = in.nnodes == 2 ? "on the worker node"
                                       : "on each of the " + std::to_string(in.nnodes - 1) + " worker nodes";
    out.push_back({"worker", std::move(where), std::move(worker), {}});
  }
  auto serve_args = CYLLM_TRY(substitute_all(l.multinode->serve_args, vals, "multinode.serve_args"));
  auto spec = CYLLM_TRY(build(chosen, in, serve_args));
  out.push_back({"serve", "on the head node, once every node has joined (`ray status`)", std::move(spec.argv),
                 std::move(spec.env)});
  return out;
}

Result<void> apply_plan(std::string_view plan_json, LaunchInputs& in) {
  auto bad = [](std::string msg) { return Error(Errc::InvalidArgument, "not a usable plan: " + std::move(msg)); };
  auto doc = nlohmann::json::parse(plan_json.begin(), plan_json.end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return bad("expected a JSON object (cy-llm-resolve's output)");
  if (!doc.contains("schema") || doc["schema"] != "cy-llm.plan/v1")
    return bad("its schema is " + (doc.contains("schema") ? dump(doc["schema"]) : std::string("missing")) +
               ", expected \"cy-llm.plan/v1\"");
  const auto& e = doc["engine"];
  if (!e.is_object()) return bad("it chose no engine (see its candidates and conflicts)");
  if (!e.contains("name") || !e["name"].is_string() || !e.contains("version") || !e["version"].is_string())
    return bad("engine.name and engine.version must be strings");
  in.engine = e["name"].get<std::string>();
  in.version = e["version"].get<std::string>();
  if (!doc.contains("engine_config")) return {};
  const auto& c = doc["engine_config"];
  if (!c.is_object()) return bad("engine_config is not an object");
  auto uint_of = [&](const char* key, std::uint32_t& out) -> Result<void> {
    if (!c.contains(key) || c[key].is_null()) return {};
    if (!c[key].is_number_integer() || c[key].get<std::int64_t>() < 0 || c[key].get<std::int64_t>() > 0x7fffffff)
      return bad(std::string("engine_config.") + key + " is not a non-negative integer: " + dump(c[key]));
    out = static_cast<std::uint32_t>(c[key].get<std::int64_t>());
    return {};
  };
  auto str_of = [&](const char* key, std::string& out) -> Result<void> {
    if (!c.contains(key) || c[key].is_null()) return {};
    if (!c[key].is_string()) return bad(std::string("engine_config.") + key + " is not a string: " + dump(c[key]));
    out = c[key].get<std::string>();
    return {};
  };
  CYLLM_TRY_VOID(uint_of("max_model_len", in.config.max_model_len));
  CYLLM_TRY_VOID(uint_of("tensor_parallel_size", in.config.tensor_parallel_size));
  CYLLM_TRY_VOID(uint_of("pipeline_parallel_size", in.config.pipeline_parallel_size));
  CYLLM_TRY_VOID(str_of("quantization", in.config.quantization));
  CYLLM_TRY_VOID(str_of("kv_cache_dtype", in.kv_cache_dtype));
  if (c.contains("gpu_memory_utilization") && !c["gpu_memory_utilization"].is_null()) {
    if (!c["gpu_memory_utilization"].is_number())
      return bad("engine_config.gpu_memory_utilization is not a number: " + dump(c["gpu_memory_utilization"]));
    in.config.gpu_memory_utilization = c["gpu_memory_utilization"].get<double>();
  }
  if (c.contains("extra_config") && c["extra_config"].is_object())
    for (const auto& [k, v] : c["extra_config"].items())
      in.config.extra_config[k] = v.is_string() ? v.get<std::string>() : dump(v);
  return {};
}

std::string format_launch(const LaunchSpec& spec) {
  std::string out = "# " + spec.engine + " " + spec.version + ", launcher " + spec.source +
                    (spec.verified ? "" : " (facts not all verified)") + "\n";
  out += "# ready when GET " + spec.health_path + " answers 200; OpenAI routes under " + spec.api_base + "\n";
  if (!spec.ignored.empty()) out += "# ignored (this engine version cannot honour): " + join(spec.ignored, ", ") + "\n";
  if (!spec.oom_patterns.empty()) {
    std::vector<std::string> quoted;
    for (const auto& p : spec.oom_patterns) quoted.push_back(dump(nlohmann::json(p)));
    out += "# out of memory when the log shows: " + join(quoted, ", ") + "\n";
  }
  for (const auto& f : spec.files) {
    std::string marker = "EOF";
    while (f.content.find(marker) != std::string::npos) marker += "_";
    out += "cat > " + shell_quote(f.path) + " <<'" + marker + "'\n" + f.content;
    if (!f.content.empty() && f.content.back() != '\n') out += "\n";
    out += marker + "\n";
  }
  out += command_line(spec.env, spec.argv) + "\n";
  return out;
}

std::string format_multinode_launch(const std::vector<NodeCommand>& commands) {
  std::string out;
  for (const auto& c : commands) out += "# " + c.role + ": " + c.where + "\n" + command_line(c.env, c.argv) + "\n";
  return out;
}

}  // namespace cyllm::external

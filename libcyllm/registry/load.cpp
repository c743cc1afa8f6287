// Entry points: read registry files through the Filesystem seam, pick the syntax, parse,
// decode, validate, and turn the diagnostics into one Error. The only place where
// third-party exceptions could escape is guarded here.
#include <algorithm>
#include <exception>

#include "cyllm/packaging.h"
#include "cyllm/registry.h"
#include "registry/decode.h"
#include "registry/node.h"
#include "util/strings.h"

namespace cyllm::registry {

std::string SourceLocation::to_string() const {
  return line > 0 ? file + ":" + std::to_string(line) : file;
}

std::string ComputeCapability::to_string() const {
  return std::to_string(major) + "." + std::to_string(minor);
}

std::optional<ComputeCapability> parse_compute_capability(std::string_view text) {
  auto dot = text.find('.');
  if (dot == std::string_view::npos || text.size() > 16) return std::nullopt;
  std::string_view a = text.substr(0, dot), b = text.substr(dot + 1);
  auto digits = [](std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!digits(a) || !digits(b)) return std::nullopt;
  auto ma = util::parse_u64(a), mi = util::parse_u64(b);
  if (!ma || !mi || *ma > 1000 || *mi > 1000) return std::nullopt;
  return ComputeCapability{static_cast<int>(*ma), static_cast<int>(*mi)};
}

std::string_view to_string(EngineKind kind) {
  return kind == EngineKind::Native ? "native" : "python";
}
std::string_view to_string(IndexKind kind) {
  switch (kind) {
    case IndexKind::Pypi: return "pypi";
    case IndexKind::Pytorch: return "pytorch";
    case IndexKind::Vendor: return "vendor";
  }
  return "?";
}
std::string_view to_string(VariantKind kind) {
  switch (kind) {
    case VariantKind::Cuda: return "cuda";
    case VariantKind::Rocm: return "rocm";
    case VariantKind::Cann: return "cann";
    case VariantKind::Cpu: return "cpu";
    case VariantKind::None: return "none";
  }
  return "?";
}

std::string Diagnostic::to_string() const {
  std::string s = loc.to_string() + ": ";
  if (!key_path.empty()) s += key_path + ": ";
  return s + message;
}

namespace {
template <class M>
const typename M::mapped_type* find_in(const M& m, std::string_view name) {
  auto it = m.find(std::string(name));
  return it == m.end() ? nullptr : &it->second;
}

bool looks_like_json(const SourceText& s) {
  std::string lower = util::to_lower(s.name);
  if (util::ends_with(lower, ".json")) return true;
  if (util::ends_with(lower, ".yaml") || util::ends_with(lower, ".yml")) return false;
  std::string_view t = util::trim(s.text);
  return !t.empty() && t.front() == '{';
}

bool is_registry_file_name(std::string_view name) {
  std::string lower = util::to_lower(name);
  if (util::starts_with(lower, ".")) return false;  // editor droppings, hidden files
  return util::ends_with(lower, ".yaml") || util::ends_with(lower, ".yml") ||
         util::ends_with(lower, ".json");
}
}  // namespace

const HardwareProfile* Registry::find_profile(std::string_view n) const { return find_in(hardware_profiles, n); }
const Engine* Registry::find_engine(std::string_view n) const { return find_in(engines, n); }
const Wheel* Registry::find_wheel(std::string_view n) const { return find_in(wheels, n); }
const Index* Registry::find_index(std::string_view n) const { return find_in(indexes, n); }
const Variant* Registry::find_variant(std::string_view n) const { return find_in(variants, n); }

std::vector<const MatrixRow*> Registry::rows_for_engine(std::string_view engine) const {
  std::vector<const MatrixRow*> out;
  for (const auto& r : compatibility_matrix)
    if (r.engine == engine) out.push_back(&r);
  return out;
}

const Launcher* Registry::find_launcher(std::string_view engine, std::string_view version) const {
  auto v = packaging::parse_version(version);
  if (!v.ok()) return nullptr;
  for (const auto& l : launchers) {
    if (l.engine != engine) continue;
    auto set = packaging::parse_specifier_set(l.engine_versions);
    if (set.ok() && set->contains(*v, /*prereleases=*/true)) return &l;
  }
  return nullptr;
}

const LauncherArg* Launcher::find_arg(std::string_view field) const {
  for (const auto& a : args)
    if (a.field == field) return &a;
  return nullptr;
}

std::string_view to_string(ExtraConfigMode mode) {
  switch (mode) {
    case ExtraConfigMode::Flags: return "flags";
    case ExtraConfigMode::Config: return "config";
    case ExtraConfigMode::None: return "none";
  }
  return "none";
}

const std::vector<std::string_view>& launcher_fields() {
  static const std::vector<std::string_view> fields{
      "host", "port", "served_model_name", "max_model_len", "gpu_memory_utilization",
      "quantization", "kv_cache_dtype", "tensor_parallel_size", "pipeline_parallel_size"};
  return fields;
}

const std::vector<std::string_view>& launcher_placeholders() {
  // The fields above, plus: value (inside args), model, model_name (served_model_name, else
  // the model's last path component), venv_bin, work_dir, config_file (the generated
  // file's path), world_size (tp x pp), device_ids ([0 .. tensor_parallel_size-1]), ray_address,
  // ray_port, nnodes.
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> v(launcher_fields());
    for (std::string_view n : {"value", "model", "model_name", "venv_bin", "work_dir", "config_file",
                               "world_size", "device_ids", "ray_address", "ray_port", "nnodes"})
      v.push_back(n);
    return v;
  }();
  return names;
}

LoadOutcome check_registry_sources(const std::vector<SourceText>& sources) {
  try {
    detail::RegistryBuilder builder;
    for (const auto& s : sources) {
      bool json = looks_like_json(s);
      detail::ParseResult parsed = json ? detail::parse_json(s.text) : detail::parse_yaml(s.text);
      if (!parsed.errors.empty() || !parsed.root) {
        for (const auto& e : parsed.errors)
          builder.add_unreadable_file(Diagnostic{Errc::RegistryParse, SourceLocation{s.name, e.line}, "",
                                                 (json ? "JSON: " : "YAML: ") + e.message});
        if (parsed.errors.empty())
          builder.add_unreadable_file(Diagnostic{Errc::RegistryParse, SourceLocation{s.name, 1}, "",
                                                 "cannot parse"});
        continue;
      }
      builder.add_file(s.name, *parsed.root);
    }
    return builder.finish();
  } catch (const std::exception& e) {
    LoadOutcome out;
    out.diagnostics.push_back(Diagnostic{Errc::Internal, {}, "", std::string("unexpected: ") + e.what()});
    return out;
  } catch (...) {
    LoadOutcome out;
    out.diagnostics.push_back(Diagnostic{Errc::Internal, {}, "", "unexpected exception"});
    return out;
  }
}

Result<Registry> load_registry_from_strings(const std::vector<SourceText>& sources) {
  if (sources.empty()) return Error(Errc::RegistryInvalid, "no registry files given");
  LoadOutcome out = check_registry_sources(sources);
  if (out.registry) return std::move(*out.registry);
  std::string msg;
  for (const auto& d : out.diagnostics) {
    if (!msg.empty()) msg += '\n';
    msg += d.to_string();
  }
  return Error(out.diagnostics.front().code, std::move(msg));
}

Result<Registry> load_registry(const Filesystem& fs, std::string_view path) {
  constexpr std::size_t kMaxFileBytes = 16u << 20;
  std::vector<SourceText> sources;
  std::string base(path);
  if (fs.is_directory(path)) {
    auto names = fs.list_dir(path);
    if (!names.ok()) return std::move(names).error().with_context("reading registry " + base);
    while (base.size() > 1 && base.back() == '/') base.pop_back();
    for (const auto& name : *names) {
      if (!is_registry_file_name(name)) continue;
      std::string file = base + "/" + name;
      if (fs.is_directory(file)) continue;
      auto text = fs.read_file(file, kMaxFileBytes);
      if (!text.ok()) return std::move(text).error().with_context("reading registry " + file);
      sources.push_back({file, std::move(*text)});
    }
    if (sources.empty())
      return Error(Errc::RegistryInvalid,
                   "no *.yaml, *.yml or *.json files in registry directory " + util::quote(base));
  } else {
    auto text = fs.read_file(path, kMaxFileBytes);
    if (!text.ok()) return std::move(text).error().with_context("reading registry " + base);
    sources.push_back({base, std::move(*text)});
  }
  return load_registry_from_strings(sources);
}

}  // namespace cyllm::registry

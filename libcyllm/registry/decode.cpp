#include "registry/decode.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <initializer_list>
#include <set>
#include <tuple>

#include "cyllm/packaging.h"
#include "registry/syntax.h"
#include "util/strings.h"

namespace cyllm::registry::detail {
namespace {

std::string join_path(const std::string& path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return path + "." + std::string(key);
}

std::string quoted(std::string_view s) { return util::quote(s); }

// Names of profiles, engines, wheels, ...: a letter or digit, then [A-Za-z0-9._+-].
bool is_valid_entry_name(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (!alnum(s.front())) return false;
  for (char c : s)
    if (!alnum(c) && c != '.' && c != '_' && c != '-' && c != '+') return false;
  return true;
}

// Dotted driver version: "570.26", "580.65.06", "24.1.rc3".
bool is_valid_driver_version(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (std::string_view part : util::split(s, '.')) {
    if (part.empty()) return false;
    for (char c : part)
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
        return false;
  }
  return s.front() >= '0' && s.front() <= '9';
}

bool is_valid_url(std::string_view s) {
  return (util::starts_with(s, "https://") || util::starts_with(s, "http://") ||
          util::starts_with(s, "file://")) &&
         s.find_first_of(" \t\n") == std::string_view::npos;
}

}  // namespace

// Reads one file. All type and key errors go to the builder; decoding goes on past them.
class FileDecoder {
 public:
  FileDecoder(RegistryBuilder& b, std::string file) : b_(b), file_(std::move(file)) {}

  void decode(const Node& root) {
    if (root.kind != Node::Kind::Map) {
      if (root.kind == Node::Kind::Null)
        err(Errc::RegistrySchemaVersion, root.line, "", "empty file (expected a mapping with schema_version: 1)");
      else
        err(Errc::RegistryInvalid, root.line, "", "expected a mapping at the top level, found " + std::string(kind_name(root.kind)));
      b_.fatal_ = true;
      return;
    }
    const Node* sv = root.find("schema_version");
    if (sv == nullptr) {
      err(Errc::RegistrySchemaVersion, root.line, "schema_version",
          "missing schema_version (this build reads " + std::to_string(kSchemaVersion) + ")");
      b_.fatal_ = true;
      return;
    }
    if (sv->text != std::to_string(kSchemaVersion) || sv->kind != Node::Kind::Number) {
      err(Errc::RegistrySchemaVersion, sv->line, "schema_version",
          "unsupported schema_version " + quoted(sv->text) + " (this build reads " +
              std::to_string(kSchemaVersion) + ")");
      b_.fatal_ = true;
      return;
    }
    check_keys(root, "", {"schema_version", "hardware_profiles", "engines", "wheels", "indexes",
                          "variants", "compatibility_matrix", "base_environment",
                          "model_sizes", "presets", "launchers"});
    named(root, "hardware_profiles", "hardware profile", b_.reg_.hardware_profiles,
          [this](const Node& n, const std::string& p, HardwareProfile& h) { profile(n, p, h); });
    named(root, "engines", "engine", b_.reg_.engines,
          [this](const Node& n, const std::string& p, Engine& e) { engine(n, p, e); });
    named(root, "wheels", "wheel", b_.reg_.wheels,
          [this](const Node& n, const std::string& p, Wheel& w) { wheel(n, p, w); });
    named(root, "indexes", "index", b_.reg_.indexes,
          [this](const Node& n, const std::string& p, Index& i) { index(n, p, i); });
    named(root, "variants", "variant", b_.reg_.variants,
          [this](const Node& n, const std::string& p, Variant& v) { variant(n, p, v); });
    named(root, "model_sizes", "model size", b_.reg_.model_sizes,
          [this](const Node& n, const std::string& p, ModelSize& m) { model_size(n, p, m); });
    if (const Node* m = root.find("compatibility_matrix")) matrix(*m);
    if (const Node* be = root.find("base_environment")) base_environment(*be);
    if (const Node* ps = root.find("presets")) presets(*ps);
    if (const Node* ls = root.find("launchers")) launchers(*ls);
  }

 private:
  // ---- primitives ----------------------------------------------------------------------

  void err(Errc code, int line, std::string path, std::string msg) {
    b_.error(code, SourceLocation{file_, line}, std::move(path), std::move(msg));
  }
  void type_error(const Node& n, const std::string& path, std::string_view want) {
    err(Errc::RegistryInvalid, n.line, path,
        "expected " + std::string(want) + ", found " + std::string(kind_name(n.kind)) +
            (n.is_scalar() ? " " + quoted(n.text) : ""));
  }
  void remember(const std::string& path, int line) { b_.lines_[{file_, path}] = line; }

  bool is_map(const Node& n, const std::string& path) {
    if (n.kind == Node::Kind::Map) return true;
    type_error(n, path, "a mapping");
    return false;
  }
  void check_keys(const Node& n, const std::string& path,
                  std::initializer_list<std::string_view> allowed) {
    for (std::size_t i = 0; i < n.entries.size(); ++i) {
      const std::string& key = n.entries[i].first;
      if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      err(Errc::RegistryInvalid, n.key_lines[i], join_path(path, key),
          "unknown key " + quoted(key) + " (expected one of: " + list + ")");
    }
  }
  const Node* required(const Node& map, std::string_view key, const std::string& path) {
    const Node* v = map.find(key);
    if (v == nullptr)
      err(Errc::RegistryInvalid, map.line, join_path(path, key), "missing required key " + quoted(key));
    return v;
  }

  // Text: JSON strings; YAML strings and plain scalars (`version: 0.10` keeps "0.10").
  std::optional<std::string> str(const Node& n, const std::string& path) {
    if (n.kind == Node::Kind::String || (n.plain && n.is_scalar())) {
      remember(path, n.line);
      return n.text;
    }
    type_error(n, path, "a string");
    return std::nullopt;
  }
  std::optional<bool> boolean(const Node& n, const std::string& path) {
    if (n.kind == Node::Kind::Bool) return n.text == "true";
    type_error(n, path, "true or false");
    return std::nullopt;
  }
  std::optional<double> number(const Node& n, const std::string& path) {
    if (n.kind == Node::Kind::Number) {
      if (auto d = util::parse_double(n.text); d && std::isfinite(*d)) return d;
    }
    type_error(n, path, "a number");
    return std::nullopt;
  }
  std::optional<std::int64_t> integer(const Node& n, const std::string& path) {
    if (n.kind == Node::Kind::Number) {
      if (auto i = util::parse_i64(n.text)) return i;
    }
    type_error(n, path, "an integer");
    return std::nullopt;
  }
  std::vector<std::string> str_list(const Node& n, const std::string& path) {
    std::vector<std::string> out;
    if (n.kind != Node::Kind::Seq) {
      type_error(n, path, "a list of strings");
      return out;
    }
    for (std::size_t i = 0; i < n.items.size(); ++i)
      if (auto s = str(n.items[i], path + "[" + std::to_string(i) + "]")) out.push_back(*s);
    return out;
  }
  void opt_str(const Node& map, std::string_view key, const std::string& path, std::string& out) {
    if (const Node* v = map.find(key))
      if (v->kind != Node::Kind::Null || !v->plain)
        if (auto s = str(*v, join_path(path, key))) out = *s;
  }
  void opt_list(const Node& map, std::string_view key, const std::string& path,
                std::vector<std::string>& out) {
    if (const Node* v = map.find(key)) out = str_list(*v, join_path(path, key));
  }
  void opt_cc(const Node& map, std::string_view key, const std::string& path,
              std::optional<ComputeCapability>& out) {
    std::string text;
    opt_str(map, key, path, text);
    if (map.find(key) == nullptr || text.empty()) return;
    if (auto cc = parse_compute_capability(text)) {
      out = cc;
    } else {
      err(Errc::RegistryInvalid, map.find(key)->line, join_path(path, key),
          "bad compute capability " + quoted(text) + " (expected \"major.minor\", e.g. \"8.0\")");
    }
  }
  void opt_driver(const Node& map, std::string_view key, const std::string& path, std::string& out) {
    opt_str(map, key, path, out);
    if (!out.empty() && !is_valid_driver_version(out))
      err(Errc::RegistryInvalid, map.find(key)->line, join_path(path, key),
          "bad driver version " + quoted(out) + " (expected dotted numbers, e.g. \"570.26\")");
  }
  template <class E>
  std::optional<E> enumeration(const Node& map, std::string_view key, const std::string& path,
                               std::initializer_list<std::pair<std::string_view, E>> values) {
    const Node* v = required(map, key, path);
    if (v == nullptr) return std::nullopt;
    auto s = str(*v, join_path(path, key));
    if (!s) return std::nullopt;
    std::string list;
    for (const auto& [name, e] : values) {
      if (*s == name) return e;
      list += (list.empty() ? "" : ", ") + std::string(name);
    }
    err(Errc::RegistryInvalid, v->line, join_path(path, key),
        "unknown " + std::string(key) + " " + quoted(*s) + " (expected one of: " + list + ")");
    return std::nullopt;
  }

  // A named section: `section: {name: {...}, ...}`, merged into `dest`.
  template <class T, class F>
  void named(const Node& root, std::string_view section, std::string_view what,
             std::map<std::string, T>& dest, F decode_one) {
    const Node* s = root.find(section);
    if (s == nullptr || s->kind == Node::Kind::Null) return;
    if (!is_map(*s, std::string(section))) return;
    for (std::size_t i = 0; i < s->entries.size(); ++i) {
      const auto& [name, value] = s->entries[i];
      std::string path = std::string(section) + "." + name;
      int line = s->key_lines[i];
      if (!is_valid_entry_name(name)) {
        err(Errc::RegistryInvalid, line, path,
            "bad " + std::string(what) + " name " + quoted(name) +
                " (letters, digits and . _ - +, starting with a letter or digit)");
        continue;
      }
      T item;
      item.name = name;
      item.loc = SourceLocation{file_, line};
      if (is_map(value, path)) decode_one(value, path, item);
      auto [it, inserted] = dest.emplace(name, item);
      if (!inserted)
        err(Errc::RegistryInvalid, line, path,
            std::string(what) + " " + quoted(name) + " is defined twice (also at " +
                it->second.loc.to_string() + ")");
    }
  }

  // ---- sections ------------------------------------------------------------------------

  void profile(const Node& n, const std::string& p, HardwareProfile& h) {
    check_keys(n, p, {"description", "extends", "vendor", "min_compute_capability",
                      "max_compute_capability", "gfx_targets", "ascend_socs",
                      "ascend_soc_prefixes", "min_driver", "cpu_isa", "architectures"});
    opt_str(n, "description", p, h.description);
    opt_str(n, "extends", p, h.extends);
    opt_str(n, "vendor", p, h.vendor);
    if (!h.vendor.empty() && h.vendor != "nvidia" && h.vendor != "amd" && h.vendor != "ascend" &&
        h.vendor != "cpu")
      err(Errc::RegistryInvalid, n.find("vendor")->line, join_path(p, "vendor"),
          "unknown vendor " + quoted(h.vendor) + " (expected one of: nvidia, amd, ascend, cpu)");
    opt_cc(n, "min_compute_capability", p, h.min_compute_capability);
    opt_cc(n, "max_compute_capability", p, h.max_compute_capability);
    opt_list(n, "gfx_targets", p, h.gfx_targets);
    opt_list(n, "ascend_socs", p, h.ascend_socs);
    opt_list(n, "ascend_soc_prefixes", p, h.ascend_soc_prefixes);
    for (auto* list : {&h.ascend_socs, &h.ascend_soc_prefixes})
      for (auto& s : *list) s = util::to_lower(s);
    opt_driver(n, "min_driver", p, h.min_driver);
    opt_list(n, "cpu_isa", p, h.cpu_isa);
    opt_list(n, "architectures", p, h.architectures);
  }

  void engine(const Node& n, const std::string& p, Engine& e) {
    check_keys(n, p, {"description", "kind", "tradeoff", "priority", "versions", "default_version"});
    opt_str(n, "description", p, e.description);
    if (auto k = enumeration<EngineKind>(n, "kind", p,
                                         {{"python", EngineKind::Python}, {"native", EngineKind::Native}}))
      e.kind = *k;
    opt_str(n, "tradeoff", p, e.tradeoff);
    if (const Node* pr = n.find("priority"))
      if (auto x = integer(*pr, join_path(p, "priority"))) {
        if (*x < 0 || *x > 1000)
          err(Errc::RegistryInvalid, pr->line, join_path(p, "priority"),
              "must be between 0 and 1000, found " + pr->text);
        else
          e.priority = static_cast<int>(*x);
      }
    if (const Node* v = required(n, "versions", p)) {
      e.versions = str_list(*v, join_path(p, "versions"));
      if (v->kind == Node::Kind::Seq && v->items.empty())
        err(Errc::RegistryInvalid, v->line, join_path(p, "versions"), "an engine needs at least one version");
    }
    if (const Node* d = required(n, "default_version", p))
      if (auto s = str(*d, join_path(p, "default_version"))) e.default_version = *s;
  }

  void wheel(const Node& n, const std::string& p, Wheel& w) {
    check_keys(n, p, {"url", "sha256", "size_bytes"});
    if (const Node* u = required(n, "url", p))
      if (auto s = str(*u, join_path(p, "url"))) {
        w.url = *s;
        if (!is_valid_url(w.url))
          err(Errc::RegistryInvalid, u->line, join_path(p, "url"), "bad URL " + quoted(w.url));
      }
    opt_str(n, "sha256", p, w.sha256);
    if (!w.sha256.empty()) {
      bool hex = w.sha256.size() == 64 &&
                 std::all_of(w.sha256.begin(), w.sha256.end(), [](char c) {
                   return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                 });
      if (!hex)
        err(Errc::RegistryInvalid, n.find("sha256")->line, join_path(p, "sha256"),
            "bad sha256 " + quoted(w.sha256) + " (expected 64 lower-case hex digits)");
    }
    if (const Node* s = n.find("size_bytes")) {
      if (auto v = integer(*s, join_path(p, "size_bytes"))) {
        if (*v < 0) err(Errc::RegistryInvalid, s->line, join_path(p, "size_bytes"), "negative size");
        else w.size_bytes = static_cast<std::uint64_t>(*v);
      }
    }
  }

  void index(const Node& n, const std::string& p, Index& i) {
    check_keys(n, p, {"url", "kind"});
    if (const Node* u = required(n, "url", p))
      if (auto s = str(*u, join_path(p, "url"))) {
        i.url = *s;
        if (!is_valid_url(i.url))
          err(Errc::RegistryInvalid, u->line, join_path(p, "url"), "bad URL " + quoted(i.url));
      }
    if (auto k = enumeration<IndexKind>(n, "kind", p,
                                        {{"pypi", IndexKind::Pypi},
                                         {"pytorch", IndexKind::Pytorch},
                                         {"vendor", IndexKind::Vendor}}))
      i.kind = *k;
  }

  void variant(const Node& n, const std::string& p, Variant& v) {
    check_keys(n, p, {"description", "kind", "min_driver", "min_driver_minor_compat",
                      "min_compute_capability", "max_compute_capability", "index"});
    opt_str(n, "description", p, v.description);
    if (auto k = enumeration<VariantKind>(n, "kind", p,
                                          {{"cuda", VariantKind::Cuda},
                                           {"rocm", VariantKind::Rocm},
                                           {"cann", VariantKind::Cann},
                                           {"cpu", VariantKind::Cpu},
                                           {"none", VariantKind::None}}))
      v.kind = *k;
    opt_driver(n, "min_driver", p, v.min_driver);
    opt_driver(n, "min_driver_minor_compat", p, v.min_driver_minor_compat);
    opt_cc(n, "min_compute_capability", p, v.min_compute_capability);
    opt_cc(n, "max_compute_capability", p, v.max_compute_capability);
    opt_str(n, "index", p, v.index);
  }

  void model_size(const Node& n, const std::string& p, ModelSize& m) {
    check_keys(n, p, {"description", "max_params_billion"});
    if (const Node* v = required(n, "max_params_billion", p))
      if (auto d = number(*v, join_path(p, "max_params_billion"))) {
        if (*d <= 0)
          err(Errc::RegistryInvalid, v->line, join_path(p, "max_params_billion"), "must be > 0");
        m.max_params_billion = *d;
      }
  }

  void check_requirement(const std::string& text, int line, const std::string& path) {
    // `{version}` stands for the chosen engine version; check with a stand-in.
    std::string probe = text;
    for (auto pos = probe.find("{version}"); pos != std::string::npos; pos = probe.find("{version}"))
      probe.replace(pos, 9, "0.0");
    if (auto e = validate_requirement_syntax(probe))
      err(Errc::RegistryInvalid, line, path, "bad requirement " + quoted(text) + ": " + *e);
  }

  std::vector<RequirementEntry> requirements(const Node& n, const std::string& path) {
    std::vector<RequirementEntry> out;
    if (n.kind != Node::Kind::Seq) {
      type_error(n, path, "a list of requirement strings or {wheel: NAME}");
      return out;
    }
    for (std::size_t i = 0; i < n.items.size(); ++i) {
      const Node& item = n.items[i];
      std::string ip = path + "[" + std::to_string(i) + "]";
      RequirementEntry r;
      r.loc = SourceLocation{file_, item.line};
      if (item.kind == Node::Kind::Map) {
        check_keys(item, ip, {"wheel", "requirement", "no_deps"});
        const Node* w = item.find("wheel");
        const Node* q = item.find("requirement");
        if ((w == nullptr) == (q == nullptr)) {
          err(Errc::RegistryInvalid, item.line, ip, "expected exactly one of \"wheel\" or \"requirement\"");
          continue;
        }
        if (const Node* nd = item.find("no_deps"))
          if (auto b = boolean(*nd, join_path(ip, "no_deps"))) r.no_deps = *b;
        if (w != nullptr) {
          auto s = str(*w, join_path(ip, "wheel"));
          if (!s) continue;
          r.wheel = *s;
          if (r.wheel.empty()) {
            err(Errc::RegistryInvalid, w->line, join_path(ip, "wheel"), "empty wheel name");
            continue;
          }
        } else {
          auto s = str(*q, join_path(ip, "requirement"));
          if (!s) continue;
          r.requirement = *s;
          check_requirement(r.requirement, q->line, join_path(ip, "requirement"));
        }
      } else if (item.kind == Node::Kind::String || (item.plain && item.is_scalar())) {
        r.requirement = item.text;
        check_requirement(r.requirement, item.line, ip);
      } else {
        type_error(item, ip, "a requirement string or {wheel: NAME}");
        continue;
      }
      remember(ip, item.line);
      out.push_back(std::move(r));
    }
    return out;
  }

  void specifier(const Node& map, std::string_view key, const std::string& path, std::string& out,
                 bool is_required) {
    const Node* v = is_required ? required(map, key, path) : map.find(key);
    if (v == nullptr) return;
    auto s = str(*v, join_path(path, key));
    if (!s) return;
    out = *s;
    if (auto e = validate_specifier_syntax(out))
      err(Errc::RegistryInvalid, v->line, join_path(path, key),
          "bad version specifier " + quoted(out) + ": " + *e);
  }

  void matrix(const Node& m) {
    if (m.kind == Node::Kind::Null) return;
    if (m.kind != Node::Kind::Seq) {
      type_error(m, "compatibility_matrix", "a list of rows");
      return;
    }
    for (std::size_t i = 0; i < m.items.size(); ++i) {
      const Node& n = m.items[i];
      std::string p = "compatibility_matrix[" + std::to_string(i) + "]";
      if (!is_map(n, p)) continue;
      check_keys(n, p, {"hardware", "engine", "engine_versions", "requirements", "python",
                        "min_driver", "indexes", "variant", "verified", "notes"});
      MatrixRow r;
      r.index = b_.reg_.compatibility_matrix.size();
      r.key_path = p;
      r.loc = SourceLocation{file_, n.line};
      if (const Node* v = required(n, "hardware", p))
        if (auto s = str(*v, join_path(p, "hardware"))) r.hardware = *s;
      if (const Node* v = required(n, "engine", p))
        if (auto s = str(*v, join_path(p, "engine"))) r.engine = *s;
      specifier(n, "engine_versions", p, r.engine_versions, true);
      if (const Node* v = n.find("requirements"))
        r.requirements = requirements(*v, join_path(p, "requirements"));
      specifier(n, "python", p, r.python, false);
      opt_driver(n, "min_driver", p, r.min_driver);
      if (!r.min_driver.empty()) r.min_driver_loc = SourceLocation{file_, n.find("min_driver")->line};
      opt_list(n, "indexes", p, r.indexes);
      opt_str(n, "variant", p, r.variant);
      if (const Node* v = n.find("verified"))
        if (auto b = boolean(*v, join_path(p, "verified"))) r.verified = *b;
      opt_str(n, "notes", p, r.notes);
      b_.reg_.compatibility_matrix.push_back(std::move(r));
    }
  }

  void base_environment(const Node& n) {
    const std::string p = "base_environment";
    if (n.kind == Node::Kind::Null) return;
    if (!is_map(n, p)) return;
    BaseEnvironment& be = b_.reg_.base_environment;
    if (be.loc.line != 0) {
      err(Errc::RegistryInvalid, n.line, p,
          "base_environment is defined twice (also at " + be.loc.to_string() + ")");
      return;
    }
    check_keys(n, p, {"description", "python", "requirements"});
    be.loc = SourceLocation{file_, n.line};
    opt_str(n, "description", p, be.description);
    specifier(n, "python", p, be.python, false);
    if (const Node* r = required(n, "requirements", p))
      be.requirements = requirements(*r, join_path(p, "requirements"));
  }

  void presets(const Node& ps) {
    if (ps.kind == Node::Kind::Null) return;
    if (ps.kind != Node::Kind::Seq) {
      type_error(ps, "presets", "a list of presets");
      return;
    }
    for (std::size_t i = 0; i < ps.items.size(); ++i) {
      const Node& n = ps.items[i];
      std::string p = "presets[" + std::to_string(i) + "]";
      if (!is_map(n, p)) continue;
      check_keys(n, p, {"hardware", "model_size", "engine", "gpu_memory_utilization",
                        "max_model_len", "quantization", "kv_cache_dtype",
                        "tensor_parallel_size", "notes"});
      Preset pr;
      pr.loc = SourceLocation{file_, n.line};
      if (const Node* v = required(n, "hardware", p))
        if (auto s = str(*v, join_path(p, "hardware"))) pr.hardware = *s;
      if (const Node* v = required(n, "model_size", p))
        if (auto s = str(*v, join_path(p, "model_size"))) pr.model_size = *s;
      opt_str(n, "engine", p, pr.engine);
      if (const Node* v = n.find("gpu_memory_utilization"))
        if (auto d = number(*v, join_path(p, "gpu_memory_utilization"))) {
          if (*d <= 0 || *d > 1)
            err(Errc::RegistryInvalid, v->line, join_path(p, "gpu_memory_utilization"),
                "must be in (0, 1], found " + v->text);
          else pr.gpu_memory_utilization = *d;
        }
      auto positive_int = [&](std::string_view key, std::optional<int>& out) {
        if (const Node* v = n.find(key))
          if (auto x = integer(*v, join_path(p, key))) {
            if (*x < 1 || *x > (1 << 30))
              err(Errc::RegistryInvalid, v->line, join_path(p, key), "must be a positive integer, found " + v->text);
            else out = static_cast<int>(*x);
          }
      };
      positive_int("max_model_len", pr.max_model_len);
      positive_int("tensor_parallel_size", pr.tensor_parallel_size);
      opt_str(n, "quantization", p, pr.quantization);
      opt_str(n, "kv_cache_dtype", p, pr.kv_cache_dtype);
      std::string notes;
      opt_str(n, "notes", p, notes);
      b_.reg_.presets.push_back(std::move(pr));
      b_.preset_paths_.push_back(p);
    }
  }

  // ---- launchers -----------------------------------------------------------------------

  // Every {name} or {name|default} in `text` must be a known placeholder.
  void check_placeholders(const std::string& text, int line, const std::string& path) {
    const auto& known = launcher_placeholders();
    for (std::size_t pos = text.find('{'); pos != std::string::npos; pos = text.find('{', pos + 1)) {
      std::size_t end = text.find('}', pos);
      if (end == std::string::npos) {
        err(Errc::RegistryInvalid, line, path, "unclosed \"{\" in " + quoted(text));
        return;
      }
      std::string name = text.substr(pos + 1, end - pos - 1);
      if (auto bar = name.find('|'); bar != std::string::npos) name.resize(bar);
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        std::string list;
        for (auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
        err(Errc::RegistryInvalid, line, path,
            "unknown placeholder " + quoted("{" + name + "}") + " (expected one of: " + list + ")");
      }
    }
  }
  std::vector<std::string> template_list(const Node& map, std::string_view key, const std::string& path) {
    std::vector<std::string> out;
    const Node* v = map.find(key);
    if (v == nullptr) return out;
    out = str_list(*v, join_path(path, key));
    if (v->kind == Node::Kind::Seq)
      for (std::size_t i = 0; i < out.size() && i < v->items.size(); ++i)
        check_placeholders(out[i], v->items[i].line, join_path(path, key) + "[" + std::to_string(i) + "]");
    return out;
  }
  TemplateValue template_tree(const Node& n, const std::string& path) {
    TemplateValue t;
    t.text = n.text;
    switch (n.kind) {
      case Node::Kind::Null: t.kind = TemplateValue::Kind::Null; break;
      case Node::Kind::Bool: t.kind = TemplateValue::Kind::Bool; break;
      case Node::Kind::Number: t.kind = TemplateValue::Kind::Number; break;
      case Node::Kind::String:
        t.kind = TemplateValue::Kind::String;
        check_placeholders(n.text, n.line, path);
        break;
      case Node::Kind::Seq:
        t.kind = TemplateValue::Kind::Seq;
        for (std::size_t i = 0; i < n.items.size(); ++i)
          t.items.push_back(template_tree(n.items[i], path + "[" + std::to_string(i) + "]"));
        break;
      case Node::Kind::Map:
        t.kind = TemplateValue::Kind::Map;
        for (const auto& e : n.entries) t.entries.emplace_back(e.first, template_tree(e.second, join_path(path, e.first)));
        break;
    }
    return t;
  }

  void launcher_args(const Node& n, const std::string& p, Launcher& l) {
    if (n.kind == Node::Kind::Null) return;
    if (!is_map(n, p)) return;
    const auto& fields = launcher_fields();
    for (std::size_t i = 0; i < n.entries.size(); ++i) {
      const auto& key = n.entries[i].first;
      const Node& v = n.entries[i].second;
      std::string ap = join_path(p, key);
      if (std::find(fields.begin(), fields.end(), key) == fields.end()) {
        std::string list;
        for (auto f : fields) list += (list.empty() ? "" : ", ") + std::string(f);
        err(Errc::RegistryInvalid, n.key_lines[i], ap,
            "unknown config field " + quoted(key) + " (expected one of: " + list + ")");
        continue;
      }
      LauncherArg a;
      a.field = key;
      if (v.kind == Node::Kind::Seq) {
        a.argv = str_list(v, ap);
        for (std::size_t j = 0; j < a.argv.size() && j < v.items.size(); ++j)
          check_placeholders(a.argv[j], v.items[j].line, ap + "[" + std::to_string(j) + "]");
        if (a.argv.empty()) err(Errc::RegistryInvalid, v.line, ap, "an argv template needs at least one item");
      } else if (v.kind == Node::Kind::Map) {
        check_keys(v, ap, {"config"});
        if (const Node* c = required(v, "config", ap))
          if (auto s = str(*c, join_path(ap, "config"))) a.config_key = *s;
      } else {
        type_error(v, ap, "an argv template list or {config: KEY.PATH}");
        continue;
      }
      l.args.push_back(std::move(a));
    }
  }

  void launchers(const Node& ls) {
    if (ls.kind == Node::Kind::Null) return;
    if (ls.kind != Node::Kind::Seq) {
      type_error(ls, "launchers", "a list of launchers");
      return;
    }
    for (std::size_t i = 0; i < ls.items.size(); ++i) {
      const Node& n = ls.items[i];
      std::string p = "launchers[" + std::to_string(i) + "]";
      if (!is_map(n, p)) continue;
      check_keys(n, p, {"engine", "engine_versions", "unsupported", "command", "args", "fixed_args",
                        "env", "extra_config", "config_file", "health_path", "api_base",
                        "oom_patterns", "multinode", "verified", "notes"});
      Launcher l;
      l.index = b_.reg_.launchers.size();
      l.key_path = p;
      l.loc = SourceLocation{file_, n.line};
      if (const Node* v = required(n, "engine", p))
        if (auto s = str(*v, join_path(p, "engine"))) l.engine = *s;
      specifier(n, "engine_versions", p, l.engine_versions, true);
      opt_str(n, "unsupported", p, l.unsupported);
      l.command = template_list(n, "command", p);
      if (l.unsupported.empty() && l.command.empty())
        err(Errc::RegistryInvalid, n.line, join_path(p, "command"),
            "a launcher needs a command (or `unsupported: REASON`)");
      if (const Node* a = n.find("args")) launcher_args(*a, join_path(p, "args"), l);
      l.fixed_args = template_list(n, "fixed_args", p);
      if (const Node* e = n.find("env"); e != nullptr && e->kind != Node::Kind::Null && is_map(*e, join_path(p, "env"))) {
        for (const auto& entry : e->entries) {
          std::string ep = join_path(join_path(p, "env"), entry.first);
          if (auto s = str(entry.second, ep)) {
            check_placeholders(*s, entry.second.line, ep);
            l.env[entry.first] = *s;
          }
        }
      }
      if (n.find("extra_config") != nullptr) {
        if (auto m = enumeration<ExtraConfigMode>(n, "extra_config", p,
                                                  {{"flags", ExtraConfigMode::Flags},
                                                   {"config", ExtraConfigMode::Config},
                                                   {"none", ExtraConfigMode::None}}))
          l.extra_config = *m;
      }
      if (const Node* c = n.find("config_file")) {
        std::string cp = join_path(p, "config_file");
        if (is_map(*c, cp)) {
          check_keys(*c, cp, {"path", "format", "content"});
          LauncherConfigFile f;
          if (const Node* v = required(*c, "path", cp))
            if (auto s = str(*v, join_path(cp, "path"))) {
              f.path = *s;
              check_placeholders(f.path, v->line, join_path(cp, "path"));
            }
          if (const Node* v = required(*c, "format", cp))
            if (auto s = str(*v, join_path(cp, "format"))) {
              f.format = *s;
              if (f.format != "json" && f.format != "yaml")
                err(Errc::RegistryInvalid, v->line, join_path(cp, "format"),
                    "unknown format " + quoted(f.format) + " (expected one of: json, yaml)");
            }
          if (const Node* v = required(*c, "content", cp)) {
            if (v->kind != Node::Kind::Map) type_error(*v, join_path(cp, "content"), "a mapping");
            else f.content = template_tree(*v, join_path(cp, "content"));
          }
          l.config_file = std::move(f);
        }
      }
      opt_str(n, "health_path", p, l.health_path);
      opt_str(n, "api_base", p, l.api_base);
      for (const char* key : {"health_path", "api_base"}) {
        const std::string& v = std::string_view(key) == "health_path" ? l.health_path : l.api_base;
        if (n.find(key) != nullptr && (v.empty() || v.front() != '/'))
          err(Errc::RegistryInvalid, n.find(key)->line, join_path(p, key),
              "expected a path starting with \"/\", found " + quoted(v));
      }
      opt_list(n, "oom_patterns", p, l.oom_patterns);
      if (const Node* m = n.find("multinode")) {
        std::string mp = join_path(p, "multinode");
        if (is_map(*m, mp)) {
          check_keys(*m, mp, {"head", "worker", "serve_args"});
          LauncherMultinode mn;
          if (required(*m, "head", mp)) mn.head = template_list(*m, "head", mp);
          if (required(*m, "worker", mp)) mn.worker = template_list(*m, "worker", mp);
          mn.serve_args = template_list(*m, "serve_args", mp);
          l.multinode = std::move(mn);
        }
      }
      if (const Node* v = n.find("verified"))
        if (auto b = boolean(*v, join_path(p, "verified"))) l.verified = *b;
      opt_str(n, "notes", p, l.notes);
      // Keys of the config file need a config file; config extras too.
      for (const auto& a : l.args)
        if (!a.config_key.empty() && !l.config_file)
          err(Errc::RegistryInvalid, n.line, join_path(join_path(p, "args"), a.field),
              "maps to config key " + quoted(a.config_key) + " but the launcher has no config_file");
      if (l.extra_config == ExtraConfigMode::Config && !l.config_file)
        err(Errc::RegistryInvalid, n.find("extra_config")->line, join_path(p, "extra_config"),
            "extra_config: config needs a config_file");
      b_.reg_.launchers.push_back(std::move(l));
    }
  }

  RegistryBuilder& b_;
  std::string file_;
};

// ---- RegistryBuilder -------------------------------------------------------------------

void RegistryBuilder::error(Errc code, const SourceLocation& loc, std::string key_path,
                            std::string message) {
  diags_.push_back(Diagnostic{code, loc, std::move(key_path), std::move(message)});
}

void RegistryBuilder::add_unreadable_file(Diagnostic d) {
  if (std::find(reg_.files.begin(), reg_.files.end(), d.loc.file) == reg_.files.end())
    reg_.files.push_back(d.loc.file);
  fatal_ = true;
  diags_.push_back(std::move(d));
}

int RegistryBuilder::line_of(const std::string& file, const std::string& key_path,
                             int fallback) const {
  auto it = lines_.find({file, key_path});
  return it == lines_.end() ? fallback : it->second;
}

void RegistryBuilder::add_file(const std::string& file, const Node& root) {
  reg_.files.push_back(file);
  FileDecoder(*this, file).decode(root);
}

void RegistryBuilder::resolve_profiles() {
  auto& profiles = reg_.hardware_profiles;
  // Find unknown parents and cycles; report each cycle once, at its smallest member.
  std::set<std::string> bad;  // profiles whose chain is broken (not resolved)
  for (auto& [name, h] : profiles) {
    if (h.extends.empty()) continue;
    std::string path = "hardware_profiles." + name + ".extends";
    int line = line_of(h.loc.file, path, h.loc.line);
    if (!profiles.count(h.extends)) {
      error(Errc::RegistryUnknownRef, {h.loc.file, line}, path,
            "unknown hardware profile " + quoted(h.extends));
      bad.insert(name);
      continue;
    }
    std::vector<std::string> chain{name};
    std::string cur = h.extends;
    while (!cur.empty() && profiles.count(cur)) {
      auto pos = std::find(chain.begin(), chain.end(), cur);
      if (pos != chain.end()) {
        bad.insert(name);
        if (pos == chain.begin()) {  // `name` is on the cycle
          std::vector<std::string> cycle(chain.begin(), chain.end());
          if (*std::min_element(cycle.begin(), cycle.end()) == name) {
            std::string text;
            for (const auto& c : cycle) text += c + " -> ";
            text += name;
            error(Errc::RegistryCycle, {h.loc.file, line}, path, "extends cycle: " + text);
          }
        }
        break;
      }
      chain.push_back(cur);
      cur = profiles.at(cur).extends;
    }
    if (!cur.empty() && !profiles.count(cur)) bad.insert(name);
  }
  // Inherit unset fields, parents first (chains are acyclic for the rest).
  std::set<std::string> done;
  std::function<void(HardwareProfile&)> resolve = [&](HardwareProfile& h) {
    if (done.count(h.name) || bad.count(h.name)) return;
    done.insert(h.name);
    if (h.extends.empty()) return;
    HardwareProfile& parent = profiles.at(h.extends);
    resolve(parent);
    if (h.vendor.empty()) h.vendor = parent.vendor;
    if (!h.min_compute_capability) h.min_compute_capability = parent.min_compute_capability;
    if (!h.max_compute_capability) h.max_compute_capability = parent.max_compute_capability;
    if (h.gfx_targets.empty()) h.gfx_targets = parent.gfx_targets;
    if (h.ascend_socs.empty()) h.ascend_socs = parent.ascend_socs;
    if (h.ascend_soc_prefixes.empty()) h.ascend_soc_prefixes = parent.ascend_soc_prefixes;
    if (h.min_driver.empty()) h.min_driver = parent.min_driver;
    if (h.cpu_isa.empty()) h.cpu_isa = parent.cpu_isa;
    if (h.architectures.empty()) h.architectures = parent.architectures;
  };
  for (auto& [name, h] : profiles) resolve(h);
  for (auto& [name, h] : profiles) {
    if (h.min_compute_capability && h.max_compute_capability &&
        *h.min_compute_capability > *h.max_compute_capability)
      error(Errc::RegistryInvalid, h.loc, "hardware_profiles." + name,
            "min_compute_capability " + h.min_compute_capability->to_string() +
                " is above max_compute_capability " + h.max_compute_capability->to_string());
  }
}

void RegistryBuilder::validate() {
  resolve_profiles();
  const Registry& r = reg_;
  auto ref = [&](const std::string& file, const std::string& path, int fallback,
                 const std::string& name, std::string_view what, bool defined) {
    if (defined) return;
    error(Errc::RegistryUnknownRef, {file, line_of(file, path, fallback)}, path,
          "unknown " + std::string(what) + " " + quoted(name));
  };

  for (const auto& [name, e] : r.engines) {
    std::string p = "engines." + name;
    std::set<std::string> seen;
    for (std::size_t i = 0; i < e.versions.size(); ++i) {
      std::string vp = p + ".versions[" + std::to_string(i) + "]";
      int line = line_of(e.loc.file, vp, e.loc.line);
      if (auto err = validate_version_syntax(e.versions[i]))
        error(Errc::RegistryInvalid, {e.loc.file, line}, vp, "bad version: " + *err);
      if (!seen.insert(e.versions[i]).second)
        error(Errc::RegistryInvalid, {e.loc.file, line}, vp,
              "version " + quoted(e.versions[i]) + " is listed twice");
    }
    if (!e.default_version.empty() && !e.versions.empty() && !seen.count(e.default_version))
      error(Errc::RegistryInvalid,
            {e.loc.file, line_of(e.loc.file, p + ".default_version", e.loc.line)},
            p + ".default_version",
            "default version " + quoted(e.default_version) + " is not in versions");
  }

  for (const auto& [name, v] : r.variants)
    if (!v.index.empty())
      ref(v.loc.file, "variants." + name + ".index", v.loc.line, v.index, "index",
          r.indexes.count(v.index) > 0);

  auto check_reqs = [&](const std::vector<RequirementEntry>& reqs, const std::string& file,
                        const std::string& path) {
    for (std::size_t i = 0; i < reqs.size(); ++i)
      if (reqs[i].is_wheel())
        ref(file, path + "[" + std::to_string(i) + "].wheel", reqs[i].loc.line, reqs[i].wheel,
            "wheel", r.wheels.count(reqs[i].wheel) > 0);
  };

  for (auto& row : reg_.compatibility_matrix) {
    const std::string& f = row.loc.file;
    const std::string& p = row.key_path;
    if (!row.hardware.empty())
      ref(f, p + ".hardware", row.loc.line, row.hardware, "hardware profile",
          r.hardware_profiles.count(row.hardware) > 0);
    const Engine* e = r.find_engine(row.engine);
    if (!row.engine.empty()) ref(f, p + ".engine", row.loc.line, row.engine, "engine", e != nullptr);
    if (e != nullptr && e->kind == EngineKind::Native && !row.requirements.empty())
      error(Errc::RegistryInvalid, {f, line_of(f, p + ".requirements[0]", row.loc.line)},
            p + ".requirements",
            "engine " + quoted(row.engine) + " is native: its rows take no Python requirements");
    if (e != nullptr && !row.engine_versions.empty()) {
      // A range that matches none of the engine's listed versions is a typo.
      auto set = packaging::parse_specifier_set(row.engine_versions);
      bool any = false;
      if (set.ok()) {
        for (const auto& text : e->versions) {
          auto v = packaging::parse_version(text);
          if (v.ok() && set->contains(*v, /*prereleases=*/true)) {
            any = true;
            break;
          }
        }
      }
      if (set.ok() && !any && !e->versions.empty())
        error(Errc::RegistryInvalid, {f, line_of(f, p + ".engine_versions", row.loc.line)},
              p + ".engine_versions",
              quoted(row.engine_versions) + " matches none of the versions of engine " +
                  quoted(row.engine));
    }
    check_reqs(row.requirements, f, p + ".requirements");
    for (std::size_t i = 0; i < row.indexes.size(); ++i)
      ref(f, p + ".indexes[" + std::to_string(i) + "]", row.loc.line, row.indexes[i], "index",
          r.indexes.count(row.indexes[i]) > 0);
    if (!row.variant.empty()) {
      const Variant* v = r.find_variant(row.variant);
      ref(f, p + ".variant", row.loc.line, row.variant, "variant", v != nullptr);
      if (v != nullptr && row.min_driver.empty() && !v->min_driver.empty()) {
        row.min_driver = v->min_driver;
        row.min_driver_loc = {v->loc.file,
                              line_of(v->loc.file, "variants." + v->name + ".min_driver", v->loc.line)};
      }
    }
  }

  check_reqs(r.base_environment.requirements, r.base_environment.loc.file,
             "base_environment.requirements");

  // Launchers: engine refs, ranges that match a listed version, no overlap within an engine
  // (two entries matching one listed version).
  std::map<std::pair<std::string, std::string>, const Launcher*> launcher_of;  // (engine, version)
  for (const auto& l : r.launchers) {
    const std::string& f = l.loc.file;
    const std::string& p = l.key_path;
    const Engine* e = r.find_engine(l.engine);
    if (!l.engine.empty()) ref(f, p + ".engine", l.loc.line, l.engine, "engine", e != nullptr);
    if (e != nullptr && e->kind == EngineKind::Native)
      error(Errc::RegistryInvalid, {f, line_of(f, p + ".engine", l.loc.line)}, p + ".engine",
            "engine " + quoted(l.engine) + " is native: it is built in and has no launcher");
    if (e == nullptr || l.engine_versions.empty()) continue;
    auto set = packaging::parse_specifier_set(l.engine_versions);
    if (!set.ok()) continue;
    bool any = false;
    for (const auto& text : e->versions) {
      auto v = packaging::parse_version(text);
      if (!v.ok() || !set->contains(*v, /*prereleases=*/true)) continue;
      any = true;
      auto [it, inserted] = launcher_of.emplace(std::make_pair(l.engine, text), &l);
      if (!inserted) {
        error(Errc::RegistryInvalid, {f, line_of(f, p + ".engine_versions", l.loc.line)},
              p + ".engine_versions",
              quoted(l.engine_versions) + " overlaps the launcher at " + it->second->loc.to_string() +
                  " (" + quoted(it->second->engine_versions) + "): both match " + l.engine + " " + text);
        break;
      }
    }
    if (!any && !e->versions.empty())
      error(Errc::RegistryInvalid, {f, line_of(f, p + ".engine_versions", l.loc.line)},
            p + ".engine_versions",
            quoted(l.engine_versions) + " matches none of the versions of engine " + quoted(l.engine));
  }

  std::map<std::tuple<std::string, std::string, std::string>, SourceLocation> seen_presets;
  for (std::size_t i = 0; i < r.presets.size(); ++i) {
    const Preset& pr = r.presets[i];
    const std::string& f = pr.loc.file;
    const std::string& p = preset_paths_[i];
    ref(f, p + ".hardware", pr.loc.line, pr.hardware, "hardware profile",
        pr.hardware.empty() || r.hardware_profiles.count(pr.hardware) > 0);
    ref(f, p + ".model_size", pr.loc.line, pr.model_size, "model size",
        pr.model_size.empty() || r.model_sizes.count(pr.model_size) > 0);
    if (!pr.engine.empty())
      ref(f, p + ".engine", pr.loc.line, pr.engine, "engine", r.engines.count(pr.engine) > 0);
    auto [it, inserted] =
        seen_presets.emplace(std::make_tuple(pr.hardware, pr.model_size, pr.engine), pr.loc);
    if (!inserted)
      error(Errc::RegistryInvalid, pr.loc, p,
            "a preset for (" + pr.hardware + ", " + pr.model_size +
                (pr.engine.empty() ? "" : ", " + pr.engine) + ") is defined twice (also at " +
                it->second.to_string() + ")");
  }
}

LoadOutcome RegistryBuilder::finish() {
  if (!fatal_) validate();
  std::map<std::string, std::size_t> order;
  for (std::size_t i = 0; i < reg_.files.size(); ++i) order.emplace(reg_.files[i], i);
  std::stable_sort(diags_.begin(), diags_.end(), [&](const Diagnostic& a, const Diagnostic& b) {
    auto oa = order.count(a.loc.file) ? order.at(a.loc.file) : order.size();
    auto ob = order.count(b.loc.file) ? order.at(b.loc.file) : order.size();
    if (oa != ob) return oa < ob;
    return a.loc.line < b.loc.line;
  });
  LoadOutcome out;
  out.diagnostics = std::move(diags_);
  if (out.diagnostics.empty()) out.registry = std::move(reg_);
  return out;
}

}  // namespace cyllm::registry::detail

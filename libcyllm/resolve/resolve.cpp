// list_candidates / make_plan: matching registry rows against a host, expanding their
// requirement lists for the target, merging them with the base environment and the
// user's constraints, and splitting environments when they clash.
#include <algorithm>
#include <map>
#include <set>

#include "cyllm/packaging.h"
#include "cyllm/resolve.h"
#include "resolve/hardware_match.h"
#include "util/strings.h"

namespace cyllm::resolve {
namespace {

namespace pkg = cyllm::packaging;

Result<wheel::TargetEnvironment> make_target(const detect::HardwareProfile& host,
                                             const ResolveOptions& o) {
  wheel::TargetEnvironment t;
  auto parts = util::split(o.python, '.');
  auto major = parts.size() == 2 ? util::parse_u64(parts[0]) : std::nullopt;
  auto minor = parts.size() == 2 ? util::parse_u64(parts[1]) : std::nullopt;
  if (!major || !minor || *major != 3 || *minor > 99)
    return Error(Errc::InvalidArgument,
                 "target Python " + util::quote(o.python) + " is not of the form 3.X (e.g. 3.12)");
  t.python_major = 3;
  t.python_minor = static_cast<int>(*minor);
  t.architecture = host.cpu.architecture.empty() ? "x86_64" : host.cpu.architecture;
  // The glibc of the target: --glibc, else the profile's; unknown accepts every manylinux
  // level rather than guess one; musl accepts none.
  t.glibc_minor = 99;
  if (host.os.libc == "musl") t.glibc_major = 0;
  if (host.os.libc == "glibc") {
    auto v = util::split(host.os.libc_version, '.');
    if (v.size() >= 2 && v[0] == "2")
      if (auto m = util::parse_u64(v[1]); m && *m < 99) t.glibc_minor = static_cast<int>(*m);
  }
  if (o.glibc_minor) t.glibc_minor = *o.glibc_minor;
  return t;
}

pkg::MarkerEnvironment marker_env(const wheel::TargetEnvironment& t) {
  pkg::MarkerEnvironment e;
  e.python_version = std::to_string(t.python_major) + "." + std::to_string(t.python_minor);
  e.python_full_version = e.python_version + ".0";
  e.os_name = "posix";
  e.sys_platform = "linux";
  e.platform_system = "Linux";
  e.platform_machine = t.architecture;
  e.platform_python_implementation = "CPython";
  e.implementation_name = "cpython";
  e.implementation_version = e.python_full_version;
  return e;
}

std::string url_filename(const std::string& url) {
  std::string tail = url.substr(url.rfind('/') + 1);
  tail = tail.substr(0, tail.find_first_of("?#"));
  std::string out;
  for (std::size_t i = 0; i < tail.size(); ++i) {
    if (tail[i] == '%' && i + 2 < tail.size()) {
      if (auto v = util::parse_hex_u64(tail.substr(i + 1, 2))) {
        out += static_cast<char>(*v);
        i += 2;
        continue;
      }
    }
    out += tail[i];
  }
  return out;
}

// A requirement entry of the registry, expanded for one candidate and target.
struct Expanded {
  PlannedRequirement planned;
  pkg::SpecifierSet spec;                // for ranges/pins
  std::optional<pkg::Version> url_version;  // for wheel URLs
  bool applies = true;                   // marker holds on the target
};

Result<Expanded> expand(const registry::Registry& reg, const registry::RequirementEntry& e,
                        const std::string& engine_version, const wheel::TargetEnvironment& target,
                        const pkg::MarkerEnvironment& env) {
  Expanded x;
  x.planned.source = e.loc.to_string();
  x.planned.no_deps = e.no_deps;
  if (e.is_wheel()) {
    const registry::Wheel* w = reg.find_wheel(e.wheel);
    if (!w) return Error(Errc::RegistryUnknownRef, "unknown wheel \"" + e.wheel + "\"");
    auto file = wheel::parse_wheel_filename(url_filename(w->url));
    if (!file) return Error(file.error()).with_context("wheel " + e.wheel + " at " + w->loc.to_string());
    if (!wheel::wheel_rank(*file, wheel::supported_tags(target)))
      return Error(Errc::Unsupported, url_filename(w->url) + " " +
                                          wheel::explain_incompatibility(*file, target));
    x.planned.name = pkg::normalize_name(file->distribution);
    x.planned.text = x.planned.name + " @ " + w->url;
    x.planned.sha256 = w->sha256;
    if (auto v = pkg::parse_version(file->version)) x.url_version = *v;
    return x;
  }
  std::string text = e.requirement;
  for (auto p = text.find("{version}"); p != std::string::npos; p = text.find("{version}"))
    text.replace(p, 9, engine_version);
  auto r = pkg::parse_requirement(text);
  if (!r) return Error(r.error()).with_context("requirement at " + e.loc.to_string());
  if (auto applies = r->applies_to(env); !applies) return applies.error();
  else x.applies = *applies;
  x.planned.name = r->normalized_name();
  x.spec = r->specifier;
  r->marker.reset();  // evaluated for the target; the lock carries the plain requirement
  x.planned.text = r->to_string();
  if (!r->url.empty()) {
    if (auto f = wheel::parse_wheel_filename(url_filename(r->url)))
      if (auto v = pkg::parse_version(f->version)) x.url_version = *v;
  }
  return x;
}

bool satisfies(const Expanded& x, const pkg::Version& v) {
  if (x.url_version) return *x.url_version == v;
  return x.spec.contains(v, true);
}

// Whether some version satisfies every requirement. Exact for specifier sets: a
// non-empty intersection always contains either one of the versions the specifiers
// name or a version just above one of them, or lies above/below all of them.
bool jointly_satisfiable(const std::vector<const Expanded*>& reqs) {
  std::vector<pkg::Version> points;
  std::set<std::string> urls;
  for (const auto* r : reqs) {
    if (r->url_version) points.push_back(*r->url_version);
    if (util::starts_with(r->planned.text.substr(r->planned.name.size()), " @ "))
      urls.insert(r->planned.text);
    for (const auto& s : r->spec.specifiers()) {
      points.push_back(s.version());
      if (auto up = pkg::parse_version(s.version().base_version().to_string() + ".0.0.0.0.1"))
        points.push_back(*up);
    }
  }
  if (urls.size() > 1) return false;
  points.push_back(pkg::parse_version("0").value());
  points.push_back(pkg::parse_version("999999").value());
  for (const auto& v : points) {
    bool all = true;
    for (const auto* r : reqs) all = all && satisfies(*r, v);
    if (all) return true;
  }
  return false;
}

int profile_depth(const registry::Registry& reg, const registry::HardwareProfile* p) {
  int d = 0;
  while (p && !p->extends.empty() && d < 64) {
    p = reg.find_profile(p->extends);
    ++d;
  }
  return d;
}

}  // namespace

Result<std::vector<Candidate>> list_candidates(const registry::Registry& reg,
                                               const detect::HardwareProfile& host,
                                               const ResolveOptions& o) {
  if (!o.engine.empty() && !reg.find_engine(o.engine)) {
    std::string known;
    for (const auto& [name, e] : reg.engines) known += (known.empty() ? "" : ", ") + name;
    return Error(Errc::InvalidArgument,
                 "unknown engine \"" + o.engine + "\" (the registry has " + known + ")");
  }
  if (!o.engine_version.empty() && o.engine.empty())
    return Error(Errc::InvalidArgument, "--engine-version needs --engine");
  auto target = CYLLM_TRY(make_target(host, o));
  const auto env = marker_env(target);
  auto py = pkg::parse_version(o.python).value();

  std::vector<Candidate> out;
  for (const auto& [name, engine] : reg.engines) {
    if (!o.engine.empty() && name != o.engine) continue;
    std::vector<std::string> versions = engine.versions;
    if (!o.engine_version.empty()) {
      if (std::find(versions.begin(), versions.end(), o.engine_version) == versions.end())
        return Error(Errc::InvalidArgument, "the registry knows no " + name + " " +
                                                util::quote(o.engine_version) + " (known: " +
                                                [&] { std::string s; for (auto& v : versions) s += (s.empty() ? "" : ", ") + v; return s; }() + ")");
      versions = {o.engine_version};
    }
    auto rows = reg.rows_for_engine(name);
    // Parse each row's version range once, not once per version.
    std::vector<std::optional<pkg::SpecifierSet>> ranges;
    for (const auto* row : rows) {
      auto r = pkg::parse_specifier_set(row->engine_versions);
      ranges.push_back(r ? std::optional<pkg::SpecifierSet>(std::move(*r)) : std::nullopt);
    }
    for (const auto& version_text : versions) {
      Candidate c;
      c.engine = name;
      c.version = version_text;
      c.tradeoff = engine.tradeoff;
      c.is_default = version_text == engine.default_version;
      auto version = pkg::parse_version(version_text);
      if (!version) return Error(version.error()).with_context("engine " + name + " at " + engine.loc.to_string());
      bool covered = false;
      for (std::size_t ri = 0; ri < rows.size(); ++ri) {
        const auto* row = rows[ri];
        if (!ranges[ri] || !ranges[ri]->contains(*version, true)) continue;
        covered = true;
        const std::string where = " (" + row->loc.to_string() + ")";
        const auto* profile = reg.find_profile(row->hardware);
        if (!profile) {
          c.reasons.push_back("row uses unknown profile " + row->hardware + where);
          continue;
        }
        if (auto m = match_hardware(*profile, host); !m.ok) {
          c.reasons.push_back(name + " " + version_text + ": " + m.reason + where);
          continue;
        }
        const registry::Variant* variant = row->variant.empty() ? nullptr : reg.find_variant(row->variant);
        if (variant) {
          if (auto m = match_variant(*variant, host); !m.ok) {
            c.reasons.push_back(name + " " + version_text + ": " + m.reason + where);
            continue;
          }
        }
        if (!row->min_driver.empty() && profile->vendor != "cpu" && !profile->vendor.empty() &&
            compare_dotted(host.driver_version, row->min_driver) < 0) {
          c.reasons.push_back(name + " " + version_text + " needs driver >= " + row->min_driver +
                              "; found " + (host.driver_version.empty() ? "none" : host.driver_version) + where);
          continue;
        }
        if (!row->python.empty()) {
          auto pyspec = pkg::parse_specifier_set(row->python);
          if (pyspec && !pyspec->contains(py, true)) {
            c.reasons.push_back(name + " " + version_text + " needs Python " + row->python +
                                "; the target is Python " + o.python + where);
            continue;
          }
        }
        std::string wheel_problem;
        for (const auto& e : row->requirements) {
          auto x = expand(reg, e, version_text, target, env);
          if (!x) {
            wheel_problem = x.error().message();
            break;
          }
        }
        if (!wheel_problem.empty()) {
          c.reasons.push_back(name + " " + version_text + ": " + wheel_problem + where);
          continue;
        }
        // A viable row. Keep looking: an accelerated row beats a CPU one, a verified row
        // an unverified one; otherwise the first in registry order wins.
        const bool accelerated = !profile->vendor.empty() && profile->vendor != "cpu";
        const bool better = !c.viable || (accelerated && !c.accelerated) ||
                            (accelerated == c.accelerated && row->verified && !c.verified);
        if (better) {
          c.viable = true;
          c.row = row;
          c.variant = row->variant;
          c.verified = row->verified;
          c.accelerated = accelerated;
        }
      }
      if (!covered) c.reasons.push_back("no compatibility_matrix row covers " + name + " " + version_text);
      out.push_back(std::move(c));
    }
  }
  // Without a usable accelerator, the native engine (no Python stack) comes first.
  const bool cpu_only = std::none_of(out.begin(), out.end(),
                                     [](const Candidate& c) { return c.viable && c.accelerated; });
  auto kind_of = [&](const Candidate& c) {
    const auto* e = reg.find_engine(c.engine);
    return e ? e->kind : registry::EngineKind::Python;
  };
  std::map<std::string, pkg::Version> parsed;  // version text -> version, for sorting
  for (const auto& c : out)
    if (auto v = pkg::parse_version(c.version)) parsed.emplace(c.version, *v);
  std::stable_sort(out.begin(), out.end(), [&](const Candidate& a, const Candidate& b) {
    if (a.viable != b.viable) return a.viable;
    if (a.accelerated != b.accelerated) return a.accelerated;
    if (cpu_only) {
      bool na = kind_of(a) == registry::EngineKind::Native, nb = kind_of(b) == registry::EngineKind::Native;
      if (na != nb) return na;
    }
    const auto* ea = reg.find_engine(a.engine);
    const auto* eb = reg.find_engine(b.engine);
    int pa = ea ? ea->priority : 0, pb = eb ? eb->priority : 0;
    if (pa != pb) return pa < pb;
    if (a.engine != b.engine) return a.engine < b.engine;
    if (a.is_default != b.is_default) return a.is_default;
    auto va = parsed.find(a.version), vb = parsed.find(b.version);
    if (va != parsed.end() && vb != parsed.end() && va->second != vb->second) return vb->second < va->second;
    return false;
  });
  return out;
}

Result<Plan> make_plan(const registry::Registry& reg, const detect::HardwareProfile& host,
                       const ResolveOptions& o, std::vector<Candidate> candidates,
                       std::size_t chosen) {
  CYLLM_ASSERT(chosen < candidates.size() && candidates[chosen].viable);
  Plan plan;
  plan.host = host;
  plan.target = CYLLM_TRY(make_target(host, o));
  plan.registry_files = reg.files;
  const auto env = marker_env(plan.target);
  const Candidate& c = candidates[chosen];
  const registry::MatrixRow& row = *c.row;

  // Expand the three sources.
  std::vector<Expanded> engine_reqs, base_reqs, constraint_reqs;
  for (const auto& e : row.requirements) {
    auto x = CYLLM_TRY(expand(reg, e, c.version, plan.target, env));
    if (x.applies) engine_reqs.push_back(std::move(x));
  }
  const auto* engine = reg.find_engine(c.engine);
  const bool native = engine && engine->kind == registry::EngineKind::Native;
  for (const auto& e : reg.base_environment.requirements) {
    auto x = CYLLM_TRY(expand(reg, e, c.version, plan.target, env));
    if (x.applies) base_reqs.push_back(std::move(x));
  }
  for (const auto& text : o.constraints) {
    auto r = pkg::parse_requirement(text);
    if (!r) return Error(r.error()).with_context("reading --constraint " + util::quote(text));
    Expanded x;
    x.planned.name = r->normalized_name();
    x.planned.text = r->to_string();
    x.planned.source = "--constraint";
    x.spec = r->specifier;
    constraint_reqs.push_back(std::move(x));
  }

  // Which packages clash between the base stack and the engine row?
  std::map<std::string, std::vector<const Expanded*>> by_name;
  for (const auto& x : base_reqs) by_name[x.planned.name].push_back(&x);
  for (const auto& x : engine_reqs) by_name[x.planned.name].push_back(&x);
  auto explain_pair = [&](const std::string& pkg_name, const std::vector<const Expanded*>& sides,
                          const std::string& resolution) {
    Conflict k;
    k.package = pkg_name;
    std::string because = "Because ";
    for (std::size_t i = 0; i < sides.size(); ++i) {
      const auto* s = sides[i];
      const bool from_base = std::any_of(base_reqs.begin(), base_reqs.end(), [&](const Expanded& b) { return &b == s; });
      const bool from_constraint = s->planned.source == "--constraint";
      std::string who = from_constraint ? "your --constraint" : from_base ? "the base environment" : c.engine + " " + c.version;
      k.sides.emplace_back(s->planned.text, s->planned.source);
      because += (i ? (i + 1 == sides.size() ? " and " : ", ") : "") + who + " requires " +
                 s->planned.text + " (" + s->planned.source + ")";
    }
    k.explanation = because + ", no version of " + pkg_name + " satisfies all of them" +
                    (resolution.empty() ? "." : "; " + resolution);
    return k;
  };
  bool clash = false;
  for (const auto& [name, reqs] : by_name)
    if (!jointly_satisfiable(reqs)) clash = true;

  const bool split = !native && (o.isolate || clash);
  if (clash && o.single_env) {
    std::string all;
    for (const auto& [name, reqs] : by_name)
      if (!jointly_satisfiable(reqs))
        all += (all.empty() ? "" : "\n") + explain_pair(name, reqs, "").explanation;
    return Error(Errc::Conflict,
                 all + "\nDrop --single-env to install " + c.engine + " in an environment of its own.");
  }
  if (clash) {
    for (const auto& [name, reqs] : by_name)
      if (!jointly_satisfiable(reqs))
        plan.conflicts.push_back(explain_pair(
            name, reqs,
            "cy-llm therefore installs the worker in environment \"base\" and " + c.engine +
                " in environment \"engine\", each with its own lock"));
    plan.warnings.push_back({"resolve.isolated", std::to_string(plan.conflicts.size()) +
                                                     " package(s) clash between the base environment and " +
                                                     c.engine + " " + c.version + "; using two environments"});
  }

  auto add_env = [&](const std::string& name, const std::vector<const std::vector<Expanded>*>& sources,
                     const std::string& python, bool engine_indexes) -> Result<void> {
    Environment e;
    e.name = name;
    e.python = python;
    std::map<std::string, std::vector<const Expanded*>> names;
    for (const auto* src : sources)
      for (const auto& x : *src) {
        names[x.planned.name].push_back(&x);
        e.requirements.push_back(x.planned);
      }
    for (const auto& x : constraint_reqs) {
      if (!names.count(x.planned.name)) continue;
      names[x.planned.name].push_back(&x);
      e.requirements.push_back(x.planned);
    }
    for (const auto& [pkg_name, reqs] : names)
      if (!jointly_satisfiable(reqs))
        return Error(Errc::Conflict,
                     explain_pair(pkg_name, reqs, "remove or relax the constraint").explanation +
                         " (environment \"" + name + "\")");
    e.indexes.push_back({"pypi", "https://pypi.org/simple", "pypi"});
    if (engine_indexes) {
      std::vector<std::string> refs = row.indexes;
      if (const auto* v = reg.find_variant(row.variant); v && !v->index.empty() &&
          std::find(refs.begin(), refs.end(), v->index) == refs.end())
        refs.push_back(v->index);
      for (const auto& ref : refs)
        if (const auto* idx = reg.find_index(ref)) {
          PlannedIndex pi{idx->name, idx->url, std::string(registry::to_string(idx->kind))};
          if (idx->kind == registry::IndexKind::Pypi) e.indexes.front() = pi;
          else e.indexes.push_back(pi);
        }
    }
    plan.environments.push_back(std::move(e));
    return {};
  };
  auto combine_python = [](const std::string& a, const std::string& b) {
    if (a.empty()) return b;
    if (b.empty()) return a;
    auto sa = pkg::parse_specifier_set(a), sb = pkg::parse_specifier_set(b);
    return (sa && sb) ? sa->intersect(*sb).to_string() : a + "," + b;
  };
  if (native) {
    // The native engine needs no Python; the worker's base stack is still planned.
    CYLLM_TRY_VOID(add_env("base", {&base_reqs}, reg.base_environment.python, false));
  } else if (split) {
    CYLLM_TRY_VOID(add_env("base", {&base_reqs}, reg.base_environment.python, false));
    CYLLM_TRY_VOID(add_env("engine", {&engine_reqs}, row.python, true));
  } else {
    CYLLM_TRY_VOID(add_env("default", {&base_reqs, &engine_reqs},
                           combine_python(reg.base_environment.python, row.python), true));
  }

  // EngineConfig from the most specific matching preset.
  plan.engine_config.engine_type = c.engine;
  std::string bucket;
  {
    std::vector<const registry::ModelSize*> sizes;
    for (const auto& [n, s] : reg.model_sizes) sizes.push_back(&s);
    std::sort(sizes.begin(), sizes.end(), [](auto* a, auto* b) { return a->max_params_billion < b->max_params_billion; });
    for (const auto* s : sizes)
      if (!o.model_params_billion || *o.model_params_billion <= s->max_params_billion) {
        bucket = s->name;
        break;
      }
  }
  const registry::Preset* best = nullptr;
  int best_score = -1;
  for (const auto& p : reg.presets) {
    if (p.model_size != bucket || (!p.engine.empty() && p.engine != c.engine)) continue;
    const auto* prof = reg.find_profile(p.hardware);
    if (!prof || !match_hardware(*prof, host).ok) continue;
    const bool cpu_profile = prof->vendor.empty() || prof->vendor == "cpu";
    if (cpu_profile == c.accelerated) continue;  // GPU presets for GPU engines only
    int score = profile_depth(reg, prof) * 2 + (p.engine.empty() ? 0 : 100);
    if (score >= best_score) {
      best = &p;
      best_score = score;
    }
  }
  if (best) {
    if (best->gpu_memory_utilization) plan.engine_config.gpu_memory_utilization = *best->gpu_memory_utilization;
    if (best->max_model_len) plan.engine_config.max_model_len = *best->max_model_len;
    if (best->tensor_parallel_size) plan.engine_config.tensor_parallel_size = *best->tensor_parallel_size;
    plan.engine_config.quantization = best->quantization;
    plan.engine_config.kv_cache_dtype = best->kv_cache_dtype;
    plan.engine_config.preset_source = best->loc.to_string();
  } else {
    plan.warnings.push_back({"resolve.no_preset", "no performance preset matches this host and model size \"" +
                                                      bucket + "\"; using the defaults"});
  }
  if (plan.engine_config.tensor_parallel_size > std::max(1, host.device_count) && c.accelerated) {
    plan.warnings.push_back({"resolve.tensor_parallel", "the preset asks for tensor_parallel_size " +
                                                            std::to_string(plan.engine_config.tensor_parallel_size) +
                                                            " but " + std::to_string(host.device_count) +
                                                            " device(s) are visible; using " +
                                                            std::to_string(std::max(1, host.device_count))});
    plan.engine_config.tensor_parallel_size = std::max(1, host.device_count);
  }
  if (!c.verified)
    plan.warnings.push_back({"resolve.unverified", c.engine + " " + c.version + " on this host comes from a registry row (" +
                                                       row.loc.to_string() + ") not yet verified against its source"});
  for (const auto& x : constraint_reqs) {
    bool used = false;
    for (const auto& e : plan.environments)
      for (const auto& r : e.requirements) used = used || (r.source == "--constraint" && r.name == x.planned.name);
    if (!used)
      plan.warnings.push_back({"resolve.unused_constraint", "--constraint " + x.planned.text +
                                                                " names a package no environment requires"});
  }
  plan.candidates = std::move(candidates);
  plan.chosen = chosen;
  return plan;
}

Result<Plan> resolve(const registry::Registry& reg, const detect::HardwareProfile& host,
                     const ResolveOptions& o) {
  auto candidates = CYLLM_TRY(list_candidates(reg, host, o));
  for (std::size_t i = 0; i < candidates.size(); ++i)
    if (candidates[i].viable) return make_plan(reg, host, o, std::move(candidates), i);
  std::string why;
  std::set<std::string> seen;
  for (const auto& c : candidates)
    for (const auto& r : c.reasons)
      if (seen.insert(r).second && seen.size() <= 12) why += "\n  " + r;
  return Error(Errc::NoCandidate, "no engine in the registry runs on this host (" + host.vendor +
                                      (host.device_name.empty() ? "" : " " + host.device_name) +
                                      (o.engine.empty() ? "" : ", engine " + o.engine) + "):" + why);
}

}  // namespace cyllm::resolve

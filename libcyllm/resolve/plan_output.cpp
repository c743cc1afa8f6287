// Plan -> JSON (schema cy-llm.plan/v1, tools/schema/plan.v1.json), requirements.lock
// files, and the --explain table.
#include <cstdio>
#include <algorithm>
#include <sstream>

#include "cyllm/resolve.h"

namespace cyllm::resolve {
namespace {

using ojson = nlohmann::ordered_json;

ojson str_or_null(const std::string& s) { return s.empty() ? ojson(nullptr) : ojson(s); }

ojson candidate_json(const Candidate& c, bool chosen) {
  return {{"engine", c.engine},
          {"version", c.version},
          {"variant", str_or_null(c.variant)},
          {"status", chosen ? "chosen" : c.viable ? "available" : "rejected"},
          {"accelerated", c.accelerated},
          {"verified", c.verified},
          {"tradeoff", str_or_null(c.tradeoff)},
          {"row", c.row ? ojson(c.row->loc.to_string()) : ojson(nullptr)},
          {"reasons", c.reasons}};
}

}  // namespace

ojson to_json(const Plan& p) {
  ojson candidates = ojson::array();
  for (std::size_t i = 0; i < p.candidates.size(); ++i)
    candidates.push_back(candidate_json(p.candidates[i], p.chosen && *p.chosen == i));
  ojson envs = ojson::array();
  for (const auto& e : p.environments) {
    ojson reqs = ojson::array(), idx = ojson::array();
    for (const auto& r : e.requirements)
      reqs.push_back({{"name", r.name},
                      {"requirement", r.text},
                      {"sha256", str_or_null(r.sha256)},
                      {"no_deps", r.no_deps},
                      {"source", r.source}});
    for (const auto& i : e.indexes) idx.push_back({{"name", i.name}, {"url", i.url}, {"kind", i.kind}});
    envs.push_back({{"name", e.name}, {"python", str_or_null(e.python)}, {"indexes", idx}, {"requirements", reqs}});
  }
  ojson conflicts = ojson::array();
  for (const auto& k : p.conflicts) {
    ojson sides = ojson::array();
    for (const auto& [req, src] : k.sides) sides.push_back({{"requirement", req}, {"source", src}});
    conflicts.push_back({{"package", k.package}, {"sides", sides}, {"explanation", k.explanation}});
  }
  ojson warnings = ojson::array();
  for (const auto& w : p.warnings) warnings.push_back({{"code", w.code}, {"message", w.message}});
  const Candidate* c = p.chosen ? &p.candidates[*p.chosen] : nullptr;
  const auto& ec = p.engine_config;
  return {
      {"schema", kPlanSchema},
      {"host",
       {{"vendor", p.host.vendor},
        {"device_name", str_or_null(p.host.device_name)},
        {"compute_capability", str_or_null(p.host.compute_capability)},
        {"driver_version", str_or_null(p.host.driver_version)},
        {"device_count", p.host.device_count},
        {"architecture", str_or_null(p.host.cpu.architecture)}}},
      {"target",
       {{"python", std::to_string(p.target.python_major) + "." + std::to_string(p.target.python_minor)},
        {"architecture", p.target.architecture},
        {"glibc", p.target.glibc_minor >= 99 ? ojson(nullptr)
                                              : ojson("2." + std::to_string(p.target.glibc_minor))}}},
      {"engine", c ? ojson{{"name", c->engine},
                           {"version", c->version},
                           {"variant", str_or_null(c->variant)},
                           {"verified", c->verified},
                           {"row", c->row->loc.to_string()}}
                   : ojson(nullptr)},
      {"engine_config",
       {{"engine_type", ec.engine_type},
        {"model_id", str_or_null(ec.model_id)},
        {"max_model_len", ec.max_model_len},
        {"gpu_memory_utilization", ec.gpu_memory_utilization},
        {"quantization", str_or_null(ec.quantization)},
        {"kv_cache_dtype", str_or_null(ec.kv_cache_dtype)},
        {"tensor_parallel_size", ec.tensor_parallel_size},
        {"extra_config", ojson::object()},
        {"preset", str_or_null(ec.preset_source)}}},
      {"environments", envs},
      {"conflicts", conflicts},
      {"candidates", candidates},
      {"registry", p.registry_files},
      {"warnings", warnings},
  };
}

std::string to_lock(const Plan& p, const Environment& e, const std::string& command) {
  std::ostringstream o;
  const Candidate* c = p.chosen ? &p.candidates[*p.chosen] : nullptr;
  o << "# requirements.lock for environment \"" << e.name << "\", written by cy-llm-resolve.\n";
  o << "# host: " << p.host.vendor;
  if (!p.host.device_name.empty()) o << " " << p.host.device_name;
  if (!p.host.compute_capability.empty()) o << " (" << p.host.compute_capability << ")";
  if (!p.host.driver_version.empty()) o << ", driver " << p.host.driver_version;
  o << "\n";
  if (c) o << "# engine: " << c->engine << " " << c->version << (c->variant.empty() ? "" : " (" + c->variant + ")")
           << " from " << c->row->loc.to_string() << "\n";
  o << "# target: Python " << p.target.python_major << "." << p.target.python_minor << ", "
    << p.target.architecture << (e.python.empty() ? "" : "; requires Python " + e.python) << "\n";
  o << "# regenerate: " << command << "\n";
  o << "# install: pip install" << (std::all_of(e.requirements.begin(), e.requirements.end(),
                                                [](const PlannedRequirement& r) { return !r.sha256.empty(); })
                                        ? " --require-hashes"
                                        : "")
    << " -r <this file>\n";
  if (!e.indexes.empty()) {
    o << "--index-url " << e.indexes.front().url << "\n";
    for (std::size_t i = 1; i < e.indexes.size(); ++i) o << "--extra-index-url " << e.indexes[i].url << "\n";
  }
  for (const auto& r : e.requirements) {
    o << r.text;
    if (!r.sha256.empty()) o << " \\\n    --hash=sha256:" << r.sha256;
    o << "\n";
  }
  return o.str();
}

std::string lock_path_for(const std::string& lock_path, const Plan& plan, const Environment& env) {
  if (plan.environments.size() <= 1 || env.name != "base") return lock_path;
  auto slash = lock_path.rfind('/');
  auto dot = lock_path.rfind('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return lock_path + ".base";
  return lock_path.substr(0, dot) + ".base" + lock_path.substr(dot);
}

std::string explain(const Plan& p) {
  std::ostringstream o;
  o << "host: " << p.host.vendor;
  if (!p.host.device_name.empty()) o << " " << p.host.device_name;
  if (!p.host.compute_capability.empty()) o << " (" << p.host.compute_capability << ")";
  if (!p.host.driver_version.empty()) o << ", driver " << p.host.driver_version;
  o << "; target Python " << p.target.python_major << "." << p.target.python_minor << ", "
    << p.target.architecture << "\n\n";
  char line[512];
  std::snprintf(line, sizeof line, "%-10s %-14s %-12s %-8s %s\n", "status", "engine", "version", "variant", "why");
  o << line;
  for (std::size_t i = 0; i < p.candidates.size(); ++i) {
    const auto& c = p.candidates[i];
    const char* status = p.chosen && *p.chosen == i ? "CHOSEN" : c.viable ? "ok" : "rejected";
    std::string why = c.viable ? (c.row ? "row " + c.row->loc.to_string() + (c.verified ? "" : " (unverified)") : "")
                               : (c.reasons.empty() ? "" : c.reasons.front());
    std::snprintf(line, sizeof line, "%-10s %-14s %-12s %-8s ", status, c.engine.c_str(), c.version.c_str(),
                  c.variant.c_str());
    o << line << why << "\n";
    for (std::size_t r = 1; !c.viable && r < c.reasons.size(); ++r) o << std::string(48, ' ') << c.reasons[r] << "\n";
  }
  for (const auto& k : p.conflicts) o << "\nconflict: " << k.explanation << "\n";
  for (const auto& e : p.environments) {
    o << "\nenvironment " << e.name << (e.python.empty() ? "" : " (python " + e.python + ")") << ":\n";
    for (const auto& r : e.requirements) o << "  " << r.text << "    # " << r.source << "\n";
  }
  return o.str();
}

}  // namespace cyllm::resolve

// HardwareProfile <-> JSON (schema cy-llm.detect/v1, tools/schema/detect.v1.json) and the
// human-readable table of `cy-llm-detect --format text`.
//
// Conventions: keys carry units (`vram_total_bytes`); unknown values are null, never 0 or
// ""; lists are always present (possibly empty). Adding keys is compatible; renaming or
// removing one needs cy-llm.detect/v2.
#include <cstdio>
#include <limits>
#include <type_traits>
#include <sstream>

#include "cyllm/detect.h"

namespace cyllm::detect {
namespace {

using ojson = nlohmann::ordered_json;

ojson str_or_null(const std::string& s) { return s.empty() ? ojson(nullptr) : ojson(s); }

template <class T>
ojson opt(const std::optional<T>& v) {
  return v ? ojson(*v) : ojson(nullptr);
}

ojson nvidia_json(const NvidiaInfo& n) {
  ojson gpus = ojson::array();
  for (const auto& g : n.gpus) {
    ojson mig = ojson::array();
    for (const auto& m : g.mig_devices)
      mig.push_back({{"uuid", m.uuid}, {"name", str_or_null(m.name)},
                     {"vram_total_bytes", m.vram_total_bytes}});
    gpus.push_back({{"index", g.index},
                    {"name", g.name},
                    {"uuid", str_or_null(g.uuid)},
                    {"pci_bus_id", str_or_null(g.pci_bus_id)},
                    {"vram_total_bytes", g.vram_total_bytes},
                    {"vram_free_bytes", opt(g.vram_free_bytes)},
                    {"compute_capability", str_or_null(g.compute_capability)},
                    {"mig_enabled", opt(g.mig_enabled)},
                    {"mig_devices", mig}});
  }
  return {{"source", n.source},
          {"driver_version", str_or_null(n.driver_version)},
          {"cuda_driver_version", str_or_null(n.cuda_driver_version)},
          {"total_gpus", n.total_gpus},
          {"gpus", gpus}};
}

ojson amd_json(const AmdInfo& a) {
  ojson gpus = ojson::array();
  for (const auto& g : a.gpus)
    gpus.push_back({{"index", g.index},
                    {"kfd_node", g.kfd_node},
                    {"name", g.name},
                    {"gfx_target", str_or_null(g.gfx_target)},
                    {"pci_bus_id", str_or_null(g.pci_bus_id)},
                    {"unique_id", str_or_null(g.unique_id)},
                    {"device_id", g.device_id},
                    {"vram_total_bytes", g.vram_total_bytes},
                    {"vram_used_bytes", opt(g.vram_used_bytes)},
                    {"compute_units", g.compute_units},
                    {"simd_count", g.simd_count}});
  return {{"rocm_version", str_or_null(a.rocm_version)},
          {"driver_version", str_or_null(a.driver_version)},
          {"total_gpus", a.total_gpus},
          {"gpus", gpus}};
}

ojson ascend_json(const AscendInfo& a) {
  ojson npus = ojson::array();
  for (const auto& n : a.npus)
    npus.push_back({{"index", n.index},
                    {"npu_id", n.npu_id},
                    {"chip_id", n.chip_id},
                    {"name", n.name},
                    {"soc_version", str_or_null(n.soc_version)},
                    {"pci_bus_id", str_or_null(n.pci_bus_id)},
                    {"health", str_or_null(n.health)},
                    {"hbm_total_bytes", n.hbm_total_bytes},
                    {"hbm_used_bytes", opt(n.hbm_used_bytes)},
                    {"device_node", str_or_null(n.device_node)}});
  return {{"driver_version", str_or_null(a.driver_version)},
          {"firmware_version", str_or_null(a.firmware_version)},
          {"cann_version", str_or_null(a.cann_version)},
          {"npu_smi_version", str_or_null(a.npu_smi_version)},
          {"total_npus", a.total_npus},
          {"npus", npus}};
}

std::string gib(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1024.0 * 1024 * 1024));
  return buf;
}

// Typed readers for profile_from_json: absent or null -> default; wrong type -> error.
struct Reader {
  std::string error;
  template <class T>
  T get(const nlohmann::json& obj, const char* key, T fallback = T{}) {
    if (!obj.is_object() || !obj.contains(key) || obj.at(key).is_null()) return fallback;
    const nlohmann::json& v = obj.at(key);
    auto wrong = [&](const char* what) {
      if (error.empty()) error = std::string("key \"") + key + "\" " + what;
      return fallback;
    };
    // Numbers are checked by hand: nlohmann converts a float such as 8.5e34 to an integer
    // type without a range check (undefined behaviour; found by fuzz_profile_json).
    if constexpr (std::is_same_v<T, bool>) {
      return v.is_boolean() ? v.get<bool>() : wrong("has the wrong type");
    } else if constexpr (std::is_integral_v<T>) {
      if (v.is_number_unsigned()) {
        auto u = v.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) return wrong("is out of range");
        return static_cast<T>(u);
      }
      if (v.is_number_integer()) {
        auto i = v.get<std::int64_t>();
        if (i < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
            (i > 0 && static_cast<std::uint64_t>(i) > static_cast<std::uint64_t>(std::numeric_limits<T>::max())))
          return wrong("is out of range");
        return static_cast<T>(i);
      }
      return wrong("has the wrong type");
    } else if constexpr (std::is_floating_point_v<T>) {
      return v.is_number() ? v.get<T>() : wrong("has the wrong type");
    } else {
      try {
        return v.get<T>();
      } catch (const nlohmann::json::exception&) {
        return wrong("has the wrong type");
      }
    }
  }
  template <class T>
  std::optional<T> get_opt(const nlohmann::json& obj, const char* key) {
    if (!obj.is_object() || !obj.contains(key) || obj.at(key).is_null()) return std::nullopt;
    return get<T>(obj, key);
  }
  const nlohmann::json& arr(const nlohmann::json& obj, const char* key) {
    static const nlohmann::json empty = nlohmann::json::array();
    if (!obj.is_object() || !obj.contains(key) || !obj.at(key).is_array()) return empty;
    return obj.at(key);
  }
};

}  // namespace

nlohmann::ordered_json to_json(const HardwareProfile& p) {
  ojson warnings = ojson::array();
  for (const auto& w : p.warnings) warnings.push_back({{"code", w.code}, {"message", w.message}});
  return {
      {"schema", kSchema},
      {"vendor", p.vendor},
      {"device_name", str_or_null(p.device_name)},
      {"vram_total_bytes", p.vram_total_bytes},
      {"compute_capability", str_or_null(p.compute_capability)},
      {"driver_version", str_or_null(p.driver_version)},
      {"device_count", p.device_count},
      {"cpu",
       {{"vendor", str_or_null(p.cpu.vendor)},
        {"model_name", str_or_null(p.cpu.model_name)},
        {"architecture", str_or_null(p.cpu.architecture)},
        {"isa", p.cpu.isa},
        {"isa_source", str_or_null(p.cpu.isa_source)},
        {"physical_cores", p.cpu.physical_cores},
        {"logical_cores", p.cpu.logical_cores},
        {"sockets", p.cpu.sockets},
        {"numa_nodes", p.cpu.numa_nodes},
        {"memory_total_bytes", p.cpu.memory_total_bytes},
        {"memory_available_bytes", p.cpu.memory_available_bytes}}},
      {"os",
       {{"name", str_or_null(p.os.name)},
        {"id", str_or_null(p.os.id)},
        {"version_id", str_or_null(p.os.version_id)},
        {"kernel", str_or_null(p.os.kernel)},
        {"libc", str_or_null(p.os.libc)},
        {"libc_version", str_or_null(p.os.libc_version)}}},
      {"cgroup",
       {{"version", p.cgroup.version == 0 ? ojson(nullptr) : ojson(p.cgroup.version)},
        {"cpu_quota_cores", opt(p.cgroup.cpu_quota_cores)},
        {"cpuset_cpus", opt(p.cgroup.cpuset_cpus)},
        {"memory_limit_bytes", opt(p.cgroup.memory_limit_bytes)},
        {"memory_current_bytes", opt(p.cgroup.memory_current_bytes)}}},
      {"effective", {{"cpus", p.effective_cpus}, {"memory_bytes", p.effective_memory_bytes}}},
      {"nvidia", p.nvidia ? nvidia_json(*p.nvidia) : ojson(nullptr)},
      {"amd", p.amd ? amd_json(*p.amd) : ojson(nullptr)},
      {"ascend", p.ascend ? ascend_json(*p.ascend) : ojson(nullptr)},
      {"warnings", warnings},
  };
}

std::string to_text(const HardwareProfile& p) {
  std::ostringstream o;
  o << "vendor        " << p.vendor << "\n";
  if (p.vendor != "cpu") {
    o << "device        " << p.device_name << " (" << p.device_count << " visible device"
      << (p.device_count == 1 ? "" : "s") << ")\n";
    o << "memory        " << gib(p.vram_total_bytes) << "\n";
    if (!p.compute_capability.empty()) o << "capability    " << p.compute_capability << "\n";
    if (!p.driver_version.empty()) o << "driver        " << p.driver_version << "\n";
  }
  o << "cpu           " << (p.cpu.model_name.empty() ? "unknown" : p.cpu.model_name) << " ("
    << p.cpu.architecture << ")\n";
  o << "cores         " << p.cpu.physical_cores << " physical, " << p.cpu.logical_cores
    << " logical, " << p.cpu.numa_nodes << " NUMA node(s); effective " << p.effective_cpus << "\n";
  o << "ram           " << gib(p.cpu.memory_total_bytes) << " total, "
    << gib(p.cpu.memory_available_bytes) << " available; effective "
    << gib(p.effective_memory_bytes) << "\n";
  if (!p.os.name.empty() || !p.os.libc.empty())
    o << "os            " << (p.os.name.empty() ? "unknown" : p.os.name)
      << (p.os.libc.empty() ? "" : ", " + p.os.libc + " " + p.os.libc_version) << "\n";
  o << "isa           ";
  for (std::size_t i = 0; i < p.cpu.isa.size(); ++i) o << (i ? " " : "") << p.cpu.isa[i];
  o << "\n";
  if (p.cgroup.version) {
    o << "cgroup        v" << p.cgroup.version << ", cpu ";
    if (p.cgroup.cpu_quota_cores) o << *p.cgroup.cpu_quota_cores << " cores";
    else o << "unlimited";
    o << ", memory ";
    if (p.cgroup.memory_limit_bytes) o << gib(*p.cgroup.memory_limit_bytes);
    else o << "unlimited";
    o << "\n";
  }
  auto row = [&](const std::string& idx, const std::string& name, const std::string& mem,
                 const std::string& cap, const std::string& bus) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "  %-4s %-28s %-12s %-12s %s\n", idx.c_str(), name.c_str(),
                  mem.c_str(), cap.c_str(), bus.c_str());
    o << buf;
  };
  if (p.nvidia) {
    o << "\nNVIDIA (" << p.nvidia->source << ", driver " << p.nvidia->driver_version << ", CUDA "
      << p.nvidia->cuda_driver_version << ")\n";
    row("#", "name", "memory", "cc", "bus id");
    for (const auto& g : p.nvidia->gpus)
      row(std::to_string(g.index), g.name + (g.mig_enabled.value_or(false) ? " [MIG]" : ""),
          gib(g.vram_total_bytes), g.compute_capability, g.pci_bus_id);
  }
  if (p.amd) {
    o << "\nAMD (ROCm " << (p.amd->rocm_version.empty() ? "not installed" : p.amd->rocm_version)
      << ")\n";
    row("#", "name", "memory", "gfx", "bus id");
    for (const auto& g : p.amd->gpus)
      row(std::to_string(g.index), g.name, gib(g.vram_total_bytes), g.gfx_target, g.pci_bus_id);
  }
  if (p.ascend) {
    o << "\nAscend (driver " << p.ascend->driver_version << ", CANN " << p.ascend->cann_version
      << ")\n";
    row("#", "name", "memory", "soc", "bus id");
    for (const auto& n : p.ascend->npus)
      row(std::to_string(n.index), n.name + " " + n.health, gib(n.hbm_total_bytes),
          n.soc_version, n.pci_bus_id);
  }
  if (!p.warnings.empty()) {
    o << "\nwarnings\n";
    for (const auto& w : p.warnings) o << "  " << w.code << ": " << w.message << "\n";
  }
  return o.str();
}

Result<HardwareProfile> profile_from_json(const nlohmann::json& doc) {
  if (!doc.is_object()) return Error(Errc::BadInputSchema, "a hardware profile must be a JSON object");
  auto schema = doc.find("schema");
  if (schema == doc.end() || !schema->is_string() || *schema != kSchema)
    return Error(Errc::BadInputSchema,
                 std::string("expected \"schema\": \"") + kSchema + "\", found " +
                     (schema == doc.end() ? std::string("none") : schema->dump()));
  Reader r;
  HardwareProfile p;
  p.vendor = r.get<std::string>(doc, "vendor", "cpu");
  if (p.vendor != "cpu" && p.vendor != "nvidia" && p.vendor != "amd" && p.vendor != "ascend")
    return Error(Errc::BadInputSchema, "unknown vendor \"" + p.vendor +
                                           "\" (expected nvidia, amd, ascend or cpu)");
  p.device_name = r.get<std::string>(doc, "device_name");
  p.vram_total_bytes = r.get<std::uint64_t>(doc, "vram_total_bytes");
  p.compute_capability = r.get<std::string>(doc, "compute_capability");
  p.driver_version = r.get<std::string>(doc, "driver_version");
  p.device_count = r.get<int>(doc, "device_count");
  if (doc.contains("cpu")) {
    const auto& c = doc.at("cpu");
    p.cpu.vendor = r.get<std::string>(c, "vendor");
    p.cpu.model_name = r.get<std::string>(c, "model_name");
    p.cpu.architecture = r.get<std::string>(c, "architecture");
    p.cpu.isa = r.get<std::vector<std::string>>(c, "isa");
    p.cpu.isa_source = r.get<std::string>(c, "isa_source");
    p.cpu.physical_cores = r.get<int>(c, "physical_cores");
    p.cpu.logical_cores = r.get<int>(c, "logical_cores");
    p.cpu.sockets = r.get<int>(c, "sockets");
    p.cpu.numa_nodes = r.get<int>(c, "numa_nodes");
    p.cpu.memory_total_bytes = r.get<std::uint64_t>(c, "memory_total_bytes");
    p.cpu.memory_available_bytes = r.get<std::uint64_t>(c, "memory_available_bytes");
  }
  if (doc.contains("os")) {
    const auto& o = doc.at("os");
    p.os.name = r.get<std::string>(o, "name");
    p.os.id = r.get<std::string>(o, "id");
    p.os.version_id = r.get<std::string>(o, "version_id");
    p.os.kernel = r.get<std::string>(o, "kernel");
    p.os.libc = r.get<std::string>(o, "libc");
    p.os.libc_version = r.get<std::string>(o, "libc_version");
  }
  if (doc.contains("cgroup")) {
    const auto& c = doc.at("cgroup");
    p.cgroup.version = r.get<int>(c, "version");
    p.cgroup.cpu_quota_cores = r.get_opt<double>(c, "cpu_quota_cores");
    p.cgroup.cpuset_cpus = r.get_opt<int>(c, "cpuset_cpus");
    p.cgroup.memory_limit_bytes = r.get_opt<std::uint64_t>(c, "memory_limit_bytes");
    p.cgroup.memory_current_bytes = r.get_opt<std::uint64_t>(c, "memory_current_bytes");
  }
  if (doc.contains("effective")) {
    p.effective_cpus = r.get<int>(doc.at("effective"), "cpus");
    p.effective_memory_bytes = r.get<std::uint64_t>(doc.at("effective"), "memory_bytes");
  }
  if (doc.contains("nvidia") && doc.at("nvidia").is_object()) {
    const auto& n = doc.at("nvidia");
    NvidiaInfo info;
    info.source = r.get<std::string>(n, "source");
    info.driver_version = r.get<std::string>(n, "driver_version");
    info.cuda_driver_version = r.get<std::string>(n, "cuda_driver_version");
    info.total_gpus = r.get<int>(n, "total_gpus");
    for (const auto& g : r.arr(n, "gpus")) {
      NvidiaGpu x;
      x.index = r.get<int>(g, "index");
      x.name = r.get<std::string>(g, "name");
      x.uuid = r.get<std::string>(g, "uuid");
      x.pci_bus_id = r.get<std::string>(g, "pci_bus_id");
      x.vram_total_bytes = r.get<std::uint64_t>(g, "vram_total_bytes");
      x.vram_free_bytes = r.get_opt<std::uint64_t>(g, "vram_free_bytes");
      x.compute_capability = r.get<std::string>(g, "compute_capability");
      x.mig_enabled = r.get_opt<bool>(g, "mig_enabled");
      for (const auto& m : r.arr(g, "mig_devices"))
        x.mig_devices.push_back({r.get<std::string>(m, "uuid"), r.get<std::string>(m, "name"),
                                 r.get<std::uint64_t>(m, "vram_total_bytes")});
      info.gpus.push_back(std::move(x));
    }
    p.nvidia = std::move(info);
  }
  if (doc.contains("amd") && doc.at("amd").is_object()) {
    const auto& a = doc.at("amd");
    AmdInfo info;
    info.rocm_version = r.get<std::string>(a, "rocm_version");
    info.driver_version = r.get<std::string>(a, "driver_version");
    info.total_gpus = r.get<int>(a, "total_gpus");
    for (const auto& g : r.arr(a, "gpus")) {
      AmdGpu x;
      x.index = r.get<int>(g, "index");
      x.kfd_node = r.get<int>(g, "kfd_node");
      x.name = r.get<std::string>(g, "name");
      x.gfx_target = r.get<std::string>(g, "gfx_target");
      x.pci_bus_id = r.get<std::string>(g, "pci_bus_id");
      x.unique_id = r.get<std::string>(g, "unique_id");
      x.device_id = r.get<std::uint32_t>(g, "device_id");
      x.vram_total_bytes = r.get<std::uint64_t>(g, "vram_total_bytes");
      x.vram_used_bytes = r.get_opt<std::uint64_t>(g, "vram_used_bytes");
      x.compute_units = r.get<int>(g, "compute_units");
      x.simd_count = r.get<int>(g, "simd_count");
      info.gpus.push_back(std::move(x));
    }
    p.amd = std::move(info);
  }
  if (doc.contains("ascend") && doc.at("ascend").is_object()) {
    const auto& a = doc.at("ascend");
    AscendInfo info;
    info.driver_version = r.get<std::string>(a, "driver_version");
    info.firmware_version = r.get<std::string>(a, "firmware_version");
    info.cann_version = r.get<std::string>(a, "cann_version");
    info.npu_smi_version = r.get<std::string>(a, "npu_smi_version");
    info.total_npus = r.get<int>(a, "total_npus");
    for (const auto& n : r.arr(a, "npus")) {
      AscendNpu x;
      x.index = r.get<int>(n, "index");
      x.npu_id = r.get<int>(n, "npu_id");
      x.chip_id = r.get<int>(n, "chip_id");
      x.name = r.get<std::string>(n, "name");
      x.soc_version = r.get<std::string>(n, "soc_version");
      x.pci_bus_id = r.get<std::string>(n, "pci_bus_id");
      x.health = r.get<std::string>(n, "health");
      x.hbm_total_bytes = r.get<std::uint64_t>(n, "hbm_total_bytes");
      x.hbm_used_bytes = r.get_opt<std::uint64_t>(n, "hbm_used_bytes");
      x.device_node = r.get<std::string>(n, "device_node");
      info.npus.push_back(std::move(x));
    }
    p.ascend = std::move(info);
  }
  for (const auto& w : r.arr(doc, "warnings"))
    p.warnings.push_back({r.get<std::string>(w, "code"), r.get<std::string>(w, "message")});
  if (!r.error.empty()) return Error(Errc::BadInputSchema, "hardware profile: " + r.error);
  return p;
}

}  // namespace cyllm::detect

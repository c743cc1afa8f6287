#include "detect/nvml.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstring>

#include "detect/warnings.h"
#include "util/strings.h"

namespace cyllm::detect {
namespace {

// ---- The slice of the NVML C ABI we use, declared from its documented contract ---------
// nvmlReturn_t is a C enum: int-sized, 0 = success.
using NvmlReturn = int;
constexpr NvmlReturn kNvmlSuccess = 0;
constexpr NvmlReturn kNvmlNotSupported = 3;
constexpr NvmlReturn kNvmlNotFound = 6;

struct NvmlDeviceOpaque;                 // nvmlDevice_t is an opaque pointer
using NvmlDevice = NvmlDeviceOpaque*;

struct NvmlPciInfoV3 {                   // nvmlPciInfo_t as filled by nvmlDeviceGetPciInfo_v3
  char bus_id_legacy[16];                // "0000:07:00.0"
  unsigned int domain;
  unsigned int bus;
  unsigned int device;
  unsigned int pci_device_id;            // device << 16 | vendor
  unsigned int pci_subsystem_id;
  char bus_id[32];                       // "00000000:07:00.0"
};
static_assert(sizeof(NvmlPciInfoV3) == 68, "nvmlPciInfo_t layout");

struct NvmlMemoryV1 {                    // nvmlMemory_t, bytes
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
static_assert(sizeof(NvmlMemoryV1) == 24, "nvmlMemory_t layout");

// Buffer sizes NVML documents as sufficient (…_BUFFER_SIZE constants).
constexpr unsigned kDriverVersionBytes = 80;
constexpr unsigned kNameBytes = 96;
constexpr unsigned kUuidBytes = 96;
constexpr unsigned kMigModeEnabled = 1;

constexpr unsigned kMaxGpus = 256;       // more than any host has; a larger count is garbage
constexpr unsigned kMaxMigSlots = 16;    // NVML reports 7 on A100/H100

constexpr const char* kLibName = "libnvidia-ml.so.1";
constexpr const char* kRootLibPath = "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1";

struct NvmlApi {
  // required
  NvmlReturn (*init_v2)() = nullptr;
  NvmlReturn (*shutdown)() = nullptr;
  NvmlReturn (*device_get_count_v2)(unsigned int*) = nullptr;
  NvmlReturn (*device_get_handle_by_index_v2)(unsigned int, NvmlDevice*) = nullptr;
  // optional: a missing one leaves its field empty
  const char* (*error_string)(NvmlReturn) = nullptr;
  NvmlReturn (*system_get_driver_version)(char*, unsigned int) = nullptr;
  NvmlReturn (*system_get_cuda_driver_version_v2)(int*) = nullptr;
  NvmlReturn (*device_get_name)(NvmlDevice, char*, unsigned int) = nullptr;
  NvmlReturn (*device_get_uuid)(NvmlDevice, char*, unsigned int) = nullptr;
  NvmlReturn (*device_get_pci_info_v3)(NvmlDevice, NvmlPciInfoV3*) = nullptr;
  NvmlReturn (*device_get_memory_info)(NvmlDevice, NvmlMemoryV1*) = nullptr;
  NvmlReturn (*device_get_cuda_compute_capability)(NvmlDevice, int*, int*) = nullptr;
  NvmlReturn (*device_get_mig_mode)(NvmlDevice, unsigned int*, unsigned int*) = nullptr;
  NvmlReturn (*device_get_max_mig_device_count)(NvmlDevice, unsigned int*) = nullptr;
  NvmlReturn (*device_get_mig_device_handle_by_index)(NvmlDevice, unsigned int,
                                                      NvmlDevice*) = nullptr;
};

// dlclose on scope exit.
struct Library {
  void* handle = nullptr;
  Library() = default;
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;
  ~Library() {
    if (handle != nullptr) ::dlclose(handle);
  }
};

// nvmlShutdown on scope exit (declared after Library, so it runs before dlclose).
struct InitGuard {
  const NvmlApi* api = nullptr;
  InitGuard() = default;
  InitGuard(const InitGuard&) = delete;
  InitGuard& operator=(const InitGuard&) = delete;
  ~InitGuard() {
    if (api != nullptr) api->shutdown();
  }
};

// A NUL-bounded, printable copy of an untrusted C string of at most `cap` bytes.
std::string take_string(const char* s, std::size_t cap) {
  if (s == nullptr) return {};
  std::string out(s, ::strnlen(s, cap));
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
  return std::string(util::trim(out));
}

std::string describe(const NvmlApi& api, NvmlReturn rc) {
  std::string text = api.error_string ? take_string(api.error_string(rc), 200) : std::string();
  if (text.empty()) text = "unknown error";
  return util::quote(text) + " (NVML error " + std::to_string(rc) + ")";
}

class Prober {
 public:
  Prober(const NvmlApi& api, std::vector<Warning>& warnings) : api_(api), warnings_(warnings) {}

  void call_failed(std::string_view fn, std::string_view what, NvmlReturn rc) {
    add_warning(warnings_, Errc::NvmlCallFailed,
                std::string(fn) + "(" + std::string(what) + ") failed: " + describe(api_, rc));
  }

  // Fills a fixed-size string through `fn`; "" when the call fails (warned).
  template <class Fn>
  std::string get_string(Fn fn, NvmlDevice dev, unsigned cap, std::string_view fn_name,
                         std::string_view what) {
    if (fn == nullptr) return {};
    std::vector<char> buf(cap + 1, '\0');
    NvmlReturn rc = fn(dev, buf.data(), cap);
    buf[cap] = '\0';
    if (rc != kNvmlSuccess) {
      if (rc != kNvmlNotSupported) call_failed(fn_name, what, rc);
      return {};
    }
    return take_string(buf.data(), cap);
  }

  std::optional<NvmlMemoryV1> get_memory(NvmlDevice dev, std::string_view what) {
    if (api_.device_get_memory_info == nullptr) return std::nullopt;
    NvmlMemoryV1 mem{};
    NvmlReturn rc = api_.device_get_memory_info(dev, &mem);
    if (rc != kNvmlSuccess) {
      if (rc != kNvmlNotSupported) call_failed("nvmlDeviceGetMemoryInfo", what, rc);
      return std::nullopt;
    }
    return mem;
  }

  NvidiaGpu probe_gpu(unsigned index, NvmlDevice dev) {
    const std::string what = "GPU " + std::to_string(index);
    NvidiaGpu gpu;
    gpu.index = static_cast<int>(index);
    gpu.name = get_string(api_.device_get_name, dev, kNameBytes, "nvmlDeviceGetName", what);
    gpu.uuid = get_string(api_.device_get_uuid, dev, kUuidBytes, "nvmlDeviceGetUUID", what);

    if (api_.device_get_pci_info_v3 != nullptr) {
      NvmlPciInfoV3 pci{};
      NvmlReturn rc = api_.device_get_pci_info_v3(dev, &pci);
      if (rc == kNvmlSuccess) {
        gpu.pci_bus_id = take_string(pci.bus_id, sizeof pci.bus_id);
        if (gpu.pci_bus_id.empty()) {
          char buf[40];
          std::snprintf(buf, sizeof buf, "%08X:%02X:%02X.0", pci.domain & 0xffffffffu,
                        pci.bus & 0xffu, pci.device & 0xffu);
          gpu.pci_bus_id = buf;
        }
      } else {
        call_failed("nvmlDeviceGetPciInfo_v3", what, rc);
      }
    }

    if (auto mem = get_memory(dev, what)) {
      gpu.vram_total_bytes = mem->total;
      if (mem->free <= mem->total) gpu.vram_free_bytes = mem->free;
    }

    if (api_.device_get_cuda_compute_capability != nullptr) {
      int major = -1, minor = -1;
      NvmlReturn rc = api_.device_get_cuda_compute_capability(dev, &major, &minor);
      if (rc == kNvmlSuccess && major >= 0 && major < 100 && minor >= 0 && minor < 100) {
        gpu.compute_capability = std::to_string(major) + "." + std::to_string(minor);
      } else if (rc == kNvmlSuccess) {
        add_warning(warnings_, Errc::NvmlCallFailed,
                    "nvmlDeviceGetCudaComputeCapability(" + what + ") returned " +
                        std::to_string(major) + "." + std::to_string(minor));
      } else if (rc != kNvmlNotSupported) {
        call_failed("nvmlDeviceGetCudaComputeCapability", what, rc);
      }
    }

    if (api_.device_get_mig_mode != nullptr) {
      unsigned current = 0, pending = 0;
      NvmlReturn rc = api_.device_get_mig_mode(dev, &current, &pending);
      if (rc == kNvmlSuccess) {
        gpu.mig_enabled = current == kMigModeEnabled;
      } else if (rc != kNvmlNotSupported) {
        call_failed("nvmlDeviceGetMigMode", what, rc);
      }
    }
    if (gpu.mig_enabled == true) probe_mig(dev, what, gpu);
    return gpu;
  }

  void probe_mig(NvmlDevice dev, const std::string& what, NvidiaGpu& gpu) {
    if (api_.device_get_max_mig_device_count == nullptr ||
        api_.device_get_mig_device_handle_by_index == nullptr)
      return;
    unsigned max = 0;
    NvmlReturn rc = api_.device_get_max_mig_device_count(dev, &max);
    if (rc != kNvmlSuccess) {
      call_failed("nvmlDeviceGetMaxMigDeviceCount", what, rc);
      return;
    }
    if (max > kMaxMigSlots) max = kMaxMigSlots;
    for (unsigned slot = 0; slot < max; ++slot) {
      NvmlDevice mig = nullptr;
      rc = api_.device_get_mig_device_handle_by_index(dev, slot, &mig);
      if (rc == kNvmlNotFound) continue;  // an empty slot
      const std::string mig_what = what + " MIG " + std::to_string(slot);
      if (rc != kNvmlSuccess || mig == nullptr) {
        call_failed("nvmlDeviceGetMigDeviceHandleByIndex", mig_what, rc);
        continue;
      }
      MigDevice m;
      m.uuid = get_string(api_.device_get_uuid, mig, kUuidBytes, "nvmlDeviceGetUUID", mig_what);
      m.name = parse_mig_profile(
          get_string(api_.device_get_name, mig, kNameBytes, "nvmlDeviceGetName", mig_what));
      if (auto mem = get_memory(mig, mig_what)) m.vram_total_bytes = mem->total;
      gpu.mig_devices.push_back(std::move(m));
    }
  }

 private:
  const NvmlApi& api_;
  std::vector<Warning>& warnings_;
};

template <class F>
void bind(void* lib, F& fn, const char* name, std::vector<std::string>* missing) {
  fn = reinterpret_cast<F>(::dlsym(lib, name));
  if (fn == nullptr && missing != nullptr) missing->emplace_back(name);
}

}  // namespace

std::optional<std::string> format_cuda_driver_version(int version) {
  if (version <= 0 || version >= 1000000) return std::nullopt;
  return std::to_string(version / 1000) + "." + std::to_string((version % 1000) / 10);
}

std::string parse_mig_profile(std::string_view name) {
  auto words = util::split_ws(name);
  for (std::size_t i = 0; i + 1 < words.size(); ++i)
    if (words[i] == "MIG") return std::string(words[i + 1]);
  return {};
}

Result<std::optional<NvidiaInfo>> detect_nvml(const Context& ctx, std::vector<Warning>& warnings) {
  using Found = std::optional<NvidiaInfo>;
  // ---- find and load the library -------------------------------------------------------
  std::string path;
  Library lib;
  if (ctx.fs.is_host_root()) {
    path = kLibName;
  } else {
    if (!ctx.fs.exists(kRootLibPath)) return Found{};
    path = ctx.fs.host_path(kRootLibPath);
  }
  ::dlerror();
  lib.handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib.handle == nullptr) {
    const char* e = ::dlerror();
    std::string why = e ? take_string(e, 400) : "unknown dlopen error";
    if (ctx.fs.is_host_root() && why.find("No such file") != std::string::npos) return Found{};
    return Error(Errc::NvmlUnavailable, "cannot load " + util::quote(path, 200) + ": " + why);
  }

  NvmlApi api;
  std::vector<std::string> missing_required, missing_optional;
  bind(lib.handle, api.init_v2, "nvmlInit_v2", &missing_required);
  bind(lib.handle, api.shutdown, "nvmlShutdown", &missing_required);
  bind(lib.handle, api.device_get_count_v2, "nvmlDeviceGetCount_v2", &missing_required);
  bind(lib.handle, api.device_get_handle_by_index_v2, "nvmlDeviceGetHandleByIndex_v2",
       &missing_required);
  bind(lib.handle, api.error_string, "nvmlErrorString", &missing_optional);
  bind(lib.handle, api.system_get_driver_version, "nvmlSystemGetDriverVersion",
       &missing_optional);
  bind(lib.handle, api.system_get_cuda_driver_version_v2, "nvmlSystemGetCudaDriverVersion_v2",
       &missing_optional);
  bind(lib.handle, api.device_get_name, "nvmlDeviceGetName", &missing_optional);
  bind(lib.handle, api.device_get_uuid, "nvmlDeviceGetUUID", &missing_optional);
  bind(lib.handle, api.device_get_pci_info_v3, "nvmlDeviceGetPciInfo_v3", &missing_optional);
  bind(lib.handle, api.device_get_memory_info, "nvmlDeviceGetMemoryInfo", &missing_optional);
  bind(lib.handle, api.device_get_cuda_compute_capability, "nvmlDeviceGetCudaComputeCapability",
       &missing_optional);
  bind(lib.handle, api.device_get_mig_mode, "nvmlDeviceGetMigMode", &missing_optional);
  bind(lib.handle, api.device_get_max_mig_device_count, "nvmlDeviceGetMaxMigDeviceCount",
       &missing_optional);
  bind(lib.handle, api.device_get_mig_device_handle_by_index,
       "nvmlDeviceGetMigDeviceHandleByIndex", &missing_optional);
  auto joined = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& n : v) s += (s.empty() ? "" : ", ") + n;
    return s;
  };
  if (!missing_required.empty())
    return Error(Errc::NvmlUnavailable,
                 util::quote(path, 200) + " lacks " + joined(missing_required));

  // ---- initialise ----------------------------------------------------------------------
  const std::string while_what = "initialising NVML from " + path;
  NvmlReturn rc = api.init_v2();
  if (rc != kNvmlSuccess)
    return Error(Errc::NvmlUnavailable, "nvmlInit_v2 failed: " + describe(api, rc))
        .with_context(while_what);
  InitGuard guard;
  guard.api = &api;
  if (!missing_optional.empty())
    add_warning(warnings, Errc::NvmlCallFailed,
                util::quote(path, 200) + " lacks " + joined(missing_optional) +
                    "; the fields they provide stay empty");

  NvidiaInfo info;
  info.source = "nvml";
  if (api.system_get_driver_version != nullptr) {
    char buf[kDriverVersionBytes + 1] = {};
    rc = api.system_get_driver_version(buf, kDriverVersionBytes);
    buf[kDriverVersionBytes] = '\0';
    if (rc == kNvmlSuccess)
      info.driver_version = take_string(buf, kDriverVersionBytes);
    else
      add_warning(warnings, Errc::NvmlCallFailed,
                  "nvmlSystemGetDriverVersion failed: " + describe(api, rc));
  }
  if (api.system_get_cuda_driver_version_v2 != nullptr) {
    int v = 0;
    rc = api.system_get_cuda_driver_version_v2(&v);
    if (rc != kNvmlSuccess) {
      add_warning(warnings, Errc::NvmlCallFailed,
                  "nvmlSystemGetCudaDriverVersion_v2 failed: " + describe(api, rc));
    } else if (auto s = format_cuda_driver_version(v)) {
      info.cuda_driver_version = *s;
    } else {
      add_warning(warnings, Errc::NvmlCallFailed,
                  "nvmlSystemGetCudaDriverVersion_v2 returned " + std::to_string(v));
    }
  }

  unsigned count = 0;
  rc = api.device_get_count_v2(&count);
  if (rc != kNvmlSuccess)
    return Error(Errc::NvmlCallFailed, "nvmlDeviceGetCount_v2 failed: " + describe(api, rc))
        .with_context(while_what);
  if (count > kMaxGpus) {
    add_warning(warnings, Errc::NvmlCallFailed,
                "nvmlDeviceGetCount_v2 reported " + std::to_string(count) +
                    " GPUs; only the first " + std::to_string(kMaxGpus) + " are probed");
    count = kMaxGpus;
  }
  info.total_gpus = static_cast<int>(count);

  Prober prober(api, warnings);
  for (unsigned i = 0; i < count; ++i) {
    NvmlDevice dev = nullptr;
    rc = api.device_get_handle_by_index_v2(i, &dev);
    if (rc != kNvmlSuccess || dev == nullptr) {
      prober.call_failed("nvmlDeviceGetHandleByIndex_v2", "GPU " + std::to_string(i), rc);
      continue;
    }
    info.gpus.push_back(prober.probe_gpu(i, dev));
  }
  ctx.log.log(LogLevel::Debug, "nvml probed",
              {{"library", path}, {"gpus", std::to_string(info.gpus.size())}});
  return Found{std::move(info)};
}

}  // namespace cyllm::detect

// detect_amd: AMD GPUs from the KFD topology in sysfs, ROCm and amdgpu versions, and the
// HIP_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES filter. No tool is run: sysfs has it all.
//
// Sources, all optional except the KFD nodes directory:
//   /sys/class/kfd/kfd/topology/nodes/<N>/...   see amd_kfd.h
//   /sys/class/drm/renderD<minor>/device/product_name   marketing name (FRU), newer kernels
//   /opt/rocm/.info/version                      "7.0.2" or "6.2.4-120"
//   /sys/module/amdgpu/version                   "6.10.5"; absent with the in-box driver
//
// Name of a GPU, first that is known: product_name, a small table of PCI device ids, the
// node's `name` file when meaningful, the gfx target, "AMD GPU 0x<device id>".
#include <algorithm>
#include <cstdio>

#include "cyllm/detect.h"
#include "detect/amd_kfd.h"
#include "detect/visible_devices.h"
#include "detect/warnings.h"
#include "util/strings.h"

namespace cyllm::detect {
namespace {

constexpr std::size_t kMaxSysfsBytes = 64 * 1024;

// Numeric entries of a directory, sorted numerically ("10" after "9"); others ignored.
std::vector<int> numeric_entries(const std::vector<std::string>& names) {
  std::vector<int> ids;
  for (const auto& name : names) {
    if (name.empty() || name.size() > 6) continue;
    if (!std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    if (auto v = util::parse_u64(name)) ids.push_back(static_cast<int>(*v));
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

// Reads a small sysfs file. Missing files give nullopt silently; other failures give
// nullopt and a detect.bad_sysfs warning.
std::optional<std::string> read_optional(const Context& ctx, const std::string& path,
                                         std::vector<Warning>& warnings) {
  auto text = ctx.fs.read_file(path, kMaxSysfsBytes);
  if (text) return std::move(text).value();
  if (text.error().code() != Errc::NotFound)
    add_warning(warnings, Errc::BadSysfs, text.error().message());
  return std::nullopt;
}

// A one-line version or name: trimmed, printable ASCII, at most 128 bytes. Anything else
// is warned about and dropped.
std::string read_short_text(const Context& ctx, const std::string& path,
                            std::vector<Warning>& warnings) {
  auto text = read_optional(ctx, path, warnings);
  if (!text) return {};
  std::string_view line = util::trim(*text);
  bool printable = line.size() <= 128;
  for (char c : line) printable = printable && c >= 0x20 && c < 0x7f;
  if (!printable) {
    add_warning(warnings, Errc::BadSysfs,
                util::quote(path) + ": " + util::quote(line) + " is not a one-line text");
    return {};
  }
  return std::string(line);
}

struct Vram {
  std::uint64_t total_bytes = 0;  // frame-buffer banks only; 0 when there are none
  std::optional<std::uint64_t> used_bytes;
};

// Sums the frame-buffer memory banks of a node. A bad bank is warned about and skipped;
// used memory is reported only when every frame-buffer bank has a readable used_memory.
Vram read_vram(const Context& ctx, const std::string& node_dir,
               std::vector<Warning>& warnings) {
  Vram vram;
  const std::string banks_dir = node_dir + "/mem_banks";
  auto names = ctx.fs.list_dir(banks_dir);
  if (!names) {
    if (names.error().code() != Errc::NotFound)
      add_warning(warnings, Errc::BadSysfs, names.error().message());
    return vram;
  }
  std::uint64_t used = 0;
  bool used_known = true;
  int n_fb = 0;
  for (int bank_id : numeric_entries(*names)) {
    const std::string bank_dir = banks_dir + "/" + std::to_string(bank_id);
    const std::string props_path = bank_dir + "/properties";
    auto text = read_optional(ctx, props_path, warnings);
    if (!text) continue;
    auto bank = kfd::parse_mem_bank(*text, props_path);
    if (!bank) {
      add_warning(warnings, Errc::BadSysfs, bank.error().message() + "; memory bank skipped");
      used_known = false;
      continue;
    }
    if (!bank->is_frame_buffer()) continue;
    ++n_fb;
    if (vram.total_bytes > ~std::uint64_t{0} - bank->size_in_bytes) {
      add_warning(warnings, Errc::BadSysfs,
                  util::quote(props_path) + ": size_in_bytes " +
                      std::to_string(bank->size_in_bytes) + " overflows the VRAM total");
      return Vram{};
    }
    vram.total_bytes += bank->size_in_bytes;
    const std::string used_path = bank_dir + "/used_memory";
    auto used_text = read_optional(ctx, used_path, warnings);
    if (!used_text) {
      used_known = false;
      continue;
    }
    auto bank_used = kfd::parse_used_memory(*used_text, used_path);
    if (!bank_used) {
      add_warning(warnings, bank_used.error());
      used_known = false;
      continue;
    }
    used += std::min(*bank_used, bank->size_in_bytes);
  }
  if (n_fb > 0 && used_known) vram.used_bytes = used;
  return vram;
}

// Builds one AmdGpu from a parsed GPU node; warnings for what it cannot know.
AmdGpu make_gpu(const Context& ctx, int index, int node_id, const std::string& node_dir,
                const kfd::Node& node, std::vector<Warning>& warnings) {
  AmdGpu gpu;
  gpu.index = index;
  gpu.kfd_node = node_id;
  gpu.device_id = node.device_id;
  gpu.simd_count = static_cast<int>(node.simd_count);
  gpu.pci_bus_id = kfd::pci_bus_id(node.domain, node.location_id);
  if (node.unique_id) gpu.unique_id = kfd::unique_id_hex(*node.unique_id);

  if (node.simd_per_cu > 0) {
    gpu.compute_units = static_cast<int>(node.simd_count / node.simd_per_cu);
  } else {
    add_warning(warnings, Errc::BadSysfs,
                util::quote(node_dir + "/properties") +
                    ": simd_per_cu is 0; compute units unknown");
  }

  char dev_hex[16];
  std::snprintf(dev_hex, sizeof dev_hex, "0x%04x", node.device_id);
  if (auto gfx = kfd::gfx_target_from_version(node.gfx_target_version)) {
    gpu.gfx_target = *gfx;
  } else {
    std::string msg = util::quote(node_dir + "/properties") + ": ";
    msg += node.gfx_target_version == 0
               ? std::string("no gfx_target_version (older kernel)")
               : "gfx_target_version " + std::to_string(node.gfx_target_version) +
                     " does not decode to a gfx target";
    if (auto from_table = kfd::gfx_target_from_device_id(node.device_id)) {
      gpu.gfx_target = *from_table;
      msg += "; " + gpu.gfx_target + " taken from a table of PCI device ids (device " +
             dev_hex + ")";
    } else {
      msg += "; gfx target unknown for PCI device " + std::string(dev_hex);
    }
    add_warning(warnings, Errc::BadSysfs, std::move(msg));
  }

  const Vram vram = read_vram(ctx, node_dir, warnings);
  if (vram.total_bytes > 0) {
    gpu.vram_total_bytes = vram.total_bytes;
    gpu.vram_used_bytes = vram.used_bytes;
  } else {
    gpu.vram_total_bytes = node.local_mem_size;
  }

  if (node.drm_render_minor > 0)
    gpu.name = read_short_text(ctx,
                               "/sys/class/drm/renderD" + std::to_string(node.drm_render_minor) +
                                   "/device/product_name",
                               warnings);
  if (gpu.name.empty())
    if (auto marketing = kfd::marketing_name_from_device_id(node.device_id))
      gpu.name = *marketing;
  if (gpu.name.empty()) {
    std::string kernel_name = read_short_text(ctx, node_dir + "/name", warnings);
    if (kfd::is_meaningful_name(kernel_name)) gpu.name = kernel_name;
  }
  if (gpu.name.empty()) gpu.name = gpu.gfx_target;
  if (gpu.name.empty()) gpu.name = "AMD GPU " + std::string(dev_hex);
  return gpu;
}

// Applies one *_VISIBLE_DEVICES variable to `order` (indices into `all`, in runtime
// order). Entries are positions in the current order or "GPU-<unique id>" prefixes.
void apply_visible(const std::optional<std::string>& spec, std::string_view var_name,
                   const std::vector<AmdGpu>& all, std::vector<int>& order,
                   std::vector<Warning>& warnings) {
  if (!spec) return;
  std::vector<VisibleCandidate> candidates;
  for (std::size_t pos = 0; pos < order.size(); ++pos) {
    const AmdGpu& gpu = all[static_cast<std::size_t>(order[pos])];
    candidates.push_back(
        {static_cast<int>(pos), gpu.unique_id.empty() ? "" : "GPU-" + gpu.unique_id, {}});
  }
  std::vector<int> next;
  for (int pos : select_visible(*spec, candidates, warnings, var_name))
    next.push_back(order[static_cast<std::size_t>(pos)]);
  order = std::move(next);
}

}  // namespace

std::optional<AmdInfo> detect_amd(const Context& ctx, const DetectOptions& options,
                                  std::vector<Warning>& warnings) {
  const std::string nodes_dir(kfd::kNodesDir);
  if (!ctx.fs.is_directory(nodes_dir)) return std::nullopt;  // no amdgpu/KFD driver
  auto names = ctx.fs.list_dir(nodes_dir);
  if (!names) {
    add_warning(warnings, Errc::BadSysfs, names.error().message());
    return std::nullopt;
  }

  std::vector<AmdGpu> all;
  bool any_node_failed = false;
  for (int node_id : numeric_entries(*names)) {
    if (ctx.cancelled()) break;
    const std::string node_dir = nodes_dir + "/" + std::to_string(node_id);
    const std::string props_path = node_dir + "/properties";
    auto text = ctx.fs.read_file(props_path, kMaxSysfsBytes);
    if (!text) {
      add_warning(warnings, Errc::BadSysfs,
                  text.error().message() + "; KFD node " + std::to_string(node_id) +
                      " skipped");
      any_node_failed = true;
      continue;
    }
    auto node = kfd::parse_node_text(*text, props_path);
    if (!node) {
      add_warning(warnings, Errc::BadSysfs,
                  node.error().message() + "; KFD node " + std::to_string(node_id) +
                      " skipped");
      any_node_failed = true;
      continue;
    }
    if (!node->is_gpu()) continue;
    all.push_back(
        make_gpu(ctx, static_cast<int>(all.size()), node_id, node_dir, *node, warnings));
  }
  // A node we could not read may have been a GPU: then the driver is there and the
  // caller should see an (empty) AmdInfo with the warning rather than "no AMD".
  if (all.empty() && !any_node_failed) return std::nullopt;

  AmdInfo info;
  info.rocm_version = read_short_text(ctx, "/opt/rocm/.info/version", warnings);
  info.driver_version = read_short_text(ctx, "/sys/module/amdgpu/version", warnings);
  info.total_gpus = static_cast<int>(all.size());

  // ROCr applies ROCR_VISIBLE_DEVICES to the agents it enumerates; HIP then numbers what
  // is left and applies HIP_VISIBLE_DEVICES to those numbers.
  std::vector<int> order;
  for (std::size_t i = 0; i < all.size(); ++i) order.push_back(static_cast<int>(i));
  apply_visible(options.rocr_visible_devices, "ROCR_VISIBLE_DEVICES", all, order, warnings);
  apply_visible(options.hip_visible_devices, "HIP_VISIBLE_DEVICES", all, order, warnings);
  for (int i : order) info.gpus.push_back(all[static_cast<std::size_t>(i)]);
  return info;
}

}  // namespace cyllm::detect

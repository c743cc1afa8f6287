// The AMD KFD (Kernel Fusion Driver) topology in sysfs, as pure parsers.
//
// Layout (one directory per HSA agent; CPU sockets and GPUs, CPUs first):
//   /sys/class/kfd/kfd/topology/nodes/<N>/name                  "ip discovery", "vega10", ""
//   /sys/class/kfd/kfd/topology/nodes/<N>/properties            "key value" lines
//   /sys/class/kfd/kfd/topology/nodes/<N>/mem_banks/<M>/properties   "key value" lines
//   /sys/class/kfd/kfd/topology/nodes/<N>/mem_banks/<M>/used_memory  bytes, newer kernels
//
// A properties file is one "key value\n" line per property, the value an unsigned decimal
// (the kernel prints %u / %llu; unique_id and hive_id use the full u64 range):
//   cpu_cores_count 0
//   simd_count 1216            GPU nodes have simd_count > 0, CPU nodes 0
//   simd_per_cu 4
//   gfx_target_version 90402   major*10000 + minor*100 + stepping; absent on old kernels
//   vendor_id 4098             0x1002
//   device_id 29857            PCI device id, 0x74a1
//   location_id 9728           PCI bus<<8 | device<<3 | function
//   domain 0                   PCI domain; absent on old kernels
//   drm_render_minor 136       /dev/dri/renderD136
//   local_mem_size 206141652992
//   unique_id 10165846890312063442
// The kernel ends every line with '\n', so a last line without one means the file was cut
// off; it is rejected rather than trusted (a cut "simd_count 1216" would read as 12).
//
// mem_banks/<M>/properties has heap_type (0 system, 1 public frame buffer, 2 private frame
// buffer) and size_in_bytes; used_memory is a single decimal.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "cyllm/error.h"

namespace cyllm::detect::kfd {

inline constexpr std::string_view kNodesDir = "/sys/class/kfd/kfd/topology/nodes";

// Parsed "key value" lines. Lookup by string_view.
using Properties = std::map<std::string, std::uint64_t, std::less<>>;

// Parses a properties file. `source` names the file in error messages. Fails with
// Errc::BadSysfs, quoting the line and its number, on: a line without a value, a key that
// is not [a-z0-9_], a value that is not an unsigned decimal or overflows u64, a duplicate
// key, a last line without '\n' (truncated file), more than kMaxProperties lines.
inline constexpr std::size_t kMaxProperties = 1024;
Result<Properties> parse_properties(std::string_view text, std::string_view source);

// The fields of one topology node that detection uses.
struct Node {
  std::uint64_t simd_count = 0;          // 0 on CPU nodes
  std::uint64_t simd_per_cu = 0;
  std::uint64_t gfx_target_version = 0;  // 0 when absent (old kernel) or unknown
  std::uint32_t vendor_id = 0;
  std::uint32_t device_id = 0;
  std::uint32_t location_id = 0;
  std::uint32_t domain = 0;
  std::uint32_t drm_render_minor = 0;
  std::uint64_t local_mem_size = 0;
  std::optional<std::uint64_t> unique_id;  // absent on some kernels; 0 means "none" too

  bool is_gpu() const { return simd_count > 0; }
};

// Interprets parsed properties. Needs simd_count on every node; GPU nodes also need
// simd_per_cu, device_id and location_id. Fails with Errc::BadSysfs naming `source` and
// the key when one is missing or out of range (ids wider than their PCI fields, a
// simd_count above 1<<20).
Result<Node> parse_node(const Properties& props, std::string_view source);

// Convenience: parse_properties then parse_node.
Result<Node> parse_node_text(std::string_view text, std::string_view source);

struct MemBank {
  std::uint64_t heap_type = 0;
  std::uint64_t size_in_bytes = 0;
  bool is_frame_buffer() const { return heap_type == 1 || heap_type == 2; }
};
// Needs heap_type and size_in_bytes. Errc::BadSysfs otherwise.
Result<MemBank> parse_mem_bank(std::string_view text, std::string_view source);

// A used_memory file: one decimal and a newline. Errc::BadSysfs otherwise.
Result<std::uint64_t> parse_used_memory(std::string_view text, std::string_view source);

// 90402 -> "gfx942", 90010 -> "gfx90a", 110001 -> "gfx1101", 100300 -> "gfx1030":
// "gfx" + decimal major + hex minor + hex stepping, with major = v/10000,
// minor = (v/100)%100, stepping = v%100. nullopt for 0, a major of 0 or above 99, or a
// minor/stepping above 15 (not one hex digit, so the name would be ambiguous).
std::optional<std::string> gfx_target_from_version(std::uint64_t version);

// Table lookup for kernels that do not report gfx_target_version: a handful of
// well-known PCI device ids (Vega 10 0x6860.. -> gfx900, Vega 20 -> gfx906, MI100 ->
// gfx908, MI200 -> gfx90a, MI300 -> gfx942). nullopt when the id is not in the table.
std::optional<std::string> gfx_target_from_device_id(std::uint32_t device_id);

// Table lookup of the marketing name of a few data-centre parts by PCI device id
// (0x74a1 -> "AMD Instinct MI300X", as rocm-smi prints it). nullopt when unknown.
std::optional<std::string> marketing_name_from_device_id(std::uint32_t device_id);

// PCI address from KFD's domain and location_id: bus = loc>>8, device = (loc>>3)&0x1f,
// function = loc&7, lowercase hex: (0, 9728) -> "0000:26:00.0".
std::string pci_bus_id(std::uint32_t domain, std::uint32_t location_id);

// unique_id as 16 lowercase hex digits (zero-padded, no "0x"), the form ROCr uses in
// "GPU-<hex>" UUIDs: 10165846890312063442 -> "8d1457e2c20f59d2", 255 -> "00000000000000ff".
std::string unique_id_hex(std::uint64_t unique_id);

// Whether a node's `name` file says something about the part ("vega10") rather than
// being empty or the generic "ip discovery" that newer kernels print.
bool is_meaningful_name(std::string_view name);

}  // namespace cyllm::detect::kfd

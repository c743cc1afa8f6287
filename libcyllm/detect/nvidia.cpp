// detect_nvidia: NVIDIA GPUs from NVML, else nvidia-smi, else just the kernel driver's
// version from /proc/driver/nvidia/version.
//
// Order and fallbacks:
//   1. NVML (options.use_nvml): richest and fastest; MIG slices with memory.
//   2. nvidia-smi, each run under options.tool_timeout:
//        --query-gpu=...            the GPU table (retried without compute_cap on 470.x)
//        (no arguments)             the banner, for the CUDA driver version
//        -L                         only when a GPU is in MIG mode: slice UUIDs/profiles
//      After a timeout nvidia-smi is not run again (a hung tool hangs again).
//   3. /proc/driver/nvidia/version: the driver version when 1 and 2 did not give one.
// CUDA_VISIBLE_DEVICES is applied last, by index or UUID (prefix); a MIG UUID keeps its
// parent GPU with only the named slices.
#include <utility>

#include "cyllm/detect.h"
#include "detect/nvidia_smi.h"
#include "detect/nvml.h"
#include "detect/visible_devices.h"
#include "detect/warnings.h"
#include "util/strings.h"

namespace cyllm::detect {
namespace {

constexpr const char* kProcVersion = "/proc/driver/nvidia/version";

class SmiRunner {
 public:
  SmiRunner(const Context& ctx, const DetectOptions& options, std::string tool,
            std::vector<Warning>& warnings)
      : ctx_(ctx), options_(options), tool_(std::move(tool)), warnings_(warnings) {}

  // Runs nvidia-smi with `args`. nullopt after a spawn failure or timeout (warned, and
  // every later call is skipped) or when cancelled.
  std::optional<CommandOutput> run(std::vector<std::string> args, std::string_view why) {
    if (dead_ || ctx_.cancelled()) return std::nullopt;
    args.insert(args.begin(), tool_);
    auto r = ctx_.runner.run(args, options_.tool_timeout);
    if (!r.ok()) {
      dead_ = true;
      add_warning(warnings_, Error(std::move(r).error()).with_context(std::string(why)));
      return std::nullopt;
    }
    return std::move(r).value();
  }

  void warn_exit(const CommandOutput& o, std::string_view why) {
    add_warning(warnings_, Errc::ToolFailed,
                "nvidia-smi exited with code " + std::to_string(o.exit_code) + ": " +
                    util::quote(smi_failure_message(o.out, o.err), 200) + " (while " +
                    std::string(why) + ")");
  }

 private:
  const Context& ctx_;
  const DetectOptions& options_;
  std::string tool_;
  std::vector<Warning>& warnings_;
  bool dead_ = false;
};

std::optional<NvidiaInfo> detect_with_smi(const Context& ctx, const DetectOptions& options,
                                          const std::string& tool,
                                          std::vector<Warning>& warnings) {
  SmiRunner smi(ctx, options, tool, warnings);
  const std::string kFormat = "--format=csv,noheader,nounits";
  const std::string_view kWhy = "listing NVIDIA GPUs with nvidia-smi";

  // ---- the GPU table ---------------------------------------------------------------------
  bool with_cc = true;
  auto o = smi.run({"--query-gpu=" + std::string(kNvidiaSmiQueryFields), kFormat}, kWhy);
  if (!o) return std::nullopt;
  if (o->exit_code != 0 && parse_smi_invalid_field(o->out + "\n" + o->err) == "compute_cap") {
    with_cc = false;  // 470.x and older
    o = smi.run({"--query-gpu=" + std::string(kNvidiaSmiQueryFieldsNoCc), kFormat}, kWhy);
    if (!o) return std::nullopt;
  }
  NvidiaInfo info;
  info.source = "nvidia-smi";
  if (o->exit_code != 0) {
    // "No devices were found" is a state, not a failure: a driver without GPUs.
    if (util::starts_with(smi_failure_message(o->out, o->err), "No devices were found"))
      return info;
    smi.warn_exit(*o, kWhy);
    return std::nullopt;
  }
  auto table = parse_smi_query_gpu(o->out, with_cc);
  if (!table.ok()) {
    add_warning(warnings, Error(std::move(table).error()).with_context(std::string(kWhy)));
    return std::nullopt;
  }
  info.gpus = std::move(table->gpus);
  info.driver_version = std::move(table->driver_version);
  info.total_gpus = static_cast<int>(info.gpus.size());

  // ---- CUDA driver version from the banner ------------------------------------------------
  const std::string_view kWhyCuda = "reading the CUDA version from nvidia-smi";
  if (auto b = smi.run({}, kWhyCuda)) {
    if (b->exit_code != 0) {
      smi.warn_exit(*b, kWhyCuda);
    } else if (auto cuda = parse_smi_cuda_version(b->out); cuda.ok()) {
      info.cuda_driver_version = *cuda;
    } else {
      add_warning(warnings, Error(std::move(cuda).error()).with_context(std::string(kWhyCuda)));
    }
  }

  // ---- MIG slices --------------------------------------------------------------------------
  bool any_mig = false;
  for (const auto& g : info.gpus) any_mig = any_mig || g.mig_enabled == true;
  const std::string_view kWhyMig = "listing MIG devices with nvidia-smi -L";
  if (any_mig) {
    if (auto l = smi.run({"-L"}, kWhyMig)) {
      if (l->exit_code != 0) {
        smi.warn_exit(*l, kWhyMig);
      } else if (auto listed = parse_smi_list(l->out); !listed.ok()) {
        add_warning(warnings, Error(std::move(listed).error()).with_context(std::string(kWhyMig)));
      } else {
        for (auto& g : info.gpus) {
          if (g.mig_enabled != true) continue;
          for (auto& lg : *listed)
            if (g.uuid.empty() ? lg.index == g.index : lg.uuid == g.uuid)
              g.mig_devices = std::move(lg.mig_devices);
        }
      }
    }
  }
  return info;
}

// Keeps the GPUs (and MIG slices) CUDA_VISIBLE_DEVICES names, in its order.
void apply_visible_devices(NvidiaInfo& info, std::string_view spec,
                           std::vector<Warning>& warnings) {
  std::vector<VisibleCandidate> candidates;
  for (const auto& g : info.gpus) {
    VisibleCandidate c{g.index, g.uuid, {}};
    for (const auto& m : g.mig_devices) c.sub_uuids.push_back(m.uuid);
    candidates.push_back(std::move(c));
  }
  auto matches = select_visible_devices(spec, candidates, warnings, "CUDA_VISIBLE_DEVICES");
  std::vector<NvidiaGpu> kept;
  std::vector<bool> whole;  // kept[i] was named as a whole GPU
  for (const auto& m : matches) {
    const NvidiaGpu* src = nullptr;
    for (const auto& g : info.gpus)
      if (g.index == m.index) src = &g;
    if (src == nullptr) continue;
    std::size_t at = kept.size();
    for (std::size_t i = 0; i < kept.size(); ++i)
      if (kept[i].index == m.index) at = i;
    if (at == kept.size()) {
      kept.push_back(*src);
      whole.push_back(m.sub_uuid.empty());
      if (!m.sub_uuid.empty()) kept.back().mig_devices.clear();
    } else if (m.sub_uuid.empty()) {
      kept[at] = *src;
      whole[at] = true;
    }
    if (!m.sub_uuid.empty() && !whole[at])
      for (const auto& mig : src->mig_devices)
        if (mig.uuid == m.sub_uuid) kept[at].mig_devices.push_back(mig);
  }
  info.gpus = std::move(kept);
}

}  // namespace

std::optional<NvidiaInfo> detect_nvidia(const Context& ctx, const DetectOptions& options,
                                        std::vector<Warning>& warnings) {
  std::optional<NvidiaInfo> info;
  bool nvml_found = false, smi_found = false;

  if (options.use_nvml) {
    auto r = detect_nvml(ctx, warnings);
    if (!r.ok()) {
      nvml_found = true;
      add_warning(warnings, Error(std::move(r).error()).with_context("detecting NVIDIA GPUs"));
    } else if (r->has_value()) {
      nvml_found = true;
      info = std::move(*r).value();
    }
  }
  if (!info && !ctx.cancelled()) {
    if (auto tool = find_tool(ctx, options, "nvidia-smi")) {
      smi_found = true;
      info = detect_with_smi(ctx, options, *tool, warnings);
    }
  }

  // The kernel module's version fills in when neither source gave a driver version.
  bool procfs_found = false;
  if (!info || info->driver_version.empty()) {
    auto text = ctx.fs.read_file(kProcVersion, 64 * 1024);
    if (text.ok()) {
      procfs_found = true;
      auto v = parse_proc_driver_version(*text);
      if (!v.ok()) {
        add_warning(warnings, v.error());
      } else if (info) {
        info->driver_version = *v;
      } else {
        info = NvidiaInfo{};
        info->source = "procfs";
        info->driver_version = *v;
        if (!nvml_found && !smi_found)
          add_warning(warnings, Errc::NvmlUnavailable,
                      "the NVIDIA kernel driver " + *v + " is loaded (" + kProcVersion +
                          ") but neither libnvidia-ml.so.1 nor nvidia-smi was found to list "
                          "its GPUs");
      }
    } else if (text.error().code() != Errc::NotFound) {
      procfs_found = true;
      add_warning(warnings, Error(text.error()).with_context("detecting NVIDIA GPUs"));
    }
  }
  if (!info) {
    if (!nvml_found && !smi_found && !procfs_found) return std::nullopt;  // no NVIDIA here
    info = NvidiaInfo{};
    info->source = smi_found ? "nvidia-smi" : nvml_found ? "nvml" : "procfs";
  }

  if (options.cuda_visible_devices && !info->gpus.empty())
    apply_visible_devices(*info, *options.cuda_visible_devices, warnings);
  else if (options.cuda_visible_devices && util::trim(*options.cuda_visible_devices).empty())
    info->gpus.clear();
  return info;
}

}  // namespace cyllm::detect

// cy-llm-detect: prints the HardwareProfile of this host (or of a fixture root) as JSON.
#include <cstdio>
#include <iostream>

#include "common/cli.h"
#include "cyllm/detect.h"

using namespace cyllm;

int main(int argc, char** argv) {
  cli::ToolEnv env("cy-llm-detect");
  return cli::guarded_main(env, [&]() -> int {
    CLI::App app{
        "Detect accelerators (NVIDIA, AMD, Huawei Ascend), the CPU, memory and cgroup limits\n"
        "of this host and print a HardwareProfile (schema cy-llm.detect/v1) on stdout.\n"
        "Problems with a source (a hanging vendor tool, a garbled sysfs file) become entries\n"
        "in \"warnings\"; detection itself does not fail.",
        "cy-llm-detect"};
    cli::CommonOptions common;
    std::string root = "/";
    int timeout_ms = 5000;
    bool no_nvml = false;
    cli::add_common_flags(app, common, "cy-llm-detect");
    app.add_option("--root", root,
                   "Read every file (/proc, /sys, /dev, vendor install dirs) and run every vendor "
                   "tool from under DIR instead of / (for fixtures and chroots)")
        ->option_text("DIR")
        ->check(CLI::ExistingDirectory);
    app.add_option("--tool-timeout", timeout_ms,
                   "Milliseconds to wait for each vendor tool (nvidia-smi, npu-smi) before "
                   "killing it and reporting a warning")
        ->option_text("MS")
        ->check(CLI::Range(1, 600000));
    app.add_flag("--no-nvml", no_nvml,
                 "Do not load libnvidia-ml; ask nvidia-smi (slower) instead");
    app.footer(
        "Environment: CUDA_VISIBLE_DEVICES, HIP_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES and\n"
        "ASCEND_RT_VISIBLE_DEVICES limit the devices reported, as they limit the runtimes.\n"
        "Exit status: 0 ok, 1 input/environment, 2 usage, 3 internal, 130 interrupted.\n"
        "See cy-llm-detect(1).");
    if (auto rc = cli::parse_or_exit(app, argc, argv)) return *rc;
    env.configure(common);
    env.install_signal_handlers();

    RootedFilesystem fs(root);
    PosixCommandRunner runner;
    SystemClock clock;
    Context ctx{fs, runner, clock, env.logger(), env.cancel_flag()};

    detect::DetectOptions options;
    options.cuda_visible_devices = cli::getenv_str("CUDA_VISIBLE_DEVICES");
    options.hip_visible_devices = cli::getenv_str("HIP_VISIBLE_DEVICES");
    options.rocr_visible_devices = cli::getenv_str("ROCR_VISIBLE_DEVICES");
    options.ascend_rt_visible_devices = cli::getenv_str("ASCEND_RT_VISIBLE_DEVICES");
    options.path = cli::path_entries();
    options.tool_timeout = std::chrono::milliseconds(timeout_ms);
    options.use_nvml = !no_nvml;

    detect::HardwareProfile profile = detect::detect_hardware(ctx, options);
    if (ctx.cancelled()) return env.fail(Error(Errc::Cancelled, "interrupted"));
    for (const auto& w : profile.warnings)
      env.logger().log(LogLevel::Warn, w.message, {{"code", w.code}});

    if (common.format == cli::OutputFormat::Text) {
      std::string text = detect::to_text(profile);
      std::fwrite(text.data(), 1, text.size(), stdout);
      return std::fflush(stdout) == 0 ? 0 : 1;
    }
    if (!cli::print_json(detect::to_json(profile)))
      return env.fail(Error(Errc::Io, "cannot write to stdout"));
    return 0;
  });
}

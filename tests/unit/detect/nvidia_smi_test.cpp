#include "detect/nvidia_smi.h"

#include <doctest/doctest.h>

#include <string>

namespace cyllm::detect {

constexpr std::uint64_t kMiB = 1048576;

TEST_CASE("query-gpu: the h100-rtx4090 rows") {
  auto r = parse_smi_query_gpu(
      "0, NVIDIA H100 80GB HBM3, GPU-78073210-c690-bb74-d538-87bba36db45d, 00000000:0E:00.0, "
      "81559, 81087, 9.0, 570.195.03, Disabled\n"
      "1, NVIDIA GeForce RTX 4090, GPU-f2c9a1d7-6e48-0b3d-9a57-c1e84d26b0f3, 00000000:41:00.0, "
      "24564, 24210, 8.9, 570.195.03, [N/A]\n",
      true);
  REQUIRE(r.ok());
  CHECK(r->driver_version == "570.195.03");
  REQUIRE(r->gpus.size() == 2);
  const auto& h = r->gpus[0];
  CHECK(h.index == 0);
  CHECK(h.name == "NVIDIA H100 80GB HBM3");
  CHECK(h.uuid == "GPU-78073210-c690-bb74-d538-87bba36db45d");
  CHECK(h.pci_bus_id == "00000000:0E:00.0");
  CHECK(h.vram_total_bytes == 81559 * kMiB);
  CHECK(h.vram_free_bytes == 81087 * kMiB);
  CHECK(h.compute_capability == "9.0");
  CHECK(h.mig_enabled == false);
  const auto& g = r->gpus[1];
  CHECK(g.index == 1);
  CHECK(g.name == "NVIDIA GeForce RTX 4090");
  CHECK(g.vram_total_bytes == 25757220864ull);
  CHECK(g.compute_capability == "8.9");
  CHECK_FALSE(g.mig_enabled.has_value());
  CHECK(g.mig_devices.empty());
}

TEST_CASE("query-gpu: unknown cells, MIG enabled, odd whitespace and CRLF") {
  auto r = parse_smi_query_gpu(
      "\n3,NVIDIA A100-SXM4-80GB ,  GPU-5a27c9e3 ,00000000:4E:00.0,81920,[N/A],8.0,555.42.02,"
      "Enabled\r\n"
      "4, NVIDIA GB10, [N/A], [Not Supported], [N/A], [N/A], [N/A], [N/A], [Not Supported]\n\n",
      true);
  REQUIRE(r.ok());
  REQUIRE(r->gpus.size() == 2);
  CHECK(r->gpus[0].index == 3);
  CHECK(r->gpus[0].name == "NVIDIA A100-SXM4-80GB");
  CHECK(r->gpus[0].uuid == "GPU-5a27c9e3");
  CHECK_FALSE(r->gpus[0].vram_free_bytes.has_value());
  CHECK(r->gpus[0].mig_enabled == true);
  CHECK(r->driver_version == "555.42.02");
  const auto& gb = r->gpus[1];
  CHECK(gb.name == "NVIDIA GB10");
  CHECK(gb.uuid.empty());
  CHECK(gb.pci_bus_id.empty());
  CHECK(gb.vram_total_bytes == 0);
  CHECK(gb.compute_capability.empty());
  CHECK_FALSE(gb.mig_enabled.has_value());
}

TEST_CASE("query-gpu: the 8-column layout without compute_cap") {
  auto r = parse_smi_query_gpu(
      "0, Tesla T4, GPU-0d7c5a1e-aa3d-11ec-b909-0242ac120002, 00000000:00:1E.0, 15360, 15101, "
      "470.82.01, [N/A]\n",
      false);
  REQUIRE(r.ok());
  REQUIRE(r->gpus.size() == 1);
  CHECK(r->gpus[0].name == "Tesla T4");
  CHECK(r->gpus[0].compute_capability.empty());
  CHECK(r->gpus[0].vram_total_bytes == 15360 * kMiB);
  CHECK(r->driver_version == "470.82.01");
  // The 9-column line is refused by the 8-column parser.
  CHECK_FALSE(parse_smi_query_gpu("0, a, b, 0000:00:1E.0, 1, 1, 7.5, 470.82.01, [N/A]", false).ok());
}

TEST_CASE("query-gpu: empty output is no GPUs") {
  auto r = parse_smi_query_gpu("", true);
  REQUIRE(r.ok());
  CHECK(r->gpus.empty());
  CHECK(r->driver_version.empty());
}

TEST_CASE("query-gpu: garbage is an error quoting the line") {
  auto err = [](std::string_view text) {
    auto r = parse_smi_query_gpu(text, true);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == Errc::BadToolOutput);
    return r.error().message();
  };
  CHECK(err("0, NVIDIA A100, GPU-1, 00000000:07:00.0, 81920, 81158, 8.0, 555.42.02\n") ==
        "nvidia-smi --query-gpu line 1 \"0, NVIDIA A100, GPU-1, 00000000:07:00.0, 81920, 81158, "
        "8.0, 555.42.02\": has 8 cells, expected 9");
  CHECK(err("\nx, A, GPU-1, 00000000:07:00.0, 1, 1, 8.0, 1.2, Disabled") ==
        "nvidia-smi --query-gpu line 2 \"x, A, GPU-1, 00000000:07:00.0, 1, 1, 8.0, 1.2, "
        "Disabled\": index \"x\" is not a small non-negative integer");
  CHECK(err("0, A, GPU-1, 00000000:07:00.0, 81920 MiB, 1, 8.0, 1.2, Disabled") ==
        "nvidia-smi --query-gpu line 1 \"0, A, GPU-1, 00000000:07:00.0, 81920 MiB, 1, 8.0, 1.2, "
        "Disabled\": memory.total \"81920 MiB\" is not a MiB count");
  CHECK(err("0, A, GPU-1, 00000000:07:00.0, 18446744073709551615, 1, 8.0, 1.2, Disabled")
            .find("memory.total \"18446744073709551615\" is not a MiB count") != std::string::npos);
  CHECK(err("0, A, GPU-1, 00000000:07:00.0, 1, -5, 8.0, 1.2, Disabled")
            .find("memory.free \"-5\"") != std::string::npos);
  CHECK(err("0, A, GPU-1, 00000000:07:00.0, 1, 1, 8, 1.2, Disabled")
            .find("compute_cap \"8\" is not N.M") != std::string::npos);
  CHECK(err("0, A, GPU-1, 00000000:07:00.0, 1, 1, 8.0, 1.2, Maybe")
            .find("mig.mode.current \"Maybe\" is not Enabled/Disabled") != std::string::npos);
  CHECK(err("0, A, GPU-1, 07:00, 1, 1, 8.0, 1.2, Disabled")
            .find("pci.bus_id \"07:00\" is malformed") != std::string::npos);
  CHECK(err("0, A, GPU 1, 00000000:07:00.0, 1, 1, 8.0, 1.2, Disabled")
            .find("uuid \"GPU 1\" is malformed") != std::string::npos);
  CHECK(err("0, A\x01, GPU-1, 00000000:07:00.0, 1, 1, 8.0, 1.2, Disabled")
            .find("name \"A\\x01\" is not printable text") != std::string::npos);
  CHECK(err("99999, A, GPU-1, 00000000:07:00.0, 1, 1, 8.0, 1.2, Disabled")
            .find("index \"99999\"") != std::string::npos);
}

TEST_CASE("the 470.x complaint about compute_cap is recognised") {
  CHECK(parse_smi_invalid_field("Field \"compute_cap\" is not a valid field to query.\n\n") ==
        "compute_cap");
  CHECK(parse_smi_invalid_field("\nField \"mig.mode.current\" is not a valid field to query.") ==
        "mig.mode.current");
  CHECK_FALSE(parse_smi_invalid_field("Failed to initialize NVML: Unknown Error").has_value());
  CHECK_FALSE(parse_smi_invalid_field("Field \"\" is not a valid field to query.").has_value());
}

TEST_CASE("-L: GPUs with MIG slices (vllm #41850 capture)") {
  auto r = parse_smi_list(
      "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-7f57f032-34ab-a064-c37c-7a4f75601cc5)\n"
      "  MIG 2g.20gb     Device  0: (UUID: MIG-377e0049-554c-540b-93c6-d0976f8426cb)\n"
      "  MIG 1g.10gb     Device  1: (UUID: MIG-f39aa248-6f1b-5769-b119-8d650bb34b27)\n"
      "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-8c7c9c30-f12f-20bf-e14e-d3c4c965af32)\n");
  REQUIRE(r.ok());
  REQUIRE(r->size() == 2);
  CHECK((*r)[0].index == 0);
  CHECK((*r)[0].name == "NVIDIA H100 80GB HBM3");
  CHECK((*r)[0].uuid == "GPU-7f57f032-34ab-a064-c37c-7a4f75601cc5");
  REQUIRE((*r)[0].mig_devices.size() == 2);
  CHECK((*r)[0].mig_devices[0].name == "2g.20gb");
  CHECK((*r)[0].mig_devices[0].uuid == "MIG-377e0049-554c-540b-93c6-d0976f8426cb");
  CHECK((*r)[0].mig_devices[1].name == "1g.10gb");
  CHECK((*r)[0].mig_devices[1].uuid == "MIG-f39aa248-6f1b-5769-b119-8d650bb34b27");
  CHECK((*r)[0].mig_devices[1].vram_total_bytes == 0);
  CHECK((*r)[1].index == 1);
  CHECK((*r)[1].uuid == "GPU-8c7c9c30-f12f-20bf-e14e-d3c4c965af32");
  CHECK((*r)[1].mig_devices.empty());
}

TEST_CASE("-L: garbage is an error") {
  auto a = parse_smi_list("  MIG 1g.10gb Device 0: (UUID: MIG-1)\n");
  REQUIRE_FALSE(a.ok());
  CHECK(a.error().message() ==
        "nvidia-smi -L line 1 \"  MIG 1g.10gb Device 0: (UUID: MIG-1)\": MIG device before any "
        "GPU");
  auto b = parse_smi_list("GPU 0: A (UUID: GPU-1)\nNo devices found.\n");
  REQUIRE_FALSE(b.ok());
  CHECK(b.error().message() ==
        "nvidia-smi -L line 2 \"No devices found.\": does not end in \"(UUID: ...)\"");
  CHECK_FALSE(parse_smi_list("GPU x: A (UUID: GPU-1)").ok());
  CHECK_FALSE(parse_smi_list("GPU 0: A (UUID: )").ok());
  CHECK_FALSE(parse_smi_list("CPU 0: A (UUID: GPU-1)").ok());
  CHECK_FALSE(parse_smi_list("GPU 0: A (UUID: GPU-1)\n  MIG 1g Device: (UUID: MIG-1)").ok());
}

TEST_CASE("the CUDA version from the nvidia-smi banner") {
  const char* banner =
      "+-----------------------------------------------------------------------------------------+\n"
      "| NVIDIA-SMI 555.42.02              Driver Version: 555.42.02      CUDA Version: 12.5     |\n"
      "|-----------------------------------------+------------------------+----------------------+\n";
  auto r = parse_smi_cuda_version(banner);
  REQUIRE(r.ok());
  CHECK(*r == "12.5");
  auto na = parse_smi_cuda_version("| NVIDIA-SMI 535.54.03   Driver Version: 535.54.03   CUDA Version: N/A      |\n");
  REQUIRE_FALSE(na.ok());
  CHECK(na.error().code() == Errc::BadToolOutput);
  CHECK(na.error().message() ==
        "nvidia-smi banner has no usable CUDA version: \"CUDA Version: N/A      |\"");
  auto none = parse_smi_cuda_version("No devices were found\n");
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().message() ==
        "nvidia-smi printed no \"CUDA Version:\" (first line \"No devices were found\")");
}

TEST_CASE("/proc/driver/nvidia/version: proprietary, open and Jetson modules") {
  auto prop = parse_proc_driver_version(
      "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n"
      "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14) \n");
  REQUIRE(prop.ok());
  CHECK(*prop == "550.54.14");
  auto open = parse_proc_driver_version(
      "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  565.57.01  Release Build  "
      "(dvs-builder@U16-A24-9-2)  Thu Oct 10 12:15:00 UTC 2024\n"
      "GCC version:  gcc version 13.3.0 (Ubuntu 13.3.0-6ubuntu2~24.04)\n");
  REQUIRE(open.ok());
  CHECK(*open == "565.57.01");
  auto jetson = parse_proc_driver_version(
      "NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  35.3.1  Release Build  "
      "(buildbrain@mobile-u64-6289-d7000)  Sun Mar 19 08:09:33 PDT 2023\n");
  REQUIRE(jetson.ok());
  CHECK(*jetson == "35.3.1");
}

TEST_CASE("real captures from an H200 host (driver 580.159.04, nix-built open module)") {
  // No build date after the builder: the line ends in "(nixbld@)  ".
  auto v = parse_proc_driver_version(
      "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  "
      "(nixbld@)  \nGCC version:  gcc version 15.3.0 (GCC) \n");
  REQUIRE(v.ok());
  CHECK(*v == "580.159.04");
  auto q = parse_smi_query_gpu(
      "0, NVIDIA H200, GPU-f4a5989b-1a67-4cc0-7351-377fc0e0cef8, 00000000:00:06.0, 143771, "
      "143156, 9.0, 580.159.04, Disabled\n",
      true);
  REQUIRE(q.ok());
  REQUIRE(q->gpus.size() == 1);
  CHECK(q->gpus[0].vram_total_bytes == 150754820096ull);  // what NVML reports on that host
  auto cuda = parse_smi_cuda_version(
      "| NVIDIA-SMI 580.159.04             Driver Version: 580.159.04     CUDA Version: 13.0     |\n");
  REQUIRE(cuda.ok());
  CHECK(*cuda == "13.0");
}

TEST_CASE("/proc/driver/nvidia/version: garbage is BadSysfs") {
  auto a = parse_proc_driver_version("NVRM version: NVIDIA UNIX x86_64 Kernel Module  soon\n");
  REQUIRE_FALSE(a.ok());
  CHECK(a.error().code() == Errc::BadSysfs);
  CHECK(a.error().message() ==
        "/proc/driver/nvidia/version: no version in \"NVRM version: NVIDIA UNIX x86_64 Kernel "
        "Module  soon\"");
  auto b = parse_proc_driver_version("");
  REQUIRE_FALSE(b.ok());
  CHECK(b.error().message() == "/proc/driver/nvidia/version has no \"NVRM version:\" line");
}

TEST_CASE("the message of a failed nvidia-smi run") {
  CHECK(smi_failure_message(
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make "
            "sure that the latest NVIDIA driver is installed and running.\n\n",
            "") ==
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure "
        "that the latest NVIDIA driver is installed and running.");
  CHECK(smi_failure_message("\n  \n", "Failed to initialize NVML: Unknown Error\n") ==
        "Failed to initialize NVML: Unknown Error");
  CHECK(smi_failure_message("", "") == "");
  CHECK(smi_failure_message(std::string(500, 'x'), "").size() == 200);
}

}  // namespace cyllm::detect

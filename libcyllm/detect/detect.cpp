#include "cyllm/detect.h"
namespace cyllm::detect {
HardwareProfile detect_hardware(const Context& ctx, const DetectOptions& o) {
  HardwareProfile p; p.cpu = detect_cpu(ctx, p.warnings); p.nvidia = detect_nvidia(ctx, o, p.warnings);
  p.amd = detect_amd(ctx, o, p.warnings); p.ascend = detect_ascend(ctx, o, p.warnings); return p; }
}

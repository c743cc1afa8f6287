#include "cyllm/detect.h"
namespace cyllm::detect {
std::optional<AscendInfo> detect_ascend(const Context&, const DetectOptions&, std::vector<Warning>&) { return std::nullopt; }
}

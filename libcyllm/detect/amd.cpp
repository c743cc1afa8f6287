#include "cyllm/detect.h"
namespace cyllm::detect {
std::optional<AmdInfo> detect_amd(const Context&, const DetectOptions&, std::vector<Warning>&) { return std::nullopt; }
}

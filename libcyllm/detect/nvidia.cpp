#include "cyllm/detect.h"
namespace cyllm::detect {
std::optional<NvidiaInfo> detect_nvidia(const Context&, const DetectOptions&, std::vector<Warning>&) { return std::nullopt; }
}

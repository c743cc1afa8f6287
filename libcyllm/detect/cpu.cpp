#include "cyllm/detect.h"
namespace cyllm::detect {
CpuInfo detect_cpu(const Context&, std::vector<Warning>&) { return {}; }
}

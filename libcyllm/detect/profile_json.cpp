#include "cyllm/detect.h"
namespace cyllm::detect {
nlohmann::json to_json(const HardwareProfile&) { return nlohmann::json::object(); }
std::string to_text(const HardwareProfile&) { return {}; }
Result<HardwareProfile> profile_from_json(const nlohmann::json&) { return Error(Errc::Unsupported, "x"); }
}

#include <algorithm>

#include "cyllm/engine.h"

namespace cyllm::engine {

EngineFactory::EngineFactory() {
  register_engine("native", make_native_engine);
  register_engine("cpu", make_native_engine);
}

void EngineFactory::register_engine(std::string name, Creator creator) {
  creators_[std::move(name)] = std::move(creator);
}

std::vector<std::string> EngineFactory::names() const {
  std::vector<std::string> out;
  for (const auto& [name, c] : creators_) out.push_back(name);
  return out;  // std::map keeps them sorted
}

Result<std::unique_ptr<BaseEngine>> EngineFactory::create(const EngineConfig& config, Logger& log) const {
  auto it = creators_.find(config.engine_type);
  if (it == creators_.end()) {
    std::string known;
    for (const auto& n : names()) known += (known.empty() ? "" : ", ") + n;
    return Error(Errc::InvalidRequest,
                 "unknown engine \"" + config.engine_type + "\" (known: " + known + ")");
  }
  auto engine = it->second(config, log);
  if (!engine) return Error(Errc::EngineInternal, "engine \"" + config.engine_type + "\" could not be created");
  return engine;
}

}  // namespace cyllm::engine

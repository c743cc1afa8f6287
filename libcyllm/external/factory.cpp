// Registry-backed launchers and the registration of every external engine in a factory.
#include "cyllm/external.h"

namespace cyllm::external {

LaunchBuilder launcher_from_registry(const ExternalSettings& settings, std::string engine) {
  return [settings, engine = std::move(engine)](const std::string& model, const engine::EngineConfig& config,
                                                std::uint16_t port, const std::string& work_dir) -> Result<LaunchSpec> {
    if (!settings.registry) return Error(Errc::EngineInternal, "no registry for the " + engine + " launcher");
    LaunchInputs in;
    in.engine = engine;
    in.version = settings.engine_version;
    in.model = model;
    in.served_model_name = settings.served_model_name;
    in.kv_cache_dtype = settings.kv_cache_dtype;
    in.venv = settings.venv;
    in.port = port;
    in.work_dir = work_dir;
    in.config = config;
    return build_launch(*settings.registry, in);
  };
}

void register_external_engines(engine::EngineFactory& factory, const ExternalSettings& settings) {
  if (settings.registry) {
    for (const auto& [name, e] : settings.registry->engines) {
      if (e.kind != registry::EngineKind::Python) continue;
      factory.register_engine(name, [settings, name = name](const engine::EngineConfig&, Logger& log) {
        ProcessEngineOptions o;
        o.name = name;
        o.launcher = launcher_from_registry(settings, name);
        o.work_dir = settings.work_dir;
        o.ready_timeout = settings.ready_timeout;
        return make_process_engine(std::move(o), log);
      });
    }
  }
  factory.register_engine("openai", [settings](const engine::EngineConfig&, Logger& log) {
    return make_openai_engine(settings.upstream, log);
  });
}

}  // namespace cyllm::external

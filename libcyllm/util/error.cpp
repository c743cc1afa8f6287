#include "cyllm/error.h"

#include <cstdio>

namespace cyllm {

std::string_view errc_id(Errc code) {
  switch (code) {
    case Errc::InvalidArgument: return "util.invalid_argument";
    case Errc::NotFound: return "util.not_found";
    case Errc::Io: return "util.io";
    case Errc::Parse: return "util.parse";
    case Errc::Timeout: return "util.timeout";
    case Errc::Cancelled: return "util.cancelled";
    case Errc::Unsupported: return "util.unsupported";
    case Errc::Internal: return "util.internal";
    case Errc::SpawnFailed: return "process.spawn_failed";
    case Errc::ToolTimeout: return "detect.tool_timeout";
    case Errc::ToolFailed: return "detect.tool_failed";
    case Errc::BadToolOutput: return "detect.bad_tool_output";
    case Errc::BadSysfs: return "detect.bad_sysfs";
    case Errc::NvmlUnavailable: return "detect.nvml_unavailable";
    case Errc::NvmlCallFailed: return "detect.nvml_call_failed";
    case Errc::BadVisibleDevices: return "detect.bad_visible_devices";
    case Errc::Usage: return "cli.usage";
    case Errc::NotImplemented: return "cli.not_implemented";
    case Errc::BadInputSchema: return "cli.bad_input_schema";
    case Errc::BadVersion: return "resolve.bad_version";
    case Errc::BadSpecifier: return "resolve.bad_specifier";
    case Errc::BadMarker: return "resolve.bad_marker";
    case Errc::BadRequirement: return "resolve.bad_requirement";
    case Errc::BadWheelFilename: return "resolve.bad_wheel_filename";
    case Errc::RegistryParse: return "registry.parse";
    case Errc::RegistryInvalid: return "registry.invalid";
    case Errc::RegistryUnknownRef: return "registry.unknown_reference";
    case Errc::RegistryCycle: return "registry.cycle";
    case Errc::RegistrySchemaVersion: return "registry.schema_version";
    case Errc::NoCandidate: return "resolve.no_candidate";
    case Errc::Conflict: return "resolve.conflict";
    case Errc::BadSource: return "fetch.bad_source";
    case Errc::Network: return "fetch.network";
    case Errc::TlsVerify: return "fetch.tls_verify";
    case Errc::HttpStatus: return "fetch.http_status";
    case Errc::HashMismatch: return "fetch.hash_mismatch";
    case Errc::SizeMismatch: return "fetch.size_mismatch";
    case Errc::OfflineMiss: return "fetch.offline_miss";
    case Errc::HubAuth: return "fetch.hub_auth";
    case Errc::HubNotFound: return "fetch.hub_not_found";
    case Errc::DiskFull: return "fetch.disk_full";
    case Errc::BadWheel: return "fetch.bad_wheel";
    case Errc::WheelTagMismatch: return "fetch.wheel_tag_mismatch";
    case Errc::InstallFailed: return "fetch.install_failed";
    case Errc::GgufBadMagic: return "gguf.bad_magic";
    case Errc::GgufBadVersion: return "gguf.unsupported_version";
    case Errc::GgufTruncated: return "gguf.truncated";
    case Errc::GgufBadMetadata: return "gguf.bad_metadata";
    case Errc::GgufMissingKey: return "gguf.missing_key";
    case Errc::GgufBadTensor: return "gguf.bad_tensor";
    case Errc::GgufBadTensorOffset: return "gguf.bad_tensor_offset";
    case Errc::GgufUnsupportedType: return "gguf.unsupported_type";
    case Errc::BadVocab: return "tokenizer.bad_vocab";
    case Errc::UnsupportedArch: return "model.unsupported_architecture";
    case Errc::BadModel: return "model.bad_model";
    case Errc::InvalidRequest: return "engine.invalid_request";
    case Errc::ModelLoadFailed: return "engine.model_load_failed";
    case Errc::OutOfMemory: return "engine.out_of_memory";
    case Errc::EngineCancelled: return "engine.cancelled";
    case Errc::DeadlineExceeded: return "engine.deadline_exceeded";
    case Errc::EngineUnavailable: return "engine.unavailable";
    case Errc::EngineInternal: return "engine.internal";
    case Errc::Overloaded: return "serve.overloaded";
    case Errc::QueueTimeout: return "serve.queue_timeout";
    case Errc::Unauthenticated: return "serve.unauthenticated";
    case Errc::PayloadTooLarge: return "serve.payload_too_large";
    case Errc::BindFailed: return "serve.bind_failed";
  }
  return "util.internal";
}

ExitCode exit_code_for(Errc code) {
  switch (code) {
    case Errc::Usage: return ExitCode::Usage;
    case Errc::Internal: return ExitCode::Internal;
    case Errc::Cancelled: return ExitCode::Interrupted;
    case Errc::EngineCancelled: return ExitCode::Interrupted;
    case Errc::EngineInternal: return ExitCode::Internal;
    default: return ExitCode::Failed;
  }
}

std::string Error::to_string() const {
  std::string s(id());
  s += ": ";
  s += message_;
  if (!context_.empty()) {
    s += " (";
    for (std::size_t i = 0; i < context_.size(); ++i) {
      if (i) s += "; ";
      s += "while ";
      s += context_[i];
    }
    s += ")";
  }
  return s;
}

void assert_fail(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "cy-llm: internal error: assertion failed: %s at %s:%d\n", expr, file,
               line);
  std::abort();
}

}  // namespace cyllm

// Errors and Result<T>: how every fallible libcyllm function reports failure.
//
// Design goals: a stable, greppable id per failure (`detect.tool_timeout`), a message that
// quotes the bad value, a context chain ("while reading /proc/meminfo"), and a category
// that maps one-to-one onto the exit codes every tool shares. No exception leaves the
// library; third-party exceptions are converted at module boundaries.
// Non-goals: std::error_code interop; localisation.
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace cyllm {

// The stable error codes. The id string (errc_id) is part of the public contract: it is
// printed by tools, appears in JSON output and must never change meaning once shipped.
enum class Errc {
  // generic
  InvalidArgument,   // util.invalid_argument: a caller passed a bad value
  NotFound,          // util.not_found: a file or directory does not exist
  Io,                // util.io: read/write/stat failed
  Parse,             // util.parse: text or bytes that do not follow their format
  Timeout,           // util.timeout: an operation ran past its limit
  Cancelled,         // util.cancelled: the cancel flag was raised (Ctrl-C)
  Unsupported,       // util.unsupported: not implemented / not available in this build
  Internal,          // util.internal: a bug or an impossible state
  // process
  SpawnFailed,       // process.spawn_failed: a command could not be started
  // detect
  ToolTimeout,       // detect.tool_timeout: a vendor tool did not answer in time
  ToolFailed,        // detect.tool_failed: a vendor tool exited non-zero
  BadToolOutput,     // detect.bad_tool_output: vendor tool output we cannot parse
  BadSysfs,          // detect.bad_sysfs: sysfs/procfs text we cannot parse
  NvmlUnavailable,   // detect.nvml_unavailable: libnvidia-ml could not be loaded/initialised
  NvmlCallFailed,    // detect.nvml_call_failed: an NVML call returned an error
  BadVisibleDevices, // detect.bad_visible_devices: a *_VISIBLE_DEVICES entry matches nothing
  // cli
  Usage,             // cli.usage: bad command line
  NotImplemented,    // cli.not_implemented: the tool exists but its job is not built yet
  BadInputSchema,    // cli.bad_input_schema: a JSON input lacks the expected "schema"
  // packaging (PEP 440/508/425)
  BadVersion,        // resolve.bad_version: not a PEP 440 version
  BadSpecifier,      // resolve.bad_specifier: not a PEP 440 specifier set
  BadMarker,         // resolve.bad_marker: not a PEP 508 environment marker
  BadRequirement,    // resolve.bad_requirement: not a PEP 508 requirement
  BadWheelFilename,  // resolve.bad_wheel_filename: not a PEP 427 wheel filename
  // registry
  RegistryParse,     // registry.parse: YAML/JSON syntax error
  RegistryInvalid,   // registry.invalid: a key has a wrong type/value or is missing
  RegistryUnknownRef,   // registry.unknown_reference: names an undefined engine/profile/wheel
  RegistryCycle,     // registry.cycle: references that loop
  RegistrySchemaVersion,  // registry.schema_version: unsupported schema_version
  // resolution
  NoCandidate,       // resolve.no_candidate: no engine/version runs on this host
  Conflict,          // resolve.conflict: requirements that cannot all hold
  // fetch
  BadSource,         // fetch.bad_source: a URL, hf:// source or lock line we cannot use
  Network,           // fetch.network: connection, DNS or transfer failure (after retries)
  TlsVerify,         // fetch.tls_verify: the server certificate could not be verified
  HttpStatus,        // fetch.http_status: the server answered with an error status
  HashMismatch,      // fetch.hash_mismatch: the bytes do not have the expected SHA-256
  SizeMismatch,      // fetch.size_mismatch: the bytes do not have the expected length
  OfflineMiss,       // fetch.offline_miss: --offline and the artifact is not in the cache
  HubAuth,           // fetch.hub_auth: Hugging Face says 401/403 (gated or private repo)
  HubNotFound,       // fetch.hub_not_found: Hugging Face repo, revision or file not found
  DiskFull,          // fetch.disk_full: no space left while writing
  BadWheel,          // fetch.bad_wheel: unsafe paths, RECORD mismatch or bad METADATA
  WheelTagMismatch,  // fetch.wheel_tag_mismatch: a wheel's tags do not fit the target
  InstallFailed,     // fetch.install_failed: venv creation or pip install failed
  // gguf
  GgufBadMagic,      // gguf.bad_magic: the file is not GGUF
  GgufBadVersion,    // gguf.unsupported_version: a GGUF version other than 2 or 3
  GgufTruncated,     // gguf.truncated: the file ends before its header/metadata does
  GgufBadMetadata,   // gguf.bad_metadata: a key/value that is malformed or of a wrong type
  GgufMissingKey,    // gguf.missing_key: a required metadata key is absent
  GgufBadTensor,     // gguf.bad_tensor: tensor name, dims or type invalid
  GgufBadTensorOffset,  // gguf.bad_tensor_offset: tensor data outside the file or misaligned
  GgufUnsupportedType,  // gguf.unsupported_type: a tensor type this engine cannot compute
  // tokenizer
  BadVocab,          // tokenizer.bad_vocab: vocabulary metadata inconsistent or unsupported
  // model / engine (the EngineError hierarchy)
  UnsupportedArch,   // model.unsupported_architecture: general.architecture not supported
  BadModel,          // model.bad_model: a tensor missing or of the wrong shape for the arch
  InvalidRequest,    // engine.invalid_request: bad prompt or sampling parameters
  ModelLoadFailed,   // engine.model_load_failed: the model could not be loaded
  OutOfMemory,       // engine.out_of_memory: an allocation failed; caches were released
  EngineCancelled,   // engine.cancelled: the request was stopped by its caller
  DeadlineExceeded,  // engine.deadline_exceeded: the request ran past its deadline
  EngineUnavailable, // engine.unavailable: no model loaded, or the engine process died
  EngineInternal,    // engine.internal: a bug inside an engine
  // serve
  Overloaded,        // serve.overloaded: the queue is full; retry later
  QueueTimeout,      // serve.queue_timeout: the request waited in the queue too long
  Unauthenticated,   // serve.unauthenticated: missing or wrong API key
  PayloadTooLarge,   // serve.payload_too_large: the request body exceeds the limit
  BindFailed,        // serve.bind_failed: the socket or port could not be opened
};
inline constexpr Errc kLastErrc = Errc::BindFailed;

// Which of the shared exit codes a failure maps to (0 ok is not an error).
enum class ExitCode : int { Ok = 0, Failed = 1, Usage = 2, Internal = 3, Interrupted = 130 };

std::string_view errc_id(Errc code);  // "detect.tool_timeout"
ExitCode exit_code_for(Errc code);

class Error {
 public:
  Error(Errc code, std::string message) : code_(code), message_(std::move(message)) {}

  Errc code() const { return code_; }
  std::string_view id() const { return errc_id(code_); }
  const std::string& message() const { return message_; }
  const std::vector<std::string>& context() const { return context_; }

  // Adds "while <what>" to the chain; innermost first. Returns *this for chaining.
  Error& with_context(std::string what) & {
    context_.push_back(std::move(what));
    return *this;
  }
  Error&& with_context(std::string what) && {
    context_.push_back(std::move(what));
    return std::move(*this);
  }

  // "detect.bad_sysfs: ... (while reading X; while detecting AMD GPUs)"
  std::string to_string() const;

 private:
  Errc code_;
  std::string message_;
  std::vector<std::string> context_;
};

// Aborts with file:line. For bugs, never for bad input.
[[noreturn]] void assert_fail(const char* expr, const char* file, int line);
#define CYLLM_ASSERT(cond) \
  ((cond) ? (void)0 : ::cyllm::assert_fail(#cond, __FILE__, __LINE__))

// Result<T>: a value or an Error. Result<void> carries only success or an Error.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}        // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { CYLLM_ASSERT(ok()); return std::get<0>(v_); }
  const T& value() const& { CYLLM_ASSERT(ok()); return std::get<0>(v_); }
  T&& value() && { CYLLM_ASSERT(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const& { CYLLM_ASSERT(!ok()); return std::get<1>(v_); }
  Error&& error() && { CYLLM_ASSERT(!ok()); return std::get<1>(std::move(v_)); }

  T value_or(T fallback) const& { return ok() ? std::get<0>(v_) : std::move(fallback); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : err_(std::move(error)), has_error_(true) {}  // NOLINT
  bool ok() const { return !has_error_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const& { CYLLM_ASSERT(has_error_); return err_; }
  Error&& error() && { CYLLM_ASSERT(has_error_); return std::move(err_); }

 private:
  Error err_{Errc::Internal, ""};
  bool has_error_ = false;
};

}  // namespace cyllm

// Propagate an error from a Result-returning expression; yields the value otherwise.
// Uses a GNU statement expression (g++ and clang both support it).
#define CYLLM_TRY(expr)                                   \
  ({                                                      \
    auto cyllm_try_r_ = (expr);                           \
    if (!cyllm_try_r_.ok()) return std::move(cyllm_try_r_).error(); \
    std::move(cyllm_try_r_).value();                      \
  })

// Same for Result<void>.
#define CYLLM_TRY_VOID(expr)                                        \
  do {                                                              \
    auto cyllm_try_r_ = (expr);                                     \
    if (!cyllm_try_r_.ok()) return std::move(cyllm_try_r_).error(); \
  } while (0)

// The gRPC transport: cyllm.inference.v1.InferenceService/StreamPredict (proto/inference.proto)
// and grpc++'s built-in grpc.health.v1 service, on a Unix socket and optionally TCP.
//
// The method is registered on raw bytes (a hand-made service over grpc's own handler
// templates, as the generated code does) so that a body that is not a valid Request gets
// INVALID_ARGUMENT with our message instead of grpc's generic INTERNAL. Each call runs
// on a grpc sync-server thread that blocks in Service::stream_predict and writes each text
// piece as it arrives. One poller thread turns a client's cancellation (ServerContext::
// IsCancelled) into the request's cancel flag, so a disconnected client frees its slot
// even while its request is queued or silent.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <set>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/rpc_service_method.h>
#include <grpcpp/impl/service_type.h>
#include <grpcpp/support/method_handler.h>
#include <grpcpp/support/sync_stream.h>

#include "cyllm/serve.h"
#include "inference.pb.h"

namespace cyllm::serve {
namespace {

namespace pb = cyllm::inference::v1;
constexpr const char* kServiceName = "cyllm.inference.v1.InferenceService";
constexpr const char* kMethod = "/cyllm.inference.v1.InferenceService/StreamPredict";

struct Mapped {
  grpc::StatusCode status;
  pb::ErrorCode code;
};

Mapped map_error(Errc e) {
  switch (e) {
    case Errc::InvalidRequest: return {grpc::StatusCode::INVALID_ARGUMENT, pb::ERROR_CODE_INVALID_ARGUMENT};
    case Errc::Overloaded: return {grpc::StatusCode::RESOURCE_EXHAUSTED, pb::ERROR_CODE_OVERLOADED};
    case Errc::QueueTimeout: return {grpc::StatusCode::RESOURCE_EXHAUSTED, pb::ERROR_CODE_QUEUE_TIMEOUT};
    case Errc::OutOfMemory: return {grpc::StatusCode::RESOURCE_EXHAUSTED, pb::ERROR_CODE_OUT_OF_MEMORY};
    case Errc::EngineCancelled: return {grpc::StatusCode::CANCELLED, pb::ERROR_CODE_CANCELLED};
    case Errc::DeadlineExceeded: return {grpc::StatusCode::DEADLINE_EXCEEDED, pb::ERROR_CODE_DEADLINE};
    case Errc::EngineUnavailable: return {grpc::StatusCode::UNAVAILABLE, pb::ERROR_CODE_UNAVAILABLE};
    case Errc::Unauthenticated: return {grpc::StatusCode::UNAUTHENTICATED, pb::ERROR_CODE_UNAUTHENTICATED};
    default: return {grpc::StatusCode::INTERNAL, pb::ERROR_CODE_INTERNAL};
  }
}

pb::FinishReason map_finish(engine::FinishReason r) {
  switch (r) {
    case engine::FinishReason::Stop: return pb::FINISH_REASON_STOP;
    case engine::FinishReason::Length: return pb::FINISH_REASON_LENGTH;
    case engine::FinishReason::Cancelled: return pb::FINISH_REASON_CANCELLED;
    case engine::FinishReason::Deadline: return pb::FINISH_REASON_DEADLINE;
  }
  return pb::FINISH_REASON_UNSPECIFIED;
}

// A request-validation failure naming the field.
struct FieldError {
  std::string field, message;
};

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

constexpr std::uint32_t kMaxTokensLimit = 65536;
constexpr std::size_t kMaxStops = 16, kMaxStopBytes = 256;
constexpr std::uint32_t kMaxDeadlineMs = 24u * 3600u * 1000u;

std::optional<FieldError> to_engine_request(const pb::Request& in, engine::Request& out) {
  out.id = in.request_id();
  if (in.request_id().size() > 256) return FieldError{"request_id", "is longer than 256 bytes"};
  switch (in.input_case()) {
    case pb::Request::kPrompt:
      if (in.prompt().empty()) return FieldError{"prompt", "is empty"};
      out.prompt = in.prompt();
      break;
    case pb::Request::kChat: {
      if (in.chat().messages().empty()) return FieldError{"chat.messages", "is empty"};
      int i = 0;
      for (const auto& m : in.chat().messages()) {
        if (m.role() != "system" && m.role() != "user" && m.role() != "assistant")
          return FieldError{"chat.messages[" + std::to_string(i) + "].role",
                            "is \"" + m.role() + "\"; expected system, user or assistant"};
        out.messages.push_back({m.role(), m.content()});
        ++i;
      }
      out.chat_template = in.chat().template_();
      break;
    }
    default: return FieldError{"input", "neither prompt nor chat is set"};
  }
  out.parse_special = in.parse_special();
  if (in.has_max_tokens()) {
    if (in.max_tokens() < 1 || in.max_tokens() > kMaxTokensLimit)
      return FieldError{"max_tokens", "must be in [1, " + std::to_string(kMaxTokensLimit) + "], got " +
                                          std::to_string(in.max_tokens())};
    out.max_tokens = in.max_tokens();
  }
  if (static_cast<std::size_t>(in.stop_size()) > kMaxStops)
    return FieldError{"stop", "has " + std::to_string(in.stop_size()) + " entries; at most " + std::to_string(kMaxStops)};
  for (int i = 0; i < in.stop_size(); ++i) {
    const std::string& s = in.stop(i);
    if (s.empty() || s.size() > kMaxStopBytes)
      return FieldError{"stop[" + std::to_string(i) + "]", "must be 1 to " + std::to_string(kMaxStopBytes) + " bytes"};
    out.stop.push_back(s);
  }
  const auto& s = in.sampling();
  auto& o = out.sampling;
  if (s.has_temperature()) {
    if (!std::isfinite(s.temperature()) || s.temperature() < 0 || s.temperature() > 10)
      return FieldError{"sampling.temperature", "must be in [0, 10], got " + num(s.temperature())};
    o.temperature = s.temperature();
  }
  if (s.has_top_k()) {
    if (s.top_k() < 0) return FieldError{"sampling.top_k", "must be >= 0, got " + std::to_string(s.top_k())};
    o.top_k = s.top_k();
  }
  if (s.has_top_p()) {
    if (!(s.top_p() > 0 && s.top_p() <= 1)) return FieldError{"sampling.top_p", "must be in (0, 1], got " + num(s.top_p())};
    o.top_p = s.top_p();
  }
  if (s.has_min_p()) {
    if (!(s.min_p() >= 0 && s.min_p() <= 1)) return FieldError{"sampling.min_p", "must be in [0, 1], got " + num(s.min_p())};
    o.min_p = s.min_p();
  }
  if (s.has_repeat_penalty()) {
    if (!(s.repeat_penalty() > 0 && s.repeat_penalty() <= 10))
      return FieldError{"sampling.repeat_penalty", "must be in (0, 10], got " + num(s.repeat_penalty())};
    o.repeat_penalty = s.repeat_penalty();
  }
  if (s.has_presence_penalty()) {
    if (!(s.presence_penalty() >= -2 && s.presence_penalty() <= 2))
      return FieldError{"sampling.presence_penalty", "must be in [-2, 2], got " + num(s.presence_penalty())};
    o.presence_penalty = s.presence_penalty();
  }
  if (s.has_frequency_penalty()) {
    if (!(s.frequency_penalty() >= -2 && s.frequency_penalty() <= 2))
      return FieldError{"sampling.frequency_penalty", "must be in [-2, 2], got " + num(s.frequency_penalty())};
    o.frequency_penalty = s.frequency_penalty();
  }
  if (s.has_penalty_last_n()) {
    if (s.penalty_last_n() < -1)
      return FieldError{"sampling.penalty_last_n", "must be >= -1, got " + std::to_string(s.penalty_last_n())};
    o.penalty_last_n = s.penalty_last_n();
  }
  if (s.has_seed()) o.seed = s.seed();
  if (in.deadline_ms() > kMaxDeadlineMs)
    return FieldError{"deadline_ms", "must be at most " + std::to_string(kMaxDeadlineMs) + ", got " +
                                         std::to_string(in.deadline_ms())};
  if (in.deadline_ms() > 0)
    out.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(in.deadline_ms());
  return std::nullopt;
}

grpc::ByteBuffer serialize(const pb::Response& r) {
  std::string bytes = r.SerializeAsString();
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

// Raises the cancel flag of calls whose client went away.
class CancelPoller {
 public:
  CancelPoller() : thread_([this] { run(); }) {}
  ~CancelPoller() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void add(grpc::ServerContext* ctx, std::atomic<bool>* flag) {
    std::lock_guard lock(mu_);
    calls_.insert({ctx, flag});
  }
  void remove(grpc::ServerContext* ctx, std::atomic<bool>* flag) {
    std::lock_guard lock(mu_);
    calls_.erase({ctx, flag});
  }

 private:
  void run() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      for (const auto& c : calls_)
        if (!c.second->load() && c.first->IsCancelled()) c.second->store(true);
      cv_.wait_for(lock, std::chrono::milliseconds(20));
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::set<std::pair<grpc::ServerContext*, std::atomic<bool>*>> calls_;
  std::thread thread_;
};

class InferenceService final : public grpc::Service {
 public:
  InferenceService(cyllm::serve::Service& service, Logger& log, CancelPoller& poller, std::string api_key)
      : service_(service), log_(log), poller_(poller), api_key_(std::move(api_key)) {
    AddMethod(new grpc::internal::RpcServiceMethod(
        kMethod, grpc::internal::RpcMethod::SERVER_STREAMING,
        new grpc::internal::ServerStreamingHandler<InferenceService, grpc::ByteBuffer, grpc::ByteBuffer>(
            [](InferenceService* self, grpc::ServerContext* ctx, const grpc::ByteBuffer* req,
               grpc::ServerWriter<grpc::ByteBuffer>* writer) { return self->stream_predict(ctx, req, writer); },
            this)));
  }

 private:
  grpc::Status fail(grpc::ServerWriter<grpc::ByteBuffer>* writer, Errc code, const std::string& id,
                    const std::string& message, const std::string& field = {}) {
    const Mapped m = map_error(code);
    pb::Response r;
    auto* e = r.mutable_error();
    e->set_code(m.code);
    e->set_id(std::string(errc_id(code)));
    e->set_message(message);
    e->set_field(field);
    writer->Write(serialize(r));
    log_.log(code == Errc::Unauthenticated ? LogLevel::Warn : LogLevel::Debug, "gRPC call refused",
             {{"request_id", id}, {"code", std::string(errc_id(code))}, {"error", message}});
    return grpc::Status(m.status, std::string(errc_id(code)) + ": " + message);
  }

  grpc::Status stream_predict(grpc::ServerContext* ctx, const grpc::ByteBuffer* raw,
                              grpc::ServerWriter<grpc::ByteBuffer>* writer) {
    if (!api_key_.empty()) {
      const auto& md = ctx->client_metadata();
      auto it = md.find("authorization");
      const std::string want = "Bearer " + api_key_;
      if (it == md.end())
        return fail(writer, Errc::Unauthenticated, "", "the authorization metadata is missing (Bearer API key)");
      if (!constant_time_equal(std::string_view(it->second.data(), it->second.size()), want))
        return fail(writer, Errc::Unauthenticated, "", "the API key is wrong");
    }
    std::string bytes;
    {
      std::vector<grpc::Slice> slices;
      if (raw->Dump(&slices).ok())
        for (const auto& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
    }
    std::string field;
    auto parsed = parse_grpc_request(bytes, &field);
    if (!parsed.ok()) return fail(writer, parsed.error().code(), "", parsed.error().message(), field);
    engine::Request er = std::move(*parsed);
    // The gRPC deadline, when the client set one, bounds the request too.
    const auto grpc_deadline = ctx->deadline();
    const auto sys_now = std::chrono::system_clock::now();
    if (grpc_deadline < sys_now + std::chrono::hours(24 * 365)) {
      const auto d = std::chrono::steady_clock::now() +
                     std::chrono::duration_cast<std::chrono::steady_clock::duration>(grpc_deadline - sys_now);
      if (!er.deadline || d < *er.deadline) er.deadline = d;
    }

    std::atomic<bool> cancel{false};
    poller_.add(ctx, &cancel);
    auto sink = [&](std::string_view text, engine::TokenId token) {
      pb::Response r;
      auto* p = r.mutable_piece();
      p->set_text(std::string(text));
      if (token != tokenizer::kNoToken) p->add_token_ids(token);
      return writer->Write(serialize(r));
    };
    auto result = service_.stream_predict(er, sink, &cancel);
    poller_.remove(ctx, &cancel);
    if (!result.ok()) return fail(writer, result.error().code(), er.id, result.error().message());
    const engine::Completion& c = *result;
    pb::Response r;
    auto* f = r.mutable_final();
    f->set_request_id(er.id);
    f->set_finish_reason(map_finish(c.finish_reason));
    f->mutable_usage()->set_prompt_tokens(c.usage.prompt_tokens);
    f->mutable_usage()->set_completion_tokens(c.usage.completion_tokens);
    auto* t = f->mutable_timings();
    t->set_queue_ms(c.timings.queue_ms);
    t->set_ttft_ms(c.timings.ttft_ms);
    t->set_prompt_ms(c.timings.prompt_ms);
    t->set_generation_ms(c.timings.generation_ms);
    t->set_generation_tokens_per_s(c.timings.generation_tokens_per_s);
    f->set_chat_format(c.chat_format);
    writer->Write(serialize(r));
    return grpc::Status::OK;
  }

  cyllm::serve::Service& service_;
  Logger& log_;
  CancelPoller& poller_;
  std::string api_key_;
};

// A Unix socket path may hold a stale socket from a crashed server: replace it only when
// nothing answers on it.
Result<void> prepare_uds(const std::string& path) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof(addr.sun_path))
    return Error(Errc::BindFailed, "the socket path \"" + path + "\" is empty or longer than " +
                                       std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return {};
  if (!S_ISSOCK(st.st_mode))
    return Error(Errc::BindFailed, "\"" + path + "\" exists and is not a socket; not replacing it");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error(Errc::BindFailed, std::string("socket(): ") + std::strerror(errno));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  const int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  const int err = errno;
  ::close(fd);
  if (rc == 0) return Error(Errc::BindFailed, "another server is listening on \"" + path + "\"");
  if (err != ECONNREFUSED)
    return Error(Errc::BindFailed, "cannot probe the socket \"" + path + "\": " + std::strerror(err));
  if (::unlink(path.c_str()) != 0)
    return Error(Errc::BindFailed, "cannot remove the stale socket \"" + path + "\": " + std::strerror(errno));
  return {};
}

}  // namespace

Result<engine::Request> parse_grpc_request(std::string_view bytes, std::string* field) {
  pb::Request req;
  if (bytes.size() > static_cast<std::size_t>(INT32_MAX) ||
      !req.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return Error(Errc::InvalidRequest, "the request body (" + std::to_string(bytes.size()) +
                                           " bytes) is not a valid cyllm.inference.v1.Request protobuf message");
  engine::Request out;
  if (auto bad = to_engine_request(req, out)) {
    if (field) *field = bad->field;
    return Error(Errc::InvalidRequest, bad->field + " " + bad->message);
  }
  return out;
}

struct GrpcServer::Impl {
  GrpcOptions options;
  Logger* log = nullptr;
  std::unique_ptr<CancelPoller> poller;
  std::unique_ptr<InferenceService> uds_service, tcp_service;
  std::unique_ptr<grpc::Server> uds_server, tcp_server;
  int port = -1;
  bool shut_down = false;
};

GrpcServer::GrpcServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

GrpcServer::~GrpcServer() { shutdown(std::chrono::system_clock::now()); }

int GrpcServer::tcp_port() const { return impl_->port; }

Result<std::unique_ptr<GrpcServer>> GrpcServer::start(const GrpcOptions& options, Service& service, Logger& log) {
  const bool tls = !options.tls_cert_pem.empty() || !options.tls_key_pem.empty();
  if (options.tcp_port >= 0) {
    if (tls && (options.tls_cert_pem.empty() || options.tls_key_pem.empty()))
      return Error(Errc::InvalidRequest, "TLS needs both a certificate and a key (--tls-cert and --tls-key)");
    if (!tls && options.api_key.empty() && !options.insecure_tcp)
      return Error(Errc::InvalidRequest,
                   "gRPC on TCP needs --api-key or TLS (--tls-cert/--tls-key); --insecure-tcp allows it without");
    if (options.tcp_port > 65535) return Error(Errc::InvalidRequest, "port " + std::to_string(options.tcp_port) + " is out of range");
  }
  if (options.uds_path.empty() && options.tcp_port < 0)
    return Error(Errc::InvalidRequest, "neither a Unix socket nor a TCP port to listen on");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->log = &log;
  impl->poller = std::make_unique<CancelPoller>();
  grpc::EnableDefaultHealthCheckService(true);

  if (!options.uds_path.empty()) {
    CYLLM_TRY_VOID(prepare_uds(options.uds_path));
    impl->uds_service = std::make_unique<InferenceService>(service, log, *impl->poller, "");
    grpc::ServerBuilder b;
    b.AddListeningPort("unix:" + options.uds_path, grpc::InsecureServerCredentials());
    b.RegisterService(impl->uds_service.get());
    const mode_t old = ::umask(0177);  // the socket is born 0600
    impl->uds_server = b.BuildAndStart();
    ::umask(old);
    if (!impl->uds_server)
      return Error(Errc::BindFailed, "cannot listen on the Unix socket \"" + options.uds_path + "\"");
    if (::chmod(options.uds_path.c_str(), 0600) != 0)
      return Error(Errc::BindFailed, "cannot chmod 0600 \"" + options.uds_path + "\": " + std::strerror(errno));
  }
  if (options.tcp_port >= 0) {
    impl->tcp_service = std::make_unique<InferenceService>(service, log, *impl->poller, options.api_key);
    std::shared_ptr<grpc::ServerCredentials> creds;
    if (tls) {
      grpc::SslServerCredentialsOptions so(options.tls_client_ca_pem.empty()
                                               ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                               : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
      so.pem_root_certs = options.tls_client_ca_pem;
      so.pem_key_cert_pairs.push_back({options.tls_key_pem, options.tls_cert_pem});
      creds = grpc::SslServerCredentials(so);
    } else {
      creds = grpc::InsecureServerCredentials();
    }
    grpc::ServerBuilder b;
    b.AddListeningPort(options.tcp_host + ":" + std::to_string(options.tcp_port), creds, &impl->port);
    b.RegisterService(impl->tcp_service.get());
    impl->tcp_server = b.BuildAndStart();
    if (!impl->tcp_server || impl->port <= 0)
      return Error(Errc::BindFailed, "cannot listen on " + options.tcp_host + ":" + std::to_string(options.tcp_port));
  }
  auto server = std::unique_ptr<GrpcServer>(new GrpcServer(std::move(impl)));
  server->set_serving(service.ready());
  return server;
}

void GrpcServer::set_serving(bool serving) {
  for (auto* s : {impl_->uds_server.get(), impl_->tcp_server.get()}) {
    if (!s) continue;
    if (auto* h = s->GetHealthCheckService()) {
      h->SetServingStatus(serving);
      h->SetServingStatus(kServiceName, serving);
    }
  }
}

void GrpcServer::shutdown(std::chrono::system_clock::time_point deadline) {
  if (impl_->shut_down) return;
  impl_->shut_down = true;
  set_serving(false);
  for (auto* s : {impl_->uds_server.get(), impl_->tcp_server.get()})
    if (s) s->Shutdown(deadline);
  for (auto* s : {impl_->uds_server.get(), impl_->tcp_server.get()})
    if (s) s->Wait();
  if (!impl_->options.uds_path.empty()) ::unlink(impl_->options.uds_path.c_str());
}

}  // namespace cyllm::serve

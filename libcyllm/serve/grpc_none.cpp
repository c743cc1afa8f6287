// Built without grpc++: the gRPC transport says so.
#include "cyllm/serve.h"

namespace cyllm::serve {

struct GrpcServer::Impl {};
GrpcServer::GrpcServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GrpcServer::~GrpcServer() = default;
int GrpcServer::tcp_port() const { return -1; }
void GrpcServer::set_serving(bool) {}
void GrpcServer::shutdown(std::chrono::system_clock::time_point) {}
Result<engine::Request> parse_grpc_request(std::string_view, std::string*) {
  return Error(Errc::Unsupported, "this build has no gRPC (grpc++ and protobuf were not found)");
}
Result<std::unique_ptr<GrpcServer>> GrpcServer::start(const GrpcOptions&, Service&, Logger&) {
  return Error(Errc::Unsupported, "this build has no gRPC (grpc++ and protobuf were not found)");
}

}  // namespace cyllm::serve

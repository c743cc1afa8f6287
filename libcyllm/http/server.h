// A small HTTP/1.1 server on POSIX sockets: one I/O thread and a bounded pool of workers.
//
// Why by hand rather than cpp-httplib (which the design lists): an inference server needs
// (1) connections that are reading a request or idle between keep-alive requests to cost
// no worker thread, so that slow-loris clients and idle keep-alives cannot starve the
// pool; (2) an absolute deadline on the header section and on the body, not a per-read
// timeout that a client resets with one byte at a time; (3) notice of a client that hangs
// up while its request is still generating (POLLRDHUP) so the engine can stop; (4) an
// incremental parser we can fuzz. cpp-httplib 0.11 runs one blocking thread per
// connection with per-read timeouts and offers none of (1)-(3).
//
// Shape: the I/O thread polls the listening socket, a wake pipe and every connection.
// Connections that are idle or reading a request are polled for input and parsed
// (http/request_parser.h); a complete request hands its connection to a worker, and while
// a worker owns it the I/O thread polls it only for hang-up (then raises its cancel
// flag). The worker writes the response (blocking writes bounded by write_timeout) and
// gives the connection back (keep-alive) or has it closed. Only the I/O thread closes
// sockets. Parse errors and timeouts are answered by the I/O thread with a short error
// response, then a lingering close (shutdown, drain input for up to 2 s, close) so the
// client reads the answer instead of a reset.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cyllm/context.h"
#include "cyllm/error.h"
#include "http/request_parser.h"

namespace cyllm::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0: an ephemeral port
  ParserLimits limits;
  std::chrono::milliseconds header_timeout{10000};  // first byte -> end of headers
  std::chrono::milliseconds body_timeout{30000};    // end of headers -> end of body
  std::chrono::milliseconds idle_timeout{60000};    // keep-alive wait for the next request
  std::chrono::milliseconds write_timeout{30000};   // one write of the response
  unsigned n_workers = 128;
  std::size_t max_pending = 1024;     // complete requests waiting for a worker (then 503)
  std::size_t max_connections = 4096; // accepting pauses above this
  int backlog = 512;
};

struct Connection;

// How a handler answers. Owned by the worker thread; not thread-safe.
class ResponseWriter {
 public:
  ResponseWriter(Connection& conn, std::chrono::milliseconds write_timeout, bool close_after);

  // A complete response with Content-Length. Returns false when the client is gone.
  bool send(int status, std::string_view content_type, std::string_view body,
            const std::vector<Header>& extra = {});
  // Starts a chunked response; then write() pieces and end(). Each returns false once the
  // client is gone (write failed or timed out, or it hung up).
  bool begin_stream(int status, std::string_view content_type, const std::vector<Header>& extra = {});
  bool write(std::string_view data);
  bool end();

  bool responded() const { return responded_; }
  int status() const { return status_; }
  // True after a failed write or when the I/O thread saw the client hang up.
  bool client_gone() const;
  // Raised when the client hangs up (polled by the I/O thread) or a write fails.
  const std::atomic<bool>* cancel_flag() const;
  // Whether the connection can serve another request afterwards.
  bool reusable() const { return !failed_ && !close_after_ && (!streaming_ || ended_); }
  std::uint64_t connection_id() const;
  // Called with the status just before the first byte of the answer is written (so that
  // counters are up to date by the time a client sees the answer).
  void on_respond(std::function<void(int status)> f) { on_respond_ = std::move(f); }

 private:
  bool write_all(std::string_view data);
  std::string head(int status, std::string_view content_type, const std::vector<Header>& extra,
                   std::string_view length_line);

  Connection& conn_;
  std::chrono::milliseconds write_timeout_;
  bool close_after_;
  bool responded_ = false;
  bool streaming_ = false;
  bool ended_ = false;
  bool failed_ = false;
  int status_ = 0;
  std::function<void(int)> on_respond_;
};

using Handler = std::function<void(const HttpRequest&, ResponseWriter&)>;
// The body the I/O thread sends with its own error answers (parse errors, timeouts, 503
// when the queue is full): a status and a message -> (content type, body).
using ErrorBody = std::function<std::pair<std::string, std::string>(int status, const std::string& message)>;

class Server {
 public:
  // Binds and starts the I/O thread and the workers. serve.bind_failed when the address
  // cannot be bound. `log` must outlive the server.
  static Result<std::unique_ptr<Server>> start(ServerOptions options, Handler handler,
                                               ErrorBody error_body, Logger& log);
  ~Server();  // stop(0ms)
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  std::uint16_t port() const;
  // Stops accepting and closes idle connections; requests in flight go on. Idempotent.
  void begin_drain();
  bool draining() const;
  // begin_drain(), waits up to `drain_timeout` for requests in flight, cancels those still
  // running, and joins every thread. Idempotent; blocks.
  void stop(std::chrono::milliseconds drain_timeout);
  std::size_t open_connections() const;
  std::size_t requests_in_flight() const;

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cyllm::http

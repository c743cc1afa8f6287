// A small blocking HTTP/1.1 client for the load generator (bench/serve) and the tests of
// the HTTP API: one keep-alive connection, Content-Length and chunked responses delivered
// as they arrive, and a reader of server-sent events. Plain TCP only (no TLS); for the
// network-facing downloads the project uses libcurl (cyllm/fetch.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cyllm/error.h"

namespace cyllm::http {

struct ClientResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;  // the whole body, unless an on_body callback took it
  const std::string* header(std::string_view lower_name) const;
};

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds io_timeout{120000};  // longest wait for any byte
};

// One connection, reopened when the server closed it. Not thread-safe; use one per thread.
class HttpClient {
 public:
  HttpClient(std::string host, std::uint16_t port, ClientOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request and reads the response. `on_body` (optional) receives the body bytes
  // (de-chunked) as they arrive and returns false to abandon the response (the connection
  // is closed). Errors: fetch.network (connect, reset, timeout, malformed response).
  Result<ClientResponse> request(std::string_view method, std::string_view target,
                                 std::string_view body = {},
                                 const std::vector<std::pair<std::string, std::string>>& headers = {},
                                 const std::function<bool(std::string_view)>& on_body = {});
  void close();

 private:
  Result<void> connect();
  Result<void> send_all(std::string_view data);
  Result<std::size_t> fill();  // reads more bytes into buf_; 0 at EOF

  std::string host_;
  std::uint16_t port_;
  ClientOptions opt_;
  int fd_ = -1;
  std::string buf_;
};

// Splits a text/event-stream body into events; calls on_data with each event's data
// (its "data:" lines joined with '\n'). Comments and other fields are skipped.
class SseReader {
 public:
  void feed(std::string_view bytes, const std::function<void(std::string_view data)>& on_data);

 private:
  std::string buf_;
  std::string data_;
  bool has_data_ = false;
};

}  // namespace cyllm::http

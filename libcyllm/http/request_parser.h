// An incremental HTTP/1.1 request parser (RFC 9112) for the server in http/server.cpp.
//
// Format accepted:
//   request-line  = method SP request-target SP "HTTP/1." ("0" | "1") CRLF
//   header-field  = field-name ":" OWS field-value OWS CRLF      (at most max_headers)
//   empty line    = CRLF                     (request line + fields <= max_header_bytes)
//   body          = exactly Content-Length bytes (0 when absent)  (<= max_body_bytes)
// Bare LF is accepted as a line end (RFC 9112 2.2); empty lines before the request line
// are skipped. Refused, with the status the server answers:
//   400 malformed line, field name with spaces, obs-fold, control bytes, bad or
//       conflicting Content-Length, Content-Length with Transfer-Encoding, 1.1 without Host
//   411 Transfer-Encoding: chunked (request bodies must carry a Content-Length)
//   501 any other Transfer-Encoding     505 an HTTP version other than 1.0/1.1
//   413 Content-Length above max_body_bytes (decided before any body byte is read)
//   431 header section above max_header_bytes or more than max_headers fields
//
// Design goals: bytes may arrive one at a time (slow clients, fuzzing); pipelined requests
// stay buffered for the next take(); memory is bounded by the limits plus one read.
// Non-goals: chunked request bodies, trailers, absolute-form targets beyond storing them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cyllm::http {

struct Header {
  std::string name;   // lower-cased
  std::string value;  // without surrounding whitespace
};

struct HttpRequest {
  std::string method;  // as sent (case-sensitive)
  std::string target;  // as sent
  std::string path;    // target up to '?'
  std::string query;   // after '?', "" when none
  int version_minor = 1;  // HTTP/1.<version_minor>
  std::vector<Header> headers;
  std::string body;

  // First field with that (lower-case) name; nullptr when absent.
  const std::string* header(std::string_view lower_name) const;
  // HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with "Connection: keep-alive".
  bool keep_alive() const;
};

struct ParserLimits {
  std::size_t max_header_bytes = 16 << 10;
  std::size_t max_headers = 100;
  std::size_t max_body_bytes = 1 << 20;
};

class RequestParser {
 public:
  enum class State { NeedMore, Complete, Error };

  explicit RequestParser(ParserLimits limits = {}) : limits_(limits) {}

  // Appends bytes and parses as far as they allow. Once Complete or Error, later bytes are
  // only buffered (pipelining) until take()/reset().
  State feed(std::string_view bytes);
  State state() const { return state_; }

  // Error details (valid in State::Error): an HTTP status and a one-line reason.
  int error_status() const { return error_status_; }
  const std::string& error_message() const { return error_message_; }

  // True once any byte of the current request arrived (leading empty lines excluded).
  bool started() const { return started_; }
  // True once the header section of the current request was parsed.
  bool headers_done() const { return headers_done_; }
  // True when the headers asked "Expect: 100-continue" and the body is still to come.
  bool expects_continue() const;

  // The complete request (State::Complete); the parser then starts on the bytes buffered
  // after it, so the returned state may already be Complete again (pipelining).
  HttpRequest take();
  State resume() { return parse(); }
  std::size_t buffered_bytes() const { return buf_.size(); }

 private:
  State parse();
  State fail(int status, std::string message);
  bool parse_head(std::string_view head);  // request line + fields; false after fail()

  ParserLimits limits_;
  std::string buf_;  // bytes not consumed yet (current request from its start)
  std::size_t scan_from_ = 0;  // where the search for the end of the head resumes
  State state_ = State::NeedMore;
  bool started_ = false;
  bool headers_done_ = false;
  bool expect_continue_ = false;
  std::size_t head_len_ = 0;  // bytes of the head in buf_, including the empty line
  std::uint64_t content_length_ = 0;
  HttpRequest req_;
  int error_status_ = 0;
  std::string error_message_;
};

}  // namespace cyllm::http

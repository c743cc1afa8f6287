#include "http/request_parser.h"

#include <algorithm>
#include <utility>

#include "cyllm/error.h"
#include "util/strings.h"

namespace cyllm::http {
namespace {

// RFC 9110 5.6.2 token characters.
bool is_tchar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!is_tchar(c)) return false;
  return true;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string_view strip_cr(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

const std::string* HttpRequest::header(std::string_view lower_name) const {
  for (const auto& h : headers)
    if (h.name == lower_name) return &h.value;
  return nullptr;
}

bool HttpRequest::keep_alive() const {
  const std::string* c = header("connection");
  std::string v = c ? util::to_lower(*c) : std::string();
  if (version_minor == 0) return v.find("keep-alive") != std::string::npos;
  return v.find("close") == std::string::npos;
}

bool RequestParser::expects_continue() const {
  return state_ == State::NeedMore && headers_done_ && expect_continue_ &&
         buf_.size() < head_len_ + content_length_;
}

RequestParser::State RequestParser::feed(std::string_view bytes) {
  buf_.append(bytes.data(), bytes.size());
  return parse();
}

RequestParser::State RequestParser::fail(int status, std::string message) {
  state_ = State::Error;
  error_status_ = status;
  error_message_ = std::move(message);
  return state_;
}

RequestParser::State RequestParser::parse() {
  if (state_ != State::NeedMore) return state_;
  if (!started_) {
    // Skip empty lines before the request line (RFC 9112 2.2).
    std::size_t i = 0;
    for (;;) {
      if (i < buf_.size() && buf_[i] == '\n') {
        ++i;
      } else if (i + 1 < buf_.size() && buf_[i] == '\r' && buf_[i + 1] == '\n') {
        i += 2;
      } else {
        break;
      }
    }
    buf_.erase(0, i);
    if (buf_.empty() || (buf_.size() == 1 && buf_[0] == '\r')) return State::NeedMore;
    started_ = true;
  }
  if (!headers_done_) {
    for (;;) {
      const std::size_t nl = buf_.find('\n', scan_from_);
      if (nl == std::string::npos) {
        if (buf_.size() > limits_.max_header_bytes)
          return fail(431, "the request header section exceeds " +
                               std::to_string(limits_.max_header_bytes) + " bytes");
        return State::NeedMore;
      }
      const std::string_view line =
          strip_cr(std::string_view(buf_).substr(scan_from_, nl - scan_from_));
      scan_from_ = nl + 1;
      if (scan_from_ > limits_.max_header_bytes)
        return fail(431, "the request header section exceeds " +
                             std::to_string(limits_.max_header_bytes) + " bytes");
      if (line.empty()) break;
    }
    head_len_ = scan_from_;
    if (!parse_head(std::string_view(buf_).substr(0, head_len_))) return state_;
    headers_done_ = true;
  }
  if (buf_.size() - head_len_ < content_length_) return State::NeedMore;
  req_.body.assign(buf_, head_len_, static_cast<std::size_t>(content_length_));
  state_ = State::Complete;
  return state_;
}

bool RequestParser::parse_head(std::string_view head) {
  auto lines = util::split(head, '\n');
  // The head ends with the empty line: drop it (and the empty piece after its '\n').
  while (!lines.empty() && strip_cr(lines.back()).empty()) lines.pop_back();
  if (lines.empty()) return fail(400, "empty request line"), false;

  // Request line.
  const std::string_view rl = strip_cr(lines[0]);
  const auto sp1 = rl.find(' ');
  const auto sp2 = sp1 == std::string_view::npos ? sp1 : rl.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || rl.find(' ', sp2 + 1) != std::string_view::npos)
    return fail(400, "malformed request line " + util::quote(rl)), false;
  const std::string_view method = rl.substr(0, sp1);
  const std::string_view target = rl.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = rl.substr(sp2 + 1);
  if (!is_token(method)) return fail(400, "malformed method " + util::quote(method)), false;
  if (target.empty()) return fail(400, "empty request target"), false;
  for (char c : target) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return fail(400, "invalid byte in request target"), false;
  }
  if (version == "HTTP/1.1") {
    req_.version_minor = 1;
  } else if (version == "HTTP/1.0") {
    req_.version_minor = 0;
  } else if (version.size() == 8 && version.substr(0, 5) == "HTTP/" && version[5] >= '0' &&
             version[5] <= '9' && version[6] == '.' && version[7] >= '0' && version[7] <= '9') {
    return fail(505, "HTTP version " + std::string(version) + " is not supported"), false;
  } else {
    return fail(400, "malformed HTTP version " + util::quote(version)), false;
  }
  req_.method.assign(method);
  req_.target.assign(target);
  const auto q = target.find('?');
  req_.path.assign(target.substr(0, q));
  req_.query.assign(q == std::string_view::npos ? std::string_view() : target.substr(q + 1));

  // Header fields.
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const std::string_view line = strip_cr(lines[i]);
    if (line.front() == ' ' || line.front() == '\t')
      return fail(400, "obsolete line folding in header fields"), false;
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) return fail(400, "header line without ':'"), false;
    const std::string_view name = line.substr(0, colon);
    if (!is_token(name)) return fail(400, "malformed header name " + util::quote(name)), false;
    const std::string_view value = trim_ows(line.substr(colon + 1));
    for (char c : value) {
      const auto u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t') || u == 0x7f)
        return fail(400, "control byte in header " + util::quote(name)), false;
    }
    if (req_.headers.size() >= limits_.max_headers)
      return fail(431, "more than " + std::to_string(limits_.max_headers) + " header fields"),
             false;
    req_.headers.push_back({util::to_lower(name), std::string(value)});
  }

  // Framing (RFC 9112 6).
  bool have_length = false;
  std::uint64_t length = 0;
  int n_host = 0;
  const std::string* te = nullptr;
  for (const auto& h : req_.headers) {
    if (h.name == "host") ++n_host;
    if (h.name == "transfer-encoding") te = &h.value;
    if (h.name == "expect" && util::to_lower(h.value) == "100-continue") expect_continue_ = true;
    if (h.name != "content-length") continue;
    for (std::string_view part : util::split(h.value, ',')) {
      part = trim_ows(part);
      if (!all_digits(part) || part.size() > 18)
        return fail(400, "invalid Content-Length " + util::quote(h.value)), false;
      const std::uint64_t v = *util::parse_u64(part);
      if (have_length && v != length)
        return fail(400, "conflicting Content-Length values"), false;
      have_length = true;
      length = v;
    }
  }
  if (te != nullptr) {
    if (have_length) return fail(400, "both Transfer-Encoding and Content-Length"), false;
    auto codings = util::split(*te, ',');
    if (util::to_lower(trim_ows(codings.back())) == "chunked")
      return fail(411, "chunked request bodies are not supported; send a Content-Length"), false;
    return fail(501, "Transfer-Encoding " + util::quote(*te) + " is not supported"), false;
  }
  if (req_.version_minor == 1 && n_host == 0) return fail(400, "HTTP/1.1 request without Host"), false;
  if (n_host > 1) return fail(400, "more than one Host header"), false;
  if (length > limits_.max_body_bytes)
    return fail(413, "the request body of " + std::to_string(length) + " bytes exceeds the limit of " +
                         std::to_string(limits_.max_body_bytes) + " bytes"),
           false;
  content_length_ = length;
  if (length == 0) expect_continue_ = false;
  return true;
}

HttpRequest RequestParser::take() {
  CYLLM_ASSERT(state_ == State::Complete);
  HttpRequest out = std::move(req_);
  buf_.erase(0, std::min(buf_.size(), head_len_ + static_cast<std::size_t>(content_length_)));
  req_ = HttpRequest{};
  scan_from_ = 0;
  state_ = State::NeedMore;
  started_ = headers_done_ = expect_continue_ = false;
  head_len_ = 0;
  content_length_ = 0;
  error_status_ = 0;
  error_message_.clear();
  parse();
  return out;
}

}  // namespace cyllm::http

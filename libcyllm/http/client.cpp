#include "cyllm/http_client.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/strings.h"

namespace cyllm::http {
namespace {

Error net(std::string message) { return Error(Errc::Network, std::move(message)); }

}  // namespace

const std::string* ClientResponse::header(std::string_view lower_name) const {
  for (const auto& h : headers)
    if (h.first == lower_name) return &h.second;
  return nullptr;
}

HttpClient::HttpClient(std::string host, std::uint16_t port, ClientOptions options)
    : host_(std::move(host)), port_(port), opt_(options) {}

HttpClient::~HttpClient() { close(); }

void HttpClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  buf_.clear();
}

Result<void> HttpClient::connect() {
  close();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string where = host_ + ":" + std::to_string(port_);
  if (int rc = ::getaddrinfo(host_.c_str(), std::to_string(port_).c_str(), &hints, &res); rc != 0)
    return net("cannot resolve " + where + ": " + ::gai_strerror(rc));
  std::string last = "no address";
  for (addrinfo* a = res; a != nullptr && fd_ < 0; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, static_cast<int>(opt_.connect_timeout.count()));
      int err = 0;
      socklen_t len = sizeof err;
      if (rc == 1) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      else err = ETIMEDOUT;
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc != 0) {
      last = std::strerror(errno);
      ::close(fd);
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fd_ = fd;
  }
  ::freeaddrinfo(res);
  if (fd_ < 0) return net("cannot connect to " + where + ": " + last);
  return {};
}

Result<void> HttpClient::send_all(std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd_, POLLOUT, 0};
      if (::poll(&p, 1, static_cast<int>(opt_.io_timeout.count())) <= 0) return net("write timed out");
      continue;
    }
    return net(std::string("write failed: ") + std::strerror(errno));
  }
  return {};
}

Result<std::size_t> HttpClient::fill() {
  char tmp[64 << 10];
  for (;;) {
    const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n > 0) {
      buf_.append(tmp, static_cast<std::size_t>(n));
      return static_cast<std::size_t>(n);
    }
    if (n == 0) return std::size_t{0};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      pollfd p{fd_, POLLIN, 0};
      const int rc = ::poll(&p, 1, static_cast<int>(opt_.io_timeout.count()));
      if (rc == 0) return net("no answer within " + std::to_string(opt_.io_timeout.count()) + " ms");
      if (rc < 0 && errno != EINTR) return net(std::string("poll failed: ") + std::strerror(errno));
      continue;
    }
    return net(std::string("read failed: ") + std::strerror(errno));
  }
}

Result<ClientResponse> HttpClient::request(std::string_view method, std::string_view target, std::string_view body,
                                           const std::vector<std::pair<std::string, std::string>>& headers,
                                           const std::function<bool(std::string_view)>& on_body) {
  std::string req = std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: " + host_ + ":" +
                    std::to_string(port_) + "\r\n";
  bool has_type = false;
  for (const auto& [k, v] : headers) {
    req += k + ": " + v + "\r\n";
    if (util::to_lower(k) == "content-type") has_type = true;
  }
  if (!body.empty() && !has_type) req += "Content-Type: application/json\r\n";
  if (!body.empty() || method == "POST" || method == "PUT") req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n";
  req.append(body.data(), body.size());

  // A kept-alive connection the server closed meanwhile fails on first use: retry once.
  for (int attempt = 0;; ++attempt) {
    const bool reused = fd_ >= 0;
    if (!reused) CYLLM_TRY_VOID(connect());
    buf_.clear();
    auto sent = send_all(req);
    std::size_t head_end = std::string::npos;
    bool eof_early = !sent.ok();
    while (sent.ok()) {
      head_end = buf_.find("\r\n\r\n");
      if (head_end != std::string::npos) break;
      auto n = fill();
      if (!n.ok()) {
        close();
        return std::move(n).error();
      }
      if (*n == 0) {
        eof_early = true;
        break;
      }
    }
    if (eof_early) {
      close();
      if (reused && attempt == 0) continue;
      return net(sent.ok() ? "the server closed the connection without an answer" : sent.error().message());
    }

    ClientResponse resp;
    for (;;) {
      resp = ClientResponse{};
      const std::string_view head(buf_.data(), head_end);
      auto lines = util::split(head, '\n');
      const std::string_view status_line = util::trim(lines[0]);
      auto parts = util::split_ws(status_line);
      auto code = parts.size() >= 2 ? util::parse_u64(parts[1]) : std::nullopt;
      if (!code || !util::starts_with(status_line, "HTTP/1.")) {
        close();
        return net("malformed status line " + util::quote(status_line));
      }
      resp.status = static_cast<int>(*code);
      for (std::size_t i = 1; i < lines.size(); ++i) {
        const std::string_view l = util::trim(lines[i]);
        const auto colon = l.find(':');
        if (colon == std::string_view::npos) continue;
        resp.headers.emplace_back(util::to_lower(l.substr(0, colon)), std::string(util::trim(l.substr(colon + 1))));
      }
      buf_.erase(0, head_end + 4);
      if (resp.status >= 200 || resp.status < 100) break;
      // 100 Continue and other interim answers: the final head follows.
      while ((head_end = buf_.find("\r\n\r\n")) == std::string::npos) {
        auto n = fill();
        if (!n.ok() || *n == 0) {
          close();
          return net("the connection ended after an interim response");
        }
      }
    }

    bool keep = true;
    if (const std::string* c = resp.header("connection"); c && util::to_lower(*c).find("close") != std::string::npos)
      keep = false;
    bool abandoned = false;
    auto deliver = [&](std::string_view piece) {
      if (piece.empty() || abandoned) return;
      if (on_body) {
        if (!on_body(piece)) abandoned = true;
      } else {
        resp.body.append(piece.data(), piece.size());
      }
    };
    const std::string* te = resp.header("transfer-encoding");
    const std::string* cl = resp.header("content-length");
    const bool no_body = method == "HEAD" || resp.status == 204 || resp.status == 304;
    if (no_body) {
    } else if (te != nullptr && util::to_lower(*te).find("chunked") != std::string::npos) {
      for (;;) {
        std::size_t eol;
        while ((eol = buf_.find("\r\n")) == std::string::npos) {
          auto n = fill();
          if (!n.ok() || *n == 0) {
            close();
            return net("the chunked body ended early");
          }
        }
        auto size_text = std::string_view(buf_).substr(0, eol);
        if (auto semi = size_text.find(';'); semi != std::string_view::npos) size_text = size_text.substr(0, semi);
        auto size = util::parse_hex_u64(util::trim(size_text));
        if (!size || *size > (1ull << 32)) {
          close();
          return net("malformed chunk size " + util::quote(size_text));
        }
        buf_.erase(0, eol + 2);
        if (*size == 0) {
          // Trailers, then the empty line.
          while ((eol = buf_.find("\r\n")) != 0) {
            if (eol == std::string::npos) {
              auto n = fill();
              if (!n.ok() || *n == 0) {
                close();
                return net("the chunked body ended early");
              }
            } else {
              buf_.erase(0, eol + 2);
            }
          }
          buf_.erase(0, 2);
          break;
        }
        std::uint64_t left = *size;
        while (left > 0) {
          if (buf_.empty()) {
            auto n = fill();
            if (!n.ok() || *n == 0) {
              close();
              return net("the chunked body ended early");
            }
          }
          const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(left, buf_.size()));
          deliver(std::string_view(buf_).substr(0, take));
          buf_.erase(0, take);
          left -= take;
          if (abandoned) {
            close();
            return resp;
          }
        }
        while (buf_.size() < 2) {
          auto n = fill();
          if (!n.ok() || *n == 0) {
            close();
            return net("the chunked body ended early");
          }
        }
        buf_.erase(0, 2);
      }
    } else if (cl != nullptr) {
      auto len = util::parse_u64(*cl);
      if (!len) {
        close();
        return net("malformed Content-Length " + util::quote(*cl));
      }
      std::uint64_t left = *len;
      while (left > 0) {
        if (buf_.empty()) {
          auto n = fill();
          if (!n.ok() || *n == 0) {
            close();
            return net("the body ended early");
          }
        }
        const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(left, buf_.size()));
        deliver(std::string_view(buf_).substr(0, take));
        buf_.erase(0, take);
        left -= take;
        if (abandoned) {
          close();
          return resp;
        }
      }
    } else {  // until the connection closes
      keep = false;
      for (;;) {
        deliver(buf_);
        buf_.clear();
        if (abandoned) break;
        auto n = fill();
        if (!n.ok()) {
          close();
          return std::move(n).error();
        }
        if (*n == 0) break;
      }
    }
    if (!keep || abandoned) close();
    return resp;
  }
}

void SseReader::feed(std::string_view bytes, const std::function<void(std::string_view)>& on_data) {
  buf_.append(bytes.data(), bytes.size());
  std::size_t start = 0;
  for (;;) {
    const auto nl = buf_.find('\n', start);
    if (nl == std::string::npos) break;
    std::string_view line(buf_.data() + start, nl - start);
    start = nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {  // end of event
      if (has_data_) on_data(data_);
      data_.clear();
      has_data_ = false;
      continue;
    }
    if (line.front() == ':') continue;  // comment
    const auto colon = line.find(':');
    const std::string_view field = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (field == "data") {
      if (has_data_) data_ += '\n';
      data_.append(value.data(), value.size());
      has_data_ = true;
    }
  }
  buf_.erase(0, start);
}

}  // namespace cyllm::http

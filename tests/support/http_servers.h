// Loopback HTTP servers for the fetch tests (header-only so each test executable that needs
// them simply includes it):
//   FaultServer   a small HTTP/1.1 server on 127.0.0.1 with per-path fault injection
//                 (drop mid-body, 503/429 then success, ignore Range, 416, redirects,
//                 stalls, error statuses) and a record of every request it saw.
//   NginxServer   Debian's nginx started with a generated config (plain or TLS) serving a
//                 directory, `daemon off`, stopped by the destructor.
// Written by hand because the behaviours are the point: no library server lets a test
// cut a body at byte N or lie about ranges.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cyllm::test {

struct SeenRequest {
  std::string method, path;
  std::map<std::string, std::string> headers;  // lower-case keys
  std::string header(const std::string& k) const {
    auto it = headers.find(k);
    return it == headers.end() ? "" : it->second;
  }
};

struct Route {
  std::string body;
  std::string etag = "\"v1\"";
  int fail_first = 0;                 // answer fail_status this many times first
  int fail_status = 503;
  std::string retry_after;            // sent with fail_status
  std::size_t drop_after_bytes = 0;   // first 200/206 body: close after this many bytes
  int drops = 1;                      // how many responses are cut
  bool ignore_range = false;          // always 200 with the whole body
  bool always_416 = false;            // answer 416 to any Range (bytes */size)
  int stall_ms = 0;                   // first body: send half, then sleep this long
  std::string redirect_to;            // 302 to this absolute URL
  int status = 200;                   // a fixed error status instead of the body
  std::vector<std::string> extra_headers;
  std::string content_type = "application/octet-stream";
  // Internal counters.
  int served = 0;
};

class FaultServer {
 public:
  FaultServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 64);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    accept_thread_ = std::thread([this] { accept_loop(); });
  }
  ~FaultServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    accept_thread_.join();
    std::vector<std::thread> ts;
    {
      std::lock_guard<std::mutex> g(mu_);
      ts.swap(conns_);
    }
    for (auto& t : ts) t.join();
  }
  int port() const { return port_; }
  std::string url(const std::string& path, const std::string& host = "127.0.0.1") const {
    return "http://" + host + ":" + std::to_string(port_) + path;
  }
  void route(const std::string& path, Route r) {
    std::lock_guard<std::mutex> g(mu_);
    routes_[path] = std::move(r);
  }
  std::vector<SeenRequest> requests() const {
    std::lock_guard<std::mutex> g(mu_);
    return seen_;
  }
  int count(const std::string& path) const {
    std::lock_guard<std::mutex> g(mu_);
    int n = 0;
    for (const auto& r : seen_) n += r.path == path;
    return n;
  }

 private:
  void accept_loop() {
    while (!stop_) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (stop_) return;
        continue;
      }
      std::lock_guard<std::mutex> g(mu_);
      conns_.emplace_back([this, c] { serve(c); });
    }
  }

  static bool send_all(int c, const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(c, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<std::size_t>(n);
    }
    return true;
  }

  void serve(int c) {
    timeval tv{5, 0};
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string buf;
    for (;;) {  // keep-alive loop
      std::size_t end;
      while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
        char tmp[4096];
        ssize_t n = ::recv(c, tmp, sizeof tmp, 0);
        if (n <= 0 || stop_) {
          ::close(c);
          return;
        }
        buf.append(tmp, static_cast<std::size_t>(n));
      }
      std::string head = buf.substr(0, end);
      buf.erase(0, end + 4);
      SeenRequest req;
      std::size_t p = head.find("\r\n");
      std::string first = head.substr(0, p);
      auto sp1 = first.find(' '), sp2 = first.rfind(' ');
      req.method = first.substr(0, sp1);
      req.path = first.substr(sp1 + 1, sp2 - sp1 - 1);
      while (p != std::string::npos && p < head.size()) {
        std::size_t q = head.find("\r\n", p + 2);
        std::string line = head.substr(p + 2, q == std::string::npos ? std::string::npos : q - p - 2);
        auto colon = line.find(':');
        if (colon != std::string::npos) {
          std::string k = line.substr(0, colon), v = line.substr(colon + 1);
          for (auto& ch : k) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          while (!v.empty() && v.front() == ' ') v.erase(0, 1);
          req.headers[k] = v;
        }
        p = q;
      }
      if (!respond(c, req)) {
        ::close(c);
        return;
      }
    }
  }

  // Returns false when the connection must be closed.
  bool respond(int c, const SeenRequest& req) {
    Route r;
    bool cut = false, stall = false;
    {
      std::lock_guard<std::mutex> g(mu_);
      seen_.push_back(req);
      auto it = routes_.find(req.path);
      if (it == routes_.end()) {
        r.status = 404;
      } else {
        Route& live = it->second;
        r = live;
        ++live.served;
        if (live.fail_first > 0) {
          --live.fail_first;
          r.status = live.fail_status;
        } else if (r.status == 200 && r.redirect_to.empty()) {
          if (live.drop_after_bytes > 0 && live.drops > 0) {
            --live.drops;
            cut = true;
          }
          if (live.stall_ms > 0) {
            stall = true;
            live.stall_ms = 0;
          }
        }
      }
    }
    std::string extra;
    for (const auto& h : r.extra_headers) extra += h + "\r\n";
    if (!r.redirect_to.empty() && r.status == 200)
      return send_all(c, "HTTP/1.1 302 Found\r\nLocation: " + r.redirect_to + "\r\n" + extra +
                             "Content-Length: 0\r\n\r\n");
    if (r.status != 200) {
      std::string body = "error page " + std::to_string(r.status) + " (must never reach a file)\n";
      if (!r.retry_after.empty()) extra += "Retry-After: " + r.retry_after + "\r\n";
      return send_all(c, "HTTP/1.1 " + std::to_string(r.status) + " X\r\n" + extra +
                             "Content-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
    }
    const std::size_t size = r.body.size();
    std::size_t start = 0;
    bool partial = false;
    std::string range = req.header("range");
    if (!range.empty() && !r.ignore_range) {
      if (r.always_416)
        return send_all(c, "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */" + std::to_string(size) +
                               "\r\nContent-Length: 0\r\n\r\n");
      std::string ifr = req.header("if-range");
      if (ifr.empty() || ifr == r.etag) {
        start = std::stoull(range.substr(6));
        if (start >= size)
          return send_all(c, "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */" + std::to_string(size) +
                                 "\r\nContent-Length: 0\r\n\r\n");
        partial = true;
      }
    }
    std::string body = r.body.substr(start);
    std::string h = partial ? "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes " + std::to_string(start) + "-" +
                                  std::to_string(size - 1) + "/" + std::to_string(size) + "\r\n"
                            : std::string("HTTP/1.1 200 OK\r\n");
    h += "ETag: " + r.etag + "\r\nAccept-Ranges: bytes\r\nContent-Type: " + r.content_type + "\r\n" + extra +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    if (!send_all(c, h)) return false;
    if (cut) {
      send_all(c, body.substr(0, std::min(body.size(), r.drop_after_bytes)));
      ::shutdown(c, SHUT_RDWR);
      return false;
    }
    if (stall) {
      send_all(c, body.substr(0, body.size() / 2));
      for (int waited = 0; waited < r.stall_ms && !stop_; waited += 50)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      ::shutdown(c, SHUT_RDWR);
      return false;
    }
    return send_all(c, body);
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread accept_thread_;
  mutable std::mutex mu_;
  std::vector<std::thread> conns_;
  std::map<std::string, Route> routes_;
  std::vector<SeenRequest> seen_;
};

// A free TCP port on 127.0.0.1 (bound then released; a race is possible but harmless in tests).
inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

inline bool port_open(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// nginx serving `root` on 127.0.0.1:<port>; with cert/key set, HTTPS + HTTP/2.
class NginxServer {
 public:
  NginxServer(const std::filesystem::path& prefix, const std::filesystem::path& root, const std::string& cert = "",
              const std::string& key = "")
      : port_(free_port()) {
    std::filesystem::create_directories(prefix / "logs");
    std::ofstream conf(prefix / "nginx.conf");
    conf << (::geteuid() == 0 ? "user root;\n" : "") << "daemon off;\nmaster_process off;\nworker_processes 1;\n"
         << "pid " << (prefix / "nginx.pid").string() << ";\n"
         << "error_log " << (prefix / "logs/error.log").string() << " warn;\n"
         << "events { worker_connections 1024; }\n"
         << "http {\n  access_log " << (prefix / "logs/access.log").string() << ";\n"
         << "  client_body_temp_path " << prefix.string() << "/tmp_body;\n"
         << "  proxy_temp_path " << prefix.string() << "/tmp_proxy;\n"
         << "  fastcgi_temp_path " << prefix.string() << "/tmp_fcgi;\n"
         << "  uwsgi_temp_path " << prefix.string() << "/tmp_uwsgi;\n"
         << "  scgi_temp_path " << prefix.string() << "/tmp_scgi;\n"
         << "  sendfile on; tcp_nopush on; keepalive_requests 100000;\n"
         << "  default_type application/octet-stream;\n"
         << "  server {\n    listen 127.0.0.1:" << port_ << (cert.empty() ? "" : " ssl http2") << ";\n"
         << (cert.empty() ? "" : "    ssl_certificate " + cert + ";\n    ssl_certificate_key " + key + ";\n")
         << "    root " << root.string() << ";\n  }\n}\n";
    conf.close();
    pid_ = ::fork();
    if (pid_ == 0) {
      std::string p = prefix.string() + "/", c = (prefix / "nginx.conf").string();
      ::execl("/usr/sbin/nginx", "nginx", "-p", p.c_str(), "-c", c.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 100 && !port_open(port_); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    access_log_ = prefix / "logs/access.log";
  }
  ~NginxServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
  }
  bool running() const { return port_open(port_); }
  int port() const { return port_; }
  std::string url(const std::string& path, bool tls = false) const {
    return std::string(tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::string access_log() const {
    std::ifstream f(access_log_);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  }
  // Requests logged so far for a path (nginx writes each access log line at once).
  int count(const std::string& path) const {
    std::ifstream f(access_log_);
    std::string line;
    int n = 0;
    while (std::getline(f, line)) n += line.find("GET " + path + " ") != std::string::npos;
    return n;
  }

 private:
  int port_;
  pid_t pid_ = -1;
  std::filesystem::path access_log_;
};

}  // namespace cyllm::test

#include "http/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

namespace cyllm::http {

using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kLinger = std::chrono::milliseconds(2000);

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

int ms_until(Clock::time_point t, Clock::time_point now) {
  if (t <= now) return 0;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - now).count() + 1;
  return static_cast<int>(std::min<long long>(ms, 1 << 30));
}

}  // namespace

struct Connection {
  enum class Phase { Reading, Busy, Closing };
  int fd = -1;
  std::uint64_t id = 0;
  RequestParser parser;
  std::atomic<bool> cancel{false};
  int version_minor = 1;  // of the request being answered
  // I/O-thread state.
  Phase phase = Phase::Reading;
  Clock::time_point deadline;
  bool continue_sent = false;
  bool hup_seen = false;

  Connection(int f, std::uint64_t i, ParserLimits l) : fd(f), id(i), parser(l) {}
};

// ---- ResponseWriter -------------------------------------------------------------------

ResponseWriter::ResponseWriter(Connection& conn, std::chrono::milliseconds write_timeout,
                               bool close_after)
    : conn_(conn), write_timeout_(write_timeout), close_after_(close_after) {}

bool ResponseWriter::client_gone() const {
  return failed_ || conn_.cancel.load(std::memory_order_relaxed);
}

const std::atomic<bool>* ResponseWriter::cancel_flag() const { return &conn_.cancel; }

std::uint64_t ResponseWriter::connection_id() const { return conn_.id; }

bool ResponseWriter::write_all(std::string_view data) {
  if (failed_) return false;
  const auto deadline = Clock::now() + write_timeout_;
  while (!data.empty()) {
    const ssize_t n = ::send(conn_.fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const auto now = Clock::now();
      if (now >= deadline) break;
      pollfd p{conn_.fd, POLLOUT, 0};
      ::poll(&p, 1, std::min(ms_until(deadline, now), 200));
      continue;
    }
    break;  // EPIPE, ECONNRESET, ...
  }
  if (!data.empty()) {
    failed_ = true;
    conn_.cancel.store(true);
    return false;
  }
  return true;
}

std::string ResponseWriter::head(int status, std::string_view content_type,
                                 const std::vector<Header>& extra, std::string_view length_line) {
  std::string h = "HTTP/1." + std::to_string(conn_.version_minor) + " " + std::to_string(status) + " " +
                  std::string(reason_phrase(status)) + "\r\n";
  if (!content_type.empty()) h += "Content-Type: " + std::string(content_type) + "\r\n";
  h += length_line;
  for (const auto& e : extra) h += e.name + ": " + e.value + "\r\n";
  h += close_after_ ? "Connection: close\r\n" : (conn_.version_minor == 0 ? "Connection: keep-alive\r\n" : "");
  h += "\r\n";
  return h;
}

bool ResponseWriter::send(int status, std::string_view content_type, std::string_view body,
                          const std::vector<Header>& extra) {
  CYLLM_ASSERT(!responded_);
  responded_ = true;
  status_ = status;
  if (on_respond_) on_respond_(status);
  std::string out = head(status, content_type, extra, "Content-Length: " + std::to_string(body.size()) + "\r\n");
  out.append(body.data(), body.size());
  return write_all(out);
}

bool ResponseWriter::begin_stream(int status, std::string_view content_type, const std::vector<Header>& extra) {
  CYLLM_ASSERT(!responded_);
  responded_ = true;
  streaming_ = true;
  status_ = status;
  if (on_respond_) on_respond_(status);
  // HTTP/1.0 has no chunked coding: the body ends when the connection closes.
  if (conn_.version_minor == 0) close_after_ = true;
  return write_all(head(status, content_type, extra,
                        conn_.version_minor == 0 ? "" : "Transfer-Encoding: chunked\r\n"));
}

bool ResponseWriter::write(std::string_view data) {
  CYLLM_ASSERT(streaming_ && !ended_);
  if (data.empty()) return !client_gone();
  if (conn_.version_minor == 0) return write_all(data);
  char size[24];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  std::string out = size;
  out.append(data.data(), data.size());
  out += "\r\n";
  return write_all(out);
}

bool ResponseWriter::end() {
  CYLLM_ASSERT(streaming_);
  if (ended_) return !failed_;
  ended_ = true;
  if (conn_.version_minor == 0) return !failed_;
  return write_all("0\r\n\r\n");
}

// ---- Server ---------------------------------------------------------------------------

struct Server::Impl {
  ServerOptions opt;
  Handler handler;
  ErrorBody error_body;
  Logger& log;

  int listen_fd = -1;
  int wake_r = -1, wake_w = -1;
  std::uint16_t port = 0;
  std::thread io;
  std::vector<std::thread> workers;

  struct Job {
    std::shared_ptr<Connection> conn;
    HttpRequest req;
  };
  struct Done {
    std::shared_ptr<Connection> conn;
    bool keep;
  };

  mutable std::mutex mu;
  std::condition_variable cv_jobs;
  std::condition_variable cv_idle;
  std::deque<Job> jobs;
  std::vector<Done> done;
  std::vector<std::shared_ptr<Connection>> active;  // dispatched, not finished
  bool workers_exit = false;
  bool stopped = false;

  std::atomic<bool> draining{false};
  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> n_conns{0};

  // I/O thread only.
  std::map<int, std::shared_ptr<Connection>> conns;
  std::uint64_t next_id = 1;

  Impl(ServerOptions o, Handler h, ErrorBody e, Logger& l)
      : opt(std::move(o)), handler(std::move(h)), error_body(std::move(e)), log(l) {}

  void wake() {
    const char b = 1;
    [[maybe_unused]] auto r = ::write(wake_w, &b, 1);
  }

  void close_conn(const std::shared_ptr<Connection>& c) {
    if (c->fd < 0) return;
    ::close(c->fd);
    conns.erase(c->fd);
    c->fd = -1;
    n_conns.fetch_sub(1);
  }

  // An answer from the I/O thread itself, then a lingering close.
  void answer_error(const std::shared_ptr<Connection>& c, int status, const std::string& message) {
    auto [type, body] = error_body(status, message);
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason_phrase(status)) +
                      "\r\nContent-Type: " + type + "\r\nContent-Length: " + std::to_string(body.size()) +
                      "\r\nConnection: close\r\n\r\n" + body;
    [[maybe_unused]] auto n = ::send(c->fd, out.data(), out.size(), MSG_NOSIGNAL);
    ::shutdown(c->fd, SHUT_WR);
    c->phase = Connection::Phase::Closing;
    c->deadline = Clock::now() + kLinger;
  }

  void dispatch(const std::shared_ptr<Connection>& c) {
    HttpRequest req = c->parser.take();
    {
      std::lock_guard lk(mu);
      if (jobs.size() >= opt.max_pending) {
        answer_error(c, 503, "the server has " + std::to_string(jobs.size()) + " requests waiting; retry later");
        return;
      }
      c->phase = Connection::Phase::Busy;
      c->cancel.store(false);
      c->hup_seen = false;
      c->continue_sent = false;
      c->version_minor = req.version_minor;
      active.push_back(c);
      jobs.push_back({c, std::move(req)});
    }
    cv_jobs.notify_one();
  }

  // After bytes arrived or a connection came back: act on the parser's state.
  void advance(const std::shared_ptr<Connection>& c) {
    switch (c->parser.state()) {
      case RequestParser::State::Complete:
        dispatch(c);
        return;
      case RequestParser::State::Error:
        answer_error(c, c->parser.error_status(), c->parser.error_message());
        return;
      case RequestParser::State::NeedMore:
        if (c->parser.expects_continue() && !c->continue_sent) {
          c->continue_sent = true;
          static constexpr std::string_view k100 = "HTTP/1.1 100 Continue\r\n\r\n";
          [[maybe_unused]] auto n = ::send(c->fd, k100.data(), k100.size(), MSG_NOSIGNAL);
        }
        return;
    }
  }

  void read_from(const std::shared_ptr<Connection>& c) {
    char buf[64 << 10];
    for (;;) {
      const ssize_t n = ::recv(c->fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n <= 0) {  // EOF or error: the client is gone (a partial request is dropped)
        close_conn(c);
        return;
      }
      if (c->phase == Connection::Phase::Closing) continue;  // draining before close
      const bool was_started = c->parser.started(), had_headers = c->parser.headers_done();
      c->parser.feed(std::string_view(buf, static_cast<std::size_t>(n)));
      const auto now = Clock::now();
      if (!was_started && c->parser.started()) c->deadline = now + opt.header_timeout;
      if (!had_headers && c->parser.headers_done()) c->deadline = now + opt.body_timeout;
      if (c->parser.state() != RequestParser::State::NeedMore) break;
    }
    if (c->phase == Connection::Phase::Reading) advance(c);
  }

  void accept_new() {
    while (listen_fd >= 0 && n_conns.load() < opt.max_connections) {
      const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
          log.log(LogLevel::Warn, "accept failed", {{"errno", std::strerror(errno)}});
        return;
      }
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto c = std::make_shared<Connection>(fd, next_id++, opt.limits);
      c->deadline = Clock::now() + opt.header_timeout;
      conns[fd] = c;
      n_conns.fetch_add(1);
    }
  }

  void io_loop() {
    std::vector<pollfd> pfds;
    std::vector<std::shared_ptr<Connection>> order;
    for (;;) {
      std::vector<Done> finished;
      {
        std::lock_guard lk(mu);
        finished.swap(done);
      }
      for (auto& d : finished) {
        if (d.conn->fd < 0) continue;
        if (!d.keep || draining.load()) {
          close_conn(d.conn);
          continue;
        }
        d.conn->phase = Connection::Phase::Reading;
        d.conn->deadline = Clock::now() + (d.conn->parser.started() ? opt.header_timeout : opt.idle_timeout);
        advance(d.conn);
      }
      if (stopping.load()) break;
      if (draining.load()) {
        if (listen_fd >= 0) {
          ::close(listen_fd);
          listen_fd = -1;
        }
        std::vector<std::shared_ptr<Connection>> idle;
        for (auto& [fd, c] : conns)
          if (c->phase == Connection::Phase::Reading && !c->parser.started()) idle.push_back(c);
        for (auto& c : idle) close_conn(c);
      }

      auto now = Clock::now();
      std::vector<std::shared_ptr<Connection>> expired;
      for (auto& [fd, c] : conns)
        if (c->phase != Connection::Phase::Busy && c->deadline <= now) expired.push_back(c);
      for (auto& c : expired) {
        if (c->phase == Connection::Phase::Reading && c->parser.started()) {
          answer_error(c, 408, c->parser.headers_done() ? "the request body did not arrive in time"
                                                        : "the request headers did not arrive in time");
        } else {
          close_conn(c);
        }
      }

      pfds.clear();
      order.clear();
      pfds.push_back({wake_r, POLLIN, 0});
      const bool listening = listen_fd >= 0 && n_conns.load() < opt.max_connections;
      if (listening) pfds.push_back({listen_fd, POLLIN, 0});
      int timeout_ms = 1000;
      now = Clock::now();
      for (auto& [fd, c] : conns) {
        short events = 0;
        switch (c->phase) {
          case Connection::Phase::Reading: events = POLLIN | POLLRDHUP; break;
          case Connection::Phase::Closing: events = POLLIN; break;
          case Connection::Phase::Busy: events = c->hup_seen ? 0 : POLLRDHUP; break;
        }
        if (c->phase != Connection::Phase::Busy) timeout_ms = std::min(timeout_ms, ms_until(c->deadline, now));
        if (c->phase == Connection::Phase::Busy && c->hup_seen) continue;
        pfds.push_back({fd, events, 0});
        order.push_back(c);
      }
      const int rc = ::poll(pfds.data(), pfds.size(), timeout_ms);
      if (rc < 0 && errno != EINTR) {
        log.log(LogLevel::Error, "poll failed", {{"errno", std::strerror(errno)}});
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (rc <= 0) continue;
      if (pfds[0].revents & POLLIN) {
        char b[256];
        while (::read(wake_r, b, sizeof b) > 0) {
        }
      }
      const std::size_t first = listening ? 2 : 1;
      for (std::size_t i = first; i < pfds.size(); ++i) {
        const short rev = pfds[i].revents;
        auto& c = order[i - first];
        if (rev == 0 || c->fd < 0) continue;
        if (c->phase == Connection::Phase::Busy) {
          if (rev & (POLLRDHUP | POLLHUP | POLLERR)) {
            c->hup_seen = true;
            c->cancel.store(true);
          }
          continue;
        }
        read_from(c);
      }
      if (listening && (pfds[1].revents & POLLIN)) accept_new();
    }
    // Exit: close everything.
    if (listen_fd >= 0) ::close(listen_fd);
    listen_fd = -1;
    std::vector<std::shared_ptr<Connection>> all;
    for (auto& [fd, c] : conns) all.push_back(c);
    for (auto& c : all) close_conn(c);
  }

  void worker_loop() {
    for (;;) {
      Job job;
      {
        std::unique_lock lk(mu);
        cv_jobs.wait(lk, [&] { return workers_exit || !jobs.empty(); });
        if (jobs.empty()) return;
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      const bool close_after = draining.load() || !job.req.keep_alive();
      ResponseWriter w(*job.conn, opt.write_timeout, close_after);
      try {
        handler(job.req, w);
      } catch (...) {
        log.log(LogLevel::Error, "request handler threw", {{"path", job.req.path}});
      }
      if (!w.responded()) {
        auto [type, body] = error_body(500, "the request handler gave no answer");
        w.send(500, type, body);
      }
      const bool keep = w.reusable() && !draining.load();
      {
        std::lock_guard lk(mu);
        active.erase(std::find(active.begin(), active.end(), job.conn));
        done.push_back({std::move(job.conn), keep});
      }
      cv_idle.notify_all();
      wake();
    }
  }
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { stop(std::chrono::milliseconds(0)); }

Result<std::unique_ptr<Server>> Server::start(ServerOptions options, Handler handler,
                                              ErrorBody error_body, Logger& log) {
  auto impl = std::make_unique<Impl>(std::move(options), std::move(handler), std::move(error_body), log);
  const std::string where = impl->opt.host + ":" + std::to_string(impl->opt.port);

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port_text = std::to_string(impl->opt.port);
  if (int rc = ::getaddrinfo(impl->opt.host.c_str(), port_text.c_str(), &hints, &res); rc != 0)
    return Error(Errc::BindFailed, "cannot resolve HTTP host \"" + impl->opt.host + "\": " + ::gai_strerror(rc));
  int fd = -1;
  std::string last_error = "no address";
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, impl->opt.backlog) == 0) break;
    last_error = std::strerror(errno);
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0) return Error(Errc::BindFailed, "cannot listen on " + where + ": " + last_error);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  impl->port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  impl->listen_fd = fd;
  int pipefd[2];
  if (::pipe2(pipefd, O_NONBLOCK | O_CLOEXEC) != 0) {
    ::close(fd);
    return Error(Errc::BindFailed, std::string("cannot create the wake pipe: ") + std::strerror(errno));
  }
  impl->wake_r = pipefd[0];
  impl->wake_w = pipefd[1];
  Impl* p = impl.get();
  const unsigned n_workers = std::max(1u, impl->opt.n_workers);
  for (unsigned i = 0; i < n_workers; ++i) impl->workers.emplace_back([p] { p->worker_loop(); });
  impl->io = std::thread([p] { p->io_loop(); });
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

std::uint16_t Server::port() const { return impl_->port; }

void Server::begin_drain() {
  impl_->draining.store(true);
  impl_->wake();
}

bool Server::draining() const { return impl_->draining.load(); }

std::size_t Server::open_connections() const { return impl_->n_conns.load(); }

std::size_t Server::requests_in_flight() const {
  std::lock_guard lk(impl_->mu);
  return impl_->active.size();
}

void Server::stop(std::chrono::milliseconds drain_timeout) {
  Impl& s = *impl_;
  {
    std::lock_guard lk(s.mu);
    if (s.stopped) return;
    s.stopped = true;
  }
  begin_drain();
  {
    std::unique_lock lk(s.mu);
    s.cv_idle.wait_for(lk, drain_timeout, [&] { return s.active.empty(); });
    // Past the drain timeout: cancel what still runs (the engine stops within a token),
    // then wait for the handlers to return.
    for (auto& c : s.active) c->cancel.store(true);
    s.cv_idle.wait(lk, [&] {
      for (auto& c : s.active) c->cancel.store(true);
      return s.active.empty();
    });
    s.workers_exit = true;
  }
  s.cv_jobs.notify_all();
  for (auto& t : s.workers) t.join();
  s.stopping.store(true);
  s.wake();
  s.io.join();
  ::close(s.wake_r);
  ::close(s.wake_w);
}

}  // namespace cyllm::http

// HttpClient over libcurl's multi interface.
//
// Design goals: one easy handle per request, many in flight on one thread; the client
// never follows redirects (the Downloader decides what crosses hosts) and never asks for
// compressed bodies (no Accept-Encoding: we hash the bytes as stored). TLS verification
// cannot be turned off; a CA bundle may only be added.
#include <curl/curl.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <malloc.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include <cmath>
#include <list>
#include <mutex>

#include "cyllm/fetch.h"
#include "util/strings.h"

namespace cyllm::fetch {
namespace {

// The connections' sockets and their local ports: libcurl tells a transfer its connection
// only by addresses (CURLOPT_PREREQFUNCTION), and the socket is wanted for the ACK below.
class SocketTable {
 public:
  void add(curl_socket_t fd) { socks_.push_back({fd, -1}); }
  void remove(curl_socket_t fd) {
    std::erase_if(socks_, [fd](const Sock& s) { return s.fd == fd; });
  }
  curl_socket_t for_local_port(int port) {
    for (auto& s : socks_) {
      if (s.port <= 0) {  // 0: not bound yet when last looked at
        sockaddr_storage a{};
        socklen_t len = sizeof a;
        if (::getsockname(s.fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) continue;
        if (a.ss_family == AF_INET) s.port = ntohs(reinterpret_cast<sockaddr_in*>(&a)->sin_port);
        else if (a.ss_family == AF_INET6) s.port = ntohs(reinterpret_cast<sockaddr_in6*>(&a)->sin6_port);
      }
      if (s.port == port) return s.fd;
    }
    return CURL_SOCKET_BAD;
  }

 private:
  struct Sock {
    curl_socket_t fd;
    int port;  // -1 until looked up; a socket is bound when it connects
  };
  std::vector<Sock> socks_;
};

struct Transfer {
  CURL* easy = nullptr;
  SocketTable* sockets = nullptr;
  curl_socket_t fd = CURL_SOCKET_BAD;  // the connection's socket, from on_prereq
  curl_slist* headers = nullptr;
  HttpRequest request;
  TransferHandlers handlers;
  HttpResponseHead head;
  bool head_delivered = false;
  bool stopped_by_head = false;
  bool body_refused = false;
  bool stalled = false;
  curl_off_t last_bytes = -1;
  std::chrono::steady_clock::time_point last_change{};
  std::chrono::milliseconds stall_limit{0};
  char errbuf[CURL_ERROR_SIZE] = {0};
};

void deliver_head(Transfer& t) {
  if (t.head_delivered) return;
  t.head_delivered = true;
  // ACK what arrived now. A server that keeps Nagle's algorithm on (nginx with tcp_nopush,
  // as Debian ships it) holds the last partial segment of a response until the previous
  // one is acknowledged, and Linux delays that ACK by up to 40 ms on a connection that
  // alternates requests and responses. On loopback (64 KiB segments) this cost 10-40 ms
  // in most runs of 200 small files, for curl --parallel as much as for us; one
  // setsockopt per response removes it.
  if (t.fd != CURL_SOCKET_BAD) {
    int one = 1;
    ::setsockopt(t.fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
  }
  if (t.handlers.on_head && !t.handlers.on_head(t.head)) t.stopped_by_head = true;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  std::string_view s = util::trim(line);
  if (util::starts_with(line, "HTTP/")) {
    auto parts = util::split_ws(line);
    t.head = HttpResponseHead{};
    t.head_delivered = false;
    if (parts.size() >= 2) t.head.status = static_cast<long>(util::parse_u64(parts[1]).value_or(0));
  } else if (s.empty()) {
    // End of a head; 1xx heads are followed by the real one.
    if (t.head.status >= 200) deliver_head(t);
  } else if (auto colon = s.find(':'); colon != std::string_view::npos) {
    t.head.headers[util::to_lower(util::trim(s.substr(0, colon)))] = std::string(util::trim(s.substr(colon + 1)));
  }
  return size * n;
}

size_t on_write(char* data, size_t size, size_t n, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  deliver_head(t);
  if (t.stopped_by_head) return 0;
  if (t.handlers.on_body && !t.handlers.on_body(std::string_view(data, size * n))) {
    t.body_refused = true;
    return 0;
  }
  return size * n;
}

// libcurl's LOW_SPEED check averages over a window of several seconds, so a transfer that
// received a burst and then stopped is noticed late; this callback watches for a period
// with no new bytes at all.
int on_xferinfo(void* user, curl_off_t, curl_off_t dlnow, curl_off_t, curl_off_t) {
  auto& t = *static_cast<Transfer*>(user);
  auto now = std::chrono::steady_clock::now();
  if (dlnow != t.last_bytes) {
    t.last_bytes = dlnow;
    t.last_change = now;
    return 0;
  }
  if (now - t.last_change > t.stall_limit) {
    t.stalled = true;
    return 1;
  }
  return 0;
}

int on_prereq(void* user, char*, char*, int, int local_port) {
  auto& t = *static_cast<Transfer*>(user);
  t.fd = t.sockets->for_local_port(local_port);
  return CURL_PREREQFUNC_OK;
}

int on_sockopt(void* user, curl_socket_t fd, curlsocktype purpose) {
  if (purpose == CURLSOCKTYPE_IPCXN) static_cast<SocketTable*>(user)->add(fd);
  return CURL_SOCKOPT_OK;
}

int on_close_socket(void* user, curl_socket_t fd) {
  static_cast<SocketTable*>(user)->remove(fd);
  return ::close(fd);
}

TransferResult::Kind kind_for(CURLcode c) {
  switch (c) {
    case CURLE_OK: return TransferResult::Kind::Ok;
    case CURLE_OPERATION_TIMEDOUT: return TransferResult::Kind::Timeout;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS: return TransferResult::Kind::Tls;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR: return TransferResult::Kind::Connect;
    case CURLE_ABORTED_BY_CALLBACK: return TransferResult::Kind::Aborted;
    case CURLE_WRITE_ERROR: return TransferResult::Kind::WriteFailed;
    default: return TransferResult::Kind::Other;
  }
}

// libcurl allocates a transfer's receive buffer (CURLOPT_BUFFERSIZE) when it starts and
// frees it when it ends. With several transfers at once, the small allocations in between
// split the freed block, and the next transfer's buffer came from memory never touched:
// a page fault per 4 KiB received (87 to 206 of them in a 200-file run, about 10 us each
// in a small VM). libcurl's large blocks are therefore kept for its next large request.
// This state is the process's, like libcurl's global init that installs it.
class LargeBlockCache {
 public:
  static constexpr std::size_t kMin = 64u << 10, kSlots = 16;
  static LargeBlockCache& get() {
    static LargeBlockCache c;
    return c;
  }
  void* take(std::size_t n) {
    std::lock_guard<std::mutex> g(mu_);
    for (std::size_t i = used_; i-- > 0;) {
      if (size_[i] < n || size_[i] > 2 * n) continue;
      void* p = ptr_[i];
      --used_;
      ptr_[i] = ptr_[used_];
      size_[i] = size_[used_];
      return p;
    }
    return nullptr;
  }
  bool keep(void* p, std::size_t usable) {
    std::lock_guard<std::mutex> g(mu_);
    if (used_ == kSlots) return false;
    ptr_[used_] = p;
    size_[used_] = usable;
    ++used_;
    return true;
  }

 private:
  std::mutex mu_;
  void* ptr_[kSlots] = {};
  std::size_t size_[kSlots] = {};
  std::size_t used_ = 0;
};

void* kept_malloc(std::size_t n) {
  if (n >= LargeBlockCache::kMin)
    if (void* p = LargeBlockCache::get().take(n)) return p;
  return std::malloc(n);
}
void kept_free(void* p) {
  if (!p) return;
  const std::size_t usable = malloc_usable_size(p);
  if (usable >= LargeBlockCache::kMin && LargeBlockCache::get().keep(p, usable)) return;
  std::free(p);
}
void* kept_realloc(void* p, std::size_t n) { return std::realloc(p, n); }  // never a kept block
char* kept_strdup(const char* s) { return ::strdup(s); }
void* kept_calloc(std::size_t n, std::size_t size) {
  if (size != 0 && n <= SIZE_MAX / size && n * size >= LargeBlockCache::kMin) {
    void* p = kept_malloc(n * size);
    if (p) std::memset(p, 0, n * size);
    return p;
  }
  return std::calloc(n, size);
}

class CurlClient final : public HttpClient {
 public:
  explicit CurlClient(HttpOptions o) : o_(std::move(o)) {
    static std::once_flag once;  // curl_global_init is not thread-safe and must run once
    std::call_once(once, [] {
      curl_global_init_mem(CURL_GLOBAL_DEFAULT, kept_malloc, kept_free, kept_realloc, kept_strdup, kept_calloc);
    });
    multi_ = curl_multi_init();
    curl_multi_setopt(multi_, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(o_.max_parallel));
    // libcurl looks for $HOME/.netrc on every request; look once (a file that appears
    // during a run is seen by the next run).
    if (o_.use_netrc) {
      const char* home = std::getenv("HOME");
      struct stat st{};
      if (!home || ::stat((std::string(home) + "/.netrc").c_str(), &st) != 0) o_.use_netrc = false;
    }
  }
  ~CurlClient() override {
    for (auto& t : transfers_) cleanup(t);
    for (CURL* e : idle_) curl_easy_cleanup(e);
    curl_multi_cleanup(multi_);
  }

  void start(HttpRequest request, TransferHandlers handlers) override {
    transfers_.emplace_back();
    Transfer& t = transfers_.back();
    t.request = std::move(request);
    t.handlers = std::move(handlers);
    // A handle of an earlier transfer when there is one (curl_easy_reset clears its
    // options). libcurl frees the receive buffer at the end of every transfer all the
    // same, so cy-llm-fetch keeps freed memory in the heap (mallopt in tools/fetch.cpp).
    if (!idle_.empty()) {
      t.easy = idle_.back();
      idle_.pop_back();
      curl_easy_reset(t.easy);
    } else {
      t.easy = curl_easy_init();
    }
    CURL* e = t.easy;
    curl_easy_setopt(e, CURLOPT_URL, t.request.url.c_str());
    curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!o_.ca_bundle.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, o_.ca_bundle.c_str());
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o_.connect_timeout.count()));
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME,
                     std::max(1L, static_cast<long>(std::ceil(o_.stall_timeout.count() / 1000.0))));
    curl_easy_setopt(e, CURLOPT_NETRC, o_.use_netrc ? static_cast<long>(CURL_NETRC_OPTIONAL)
                                                    : static_cast<long>(CURL_NETRC_IGNORED));
    const bool https = util::starts_with(util::to_lower(t.request.url), "https:");
    const std::string& proxy = https ? o_.https_proxy : o_.http_proxy;
    curl_easy_setopt(e, CURLOPT_PROXY, proxy.c_str());  // "" disables libcurl's env lookup
    if (!o_.no_proxy.empty()) curl_easy_setopt(e, CURLOPT_NOPROXY, o_.no_proxy.c_str());
    curl_easy_setopt(e, CURLOPT_USERAGENT, o_.user_agent.c_str());
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024);
    t.sockets = &sockets_;
    curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
    curl_easy_setopt(e, CURLOPT_SOCKOPTDATA, &sockets_);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, &sockets_);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, &t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    t.stall_limit = o_.stall_timeout;
    t.last_change = std::chrono::steady_clock::now();
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_xferinfo);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    for (const auto& h : t.request.headers) t.headers = curl_slist_append(t.headers, h.c_str());
    if (t.headers) curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.headers);
    curl_multi_add_handle(multi_, e);
  }

  std::size_t poll(std::chrono::milliseconds wait) override {
    int running = 0;
    curl_multi_perform(multi_, &running);
    if (running > 0) {
      curl_multi_poll(multi_, nullptr, 0, static_cast<int>(wait.count()), nullptr);
      curl_multi_perform(multi_, &running);
    }
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      Transfer* t = nullptr;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
      finish(*t, m->data.result);
    }
    return transfers_.size();
  }

  void abort_all() override {
    std::vector<Transfer*> now;
    for (auto& t : transfers_) now.push_back(&t);
    for (Transfer* t : now) finish(*t, CURLE_ABORTED_BY_CALLBACK);
  }

 private:
  void cleanup(Transfer& t) {
    if (t.easy) {
      curl_multi_remove_handle(multi_, t.easy);
      if (idle_.size() < o_.max_parallel) idle_.push_back(t.easy);
      else curl_easy_cleanup(t.easy);
      t.easy = nullptr;
    }
    if (t.headers) curl_slist_free_all(t.headers);
    t.headers = nullptr;
  }

  void finish(Transfer& t, CURLcode code) {
    TransferResult r;
    r.kind = kind_for(code);
    if (code == CURLE_WRITE_ERROR && t.stopped_by_head) r.kind = TransferResult::Kind::Ok;
    if (code == CURLE_ABORTED_BY_CALLBACK && t.stalled) r.kind = TransferResult::Kind::Timeout;
    if (code == CURLE_OK) deliver_head(t);  // a response without a body
    if (t.stalled && r.kind == TransferResult::Kind::Timeout)
      r.message = "no data for " + std::to_string(t.stall_limit.count()) + " ms (stalled)";
    else if (r.kind != TransferResult::Kind::Ok)
      r.message = t.errbuf[0] ? std::string(t.errbuf) : std::string(curl_easy_strerror(code));
    auto handlers = std::move(t.handlers);
    cleanup(t);
    for (auto it = transfers_.begin(); it != transfers_.end(); ++it)
      if (&*it == &t) {
        transfers_.erase(it);
        break;
      }
    if (handlers.on_done) handlers.on_done(r);  // may start new transfers
  }

  HttpOptions o_;
  SocketTable sockets_;  // libcurl closes sockets through it until the destructor has cleaned up
  CURLM* multi_ = nullptr;
  std::list<Transfer> transfers_;  // stable addresses: easy handles point at them
  std::vector<CURL*> idle_;        // handles of finished transfers, reused by start()
};

}  // namespace

std::unique_ptr<HttpClient> make_curl_client(const HttpOptions& options) {
  return std::make_unique<CurlClient>(options);
}

std::string HttpResponseHead::header(std::string_view lower_name) const {
  auto it = headers.find(std::string(lower_name));
  return it == headers.end() ? std::string() : it->second;
}

}  // namespace cyllm::fetch

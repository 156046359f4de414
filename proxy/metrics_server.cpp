#include "proxy/metrics_server.h"

#include <string_view>

#include <fmt/format.h>

#include "common/log.h"
#include "proxy/socket_address.h"

namespace egressd::proxy {

// One scrape connection: read a head, write one response, close. Dies only through retire().
class MetricsServer::Scrape {
 public:
  Scrape(MetricsServer& server, uint64_t id) : server_(server), id_(id) {}

  int accept(uv_stream_t* listener) {
    if (int rc = tcp_.init(this, [this](uv_tcp_t* h) { return uv_tcp_init(server_.loop_, h); }); rc != 0)
      return rc;
    if (int rc = uv_accept(listener, tcp_.stream()); rc != 0) return rc;
    if (int rc = timer_.init(this, [this](uv_timer_t* h) { return uv_timer_init(server_.loop_, h); });
        rc != 0)
      return rc;
    uv_timer_start(timer_.get(), &Scrape::uv_on_timeout, kRequestTimeoutMs, 0);
    return uv_read_start(tcp_.stream(), &Scrape::uv_on_alloc, &Scrape::uv_on_read);
  }

  void close() {
    tcp_.close();
    timer_.close();
  }

 private:
  struct WriteOp {
    uv_write_t req{};
    std::string bytes;
  };

  static void uv_on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept {
    auto* self = static_cast<Scrape*>(handle->data);
    if (self == nullptr) {
      *buf = uv_buf_init(nullptr, 0);
      return;
    }
    *buf = uv_buf_init(self->buffer_, sizeof self->buffer_);
  }

  static void uv_on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept {
    auto* self = static_cast<Scrape*>(stream->data);
    if (self == nullptr) return;
    if (nread < 0) return self->finish();
    self->head_.append(buf->base, static_cast<size_t>(nread));
    self->on_bytes();
  }

  static void uv_on_timeout(uv_timer_t* timer) noexcept {
    auto* self = static_cast<Scrape*>(timer->data);
    if (self != nullptr) self->finish();
  }

  static void uv_on_written(uv_write_t* req, int) noexcept {
    std::unique_ptr<WriteOp> op(static_cast<WriteOp*>(req->data));
    auto* self = static_cast<Scrape*>(req->handle->data);
    if (self != nullptr) self->finish();
  }

  void on_bytes() {
    const bool complete = head_.find("\r\n\r\n") != std::string::npos;
    if (!complete && head_.size() <= kMaxHeadBytes) return;
    uv_read_stop(tcp_.stream());
    std::string response = complete && head_.size() <= kMaxHeadBytes + 4
                               ? server_.respond(head_)
                               : std::string(
                                     "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: "
                                     "0\r\nConnection: close\r\n\r\n");
    auto op = std::make_unique<WriteOp>();
    op->bytes = std::move(response);
    op->req.data = op.get();
    uv_buf_t buf = uv_buf_init(op->bytes.data(), static_cast<unsigned>(op->bytes.size()));
    if (uv_write(&op->req, tcp_.stream(), &buf, 1, &Scrape::uv_on_written) != 0) return finish();
    op.release();  // the callback owns it now
  }

  void finish() {
    close();
    server_.retire(id_);
  }

  MetricsServer& server_;
  uint64_t id_;
  UvHandle<uv_tcp_t> tcp_;
  UvHandle<uv_timer_t> timer_;
  std::string head_;
  char buffer_[4096];
};

MetricsServer::MetricsServer(uv_loop_t* loop, Render render, Health health)
    : loop_(loop), render_(std::move(render)), health_(std::move(health)) {}

MetricsServer::~MetricsServer() {
  stop();
}

Result<void, std::string> MetricsServer::listen(const std::string& host, uint16_t port) {
  sockaddr_storage addr{};
  if (!to_sockaddr(host, port, addr)) return unexpected(fmt::format("--metrics: invalid address '{}'", host));
  if (int err = listener_.init(this, [this](uv_tcp_t* h) { return uv_tcp_init(loop_, h); }); err != 0) {
    return unexpected(fmt::format("uv_tcp_init: {}", uv_strerror(err)));
  }
  if (int err = uv_tcp_bind(listener_.get(), reinterpret_cast<const sockaddr*>(&addr), 0); err != 0) {
    return unexpected(fmt::format("--metrics: cannot bind {}: {}", endpoint_text(addr), uv_strerror(err)));
  }
  if (int err = uv_listen(listener_.stream(), 64, &MetricsServer::uv_on_connection); err != 0) {
    return unexpected(
        fmt::format("--metrics: cannot listen on {}: {}", endpoint_text(addr), uv_strerror(err)));
  }
  if (int err = reaper_.init(this, [this](uv_check_t* h) { return uv_check_init(loop_, h); }); err != 0) {
    return unexpected(fmt::format("uv_check_init: {}", uv_strerror(err)));
  }
  return {};
}

std::optional<sockaddr_storage> MetricsServer::bound() const {
  if (!listener_) return std::nullopt;
  sockaddr_storage addr{};
  int len = sizeof addr;
  if (uv_tcp_getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return std::nullopt;
  return addr;
}

void MetricsServer::stop() {
  listener_.close();
  for (auto& [id, scrape] : scrapes_) scrape->close();
  scrapes_.clear();  // every handle is closed: no callback can reach a Scrape any more
  retired_.clear();
  reaper_.close();
}

void MetricsServer::uv_on_connection(uv_stream_t* listener, int status) noexcept {
  auto* self = static_cast<MetricsServer*>(listener->data);
  if (self != nullptr) self->on_connection(status);
}

void MetricsServer::on_connection(int status) {
  if (status < 0) {
    log::warn("metrics: accept: {}", uv_strerror(status));
    return;
  }
  const uint64_t id = next_id_++;
  auto scrape = std::make_unique<Scrape>(*this, id);
  const int rc = scrape->accept(listener_.stream());
  if (rc != 0 || scrapes_.size() >= kMaxScrapes) {
    if (rc != 0) log::warn("metrics: cannot accept a scrape: {}", uv_strerror(rc));
    scrape->close();
    retired_.push_back(std::move(scrape));
    uv_check_start(reaper_.get(), &MetricsServer::uv_on_reap);
    return;
  }
  scrapes_.emplace(id, std::move(scrape));
}

void MetricsServer::retire(uint64_t id) {
  const auto it = scrapes_.find(id);
  if (it == scrapes_.end()) return;
  retired_.push_back(std::move(it->second));
  scrapes_.erase(it);
  if (reaper_) uv_check_start(reaper_.get(), &MetricsServer::uv_on_reap);
}

void MetricsServer::uv_on_reap(uv_check_t* check) noexcept {
  auto* self = static_cast<MetricsServer*>(check->data);
  if (self == nullptr) return;
  self->retired_.clear();
  uv_check_stop(check);
}

std::string MetricsServer::respond(std::string_view head) const {
  auto response = [](std::string_view status, std::string_view type, const std::string& body,
                     bool head_only) {
    return fmt::format(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: "
        "close\r\n\r\n{}",
        status, type, body.size(), head_only ? std::string_view() : std::string_view(body));
  };
  const std::string_view line = head.substr(0, head.find("\r\n"));
  const size_t first = line.find(' ');
  const size_t second = first == std::string_view::npos ? first : line.find(' ', first + 1);
  if (second == std::string_view::npos || !line.substr(second + 1).starts_with("HTTP/1.")) {
    return response("400 Bad Request", "text/plain", "bad request\n", false);
  }
  const std::string_view method = line.substr(0, first);
  const std::string_view target = line.substr(first + 1, second - first - 1);
  const bool head_only = method == "HEAD";
  if (method != "GET" && !head_only) {
    return response("405 Method Not Allowed", "text/plain", "only GET and HEAD\n", false);
  }
  const std::string_view path = target.substr(0, target.find('?'));
  if (path == "/metrics") {
    return response("200 OK", "text/plain; version=0.0.4; charset=utf-8", render_(), head_only);
  }
  if (path == "/healthz") {
    if (auto why = health_())
      return response("503 Service Unavailable", "text/plain", *why + "\n", head_only);
    return response("200 OK", "text/plain", "ok\n", head_only);
  }
  return response("404 Not Found", "text/plain", "egressd serves /metrics and /healthz here\n", head_only);
}

}  // namespace egressd::proxy

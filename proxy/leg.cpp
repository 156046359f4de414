#include "proxy/leg.h"

#include <new>

#include <fmt/format.h>

#include "common/log.h"

namespace egressd::proxy {
namespace {

// What a TLS leg reads at once: OpenSSL's memory BIOs keep the capacity of the largest write they took
// for as long as the connection lives, so an intercepted session stays as small as it was before #6.
constexpr size_t kTlsReadBytes = 64 * 1024;

struct WriteOp {
  uv_write_t req{};
  std::string bytes;  // what is written starts at some offset: the socket may have taken the front already
};

struct ShutdownOp {
  uv_shutdown_t req{};
};

struct ConnectOp {
  uv_connect_t req{};
};

}  // namespace

const char* leg_name(LegId id) {
  switch (id) {
    case LegId::Client:
      return "client";
    case LegId::Upstream:
      return "upstream";
  }
  return "?";
}

int Leg::accept(uv_loop_t* loop, uv_stream_t* listener) {
  close();
  if (int rc = tcp_.init(this, [loop](uv_tcp_t* h) { return uv_tcp_init(loop, h); }); rc != 0) return rc;
  if (int rc = uv_accept(listener, tcp_.stream()); rc != 0) return rc;
  uv_tcp_nodelay(tcp_.get(), 1);
  return 0;
}

int Leg::connect(uv_loop_t* loop, const sockaddr* address) {
  close();
  if (int rc = tcp_.init(this, [loop](uv_tcp_t* h) { return uv_tcp_init(loop, h); }); rc != 0) return rc;
  uv_tcp_nodelay(tcp_.get(), 1);
  auto op = std::make_unique<ConnectOp>();
  op->req.data = op.get();
  if (int rc = uv_tcp_connect(&op->req, tcp_.get(), address, uv_on_connect); rc != 0) {
    close();
    return rc;
  }
  op.release();  // freed in uv_on_connect
  return 0;
}

void Leg::close() {
  tcp_.close();
  tls_.reset();
  read_buffer_.reset();
  want_read_ = reading_ = throttled_ = backlog_reported_ = eof_ = false;
  shutdowns_pending_ = 0;
}

size_t Leg::queued_bytes() const {
  return tcp_ ? uv_stream_get_write_queue_size(tcp_.stream()) : 0;
}

// ---- libuv trampolines ---------------------------------------------------------------------------

// One buffer per leg, kept from one read to the next while reads fill it: a read costs no allocation
// while a transfer runs, and nothing while the leg is idle (#6).
void Leg::uv_on_alloc(uv_handle_t* handle, size_t /*suggested*/, uv_buf_t* buf) noexcept {
  auto* self = static_cast<Leg*>(handle->data);
  *buf = uv_buf_init(nullptr, 0);  // libuv then reports UV_ENOBUFS
  if (self == nullptr) return;
  if (!self->read_buffer_) {
    self->read_buffer_.reset(new (std::nothrow) char[kReadBytes]);  // uninitialized: read() fills it
    if (!self->read_buffer_) return;
  }
  *buf = uv_buf_init(self->read_buffer_.get(), self->tls_ ? kTlsReadBytes : kReadBytes);
}

void Leg::uv_on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept {
  auto* self = static_cast<Leg*>(stream->data);
  if (self == nullptr) return;
  // This callback holds the buffer while the session sees the bytes: if it closes this leg meanwhile,
  // close() must not free them. The leg takes the buffer back only if data keeps coming on this socket.
  std::unique_ptr<char[]> held;
  if (self->read_buffer_.get() == buf->base) held = std::move(self->read_buffer_);
  if (nread < 0) return self->on_read_end(nread);
  if (nread > 0) self->on_read(std::string_view(buf->base, static_cast<size_t>(nread)));
  // The Leg outlives this callback (a Session is freed only after it returns; see Server::retire).
  const bool more_coming = static_cast<size_t>(nread) == buf->len;
  if (held && more_coming && self->reading_ && self->tcp_.stream() == stream && !self->read_buffer_) {
    self->read_buffer_ = std::move(held);
  }
}

void Leg::uv_on_write(uv_write_t* req, int status) noexcept {
  std::unique_ptr<WriteOp> op(static_cast<WriteOp*>(req->data));  // the op owns its bytes
  auto* self = static_cast<Leg*>(req->handle->data);
  if (self == nullptr) return;  // the handle is closing; nobody is left to tell
  self->on_write_done(status);
}

void Leg::uv_on_shutdown(uv_shutdown_t* req, int /*status*/) noexcept {
  std::unique_ptr<ShutdownOp> op(static_cast<ShutdownOp*>(req->data));
  auto* self = static_cast<Leg*>(req->handle->data);
  if (self == nullptr) return;
  self->on_shutdown_done();
}

void Leg::uv_on_connect(uv_connect_t* req, int status) noexcept {
  std::unique_ptr<ConnectOp> op(static_cast<ConnectOp*>(req->data));
  auto* self = static_cast<Leg*>(req->handle->data);
  if (self == nullptr) return;  // this attempt was abandoned
  self->events_.on_leg_connected(self->id_, status);
}

// ---- reading -------------------------------------------------------------------------------------

void Leg::on_read(std::string_view bytes) {
  if (tls_) return on_ciphertext(bytes);
  events_.on_leg_data(id_, bytes);
}

void Leg::on_read_end(ssize_t status) {
  if (status != UV_EOF)
    log::debug("[S{}] read error on {}: {}", session_, leg_name(id_), uv_err_name(status));
  eof_ = true;
  want_reading(false);
  events_.on_leg_end(id_, static_cast<int>(status));
}

void Leg::start_tls(tls::TlsEngine engine, std::string_view received) {
  tls_.emplace(std::move(engine));
  on_ciphertext(received);
}

void Leg::on_ciphertext(std::string_view bytes) {
  if (!bytes.empty()) tls_->receive_ciphertext(bytes);
  if (!tls_->handshake_done()) {
    auto progress = tls_->handshake();
    flush_ciphertext();  // the handshake's own messages, or an alert explaining a failure
    if (!progress) return events_.on_leg_handshake(id_, unexpected(std::move(progress.error())));
    if (*progress == tls::TlsEngine::Progress::NeedMore) return;
    events_.on_leg_handshake(id_, {});
    if (!tls_) return;  // the owner closed this leg
  }
  std::string plaintext;
  auto open = tls_->read_plaintext(plaintext);
  flush_ciphertext();  // reading may answer post-handshake messages (key updates)
  if (!plaintext.empty()) {
    events_.on_leg_data(id_, plaintext);
    if (!tls_) return;
  }
  if (!open) {
    log::debug("[S{}] TLS error on {}: {}", session_, leg_name(id_), open.error().detail);
    eof_ = true;
    want_reading(false);
    return events_.on_leg_end(id_, UV_EPROTO);
  }
  if (!*open && !eof_) {  // close_notify: the peer's end of the stream
    eof_ = true;
    want_reading(false);
    events_.on_leg_end(id_, UV_EOF);
  }
}

// ---- writing -------------------------------------------------------------------------------------

void Leg::send(std::string bytes) {
  if (bytes.empty() || !tcp_) return;
  if (tls_) return encrypt_and_send(bytes);
  const size_t written = write_now(bytes);
  if (written < bytes.size()) queue_write(std::move(bytes), written);
}

void Leg::send_borrowed(std::string_view bytes) {
  if (bytes.empty() || !tcp_) return;
  if (tls_) return encrypt_and_send(bytes);
  const size_t written = write_now(bytes);
  if (written < bytes.size()) queue_write(std::string(bytes.substr(written)), 0);
}

void Leg::encrypt_and_send(std::string_view plaintext) {
  if (auto written = tls_->write_plaintext(plaintext); !written) {
    return events_.on_leg_write_failed(id_, written.error().detail);
  }
  flush_ciphertext();
}

void Leg::flush_ciphertext() {
  if (!tls_ || !tcp_) return;
  std::string out = tls_->take_ciphertext();
  if (out.empty()) return;
  const size_t written = write_now(out);
  if (written < out.size()) queue_write(std::move(out), written);
}

// uv_write needs the bytes until its callback, one loop iteration later, even when the socket took them
// all at once (it nearly always does while a tunnel keeps up): writing what we can first lets a relay
// forward its read buffer without copying it. Only an empty write queue may be bypassed (libuv answers
// UV_EAGAIN otherwise), so the byte order holds. A failure is left to uv_write, which reports it.
size_t Leg::write_now(std::string_view bytes) {
  uv_buf_t buf = uv_buf_init(const_cast<char*>(bytes.data()), static_cast<unsigned>(bytes.size()));
  const int rc = uv_try_write(tcp_.stream(), &buf, 1);
  return rc > 0 ? static_cast<size_t>(rc) : 0;
}

void Leg::queue_write(std::string bytes, size_t from) {
  auto op = std::make_unique<WriteOp>();
  op->bytes = std::move(bytes);
  op->req.data = op.get();
  uv_buf_t buf = uv_buf_init(op->bytes.data() + from, static_cast<unsigned>(op->bytes.size() - from));
  if (int rc = uv_write(&op->req, tcp_.stream(), &buf, 1, uv_on_write); rc != 0) {
    return events_.on_leg_write_failed(id_, fmt::format("uv_write: {}", uv_err_name(rc)));
  }
  op.release();  // freed in uv_on_write
  if (!backlog_reported_ && queued_bytes() > kHighWatermark) {
    backlog_reported_ = true;
    events_.on_leg_backlog(id_, true);
  }
}

void Leg::on_write_done(int status) {
  if (status != 0) {
    if (status == UV_ECANCELED) return;
    return events_.on_leg_write_failed(
        id_, fmt::format("write to {} failed: {}", leg_name(id_), uv_err_name(status)));
  }
  if (backlog_reported_ && queued_bytes() <= kLowWatermark) {
    backlog_reported_ = false;
    events_.on_leg_backlog(id_, false);
  }
}

void Leg::shutdown() {
  if (!tcp_) return;
  if (tls_) {
    tls_->shutdown();
    flush_ciphertext();
  }
  auto op = std::make_unique<ShutdownOp>();
  op->req.data = op.get();
  if (uv_shutdown(&op->req, tcp_.stream(), uv_on_shutdown) == 0) {  // after the queued writes
    op.release();
    ++shutdowns_pending_;
  }
}

void Leg::on_shutdown_done() {
  if (shutdowns_pending_ > 0) --shutdowns_pending_;
  events_.on_leg_shutdown_done(id_);
}

// ---- reading control -----------------------------------------------------------------------------

void Leg::want_reading(bool want) {
  want_read_ = want && !eof_;
  update_reading();
}

void Leg::set_throttled(bool throttled) {
  throttled_ = throttled;
  update_reading();
}

void Leg::update_reading() {
  const bool should = tcp_ && want_read_ && !throttled_;
  if (should == reading_) return;
  if (should) {
    if (int rc = uv_read_start(tcp_.stream(), uv_on_alloc, uv_on_read); rc != 0) {
      log::debug("[S{}] uv_read_start on {}: {}", session_, leg_name(id_), uv_err_name(rc));
      return;
    }
  } else {
    uv_read_stop(tcp_.stream());
    read_buffer_.reset();
  }
  reading_ = should;
}

}  // namespace egressd::proxy

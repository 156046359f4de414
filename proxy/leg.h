// Leg: one side of a session (the client, or the upstream) as a byte stream: a TCP handle, optionally
// wrapped in TLS through a tls::TlsEngine, with reading control, backpressure accounting and half-close.
// The session sees plaintext only. A Leg is a member of its Session; the handle's memory is freed by
// libuv's close callback, and request callbacks that arrive after close() find no owner and stop.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "proxy/offloop.h"
#include "proxy/uv_handle.h"
#include "tls/tls_engine.h"

namespace egressd::proxy {

enum class LegId { Client = 0, Upstream = 1 };
const char* leg_name(LegId id);

// What a Leg reports, synchronously from its libuv callbacks (or from send()/start_tls()). After any of
// these the owner may have closed the leg or the whole session; the leg checks before going on.
class LegEvents {
 public:
  virtual void on_leg_data(LegId leg, std::string_view bytes) = 0;  // plaintext, as it arrives
  virtual void on_leg_end(LegId leg, int status) = 0;  // UV_EOF (also a TLS close_notify) or a read error
  virtual void on_leg_connected(LegId leg, int status) = 0;                          // TCP connect finished
  virtual void on_leg_handshake(LegId leg, Result<void, tls::TlsError> result) = 0;  // TLS is up, or failed
  virtual void on_leg_write_failed(LegId leg, std::string_view why) = 0;
  virtual void on_leg_shutdown_done(LegId leg) = 0;
  // The write queue went above the high watermark (true) or back below the low one (false).
  virtual void on_leg_backlog(LegId leg, bool high) = 0;

 protected:
  ~LegEvents() = default;
};

class Leg {
 public:
  static constexpr size_t kHighWatermark = 1024 * 1024;  // report a backlog above this many queued bytes
  static constexpr size_t kLowWatermark = 256 * 1024;    // and its end below this

  Leg(LegId id, LegEvents& events, SessionId session) : id_(id), events_(events), session_(session) {}
  Leg(const Leg&) = delete;
  Leg& operator=(const Leg&) = delete;

  // Opening: accept a pending connection (client), or connect to an address (upstream). Return libuv's
  // status; a connect reports its outcome through on_leg_connected.
  int accept(uv_loop_t* loop, uv_stream_t* listener);
  int connect(uv_loop_t* loop, const sockaddr* address);

  // From now on, bytes on this leg are TLS. `received` is ciphertext already read (the peeked
  // ClientHello); a client-side engine sends its ClientHello at once. The outcome arrives through
  // on_leg_handshake.
  void start_tls(tls::TlsEngine engine, std::string_view received = {});

  // Queues plaintext (encrypted first when TLS is on). Failures arrive through on_leg_write_failed.
  void send(std::string bytes);
  // After every queued write: a TLS close_notify, then a TCP FIN. on_leg_shutdown_done follows.
  void shutdown();
  void want_reading(bool want);
  // Backpressure from the other leg: stop reading while set.
  void set_throttled(bool throttled);
  void close();  // idempotent; afterwards the leg can be opened again

  bool is_open() const { return static_cast<bool>(tcp_); }
  bool eof() const { return eof_; }
  bool has_tls() const { return tls_.has_value(); }
  bool tls_ready() const { return tls_ && tls_->handshake_done(); }
  const tls::TlsEngine* tls() const { return tls_ ? &*tls_ : nullptr; }
  uv_tcp_t* tcp() const { return tcp_.get(); }
  size_t queued_bytes() const;
  bool shutdown_pending() const { return shutdowns_pending_ > 0; }

 private:
  static void uv_on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) noexcept;
  static void uv_on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept;
  static void uv_on_write(uv_write_t* req, int status) noexcept;
  static void uv_on_shutdown(uv_shutdown_t* req, int status) noexcept;
  static void uv_on_connect(uv_connect_t* req, int status) noexcept;

  void on_read(std::string_view bytes);
  void on_read_end(ssize_t status);
  void on_write_done(int status);
  void on_shutdown_done();
  void on_ciphertext(std::string_view bytes);  // TLS: feed, drive the handshake, deliver plaintext
  void flush_ciphertext();
  void write_raw(std::string bytes);
  void update_reading();

  const LegId id_;
  LegEvents& events_;  // the Session that owns this leg
  const SessionId session_;
  UvHandle<uv_tcp_t> tcp_;
  std::optional<tls::TlsEngine> tls_;
  bool want_read_ = false;
  bool reading_ = false;
  bool throttled_ = false;
  bool backlog_reported_ = false;
  bool eof_ = false;
  int shutdowns_pending_ = 0;
};

}  // namespace egressd::proxy

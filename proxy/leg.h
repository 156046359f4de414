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
  // The write queue went above Leg::kHighWatermark (true), or back down to Leg::kLowWatermark (false).
  virtual void on_leg_backlog(LegId leg, bool high) = 0;

 protected:
  ~LegEvents() = default;
};

class Leg {
 public:
  // Backpressure: a leg reports a backlog once more than kHighWatermark bytes wait in its write queue,
  // and its end once no more than kLowWatermark do. Both are zero: as soon as the socket does not take a
  // write at once, the owner stops reading what would only queue up behind it, so bytes in flight wait
  // in the kernel's socket buffers instead of being copied into ours (#6: with up to 1 MiB queued here,
  // every read while the client lagged cost an allocation and a copy).
  static constexpr size_t kHighWatermark = 0;
  static constexpr size_t kLowWatermark = 0;
  // The most one read takes without TLS (64 KiB with it). Held only while reads keep filling it; larger
  // reads mean fewer system calls, and fewer wake-ups of the peer, per byte relayed (#6).
  static constexpr size_t kReadBytes = 256 * 1024;

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
  // Without TLS, what the socket takes at once is written before returning; only the rest is queued.
  void send(std::string bytes);
  // The same for bytes the caller keeps (valid for this call only, e.g. another leg's read buffer):
  // only what the socket does not take at once is copied.
  void send_borrowed(std::string_view bytes);
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
  void encrypt_and_send(std::string_view plaintext);
  void flush_ciphertext();
  size_t write_now(std::string_view bytes);          // what the socket took at once, without queuing
  void queue_write(std::string bytes, size_t from);  // bytes[from..] after what is already queued
  void update_reading();

  const LegId id_;
  LegEvents& events_;  // the Session that owns this leg
  const SessionId session_;
  UvHandle<uv_tcp_t> tcp_;
  // Where reads land. Held only while data keeps coming (a read that fills it); a read that drains the
  // socket, stopping reading and close() free it, so an idle leg holds no buffer. While a read callback
  // runs, that callback holds it instead (the session may close this leg from there).
  std::unique_ptr<char[]> read_buffer_;
  std::optional<tls::TlsEngine> tls_;
  bool want_read_ = false;
  bool reading_ = false;
  bool throttled_ = false;
  bool backlog_reported_ = false;
  bool eof_ = false;
  int shutdowns_pending_ = 0;
};

}  // namespace egressd::proxy

// Session: one client connection, as a small state machine. It coordinates: parsing (MessageParser),
// the decision (policy::decide), framing (http_exchange) and byte pumping happen in their own units.
// Owned by Server; destroyed only through Server::retire, after the current callback has returned.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "policy/matcher.h"
#include "policy/policy.h"
#include "procid/identify.h"
#include "procid/peer.h"
#include "proxy/error.h"
#include "proxy/http_exchange.h"
#include "proxy/message_parser.h"
#include "proxy/offloop.h"
#include "proxy/target.h"
#include "proxy/uv_handle.h"

namespace egressd::proxy {

class Server;

class Session final : private MessageSink {
 public:
  enum class Phase {
    ReadingHead,  // llhttp until the end of a request head
    Identifying,  // the head is in; waiting for procid on the thread pool
    Resolving,    // uv_getaddrinfo; entered only after the name was allowed
    Connecting,   // upstream TCP connect, connect timer armed
    Tunneling,    // CONNECT (or an upgraded exchange): bytes both ways
    Forwarding,   // one absolute-form HTTP exchange: request body up, response down
    Draining,     // egressd's own response is being flushed; the client is then closed
    Closed,       // handles are closing; every later event is ignored
  };

  Session(Server& server, SessionId id);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() override;

  // Accepts the pending connection on `listener`; returns the connection's tuple.
  Result<procid::TcpTuple, std::string> accept(uv_stream_t* listener);
  void start();  // begins reading the first request head
  void on_identified(Result<procid::PeerIdentity, procid::LookupError> result);
  void on_resolved(int status, addrinfo* answers);  // takes ownership of answers
  // A new policy is in force: keep going if it still allows what this session does, else close.
  void recheck(const std::shared_ptr<const policy::Policy>& policy);
  void stop();  // the server is shutting down

  SessionId id() const { return id_; }
  Phase phase() const { return phase_; }

 private:
  enum Leg { kClient = 0, kUpstream = 1 };

  static void uv_on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) noexcept;
  static void uv_on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept;
  static void uv_on_write(uv_write_t* req, int status) noexcept;
  static void uv_on_shutdown(uv_shutdown_t* req, int status) noexcept;
  static void uv_on_connect(uv_connect_t* req, int status) noexcept;
  static void uv_on_timer(uv_timer_t* timer) noexcept;

  // MessageSink: the upstream response head, and body bytes of either side.
  bool on_head(MessageParser& parser, const MessageHead& head) override;
  void on_body(MessageParser& parser, std::string_view bytes) override;

  void transition_to(Phase next);
  void on_read(Leg leg, char* data, size_t size);
  void on_read_end(Leg leg, ssize_t status);
  void on_write_done(Leg leg, int status);
  void on_shutdown_done(Leg leg, int status);
  void on_connected(int status);
  void on_timer();

  void feed_client(std::string_view bytes);
  void feed_upstream(std::string_view bytes);
  void on_request_head();
  void decide_and_go();
  void start_resolve();
  void connect_next();
  void start_exchange();
  void on_response_complete(std::string_view rest);
  void start_tunnel(std::string_view upstream_bytes);
  void next_request();

  void deny(const std::string& reason, const std::vector<std::string>& rules_considered, const char* event);
  void respond_error(const Error& error);  // egressd's own response, then close
  void finish(std::string_view why);       // close everything and retire; the decision was logged already

  void send(Leg to, std::string bytes);
  void send_owned(Leg to, char* data, size_t size);  // takes a malloc'd buffer
  void want_reading(Leg leg, bool want);
  void update_reading(Leg leg);
  void shutdown_leg(Leg leg);
  void close_upstream();
  void arm_timer(uint64_t ms);
  uv_stream_t* stream(Leg leg) const;
  std::string caller_text() const;
  const procid::PeerIdentity* caller() const;

  Server& server_;
  const SessionId id_;
  Phase phase_ = Phase::ReadingHead;
  UvHandle<uv_tcp_t> client_;
  UvHandle<uv_tcp_t> upstream_;
  UvHandle<uv_timer_t> timer_;
  std::string client_address_;

  std::optional<Result<procid::PeerIdentity, procid::LookupError>> identity_;
  MessageParser client_parser_;
  std::unique_ptr<MessageParser> upstream_parser_;  // one per exchange
  std::string pending_client_;                      // client bytes read but not yet consumed (after a pause)

  // The request being decided or served.
  bool is_connect_ = false;
  Target target_;
  std::string url_;                               // absolute URL for plain HTTP
  std::shared_ptr<const policy::Policy> policy_;  // the snapshot that allowed target_
  std::vector<sockaddr_storage> addresses_;
  std::string last_connect_error_;
  std::string upstream_authority_;  // what upstream_ is connected to; never reused for another

  // The exchange in progress (Forwarding).
  BodyFraming request_framing_ = BodyFraming::None;
  BodyFraming response_framing_ = BodyFraming::None;
  bool request_was_head_ = false;
  bool request_done_ = false;
  bool response_started_ = false;
  bool close_client_after_ = false;

  // I/O state of each leg.
  bool want_read_[2] = {false, false};
  bool reading_[2] = {false, false};
  bool throttled_[2] = {false, false};  // reading paused because the other leg's write queue is high
  bool eof_[2] = {false, false};
  int shutdowns_pending_ = 0;
  uint64_t last_activity_ms_ = 0;
  uint64_t bytes_up_ = 0;
  uint64_t bytes_down_ = 0;
};

const char* phase_name(Session::Phase phase);

}  // namespace egressd::proxy

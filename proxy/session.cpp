#include "proxy/session.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "common/check.h"
#include "common/log.h"
#include "proxy/decision_log.h"
#include "proxy/responses.h"
#include "proxy/server.h"

namespace egressd::proxy {
namespace {

constexpr size_t kReadBytes = 64 * 1024;
constexpr size_t kHighWatermark = 1024 * 1024;  // stop reading the other leg above this queue size
constexpr size_t kLowWatermark = 256 * 1024;    // and resume below this
constexpr uint64_t kLingerMs = 2'000;           // after our own error response, wait this long for EOF

struct WriteOp {
  uv_write_t req{};
  std::string text;       // either text...
  char* owned = nullptr;  // ...or a malloc'd read buffer passed through without a copy
  ~WriteOp() { std::free(owned); }
};

struct ConnectOp {
  uv_connect_t req{};
};

struct ShutdownOp {
  uv_shutdown_t req{};
};

struct DnsOp {
  uv_getaddrinfo_t req{};
  Server* server = nullptr;  // outlives the loop
  SessionId id = 0;
};

void uv_on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* answers) noexcept {
  std::unique_ptr<DnsOp> op(static_cast<DnsOp*>(req->data));
  Session* session = op->server->find(op->id);
  if (session == nullptr) {  // finished while DNS was in flight
    if (answers != nullptr) uv_freeaddrinfo(answers);
    return;
  }
  session->on_resolved(status, answers);
}

procid::IpAddress address_of(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET6) {
    const auto& a6 = reinterpret_cast<const sockaddr_in6&>(addr);
    uint8_t bytes[16];
    std::memcpy(bytes, &a6.sin6_addr, 16);
    return procid::IpAddress::v6(bytes);
  }
  const auto& a4 = reinterpret_cast<const sockaddr_in&>(addr);
  uint8_t bytes[4];
  std::memcpy(bytes, &a4.sin_addr, 4);
  return procid::IpAddress::v4(bytes);
}

uint16_t port_of(const sockaddr_storage& addr) {
  return ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6&>(addr).sin6_port
                                          : reinterpret_cast<const sockaddr_in&>(addr).sin_port);
}

std::string address_text(const sockaddr_storage& addr) {
  const auto ip = address_of(addr);
  return ip.family == 6 ? fmt::format("[{}]:{}", ip.to_string(), port_of(addr))
                        : fmt::format("{}:{}", ip.to_string(), port_of(addr));
}

// Parses an IP literal into a sockaddr with the given port.
bool to_sockaddr(const std::string& ip, uint16_t port, sockaddr_storage& out) {
  out = {};
  if (uv_ip4_addr(ip.c_str(), port, reinterpret_cast<sockaddr_in*>(&out)) == 0) return true;
  out = {};
  return uv_ip6_addr(ip.c_str(), port, reinterpret_cast<sockaddr_in6*>(&out)) == 0;
}

}  // namespace

const char* phase_name(Session::Phase phase) {
  switch (phase) {
    case Session::Phase::ReadingHead:
      return "ReadingHead";
    case Session::Phase::Identifying:
      return "Identifying";
    case Session::Phase::Resolving:
      return "Resolving";
    case Session::Phase::Connecting:
      return "Connecting";
    case Session::Phase::Tunneling:
      return "Tunneling";
    case Session::Phase::Forwarding:
      return "Forwarding";
    case Session::Phase::Draining:
      return "Draining";
    case Session::Phase::Closed:
      return "Closed";
  }
  return "?";
}

Session::Session(Server& server, SessionId id)
    : server_(server), id_(id), client_parser_(HTTP_REQUEST, *this, /*pause_at_head=*/true) {}

Session::~Session() = default;  // UvHandle members close their handles; libuv frees them later

void Session::transition_to(Phase next) {
  using P = Phase;
  // The allowed moves; anything else is a bug.
  bool ok = next == P::Closed || next == P::Draining;
  switch (phase_) {
    case P::ReadingHead:
      ok = ok || next == P::Identifying || next == P::Resolving || next == P::Forwarding;
      break;
    case P::Identifying:
      ok = ok || next == P::Resolving || next == P::Forwarding;
      break;
    case P::Resolving:
      ok = ok || next == P::Connecting;
      break;
    case P::Connecting:
      ok = ok || next == P::Connecting || next == P::Tunneling || next == P::Forwarding;
      break;
    case P::Forwarding:
      ok = ok || next == P::ReadingHead || next == P::Tunneling;
      break;
    case P::Tunneling:
      break;
    case P::Draining:
      ok = next == P::Closed;
      break;
    case P::Closed:
      ok = false;
      break;
  }
  if (!ok) {
    log::error("[S{}] invalid transition {} -> {}", id_, phase_name(phase_), phase_name(next));
    EGRESSD_ASSERT(ok);
  }
  log::debug("[S{}] {} -> {}", id_, phase_name(phase_), phase_name(next));
  phase_ = next;
}

Result<procid::TcpTuple, std::string> Session::accept(uv_stream_t* listener) {
  uv_loop_t* loop = server_.loop();
  if (int rc = timer_.init(this, [loop](uv_timer_t* h) { return uv_timer_init(loop, h); }); rc != 0) {
    return unexpected(fmt::format("uv_timer_init: {}", uv_err_name(rc)));
  }
  if (int rc = client_.init(this, [loop](uv_tcp_t* h) { return uv_tcp_init(loop, h); }); rc != 0) {
    return unexpected(fmt::format("uv_tcp_init: {}", uv_err_name(rc)));
  }
  if (int rc = uv_accept(listener, client_.stream()); rc != 0) {
    return unexpected(fmt::format("uv_accept: {}", uv_err_name(rc)));
  }
  uv_tcp_nodelay(client_.get(), 1);
  sockaddr_storage peer{};
  sockaddr_storage local{};
  int peer_len = sizeof peer;
  int local_len = sizeof local;
  if (int rc = uv_tcp_getpeername(client_.get(), reinterpret_cast<sockaddr*>(&peer), &peer_len); rc != 0) {
    return unexpected(fmt::format("uv_tcp_getpeername: {}", uv_err_name(rc)));
  }
  if (int rc = uv_tcp_getsockname(client_.get(), reinterpret_cast<sockaddr*>(&local), &local_len); rc != 0) {
    return unexpected(fmt::format("uv_tcp_getsockname: {}", uv_err_name(rc)));
  }
  client_address_ = address_text(peer);
  return procid::TcpTuple{address_of(peer), port_of(peer), address_of(local), port_of(local)};
}

void Session::start() {
  if (phase_ != Phase::ReadingHead) return;
  log::debug("[S{}] accepted {}", id_, client_address_);
  want_reading(kClient, true);
  arm_timer(server_.settings().head_timeout_ms);
}

// ---- libuv trampolines ---------------------------------------------------------------------------

void Session::uv_on_alloc(uv_handle_t* /*handle*/, size_t /*suggested*/, uv_buf_t* buf) noexcept {
  buf->base = static_cast<char*>(std::malloc(kReadBytes));
  buf->len = buf->base == nullptr ? 0 : kReadBytes;
}

void Session::uv_on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept {
  auto* self = static_cast<Session*>(stream->data);
  if (self == nullptr || nread == 0) {
    std::free(buf->base);
    return;
  }
  const Leg leg = stream == self->client_.stream() ? kClient : kUpstream;
  if (nread < 0) {
    std::free(buf->base);
    self->on_read_end(leg, nread);
    return;
  }
  self->on_read(leg, buf->base, static_cast<size_t>(nread));  // takes the buffer
}

void Session::uv_on_write(uv_write_t* req, int status) noexcept {
  std::unique_ptr<WriteOp> op(static_cast<WriteOp*>(req->data));  // the op owns its bytes
  auto* self = static_cast<Session*>(req->handle->data);
  if (self == nullptr) return;  // the handle is closing; nobody is left to tell
  self->on_write_done(req->handle == self->client_.stream() ? kClient : kUpstream, status);
}

void Session::uv_on_shutdown(uv_shutdown_t* req, int status) noexcept {
  std::unique_ptr<ShutdownOp> op(static_cast<ShutdownOp*>(req->data));
  auto* self = static_cast<Session*>(req->handle->data);
  if (self == nullptr) return;
  self->on_shutdown_done(req->handle == self->client_.stream() ? kClient : kUpstream, status);
}

void Session::uv_on_connect(uv_connect_t* req, int status) noexcept {
  std::unique_ptr<ConnectOp> op(static_cast<ConnectOp*>(req->data));
  auto* self = static_cast<Session*>(req->handle->data);
  if (self == nullptr) return;  // this upstream attempt was abandoned
  self->on_connected(status);
}

void Session::uv_on_timer(uv_timer_t* timer) noexcept {
  auto* self = static_cast<Session*>(timer->data);
  if (self == nullptr) return;
  self->on_timer();
}

// ---- reading -------------------------------------------------------------------------------------

void Session::on_read(Leg leg, char* data, size_t size) {
  last_activity_ms_ = uv_now(server_.loop());
  switch (phase_) {
    case Phase::Tunneling:
      (leg == kClient ? bytes_up_ : bytes_down_) += size;
      send_owned(leg == kClient ? kUpstream : kClient, data, size);
      return;
    case Phase::ReadingHead:
      if (leg == kClient) {
        feed_client(std::string_view(data, size));
      } else {
        close_upstream();  // an idle upstream must not speak; drop it rather than guess
      }
      break;
    case Phase::Forwarding:
      if (leg == kClient) {
        if (request_done_) {
          pending_client_.append(data, size);  // the next (pipelined) request waits its turn
          want_reading(kClient, false);
        } else {
          feed_client(std::string_view(data, size));
        }
      } else {
        feed_upstream(std::string_view(data, size));
      }
      break;
    case Phase::Identifying:
    case Phase::Resolving:
    case Phase::Connecting:
      if (leg == kClient) pending_client_.append(data, size);
      break;
    case Phase::Draining:  // discard whatever the client still sends after our response
    case Phase::Closed:
      break;
  }
  std::free(data);
}

void Session::on_read_end(Leg leg, ssize_t status) {
  const bool is_eof = status == UV_EOF;
  if (!is_eof)
    log::debug("[S{}] read error on {}: {}", id_, leg == kClient ? "client" : "upstream",
               uv_err_name(status));
  eof_[leg] = true;
  want_reading(leg, false);
  switch (phase_) {
    case Phase::Tunneling:
      if (!is_eof) return finish(leg == kClient ? "client reset the tunnel" : "upstream reset the tunnel");
      shutdown_leg(leg == kClient ? kUpstream : kClient);  // half-close: pass the EOF on
      if (eof_[kClient] && eof_[kUpstream] && shutdowns_pending_ == 0) finish("tunnel closed by both sides");
      return;
    case Phase::Forwarding:
      if (leg == kClient) {
        if (!request_done_ || !is_eof) return finish("client closed during the request");
        close_client_after_ = true;  // answer this request, then close
        return;
      }
      if (is_eof && upstream_parser_ && upstream_parser_->needs_eof()) {
        const auto step = upstream_parser_->finish();
        if (step.event == MessageParser::Event::MessageComplete) return on_response_complete({});
      }
      if (!response_started_) {
        return respond_error(
            {ErrorKind::UpstreamFailed, Side::Upstream,
             fmt::format("{} closed the connection before responding", target_.authority())});
      }
      return finish("upstream closed mid-response");
    case Phase::ReadingHead:
      if (leg == kUpstream) return close_upstream();
      return finish(client_parser_.in_head() && !pending_client_.empty() ? "client closed mid-head"
                                                                         : "client closed");
    case Phase::Identifying:
    case Phase::Resolving:
    case Phase::Connecting:
      if (leg == kClient) return finish("client closed before the upstream was ready");
      return;
    case Phase::Draining:
      if (leg == kClient) return finish("done");
      return;
    case Phase::Closed:
      return;
  }
}

void Session::feed_client(std::string_view bytes) {
  while (phase_ == Phase::ReadingHead || (phase_ == Phase::Forwarding && !request_done_)) {
    const auto step = client_parser_.feed(bytes);
    bytes.remove_prefix(std::min(step.consumed, bytes.size()));
    switch (step.event) {
      case MessageParser::Event::NeedMore:
        return;
      case MessageParser::Event::HeadComplete:
        pending_client_.assign(bytes);
        want_reading(kClient, false);
        return on_request_head();
      case MessageParser::Event::MessageComplete:
      case MessageParser::Event::Upgrade:
        request_done_ = true;
        if (request_framing_ == BodyFraming::Chunked) send(kUpstream, std::string(kLastChunk));
        pending_client_.append(bytes);
        want_reading(kClient, false);
        return;
      case MessageParser::Event::HeadTooLarge:
        return respond_error({ErrorKind::HeadTooLarge, Side::Client,
                              fmt::format("request head larger than {} bytes or {} header fields",
                                          kMaxHeadBytes, kMaxHeaderCount)});
      case MessageParser::Event::Invalid:
        if (phase_ == Phase::Forwarding) return finish("malformed request body: " + client_parser_.error());
        return respond_error(
            {ErrorKind::BadRequest, Side::Client, "malformed request: " + client_parser_.error()});
    }
  }
}

void Session::on_request_head() {
  const MessageHead& head = client_parser_.head();
  is_connect_ = head.method == "CONNECT";
  auto target = is_connect_ ? parse_connect_authority(head.url) : parse_absolute_url(head.url);
  if (!target) return respond_error({ErrorKind::BadRequest, Side::Client, target.error()});
  if (!is_connect_ && head.upgrade && head.header("upgrade").empty()) {
    return respond_error({ErrorKind::BadRequest, Side::Client, "unsupported upgrade"});
  }
  target_ = std::move(*target);
  url_ = is_connect_ ? std::string() : target_.url();
  if (identity_) return decide_and_go();
  transition_to(Phase::Identifying);
  arm_timer(server_.settings().identify_timeout_ms);
}

void Session::on_identified(Result<procid::PeerIdentity, procid::LookupError> result) {
  if (phase_ == Phase::Closed || identity_) return;
  if (result) {
    log::debug("[S{}] caller {}({}) uid {} inode {}", id_, result->exe, result->pid, result->uid,
               result->socket_inode);
  } else {
    log::debug("[S{}] caller unknown: {}", id_, result.error().detail);
  }
  identity_.emplace(std::move(result));
  if (phase_ == Phase::Identifying) decide_and_go();
}

const procid::PeerIdentity* Session::caller() const {
  return identity_ && identity_->has_value() ? &identity_->value() : nullptr;
}

std::string Session::caller_text() const {
  const auto* who = caller();
  return who == nullptr ? std::string("?") : fmt::format("{}({})", who->exe, who->pid);
}

// ---- the decision --------------------------------------------------------------------------------

void Session::decide_and_go() {
  const std::string& method = client_parser_.head().method;
  if (!identity_->has_value()) {
    return deny(identity_->error().message(), {}, "deny");
  }
  const auto& who = identity_->value();
  const auto snapshot = server_.policy();
  const policy::Caller policy_caller{who.exe, who.ancestors};
  const auto decision = policy::decide(*snapshot, {policy_caller, target_.host, target_.port});
  if (decision.verdict == policy::Verdict::Deny)
    return deny(decision.reason, decision.rules_considered, "deny");

  policy_ = snapshot;
  log::info("[S{}] ALLOW {} -> {} {} [policy:{}]", id_, caller_text(), method,
            is_connect_ ? target_.authority() : url_, decision.rule->name);
  DecisionRecord record;
  record.event = "allow";
  record.session = id_;
  record.client = client_address_;
  record.caller = &who;
  record.method = method;
  record.host = target_.host;
  record.port = target_.port;
  record.url = url_;
  record.rule = decision.rule->name;
  record.reason = decision.reason;
  record.policy_hash = snapshot->source_hash;
  server_.access_log().write(record);

  if (!is_connect_ && upstream_ && upstream_authority_ == target_.authority() && !eof_[kUpstream]) {
    return start_exchange();  // keep-alive to the same authority: reuse the connection
  }
  close_upstream();
  start_resolve();
}

void Session::deny(const std::string& reason, const std::vector<std::string>& rules_considered,
                   const char* event) {
  const MessageHead& head = client_parser_.head();
  const auto* who = caller();
  const auto snapshot = server_.policy();
  log::info("[S{}] {} {} -> {} {} [reason:{}]", id_,
            std::string_view(event) == "revoked" ? "REVOKED" : "DENY", caller_text(), head.method,
            is_connect_ ? target_.authority() : url_, reason);
  DecisionRecord record;
  record.event = event;
  record.session = id_;
  record.client = client_address_;
  record.caller = who;
  record.method = head.method;
  record.host = target_.host;
  record.port = target_.port;
  record.url = url_;
  record.rules_considered = rules_considered;
  record.reason = reason;
  record.policy_hash = (policy_ ? policy_ : snapshot)->source_hash;
  server_.deny_log().write(record);

  if (phase_ == Phase::Tunneling || phase_ == Phase::Forwarding) {
    return finish("revoked");  // bytes already flow: the only safe answer is to close
  }
  DenyDetails details;
  details.detail = is_connect_ ? fmt::format("CONNECT {} not permitted by policy", target_.authority())
                               : fmt::format("{} {} not permitted by policy", head.method, url_);
  if (std::string_view(event) == "revoked") details.detail += " (the policy changed)";
  details.reason = reason;
  details.caller = who;
  details.host = target_.host;
  details.port = target_.port;
  close_upstream();
  transition_to(Phase::Draining);
  send(kClient, deny_response(details));
  shutdown_leg(kClient);
  want_reading(kClient, true);  // drain what the client still sends so it reads our answer, not a reset
  arm_timer(kLingerMs);
}

void Session::respond_error(const Error& error) {
  if (phase_ == Phase::Closed || phase_ == Phase::Draining) return;
  const bool client_fault = error.side == Side::Client;
  if (client_fault) {
    log::info("[S{}] {} from {}: {}", id_, http_status(error.kind), client_address_, error.detail);
  } else {
    log::warn("[S{}] {} for {}: {}", id_, http_status(error.kind), caller_text(), error.detail);
  }
  if (response_started_) return finish(error.detail);  // too late for a status line
  close_upstream();
  transition_to(Phase::Draining);
  send(kClient, error_response(error));
  shutdown_leg(kClient);
  want_reading(kClient, true);
  arm_timer(kLingerMs);
}

void Session::recheck(const std::shared_ptr<const policy::Policy>& next) {
  if (phase_ == Phase::Closed || phase_ == Phase::Draining || !policy_) return;
  const bool in_use = phase_ == Phase::Resolving || phase_ == Phase::Connecting ||
                      phase_ == Phase::Tunneling || phase_ == Phase::Forwarding;
  if (!in_use && !upstream_) return;  // nothing allowed is in flight; the next request decides afresh
  const auto* who = caller();
  if (who == nullptr) return;
  const policy::Caller policy_caller{who->exe, who->ancestors};
  const auto decision = policy::decide(*next, {policy_caller, target_.host, target_.port});
  if (decision.verdict == policy::Verdict::Allow) {
    policy_ = next;
    return;
  }
  if (!in_use) return close_upstream();  // an idle keep-alive upstream to a host no longer allowed
  policy_ = next;
  deny(decision.reason, decision.rules_considered, "revoked");
}

// ---- upstream ------------------------------------------------------------------------------------

void Session::start_resolve() {
  transition_to(Phase::Resolving);
  arm_timer(server_.settings().connect_timeout_ms);
  addresses_.clear();
  sockaddr_storage addr{};
  const auto& overrides = server_.settings().resolve;
  if (const auto it = overrides.find(target_.host); it != overrides.end()) {
    if (to_sockaddr(it->second, target_.port, addr)) addresses_.push_back(addr);
    return connect_next();
  }
  if (to_sockaddr(target_.host, target_.port, addr)) {  // an IP literal: nothing to resolve
    addresses_.push_back(addr);
    return connect_next();
  }
  auto op = std::make_unique<DnsOp>();
  op->server = &server_;
  op->id = id_;
  op->req.data = op.get();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  const std::string port = std::to_string(target_.port);
  if (int rc = uv_getaddrinfo(server_.loop(), &op->req, uv_on_resolved, target_.host.c_str(), port.c_str(),
                              &hints);
      rc != 0) {
    return respond_error({ErrorKind::DnsFailed, Side::Proxy,
                          fmt::format("cannot resolve {}: {}", target_.host, uv_strerror(rc))});
  }
  op.release();  // freed in uv_on_resolved
}

void Session::on_resolved(int status, addrinfo* answers) {
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> owned(answers, [](addrinfo* a) {
    if (a != nullptr) uv_freeaddrinfo(a);
  });
  if (phase_ != Phase::Resolving) return;  // finished or revoked while DNS was in flight
  if (status != 0) {
    return respond_error({ErrorKind::DnsFailed, Side::Upstream,
                          fmt::format("DNS lookup of {} failed: {}", target_.host, uv_strerror(status))});
  }
  for (const addrinfo* a = answers; a != nullptr; a = a->ai_next) {
    sockaddr_storage addr{};
    if (a->ai_addrlen > sizeof addr) continue;
    std::memcpy(&addr, a->ai_addr, a->ai_addrlen);
    addresses_.push_back(addr);
  }
  connect_next();
}

void Session::connect_next() {
  if (addresses_.empty()) {
    return respond_error(
        {ErrorKind::ConnectFailed, Side::Upstream,
         last_connect_error_.empty()
             ? fmt::format("{} has no usable address", target_.host)
             : fmt::format("cannot connect to {}: {}", target_.authority(), last_connect_error_)});
  }
  const sockaddr_storage addr = addresses_.front();
  addresses_.erase(addresses_.begin());
  uv_loop_t* loop = server_.loop();
  if (int rc = upstream_.init(this, [loop](uv_tcp_t* h) { return uv_tcp_init(loop, h); }); rc != 0) {
    return respond_error({ErrorKind::Internal, Side::Proxy, fmt::format("uv_tcp_init: {}", uv_err_name(rc))});
  }
  eof_[kUpstream] = false;
  throttled_[kUpstream] = throttled_[kClient] = false;
  want_read_[kUpstream] = reading_[kUpstream] = false;
  uv_tcp_nodelay(upstream_.get(), 1);
  auto op = std::make_unique<ConnectOp>();
  op->req.data = op.get();
  if (phase_ != Phase::Connecting) transition_to(Phase::Connecting);
  log::debug("[S{}] connecting to {} ({})", id_, target_.authority(), address_text(addr));
  if (int rc =
          uv_tcp_connect(&op->req, upstream_.get(), reinterpret_cast<const sockaddr*>(&addr), uv_on_connect);
      rc != 0) {
    last_connect_error_ = uv_strerror(rc);
    upstream_.close();
    return connect_next();
  }
  op.release();  // freed in uv_on_connect
}

void Session::on_connected(int status) {
  if (phase_ != Phase::Connecting) return;
  if (status != 0) {
    last_connect_error_ = uv_strerror(status);
    upstream_.close();
    return connect_next();
  }
  upstream_authority_ = target_.authority();
  if (is_connect_) {
    send(kClient, connect_established());  // only now: the upstream is really there
    std::string early = std::move(pending_client_);
    pending_client_.clear();
    return start_tunnel(early);
  }
  start_exchange();
}

void Session::start_tunnel(std::string_view upstream_bytes) {
  transition_to(Phase::Tunneling);
  last_activity_ms_ = uv_now(server_.loop());
  arm_timer(server_.settings().idle_timeout_ms);
  if (!upstream_bytes.empty()) {
    bytes_up_ += upstream_bytes.size();
    send(kUpstream, std::string(upstream_bytes));
  }
  want_reading(kClient, !eof_[kClient]);
  want_reading(kUpstream, !eof_[kUpstream]);
  if (eof_[kClient]) shutdown_leg(kUpstream);
}

// ---- one HTTP exchange ---------------------------------------------------------------------------

void Session::start_exchange() {
  transition_to(Phase::Forwarding);
  const MessageHead& request = client_parser_.head();
  request_was_head_ = request.method == "HEAD";
  request_done_ = false;
  response_started_ = false;
  close_client_after_ = !request.keep_alive;
  upstream_parser_ = std::make_unique<MessageParser>(HTTP_RESPONSE, static_cast<MessageSink&>(*this),
                                                     /*pause_at_head=*/false);
  auto head = upstream_request_head(request, target_);
  request_framing_ = head.framing;
  send(kUpstream, std::move(head.bytes));
  last_activity_ms_ = uv_now(server_.loop());
  arm_timer(server_.settings().idle_timeout_ms);
  want_reading(kUpstream, true);
  client_parser_.resume();
  std::string body = std::move(pending_client_);
  pending_client_.clear();
  feed_client(body);  // may complete the request at once (no body, or a body already read)
  if (phase_ == Phase::Forwarding && !request_done_) want_reading(kClient, true);
}

bool Session::on_head(MessageParser& parser, const MessageHead& head) {
  if (&parser != upstream_parser_.get() || phase_ != Phase::Forwarding) return false;
  const bool client_keep_alive = !close_client_after_;
  auto out = client_response_head(head, client_parser_.head(), request_was_head_, client_keep_alive);
  if (head.status >= 200 || head.status == 101) {
    // A refused upgrade leaves llhttp expecting the switched protocol on the client side: end there.
    if (client_parser_.head().upgrade && head.status != 101) close_client_after_ = true;
    response_started_ = true;
    response_framing_ = out.framing;
    close_client_after_ = close_client_after_ || out.close_after;
  }
  send(kClient, std::move(out.bytes));
  return request_was_head_;
}

void Session::on_body(MessageParser& parser, std::string_view bytes) {
  if (&parser == &client_parser_) {
    bytes_up_ += bytes.size();
    send(kUpstream, request_framing_ == BodyFraming::Chunked ? chunk(bytes) : std::string(bytes));
  } else {
    bytes_down_ += bytes.size();
    send(kClient, response_framing_ == BodyFraming::Chunked ? chunk(bytes) : std::string(bytes));
  }
}

void Session::feed_upstream(std::string_view bytes) {
  while (phase_ == Phase::Forwarding) {
    const auto step = upstream_parser_->feed(bytes);
    bytes.remove_prefix(std::min(step.consumed, bytes.size()));
    switch (step.event) {
      case MessageParser::Event::NeedMore:
        return;
      case MessageParser::Event::MessageComplete:
        if (upstream_parser_->head().status == 101 && client_parser_.head().upgrade) {
          std::string early = std::move(pending_client_);
          pending_client_.clear();
          if (!bytes.empty()) send(kClient, std::string(bytes));
          return start_tunnel(early);
        }
        if (upstream_parser_->head().status < 200) {  // 100 Continue and friends: the final answer follows
          upstream_parser_->resume();
          continue;
        }
        return on_response_complete(bytes);
      case MessageParser::Event::Upgrade:
      case MessageParser::Event::HeadComplete:  // responses do not pause at heads
        return finish("upstream switched protocols unasked");
      case MessageParser::Event::HeadTooLarge:
        return respond_error({ErrorKind::UpstreamFailed, Side::Upstream,
                              fmt::format("response head from {} is too large", target_.authority())});
      case MessageParser::Event::Invalid:
        return respond_error(
            {ErrorKind::UpstreamFailed, Side::Upstream,
             fmt::format("invalid response from {}: {}", target_.authority(), upstream_parser_->error())});
    }
  }
}

void Session::on_response_complete(std::string_view rest) {
  if (response_framing_ == BodyFraming::Chunked) send(kClient, std::string(kLastChunk));
  const bool upstream_reusable =
      upstream_parser_->should_keep_alive() && rest.empty() && request_done_ && !eof_[kUpstream];
  if (!upstream_reusable) close_upstream();
  if (close_client_after_ || !request_done_ || eof_[kClient]) {
    transition_to(Phase::Draining);
    shutdown_leg(kClient);
    want_reading(kClient, !eof_[kClient]);
    if (eof_[kClient] && shutdowns_pending_ == 0) return finish("response complete");
    arm_timer(kLingerMs);
    return;
  }
  next_request();
}

void Session::next_request() {
  transition_to(Phase::ReadingHead);
  arm_timer(server_.settings().head_timeout_ms);
  if (upstream_) want_reading(kUpstream, true);  // notice an idle upstream closing
  client_parser_.resume();
  std::string buffered = std::move(pending_client_);
  pending_client_.clear();
  want_reading(kClient, true);
  feed_client(buffered);
}

// ---- writing, reading control, closing -----------------------------------------------------------

uv_stream_t* Session::stream(Leg leg) const {
  return leg == kClient ? client_.stream() : upstream_.stream();
}

void Session::send(Leg to, std::string bytes) {
  if (bytes.empty()) return;
  uv_stream_t* out = stream(to);
  if (out == nullptr) return;
  auto op = std::make_unique<WriteOp>();
  op->text = std::move(bytes);
  op->req.data = op.get();
  uv_buf_t buf = uv_buf_init(op->text.data(), static_cast<unsigned>(op->text.size()));
  if (int rc = uv_write(&op->req, out, &buf, 1, uv_on_write); rc != 0) {
    log::debug("[S{}] uv_write: {}", id_, uv_err_name(rc));
    return finish("write failed");
  }
  op.release();  // freed in uv_on_write
  if (uv_stream_get_write_queue_size(out) > kHighWatermark) {
    const Leg other = to == kClient ? kUpstream : kClient;
    throttled_[other] = true;  // backpressure: stop reading what would only queue up here
    update_reading(other);
  }
}

void Session::send_owned(Leg to, char* data, size_t size) {
  uv_stream_t* out = stream(to);
  if (out == nullptr) {
    std::free(data);
    return;
  }
  auto op = std::make_unique<WriteOp>();
  op->owned = data;
  op->req.data = op.get();
  uv_buf_t buf = uv_buf_init(data, static_cast<unsigned>(size));
  if (int rc = uv_write(&op->req, out, &buf, 1, uv_on_write); rc != 0) {
    log::debug("[S{}] uv_write: {}", id_, uv_err_name(rc));
    return finish("write failed");
  }
  op.release();
  if (uv_stream_get_write_queue_size(out) > kHighWatermark) {
    const Leg other = to == kClient ? kUpstream : kClient;
    throttled_[other] = true;
    update_reading(other);
  }
}

void Session::on_write_done(Leg leg, int status) {
  if (phase_ == Phase::Closed) return;
  if (status != 0) {
    if (status == UV_ECANCELED) return;
    return finish(
        fmt::format("write to {} failed: {}", leg == kClient ? "client" : "upstream", uv_err_name(status)));
  }
  const Leg other = leg == kClient ? kUpstream : kClient;
  if (throttled_[other] && uv_stream_get_write_queue_size(stream(leg)) < kLowWatermark) {
    throttled_[other] = false;
    update_reading(other);
  }
}

void Session::want_reading(Leg leg, bool want) {
  want_read_[leg] = want && !eof_[leg];
  update_reading(leg);
}

void Session::update_reading(Leg leg) {
  uv_stream_t* s = stream(leg);
  const bool should = s != nullptr && want_read_[leg] && !throttled_[leg] && phase_ != Phase::Closed;
  if (should == reading_[leg]) return;
  if (should) {
    if (int rc = uv_read_start(s, uv_on_alloc, uv_on_read); rc != 0) {
      log::debug("[S{}] uv_read_start: {}", id_, uv_err_name(rc));
      return;
    }
  } else if (s != nullptr) {
    uv_read_stop(s);
  }
  reading_[leg] = should;
}

void Session::shutdown_leg(Leg leg) {
  uv_stream_t* s = stream(leg);
  if (s == nullptr) return;
  auto op = std::make_unique<ShutdownOp>();
  op->req.data = op.get();
  if (uv_shutdown(&op->req, s, uv_on_shutdown) == 0) {  // after the queued writes
    op.release();
    ++shutdowns_pending_;
  }
}

void Session::on_shutdown_done(Leg /*leg*/, int /*status*/) {
  --shutdowns_pending_;
  if (phase_ == Phase::Tunneling && eof_[kClient] && eof_[kUpstream] && shutdowns_pending_ == 0) {
    finish("tunnel closed by both sides");
  } else if (phase_ == Phase::Draining && eof_[kClient] && shutdowns_pending_ == 0) {
    finish("done");
  }
}

void Session::close_upstream() {
  upstream_.close();
  upstream_parser_.reset();
  upstream_authority_.clear();
  want_read_[kUpstream] = reading_[kUpstream] = throttled_[kUpstream] = false;
  throttled_[kClient] = false;
  eof_[kUpstream] = false;
  update_reading(kClient);
}

void Session::arm_timer(uint64_t ms) {
  if (timer_) uv_timer_start(timer_.get(), uv_on_timer, ms, 0);
}

void Session::on_timer() {
  const auto& settings = server_.settings();
  switch (phase_) {
    case Phase::ReadingHead:
      return finish(client_parser_.in_head() ? "no complete request head in time"
                                             : "idle keep-alive connection");
    case Phase::Identifying:
      return deny(fmt::format("caller unknown: identification did not finish within {} ms",
                              settings.identify_timeout_ms),
                  {}, "deny");
    case Phase::Resolving:
    case Phase::Connecting:
      return respond_error({ErrorKind::Timeout, Side::Upstream,
                            fmt::format("connecting to {} took longer than {} ms", target_.authority(),
                                        settings.connect_timeout_ms)});
    case Phase::Tunneling:
    case Phase::Forwarding: {
      const uint64_t idle_ms = uv_now(server_.loop()) - last_activity_ms_;
      if (idle_ms >= settings.idle_timeout_ms) return finish("idle timeout");
      return arm_timer(settings.idle_timeout_ms - idle_ms);
    }
    case Phase::Draining:
      return finish("linger over");
    case Phase::Closed:
      return;
  }
}

void Session::finish(std::string_view why) {
  if (phase_ == Phase::Closed) return;
  log::debug("[S{}] closing ({}): {} bytes up, {} bytes down", id_, why, bytes_up_, bytes_down_);
  transition_to(Phase::Closed);
  client_.close();
  upstream_.close();
  timer_.close();
  server_.retire(id_);
}

void Session::stop() {
  finish("egressd is stopping");
}

}  // namespace egressd::proxy

// Session: reaching the upstream (DNS, TCP, TLS), and what a CONNECT carries once it is answered:
// TLS to terminate, plaintext HTTP to inspect, or an opaque stream to relay.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include <fmt/format.h>

#include "common/log.h"
#include "proxy/responses.h"
#include "proxy/server.h"
#include "proxy/session.h"
#include "proxy/socket_address.h"

namespace egressd::proxy {
namespace {

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

constexpr unsigned char kTlsHandshakeRecord = 0x16;  // RFC 8446 §5.1: ContentType handshake

}  // namespace

// ---- DNS and TCP ---------------------------------------------------------------------------------

void Session::start_resolve() {
  transition_to(Phase::Resolving);
  arm_timer(server_.settings().connect_timeout_ms);
  addresses_.clear();
  last_connect_error_.clear();
  sockaddr_storage addr{};
  const auto& overrides = server_.settings().resolve;
  if (const auto it = overrides.find(target_.host); it != overrides.end()) {
    if (to_sockaddr(it->second, target_.port, addr)) addresses_.push_back(addr);
    return dial_checked();
  }
  if (to_sockaddr(target_.host, target_.port, addr)) {  // an IP literal: nothing to resolve
    addresses_.push_back(addr);
    return dial_checked();
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
  dial_checked();
}

// Every address is checked before the first is dialled, and only checked addresses are ever dialled:
// nothing resolves the name a second time (DNS rebinding).
void Session::dial_checked() {
  const std::vector<std::string> considered =
      destination_.rule.empty() ? std::vector<std::string>{} : std::vector<std::string>{destination_.rule};
  // Audit mode lets a policy gap through, never an address: say so, or the reason reads like a policy's.
  const std::string_view audit_note =
      destination_.by_audit ? "audit mode does not relax destination safety: " : "";
  std::vector<policy::IpAddress> ips;
  ips.reserve(addresses_.size());
  for (const sockaddr_storage& addr : addresses_) {
    ips.push_back(policy_ip(addr));
    if (server_.is_own_listener(addr)) {
      return deny(fmt::format("{}{} is egressd's own listening address; egressd never connects to itself",
                              audit_note, endpoint_text(addr)),
                  considered, "deny", DenyKind::OwnListener);
    }
  }
  const policy::DestinationScope scope{destination_.rule, destination_.exact_host, destination_.named_ip,
                                       destination_.allowed_ips};
  const policy::DestinationCheck check = policy::check_destination(scope, target_.host, ips);
  if (!check.allowed) {
    return deny(fmt::format("{}{}", audit_note, check.reason), considered, "deny", DenyKind::Destination);
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
  if (phase_ != Phase::Connecting) transition_to(Phase::Connecting);
  log::debug("[S{}] connecting to {} ({})", id_, target_.authority(), endpoint_text(addr));
  if (int rc = upstream_.connect(server_.loop(), reinterpret_cast<const sockaddr*>(&addr)); rc != 0) {
    last_connect_error_ = uv_strerror(rc);
    return connect_next();
  }
}

void Session::on_leg_connected(LegId /*leg*/, int status) {
  if (phase_ != Phase::Connecting) return;
  if (status != 0) {
    last_connect_error_ = uv_strerror(status);
    upstream_.close();
    return connect_next();
  }
  upstream_authority_ = target_.authority();
  if (tunnel_ && tunnel_->tls) return start_upstream_tls();
  on_upstream_ready();
}

// The upstream is there (TCP, and TLS when terminating): answer the CONNECT, or send the request.
void Session::on_upstream_ready() {
  if (!is_connect_) return start_exchange();
  client_.send(connect_established());  // only now: the upstream is really there
  transition_to(Phase::Sniffing);
  last_activity_ms_ = uv_now(server_.loop());
  arm_timer(server_.settings().idle_timeout_ms);
  client_.want_reading(true);
  upstream_.want_reading(true);  // a server that speaks first makes this an opaque stream
  if (!pending_client_.empty()) {
    std::string early = std::move(pending_client_);
    pending_client_.clear();
    sniff(early);
  }
}

void Session::start_upstream_tls() {
  auto engine = tls::TlsEngine::client(server_.interception().upstream_ctx(), target_.host);
  if (!engine) {
    return respond_error(
        {ErrorKind::Internal, Side::Proxy,
         fmt::format("cannot start TLS to {}: {}", target_.authority(), engine.error().detail)});
  }
  upstream_.want_reading(true);
  upstream_.start_tls(std::move(*engine));
}

void Session::on_leg_handshake(LegId from, Result<void, tls::TlsError> result) {
  if (from == LegId::Client) {
    if (phase_ != Phase::ClientHandshake) return;
    if (!result) {
      // Most often the client does not trust egressd's CA; the operator needs to see that.
      log::warn("[S{}] TLS handshake with {} for {} failed: {} (does it trust the egressd CA?)", id_,
                caller_text(), target_.authority(), result.error().detail);
      return finish("client TLS handshake failed");
    }
    return on_client_tls_ready();
  }
  if (phase_ != Phase::Connecting) return;
  if (!result) {
    return respond_error({ErrorKind::UpstreamTlsFailed, Side::Upstream,
                          fmt::format("TLS with {} failed: {}", target_.authority(), result.error().detail)});
  }
  log::debug("[S{}] TLS with {} established", id_, target_.authority());
  on_upstream_ready();
}

// ---- what the CONNECT carries --------------------------------------------------------------------

void Session::sniff(std::string_view first_bytes) {
  if (first_bytes.empty()) return;
  const bool is_tls = static_cast<unsigned char>(first_bytes[0]) == kTlsHandshakeRecord;
  // A rest endpoint's rules, and a redirect grant, need to see every request. What audit mode let
  // through without an endpoint has no HTTP rules to check: it is relayed unopened.
  const bool inspect_only =
      by_redirect_grant_ || (endpoint_ != nullptr && endpoint_->protocol == policy::Protocol::Rest);
  const bool skip_tls =
      !by_redirect_grant_ && (endpoint_ == nullptr || endpoint_->tls == policy::TlsMode::Skip);
  if (is_tls && !skip_tls) return start_client_tls(first_bytes);
  if (inspect_only) {
    if (is_tls) {
      return deny(fmt::format("rule '{}' has protocol: rest with tls: skip, so its HTTP rules cannot be "
                              "checked; the tunnel is refused",
                              rule_->name),
                  {rule_->name}, "deny", DenyKind::Uninspectable);
    }
    // Plaintext inside the CONNECT: the same request-by-request checks as any HTTP.
    tunnel_ = target_;
    tunnel_->tls = false;
    client_parser_ = std::make_unique<MessageParser>(HTTP_REQUEST, static_cast<MessageSink&>(*this),
                                                     /*pause_at_head=*/true);
    transition_to(Phase::ReadingHead);
    arm_timer(server_.settings().head_timeout_ms);
    return feed_client(first_bytes);
  }
  start_tunnel(first_bytes);  // tls: skip, or a stream that is not TLS: relayed as opaque bytes
}

void Session::start_client_tls(std::string_view client_hello) {
  auto leaf = server_.interception().leaf_for(target_.host);
  if (!leaf) {
    log::error("[S{}] cannot mint a certificate for {}: {}", id_, target_.host, leaf.error().detail);
    return finish("minting failed");
  }
  auto engine = tls::TlsEngine::server(*leaf);
  if (!engine) {
    log::error("[S{}] cannot start TLS for {}: {}", id_, target_.host, engine.error().detail);
    return finish("TLS set-up failed");
  }
  transition_to(Phase::ClientHandshake);
  arm_timer(server_.settings().handshake_timeout_ms);
  client_.start_tls(std::move(*engine), client_hello);
}

void Session::on_client_tls_ready() {
  std::string sni = client_.tls()->sni();
  std::transform(sni.begin(), sni.end(), sni.begin(),
                 [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
  // Domain fronting: the name the client's TLS asks for must be the host it CONNECTed to. A client
  // that sends no SNI (IP literals) is held to the Host check on every request instead.
  if (!sni.empty() && sni != target_.host) {
    return deny(fmt::format("TLS server name '{}' does not match the CONNECT host {} (domain fronting)", sni,
                            target_.host),
                {}, "deny", DenyKind::Fronting);
  }
  log::debug("[S{}] TLS with the client established (sni '{}', alpn '{}')", id_, sni, client_.tls()->alpn());
  tunnel_ = target_;
  tunnel_->tls = true;
  client_parser_ =
      std::make_unique<MessageParser>(HTTP_REQUEST, static_cast<MessageSink&>(*this), /*pause_at_head=*/true);
  transition_to(Phase::ReadingHead);
  arm_timer(server_.settings().head_timeout_ms);
  client_.want_reading(true);
  if (upstream_.is_open()) upstream_.want_reading(true);  // notice the idle upstream closing
}

void Session::start_tunnel(std::string_view upstream_bytes) {
  transition_to(Phase::Tunneling);
  last_activity_ms_ = uv_now(server_.loop());
  arm_timer(server_.settings().idle_timeout_ms);
  if (!upstream_bytes.empty()) {
    bytes_up_ += upstream_bytes.size();
    upstream_.send_borrowed(upstream_bytes);
  }
  client_.want_reading(true);
  upstream_.want_reading(true);
  if (client_.eof()) upstream_.shutdown();
}

}  // namespace egressd::proxy

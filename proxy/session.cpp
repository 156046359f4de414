// Session core: the phase table, what each event means in each phase, request heads, decisions, and the
// ways a session ends. Upstream set-up and TLS are in session_upstream.cpp, the HTTP exchange in
// session_exchange.cpp, the caller and its executable in session_caller.cpp, redirect hops in
// session_redirects.cpp, refusals (403, 503, egressd's errors) in session_refusals.cpp, audit mode in
// session_audit.cpp.
#include "proxy/session.h"
#include "proxy/socket_address.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/check.h"
#include "common/log.h"
#include "policy/http_matcher.h"
#include "proxy/decision_log.h"
#include "proxy/responses.h"
#include "proxy/server.h"

namespace egressd::proxy {

const char* phase_name(Session::Phase phase) {
  switch (phase) {
    case Session::Phase::ReadingHead:
      return "ReadingHead";
    case Session::Phase::Identifying:
      return "Identifying";
    case Session::Phase::Verifying:
      return "Verifying";
    case Session::Phase::Resolving:
      return "Resolving";
    case Session::Phase::Connecting:
      return "Connecting";
    case Session::Phase::Sniffing:
      return "Sniffing";
    case Session::Phase::ClientHandshake:
      return "ClientHandshake";
    case Session::Phase::Tunneling:
      return "Tunneling";
    case Session::Phase::Forwarding:
      return "Forwarding";
    case Session::Phase::Discarding:
      return "Discarding";
    case Session::Phase::Draining:
      return "Draining";
    case Session::Phase::Closed:
      return "Closed";
  }
  return "?";
}

Session::Session(Server& server, SessionId id)
    : server_(server),
      id_(id),
      client_(LegId::Client, *this, id),
      upstream_(LegId::Upstream, *this, id),
      client_parser_(std::make_unique<MessageParser>(HTTP_REQUEST, static_cast<MessageSink&>(*this),
                                                     /*pause_at_head=*/true)) {}

// The legs and the timer close their handles; libuv frees them later.
Session::~Session() {
  if (!admitted_exe_.empty()) server_.release_binary(admitted_exe_);
}

void Session::transition_to(Phase next) {
  using P = Phase;
  // The allowed moves; anything else is a bug.
  bool ok = next == P::Closed || next == P::Draining;
  switch (phase_) {
    case P::ReadingHead:
      ok = ok || next == P::Identifying || next == P::Verifying || next == P::Resolving ||
           next == P::Connecting || next == P::Forwarding || next == P::Discarding;
      break;
    case P::Identifying:
      ok = ok || next == P::Verifying || next == P::Resolving || next == P::Forwarding ||
           next == P::Discarding;
      break;
    case P::Verifying:
      ok = ok || next == P::Resolving || next == P::Connecting || next == P::Forwarding ||
           next == P::Discarding;
      break;
    case P::Resolving:
      ok = ok || next == P::Connecting;
      break;
    case P::Connecting:
      ok = ok || next == P::Connecting || next == P::Sniffing || next == P::Forwarding;
      break;
    case P::Sniffing:
      ok = ok || next == P::ClientHandshake || next == P::ReadingHead || next == P::Tunneling;
      break;
    case P::ClientHandshake:
      ok = ok || next == P::ReadingHead;
      break;
    case P::Forwarding:
      ok = ok || next == P::ReadingHead || next == P::Tunneling;
      break;
    case P::Discarding:
      ok = ok || next == P::ReadingHead;
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
  accepted_ns_ = uv_hrtime();
  if (int rc = timer_.init(this, [loop](uv_timer_t* h) { return uv_timer_init(loop, h); }); rc != 0) {
    return unexpected(fmt::format("uv_timer_init: {}", uv_err_name(rc)));
  }
  if (int rc = client_.accept(loop, listener); rc != 0) {
    return unexpected(fmt::format("accepting a connection: {}", uv_err_name(rc)));
  }
  sockaddr_storage peer{};
  sockaddr_storage local{};
  int peer_len = sizeof peer;
  int local_len = sizeof local;
  if (int rc = uv_tcp_getpeername(client_.tcp(), reinterpret_cast<sockaddr*>(&peer), &peer_len); rc != 0) {
    return unexpected(fmt::format("uv_tcp_getpeername: {}", uv_err_name(rc)));
  }
  if (int rc = uv_tcp_getsockname(client_.tcp(), reinterpret_cast<sockaddr*>(&local), &local_len); rc != 0) {
    return unexpected(fmt::format("uv_tcp_getsockname: {}", uv_err_name(rc)));
  }
  procid::TcpTuple tuple;
  tuple.client_ip = procid_ip(peer);
  tuple.client_port = port_of(peer);
  tuple.proxy_ip = procid_ip(local);
  tuple.proxy_port = port_of(local);
  client_address_ = tuple.client_ip.family == 6
                        ? fmt::format("[{}]:{}", tuple.client_ip.to_string(), tuple.client_port)
                        : fmt::format("{}:{}", tuple.client_ip.to_string(), tuple.client_port);
  return tuple;
}

void Session::start() {
  if (phase_ != Phase::ReadingHead) return;
  log::debug("[S{}] accepted {}", id_, client_address_);
  client_.want_reading(true);
  arm_timer(server_.settings().head_timeout_ms);
}

// ---- events from the legs ------------------------------------------------------------------------

void Session::on_leg_data(LegId from, std::string_view bytes) {
  last_activity_ms_ = uv_now(server_.loop());
  const bool from_client = from == LegId::Client;
  switch (phase_) {
    case Phase::Tunneling:
      (from_client ? bytes_up_ : bytes_down_) += bytes.size();
      return leg(from_client ? LegId::Upstream : LegId::Client).send_borrowed(bytes);
    case Phase::Sniffing:
      if (from_client) return sniff(bytes);
      if (by_redirect_grant_ || endpoint_->protocol == policy::Protocol::Rest) {
        return deny(fmt::format("{} spoke first, so the stream is not HTTP, and {} allows only HTTP requests "
                                "it can check",
                                target_.authority(),
                                by_redirect_grant_ ? "a redirect grant"
                                                   : fmt::format("rule '{}' (protocol: rest)", rule_->name)),
                    {}, "deny", DenyKind::Uninspectable);
      }
      start_tunnel({});
      bytes_down_ += bytes.size();
      return client_.send_borrowed(bytes);
    case Phase::ReadingHead:
    case Phase::Discarding:
      if (from_client) return feed_client(bytes);
      return close_upstream();  // an idle upstream must not speak; drop it rather than guess
    case Phase::Forwarding:
      if (!from_client) return feed_upstream(bytes);
      if (request_done_) {
        pending_client_.append(bytes);  // the next (pipelined) request waits its turn
        return client_.want_reading(false);
      }
      return feed_client(bytes);
    case Phase::Identifying:
    case Phase::Verifying:
    case Phase::Resolving:
    case Phase::Connecting:
    case Phase::ClientHandshake:
      if (from_client) pending_client_.append(bytes);
      return;
    case Phase::Draining:  // discard whatever the client still sends after our response
    case Phase::Closed:
      return;
  }
}

void Session::on_leg_end(LegId from, int status) {
  const bool is_eof = status == UV_EOF;
  const bool from_client = from == LegId::Client;
  switch (phase_) {
    case Phase::Tunneling:
      if (!is_eof) return finish(from_client ? "client reset the tunnel" : "upstream reset the tunnel");
      leg(from_client ? LegId::Upstream : LegId::Client).shutdown();  // half-close: pass the EOF on
      if (client_.eof() && upstream_.eof() && !client_.shutdown_pending() && !upstream_.shutdown_pending()) {
        finish("tunnel closed by both sides");
      }
      return;
    case Phase::Forwarding:
      if (from_client) {
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
    case Phase::Discarding:
      if (!from_client) return close_upstream();
      return finish(client_parser_->in_head() && !pending_client_.empty() ? "client closed mid-head"
                                                                          : "client closed");
    case Phase::Sniffing:
      if (from_client) return finish("client closed the tunnel before sending anything");
      return finish("upstream closed the tunnel before sending anything");
    case Phase::ClientHandshake:
      if (from_client) return finish("client closed during the TLS handshake");
      return close_upstream();  // the next request dials again
    case Phase::Identifying:
    case Phase::Verifying:
    case Phase::Resolving:
    case Phase::Connecting:
      if (from_client) return finish("client closed before the upstream was ready");
      if (phase_ == Phase::Connecting && upstream_.has_tls()) {
        return respond_error(
            {ErrorKind::UpstreamTlsFailed, Side::Upstream,
             fmt::format("{} closed the connection during the TLS handshake", target_.authority())});
      }
      return;
    case Phase::Draining:
      if (from_client && !client_.shutdown_pending()) return finish("done");
      return;
    case Phase::Closed:
      return;
  }
}

void Session::on_leg_write_failed(LegId to, std::string_view why) {
  log::debug("[S{}] write to {} failed: {}", id_, leg_name(to), why);
  finish("write failed");
}

void Session::on_leg_shutdown_done(LegId /*leg*/) {
  if (client_.shutdown_pending() || upstream_.shutdown_pending()) return;
  if (phase_ == Phase::Tunneling && client_.eof() && upstream_.eof()) {
    finish("tunnel closed by both sides");
  } else if (phase_ == Phase::Draining && client_.eof()) {
    finish("done");
  }
}

void Session::on_leg_backlog(LegId leg_id, bool high) {
  // Backpressure: while one side's write queue is long, stop reading what would only queue up there.
  leg(leg_id == LegId::Client ? LegId::Upstream : LegId::Client).set_throttled(high);
}

// ---- request heads -------------------------------------------------------------------------------

void Session::feed_client(std::string_view bytes) {
  while (phase_ == Phase::ReadingHead || phase_ == Phase::Discarding ||
         (phase_ == Phase::Forwarding && !request_done_)) {
    const auto step = client_parser_->feed(bytes);
    bytes.remove_prefix(std::min(step.consumed, bytes.size()));
    switch (step.event) {
      case MessageParser::Event::NeedMore:
        return;
      case MessageParser::Event::HeadComplete:
        pending_client_.assign(bytes);
        client_.want_reading(false);
        return on_request_head();
      case MessageParser::Event::MessageComplete:
      case MessageParser::Event::Upgrade:
        pending_client_.append(bytes);
        if (phase_ == Phase::Discarding) return next_request();
        request_done_ = true;
        if (request_framing_ == BodyFraming::Chunked) upstream_.send(std::string(kLastChunk));
        client_.want_reading(false);
        return;
      case MessageParser::Event::HeadTooLarge:
        return respond_error({ErrorKind::HeadTooLarge, Side::Client,
                              fmt::format("request head larger than {} bytes or {} header fields",
                                          kMaxHeadBytes, kMaxHeaderCount)});
      case MessageParser::Event::TargetTooLong:
        return respond_error({ErrorKind::TargetTooLong, Side::Client,
                              fmt::format("request-target longer than {} bytes", kMaxTargetBytes)});
      case MessageParser::Event::Invalid:
        if (phase_ != Phase::ReadingHead) return finish("malformed request body: " + client_parser_->error());
        return respond_error(
            {ErrorKind::BadRequest, Side::Client, "malformed request: " + client_parser_->error()});
    }
  }
}

// A request inside a CONNECT: origin-form (or absolute-form naming the same authority) for tunnel_.
Result<Target, std::string> Session::inner_target(const MessageHead& head) const {
  if (head.method == "CONNECT")
    return unexpected(std::string("CONNECT inside a CONNECT tunnel is not supported"));
  Target target = *tunnel_;
  if (head.url.starts_with('/')) {
    target.origin_form = head.url;
    return target;
  }
  if (head.url.find("://") == std::string::npos) {
    return unexpected(
        fmt::format("request target '{}' is neither origin-form (/path) nor absolute", head.url));
  }
  auto absolute = resolve_location(head.url, target);
  if (!absolute) return absolute;
  if (absolute->host != target.host || absolute->port != target.port) {
    return unexpected(
        fmt::format("request for {} inside a CONNECT to {}", absolute->authority(), target.authority()));
  }
  target.origin_form = absolute->origin_form;
  return target;
}

void Session::on_request_head() {
  const MessageHead& head = client_parser_->head();
  if (!only_chunked_transfer_coding(head)) {
    // RFC 9112 §6.1: a transfer coding the server does not understand gets 501. egressd re-frames bodies
    // as chunked only, so any other coding would reach the origin undeclared.
    return respond_error({ErrorKind::UnsupportedTransferCoding, Side::Client,
                          "only 'Transfer-Encoding: chunked' is supported in requests"});
  }
  if (tunnel_) {
    is_connect_ = false;
    auto target = inner_target(head);
    if (!target) return respond_error({ErrorKind::BadRequest, Side::Client, target.error()});
    target_ = std::move(*target);
    url_ = target_.url();
    // Domain fronting: the Host must name the authority that was CONNECTed to (and allowed).
    const std::string_view host_header = head.header("host");
    if (host_header.empty())
      return respond_error({ErrorKind::BadRequest, Side::Client, "missing Host header"});
    auto host = parse_host_header(host_header, tunnel_->tls ? 443 : 80);
    if (!host) return respond_error({ErrorKind::BadRequest, Side::Client, host.error()});
    if (host->host != tunnel_->host || host->port != tunnel_->port) {
      return deny(fmt::format("Host header '{}' does not match the CONNECT authority {} (domain fronting)",
                              host_header, tunnel_->authority()),
                  {}, "deny", DenyKind::Fronting);
    }
    return decide_and_go();
  }
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

// ---- decisions -----------------------------------------------------------------------------------

DecisionRecord Session::record_for(const char* event) const {
  DecisionRecord record;
  record.event = event;
  record.session = id_;
  record.client = client_address_;
  record.caller = caller();
  record.method = client_parser_->head().method;
  record.host = target_.host;
  record.port = target_.port;
  record.url = url_;
  record.policy_hash = (policy_ ? policy_ : server_.policy())->source_hash;
  return record;
}

void Session::decide_and_go() {
  if (!identity_->has_value()) return deny(identity_->error().message(), {}, "deny", DenyKind::CallerUnknown);
  const auto& who = identity_->value();
  if (admitted_exe_.empty()) {
    if (!server_.admit_binary(who.exe)) {
      const std::string why = fmt::format(
          "{} has {} connections open through egressd (--max-connections-per-binary {})", who.exe,
          server_.settings().max_connections_per_binary, server_.settings().max_connections_per_binary);
      server_.metrics().denied("per_binary_limit", "limit");
      DecisionRecord record = record_for("limit");
      record.reason = why;
      server_.deny_log().write(record);
      return respond_error({ErrorKind::TooManyConnections, Side::Proxy, why});
    }
    admitted_exe_ = who.exe;
  }
  const auto snapshot = server_.policy();
  const policy::Caller policy_caller{who.exe, who.ancestors};
  const auto decision = policy::decide(*snapshot, {policy_caller, target_.host, target_.port});
  if (decision.verdict == policy::Verdict::Deny) {
    if (allow_by_redirect_grant()) return;
    if (!decision.audited) return deny(decision.reason, decision.rules_considered, "deny", DenyKind::NoRule);
  }
  // Audit mode relaxes the policy, never a digest: an audited caller's executable is verified too.
  const policy::Rule* deciding = decision.audited ? decision.audit_rule : decision.rule;
  const std::vector<std::string> deciding_rules =
      deciding != nullptr ? std::vector<std::string>{deciding->name} : decision.rules_considered;
  if (digest_needed(decision)) {
    if (!exe_sha256_) {
      transition_to(Phase::Verifying);
      arm_timer(kDigestTimeoutMs);
      log::debug("[S{}] verifying the executable of {}", id_, caller_text());
      if (int rc = queue_digest(server_.loop(), server_, id_, who.pid, server_.digests()); rc != 0) {
        return deny(fmt::format("cannot verify {}: {}", who.exe, uv_strerror(rc)), deciding_rules, "deny",
                    DenyKind::BinaryDigest);
      }
      return;  // on_digest() decides again
    }
    if (auto refused = digest_refusal(decision))
      return deny(*refused, deciding_rules, "deny", DenyKind::BinaryDigest);
  }
  policy_ = snapshot;
  if (decision.verdict == policy::Verdict::Deny) return allow_by_audit(decision);
  rule_ = decision.rule;
  endpoint_ = decision.endpoint;
  by_redirect_grant_ = false;
  allowed_by_audit_ = false;
  const auto scope = policy::DestinationScope::of(*rule_, *endpoint_);
  destination_ = {rule_->name, scope.exact_host, scope.named_ip, endpoint_->allowed_ips};
  std::string http_rule;
  bool http_audited = false;  // the endpoint's HTTP rules would refuse this request; audit mode allows it
  std::string http_reason;
  if (!is_connect_) {
    const auto& path_and_query = target_.origin_form;
    const auto question = path_and_query.find('?');
    const std::string_view path = std::string_view(path_and_query).substr(0, question);
    const std::string_view query = question == std::string::npos
                                       ? std::string_view()
                                       : std::string_view(path_and_query).substr(question + 1);
    const std::string& method = client_parser_->head().method;
    const auto http =
        policy::decide_http(*rule_, *endpoint_, target_.host, target_.port, {method, path, query});
    if (http.verdict == policy::Verdict::Deny) return refuse_request(*rule_, http.rule, http.reason);
    if (http.audited) log_would_deny(rule_->name, http.rule, http.reason, {rule_->name}, "denied");
    http_rule = http.rule;
    http_audited = http.audited;
    http_reason = http.reason;
  }

  log::info("[S{}] ALLOW {} -> {} {} [policy:{}]", id_, caller_text(), client_parser_->head().method,
            is_connect_ ? target_.authority() : url_, rule_->name);
  server_.metrics().allowed();
  DecisionRecord record = record_for("allow");
  record.rule = rule_->name;
  record.http_rule = http_rule;
  record.reason = http_audited ? http_reason : decision.reason;
  record.would_deny = http_audited;
  server_.access_log().write(record);

  go_upstream();
}

void Session::go_upstream() {
  if (!is_connect_ && upstream_.is_open() && upstream_authority_ == target_.authority() && !upstream_.eof()) {
    if (tunnel_ && tunnel_->tls && !upstream_.tls_ready()) {  // the CONNECT's dial, not yet TLS
      if (upstream_.has_tls()) {
        close_upstream();
        return start_resolve();
      }
      transition_to(Phase::Connecting);
      arm_timer(server_.settings().connect_timeout_ms);
      return start_upstream_tls();
    }
    return start_exchange();  // keep-alive to the same authority: reuse the connection
  }
  close_upstream();
  start_resolve();
}

void Session::recheck(const std::shared_ptr<const policy::Policy>& next) {
  if (phase_ == Phase::Closed || phase_ == Phase::Draining || !policy_) return;
  const bool in_use = phase_ == Phase::Resolving || phase_ == Phase::Connecting ||
                      phase_ == Phase::Sniffing || phase_ == Phase::ClientHandshake ||
                      phase_ == Phase::Tunneling || phase_ == Phase::Forwarding;
  if (!in_use && !upstream_.is_open())
    return;  // nothing allowed is in flight; the next request decides afresh
  const auto* who = caller();
  if (who == nullptr) return;
  const policy::Caller policy_caller{who->exe, who->ancestors};
  const auto decision = policy::decide(*next, {policy_caller, target_.host, target_.port});
  std::optional<std::string> refused;
  const bool lets_through = decision.verdict == policy::Verdict::Allow || decision.audited;
  if (lets_through && digest_needed(decision)) {
    const policy::Rule* deciding = decision.audited ? decision.audit_rule : decision.rule;
    refused = exe_sha256_ ? digest_refusal(decision)
              : deciding != nullptr
                  ? fmt::format("policy '{}' now pins a sha256 for {}; this connection was not verified",
                                deciding->name, who->exe)
                  : fmt::format("{} must now be verified by its sha256; this connection was not", who->exe);
  }
  if (decision.verdict == policy::Verdict::Allow && !refused) {
    policy_ = next;
    rule_ = decision.rule;
    endpoint_ = decision.endpoint;
    by_redirect_grant_ = false;
    allowed_by_audit_ = false;
    return;
  }
  if (by_redirect_grant_) {  // a grant is not policy: it stays until its window ends
    policy_ = next;
    return;
  }
  if (decision.audited && !refused) return keep_by_audit(next, decision, in_use);
  if (!in_use) return close_upstream();  // an idle keep-alive upstream to a host no longer allowed
  policy_ = next;
  rule_ = nullptr;
  endpoint_ = nullptr;
  deny(refused.value_or(decision.reason), decision.rules_considered, "revoked", DenyKind::Revoked);
}

// ---- timers and the end --------------------------------------------------------------------------

void Session::uv_on_timer(uv_timer_t* timer) noexcept {
  auto* self = static_cast<Session*>(timer->data);
  if (self == nullptr) return;
  self->on_timer();
}

void Session::arm_timer(uint64_t ms) {
  if (timer_) uv_timer_start(timer_.get(), uv_on_timer, ms, 0);
}

void Session::on_timer() {
  const auto& settings = server_.settings();
  switch (phase_) {
    case Phase::ReadingHead:
      return finish(client_parser_->in_head() ? "no complete request head in time"
                                              : "idle keep-alive connection");
    case Phase::Identifying:
      return deny(fmt::format("caller unknown: identification did not finish within {} ms",
                              settings.identify_timeout_ms),
                  {}, "deny", DenyKind::CallerUnknown);
    case Phase::Verifying:
      return deny(fmt::format("the caller's executable could not be hashed within {} ms", kDigestTimeoutMs),
                  {}, "deny", DenyKind::BinaryDigest);
    case Phase::Resolving:
    case Phase::Connecting:
      return respond_error({upstream_.has_tls() ? ErrorKind::UpstreamTlsFailed : ErrorKind::Timeout,
                            Side::Upstream,
                            fmt::format("connecting to {} took longer than {} ms", target_.authority(),
                                        settings.connect_timeout_ms)});
    case Phase::ClientHandshake:
      log::info("[S{}] {} did not complete its TLS handshake within {} ms; closed", id_, caller_text(),
                settings.handshake_timeout_ms);
      return finish("no TLS handshake from the client in time");
    case Phase::Sniffing:
    case Phase::Tunneling:
    case Phase::Forwarding:
    case Phase::Discarding: {
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

void Session::close_upstream() {
  upstream_.close();
  upstream_parser_.reset();
  upstream_authority_.clear();
  client_.set_throttled(false);
}

void Session::finish(std::string_view why) {
  if (phase_ == Phase::Closed) return;
  log::debug("[S{}] closing ({}): {} bytes up, {} bytes down", id_, why, bytes_up_, bytes_down_);
  server_.metrics().session_closed(bytes_up_, bytes_down_);
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

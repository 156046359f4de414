// Session refusals: the 403 of a denial (and its deny-log line and metrics), an HTTP request refused by
// its endpoint's rules, egressd's own error responses, and the 503 at capacity.
#include "proxy/session.h"

#include <fmt/format.h>

#include "common/log.h"
#include "proxy/decision_log.h"
#include "proxy/responses.h"
#include "proxy/server.h"
#include "proxy/socket_address.h"

namespace egressd::proxy {

void Session::refuse_at_capacity(const std::string& why) {
  log::warn("[S{}] 503 for {}: {}", id_, client_address_, why);
  server_.metrics().connection_refused();
  respond_error({ErrorKind::TooManyConnections, Side::Proxy, why});
}

const char* Session::deny_reason(DenyKind kind) {
  switch (kind) {
    case DenyKind::NoRule:
      return "no_rule";
    case DenyKind::Revoked:
      return "revoked";
    case DenyKind::CallerUnknown:
      return "caller_unknown";
    case DenyKind::BinaryDigest:
      return "binary_digest";
    case DenyKind::PidReused:
      return "pid_reused";
    case DenyKind::Destination:
      return "destination";
    case DenyKind::OwnListener:
      return "own_listener";
    case DenyKind::Fronting:
      return "domain_fronting";
    case DenyKind::Uninspectable:
      return "uninspectable";
  }
  return "unknown";
}

const char* Session::deny_engine(DenyKind kind) {
  switch (kind) {
    case DenyKind::NoRule:
    case DenyKind::Revoked:
      return "policy";
    case DenyKind::CallerUnknown:
    case DenyKind::BinaryDigest:
    case DenyKind::PidReused:
      return "identity";
    case DenyKind::Destination:
    case DenyKind::OwnListener:
      return "ssrf";
    case DenyKind::Fronting:
    case DenyKind::Uninspectable:
      return "protocol";
  }
  return "unknown";
}

void Session::deny(const std::string& reason, const std::vector<std::string>& rules_considered,
                   const char* event, DenyKind kind) {
  const bool by_destination = kind == DenyKind::Destination || kind == DenyKind::OwnListener;
  server_.metrics().denied(deny_reason(kind), deny_engine(kind));
  const MessageHead& head = client_parser_->head();
  const auto* who = caller();
  log::info("[S{}] {} {} -> {} {} [reason:{}]", id_,
            std::string_view(event) == "revoked" ? "REVOKED" : "DENY", caller_text(), head.method,
            is_connect_ ? target_.authority() : url_, reason);
  DecisionRecord record = record_for(event);
  record.rules_considered = rules_considered;
  record.reason = reason;
  if (by_destination) {
    record.engine = "ssrf";
    for (const sockaddr_storage& addr : addresses_) record.addresses.push_back(ip_text(addr));
  }
  const auto chain = redirect_chain();
  if (!chain.empty()) {
    record.redirect_chain_json = redirect_chain_json(chain);
    log::info("[S{}] ... reached by a redirect: {}", id_, redirect_chain_text(chain));
  }
  server_.deny_log().write(record);

  if (phase_ == Phase::Tunneling || phase_ == Phase::Forwarding || phase_ == Phase::Sniffing) {
    return finish("revoked");  // bytes already flow (or the 200 was sent): the only safe answer is to close
  }
  DenyDetails details;
  if (by_destination) details.error = "ssrf_denied";
  const char* why =
      by_destination ? "refused: its address is not one egressd may dial" : "not permitted by policy";
  details.detail = is_connect_ ? fmt::format("CONNECT {} {}", target_.authority(), why)
                               : fmt::format("{} {} {}", head.method, url_, why);
  if (std::string_view(event) == "revoked") details.detail += " (the policy changed)";
  details.reason = reason;
  details.caller = who;
  details.host = target_.host;
  details.port = target_.port;
  details.redirect_chain_json = record.redirect_chain_json;
  close_upstream();
  transition_to(Phase::Draining);
  client_.send(deny_response(details));
  client_.shutdown();
  client_.want_reading(true);  // drain what the client still sends so it reads our answer, not a reset
  arm_timer(kLingerMs);
}

// An HTTP request refused by its endpoint's rules: the answer is a 403, and the connection stays usable.
void Session::refuse_request(const policy::Rule& rule, const std::string& http_rule,
                             const std::string& reason) {
  const MessageHead& head = client_parser_->head();
  log::info("[S{}] DENY {} -> {} {} [policy:{} rule:{}] {}", id_, caller_text(), head.method, url_, rule.name,
            http_rule, reason);
  server_.metrics().denied("http_rule", "http");
  DecisionRecord record = record_for("deny");
  record.rule = rule.name;
  record.http_rule = http_rule;
  record.rules_considered = {rule.name};
  record.reason = reason;
  record.redirect_chain_json = redirect_chain_json(redirect_chain());
  if (record.redirect_chain_json == "[]") record.redirect_chain_json.clear();
  server_.deny_log().write(record);

  HttpDenyDetails details;
  details.policy = rule.name;
  details.http_rule = http_rule;
  details.reason = reason;
  details.method = head.method;
  details.path = target_.origin_form;
  details.caller = caller();
  details.host = target_.host;
  details.port = target_.port;
  details.redirect_chain_json = record.redirect_chain_json;
  const bool has_body = head.chunked || (head.has_content_length && head.header("content-length") != "0");
  const bool keep_open = head.keep_alive && !head.upgrade;
  client_.send(http_deny_response(details, !keep_open));
  if (!keep_open) {
    close_upstream();
    transition_to(Phase::Draining);
    client_.shutdown();
    client_.want_reading(true);
    return arm_timer(kLingerMs);
  }
  // Read the refused body to its end and drop it, so the next request starts where it should.
  transition_to(Phase::Discarding);
  discarded_bytes_ = 0;
  arm_timer(server_.settings().idle_timeout_ms);
  client_parser_->resume();
  std::string buffered = std::move(pending_client_);
  pending_client_.clear();
  feed_client(buffered);
  if (phase_ == Phase::Discarding && has_body) client_.want_reading(true);
}

void Session::respond_error(const Error& error) {
  if (phase_ == Phase::Closed || phase_ == Phase::Draining) return;
  if (error.side == Side::Upstream) server_.metrics().upstream_error(error_code(error.kind));
  if (error.side == Side::Client) {
    log::info("[S{}] {} from {}: {}", id_, http_status(error.kind), client_address_, error.detail);
  } else {
    log::warn("[S{}] {} for {}: {}", id_, http_status(error.kind), caller_text(), error.detail);
  }
  if (response_started_ || phase_ == Phase::Sniffing || phase_ == Phase::ClientHandshake ||
      phase_ == Phase::Tunneling) {
    return finish(error.detail);  // too late for a status line
  }
  close_upstream();
  transition_to(Phase::Draining);
  client_.send(error_response(error));
  client_.shutdown();
  client_.want_reading(true);
  arm_timer(kLingerMs);
}

}  // namespace egressd::proxy

// Session: redirect hops. A 3xx leading elsewhere is remembered for the caller; a later denial names the
// hops that led there, and an endpoint's `redirects:` grants exactly the Location URL.
#include <fmt/format.h>

#include "common/log.h"
#include "proxy/decision_log.h"
#include "proxy/server.h"
#include "proxy/session.h"

namespace egressd::proxy {

std::vector<RedirectHop> Session::redirect_chain() const {
  const auto* who = caller();
  if (who == nullptr) return {};
  return server_.redirects().chain_to(who->pid, who->exe, target_.host, target_.port,
                                      RedirectMemory::Clock::now());
}

// A 3xx whose Location leads to another host:port: remember the hop for this caller, and when the
// endpoint lists that host under `redirects:`, let the caller fetch exactly that URL for a while.
void Session::remember_redirect(const MessageHead& response) {
  const int status = response.status;
  if (status != 301 && status != 302 && status != 303 && status != 307 && status != 308) return;
  const auto* who = caller();
  const std::string_view location = response.header("location");
  if (who == nullptr || location.empty()) return;
  auto to = resolve_location(location, target_);
  if (!to || (to->host == target_.host && to->port == target_.port)) return;
  RedirectHop hop;
  hop.pid = who->pid;
  hop.exe = who->exe;
  hop.status = status;
  hop.method = client_parser_->head().method;
  hop.from_url = url_;
  hop.to_url = to->url();
  hop.to_host = to->host;
  hop.to_port = to->port;
  if (endpoint_ != nullptr && rule_ != nullptr && policy::redirect_allowed(*endpoint_, to->host)) {
    hop.grant_rule = rule_->name;
    hop.grant_allowed_ips = endpoint_->allowed_ips;
  }
  hop.at = RedirectMemory::Clock::now();
  log::debug("[S{}] {} redirects {} to {}{}", id_, status, url_, hop.to_url,
             hop.grant_rule.empty() ? "" : " (granted by `redirects:`)");
  server_.redirects().record(std::move(hop));
}

// A CONNECT to a host only a redirect grant covers may open (its requests are checked one by one), and
// a request for exactly a granted URL may go; everything else stays denied.
bool Session::allow_by_redirect_grant() {
  const auto* who = caller();
  if (who == nullptr) return false;
  auto& redirects = server_.redirects();
  const auto now = RedirectMemory::Clock::now();
  std::string grant_rule;
  std::string reason;
  const RedirectHop* grant = nullptr;
  if (is_connect_) {
    grant = redirects.grant_into(who->pid, target_.host, target_.port, now);
    if (grant == nullptr) return false;
    grant_rule = "redirect grant";
    reason = fmt::format("a redirect granted {} a fetch from {}; only that URL may be requested", who->exe,
                         target_.authority());
  } else {
    grant = redirects.grant_for(who->pid, client_parser_->head().method, url_, now);
    if (grant == nullptr) return false;
    grant_rule = grant->grant_rule;
    reason = fmt::format("redirect-scoped grant of rule '{}': {} from {} {}", grant->grant_rule,
                         grant->status, grant->method, grant->from_url);
  }
  destination_ = {grant->grant_rule, false, std::nullopt, grant->grant_allowed_ips};
  policy_ = server_.policy();
  rule_ = nullptr;
  endpoint_ = nullptr;
  by_redirect_grant_ = true;
  allowed_by_audit_ = false;
  log::info("[S{}] ALLOW {} -> {} {} [{}]", id_, caller_text(), client_parser_->head().method,
            is_connect_ ? target_.authority() : url_, reason);
  DecisionRecord record = record_for("allow");
  record.rule = grant_rule;
  record.reason = reason;
  record.redirect_chain_json = redirect_chain_json(redirect_chain());
  server_.access_log().write(record);
  go_upstream();
  return true;
}

}  // namespace egressd::proxy

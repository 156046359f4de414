// Session: audit mode. What the policy would deny is let through when audit mode covers it (the policy's
// `mode`, a rule's, or an endpoint's `enforcement`): one deny-log line records the would-be denial with
// every field the denial would have had plus would_deny, and the access-log line is marked the same way.
// Only the policy is relaxed: identity, digests, limits, request parsing and destination safety are not.
#include <fmt/format.h>

#include "common/log.h"
#include "proxy/decision_log.h"
#include "proxy/server.h"
#include "proxy/session.h"

namespace egressd::proxy {

std::string Session::log_would_deny(const std::string& rule, const std::string& http_rule,
                                    const std::string& reason,
                                    const std::vector<std::string>& rules_considered, std::string_view what) {
  const std::string scope = rule.empty() ? std::string("mode:audit")
                            : http_rule.empty()
                                ? fmt::format("policy:{} mode:audit", rule)
                                : fmt::format("policy:{} rule:{} mode:audit", rule, http_rule);
  log::info("[S{}] AUDIT {} -> {} {} [{}] would be {}: {}", id_, caller_text(), client_parser_->head().method,
            is_connect_ ? target_.authority() : url_, scope, what, reason);
  server_.metrics().audited();
  DecisionRecord record = record_for("audit");
  record.rule = rule;
  record.http_rule = http_rule;
  record.rules_considered = rules_considered;
  record.reason = reason;
  record.would_deny = true;
  const auto chain = redirect_chain();
  if (!chain.empty()) {
    record.redirect_chain_json = redirect_chain_json(chain);
    log::info("[S{}] ... reached by a redirect: {}", id_, redirect_chain_text(chain));
  }
  server_.deny_log().write(record);
  return record.redirect_chain_json;
}

// No endpoint stands behind what is let through here, so nothing widens where it may lead: its addresses
// are checked as a wildcard host's without allowed_ips (public addresses only), and a CONNECT carries
// opaque bytes (there are no HTTP rules to apply, and no endpoint asks for TLS to be opened).
void Session::allow_by_audit(const policy::Decision& decision) {
  rule_ = decision.audit_rule;
  endpoint_ = nullptr;
  by_redirect_grant_ = false;
  allowed_by_audit_ = true;
  const std::string rule_name = rule_ != nullptr ? rule_->name : std::string();
  destination_ = {rule_name, false, std::nullopt, {}, /*by_audit=*/true};
  DecisionRecord record = record_for("allow");
  record.rule = rule_name;
  record.reason = decision.reason;
  record.would_deny = true;
  record.redirect_chain_json =
      log_would_deny(rule_name, "", decision.reason, decision.rules_considered, "denied");
  server_.access_log().write(record);
  go_upstream();
}

void Session::keep_by_audit(const std::shared_ptr<const policy::Policy>& next,
                            const policy::Decision& decision, bool in_use) {
  const bool logged_before = allowed_by_audit_;  // its would-be denial has its line already
  policy_ = next;
  rule_ = decision.audit_rule;
  endpoint_ = nullptr;
  allowed_by_audit_ = true;
  // Nothing in flight would not be revoked either, only its idle upstream closed: nothing to report.
  if (logged_before || !in_use) return;
  log_would_deny(rule_ != nullptr ? rule_->name : std::string(), "", decision.reason,
                 decision.rules_considered, "revoked");
}

}  // namespace egressd::proxy

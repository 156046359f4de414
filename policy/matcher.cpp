#include "policy/matcher.h"

#include <algorithm>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "policy/destination.h"

namespace egressd::policy {
namespace {

char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
}

// Glob over `text`: `**` matches any run, `*` any run without a separator, anything else itself (compared
// with `same`). Dynamic programming over (glob position, text position): linear in each, no backtracking
// blow-up on patterns such as "/**/**/**/x".
template <typename IsSeparator, typename Same>
bool glob_matches(std::string_view glob, std::string_view text, IsSeparator is_separator, Same same) {
  // matched[j]: the glob consumed so far matches text[0, j).
  std::vector<char> matched(text.size() + 1, 0);
  matched[0] = 1;
  for (std::size_t i = 0; i < glob.size();) {
    std::vector<char> next(text.size() + 1, 0);
    if (glob[i] == '*') {
      const bool crosses = i + 1 < glob.size() && glob[i + 1] == '*';
      i += crosses ? 2 : 1;
      for (std::size_t j = 0; j <= text.size(); ++j) {
        next[j] = matched[j] || (j > 0 && next[j - 1] && (crosses || !is_separator(text[j - 1])));
      }
    } else {
      for (std::size_t j = 1; j <= text.size(); ++j) next[j] = matched[j - 1] && same(glob[i], text[j - 1]);
      ++i;
    }
    matched = std::move(next);
  }
  return matched[text.size()] != 0;
}

bool label_matches(std::string_view pattern, std::string_view label) {
  if (label.empty()) return false;
  if (pattern.find('*') == std::string_view::npos) return equals_ignoring_case(pattern, label);
  return glob_matches(
      pattern, label, [](char c) { return c == '.'; },
      [](char a, char b) { return ascii_lower(a) == ascii_lower(b); });
}

std::vector<std::string_view> split_labels(std::string_view host) {
  std::vector<std::string_view> labels;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = host.find('.', start);
    labels.push_back(
        host.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos) return labels;
    start = dot + 1;
  }
}

bool exact_binary_matches(const BinaryPattern& pattern, std::string_view exe) {
  if (exe.empty()) return false;
  if (pattern.is_glob) return path_glob_matches(pattern.path, exe);
  return exe == pattern.path ||
         std::find(pattern.resolved.begin(), pattern.resolved.end(), exe) != pattern.resolved.end();
}

// A hostless endpoint takes only IP literals inside its allowed_ips; never a name.
bool endpoint_host_matches(const Endpoint& endpoint, std::string_view host) {
  if (!endpoint.hostless()) return host_matches(endpoint.host, host);
  const std::optional<IpAddress> address = IpAddress::parse(host);
  return address && std::any_of(endpoint.allowed_ips.begin(), endpoint.allowed_ips.end(),
                                [&address](const Cidr& cidr) { return cidr_contains(cidr, *address); });
}

// The rule's endpoint for host:port. An endpoint naming the host exactly wins over a wildcard or a
// hostless range that also matches, wherever each stands in the file: its HTTP rules and its address
// scope (an exact host may reach private addresses) are the ones meant for this host.
const Endpoint* matching_endpoint(const Rule& rule, std::string_view host, uint16_t port) {
  const Endpoint* broad = nullptr;
  for (const Endpoint& endpoint : rule.endpoints) {
    if (endpoint_host_matches(endpoint, host) &&
        std::find(endpoint.ports.begin(), endpoint.ports.end(), port) != endpoint.ports.end()) {
      if (!endpoint.hostless() && !endpoint.host.is_wildcard) return &endpoint;
      if (broad == nullptr) broad = &endpoint;
    }
  }
  return broad;
}

std::string binary_denied_reason(const Caller& caller, const std::vector<std::string>& rule_names) {
  if (caller.exe.empty()) return "caller's executable is unknown";
  std::string names;
  for (const std::string& name : rule_names) names += (names.empty() ? "'" : ", '") + name + "'";
  return "binary '" + caller.exe + "' not allowed in " + (rule_names.size() == 1 ? "policy " : "policies ") +
         names;
}

}  // namespace

bool host_matches(const HostPattern& pattern, std::string_view host) {
  if (host.empty()) return false;
  if (!pattern.is_wildcard) return equals_ignoring_case(pattern.text, host);
  // Wildcards are for names: an address is allowed only by writing it (or by allowed_ips).
  if (IpAddress::parse(host)) return false;
  const std::vector<std::string_view> labels = split_labels(host);
  const std::vector<std::string>& wanted = pattern.labels;
  if (wanted.empty()) return false;
  // `**` as the first label stands for one or more labels; every other label stands for exactly one.
  const bool leading_any = wanted.front() == "**";
  const std::size_t fixed = leading_any ? wanted.size() - 1 : wanted.size();
  if (leading_any ? labels.size() <= fixed : labels.size() != fixed) return false;
  const std::size_t offset = labels.size() - fixed;
  for (std::size_t i = 0; i < offset; ++i) {
    if (labels[i].empty()) return false;
  }
  for (std::size_t i = 0; i < fixed; ++i) {
    if (!label_matches(wanted[leading_any ? i + 1 : i], labels[offset + i])) return false;
  }
  return true;
}

bool path_glob_matches(std::string_view glob, std::string_view path) {
  return glob_matches(
      glob, path, [](char c) { return c == '/'; }, [](char a, char b) { return a == b; });
}

bool value_glob_matches(std::string_view glob, std::string_view value) {
  return glob_matches(
      glob, value, [](char) { return false; }, [](char a, char b) { return a == b; });
}

std::string format_host_port(std::string_view host, uint16_t port) {
  const bool ipv6 = host.find(':') != std::string_view::npos;
  return (ipv6 ? "[" + std::string(host) + "]" : std::string(host)) + ":" + std::to_string(port);
}

bool redirect_allowed(const Endpoint& endpoint, std::string_view host) {
  return std::any_of(endpoint.redirect_hosts.begin(), endpoint.redirect_hosts.end(),
                     [host](const HostPattern& pattern) { return host_matches(pattern, host); });
}

bool binary_matches(const BinaryPattern& pattern, const Caller& caller) {
  if (caller.exe.empty()) return false;  // fail closed: an unknown caller matches nothing, not even "/**"
  if (exact_binary_matches(pattern, caller.exe)) return true;
  if (!pattern.children) return false;
  return std::any_of(
      caller.ancestors.begin(), caller.ancestors.end(),
      [&pattern](const std::string& ancestor) { return exact_binary_matches(pattern, ancestor); });
}

namespace {

bool lists_caller(const Rule& rule, const Caller& caller, const BinaryPattern** entry) {
  const auto binary = std::find_if(rule.binaries.begin(), rule.binaries.end(),
                                   [&caller](const BinaryPattern& b) { return binary_matches(b, caller); });
  if (binary == rule.binaries.end()) return false;
  *entry = &*binary;
  return true;
}

// A denial audit mode lets through: attributed to the first rule in audit mode listing the caller; else,
// when no rule lists the caller at all, the policy's own mode decides.
void apply_audit(const Policy& policy, const RuleIndex* index, const Caller& caller, Decision& decision) {
  if (caller.exe.empty()) return;  // an unidentified caller is a fault, never a gap in the policy
  if (index != nullptr) {
    // The first audit rule listing the caller is the first listing rule in file order that is in audit
    // mode; only a policy in audit mode also needs to know whether any rule lists the caller.
    for (const uint32_t number : index->audit_rules) {
      const Rule& rule = policy.rules[number];
      const BinaryPattern* binary = nullptr;
      if (!lists_caller(rule, caller, &binary)) continue;
      decision.audited = true;
      decision.audit_rule = &rule;
      decision.audit_binary = binary;
      return;
    }
    if (policy.mode != Enforcement::Audit) return;
  }
  bool listed = false;
  for (const Rule& rule : policy.rules) {
    const BinaryPattern* binary = nullptr;
    if (!lists_caller(rule, caller, &binary)) continue;
    listed = true;
    if (rule.mode != Enforcement::Audit) continue;
    decision.audited = true;
    decision.audit_rule = &rule;
    decision.audit_binary = binary;
    return;
  }
  decision.audited = !listed && policy.mode == Enforcement::Audit;
}

// One rule's part of decide(): rules are offered in file order, and the first allowing one wins.
void consider(const Rule& rule, const EgressRequest& request, Decision& decision) {
  const Endpoint* endpoint = matching_endpoint(rule, request.host, request.port);
  if (endpoint == nullptr) return;
  decision.rules_considered.push_back(rule.name);
  if (decision.rule != nullptr) return;
  const BinaryPattern* binary = nullptr;
  if (!lists_caller(rule, request.caller, &binary)) return;
  decision.verdict = Verdict::Allow;
  decision.rule = &rule;
  decision.endpoint = endpoint;
  decision.binary = binary;
  decision.reason = "allowed by policy '" + rule.name + "'";
}

void conclude(const Policy& policy, const RuleIndex* index, const EgressRequest& request,
              Decision& decision) {
  if (decision.verdict == Verdict::Allow) return;
  decision.reason =
      decision.rules_considered.empty()
          ? "endpoint " + format_host_port(request.host, request.port) + " is not allowed by any policy"
          : binary_denied_reason(request.caller, decision.rules_considered);
  apply_audit(policy, index, request.caller, decision);
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

void append_rules(const RuleIndex::RulesByText& map, std::string_view key, std::vector<uint32_t>& out) {
  if (const auto found = map.find(key); found != map.end()) {
    out.insert(out.end(), found->second.begin(), found->second.end());
  }
}

// Every rule that has an endpoint whose host pattern can match `host` (a superset: ports and the full
// pattern are checked afterwards), ascending.
std::vector<uint32_t> candidate_rules(const RuleIndex& index, std::string_view host) {
  std::vector<uint32_t> rules = index.any_host;
  // Request hosts arrive lowercase; anything else is folded once here rather than on every lookup.
  std::string folded;
  if (std::any_of(host.begin(), host.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
    folded = lowercase(host);
    host = folded;
  }
  append_rules(index.exact_host, host, rules);
  const std::size_t first_dot = host.find('.');
  if (first_dot != std::string_view::npos) append_rules(index.one_label, host.substr(first_dot + 1), rules);
  for (std::size_t dot = first_dot; dot != std::string_view::npos; dot = host.find('.', dot + 1)) {
    append_rules(index.any_labels, host.substr(dot + 1), rules);
  }
  if (rules.size() > 1) {
    std::sort(rules.begin(), rules.end());
    rules.erase(std::unique(rules.begin(), rules.end()), rules.end());
  }
  return rules;
}

void add_rule(std::vector<uint32_t>& rules, uint32_t number) {
  if (rules.empty() || rules.back() != number) rules.push_back(number);
}

// Where one endpoint's host pattern goes in the index: `*.S` and `**.S` with S all literal labels are
// keyed by S; exact names and IP literals by themselves; every other shape is a candidate for any host.
void index_endpoint(RuleIndex& index, const Endpoint& endpoint, uint32_t number) {
  const HostPattern& host = endpoint.host;
  if (endpoint.hostless()) return add_rule(index.any_host, number);
  if (!host.is_wildcard) return add_rule(index.exact_host[lowercase(host.text)], number);
  const std::vector<std::string>& labels = host.labels;
  const bool literal_suffix = labels.size() >= 2 && (labels.front() == "*" || labels.front() == "**") &&
                              std::none_of(labels.begin() + 1, labels.end(), [](const std::string& label) {
                                return label.empty() || label.find('*') != std::string::npos;
                              });
  if (!literal_suffix) return add_rule(index.any_host, number);
  std::string suffix;
  for (std::size_t i = 1; i < labels.size(); ++i) suffix += (i == 1 ? "" : ".") + lowercase(labels[i]);
  add_rule((labels.front() == "*" ? index.one_label : index.any_labels)[suffix], number);
}

}  // namespace

void index_rules(Policy& policy) {
  auto index = std::make_shared<RuleIndex>();
  index->rule_count = policy.rules.size();
  for (std::size_t i = 0; i < policy.rules.size(); ++i) {
    const Rule& rule = policy.rules[i];
    const auto number = static_cast<uint32_t>(i);
    for (const Endpoint& endpoint : rule.endpoints) index_endpoint(*index, endpoint, number);
    if (rule.mode == Enforcement::Audit) index->audit_rules.push_back(number);
  }
  policy.index = std::move(index);
}

Decision decide_without_index(const Policy& policy, const EgressRequest& request) {
  Decision decision;
  if (policy.rules.empty()) {
    decision.reason = "network connections not allowed by policy (it has no network_policies)";
    apply_audit(policy, nullptr, request.caller, decision);
    return decision;
  }
  for (const Rule& rule : policy.rules) consider(rule, request, decision);
  conclude(policy, nullptr, request, decision);
  return decision;
}

Decision decide(const Policy& policy, const EgressRequest& request) {
  const RuleIndex* index = policy.index.get();
  if (index == nullptr || index->rule_count != policy.rules.size() || policy.rules.empty()) {
    return decide_without_index(policy, request);
  }
  Decision decision;
  for (const uint32_t number : candidate_rules(*index, request.host))
    consider(policy.rules[number], request, decision);
  conclude(policy, index, request, decision);
  return decision;
}

std::string describe_modes(const Policy& policy) {
  const bool audit = policy.mode == Enforcement::Audit;
  std::vector<std::string> others;  // rules in the other mode
  for (const Rule& rule : policy.rules) {
    if (rule.mode != policy.mode) others.push_back(rule.name);
  }
  std::string out = audit ? "audit" : "enforce";
  if (others.empty()) return out;
  out += std::string(" (") + (audit ? "enforce: " : "audit: ") + (others.size() == 1 ? "rule " : "rules ");
  for (std::size_t i = 0; i < others.size(); ++i) out += (i == 0 ? "'" : ", '") + others[i] + "'";
  return out + ")";
}

}  // namespace egressd::policy

#include "policy/explain.h"

#include <algorithm>
#include <charconv>
#include <span>
#include <string_view>
#include <utility>

#include "policy/destination.h"
#include "policy/http_matcher.h"
#include "policy/wording.h"

namespace egressd::policy {
namespace {

constexpr std::size_t kMaxListed = 6;      // binaries or endpoints named when saying what a rule lists
constexpr std::size_t kMaxHttpNotes = 10;  // HTTP rules described on an HTTP denial

using wording::in_quotes;
using wording::join_cidrs;
using wording::join_ports;
using wording::position;

// "api.github.com:443 (12:9)", "[::1]:{80, 443} (13:9)", "allowed_ips [10.0.0.0/8] port 8080 (14:9)".
std::string describe_endpoint(const Endpoint& endpoint) {
  const std::string ports = endpoint.ports.size() == 1 ? std::to_string(endpoint.ports.front())
                                                       : "{" + join_ports(endpoint.ports) + "}";
  const std::string& host = endpoint.host.text;
  const std::string where = " (" + position(endpoint.where) + ")";
  if (endpoint.hostless())
    return "allowed_ips [" + join_cidrs(endpoint.allowed_ips) + "] port " + ports + where;
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + ports + where;
}

// As the matcher reads an endpoint's host (matcher.cpp): a hostless endpoint takes IP literals inside its
// allowed_ips, never a name.
bool endpoint_host_matches(const Endpoint& endpoint, std::string_view host) {
  if (!endpoint.hostless()) return host_matches(endpoint.host, host);
  const std::optional<IpAddress> address = IpAddress::parse(host);
  return address && std::any_of(endpoint.allowed_ips.begin(), endpoint.allowed_ips.end(),
                                [&address](const Cidr& cidr) { return cidr_contains(cidr, *address); });
}

bool lists_port(const Endpoint& endpoint, uint16_t port) {
  return std::find(endpoint.ports.begin(), endpoint.ports.end(), port) != endpoint.ports.end();
}

std::string_view basename(std::string_view path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// Why the entries of `rule` do not match the caller, with what a reader most likely meant.
std::string why_binary_not_listed(const Rule& rule, const Caller& caller) {
  if (caller.exe.empty())
    return "the caller's executable is unknown, and an unknown caller matches no binary";
  std::string listed;
  for (std::size_t i = 0; i < rule.binaries.size() && i < kMaxListed; ++i) {
    listed += (i == 0 ? "" : ", ") + rule.binaries[i].path;
  }
  if (rule.binaries.size() > kMaxListed) {
    listed += " and " + std::to_string(rule.binaries.size() - kMaxListed) + " more";
  }
  std::string out = "binary " + in_quotes(caller.exe) + " is not listed (it lists " + listed + ")";
  for (const BinaryPattern& binary : rule.binaries) {
    if (!binary.children) {
      const auto ancestor =
          std::find_if(caller.ancestors.begin(), caller.ancestors.end(), [&binary](const std::string& exe) {
            return binary_matches(binary, Caller{exe, {}});
          });
      if (ancestor != caller.ancestors.end()) {
        return out + "; its ancestor " + *ancestor + " matches " + in_quotes(binary.path) + " at " +
               position(binary.where) + ", but that entry has no 'children: true'";
      }
    }
    if (!binary.is_glob && basename(binary.path) == basename(caller.exe)) {
      return out + "; " + in_quotes(binary.path) + " at " + position(binary.where) +
             " has the same name in another place: egressd matches the full path /proc/PID/exe names "
             "(symlinks resolved)";
    }
  }
  return out;
}

// What a reader may have meant by an endpoint that does not match `host`, or "" when nothing stands out.
std::string host_hint(const Endpoint& endpoint, std::string_view host) {
  const bool host_is_ip = IpAddress::parse(host).has_value();
  const std::string at = " at " + position(endpoint.where);
  if (endpoint.hostless()) {
    if (!host_is_ip) return {};
    return "the allowed_ips endpoint" + at + " takes addresses in [" + join_cidrs(endpoint.allowed_ips) +
           "], and " + std::string(host) + " is not one of them";
  }
  const std::string& text = endpoint.host.text;
  if (endpoint.host.is_wildcard) {
    if (host_is_ip)
      return in_quotes(text) + at + " is a wildcard, and a wildcard never matches an IP literal";
    const std::vector<std::string>& labels = endpoint.host.labels;
    if (labels.empty() || (labels.front() != "*" && labels.front() != "**")) return {};
    const std::string suffix = text.substr(labels.front().size() + 1);
    if (host == suffix) {
      return in_quotes(text) + at + " does not match the bare domain " + suffix +
             "; list it as a host of its own";
    }
    if (labels.front() == "*" && host.ends_with("." + suffix)) {
      return in_quotes(text) + at + " matches exactly one label before ." + suffix + "; " +
             in_quotes("**." + suffix) + " matches any number";
    }
    return {};
  }
  if (host.ends_with("." + text)) {
    return in_quotes(text) + at + " names exactly that host, not its subdomains; " + in_quotes("**." + text) +
           " would match them";
  }
  return {};
}

std::string why_host_not_listed(const Rule& rule, std::string_view host) {
  std::string hints;
  for (const Endpoint& endpoint : rule.endpoints) {
    const std::string hint = host_hint(endpoint, host);
    if (!hint.empty()) hints += "; " + hint;
  }
  std::string listed;
  for (std::size_t i = 0; i < rule.endpoints.size() && i < kMaxListed; ++i) {
    listed += (i == 0 ? "" : ", ") + describe_endpoint(rule.endpoints[i]);
  }
  if (rule.endpoints.size() > kMaxListed) {
    listed += " and " + std::to_string(rule.endpoints.size() - kMaxListed) + " more";
  }
  return "no endpoint matches host " + std::string(host) + " (it lists " + listed + ")" + hints;
}

std::vector<NearRule> nearest_rules(const Policy& policy, const ExplainQuery& query) {
  std::vector<NearRule> near;
  for (const Rule& rule : policy.rules) {
    NearRule entry;
    entry.rule = &rule;
    entry.lists_binary =
        std::any_of(rule.binaries.begin(), rule.binaries.end(),
                    [&query](const BinaryPattern& b) { return binary_matches(b, query.caller); });
    std::vector<const Endpoint*> for_host;
    for (const Endpoint& endpoint : rule.endpoints) {
      if (endpoint_host_matches(endpoint, query.host)) for_host.push_back(&endpoint);
    }
    entry.lists_host = !for_host.empty();
    if (!entry.lists_binary && !entry.lists_host) continue;
    if (!entry.lists_binary) entry.why_not.push_back(why_binary_not_listed(rule, query.caller));
    if (!entry.lists_host) {
      entry.why_not.push_back(why_host_not_listed(rule, query.host));
    } else if (std::none_of(for_host.begin(), for_host.end(),
                            [&query](const Endpoint* e) { return lists_port(*e, query.port); })) {
      std::string ports;
      for (const Endpoint* endpoint : for_host) {
        ports += (ports.empty() ? "" : "; ") + describe_endpoint(*endpoint);
      }
      entry.why_not.push_back("port " + std::to_string(query.port) + " differs: for host " + query.host +
                              " it lists " + ports);
    }
    near.push_back(std::move(entry));
  }
  // Best first: the rule that lists the binary and the host (only the port differs), then those for the
  // host (the binary is missing), then those for the binary; file order within each.
  std::stable_sort(near.begin(), near.end(), [](const NearRule& a, const NearRule& b) {
    const auto rank = [](const NearRule& r) {
      return r.lists_binary && r.lists_host ? 0 : r.lists_host ? 1 : 2;
    };
    return rank(a) < rank(b);
  });
  if (near.size() > kMaxNearRules) near.resize(kMaxNearRules);
  return near;
}

// decide_http() on `endpoint` reduced to `rules`, `deny_rules` and `access`: whether they alone allow.
bool http_allows(const Rule& rule, const Endpoint& endpoint, const ExplainQuery& query, Access access,
                 std::vector<HttpRule> rules, std::vector<HttpRule> deny_rules) {
  Endpoint probe = endpoint;
  probe.access = access;
  probe.rules = std::move(rules);
  probe.deny_rules = std::move(deny_rules);
  probe.enforcement = Enforcement::Enforce;
  const HttpDecision decision =
      decide_http(rule, probe, query.host, query.port, {*query.method, query.path, query.query});
  return decision.verdict == Verdict::Allow && !decision.audited;
}

std::string describe_http_rule(const HttpRule& rule) {
  std::string out = rule.method + " " + (rule.path.empty() ? std::string("(any path)") : rule.path);
  for (std::size_t i = 0; i < rule.query.size(); ++i) {
    out += (i == 0 ? "?" : "&") + rule.query[i].first + "=";
    for (std::size_t g = 0; g < rule.query[i].second.size(); ++g) {
      out += (g == 0 ? "" : "|") + rule.query[i].second[g];
    }
  }
  return out;
}

// Each HTTP rule of the endpoint and why it did not allow the request, probing decide_http() with that
// rule alone so that the notes follow the matcher, never a copy of it.
std::vector<std::string> http_notes(const Rule& rule, const Endpoint& endpoint, const ExplainQuery& query) {
  std::vector<std::string> notes;
  for (std::size_t i = 0; i < endpoint.deny_rules.size(); ++i) {
    const HttpRule& deny = endpoint.deny_rules[i];
    if (http_allows(rule, endpoint, query, Access::Full, {}, {deny})) continue;
    notes.push_back("deny_rules[" + std::to_string(i) + "] " + describe_http_rule(deny) + " (" +
                    position(deny.where) + ") matches, and deny rules win over any allow");
  }
  if (endpoint.access != Access::None) {
    const bool allows = http_allows(rule, endpoint, query, endpoint.access, {}, {});
    notes.push_back(std::string("the endpoint's access preset (") + position(endpoint.where) + ") " +
                    (allows ? "allows the method" : "does not allow the method " + *query.method));
  }
  for (const HttpRule& allow : endpoint.rules) {
    if (notes.size() >= kMaxHttpNotes) break;
    const std::string head = "allow " + describe_http_rule(allow) + " (" + position(allow.where) + "): ";
    if (http_allows(rule, endpoint, query, Access::None, {allow}, {})) {
      notes.push_back(head + "matches");
      continue;
    }
    HttpRule method_only = allow;
    method_only.path.clear();
    method_only.query.clear();
    if (!http_allows(rule, endpoint, query, Access::None, {method_only}, {})) {
      notes.push_back(head + "the method differs");
      continue;
    }
    HttpRule path_only = allow;
    path_only.method = "*";
    path_only.query.clear();
    if (!http_allows(rule, endpoint, query, Access::None, {path_only}, {})) {
      notes.push_back(head + "the path differs");
      continue;
    }
    notes.push_back(head + "the method and path match, the query does not");
  }
  return notes;
}

// Where the HTTP rule that decided stands: the first rule that alone allows, the deny rule named in
// `decided_by` ("deny_rules[2] ..."), or the endpoint for its access preset.
std::optional<SourceLocation> http_rule_where(const Rule& rule, const Endpoint& endpoint,
                                              const ExplainQuery& query, const std::string& decided_by) {
  if (decided_by.starts_with("deny_rules[")) {
    const std::string_view digits =
        std::string_view(decided_by).substr(std::string_view("deny_rules[").size());
    std::size_t index = 0;
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (error != std::errc() || end == digits.data() || index >= endpoint.deny_rules.size())
      return std::nullopt;
    return endpoint.deny_rules[index].where;
  }
  if (decided_by.starts_with("access: ")) return endpoint.where;
  if (!decided_by.starts_with("allow ")) return std::nullopt;
  for (const HttpRule& allow : endpoint.rules) {
    if (http_allows(rule, endpoint, query, Access::None, {allow}, {})) return allow.where;
  }
  return std::nullopt;
}

// What destination safety will do with the addresses of a name, or does with an IP literal.
void destination_facts(const DestinationScope& scope, const Endpoint* endpoint, const ExplainQuery& query,
                       Explanation& out) {
  const std::optional<IpAddress> address = IpAddress::parse(query.host);
  if (address) {
    const DestinationCheck check =
        check_destination(scope, query.host, std::span<const IpAddress>(&*address, 1));
    if (!check.allowed) {
      out.verdict = Verdict::Deny;
      out.audited = false;
      out.stage = ExplainStage::Destination;
      out.reason = check.reason;
      return;
    }
    out.facts.push_back(query.host + " is " + classify_address(*address).what +
                        "; destination safety lets it be dialled");
    return;
  }
  const std::string at = endpoint != nullptr ? " at " + position(endpoint->where) : "";
  if (!scope.allowed_ips.empty()) {
    std::string ranges;
    for (const Cidr& cidr : scope.allowed_ips) ranges += (ranges.empty() ? "" : ", ") + cidr.text;
    out.facts.push_back("when connecting, every address " + query.host +
                        " resolves to must lie in the allowed_ips [" + ranges + "] of the endpoint" + at +
                        "; one that does not refuses the connection");
  } else if (scope.exact_host) {
    out.facts.push_back("when connecting, " + query.host +
                        " may resolve to public or private addresses (the endpoint" + at +
                        " names it exactly); loopback only through allowed_ips; link-local, metadata and "
                        "non-unicast never");
  } else {
    out.facts.push_back("when connecting, " + query.host + " must resolve to public addresses only (" +
                        (endpoint != nullptr ? "the endpoint" + at + " is a wildcard"
                                             : std::string("audit lets it by without an endpoint")) +
                        "); private and loopback only through allowed_ips");
  }
}

}  // namespace

const char* stage_name(ExplainStage stage) {
  switch (stage) {
    case ExplainStage::Policy:
      return "policy";
    case ExplainStage::Pin:
      return "sha256 pin";
    case ExplainStage::HttpRules:
      return "http rules";
    case ExplainStage::Destination:
      return "destination";
  }
  return "policy";
}

Explanation explain(const Policy& policy, const ExplainQuery& query) {
  Explanation out;
  const Decision decision = decide(policy, {query.caller, query.host, query.port});
  out.rules_considered = decision.rules_considered;
  if (const std::optional<IpAddress> address = IpAddress::parse(query.host)) {
    const AddressClassification found = classify_address(*address);
    if (found.cls == AddressClass::LinkLocal || found.cls == AddressClass::Metadata ||
        found.cls == AddressClass::NotUnicast) {
      out.facts.push_back(query.host + " is " + found.what +
                          ": egressd never connects there, whatever the policy says");
    }
  }
  if (decision.verdict == Verdict::Deny) {
    out.nearest = nearest_rules(policy, query);
    out.reason = decision.reason;
    out.stage = ExplainStage::Policy;
    if (!decision.audited) return out;
    // Audit mode lets it by, with no endpoint behind it: the proxy dials public addresses only.
    out.verdict = Verdict::Allow;
    out.audited = true;
    out.rule = decision.audit_rule;
    out.binary = decision.audit_binary;
  } else {
    out.verdict = Verdict::Allow;
    out.reason = decision.reason;
    out.rule = decision.rule;
    out.endpoint = decision.endpoint;
    out.binary = decision.binary;
  }

  if (out.binary != nullptr && !out.binary->sha256.empty()) {
    const std::string pinned = "binary entry " + in_quotes(out.binary->path) + " at " +
                               position(out.binary->where) + " pins sha256 " + out.binary->sha256;
    if (!query.exe_sha256) {
      out.facts.push_back(pinned +
                          "; the proxy hashes the running executable and denies any other digest "
                          "(not checked here)");
    } else if (*query.exe_sha256 != out.binary->sha256) {
      out.verdict = Verdict::Deny;
      out.audited = false;
      out.stage = ExplainStage::Pin;
      out.reason = "binary '" + query.caller.exe + "' has sha256 " + *query.exe_sha256 + ", but policy '" +
                   out.rule->name + "' pins sha256 " + out.binary->sha256 + " (" + out.binary->where.file +
                   ":" + std::to_string(out.binary->where.line) + ")";
      return out;
    } else {
      out.facts.push_back(pinned + ", and the executable has that digest");
    }
  }

  if (out.endpoint != nullptr && query.method) {
    const HttpDecision http = decide_http(*out.rule, *out.endpoint, query.host, query.port,
                                          {*query.method, query.path, query.query});
    out.http_rule = http.rule;
    if (out.endpoint->protocol == Protocol::Rest) {
      out.http_rule_where = http_rule_where(*out.rule, *out.endpoint, query, http.rule);
    }
    if (http.verdict == Verdict::Deny || http.audited) {
      out.stage = ExplainStage::HttpRules;
      out.reason = http.reason;
      out.http_notes = http_notes(*out.rule, *out.endpoint, query);
      if (http.verdict == Verdict::Deny) {
        out.verdict = Verdict::Deny;
        return out;
      }
      out.audited = true;
    } else {
      out.reason = http.reason;
    }
  } else if (out.endpoint != nullptr && out.endpoint->protocol == Protocol::Rest) {
    out.facts.push_back("each HTTP request on this connection is decided by the endpoint's HTTP rules (" +
                        position(out.endpoint->where) + "); --method and --path explain one");
  }
  if (out.endpoint != nullptr && out.endpoint->protocol == Protocol::Rest &&
      out.endpoint->tls == TlsMode::Skip) {
    out.facts.push_back(
        "the endpoint has 'protocol: rest' with 'tls: skip': a TLS stream through it is "
        "refused, since its requests could not be checked; plain HTTP is");
  }

  const DestinationScope scope =
      out.endpoint != nullptr ? DestinationScope::of(*out.rule, *out.endpoint) : DestinationScope{};
  destination_facts(scope, out.endpoint, query, out);
  return out;
}

}  // namespace egressd::policy

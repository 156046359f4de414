#include "policy/loader.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <sstream>
#include <utility>

#include "policy/destination.h"
#include "policy/matcher.h"
#include "policy/patterns.h"
#include "policy/source_file.h"

namespace egressd::policy {
namespace {

constexpr std::string_view kAnyBinaryHint = "use { path: \"/**\" } to allow any binary";
// What `mode: audit` never lets through: these are attacks or faults, not gaps in the policy.
constexpr std::string_view kAuditStillEnforced =
    "destination safety (SSRF), connection limits, malformed requests, unidentified callers and binary "
    "digests are still enforced";

constexpr std::string_view kTopLevelKeys[] = {"version",           "mode",     "network_policies",
                                              "filesystem_policy", "landlock", "process"};
constexpr std::string_view kUnenforcedSections[] = {"filesystem_policy", "landlock", "process"};
constexpr std::string_view kRuleKeys[] = {"name", "mode", "endpoints", "binaries"};
constexpr std::string_view kEndpointKeys[] = {"host",       "port",        "ports",    "protocol",
                                              "tls",        "enforcement", "access",   "rules",
                                              "deny_rules", "allowed_ips", "redirects"};
constexpr std::string_view kBinaryKeys[] = {"path", "children", "sha256", "harness"};
constexpr std::string_view kAllowItemKeys[] = {"allow"};
constexpr std::string_view kHttpRuleKeys[] = {"method", "path", "query"};
constexpr std::string_view kQueryAnyKeys[] = {"any"};

template <typename T>
struct Choice {
  std::string_view name;
  T value;
};
constexpr Choice<Protocol> kProtocols[] = {
    {"rest", Protocol::Rest}, {"websocket", Protocol::Websocket}, {"graphql", Protocol::Graphql},
    {"mcp", Protocol::Mcp},   {"json-rpc", Protocol::JsonRpc},    {"sql", Protocol::Sql},
    {"tcp", Protocol::Tcp}};
constexpr Choice<TlsMode> kTlsModes[] = {{"skip", TlsMode::Skip}};
constexpr Choice<Enforcement> kEnforcements[] = {{"enforce", Enforcement::Enforce},
                                                 {"audit", Enforcement::Audit}};
constexpr Choice<Access> kAccesses[] = {
    {"read-only", Access::ReadOnly}, {"read-write", Access::ReadWrite}, {"full", Access::Full}};

// One key of a YAML mapping and its value. A null value has no useful mark (yaml-cpp puts it on the next
// token), so errors about it point at the key.
struct Entry {
  std::string key;
  YAML::Mark key_mark;
  YAML::Node value;
};

const Entry* find(const std::vector<Entry>& entries, std::string_view key) {
  for (const Entry& entry : entries) {
    if (entry.key == key) return &entry;
  }
  return nullptr;
}

template <typename Names>
std::string join(const Names& names) {
  std::string out;
  for (const auto& name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

std::string quoted(std::string_view text) {
  return "'" + std::string(text) + "'";
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return "an empty value";
    case YAML::NodeType::Scalar:
      return node.Tag() == "!" ? "the quoted string \"" + node.Scalar() + "\"" : quoted(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a sequence";
    case YAML::NodeType::Map:
      return "a mapping";
  }
  return "an unknown node";
}

YAML::Mark mark_of(const YAML::Node& node, const YAML::Mark& fallback) {
  if (!node.IsDefined() || node.IsNull() || node.Mark().is_null()) return fallback;
  return node.Mark();
}

// A plain (unquoted) decimal integer; quoted "443" is a string, as for OpenShell's serde.
std::optional<long long> plain_integer(const YAML::Node& node) {
  if (!node.IsScalar() || (node.Tag() != "?" && node.Tag() != "tag:yaml.org,2002:int")) return std::nullopt;
  const std::string& text = node.Scalar();
  if (text.empty() || text.size() > 18) return std::nullopt;
  if (!std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return std::stoll(text);
}

// Where each document of a YAML stream starts, found without building it. yaml-cpp 0.7's LoadAll() never
// returns on some malformed streams, allocating all the while (a stray ',' as in ", a": jbeder/yaml-cpp
// #1040, fixed upstream by #1319): its parser reports an empty document at the same token again and again.
// Walking the documents ourselves lets us stop at the first one that does not move the parser.
class DocumentStarts final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    stuck_ = !starts_.empty() && starts_.back().pos == mark.pos;
    starts_.push_back(mark);
    roots_.push_back(YAML::Mark::null_mark());
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { node_at(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { node_at(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t, const std::string&) override {
    node_at(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    node_at(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    node_at(mark);
  }
  void OnMapEnd() override {}

  bool stuck() const { return stuck_; }  // the last document started where the one before it did
  std::size_t count() const { return starts_.size(); }
  const YAML::Mark& start(std::size_t i) const { return starts_[i]; }
  const YAML::Mark& root(std::size_t i) const { return roots_[i]; }  // where Node::Mark() would point

 private:
  void node_at(const YAML::Mark& mark) {
    if (!roots_.empty() && roots_.back().is_null()) roots_.back() = mark;
  }
  std::vector<YAML::Mark> starts_;
  std::vector<YAML::Mark> roots_;
  bool stuck_ = false;
};

// One load: walks the YAML tree in file order, building the Policy and collecting every error.
class Loader {
 public:
  explicit Loader(const std::string& file) { policy_.source_path = file; }

  // yaml-cpp throws on syntax errors; the caller catches.
  void load(const std::string& text);

  LoadErrors& errors() { return errors_; }
  Policy& policy() { return policy_; }
  const std::vector<std::string>& resolved_targets() const { return resolved_targets_; }

 private:
  SourceLocation at(const YAML::Mark& mark) const {
    if (mark.is_null()) return {policy_.source_path, 0, 0};
    return {policy_.source_path, mark.line + 1, mark.column + 1};
  }
  void fail(const YAML::Mark& mark, std::string message) {
    errors_.push_back({at(mark), std::move(message)});
  }
  void warn(const YAML::Mark& mark, std::string message) {
    policy_.warnings.push_back({at(mark), std::move(message)});
  }
  std::string position(const YAML::Mark& mark) const {
    return std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
  }

  std::vector<Entry> entries(const YAML::Node& map, std::string_view context,
                             std::span<const std::string_view> accepted);
  std::optional<std::string> string_of(const Entry& entry);
  std::optional<bool> bool_of(const Entry& entry);
  std::optional<uint16_t> port_of(const YAML::Node& node, const YAML::Mark& fallback);
  bool non_empty_sequence(const Entry& entry, std::string_view what, std::string_view empty_message);
  template <typename T, std::size_t N>
  std::optional<T> choice_of(const Entry& entry, const Choice<T> (&choices)[N]);

  void load_version(const Entry* version, const YAML::Node& root);
  void load_rules(const YAML::Node& network_policies);
  std::optional<Rule> load_rule(const Entry& entry);
  std::optional<Endpoint> load_endpoint(const YAML::Node& node, const YAML::Mark& fallback);
  void load_ports(const std::vector<Entry>& fields, const YAML::Mark& mark, Endpoint& endpoint);
  void load_tls(const Entry& tls, Endpoint& endpoint);
  void load_redirects(const Entry& redirects, Endpoint& endpoint);
  void check_l7_combination(const std::vector<Entry>& fields, const Endpoint& endpoint);
  std::optional<HttpRule> load_allow_item(const YAML::Node& node, const YAML::Mark& fallback);
  std::optional<HttpRule> load_http_rule(const YAML::Node& node, const YAML::Mark& fallback,
                                         std::string_view context);
  void load_query(const Entry& query, HttpRule& rule);
  std::optional<BinaryPattern> load_binary(const YAML::Node& node, const YAML::Mark& fallback);

  Policy policy_;
  LoadErrors errors_;
  std::vector<std::pair<std::string, YAML::Mark>> rule_names_;  // name -> where first used
  std::vector<std::string> resolved_targets_;                   // in file order, for the hash
};

std::vector<Entry> Loader::entries(const YAML::Node& map, std::string_view context,
                                   std::span<const std::string_view> accepted) {
  std::vector<Entry> out;
  for (const auto& pair : map) {  // not it->first: yaml-cpp's operator-> returns a short-lived proxy
    const YAML::Node& key = pair.first;
    if (!key.IsScalar()) {
      fail(mark_of(key, map.Mark()), "expected a key name, found " + describe(key));
      continue;
    }
    const std::string& name = key.Scalar();
    if (!accepted.empty() && std::find(accepted.begin(), accepted.end(), name) == accepted.end()) {
      fail(key.Mark(),
           "unknown key " + quoted(name) + " " + std::string(context) + "; accepted keys: " + join(accepted));
      continue;
    }
    if (const Entry* first = find(out, name)) {
      fail(key.Mark(), "duplicate key " + quoted(name) + " (first at " + position(first->key_mark) + ")");
      continue;
    }
    out.push_back({name, key.Mark(), pair.second});
  }
  return out;
}

std::optional<std::string> Loader::string_of(const Entry& entry) {
  if (entry.value.IsScalar()) return entry.value.Scalar();
  fail(mark_of(entry.value, entry.key_mark),
       "expected a string for " + quoted(entry.key) + ", found " + describe(entry.value));
  return std::nullopt;
}

std::optional<bool> Loader::bool_of(const Entry& entry) {
  if (entry.value.IsScalar() && entry.value.Tag() != "!") {
    const std::string& text = entry.value.Scalar();
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
  }
  fail(mark_of(entry.value, entry.key_mark),
       "expected true or false for " + quoted(entry.key) + ", found " + describe(entry.value));
  return std::nullopt;
}

std::optional<uint16_t> Loader::port_of(const YAML::Node& node, const YAML::Mark& fallback) {
  const std::optional<long long> value = plain_integer(node);
  if (!value) {
    fail(mark_of(node, fallback), "expected a port number (1..65535), found " + describe(node));
    return std::nullopt;
  }
  if (*value < 1 || *value > 65535) {
    fail(mark_of(node, fallback), "port " + std::to_string(*value) + " is out of range (1..65535)");
    return std::nullopt;
  }
  return static_cast<uint16_t>(*value);
}

bool Loader::non_empty_sequence(const Entry& entry, std::string_view what, std::string_view empty_message) {
  const YAML::Mark mark = mark_of(entry.value, entry.key_mark);
  if (entry.value.IsNull() || (entry.value.IsSequence() && entry.value.size() == 0)) {
    fail(mark, std::string(empty_message));
    return false;
  }
  if (!entry.value.IsSequence()) {
    fail(mark,
         "expected " + std::string(what) + " for " + quoted(entry.key) + ", found " + describe(entry.value));
    return false;
  }
  return true;
}

template <typename T, std::size_t N>
std::optional<T> Loader::choice_of(const Entry& entry, const Choice<T> (&choices)[N]) {
  const std::optional<std::string> text = string_of(entry);
  if (!text) return std::nullopt;
  std::vector<std::string_view> names;
  for (const Choice<T>& choice : choices) {
    if (choice.name == *text) return choice.value;
    names.push_back(choice.name);
  }
  fail(entry.value.Mark(), "unknown " + entry.key + " " + quoted(*text) + "; accepted: " + join(names));
  return std::nullopt;
}

void Loader::load(const std::string& text) {
  // Count the documents first, instead of YAML::LoadAll(), which may never return (see DocumentStarts).
  std::istringstream stream(text);
  YAML::Parser parser(stream);
  DocumentStarts documents;
  while (parser.HandleNextDocument(documents)) {
    if (documents.stuck()) {
      fail(documents.start(documents.count() - 1), "invalid YAML: unexpected token where a document starts");
      return;
    }
  }
  if (documents.count() > 1) {
    fail(documents.root(1), "expected one YAML document, found " + std::to_string(documents.count()));
    return;
  }
  const YAML::Node root = documents.count() == 0 ? YAML::Node() : YAML::Load(text);
  if (!root.IsDefined() || root.IsNull()) {
    fail(YAML::Mark::null_mark(), "empty policy file; expected a mapping with 'version: 1'");
    return;
  }
  if (!root.IsMap()) {
    fail(root.Mark(), "expected a mapping with 'version: 1', found " + describe(root));
    return;
  }
  const std::vector<Entry> top = entries(root, "at the top level", kTopLevelKeys);
  load_version(find(top, "version"), root);
  for (std::string_view section : kUnenforcedSections) {
    if (const Entry* entry = find(top, section)) {
      warn(entry->key_mark,
           quoted(section) + " is not enforced by egressd (accepted for OpenShell compatibility)");
    }
  }
  if (const Entry* mode = find(top, "mode")) {
    policy_.mode = choice_of(*mode, kEnforcements).value_or(Enforcement::Enforce);
    if (policy_.mode == Enforcement::Audit) {
      warn(mode->key_mark,
           "mode: audit: every connection and request this policy would deny is allowed and "
           "logged with would_deny: true; " +
               std::string(kAuditStillEnforced));
    }
  }
  const Entry* network = find(top, "network_policies");
  if (network == nullptr || network->value.IsNull() ||
      (network->value.IsMap() && network->value.size() == 0)) {
    warn(network != nullptr ? network->key_mark : YAML::Mark::null_mark(),
         "no network_policies: every connection will be denied");
  } else if (!network->value.IsMap()) {
    fail(network->value.Mark(), "expected a mapping of rule names to rules for 'network_policies', found " +
                                    describe(network->value));
  } else {
    load_rules(network->value);
  }
}

void Loader::load_version(const Entry* version, const YAML::Node& root) {
  if (version == nullptr) return fail(root.Mark(), "missing 'version: 1'");
  const std::optional<long long> value = plain_integer(version->value);
  const YAML::Mark mark = mark_of(version->value, version->key_mark);
  if (!value) return fail(mark, "expected the integer 1 for 'version', found " + describe(version->value));
  if (*value != 1)
    return fail(mark, "unsupported version " + std::to_string(*value) + "; egressd reads version 1");
}

void Loader::load_rules(const YAML::Node& network_policies) {
  for (const Entry& entry : entries(network_policies, "under 'network_policies'", {})) {
    if (std::optional<Rule> rule = load_rule(entry)) policy_.rules.push_back(std::move(*rule));
  }
}

std::optional<Rule> Loader::load_rule(const Entry& entry) {
  const std::size_t errors_before = errors_.size();
  Rule rule;
  rule.key = entry.key;
  rule.name = entry.key;
  rule.where = at(entry.key_mark);
  if (!entry.value.IsMap()) {
    fail(mark_of(entry.value, entry.key_mark),
         "expected a mapping with 'endpoints' and 'binaries' for rule " + quoted(entry.key) + ", found " +
             describe(entry.value));
    return std::nullopt;
  }
  const std::vector<Entry> fields = entries(entry.value, "in a rule", kRuleKeys);
  YAML::Mark name_mark = entry.key_mark;
  if (const Entry* name = find(fields, "name")) {
    if (std::optional<std::string> text = string_of(*name)) {
      if (text->empty()) {
        fail(mark_of(name->value, name->key_mark), "a rule name must not be empty");
      } else {
        rule.name = *text;
        name_mark = name->value.Mark();
      }
    }
  } else if (entry.key.empty()) {
    fail(entry.key_mark, "a rule key must not be empty");
  }
  rule.mode = policy_.mode;
  if (const Entry* mode = find(fields, "mode")) {
    rule.mode = choice_of(*mode, kEnforcements).value_or(Enforcement::Enforce);
    if (rule.mode == Enforcement::Audit) {
      warn(mode->key_mark, "mode: audit: rule " + quoted(rule.name) +
                               " lets its binaries through wherever the policy would deny them, logging each "
                               "with would_deny: true; " +
                               std::string(kAuditStillEnforced));
    }
  }
  const auto same_name = [&rule](const auto& used) { return used.first == rule.name; };
  if (auto first = std::find_if(rule_names_.begin(), rule_names_.end(), same_name);
      first != rule_names_.end()) {
    fail(name_mark,
         "duplicate rule name " + quoted(rule.name) + " (first used at " + position(first->second) + ")");
  } else {
    rule_names_.emplace_back(rule.name, name_mark);
  }

  if (const Entry* endpoints = find(fields, "endpoints"); endpoints == nullptr) {
    fail(entry.key_mark, "rule " + quoted(rule.name) + " has no 'endpoints'");
  } else if (non_empty_sequence(*endpoints, "a sequence of endpoints",
                                "a rule must list at least one endpoint")) {
    for (const auto& item : endpoints->value) {
      if (std::optional<Endpoint> endpoint = load_endpoint(item, endpoints->key_mark)) {
        rule.endpoints.push_back(std::move(*endpoint));
      }
    }
  }
  if (const Entry* binaries = find(fields, "binaries"); binaries == nullptr) {
    fail(entry.key_mark, "rule " + quoted(rule.name) + " has no 'binaries'; " + std::string(kAnyBinaryHint));
  } else if (non_empty_sequence(*binaries, "a sequence of binaries",
                                "a rule must list at least one binary; " + std::string(kAnyBinaryHint))) {
    for (const auto& item : binaries->value) {
      if (std::optional<BinaryPattern> binary = load_binary(item, binaries->key_mark)) {
        rule.binaries.push_back(std::move(*binary));
      }
    }
  }
  if (errors_.size() != errors_before) return std::nullopt;
  return rule;
}

std::optional<Endpoint> Loader::load_endpoint(const YAML::Node& node, const YAML::Mark& fallback) {
  const std::size_t errors_before = errors_.size();
  const YAML::Mark mark = mark_of(node, fallback);
  if (!node.IsMap()) {
    fail(mark, "expected an endpoint like { host: api.github.com, port: 443 }, found " + describe(node));
    return std::nullopt;
  }
  Endpoint endpoint;
  endpoint.where = at(mark);
  const std::vector<Entry> fields = entries(node, "in an endpoint", kEndpointKeys);
  if (const Entry* host = find(fields, "host"); host == nullptr) {
    // Without a host the endpoint allows IP literals by range; it stays hostless (empty text).
    if (find(fields, "allowed_ips") == nullptr) {
      fail(mark,
           "an endpoint needs 'host' (or, to allow IP addresses by range, 'allowed_ips' without a host)");
    }
  } else if (std::optional<std::string> text = string_of(*host)) {
    Result<HostPattern, std::string> pattern = parse_host_pattern(*text);
    if (pattern) {
      endpoint.host = std::move(*pattern);
    } else {
      fail(mark_of(host->value, host->key_mark), std::move(pattern.error()));
    }
  }
  load_ports(fields, mark, endpoint);
  if (const Entry* protocol = find(fields, "protocol")) {
    endpoint.protocol = choice_of(*protocol, kProtocols).value_or(Protocol::None);
  }
  if (const Entry* tls = find(fields, "tls")) load_tls(*tls, endpoint);
  if (const Entry* enforcement = find(fields, "enforcement")) {
    endpoint.enforcement = choice_of(*enforcement, kEnforcements).value_or(Enforcement::Enforce);
  }
  if (const Entry* access = find(fields, "access"))
    endpoint.access = choice_of(*access, kAccesses).value_or(Access::None);
  if (const Entry* rules = find(fields, "rules")) {
    if (non_empty_sequence(*rules, "a sequence of '- allow: {...}' rules",
                           "'rules' must list at least one '- allow: {...}' rule")) {
      for (const auto& item : rules->value) {
        if (std::optional<HttpRule> rule = load_allow_item(item, rules->key_mark)) {
          endpoint.rules.push_back(std::move(*rule));
        }
      }
    }
  }
  if (const Entry* deny_rules = find(fields, "deny_rules")) {
    if (non_empty_sequence(*deny_rules, "a sequence of deny rules",
                           "'deny_rules' must list at least one rule")) {
      for (const auto& item : deny_rules->value) {
        if (std::optional<HttpRule> rule = load_http_rule(item, deny_rules->key_mark, "in a deny rule")) {
          endpoint.deny_rules.push_back(std::move(*rule));
        }
      }
    }
  }
  if (const Entry* allowed_ips = find(fields, "allowed_ips")) {
    if (non_empty_sequence(*allowed_ips, "a sequence of addresses or CIDRs",
                           "'allowed_ips' must list at least one address or CIDR")) {
      for (const auto& item : allowed_ips->value) {
        const YAML::Mark item_mark = mark_of(item, allowed_ips->key_mark);
        if (!item.IsScalar()) {
          fail(item_mark, "expected an IP address or CIDR, found " + describe(item));
        } else if (Result<Cidr, std::string> cidr = parse_cidr(item.Scalar()); !cidr) {
          fail(item_mark, std::move(cidr.error()));
        } else if (std::optional<std::string> never = never_allowed_overlap(*cidr)) {
          fail(item_mark, std::move(*never));  // check_destination() would refuse those addresses anyway
        } else {
          endpoint.allowed_ips.push_back(*cidr);
        }
      }
    }
  }
  if (const Entry* redirects = find(fields, "redirects")) load_redirects(*redirects, endpoint);
  check_l7_combination(fields, endpoint);
  if (errors_.size() != errors_before) return std::nullopt;
  return endpoint;
}

void Loader::load_ports(const std::vector<Entry>& fields, const YAML::Mark& mark, Endpoint& endpoint) {
  const Entry* port = find(fields, "port");
  const Entry* ports = find(fields, "ports");
  if (port != nullptr && ports != nullptr) {
    fail(ports->key_mark, "use either 'port' or 'ports', not both");
  } else if (port != nullptr) {
    if (std::optional<uint16_t> value = port_of(port->value, port->key_mark))
      endpoint.ports.push_back(*value);
  } else if (ports != nullptr) {
    if (non_empty_sequence(*ports, "a sequence of ports", "'ports' must list at least one port")) {
      for (const auto& item : ports->value) {
        if (std::optional<uint16_t> value = port_of(item, ports->key_mark)) endpoint.ports.push_back(*value);
      }
    }
  } else {
    fail(mark, "an endpoint needs 'port' or 'ports'");
  }
}

void Loader::load_tls(const Entry& tls, Endpoint& endpoint) {
  if (tls.value.IsScalar() && (tls.value.Scalar() == "terminate" || tls.value.Scalar() == "passthrough")) {
    warn(tls.value.Mark(), "'tls: " + tls.value.Scalar() +
                               "' is deprecated; TLS termination is now automatic. Use 'tls: skip' to "
                               "explicitly disable.");
    endpoint.tls = TlsMode::Auto;
    return;
  }
  endpoint.tls = choice_of(tls, kTlsModes).value_or(TlsMode::Auto);
}

// Each item is a host pattern with the same syntax and rejections as an endpoint's `host`.
void Loader::load_redirects(const Entry& redirects, Endpoint& endpoint) {
  if (!non_empty_sequence(redirects, "a sequence of host patterns",
                          "'redirects' must list at least one host pattern")) {
    return;
  }
  for (const auto& item : redirects.value) {
    const YAML::Mark item_mark = mark_of(item, redirects.key_mark);
    if (!item.IsScalar()) {
      fail(item_mark, "expected a host pattern such as objects.githubusercontent.com in 'redirects', found " +
                          describe(item));
    } else if (Result<HostPattern, std::string> pattern = parse_host_pattern(item.Scalar()); pattern) {
      endpoint.redirect_hosts.push_back(std::move(*pattern));
    } else {
      fail(item_mark, "in 'redirects': " + std::move(pattern.error()));
    }
  }
}

// OpenShell's rules: L7 settings need an L7 protocol, and an L7 protocol alone allows nothing.
void Loader::check_l7_combination(const std::vector<Entry>& fields, const Endpoint& endpoint) {
  const Entry* protocol = find(fields, "protocol");
  const Entry* access = find(fields, "access");
  const Entry* rules = find(fields, "rules");
  if (access != nullptr && rules != nullptr)
    fail(rules->key_mark, "use either 'access' or 'rules', not both");
  if (protocol == nullptr || endpoint.protocol == Protocol::Tcp) {
    for (const Entry* l7 : {access, rules, find(fields, "deny_rules")}) {
      if (l7 != nullptr)
        fail(l7->key_mark, quoted(l7->key) + " needs 'protocol: rest' (or another L7 protocol)");
    }
    return;
  }
  if (endpoint.protocol == Protocol::None) return;  // an unknown protocol, already reported
  const std::string name = protocol->value.Scalar();
  if (access == nullptr && rules == nullptr) {
    fail(protocol->key_mark,
         "'protocol: " + name + "' needs 'access' or 'rules'; a protocol alone allows nothing");
  }
  if (access != nullptr && (endpoint.protocol == Protocol::Mcp || endpoint.protocol == Protocol::JsonRpc)) {
    fail(access->key_mark, "'access' is not available for 'protocol: " + name + "'; list 'rules' instead");
  }
  if (endpoint.protocol != Protocol::Rest) {  // decide_http() checks only REST requests
    warn(protocol->key_mark,
         "'protocol: " + name +
             "' is not enforced by egressd: requests on this endpoint are not checked "
             "against its 'access', 'rules' or 'deny_rules' (host, port and binary still are)");
  }
}

std::optional<HttpRule> Loader::load_allow_item(const YAML::Node& node, const YAML::Mark& fallback) {
  const YAML::Mark mark = mark_of(node, fallback);
  if (!node.IsMap()) {
    fail(mark, "expected '- allow: { method: ..., path: ... }', found " + describe(node));
    return std::nullopt;
  }
  if (!node["allow"]) {  // most likely a deny_rules-style item: one error, not one per key
    fail(mark, "an item of 'rules' needs 'allow:', as in '- allow: { method: GET, path: \"/**\" }'");
    return std::nullopt;
  }
  const std::vector<Entry> fields = entries(node, "in an item of 'rules'", kAllowItemKeys);
  const Entry* allow = find(fields, "allow");
  return load_http_rule(allow->value, allow->key_mark, "in an allow rule");
}

std::optional<HttpRule> Loader::load_http_rule(const YAML::Node& node, const YAML::Mark& fallback,
                                               std::string_view context) {
  const std::size_t errors_before = errors_.size();
  const YAML::Mark mark = mark_of(node, fallback);
  if (!node.IsMap()) {
    fail(mark, "expected a mapping with 'method', 'path' and 'query', found " + describe(node));
    return std::nullopt;
  }
  HttpRule rule;
  rule.where = at(mark);
  rule.method = "*";
  const std::vector<Entry> fields = entries(node, context, kHttpRuleKeys);
  if (const Entry* method = find(fields, "method")) {
    if (std::optional<std::string> text = string_of(*method)) {
      Result<std::string, std::string> upper = parse_http_method(*text);
      if (upper)
        rule.method = std::move(*upper);
      else
        fail(mark_of(method->value, method->key_mark), std::move(upper.error()));
    }
  }
  if (const Entry* path = find(fields, "path")) {
    if (std::optional<std::string> text = string_of(*path)) {
      Result<std::string, std::string> glob = parse_http_path(*text);
      if (glob)
        rule.path = std::move(*glob);
      else
        fail(mark_of(path->value, path->key_mark), std::move(glob.error()));
    }
  }
  if (const Entry* query = find(fields, "query")) load_query(*query, rule);
  if (errors_.size() != errors_before) return std::nullopt;
  return rule;
}

void Loader::load_query(const Entry& query, HttpRule& rule) {
  if (!query.value.IsMap()) {
    fail(mark_of(query.value, query.key_mark),
         "expected a mapping of parameter names to globs for 'query', found " + describe(query.value));
    return;
  }
  for (const Entry& parameter : entries(query.value, "in 'query'", {})) {
    const YAML::Mark mark = mark_of(parameter.value, parameter.key_mark);
    std::vector<std::string> globs;
    if (parameter.value.IsScalar()) {
      globs.push_back(parameter.value.Scalar());
    } else if (parameter.value.IsMap()) {
      const std::vector<Entry> fields = entries(parameter.value, "in a query matcher", kQueryAnyKeys);
      const Entry* any = find(fields, "any");
      if (any == nullptr) {
        if (fields.size() == parameter.value.size())
          fail(mark, "a query matcher mapping needs 'any: [globs]'");
        continue;
      }
      if (!non_empty_sequence(*any, "a sequence of globs", "'any' must list at least one glob")) continue;
      for (const auto& item : any->value) {
        if (item.IsScalar()) {
          globs.push_back(item.Scalar());
        } else {
          fail(mark_of(item, any->key_mark), "expected a glob string, found " + describe(item));
        }
      }
    } else {
      fail(mark, "expected a glob string or { any: [globs] } for query parameter " + quoted(parameter.key) +
                     ", found " + describe(parameter.value));
      continue;
    }
    rule.query.emplace_back(parameter.key, std::move(globs));
  }
}

std::optional<BinaryPattern> Loader::load_binary(const YAML::Node& node, const YAML::Mark& fallback) {
  const std::size_t errors_before = errors_.size();
  const YAML::Mark mark = mark_of(node, fallback);
  if (!node.IsMap()) {
    fail(mark, "expected a binary entry like { path: /usr/bin/curl }, found " + describe(node));
    return std::nullopt;
  }
  BinaryPattern binary;
  binary.where = at(mark);
  const std::vector<Entry> fields = entries(node, "in a binary entry", kBinaryKeys);
  if (const Entry* path = find(fields, "path"); path == nullptr) {
    fail(mark, "a binary entry needs 'path'");
  } else if (std::optional<std::string> text = string_of(*path)) {
    if (text->empty() || text->front() != '/') {
      fail(mark_of(path->value, path->key_mark), "binary path " + quoted(*text) + " must be absolute");
    } else if (text->find('\0') != std::string::npos) {
      fail(path->value.Mark(), "binary path must not contain a NUL byte");
    }
    binary.path = *text;
  }
  if (const Entry* children = find(fields, "children")) binary.children = bool_of(*children).value_or(false);
  if (const Entry* sha256 = find(fields, "sha256")) {
    if (std::optional<std::string> text = string_of(*sha256)) {
      std::string hex = *text;
      if (hex.starts_with("sha256:")) hex.erase(0, 7);
      std::transform(hex.begin(), hex.end(), hex.begin(),
                     [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
      if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
        fail(mark_of(sha256->value, sha256->key_mark),
             "sha256 " + quoted(*text) + " must be 64 hexadecimal digits (as sha256sum prints them)");
      } else if (binary.children) {
        fail(sha256->key_mark,
             "sha256 pins the executable that connects; it cannot be combined with 'children: true'");
      }
      binary.sha256 = std::move(hex);
    }
  }
  if (const Entry* harness = find(fields, "harness")) {
    warn(harness->key_mark, "'harness' is deprecated and ignored");
  }
  if (errors_.size() != errors_before) return std::nullopt;
  binary.is_glob = binary.path.find('*') != std::string::npos;
  if (!binary.is_glob) {
    // The kernel reports the resolved executable (/proc/PID/exe), so a symlinked path in the policy
    // must also match its target (OpenShell #765). A missing path is fine: it may be installed later.
    if (std::optional<std::string> target = resolve_binary_path(binary.path);
        target && *target != binary.path) {
      binary.resolved.push_back(*target);
      resolved_targets_.push_back(*target);
    }
  }
  return binary;
}

bool by_position(const SourceLocation& a, const SourceLocation& b) {
  return std::pair(a.line, a.col) < std::pair(b.line, b.col);
}

}  // namespace

std::string LoadError::to_string() const {
  if (where.line == 0) return where.file + ": " + message;
  return where.file + ":" + std::to_string(where.line) + ":" + std::to_string(where.col) + ": " + message;
}

std::string format_errors(const LoadErrors& errors) {
  std::string out;
  for (const LoadError& error : errors) out += error.to_string() + "\n";
  return out;
}

Result<std::shared_ptr<const Policy>, LoadErrors> load_policy_text(std::string_view text,
                                                                   const std::string& name) {
  // yaml-cpp reports errors by throwing; nothing may leave policy/ as an exception.
  try {
    Loader loader(name);
    loader.load(std::string(text));
    LoadErrors& errors = loader.errors();
    if (!errors.empty()) {
      std::stable_sort(errors.begin(), errors.end(),
                       [](const LoadError& a, const LoadError& b) { return by_position(a.where, b.where); });
      return egressd::unexpected(std::move(errors));
    }
    Policy& policy = loader.policy();
    std::stable_sort(
        policy.warnings.begin(), policy.warnings.end(),
        [](const LoadWarning& a, const LoadWarning& b) { return by_position(a.where, b.where); });
    policy.source_hash = source_hash(text, loader.resolved_targets());
    index_rules(policy);
    return std::shared_ptr<const Policy>(std::make_shared<Policy>(std::move(policy)));
  } catch (const YAML::Exception& e) {
    const bool positioned = !e.mark.is_null();
    return egressd::unexpected(
        LoadErrors{{{name, positioned ? e.mark.line + 1 : 0, positioned ? e.mark.column + 1 : 0},
                    "invalid YAML: " + e.msg}});
  } catch (const std::exception& e) {
    return egressd::unexpected(LoadErrors{{{name, 0, 0}, std::string("cannot load: ") + e.what()}});
  }
}

Result<std::shared_ptr<const Policy>, LoadErrors> load_policy_file(const std::string& path) {
  try {
    Result<std::string, LoadError> text = read_source_file(path);
    if (!text) return egressd::unexpected(LoadErrors{std::move(text.error())});
    return load_policy_text(*text, path);
  } catch (const std::exception& e) {  // std::bad_alloc while reading
    return egressd::unexpected(LoadErrors{{{path, 0, 0}, std::string("cannot load: ") + e.what()}});
  }
}

}  // namespace egressd::policy

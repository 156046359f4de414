#include "policy/loader.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "policy/matcher.h"
#include "tests/unit/policy/policy_fixtures.h"

namespace egressd::policy {
namespace {

using fixtures::data_path;
using fixtures::errors_from_yaml;
using fixtures::policy_from_yaml;

struct BrokenFile {
  const char* name;  // tests/data/broken/<name>.yaml
  int line;
  int col;
  const char* fragment;
};

// One flaw per file, one error per file.
const BrokenFile kBrokenFiles[] = {
    {"access_and_rules", 9, 9, "use either 'access' or 'rules', not both"},
    {"access_unknown", 8, 17, "unknown access 'read-all'"},
    {"access_with_mcp_protocol", 8, 9, "'access' is not available for 'protocol: mcp'"},
    {"access_without_protocol", 7, 9, "'access' needs 'protocol: rest' (or another L7 protocol)"},
    {"allowed_ips_metadata", 7, 35,
     "allowed_ips entry '169.254.169.254' covers the cloud metadata service (169.254.169.254), which egressd "
     "never connects to"},
    {"allowed_ips_not_an_address", 7, 35,
     "allowed_ips entry 'example.com' is not an IP address or a CIDR (like 10.0.0.0/8 or fd00::/8)"},
    {"allowed_ips_prefix_too_long", 7, 23, "allowed_ips entry '10.0.0.0/33' has an invalid prefix length"},
    {"binaries_empty", 6, 15, "a rule must list at least one binary"},
    {"binaries_missing", 3, 3, "rule 'github' has no 'binaries'"},
    {"binary_bare_string", 7, 9,
     "expected a binary entry like { path: /usr/bin/curl }, found '/usr/bin/git'"},
    {"binary_children_not_bool", 7, 41, "expected true or false for 'children', found 'maybe'"},
    {"binary_missing_path", 7, 9, "a binary entry needs 'path'"},
    {"binary_relative_path", 7, 17, "binary path 'git' must be absolute"},
    {"deny_rules_empty", 9, 21, "'deny_rules' must list at least one rule"},
    {"deny_rules_without_protocol", 7, 9, "'deny_rules' needs 'protocol: rest' (or another L7 protocol)"},
    {"duplicate_key", 5, 44, "duplicate key 'host' (first at 5:11)"},
    {"duplicate_rule_key", 6, 3, "duplicate key 'github' (first at 3:3)"},
    {"duplicate_rule_name", 7, 11, "duplicate rule name 'github' (first used at 3:3)"},
    {"empty_file", 0, 0, "empty policy file"},
    {"endpoint_not_mapping", 5, 9,
     "expected an endpoint like { host: api.github.com, port: 443 }, found 'api.github.com'"},
    {"endpoints_empty", 4, 16, "a rule must list at least one endpoint"},
    {"endpoints_missing", 3, 3, "rule 'github' has no 'endpoints'"},
    {"enforcement_unknown", 8, 22, "unknown enforcement 'block'"},
    {"host_empty", 5, 17, "host is empty"},
    {"host_invalid_ipv4", 5, 17, "host '999.1.1.1' is not a valid IPv4 address"},
    {"host_invalid_ipv6", 5, 17, "host '[fe80::zz]' is not a valid IPv6 address"},
    {"host_missing", 5, 9,
     "an endpoint needs 'host' (or, to allow IP addresses by range, 'allowed_ips' without a host)"},
    {"host_not_a_string", 5, 17, "expected a string for 'host', found a sequence"},
    {"host_trailing_dot", 5, 17, "host 'api.github.com.' ends with a dot"},
    {"host_with_port", 5, 17, "host 'api.github.com:443' includes a port"},
    {"host_with_scheme", 5, 17, "host 'https://api.github.com' is a URL"},
    {"host_with_space", 5, 17, "host 'api github.com' contains a space"},
    {"mode_not_a_string", 2, 7, "expected a string for 'mode', found a sequence"},
    {"mode_unknown", 2, 7, "unknown mode 'report'; accepted: enforce, audit"},
    {"multiple_documents", 9, 1, "expected one YAML document, found 2"},
    {"network_policies_sequence", 3, 3,
     "expected a mapping of rule names to rules for 'network_policies', found a sequence"},
    {"port_and_ports", 5, 44, "use either 'port' or 'ports', not both"},
    {"port_missing", 5, 9, "an endpoint needs 'port' or 'ports'"},
    {"port_not_integer", 5, 39, "expected a port number (1..65535), found 'https'"},
    {"port_out_of_range", 5, 39, "port 70000 is out of range (1..65535)"},
    {"port_quoted", 5, 39, "expected a port number (1..65535), found the quoted string \"443\""},
    {"port_zero", 5, 39, "port 0 is out of range (1..65535)"},
    {"ports_empty", 5, 40, "'ports' must list at least one port"},
    {"ports_entry_out_of_range", 5, 46, "port 65536 is out of range (1..65535)"},
    {"ports_not_sequence", 5, 40, "expected a sequence of ports for 'ports', found '443'"},
    {"protocol_unknown", 7, 19, "unknown protocol 'http'"},
    {"protocol_without_access_or_rules", 7, 9, "'protocol: rest' needs 'access' or 'rules'"},
    {"query_any_empty", 12, 34, "'any' must list at least one glob"},
    {"query_value_sequence", 12, 27,
     "expected a glob string or { any: [globs] } for query parameter 'q', found a sequence"},
    {"redirects_empty", 7, 20, "'redirects' must list at least one host pattern"},
    {"redirects_entry_not_string", 8, 13,
     "expected a host pattern such as objects.githubusercontent.com in 'redirects', found a mapping"},
    {"redirects_not_sequence", 7, 20, "expected a sequence of host patterns for 'redirects', found '5'"},
    {"redirects_too_broad", 7, 54,
     "in 'redirects': host pattern '*.com' is too broad: its last two labels must be literal"},
    {"redirects_with_scheme", 8, 13, "in 'redirects': host 'https://objects.githubusercontent.com' is a URL"},
    {"rule_mode_unknown", 4, 11, "unknown mode 'dry-run'; accepted: enforce, audit"},
    {"rule_not_mapping", 3, 11,
     "expected a mapping with 'endpoints' and 'binaries' for rule 'github', found a sequence"},
    {"rules_empty", 8, 16, "'rules' must list at least one '- allow: {...}' rule"},
    {"rules_invalid_method", 9, 30, "invalid method 'GE T'"},
    {"rules_item_without_allow", 9, 13,
     "an item of 'rules' needs 'allow:', as in '- allow: { method: GET, path: \"/**\" }'"},
    {"rules_relative_path", 9, 41, "path 'repos/**' must start with '/' (a glob such as '/repos/**')"},
    {"rules_with_tcp_protocol", 8, 9, "'rules' needs 'protocol: rest' (or another L7 protocol)"},
    {"rules_without_protocol", 7, 9, "'rules' needs 'protocol: rest' (or another L7 protocol)"},
    {"tls_unknown", 5, 49, "unknown tls 'verify'"},
    {"top_level_sequence", 1, 1, "expected a mapping with 'version: 1', found a sequence"},
    {"unknown_binary_key", 7, 31, "unknown key 'sha1' in a binary entry"},
    {"binary_sha256_short", 7, 39, "must be 64 hexadecimal digits"},
    {"binary_sha256_with_children", 7, 47, "cannot be combined with 'children: true'"},
    {"unknown_endpoint_key_allow_encoded_slash", 9, 9, "unknown key 'allow_encoded_slash' in an endpoint"},
    {"unknown_rule_key", 4, 5, "unknown key 'description' in a rule"},
    {"unknown_top_level_key", 8, 1, "unknown key 'network_middlewares' at the top level"},
    {"version_missing", 1, 1, "missing 'version: 1'"},
    {"version_quoted", 1, 10, "expected the integer 1 for 'version', found the quoted string \"1\""},
    {"version_unsupported", 1, 10, "unsupported version 2"},
    {"wildcard_double_star_mixed", 5, 17,
     "host pattern '**foo.example.com' mixes '**' with other characters in '**foo'"},
    {"wildcard_double_star_not_first_label", 5, 17,
     "host pattern 'foo.**.example.com' has '**' after the first label"},
    {"wildcard_double_star_only", 5, 17,
     "host pattern '**' is too broad: its last two labels must be literal, as in '*.example.com'"},
    {"wildcard_in_ipv4_literal", 5, 17, "host '10.0.0.*' is an IP address with a wildcard"},
    {"wildcard_in_ipv6_literal", 5, 17, "host 'fe80::*' is an IP address with a wildcard"},
    {"wildcard_partial_not_first_label", 5, 17,
     "host pattern 'foo.us-*.example.com' has a partial wildcard 'us-*' after the first label"},
    {"wildcard_star_only", 5, 17,
     "host pattern '*' is too broad: its last two labels must be literal, as in '*.example.com'"},
    {"wildcard_tld_only", 5, 17,
     "host pattern '*.com' is too broad: its last two labels must be literal, as in '*.example.com'"},
    {"yaml_stray_comma", 1, 1, "invalid YAML: unexpected token where a document starts"},  // yaml-cpp #1040
    {"yaml_unclosed_brace", 7, 7, "invalid YAML: illegal block entry"},
};

struct ExpectedWarning {
  int line;
  const char* fragment;
};

struct ValidFile {
  const char* name;  // tests/data/valid/<name>.yaml
  std::size_t rule_count;
  std::vector<ExpectedWarning> warnings;
};

const char* const kUnenforced = "is not enforced by egressd (accepted for OpenShell compatibility)";
const char* const kNoRules = "no network_policies: every connection will be denied";

const ValidFile kValidFiles[] = {
    {"openshell_fixture",
     4,
     {{11, "'filesystem_policy' is not enforced by egressd (accepted for OpenShell compatibility)"},
      {26, "'landlock' is not enforced"},
      {29, "'process' is not enforced"}}},
    {"openshell_quickstart",
     1,
     {{13, "'filesystem_policy' is not enforced"}, {17, "'landlock' is not enforced"}}},
    {"wildcards", 1, {}},
    {"l7_endpoints", 2, {}},
    {"redirects", 1, {}},
    {"deprecated_keys",
     1,
     {{6,
       "'tls: terminate' is deprecated; TLS termination is now automatic. Use 'tls: skip' to explicitly "
       "disable."},
      {7, "'tls: passthrough' is deprecated"},
      {9, "'harness' is deprecated and ignored"}}},
    {"audit_mode", 2, {{3, "mode: audit: every connection and request this policy would deny is allowed"}}},
    {"rule_audit_mode", 2, {{11, "mode: audit: rule 'claude' lets its binaries through"}}},
    {"no_network_policies", 0, {{0, kNoRules}}},
    {"empty_network_policies", 0, {{2, kNoRules}}},
};

std::set<std::string> yaml_files_in(const std::string& directory) {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    names.insert(entry.path().filename().string());
  }
  return names;
}

bool contains(const std::string& text, const std::string& fragment) {
  return text.find(fragment) != std::string::npos;
}

TEST_CASE("each broken policy file is rejected with one error at its flaw's line and column") {
  for (const BrokenFile& row : kBrokenFiles) {
    CAPTURE(row.name);
    const std::string path = data_path("broken/") + row.name + ".yaml";
    Result<std::shared_ptr<const Policy>, LoadErrors> loaded = load_policy_file(path);
    REQUIRE_FALSE(loaded.has_value());
    REQUIRE(loaded.error().size() == 1);
    const LoadError& error = loaded.error().front();
    CAPTURE(error.to_string());
    CHECK(error.where.file == path);
    CHECK(error.where.line == row.line);
    CHECK(error.where.col == row.col);
    CHECK(contains(error.message, row.fragment));
  }
}

TEST_CASE("every file under tests/data/broken has a row in the broken-file table") {
  std::set<std::string> listed;
  for (const BrokenFile& row : kBrokenFiles) listed.insert(std::string(row.name) + ".yaml");
  CHECK(yaml_files_in(data_path("broken")) == listed);
}

TEST_CASE("each valid policy file loads with exactly its expected warnings") {
  for (const ValidFile& row : kValidFiles) {
    CAPTURE(row.name);
    const std::string path = data_path("valid/") + row.name + ".yaml";
    Result<std::shared_ptr<const Policy>, LoadErrors> loaded = load_policy_file(path);
    if (!loaded) FAIL(format_errors(loaded.error()));
    const Policy& policy = **loaded;
    CHECK(policy.rules.size() == row.rule_count);
    REQUIRE(policy.warnings.size() == row.warnings.size());
    for (std::size_t i = 0; i < row.warnings.size(); ++i) {
      CAPTURE(policy.warnings[i].message);
      CHECK(policy.warnings[i].where.file == path);
      CHECK(policy.warnings[i].where.line == row.warnings[i].line);
      CHECK(contains(policy.warnings[i].message, row.warnings[i].fragment));
    }
  }
}

TEST_CASE("every file under tests/data/valid has a row in the valid-file table") {
  std::set<std::string> listed;
  for (const ValidFile& row : kValidFiles) listed.insert(std::string(row.name) + ".yaml");
  CHECK(yaml_files_in(data_path("valid")) == listed);
}

TEST_CASE("sections egressd does not enforce each get the same warning") {
  const auto policy = policy_from_yaml(R"(
version: 1
filesystem_policy: { read_only: [/usr] }
landlock: { compatibility: best_effort }
process: { run_as_user: sandbox }
)");
  std::vector<std::string> messages;
  for (const LoadWarning& warning : policy->warnings) messages.push_back(warning.message);
  // A warning about the whole file (line 0) sorts before the positioned ones.
  CHECK(messages == std::vector<std::string>{kNoRules, std::string("'filesystem_policy' ") + kUnenforced,
                                             std::string("'landlock' ") + kUnenforced,
                                             std::string("'process' ") + kUnenforced});
}

TEST_CASE("the OpenShell fixture loads its rules, endpoints, L7 rules and binaries as written") {
  Result<std::shared_ptr<const Policy>, LoadErrors> loaded =
      load_policy_file(data_path("valid/openshell_fixture.yaml"));
  REQUIRE(loaded.has_value());
  const Policy& policy = **loaded;
  REQUIRE(policy.rules.size() == 4);
  std::vector<std::string> names;
  for (const Rule& rule : policy.rules) names.push_back(rule.name);
  CHECK(names == std::vector<std::string>{"claude_code", "github-ssh-over-https", "copilot", "gitlab"});
  CHECK(policy.rules[1].key == "github_ssh_over_https");
  CHECK(policy.rules[2].endpoints.size() == 11);
  const Endpoint& git = policy.rules[1].endpoints[0];
  CHECK(git.host.text == "github.com");
  CHECK(git.ports == std::vector<uint16_t>{443});
  CHECK(git.protocol == Protocol::Rest);
  CHECK(git.enforcement == Enforcement::Enforce);
  REQUIRE(git.rules.size() == 2);
  CHECK(git.rules[0].method == "GET");
  CHECK(git.rules[0].path == "/**/info/refs*");
  CHECK(git.rules[1].method == "POST");
  CHECK(git.rules[1].path == "/**/git-upload-pack");
  const std::vector<BinaryPattern>& copilot = policy.rules[2].binaries;
  REQUIRE(copilot.size() == 4);
  CHECK(copilot[0].is_glob);
  CHECK(copilot[0].path == "/usr/lib/node_modules/@github/copilot/node_modules/@github/**/copilot");
  CHECK_FALSE(copilot[1].is_glob);
  CHECK(copilot[2].is_glob);
  CHECK(copilot[2].where.line == 77);
}

TEST_CASE("L7 settings load normalized: methods upper-cased, queries, deny rules and allowed_ips") {
  Result<std::shared_ptr<const Policy>, LoadErrors> loaded =
      load_policy_file(data_path("valid/l7_endpoints.yaml"));
  REQUIRE(loaded.has_value());
  const Policy& policy = **loaded;
  REQUIRE(policy.rules.size() == 2);
  const Rule& github = policy.rules[0];
  CHECK(github.name == "github-api");
  CHECK(github.binaries[0].children);
  const Endpoint& preset = github.endpoints[0];
  CHECK(preset.access == Access::ReadOnly);
  CHECK(preset.enforcement == Enforcement::Audit);
  const Endpoint& uploads = github.endpoints[1];
  CHECK(uploads.ports == std::vector<uint16_t>{443, 8443});
  CHECK(uploads.access == Access::None);
  REQUIRE(uploads.rules.size() == 2);
  CHECK(uploads.rules[0].method == "GET");
  CHECK(uploads.rules[1].method == "*");
  using Query = std::vector<std::pair<std::string, std::vector<std::string>>>;
  CHECK(uploads.rules[1].query == Query{{"q", {"repo:*"}}, {"per_page", {"10", "100"}}});
  REQUIRE(uploads.deny_rules.size() == 1);
  CHECK(uploads.deny_rules[0].method == "DELETE");
  CHECK(uploads.deny_rules[0].where.line == 24);
  const Endpoint& db = policy.rules[1].endpoints[0];
  CHECK(db.protocol == Protocol::Tcp);
  CHECK(db.tls == TlsMode::Skip);
  REQUIRE(db.allowed_ips.size() == 3);
  CHECK(db.allowed_ips[0].text == "10.1.2.3/8");
  CHECK(db.allowed_ips[0].prefix_len == 8);
  CHECK(db.allowed_ips[0].bytes[1] == 0);
  CHECK(db.allowed_ips[1].family == 6);
  CHECK(db.allowed_ips[2].prefix_len == 32);
  CHECK(policy.rules[1].binaries[0].is_glob);
}

TEST_CASE("redirects load as lowercase host patterns, wildcards split into labels") {
  Result<std::shared_ptr<const Policy>, LoadErrors> loaded =
      load_policy_file(data_path("valid/redirects.yaml"));
  if (!loaded) FAIL(format_errors(loaded.error()));
  const Rule& github = (*loaded)->rules[0];
  REQUIRE(github.endpoints.size() == 2);
  const std::vector<HostPattern>& api = github.endpoints[0].redirect_hosts;
  REQUIRE(api.size() == 2);
  CHECK(api[0].text == "*.s3.*.amazonaws.com");
  CHECK(api[0].is_wildcard);
  CHECK(api[0].labels == std::vector<std::string>{"*", "s3", "*", "amazonaws", "com"});
  CHECK(api[1].text == "objects.githubusercontent.com");
  CHECK_FALSE(api[1].is_wildcard);
  const std::vector<HostPattern>& web = github.endpoints[1].redirect_hosts;
  REQUIRE(web.size() == 1);
  CHECK(web[0].text == "**.githubusercontent.com");
  CHECK(web[0].is_wildcard);
}

TEST_CASE("an endpoint with allowed_ips and no host loads as hostless") {
  const auto policy = policy_from_yaml(R"(
version: 1
network_policies:
  lan:
    endpoints:
      - { port: 5432, allowed_ips: [10.0.0.0/8, "fd12::/16"] }
      - { host: db.example.com, port: 5432, allowed_ips: [10.0.0.0/8] }
    binaries: [{ path: /usr/bin/psql }]
)");
  const Endpoint& hostless = policy->rules[0].endpoints[0];
  CHECK(hostless.hostless());
  CHECK(hostless.host.text.empty());
  CHECK_FALSE(hostless.host.is_wildcard);
  CHECK(hostless.ports == std::vector<uint16_t>{5432});
  REQUIRE(hostless.allowed_ips.size() == 2);
  CHECK(hostless.allowed_ips[1].text == "fd12::/16");
  CHECK_FALSE(policy->rules[0].endpoints[1].hostless());
}

TEST_CASE("an endpoint with neither host nor allowed_ips says it needs one of them") {
  const LoadErrors errors = errors_from_yaml(R"(version: 1
network_policies:
  lan:
    endpoints:
      - { port: 5432, protocol: tcp }
    binaries: [{ path: /usr/bin/psql }]
)");
  REQUIRE(errors.size() == 1);
  CHECK(
      errors[0].to_string() ==
      "test.yaml:5:9: an endpoint needs 'host' (or, to allow IP addresses by range, 'allowed_ips' without a "
      "host)");
}

TEST_CASE("each allowed_ips entry overlapping addresses egressd never connects to is an error at the entry") {
  const LoadErrors errors = errors_from_yaml(R"(version: 1
network_policies:
  lan:
    endpoints:
      - host: db.example.com
        port: 5432
        allowed_ips:
          - 10.0.0.0/8
          - 0.0.0.0/0
          - "fe80::/64"
          - 127.0.0.1
          - "fd00::/8"
    binaries: [{ path: /usr/bin/psql }]
)");
  std::vector<std::string> lines;
  for (const LoadError& error : errors) lines.push_back(error.to_string());
  CAPTURE(format_errors(errors));
  REQUIRE(lines.size() == 3);
  CHECK(
      lines[0] ==
      "test.yaml:9:13: allowed_ips entry '0.0.0.0/0' covers non-unicast addresses (224.0.0.0/4, multicast), "
      "which egressd never connects to");
  CHECK(
      lines[1] ==
      "test.yaml:10:13: allowed_ips entry 'fe80::/64' covers link-local addresses (fe80::/10), which egressd "
      "never connects to");
  CHECK(lines[2] ==
        "test.yaml:12:13: allowed_ips entry 'fd00::/8' covers the AWS instance metadata service over IPv6 "
        "(fd00:ec2::254), which egressd never connects to");
}

TEST_CASE("an endpoint without 'redirects' has no redirect hosts") {
  const auto policy = policy_from_yaml(R"(
version: 1
network_policies:
  plain: { endpoints: [{ host: example.com, port: 443 }], binaries: [{ path: /usr/bin/curl }] }
)");
  CHECK(policy->rules[0].endpoints[0].redirect_hosts.empty());
}

TEST_CASE("every bad entry of 'redirects' is reported, each at its own position") {
  const LoadErrors errors = errors_from_yaml(R"(version: 1
network_policies:
  r:
    endpoints:
      - host: api.example.com
        port: 443
        redirects: ["*", ok.example.com, [nested], "**", "10.0.0.*", "a b.example.com"]
    binaries: [{ path: /a }]
)");
  std::vector<std::string> lines;
  for (const LoadError& error : errors) lines.push_back(error.to_string());
  CAPTURE(format_errors(errors));
  REQUIRE(lines.size() == 5);
  CHECK(contains(lines[0], "test.yaml:7:21: in 'redirects': host pattern '*' is too broad"));
  CHECK(contains(lines[1], "test.yaml:7:42: expected a host pattern such as"));
  CHECK(contains(lines[2], "test.yaml:7:52: in 'redirects': host pattern '**' is too broad"));
  CHECK(
      contains(lines[3], "test.yaml:7:58: in 'redirects': host '10.0.0.*' is an IP address with a wildcard"));
  CHECK(contains(lines[4], "test.yaml:7:70: in 'redirects': host 'a b.example.com' contains a space"));
}

TEST_CASE("an L7 protocol other than rest loads with a warning that its requests are not checked") {
  for (std::string_view protocol : {"websocket", "graphql", "mcp", "json-rpc", "sql"}) {
    CAPTURE(protocol);
    const auto policy = policy_from_yaml(std::string(R"(
version: 1
network_policies:
  r:
    endpoints:
      - { host: api.example.com, port: 443, protocol: )") +
                                         std::string(protocol) + R"(, rules: [{ allow: { method: POST } }] }
    binaries: [{ path: /a }]
)");
    REQUIRE(policy->warnings.size() == 1);
    CHECK(policy->warnings[0].where.line == 6);
    CHECK(policy->warnings[0].message ==
          "'protocol: " + std::string(protocol) +
              "' is not enforced by egressd: requests on this endpoint are not "
              "checked against its 'access', 'rules' or 'deny_rules' (host, port "
              "and binary still are)");
  }
}

TEST_CASE("'protocol: rest' and 'protocol: tcp' load without a warning") {
  const auto policy = policy_from_yaml(R"(
version: 1
network_policies:
  r:
    endpoints:
      - { host: api.example.com, port: 443, protocol: rest, access: full }
      - { host: db.example.com, port: 5432, protocol: tcp }
    binaries: [{ path: /a }]
)");
  CHECK(policy->warnings.empty());
}

TEST_CASE("endpoint settings default to no protocol, automatic TLS and enforce") {
  const auto policy = policy_from_yaml(R"(
version: 1
network_policies:
  plain: { endpoints: [{ host: Example.COM, port: 443 }], binaries: [{ path: /usr/bin/curl }] }
)");
  const Rule& rule = policy->rules[0];
  CHECK(rule.name == "plain");
  CHECK(rule.key == "plain");
  CHECK(rule.where.line == 4);
  CHECK(rule.where.col == 3);
  const Endpoint& endpoint = rule.endpoints[0];
  CHECK(endpoint.host.text == "example.com");
  CHECK(endpoint.protocol == Protocol::None);
  CHECK(endpoint.tls == TlsMode::Auto);
  CHECK(endpoint.enforcement == Enforcement::Enforce);
  CHECK(endpoint.access == Access::None);
  CHECK_FALSE(rule.binaries[0].children);
}

TEST_CASE("errors in several rules and endpoints are all reported, in file order") {
  const LoadErrors errors = errors_from_yaml(R"(version: 1
network_policies:
  b:
    endpoints:
      - { host: "*.com", port: 443 }
      - { host: ok.example.com, port: 0 }
    binaries: []
  a:
    endpoints: [{ host: fine.example.com, port: 443, color: red }]
    binaries: [/usr/bin/curl]
extra: true
)");
  std::vector<std::string> lines;
  for (const LoadError& error : errors) lines.push_back(error.to_string());
  CAPTURE(format_errors(errors));
  REQUIRE(lines.size() == 6);
  CHECK(contains(lines[0], "test.yaml:5:17: host pattern '*.com' is too broad"));
  CHECK(contains(lines[1], "test.yaml:6:39: port 0 is out of range"));
  CHECK(contains(lines[2], "test.yaml:7:15: a rule must list at least one binary"));
  CHECK(contains(lines[3], "test.yaml:9:54: unknown key 'color' in an endpoint"));
  CHECK(contains(lines[4], "test.yaml:10:16: expected a binary entry like { path: /usr/bin/curl }"));
  CHECK(contains(lines[5], "test.yaml:11:1: unknown key 'extra' at the top level"));
}

TEST_CASE("an unknown key names its location and the accepted keys") {
  const LoadErrors errors = errors_from_yaml("version: 1\nnetwork_policies: {}\nnetwork_middlewares: {}\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].to_string() ==
        "test.yaml:3:1: unknown key 'network_middlewares' at the top level; accepted keys: version, mode, "
        "network_policies, filesystem_policy, landlock, process");
}

TEST_CASE("type errors say what was expected and what was found, at the value") {
  struct Row {
    const char* yaml;
    const char* message;
  };
  const Row rows[] = {
      {"version: [1]\n", "1:10: expected the integer 1 for 'version', found a sequence"},
      {"version: 1\nnetwork_policies: { r: { endpoints: { host: a.com }, binaries: [{ path: /a }] } }\n",
       "2:37: expected a sequence of endpoints for 'endpoints', found a mapping"},
      {"version: 1\nnetwork_policies: { r: { endpoints: [{ host: a.com, port: 1.5 }], binaries: [{ path: /a "
       "}] } }\n",
       "2:59: expected a port number (1..65535), found '1.5'"},
      {"version: 1\nnetwork_policies: { r: { endpoints: [{ host: a.com, port: 1 }], binaries: [{ path: /a, "
       "children: "
       "\"true\" }] } }\n",
       "2:98: expected true or false for 'children', found the quoted string \"true\""},
      {"version: 1\nnetwork_policies: { r: { name: [x], endpoints: [{ host: a.com, port: 1 }], binaries: [{ "
       "path: /a "
       "}] } }\n",
       "2:32: expected a string for 'name', found a sequence"},
      {"version: 1\nnetwork_policies:\n  r:\n    endpoints:\n      - host:\n        port: 443\n    binaries: "
       "[{ path: "
       "/a }]\n",
       "5:9: expected a string for 'host', found an empty value"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.yaml);
    const LoadErrors errors = errors_from_yaml(row.yaml);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].to_string() == std::string("test.yaml:") + row.message);
  }
}

TEST_CASE("a rule without binaries, or with an empty list, says how to allow any binary") {
  const LoadErrors errors = errors_from_yaml(R"(version: 1
network_policies:
  none: { endpoints: [{ host: a.example.com, port: 443 }] }
  empty: { endpoints: [{ host: a.example.com, port: 443 }], binaries: [] }
)");
  REQUIRE(errors.size() == 2);
  CHECK(errors[0].message == "rule 'none' has no 'binaries'; use { path: \"/**\" } to allow any binary");
  CHECK(errors[1].message ==
        "a rule must list at least one binary; use { path: \"/**\" } to allow any binary");
}

TEST_CASE("a YAML syntax error is one error at the parser's 1-based position") {
  const LoadErrors errors = errors_from_yaml("version: 1\nnetwork_policies: [a, b\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].where.line == 3);
  CHECK(errors[0].where.col == 1);
  CHECK(contains(errors[0].message, "invalid YAML: "));
}

TEST_CASE("an empty or comment-only file is rejected as empty") {
  for (const char* text : {"", "\n\n", "# nothing here\n", "---\n"}) {
    CAPTURE(text);
    const LoadErrors errors = errors_from_yaml(text);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].to_string() == "test.yaml: empty policy file; expected a mapping with 'version: 1'");
  }
}

TEST_CASE("a missing file is reported as unreadable with the system's reason") {
  fixtures::ScratchDir dir;
  const std::string path = dir.file("absent.yaml");
  Result<std::shared_ptr<const Policy>, LoadErrors> loaded = load_policy_file(path);
  REQUIRE_FALSE(loaded.has_value());
  REQUIRE(loaded.error().size() == 1);
  CHECK(loaded.error()[0].to_string() == path + ": cannot read: No such file or directory");
}

TEST_CASE("a directory is reported as unreadable") {
  fixtures::ScratchDir dir;
  Result<std::shared_ptr<const Policy>, LoadErrors> loaded = load_policy_file(dir.file(""));
  REQUIRE_FALSE(loaded.has_value());
  CHECK(contains(loaded.error()[0].to_string(), ": cannot read: Is a directory"));
}

TEST_CASE("LoadError text is file:line:col: message, or file: message without a position") {
  const LoadError positioned{{"p.yaml", 3, 7}, "bad"};
  const LoadError whole{{"p.yaml", 0, 0}, "cannot read: Permission denied"};
  CHECK(positioned.to_string() == "p.yaml:3:7: bad");
  CHECK(whole.to_string() == "p.yaml: cannot read: Permission denied");
  CHECK(format_errors({positioned, whole}) == "p.yaml:3:7: bad\np.yaml: cannot read: Permission denied\n");
}

TEST_CASE("source_path is the path given and source_hash is 16 hex digits of the text") {
  const std::string path = data_path("valid/wildcards.yaml");
  Result<std::shared_ptr<const Policy>, LoadErrors> from_file = load_policy_file(path);
  REQUIRE(from_file.has_value());
  CHECK((*from_file)->source_path == path);
  const std::string& hash = (*from_file)->source_hash;
  CHECK(hash.size() == 16);
  CHECK(std::all_of(hash.begin(), hash.end(),
                    [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }));
  const auto text = policy_from_yaml("version: 1\n");
  CHECK(text->source_path == "test.yaml");
  CHECK(text->source_hash == "248c57ca18116db2");  // FNV-1a 64 of "version: 1\n"
  CHECK(policy_from_yaml("version: 1\n# changed\n")->source_hash != text->source_hash);
}

TEST_CASE("a symlinked binary path stores its realpath target while a missing or glob path stores none") {
  fixtures::ScratchDir dir;
  const std::string real = dir.write("tool-1.0", "");
  const std::string link = dir.symlink("tool", real);
  const auto policy = policy_from_yaml(
      fixtures::yaml_for_binaries("a.example.com", 1, {link, real, dir.file("missing"), dir.file("*")}));
  const std::vector<BinaryPattern>& binaries = policy->rules[0].binaries;
  REQUIRE(binaries.size() == 4);
  CHECK(binaries[0].resolved == std::vector<std::string>{real});
  CHECK(binaries[1].resolved.empty());  // already the real path
  CHECK(binaries[2].resolved.empty());  // does not exist (yet): fine
  CHECK(binaries[3].resolved.empty());  // globs are matched as written
  CHECK(policy->warnings.empty());
}

TEST_CASE("retargeting a symlinked binary changes the source hash though the text is the same") {
  fixtures::ScratchDir dir;
  const std::string link = dir.symlink("tool", dir.write("tool-1", ""));
  const std::string text = fixtures::yaml_for_binaries("a.example.com", 1, {link});
  const std::string before = policy_from_yaml(text)->source_hash;
  CHECK(policy_from_yaml(text)->source_hash == before);
  dir.symlink("tool", dir.write("tool-2", ""));
  CHECK(policy_from_yaml(text)->source_hash != before);
}

TEST_CASE("rule names must be unique and the second use names the first") {
  const LoadErrors errors = errors_from_yaml(R"(version: 1
network_policies:
  one: { name: shared, endpoints: [{ host: a.example.com, port: 1 }], binaries: [{ path: /a }] }
  shared: { endpoints: [{ host: b.example.com, port: 1 }], binaries: [{ path: /b }] }
)");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].to_string() == "test.yaml:4:3: duplicate rule name 'shared' (first used at 3:16)");
}

}  // namespace
}  // namespace egressd::policy

namespace egressd::policy {
namespace {

TEST_CASE("a binary's sha256 pin is kept as 64 lowercase hex digits, with or without a sha256: prefix") {
  const auto policy = fixtures::policy_from_yaml(R"(
version: 1
network_policies:
  pinned:
    endpoints: [{ host: api.example.com, port: 443 }]
    binaries:
      - { path: /usr/bin/curl, sha256: "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855" }
      - { path: /usr/bin/wget }
)");
  const auto& binaries = policy->rules.at(0).binaries;
  CHECK(binaries.at(0).sha256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(binaries.at(1).sha256.empty());
  const Decision decision = decide(*policy, {Caller{"/usr/bin/curl", {}}, "api.example.com", 443});
  CHECK(decision.binary == &binaries.at(0));  // the proxy checks this entry's pin before it allows
}

}  // namespace
}  // namespace egressd::policy

namespace egressd::policy {
namespace {

TEST_CASE("mode defaults to enforce, and a rule without its own mode takes the policy's") {
  struct Row {
    const char* policy_mode;  // the top-level line, or "" for none
    const char* rule_mode;    // the rule's line, or ""
    Enforcement want_policy;
    Enforcement want_rule;
  };
  const Row rows[] = {
      {"", "", Enforcement::Enforce, Enforcement::Enforce},
      {"mode: enforce\n", "", Enforcement::Enforce, Enforcement::Enforce},
      {"mode: audit\n", "", Enforcement::Audit, Enforcement::Audit},
      {"", "    mode: audit\n", Enforcement::Enforce, Enforcement::Audit},
      {"mode: audit\n", "    mode: enforce\n", Enforcement::Audit, Enforcement::Enforce},
      {"mode: enforce\n", "    mode: audit\n", Enforcement::Enforce, Enforcement::Audit},
  };
  for (const Row& row : rows) {
    const std::string policy_mode = row.policy_mode;
    const std::string rule_mode = row.rule_mode;
    CAPTURE(policy_mode);
    CAPTURE(rule_mode);
    // The top-level key after network_policies: the rules still inherit it.
    const auto policy =
        policy_from_yaml(std::string("version: 1\nnetwork_policies:\n  r:\n") + row.rule_mode +
                         "    endpoints: [{ host: a.example.com, port: 443 }]\n"
                         "    binaries: [{ path: /usr/bin/curl }]\n" +
                         row.policy_mode);
    CHECK(policy->mode == row.want_policy);
    CHECK(policy->rules.at(0).mode == row.want_rule);
  }
}

TEST_CASE("audit mode is a warning at its key, file:line:col, saying what it still enforces") {
  const auto policy = policy_from_yaml(R"(version: 1
network_policies:
  github:
    endpoints: [{ host: api.github.com, port: 443 }]
    binaries: [{ path: /usr/bin/git }]
  agent:
    name: claude
    mode: audit
    endpoints: [{ host: api.anthropic.com, port: 443 }]
    binaries: [{ path: /usr/local/bin/claude }]
  quiet:
    mode: enforce
    endpoints: [{ host: example.com, port: 443 }]
    binaries: [{ path: /usr/bin/wget }]
mode: audit
)");
  REQUIRE(policy->warnings.size() == 2);
  const LoadWarning& rule = policy->warnings[0];
  CHECK(rule.where.file == "test.yaml");
  CHECK(rule.where.line == 8);
  CHECK(rule.where.col == 5);
  CHECK(rule.message ==
        "mode: audit: rule 'claude' lets its binaries through wherever the policy would deny them, logging "
        "each with would_deny: true; destination safety (SSRF), connection limits, malformed requests, "
        "unidentified callers and binary digests are still enforced");
  const LoadWarning& whole = policy->warnings[1];
  CHECK(whole.where.line == 15);
  CHECK(whole.where.col == 1);
  CHECK(whole.message ==
        "mode: audit: every connection and request this policy would deny is allowed and logged with "
        "would_deny: true; destination safety (SSRF), connection limits, malformed requests, unidentified "
        "callers and binary digests are still enforced");
}

TEST_CASE("mode takes only enforce or audit, at the top level and in a rule") {
  struct Row {
    const char* yaml;
    const char* error;
  };
  const Row rows[] = {
      {"version: 1\nmode: Audit\n", "test.yaml:2:7: unknown mode 'Audit'; accepted: enforce, audit"},
      {"version: 1\nmode:\n", "test.yaml:2:1: expected a string for 'mode', found an empty value"},
      {"version: 1\nmode: { audit: true }\n", "test.yaml:2:7: expected a string for 'mode', found a mapping"},
      {"version: 1\nnetwork_policies:\n  r:\n    mode: report\n"
       "    endpoints: [{ host: a.example.com, port: 443 }]\n    binaries: [{ path: /usr/bin/curl }]\n",
       "test.yaml:4:11: unknown mode 'report'; accepted: enforce, audit"},
      {"version: 1\nnetwork_policies:\n  r:\n    endpoints: [{ host: a.example.com, port: 443, mode: audit "
       "}]\n"
       "    binaries: [{ path: /usr/bin/curl }]\n",
       "test.yaml:4:51: unknown key 'mode' in an endpoint"},
  };
  for (const Row& row : rows) {
    const std::string yaml = row.yaml;
    CAPTURE(yaml);
    const LoadErrors errors = errors_from_yaml(yaml);
    REQUIRE(errors.size() == 1);
    CAPTURE(errors[0].to_string());
    CHECK(contains(errors[0].to_string(), row.error));
  }
}

}  // namespace
}  // namespace egressd::policy

#include "policy/matcher.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "policy/patterns.h"
#include "tests/unit/policy/policy_fixtures.h"

namespace egressd::policy {
namespace {

using fixtures::host_pattern;
using fixtures::policy_from_yaml;

TEST_CASE("an exact host matches itself in any case and nothing else") {
  struct Row {
    const char* pattern;
    const char* host;
    bool want;
  };
  const Row rows[] = {
      {"api.github.com", "api.github.com", true},
      {"api.github.com", "API.GitHub.com", true},
      {"API.GITHUB.COM", "api.github.com", true},
      {"api.github.com", "github.com", false},
      {"api.github.com", "xapi.github.com", false},
      {"api.github.com", "api.github.com.evil.com", false},
      {"10.0.0.1", "10.0.0.1", true},
      {"10.0.0.1", "10.0.0.10", false},
      {"[::1]", "::1", true},
      {"2001:DB8::1", "2001:db8::1", true},
      {"2001:db8::1", "2001:db8::2", false},
  };
  for (const Row& row : rows) {
    CAPTURE(row.pattern);
    CAPTURE(row.host);
    CHECK(host_matches(host_pattern(row.pattern), row.host) == row.want);
  }
}

TEST_CASE("'*.' matches exactly one label: never the bare domain, never a deeper subdomain") {
  struct Row {
    const char* host;
    bool want;
  };
  const Row rows[] = {
      {"api.example.com", true},  {"API.Example.COM", true},
      {"example.com", false},     {"a.b.example.com", false},
      {".example.com", false},    {"apiexample.com", false},
      {"api.example.org", false}, {"api.example.com.evil.com", false},
  };
  const HostPattern pattern = host_pattern("*.example.com");
  for (const Row& row : rows) {
    CAPTURE(row.host);
    CHECK(host_matches(pattern, row.host) == row.want);
  }
}

TEST_CASE("'**.' matches one or more labels but never the bare domain") {
  struct Row {
    const char* host;
    bool want;
  };
  const Row rows[] = {
      {"api.github.com", true}, {"a.b.c.d.github.com", true},   {"API.GITHUB.COM", true},
      {"github.com", false},    {"evil-github.com", false},     {".github.com", false},
      {"a..github.com", false}, {"github.com.evil.com", false},
  };
  const HostPattern pattern = host_pattern("**.github.com");
  for (const Row& row : rows) {
    CAPTURE(row.host);
    CHECK(host_matches(pattern, row.host) == row.want);
  }
}

TEST_CASE("a partial wildcard globs within the first label only") {
  struct Row {
    const char* host;
    bool want;
  };
  const Row rows[] = {
      {"us-central1-aiplatform.googleapis.com", true},
      {"US-CENTRAL1-AIPLATFORM.googleapis.com", true},
      {"-aiplatform.googleapis.com", true},  // '*' may match nothing; the label is still non-empty
      {"aiplatform.googleapis.com", false},
      {"x.us-aiplatform.googleapis.com", false},
      {"googleapis.com", false},
      {"us-aiplatform-x.googleapis.com", false},
  };
  const HostPattern pattern = host_pattern("*-aiplatform.googleapis.com");
  for (const Row& row : rows) {
    CAPTURE(row.host);
    CHECK(host_matches(pattern, row.host) == row.want);
  }
}

TEST_CASE("a whole '*' label in a middle position matches exactly one label there") {
  struct Row {
    const char* host;
    bool want;
  };
  const Row rows[] = {
      {"bucket.s3.us-east-1.amazonaws.com", true}, {"BUCKET.S3.EU-WEST-1.AMAZONAWS.COM", true},
      {"bucket.s3.amazonaws.com", false},          {"a.b.s3.us-east-1.amazonaws.com", false},
      {"bucket.s3..amazonaws.com", false},         {"bucket.s4.us-east-1.amazonaws.com", false},
  };
  const HostPattern pattern = host_pattern("*.s3.*.amazonaws.com");
  for (const Row& row : rows) {
    CAPTURE(row.host);
    CHECK(host_matches(pattern, row.host) == row.want);
  }
}

TEST_CASE("a wildcard host pattern never matches an IP literal, even where its labels would") {
  // parse_host_pattern refuses numeric wildcards, so these are built by hand: the matcher must not rely
  // on that.
  HostPattern numeric;
  numeric.text = "*.0.0.1";
  numeric.is_wildcard = true;
  numeric.labels = {"*", "0", "0", "1"};
  CHECK(host_matches(numeric, "a.0.0.1"));  // the labels do match
  CHECK_FALSE(host_matches(numeric, "10.0.0.1"));
  HostPattern any_prefix;
  any_prefix.text = "**.3.4";
  any_prefix.is_wildcard = true;
  any_prefix.labels = {"**", "3", "4"};
  CHECK(host_matches(any_prefix, "a.b.3.4"));
  CHECK_FALSE(host_matches(any_prefix, "1.2.3.4"));
  CHECK_FALSE(host_matches(any_prefix, "::ffff:1.2.3.4"));  // labels "::ffff:1", "2", "3", "4"
  CHECK_FALSE(parse_host_pattern("*.0.0.1").has_value());
}

TEST_CASE("a hostless endpoint matches IP literals inside its allowed_ips on its ports, and no name") {
  const auto policy = policy_from_yaml(R"(
version: 1
network_policies:
  lan:
    endpoints: [{ port: 5432, allowed_ips: [10.0.0.0/8, "fd12::/16"] }]
    binaries: [{ path: /usr/bin/psql }]
)");
  struct Row {
    const char* host;
    uint16_t port;
    Verdict want;
  };
  const Row rows[] = {
      {"10.1.2.3", 5432, Verdict::Allow},
      {"10.255.255.255", 5432, Verdict::Allow},
      {"fd12::7", 5432, Verdict::Allow},
      {"::ffff:10.1.2.3", 5432, Verdict::Allow},  // the same IPv4 address, mapped
      {"10.1.2.3", 5433, Verdict::Deny},
      {"11.0.0.1", 5432, Verdict::Deny},
      {"fd13::7", 5432, Verdict::Deny},
      {"internal.example.com", 5432, Verdict::Deny},
      {"10.1.2.3.example.com", 5432, Verdict::Deny},
  };
  const Caller psql{"/usr/bin/psql", {}};
  for (const Row& row : rows) {
    CAPTURE(row.host);
    CAPTURE(row.port);
    const Decision decision = decide(*policy, {psql, row.host, row.port});
    CHECK(decision.verdict == row.want);
    if (row.want == Verdict::Allow) CHECK(decision.endpoint == &policy->rules[0].endpoints[0]);
  }
}

TEST_CASE("path globs: '*' stays within one segment, '**' crosses segments") {
  struct Row {
    const char* glob;
    const char* path;
    bool want;
  };
  const Row rows[] = {
      {"/**", "/usr/bin/curl", true},
      {"/**", "/x", true},
      {"/usr/bin/git", "/usr/bin/git", true},
      {"/usr/bin/git", "/usr/bin/gitk", false},
      {"/usr/bin/*", "/usr/bin/curl", true},
      {"/usr/bin/*", "/usr/bin/sub/curl", false},
      {"/usr/bin/python3*", "/usr/bin/python3.11", true},
      {"/usr/bin/python3*", "/usr/bin/python3/x", false},
      {"/home/*/.local/bin/copilot", "/home/alice/.local/bin/copilot", true},
      {"/home/*/.local/bin/copilot", "/home/a/b/.local/bin/copilot", false},
      {"/sandbox/.vscode-server/**", "/sandbox/.vscode-server/bin/1a2b/node", true},
      {"/sandbox/.vscode-server/**", "/sandbox/.vscode-server", false},
      {"/usr/lib/node_modules/@github/copilot/node_modules/@github/**/copilot",
       "/usr/lib/node_modules/@github/copilot/node_modules/@github/copilot-linux-x64/copilot", true},
      {"/usr/**/bin/git", "/usr/local/bin/git", true},
      {"/usr/**/bin/git", "/usr/bin/git", false},  // "**" is a run between the two literal slashes
      {"/opt/**/**/tool", "/opt/a/b/c/tool", true},
      {"/opt/*/tool", "/opt/tool", false},
  };
  for (const Row& row : rows) {
    CAPTURE(row.glob);
    CAPTURE(row.path);
    CHECK(path_glob_matches(row.glob, row.path) == row.want);
  }
}

TEST_CASE("value globs: '*' and '**' match any run, '/' included, and everything else itself") {
  struct Row {
    std::string_view glob;
    std::string_view value;
    bool want;
  };
  const Row rows[] = {
      {"*", "", true},
      {"*", "a/b c", true},
      {"**", "a/b", true},
      {"repo:*", "repo:a/b", true},
      {"repo:*", "repo:", true},
      {"repo:*", "Repo:a", false},
      {"10", "10", true},
      {"10", "100", false},
      {"a*c", "abbc", true},
      {"a*c", "abcd", false},
      {"*.tar.gz", "x.tar.gz", true},
      {"", "", true},
      {"", "x", false},
  };
  for (const Row& row : rows) {
    CAPTURE(row.glob);
    CAPTURE(row.value);
    CHECK(value_glob_matches(row.glob, row.value) == row.want);
  }
}

TEST_CASE("redirect_allowed matches a Location host against the endpoint's redirects like a host pattern") {
  const auto policy = policy_from_yaml(R"(
version: 1
network_policies:
  github:
    endpoints:
      - host: api.github.com
        port: 443
        redirects: ["*.s3.*.amazonaws.com", objects.githubusercontent.com, "**.example.org", "fd00::1"]
      - { host: github.com, port: 443 }
    binaries: [{ path: /usr/bin/git }]
)");
  const Endpoint& with = policy->rules[0].endpoints[0];
  const Endpoint& without = policy->rules[0].endpoints[1];
  struct Row {
    std::string_view host;
    bool want;
  };
  const Row rows[] = {
      {"bucket.s3.us-east-1.amazonaws.com", true},
      {"BUCKET.S3.US-EAST-1.AMAZONAWS.COM", true},
      {"s3.us-east-1.amazonaws.com", false},
      {"a.bucket.s3.us-east-1.amazonaws.com", false},
      {"bucket.s3.amazonaws.com", false},
      {"objects.githubusercontent.com", true},
      {"Objects.GitHubUserContent.com", true},
      {"evil.objects.githubusercontent.com", false},
      {"objects.githubusercontent.com.evil.com", false},
      {"a.example.org", true},
      {"a.b.example.org", true},
      {"example.org", false},
      {"fd00::1", true},
      {"fd00::2", false},
      {"api.github.com", false},  // the endpoint's own host is not a redirect target unless listed
      {"", false},
  };
  for (const Row& row : rows) {
    CAPTURE(row.host);
    CHECK(redirect_allowed(with, row.host) == row.want);
    CHECK_FALSE(redirect_allowed(without, row.host));
  }
}

TEST_CASE("format_host_port writes host:port, an IPv6 literal in brackets") {
  CHECK(format_host_port("api.example.com", 443) == "api.example.com:443");
  CHECK(format_host_port("10.0.0.1", 80) == "10.0.0.1:80");
  CHECK(format_host_port("fd00::1", 8443) == "[fd00::1]:8443");
}

TEST_CASE("a rule allows only when both its binary and its endpoint match") {
  const auto policy = policy_from_yaml(R"(
version: 1
network_policies:
  github: { endpoints: [{ host: "**.github.com", port: 443 }], binaries: [{ path: /usr/bin/git }] }
)");
  struct Row {
    const char* exe;
    const char* host;
    uint16_t port;
    Verdict want;
  };
  const Row rows[] = {{"/usr/bin/git", "api.github.com", 443, Verdict::Allow},
                      {"/usr/bin/git", "github.com", 443, Verdict::Deny},  // never the bare domain
                      {"/usr/bin/git", "api.github.com", 80, Verdict::Deny},
                      {"/usr/bin/curl", "api.github.com", 443, Verdict::Deny}};
  for (const Row& row : rows) {
    CAPTURE(row.exe);
    CAPTURE(row.host);
    CAPTURE(row.port);
    const Caller caller{row.exe, {}};
    CHECK(decide(*policy, {caller, row.host, row.port}).verdict == row.want);
  }
}

TEST_CASE("a binary from one rule and an endpoint from another do not combine into an allow") {
  const auto policy = policy_from_yaml(R"(
version: 1
network_policies:
  git: { endpoints: [{ host: github.com, port: 443 }], binaries: [{ path: /usr/bin/git }] }
  curl: { endpoints: [{ host: example.com, port: 443 }], binaries: [{ path: /usr/bin/curl }] }
)");
  const Caller curl{"/usr/bin/curl", {}};
  const Decision decision = decide(*policy, {curl, "github.com", 443});
  CHECK(decision.verdict == Verdict::Deny);
  CHECK(decision.reason == "binary '/usr/bin/curl' not allowed in policy 'git'");
  CHECK(decide(*policy, {curl, "example.com", 443}).verdict == Verdict::Allow);
}

TEST_CASE("an endpoint allows each port listed in 'ports', and only the one in 'port'") {
  const auto policy = policy_from_yaml(R"(
version: 1
network_policies:
  web:
    endpoints:
      - { host: multi.example.com, ports: [80, 443, 8443] }
      - { host: single.example.com, port: 443 }
    binaries: [{ path: /usr/bin/curl }]
)");
  struct Row {
    const char* host;
    uint16_t port;
    Verdict want;
  };
  const Row rows[] = {
      {"multi.example.com", 80, Verdict::Allow},   {"multi.example.com", 443, Verdict::Allow},
      {"multi.example.com", 8443, Verdict::Allow}, {"multi.example.com", 8080, Verdict::Deny},
      {"single.example.com", 443, Verdict::Allow}, {"single.example.com", 80, Verdict::Deny},
  };
  const Caller curl{"/usr/bin/curl", {}};
  for (const Row& row : rows) {
    CAPTURE(row.host);
    CAPTURE(row.port);
    CHECK(decide(*policy, {curl, row.host, row.port}).verdict == row.want);
  }
}

TEST_CASE("an allow names the first allowing rule in file order, with its endpoint") {
  const auto policy = policy_from_yaml(R"(
version: 1
network_policies:
  first:
    name: first-rule
    endpoints: [{ host: a.example.com, port: 80 }, { host: api.example.com, port: 443 }]
    binaries: [{ path: /usr/bin/curl }]
  second: { endpoints: [{ host: "*.example.com", port: 443 }], binaries: [{ path: "/**" }] }
)");
  const Caller curl{"/usr/bin/curl", {}};
  const Decision decision = decide(*policy, {curl, "api.example.com", 443});
  CHECK(decision.verdict == Verdict::Allow);
  CHECK(decision.reason == "allowed by policy 'first-rule'");
  REQUIRE(decision.rule != nullptr);
  CHECK(decision.rule == &policy->rules[0]);
  CHECK(decision.endpoint == &policy->rules[0].endpoints[1]);
  CHECK(decision.rules_considered == std::vector<std::string>{"first-rule", "second"});
}

TEST_CASE("within a rule, an endpoint naming the host exactly wins over an earlier wildcard or range") {
  const auto policy = policy_from_yaml(R"(
version: 1
network_policies:
  internal:
    endpoints:
      - { host: "*.internal.test", port: 443 }
      - { allowed_ips: [10.0.0.0/8], port: 443 }
      - { host: db.internal.test, port: 443, protocol: rest, access: read-only }
      - { host: 10.1.2.3, port: 443 }
    binaries: [{ path: /usr/bin/curl }]
)");
  const Caller curl{"/usr/bin/curl", {}};
  const auto& endpoints = policy->rules[0].endpoints;
  CHECK(decide(*policy, {curl, "db.internal.test", 443}).endpoint == &endpoints[2]);
  CHECK(decide(*policy, {curl, "app.internal.test", 443}).endpoint == &endpoints[0]);
  CHECK(decide(*policy, {curl, "10.1.2.3", 443}).endpoint == &endpoints[3]);
  CHECK(decide(*policy, {curl, "10.9.9.9", 443}).endpoint == &endpoints[1]);
}

TEST_CASE("a policy without rules denies everything, saying it has no network_policies") {
  const auto policy = policy_from_yaml("version: 1\n");
  const Caller curl{"/usr/bin/curl", {}};
  const Decision decision = decide(*policy, {curl, "example.com", 443});
  CHECK(decision.verdict == Verdict::Deny);
  CHECK(decision.reason == "network connections not allowed by policy (it has no network_policies)");
  CHECK(decision.rule == nullptr);
  CHECK(decision.rules_considered.empty());
}

TEST_CASE("an endpoint no rule lists is denied naming host:port, IPv6 in brackets") {
  const auto policy = policy_from_yaml(R"(
version: 1
network_policies:
  any: { endpoints: [{ host: example.com, port: 443 }], binaries: [{ path: "/**" }] }
)");
  struct Row {
    const char* host;
    uint16_t port;
    const char* reason;
  };
  const Row rows[] = {
      {"example.org", 443, "endpoint example.org:443 is not allowed by any policy"},
      {"example.com", 80, "endpoint example.com:80 is not allowed by any policy"},
      {"10.0.0.1", 8080, "endpoint 10.0.0.1:8080 is not allowed by any policy"},
      {"::1", 443, "endpoint [::1]:443 is not allowed by any policy"},
      {"2001:db8::1", 8443, "endpoint [2001:db8::1]:8443 is not allowed by any policy"},
  };
  const Caller curl{"/usr/bin/curl", {}};
  for (const Row& row : rows) {
    CAPTURE(row.host);
    const Decision decision = decide(*policy, {curl, row.host, row.port});
    CHECK(decision.verdict == Verdict::Deny);
    CHECK(decision.reason == row.reason);
    CHECK(decision.rules_considered.empty());
  }
}

TEST_CASE("a binary mismatch names every rule whose endpoint matched, in file order") {
  const auto policy = policy_from_yaml(R"(
version: 1
network_policies:
  github: { endpoints: [{ host: github.com, port: 443 }], binaries: [{ path: /usr/bin/git }] }
  other: { endpoints: [{ host: example.com, port: 443 }], binaries: [{ path: /usr/bin/wget }] }
  copilot:
    name: copilot-cli
    endpoints: [{ host: "**.example.com", port: 8443 }, { host: github.com, port: 443 }]
    binaries: [{ path: /usr/local/bin/copilot }]
)");
  const Caller wget{"/usr/bin/wget", {}};
  const Decision decision = decide(*policy, {wget, "github.com", 443});
  CHECK(decision.verdict == Verdict::Deny);
  CHECK(decision.reason == "binary '/usr/bin/wget' not allowed in policies 'github', 'copilot-cli'");
  CHECK(decision.rules_considered == std::vector<std::string>{"github", "copilot-cli"});
}

TEST_CASE("a binary mismatch in a single rule uses the singular 'policy'") {
  const auto policy = policy_from_yaml(R"(
version: 1
network_policies:
  github: { endpoints: [{ host: github.com, port: 443 }], binaries: [{ path: /usr/bin/git }] }
)");
  const Caller wget{"/usr/bin/wget", {}};
  const Decision decision = decide(*policy, {wget, "github.com", 443});
  CHECK(decision.reason == "binary '/usr/bin/wget' not allowed in policy 'github'");
  CHECK(decision.rules_considered == std::vector<std::string>{"github"});
}

TEST_CASE("rules_considered lists the matching rules on an allow too, and excludes other ports") {
  const auto policy = policy_from_yaml(R"(
version: 1
network_policies:
  a: { endpoints: [{ host: api.example.com, port: 443 }], binaries: [{ path: /usr/bin/curl }] }
  b: { endpoints: [{ host: api.example.com, port: 80 }], binaries: [{ path: /usr/bin/curl }] }
  c: { endpoints: [{ host: "*.example.com", port: 443 }], binaries: [{ path: /usr/bin/git }] }
)");
  const Caller curl{"/usr/bin/curl", {}};
  const Decision decision = decide(*policy, {curl, "api.example.com", 443});
  CHECK(decision.verdict == Verdict::Allow);
  CHECK(decision.rules_considered == std::vector<std::string>{"a", "c"});
}

TEST_CASE("an unknown caller executable is denied, even by a rule for any binary") {
  const auto policy = policy_from_yaml(R"(
version: 1
network_policies:
  any: { endpoints: [{ host: example.com, port: 443 }], binaries: [{ path: "/**", children: true }] }
)");
  const Caller unknown{"", {"/usr/bin/bash"}};
  const Decision decision = decide(*policy, {unknown, "example.com", 443});
  CHECK(decision.verdict == Verdict::Deny);
  CHECK(decision.reason == "caller's executable is unknown");
  CHECK(decision.rules_considered == std::vector<std::string>{"any"});
}

TEST_CASE("'/**' allows any known binary") {
  const auto policy = policy_from_yaml(R"(
version: 1
network_policies:
  any: { endpoints: [{ host: example.com, port: 443 }], binaries: [{ path: "/**" }] }
)");
  for (const char* exe : {"/usr/bin/curl", "/tmp/a.out", "/opt/x/y/z"}) {
    CAPTURE(exe);
    const Caller caller{exe, {}};
    CHECK(decide(*policy, {caller, "example.com", 443}).verdict == Verdict::Allow);
  }
}

TEST_CASE("children: true also matches the caller's ancestors and children: false does not") {
  const auto policy = policy_from_yaml(R"(
version: 1
network_policies:
  git_tree:
    endpoints: [{ host: github.com, port: 443 }]
    binaries: [{ path: /usr/bin/git, children: true }]
  node_only:
    endpoints: [{ host: registry.npmjs.org, port: 443 }]
    binaries: [{ path: /usr/bin/node, children: false }]
)");
  struct Row {
    const char* exe;
    std::vector<std::string> ancestors;
    const char* host;
    Verdict want;
  };
  const Row rows[] = {
      {"/usr/lib/git-core/git-remote-https", {"/usr/bin/git", "/usr/bin/bash"}, "github.com", Verdict::Allow},
      {"/usr/lib/git-core/git-remote-https", {"/usr/bin/bash", "/usr/bin/git"}, "github.com", Verdict::Allow},
      {"/usr/lib/git-core/git-remote-https", {"/usr/bin/bash"}, "github.com", Verdict::Deny},
      {"/usr/bin/git", {}, "github.com", Verdict::Allow},
      {"/usr/bin/npm-helper", {"/usr/bin/node"}, "registry.npmjs.org", Verdict::Deny},
      {"/usr/bin/node", {"/usr/bin/bash"}, "registry.npmjs.org", Verdict::Allow},
  };
  for (const Row& row : rows) {
    CAPTURE(row.exe);
    CAPTURE(row.host);
    const Caller caller{row.exe, row.ancestors};
    CHECK(decide(*policy, {caller, row.host, 443}).verdict == row.want);
  }
}

TEST_CASE("binary_matches accepts the written path or any resolved target, and globs") {
  BinaryPattern link;
  link.path = "/usr/bin/python3";
  link.resolved = {"/usr/bin/python3.11"};
  BinaryPattern glob;
  glob.path = "/home/*/.local/bin/*";
  glob.is_glob = true;
  struct Row {
    const BinaryPattern* pattern;
    const char* exe;
    bool want;
  };
  const Row rows[] = {
      {&link, "/usr/bin/python3", true},          {&link, "/usr/bin/python3.11", true},
      {&link, "/usr/bin/python3.12", false},      {&link, "", false},
      {&glob, "/home/ann/.local/bin/tool", true}, {&glob, "/home/ann/x/.local/bin/tool", false},
  };
  for (const Row& row : rows) {
    CAPTURE(row.pattern->path);
    CAPTURE(row.exe);
    CHECK(binary_matches(*row.pattern, Caller{row.exe, {}}) == row.want);
  }
}

TEST_CASE("a symlinked binary path in the policy matches both the link and its target") {
  fixtures::ScratchDir dir;
  const std::string target = dir.write("python3.11", "#!/bin/true\n");
  const std::string link = dir.symlink("python3", target);
  const auto policy = policy_from_yaml(fixtures::yaml_for_binaries("pypi.org", 443, {link}));
  REQUIRE(policy->rules.size() == 1);
  CHECK(policy->rules[0].binaries[0].resolved == std::vector<std::string>{target});
  for (const std::string& exe : {link, target}) {
    CAPTURE(exe);
    const Caller caller{exe, {}};
    CHECK(decide(*policy, {caller, "pypi.org", 443}).verdict == Verdict::Allow);
  }
  const Caller other{dir.file("python3.12"), {}};
  CHECK(decide(*policy, {other, "pypi.org", 443}).verdict == Verdict::Deny);
}

}  // namespace
}  // namespace egressd::policy

namespace egressd::policy {
namespace {

// A would-be denial as a row shows it: audited or not, and the audit rule's name ("" for none).
struct AuditRow {
  const char* exe;
  std::vector<std::string> ancestors;
  const char* host;
  Verdict verdict;
  bool audited;
  const char* audit_rule;
};

void check_audit_rows(const Policy& policy, const std::vector<AuditRow>& rows) {
  for (const AuditRow& row : rows) {
    CAPTURE(row.exe);
    CAPTURE(row.host);
    const Caller caller{row.exe, row.ancestors};
    const Decision decision = decide(policy, {caller, row.host, 443});
    CHECK(decision.verdict == row.verdict);
    CHECK(decision.audited == row.audited);
    CHECK((decision.audit_rule != nullptr ? decision.audit_rule->name : std::string()) == row.audit_rule);
    CHECK((decision.audit_binary != nullptr) == (decision.audit_rule != nullptr));
    if (decision.audited) {  // a would-be denial: nothing says it is allowed
      CHECK(decision.rule == nullptr);
      CHECK(decision.endpoint == nullptr);
      CHECK(decision.binary == nullptr);
    }
  }
}

TEST_CASE("per-rule audit: what an audit rule's binaries would be denied is audited and attributed to it") {
  const auto policy = policy_from_yaml(R"(
version: 1
network_policies:
  github:
    endpoints: [{ host: api.github.com, port: 443 }]
    binaries: [{ path: /usr/bin/git }]
  agent:
    name: learning
    mode: audit
    endpoints: [{ host: api.anthropic.com, port: 443 }]
    binaries:
      - { path: /usr/local/bin/claude, children: true }
      - { path: /usr/bin/node, sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 }
)");
  check_audit_rows(*policy,
                   {
                       {"/usr/local/bin/claude", {}, "api.anthropic.com", Verdict::Allow, false, ""},
                       {"/usr/local/bin/claude", {}, "evil.example.com", Verdict::Deny, true, "learning"},
                       {"/usr/local/bin/claude", {}, "api.github.com", Verdict::Deny, true, "learning"},
                       {"/usr/bin/python3",
                        {"/usr/local/bin/claude"},
                        "evil.example.com",
                        Verdict::Deny,
                        true,
                        "learning"},
                       {"/usr/bin/node", {}, "evil.example.com", Verdict::Deny, true, "learning"},
                       {"/usr/bin/git", {}, "api.github.com", Verdict::Allow, false, ""},
                       {"/usr/bin/git", {}, "evil.example.com", Verdict::Deny, false, ""},
                       {"/usr/bin/git", {}, "api.anthropic.com", Verdict::Deny, false, ""},
                       {"/usr/bin/wget", {}, "evil.example.com", Verdict::Deny, false, ""},
                       {"", {"/usr/local/bin/claude"}, "evil.example.com", Verdict::Deny, false, ""},
                   });
}

TEST_CASE("an audited denial keeps the reason and rules enforce would give, and the audit rule's entry") {
  const auto policy = policy_from_yaml(R"(
version: 1
network_policies:
  github:
    endpoints: [{ host: api.github.com, port: 443 }]
    binaries: [{ path: /usr/bin/git }]
  learning:
    mode: audit
    endpoints: [{ host: api.anthropic.com, port: 443 }]
    binaries:
      - { path: /usr/local/bin/claude }
      - { path: /usr/bin/node, sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 }
)");
  const Caller node{"/usr/bin/node", {}};
  const Decision decision = decide(*policy, {node, "api.github.com", 443});
  CHECK(decision.audited);
  CHECK(decision.reason == "binary '/usr/bin/node' not allowed in policy 'github'");
  CHECK(decision.rules_considered == std::vector<std::string>{"github"});
  REQUIRE(decision.audit_rule == &policy->rules.at(1));
  CHECK(decision.audit_binary == &policy->rules.at(1).binaries.at(1));  // its sha256 pin is still checked
  const Decision elsewhere = decide(*policy, {node, "evil.example.com", 8443});
  CHECK(elsewhere.audited);
  CHECK(elsewhere.reason == "endpoint evil.example.com:8443 is not allowed by any policy");
  CHECK(elsewhere.rules_considered.empty());
}

TEST_CASE("policy-level audit: every denial is audited, except a caller only enforce rules list") {
  const auto policy = policy_from_yaml(R"(
version: 1
mode: audit
network_policies:
  github:
    mode: enforce
    endpoints: [{ host: api.github.com, port: 443 }]
    binaries: [{ path: /usr/bin/git }]
  agent:
    endpoints: [{ host: api.anthropic.com, port: 443 }]
    binaries: [{ path: /usr/local/bin/claude }]
)");
  check_audit_rows(*policy,
                   {
                       {"/usr/bin/wget", {}, "evil.example.com", Verdict::Deny, true, ""},
                       {"/usr/bin/wget", {}, "api.github.com", Verdict::Deny, true, ""},
                       {"/usr/local/bin/claude", {}, "evil.example.com", Verdict::Deny, true, "agent"},
                       {"/usr/local/bin/claude", {}, "api.anthropic.com", Verdict::Allow, false, ""},
                       {"/usr/bin/git", {}, "evil.example.com", Verdict::Deny, false, ""},
                       {"/usr/bin/git", {}, "api.anthropic.com", Verdict::Deny, false, ""},
                       {"/usr/bin/git", {}, "api.github.com", Verdict::Allow, false, ""},
                       {"", {}, "evil.example.com", Verdict::Deny, false, ""},
                   });
}

TEST_CASE(
    "a caller listed by an enforce rule and by an audit rule is audited, attributed to the audit rule") {
  const auto policy = policy_from_yaml(R"(
version: 1
network_policies:
  github:
    endpoints: [{ host: api.github.com, port: 443 }]
    binaries: [{ path: /usr/bin/git }]
  mirrors-a:
    endpoints: [{ host: mirror-a.example.com, port: 443 }]
    binaries: [{ path: "/usr/bin/*" }]
  mirrors-b:
    mode: audit
    endpoints: [{ host: mirror-b.example.com, port: 443 }]
    binaries: [{ path: /usr/bin/git }]
  mirrors-c:
    mode: audit
    endpoints: [{ host: mirror-c.example.com, port: 443 }]
    binaries: [{ path: "/**" }]
)");
  check_audit_rows(*policy, {
                                {"/usr/bin/git", {}, "evil.example.com", Verdict::Deny, true, "mirrors-b"},
                                {"/usr/bin/curl", {}, "evil.example.com", Verdict::Deny, true, "mirrors-c"},
                            });
}

TEST_CASE("policy-level audit without network_policies audits every identified caller") {
  const auto policy = policy_from_yaml("version: 1\nmode: audit\n");
  const Caller curl{"/usr/bin/curl", {}};
  const Decision decision = decide(*policy, {curl, "example.com", 443});
  CHECK(decision.verdict == Verdict::Deny);
  CHECK(decision.audited);
  CHECK(decision.audit_rule == nullptr);
  CHECK(decision.reason == "network connections not allowed by policy (it has no network_policies)");
  const Caller unknown{"", {}};
  CHECK_FALSE(decide(*policy, {unknown, "example.com", 443}).audited);
}

TEST_CASE("in enforce mode no denial is audited") {
  const auto policy = policy_from_yaml(R"(
version: 1
mode: enforce
network_policies:
  any: { endpoints: [{ host: example.com, port: 443 }], binaries: [{ path: "/**" }] }
)");
  const Caller curl{"/usr/bin/curl", {}};
  CHECK_FALSE(decide(*policy, {curl, "example.org", 443}).audited);
  CHECK_FALSE(decide(*policy_from_yaml("version: 1\n"), {curl, "example.org", 443}).audited);
}

TEST_CASE("describe_modes names the policy's mode and the rules in the other one") {
  struct Row {
    const char* yaml;
    const char* want;
  };
  const std::string rules =
      "network_policies:\n"
      "  a: { endpoints: [{ host: a.example.com, port: 443 }], binaries: [{ path: /usr/bin/a }] }\n"
      "  b: { mode: audit, endpoints: [{ host: b.example.com, port: 443 }], binaries: [{ path: /usr/bin/b }] "
      "}\n"
      "  c: { mode: enforce, endpoints: [{ host: c.example.com, port: 443 }], binaries: [{ path: /usr/bin/c "
      "}] }\n";
  const std::string all_audit =
      "network_policies:\n"
      "  a: { mode: audit, endpoints: [{ host: a.example.com, port: 443 }], binaries: [{ path: /usr/bin/a }] "
      "}\n"
      "  b: { mode: audit, endpoints: [{ host: b.example.com, port: 443 }], binaries: [{ path: /usr/bin/b }] "
      "}\n";
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"version: 1\n", "enforce"},
      {"version: 1\nmode: audit\n", "audit"},
      {"version: 1\n" + rules, "enforce (audit: rule 'b')"},
      {"version: 1\nmode: audit\n" + rules, "audit (enforce: rule 'c')"},
      {"version: 1\n" + all_audit, "enforce (audit: rules 'a', 'b')"},
  };
  for (const auto& [yaml, want] : rows) {
    CAPTURE(yaml);
    CHECK(describe_modes(*policy_from_yaml(yaml)) == want);
  }
}

}  // namespace
}  // namespace egressd::policy

namespace egressd::policy {
namespace {

// Random policies over a small vocabulary, so that hosts, patterns and binaries collide often.
struct RandomPolicy {
  std::mt19937 random;
  explicit RandomPolicy(unsigned seed) : random(seed) {}

  int below(int n) { return std::uniform_int_distribution<int>(0, n - 1)(random); }
  template <std::size_t N>
  const char* one_of(const char* const (&choices)[N]) {
    return choices[below(static_cast<int>(N))];
  }
  std::string labels(int count) {
    static const char* const kLabels[] = {"a", "b", "api", "example", "com", "org", "x-api"};
    std::string out;
    for (int i = 0; i < count; ++i) out += (i == 0 ? "" : ".") + std::string(one_of(kLabels));
    return out;
  }
  std::string host_pattern() {
    // A wildcard needs its last two labels literal.
    switch (below(9)) {
      case 0:
        return "*." + labels(2 + below(2));
      case 1:
        return "**." + labels(2 + below(2));
      case 2:
        return "*-api." + labels(2 + below(2));
      case 3:
        return labels(1) + ".*." + labels(2);
      case 4:
        return "10.0.0." + std::to_string(1 + below(2));
      case 5:
        return "2001:db8::" + std::to_string(1 + below(2));
      default:
        return labels(1 + below(3));
    }
  }
  std::string endpoint() {
    const std::string ports = one_of({"port: 443", "port: 80", "ports: [80, 443]"});
    if (below(10) == 0) return "{ " + ports + ", allowed_ips: [10.0.0.0/24] }";
    return "{ host: \"" + host_pattern() + "\", " + ports + " }";
  }
  std::string binary() {
    const std::string children = below(4) == 0 ? ", children: true" : "";
    return "{ path: \"" + std::string(one_of({"/usr/bin/a", "/usr/bin/b", "/opt/*/run", "/usr/**"})) + "\"" +
           children + " }";
  }
  std::string yaml() {
    std::string text =
        "version: 1\n" + std::string(below(3) == 0 ? "mode: audit\n" : "") + "network_policies:\n";
    const int rules = below(12);
    for (int r = 0; r < rules; ++r) {
      text += "  r" + std::to_string(r) + ":\n";
      if (below(4) == 0) text += std::string("    mode: ") + one_of({"audit", "enforce"}) + "\n";
      text += "    endpoints: [" + endpoint();
      for (int e = below(3); e > 0; --e) text += ", " + endpoint();
      text += "]\n    binaries: [" + binary();
      for (int b = below(2); b > 0; --b) text += ", " + binary();
      text += "]\n";
    }
    return text;
  }
  std::string request_host() {
    switch (below(6)) {
      case 0:
        return "10.0.0." + std::to_string(below(3));
      case 1:
        return "2001:db8::" + std::to_string(below(3));
      case 2:
        return "API." + labels(below(4));  // upper case, and sometimes "API." alone
      default:
        return labels(1 + below(4));
    }
  }
  Caller caller() {
    Caller caller;
    caller.exe = one_of({"/usr/bin/a", "/usr/bin/b", "/opt/tool/run", "/usr/local/bin/c", ""});
    if (below(2) == 0) caller.ancestors.push_back(one_of({"/usr/bin/a", "/usr/bin/b", "/bin/sh"}));
    return caller;
  }
};

std::string rule_name(const Rule* rule) {
  return rule == nullptr ? "-" : rule->name;
}

TEST_CASE(
    "the rule index never changes a decision: indexed and full-scan decide() agree on random policies") {
  RandomPolicy random(20261123);
  int allowed = 0;
  int compared = 0;
  for (int p = 0; p < 300; ++p) {
    const std::string yaml = random.yaml();
    const auto policy = policy_from_yaml(yaml);
    REQUIRE(policy->index != nullptr);
    for (int q = 0; q < 60; ++q) {
      const Caller caller = random.caller();
      const std::string host = random.request_host();
      const auto port = static_cast<uint16_t>(random.below(2) == 0 ? 443 : 80);
      const EgressRequest request{caller, host, port};
      const Decision indexed = decide(*policy, request);
      const Decision full = decide_without_index(*policy, request);
      CAPTURE(yaml);
      CAPTURE(caller.exe);
      CAPTURE(host);
      CAPTURE(port);
      REQUIRE(indexed.verdict == full.verdict);
      REQUIRE(indexed.rule == full.rule);
      REQUIRE(indexed.endpoint == full.endpoint);
      REQUIRE(indexed.binary == full.binary);
      REQUIRE(indexed.reason == full.reason);
      REQUIRE(indexed.rules_considered == full.rules_considered);
      REQUIRE(indexed.audited == full.audited);
      REQUIRE(rule_name(indexed.audit_rule) == rule_name(full.audit_rule));
      REQUIRE(indexed.audit_binary == full.audit_binary);
      allowed += indexed.verdict == Verdict::Allow;
      ++compared;
    }
  }
  // The vocabulary is small enough that both verdicts are common; a generator that only denies proves little.
  CHECK(allowed > compared / 20);
  CHECK(allowed < compared - compared / 20);
}

TEST_CASE("the rule index files each host shape where decide() looks for it") {
  const auto policy = policy_from_yaml(R"(
version: 1
network_policies:
  exact: { endpoints: [{ host: API.Example.com, port: 443 }], binaries: [{ path: /usr/bin/a }] }
  one: { endpoints: [{ host: "*.example.com", port: 443 }], binaries: [{ path: /usr/bin/a }] }
  many: { endpoints: [{ host: "**.example.com", port: 443 }], binaries: [{ path: /usr/bin/a }] }
  glob: { endpoints: [{ host: "*-api.example.com", port: 443 }], binaries: [{ path: /usr/bin/a }] }
  ips: { endpoints: [{ port: 443, allowed_ips: [10.0.0.0/8] }], binaries: [{ path: /usr/bin/a }] }
  audited: { mode: audit, endpoints: [{ host: "10.1.2.3", port: 80 }], binaries: [{ path: /usr/bin/a }] }
)");
  REQUIRE(policy->index != nullptr);
  const RuleIndex& index = *policy->index;
  CHECK(index.rule_count == 6);
  CHECK(index.exact_host.at("api.example.com") == std::vector<uint32_t>{0});
  CHECK(index.one_label.at("example.com") == std::vector<uint32_t>{1});
  CHECK(index.any_labels.at("example.com") == std::vector<uint32_t>{2});
  CHECK(index.any_host == std::vector<uint32_t>{3, 4});
  CHECK(index.exact_host.at("10.1.2.3") == std::vector<uint32_t>{5});
  CHECK(index.audit_rules == std::vector<uint32_t>{5});
  const Caller caller{"/usr/bin/a", {}};
  CHECK(decide(*policy, {caller, "api.example.com", 443}).rules_considered ==
        std::vector<std::string>{"exact", "one", "many"});
  CHECK(decide(*policy, {caller, "x.y.example.com", 443}).rules_considered ==
        std::vector<std::string>{"many"});
}

}  // namespace
}  // namespace egressd::policy

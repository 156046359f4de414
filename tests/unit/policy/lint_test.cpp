#include "policy/lint.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "tests/unit/policy/policy_fixtures.h"

namespace egressd::policy {
namespace {

using fixtures::policy_from_yaml;
using fixtures::ScratchDir;

// The findings of lint_rules() for `yaml`, as "line:col level message" lines for CAPTURE.
std::vector<LintFinding> rule_findings(std::string_view yaml) {
  return lint_rules(*policy_from_yaml(yaml));
}

std::string all_text(const std::vector<LintFinding>& findings) {
  std::string out;
  for (const LintFinding& finding : findings) out += format_finding(finding) + "\n";
  return out;
}

// The one finding at line:col; the test fails when there is none or more than one.
LintFinding finding_at(const std::vector<LintFinding>& findings, int line, int col) {
  std::vector<LintFinding> found;
  for (const LintFinding& finding : findings) {
    if (finding.where.line == line && finding.where.col == col) found.push_back(finding);
  }
  INFO(all_text(findings));
  REQUIRE(found.size() == 1);
  return found.front();
}

bool mentions(const LintFinding& finding, std::string_view text) {
  return finding.message.find(text) != std::string::npos;
}

TEST_CASE("lint: the same host and port twice in one rule is a duplicate naming the first") {
  const auto findings = rule_findings(R"(version: 1
network_policies:
  r:
    endpoints:
      - { host: api.example.com, ports: [80, 443] }
      - { host: API.example.com, ports: [443, 8443] }
    binaries: [{ path: /usr/bin/curl }]
)");
  INFO(all_text(findings));
  REQUIRE(findings.size() == 1);
  const LintFinding finding = finding_at(findings, 6, 9);
  CHECK(finding.level == LintLevel::Warning);
  CHECK(mentions(finding, "duplicate endpoint api.example.com:443 in rule 'r' (first at 5:9)"));
  CHECK_FALSE(mentions(finding, "8443"));  // that port is this endpoint's alone
}

TEST_CASE(
    "lint: a wildcard endpoint after a broader one in its rule can never match, but the other order can") {
  const auto shadowed = rule_findings(R"(version: 1
network_policies:
  r:
    endpoints:
      - { host: "**.example.com", port: 443 }
      - { host: "*.example.com", port: 443, protocol: rest, access: read-only }
    binaries: [{ path: /usr/bin/curl }]
)");
  const LintFinding finding = finding_at(shadowed, 6, 9);
  CHECK(mentions(finding, "*.example.com:443 can never match"));
  CHECK(mentions(finding, "**.example.com:443 at 5:9"));

  // '*.' first: it wins for one label, '**.' still takes deeper names.
  CHECK(rule_findings(R"(version: 1
network_policies:
  r:
    endpoints:
      - { host: "*.example.com", port: 443 }
      - { host: "**.example.com", port: 443 }
    binaries: [{ path: /usr/bin/curl }]
)")
            .empty());
}

TEST_CASE("lint: an exact host after a wildcard that matches it is not shadowed (exact hosts win)") {
  CHECK(rule_findings(R"(version: 1
network_policies:
  r:
    endpoints:
      - { host: "*.example.com", port: 443 }
      - { host: api.example.com, port: 443, protocol: rest, access: read-only }
    binaries: [{ path: /usr/bin/curl }]
)")
            .empty());
}

TEST_CASE("lint: a hostless endpoint inside an earlier one's ranges can never match") {
  const auto findings = rule_findings(R"(version: 1
network_policies:
  r:
    endpoints:
      - { allowed_ips: [10.0.0.0/8], port: 8080 }
      - { allowed_ips: [10.1.0.0/16], port: 8080 }
      - { allowed_ips: [192.168.0.0/16], port: 8080 }
    binaries: [{ path: /usr/bin/curl }]
)");
  INFO(all_text(findings));
  REQUIRE(findings.size() == 1);
  CHECK(mentions(finding_at(findings, 6, 9), "can never match"));
}

TEST_CASE("lint: an endpoint in two rules is a warning when a binary is in both, a note when none is") {
  const auto shared = rule_findings(R"(version: 1
network_policies:
  a:
    endpoints: [{ host: api.example.com, port: 443 }]
    binaries: [{ path: /usr/bin/curl }]
  b:
    endpoints: [{ host: api.example.com, port: 443, protocol: rest, access: read-only }]
    binaries: [{ path: /usr/bin/wget }, { path: "/usr/bin/*" }]
)");
  const LintFinding warning = finding_at(shared, 7, 17);
  CHECK(warning.level == LintLevel::Warning);
  CHECK(mentions(warning, "also listed by rule 'a' at 4:17"));
  CHECK(mentions(warning, "/usr/bin/curl"));

  const auto apart = rule_findings(R"(version: 1
network_policies:
  a:
    endpoints: [{ host: api.example.com, port: 443 }]
    binaries: [{ path: /usr/bin/curl }]
  b:
    endpoints: [{ host: api.example.com, port: 443 }]
    binaries: [{ path: /usr/bin/wget }, { path: "/opt/*/bin/tool" }]
)");
  const LintFinding note = finding_at(apart, 7, 17);
  CHECK(note.level == LintLevel::Note);
  CHECK(mentions(note, "also listed by rule 'a' at 4:17"));
}

TEST_CASE(
    "lint: an IP-literal host egressd never dials, or outside its own allowed_ips, can never be reached") {
  const auto findings = rule_findings(R"(version: 1
network_policies:
  r:
    endpoints:
      - { host: 169.254.169.254, port: 80 }
      - { host: 224.0.0.1, port: 80 }
      - { host: 10.1.2.3, port: 80, allowed_ips: [192.168.0.0/16] }
      - { host: 10.1.2.3, port: 81, allowed_ips: [10.0.0.0/8] }
      - { host: 127.0.0.1, port: 80 }
    binaries: [{ path: /usr/bin/curl }]
)");
  INFO(all_text(findings));
  CHECK(findings.size() == 3);
  CHECK(mentions(finding_at(findings, 5, 9), "cloud metadata service"));
  CHECK(mentions(finding_at(findings, 6, 9), "never connects to"));
  CHECK(mentions(finding_at(findings, 7, 9), "outside its own allowed_ips (192.168.0.0/16)"));
}

TEST_CASE("lint: HTTP rules for CONNECT or a method the parser refuses can never match") {
  const auto findings = rule_findings(R"(version: 1
network_policies:
  r:
    endpoints:
      - host: api.example.com
        port: 443
        protocol: rest
        rules:
          - allow: { method: CONNECT, path: /x }
          - allow: { method: FROB, path: /x }
          - allow: { method: m-search, path: /x }
          - allow: { method: "*", path: /x }
        deny_rules:
          - { method: BREW, path: /x }
    binaries: [{ path: /usr/bin/curl }]
)");
  INFO(all_text(findings));
  CHECK(findings.size() == 3);
  CHECK(mentions(finding_at(findings, 9, 20), "a CONNECT is decided per connection"));
  CHECK(mentions(finding_at(findings, 10, 20), "refuses the method 'FROB'"));
  CHECK(mentions(finding_at(findings, 14, 13), "so it refuses nothing"));
}

TEST_CASE("lint: a method reaches HTTP rules when llhttp's request parser knows it, CONNECT aside") {
  for (const char* method :
       {"GET", "HEAD", "POST", "DELETE", "PATCH", "OPTIONS", "PROPFIND", "M-SEARCH", "SOURCE"}) {
    CAPTURE(method);
    CHECK(http_method_reaches_rules(method));
  }
  for (const char* method : {"CONNECT", "FROB", "get", "DESCRIBE", "QUERY", ""}) {
    CAPTURE(method);
    CHECK_FALSE(http_method_reaches_rules(method));
  }
}

TEST_CASE("lint: a path glob no normalized request path has is named with the reason") {
  struct Row {
    const char* glob;
    const char* reason;  // empty: some path matches
  };
  const Row rows[] = {
      {"/repos/**", ""},
      {"/a/*/b", ""},
      {"/%2A", ""},  // kept as an escape, upper case
      {"/a;v=1", ""},
      {"/.well-known/x", ""},
      {"/a/*.", ""},
      {"/a/%*", ""},  // the wildcard may complete the escape
      {"**", ""},
      {"", ""},
      {"/a//b", "empty segment"},
      {"/a/../b", "dot-segment"},
      {"/a/.", "dot-segment"},
      {"/a/..;x/b", "dot-segment"},
      {"/a/;x", "only parameters"},
      {"/%41bc", "decodes to 'A'"},
      {"/%7euser", "decodes to '~'"},
      {"/a%2fb", "refuses"},
      {"/a%2Fb", "refuses"},
      {"/a%5Cb", "refuses"},
      {"/%2a", "upper case (%2A)"},
      {"/%zz", "invalid escape"},
      {"/a%", "incomplete"},
      {"/a b", "space"},
      {"/a?b=1", "'?'"},
      {"/a#b", "'#'"},
      {"/a\\b", "backslash"},
      {"/\xc3\xa9", "non-ASCII"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.glob);
    const std::optional<std::string> reason = path_glob_never_matches(row.glob);
    if (*row.reason == '\0') {
      CHECK_FALSE(reason.has_value());
    } else {
      REQUIRE(reason.has_value());
      CHECK(reason->find(row.reason) != std::string::npos);
    }
  }
}

TEST_CASE("lint: an L7 rule with a path that never occurs is reported at the rule") {
  const auto findings = rule_findings(R"(version: 1
network_policies:
  r:
    endpoints:
      - host: api.example.com
        port: 443
        protocol: rest
        rules:
          - allow: { method: GET, path: "/files/../secret" }
          - allow: { method: GET, path: "/files/**" }
    binaries: [{ path: /usr/bin/curl }]
)");
  INFO(all_text(findings));
  REQUIRE(findings.size() == 1);
  CHECK(mentions(finding_at(findings, 9, 20), "dot-segment"));
}

TEST_CASE(
    "lint: an allow rule a deny rule always refuses can never allow, and a deny-everything rule is said "
    "once") {
  const auto covered = rule_findings(R"(version: 1
network_policies:
  r:
    endpoints:
      - host: api.example.com
        port: 443
        protocol: rest
        rules:
          - allow: { method: DELETE, path: "/repos/x" }
          - allow: { method: GET, path: "/repos/x" }
          - allow: { method: POST, path: "/repos/x", query: { a: "1" } }
        deny_rules:
          - { method: DELETE, path: "**" }
          - { method: POST, path: "/repos/x", query: { b: "2" } }
    binaries: [{ path: /usr/bin/curl }]
)");
  INFO(all_text(covered));
  REQUIRE(covered.size() == 1);
  CHECK(mentions(finding_at(covered, 9, 20), "deny_rules[0] DELETE (any path) at 13:13"));

  const auto everything = rule_findings(R"(version: 1
network_policies:
  r:
    endpoints:
      - host: api.example.com
        port: 443
        protocol: rest
        rules:
          - allow: { method: GET, path: "/a" }
          - allow: { method: GET, path: "/b" }
        deny_rules:
          - { method: "*" }
    binaries: [{ path: /usr/bin/curl }]
)");
  INFO(all_text(everything));
  REQUIRE(everything.size() == 1);
  CHECK(mentions(finding_at(everything, 12, 13), "refuses every request to api.example.com:443"));
}

TEST_CASE("lint: protocol rest with tls skip says HTTPS through it is refused") {
  const auto findings = rule_findings(R"(version: 1
network_policies:
  r:
    endpoints:
      - { host: api.example.com, port: 443, protocol: rest, tls: skip, access: read-only }
      - { host: api.example.com, port: 80, protocol: rest, access: read-only }
    binaries: [{ path: /usr/bin/curl }]
)");
  INFO(all_text(findings));
  REQUIRE(findings.size() == 1);
  CHECK(mentions(finding_at(findings, 5, 9), "refuses HTTPS through this endpoint"));
}

TEST_CASE("lint: a duplicate allow rule and a port listed twice are reported") {
  const auto findings = rule_findings(R"(version: 1
network_policies:
  r:
    endpoints:
      - host: api.example.com
        ports: [443, 443]
        protocol: rest
        rules:
          - allow: { method: get, path: "/a" }
          - allow: { method: GET, path: "/a" }
    binaries: [{ path: /usr/bin/curl }]
)");
  INFO(all_text(findings));
  REQUIRE(findings.size() == 2);
  CHECK(mentions(finding_at(findings, 5, 9), "port 443 is listed twice"));
  CHECK(mentions(finding_at(findings, 10, 20), "duplicate allow rule GET /a (first at 9:20)"));
}

TEST_CASE(
    "lint: a binary entry an earlier entry always wins over never decides, and its pin is never checked") {
  const std::string pin(64, 'a');
  const auto findings = rule_findings(R"(version: 1
network_policies:
  r:
    endpoints: [{ host: api.example.com, port: 443 }]
    binaries:
      - { path: "/usr/bin/*" }
      - { path: /usr/bin/curl, sha256: )" +
                                      pin + R"( }
      - { path: /usr/local/bin/tool, children: true }
      - { path: /usr/local/bin/tool }
      - { path: /opt/x, children: true }
)");
  INFO(all_text(findings));
  REQUIRE(findings.size() == 2);
  const LintFinding pinned = finding_at(findings, 7, 9);
  CHECK(mentions(pinned, "'/usr/bin/*' at 6:9"));
  CHECK(mentions(pinned, "sha256 pin is never checked"));
  CHECK(mentions(finding_at(findings, 9, 9), "'/usr/local/bin/tool' at 8:9"));
}

TEST_CASE("lint: the example policy and the valid test policies have nothing that can never match") {
  const std::string paths[] = {
      std::string(EGRESSD_SOURCE_DIR) + "/policies/example.yaml",
      fixtures::data_path("valid/l7_endpoints.yaml"), fixtures::data_path("valid/redirects.yaml"),
      fixtures::data_path("valid/wildcards.yaml"), fixtures::data_path("valid/openshell_quickstart.yaml")};
  for (const std::string& path : paths) {
    CAPTURE(path);
    auto loaded = load_policy_file(path);
    REQUIRE(loaded.has_value());
    const auto findings = lint_rules(**loaded);
    INFO(all_text(findings));
    CHECK(findings.empty());
  }
  // OpenShell's own fixture gives github.com:443 to git in one rule and to copilot's binaries in another.
  auto fixture = load_policy_file(fixtures::data_path("valid/openshell_fixture.yaml"));
  REQUIRE(fixture.has_value());
  const auto findings = lint_rules(**fixture);
  INFO(all_text(findings));
  REQUIRE(findings.size() == 1);
  CHECK(finding_at(findings, 63, 9).level == LintLevel::Note);
}

TEST_CASE(
    "lint: a missing binary is a note beside one that exists, a warning when it is the rule's only hope") {
  const auto findings = lint_binaries_on_host(*policy_from_yaml(R"(version: 1
network_policies:
  shared:
    endpoints: [{ host: api.example.com, port: 443 }]
    binaries:
      - { path: /bin/sh }
      - { path: /nonexistent-egressd-lint/bin/tool }
      - { path: "/nonexistent-egressd-lint/*/bin/tool" }
  alone:
    endpoints: [{ host: api.example.com, port: 443 }]
    binaries:
      - { path: /nonexistent-egressd-lint/bin/other }
)"));
  INFO(all_text(findings));
  REQUIRE(findings.size() == 3);
  const LintFinding missing = finding_at(findings, 7, 9);
  CHECK(missing.level == LintLevel::Note);
  CHECK(mentions(missing, "does not exist on this host"));
  const LintFinding glob = finding_at(findings, 8, 9);
  CHECK(glob.level == LintLevel::Note);
  CHECK(mentions(glob, "needs the directory /nonexistent-egressd-lint"));
  const LintFinding alone = finding_at(findings, 12, 9);
  CHECK(alone.level == LintLevel::Warning);
  CHECK(mentions(alone, "no binary of rule 'alone' exists here"));
}

TEST_CASE("lint: a missing binary anyone could create, one not executable, and a directory are warnings") {
  const ScratchDir dir;
  const std::string open_dir = dir.file("open");
  std::filesystem::create_directory(open_dir);
  REQUIRE(::chmod(open_dir.c_str(), 0777) == 0);
  const std::string plain = dir.write("plain", "not a program\n");
  REQUIRE(::chmod(plain.c_str(), 0644) == 0);
  const std::string program = dir.write("program", "#!/bin/sh\n");
  REQUIRE(::chmod(program.c_str(), 0755) == 0);
  const auto findings = lint_binaries_on_host(*policy_from_yaml(
      fixtures::yaml_for_binaries("api.example.com", 443, {program, open_dir + "/tool", plain, dir.path()})));
  INFO(all_text(findings));
  REQUIRE(findings.size() == 3);
  for (const LintFinding& finding : findings) CHECK(finding.level == LintLevel::Warning);
  CHECK(mentions(finding_at(findings, 7, 9), "is writable by everyone"));
  CHECK(mentions(finding_at(findings, 8, 9), "is not executable (mode 0644)"));
  CHECK(mentions(finding_at(findings, 9, 9), "is a directory"));
}

TEST_CASE("lint: a symlinked policy path names its target, and a ConfigMap ..data link is only a note") {
  const ScratchDir dir;
  const std::string real = dir.write("real.yaml", "version: 1\n");
  CHECK_FALSE(lint_policy_path(real).has_value());

  const std::string link = dir.symlink("policy.yaml", real);
  const std::optional<LintFinding> warning = lint_policy_path(link);
  REQUIRE(warning.has_value());
  CHECK(warning->level == LintLevel::Warning);
  CHECK(warning->where.file == link);
  CHECK(mentions(*warning, "resolves to " + real));

  std::filesystem::create_directory(dir.file("..2026_v1"));
  dir.write("..2026_v1/policy.yaml", "version: 1\n");
  dir.symlink("..data", "..2026_v1");
  const std::string mounted = dir.symlink("mounted.yaml", "..data/policy.yaml");
  const std::optional<LintFinding> note = lint_policy_path(mounted);
  REQUIRE(note.has_value());
  CHECK(note->level == LintLevel::Note);
  CHECK(mentions(*note, "Kubernetes ConfigMap"));
  CHECK(mentions(*note, dir.file("..2026_v1/policy.yaml")));
}

TEST_CASE("lint: findings are formatted FILE:LINE:COL: level: message") {
  CHECK(format_finding({LintLevel::Warning, {"p.yaml", 3, 7}, "m"}) == "p.yaml:3:7: warning: m");
  CHECK(format_finding({LintLevel::Note, {"p.yaml", 0, 0}, "m"}) == "p.yaml: note: m");
}

}  // namespace
}  // namespace egressd::policy

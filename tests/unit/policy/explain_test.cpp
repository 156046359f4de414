#include "policy/explain.h"

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/destination.h"
#include "policy/http_matcher.h"
#include "tests/unit/policy/policy_fixtures.h"

namespace egressd::policy {
namespace {

using fixtures::policy_from_yaml;

constexpr std::string_view kPolicy = R"(version: 1
network_policies:
  github:
    endpoints:
      - { host: github.com, port: 443 }
      - { host: "*.github.com", ports: [443, 8443] }
    binaries:
      - { path: /usr/bin/git }
      - { path: /usr/bin/make, children: true }
  api:
    endpoints:
      - host: api.example.com
        port: 443
        protocol: rest
        rules:
          - allow: { method: GET, path: "/repos/**" }
          - allow: { method: POST, path: "/search", query: { q: "x*" } }
        deny_rules:
          - { method: GET, path: "/repos/*/secrets/**" }
      - { host: 10.1.2.3, port: 8080 }
      - { host: 169.254.169.254, port: 80 }
      - { host: internal.example.com, port: 443, allowed_ips: [10.0.0.0/8] }
      - { allowed_ips: [192.168.0.0/16], port: 9000 }
    binaries:
      - { path: /usr/bin/curl }
)";

ExplainQuery query(std::string exe, std::string host, uint16_t port) {
  ExplainQuery q;
  q.caller.exe = std::move(exe);
  q.host = std::move(host);
  q.port = port;
  return q;
}

ExplainQuery request(std::string exe, std::string host, uint16_t port, std::string method, std::string path,
                     std::string query_text = {}) {
  ExplainQuery q = query(std::move(exe), std::move(host), port);
  q.method = std::move(method);
  q.path = std::move(path);
  q.query = std::move(query_text);
  return q;
}

std::string notes_text(const Explanation& e) {
  std::string out = "reason: " + e.reason + "\n";
  for (const NearRule& near : e.nearest) {
    out += near.rule->name + ":\n";
    for (const std::string& why : near.why_not) out += "  " + why + "\n";
  }
  for (const std::string& note : e.http_notes) out += "http: " + note + "\n";
  for (const std::string& fact : e.facts) out += "fact: " + fact + "\n";
  return out;
}

bool any_contains(const std::vector<std::string>& texts, std::string_view needle) {
  for (const std::string& text : texts) {
    if (text.find(needle) != std::string::npos) return true;
  }
  return false;
}

TEST_CASE(
    "explain: its verdict is decide()'s, then decide_http()'s, for every binary, host, port and request") {
  const auto policy = policy_from_yaml(kPolicy);
  const char* binaries[] = {"/usr/bin/git", "/usr/bin/curl", "/usr/bin/make", "/tmp/git", ""};
  const char* hosts[] = {"github.com",      "api.github.com", "a.b.github.com",
                         "api.example.com", "example.com",    "internal.example.com"};
  const uint16_t ports[] = {443, 8443, 80};
  struct Http {
    const char* method;
    const char* path;
    const char* query;
  };
  const Http requests[] = {{"GET", "/repos/a/b", ""},    {"GET", "/repos/a/secrets/x", ""},
                           {"POST", "/search", "q=xyz"}, {"POST", "/search", "q=abc"},
                           {"DELETE", "/repos/a", ""},   {"GET", "/repos/../etc", ""},
                           {"HEAD", "/repos/%61/b", ""}};
  for (const char* exe : binaries) {
    for (const char* host : hosts) {
      for (const uint16_t port : ports) {
        CAPTURE(exe);
        CAPTURE(host);
        CAPTURE(port);
        const Caller caller{exe, {}};
        const Decision decision = decide(*policy, {caller, host, port});
        const Explanation connection = explain(*policy, query(exe, host, port));
        CHECK(connection.verdict == decision.verdict);
        CHECK(connection.reason == decision.reason);
        for (const Http& http : requests) {
          CAPTURE(http.method);
          CAPTURE(http.path);
          const Explanation e =
              explain(*policy, request(exe, host, port, http.method, http.path, http.query));
          if (decision.verdict == Verdict::Deny) {
            CHECK(e.verdict == Verdict::Deny);
            continue;
          }
          const HttpDecision want = decide_http(*decision.rule, *decision.endpoint, host, port,
                                                {http.method, http.path, http.query});
          CHECK(e.verdict == want.verdict);
          CHECK(e.reason == want.reason);
          CHECK(e.http_rule == want.rule);
        }
      }
    }
  }
}

TEST_CASE("explain: an allow names the rule, the endpoint and the binary entry where they stand") {
  const auto policy = policy_from_yaml(kPolicy);
  const Explanation e = explain(*policy, query("/usr/bin/git", "api.github.com", 8443));
  CHECK(e.verdict == Verdict::Allow);
  REQUIRE(e.rule != nullptr);
  CHECK(e.rule->name == "github");
  REQUIRE(e.endpoint != nullptr);
  CHECK(e.endpoint->where.line == 6);
  REQUIRE(e.binary != nullptr);
  CHECK(e.binary->where.line == 8);
  CHECK(e.nearest.empty());
}

TEST_CASE("explain: a denial names the rule listing the binary and host, and that only the port differs") {
  const auto policy = policy_from_yaml(kPolicy);
  const Explanation e = explain(*policy, query("/usr/bin/git", "github.com", 80));
  INFO(notes_text(e));
  CHECK(e.verdict == Verdict::Deny);
  CHECK(e.stage == ExplainStage::Policy);
  REQUIRE_FALSE(e.nearest.empty());
  CHECK(e.nearest.front().rule->name == "github");
  CHECK(e.nearest.front().lists_binary);
  CHECK(e.nearest.front().lists_host);
  CHECK(any_contains(e.nearest.front().why_not,
                     "port 80 differs: for host github.com it lists github.com:443 (5:9)"));
}

TEST_CASE("explain: a denial of an unlisted binary names the rule for the host, and a same-named binary") {
  const auto policy = policy_from_yaml(kPolicy);
  const Explanation e = explain(*policy, query("/tmp/git", "github.com", 443));
  INFO(notes_text(e));
  REQUIRE(e.nearest.size() == 1);
  CHECK(e.nearest.front().rule->name == "github");
  CHECK(any_contains(e.nearest.front().why_not, "binary '/tmp/git' is not listed"));
  CHECK(any_contains(e.nearest.front().why_not, "'/usr/bin/git' at 8:9 has the same name in another place"));
}

TEST_CASE("explain: a listed ancestor without children: true is pointed out") {
  const auto policy = policy_from_yaml(kPolicy);
  ExplainQuery q = query("/usr/bin/cc", "api.example.com", 443);
  q.caller.ancestors = {"/usr/bin/curl"};
  const Explanation e = explain(*policy, q);
  INFO(notes_text(e));
  REQUIRE_FALSE(e.nearest.empty());
  CHECK(any_contains(e.nearest.front().why_not, "its ancestor /usr/bin/curl matches '/usr/bin/curl'"));

  // With children: true, a listed ancestor is enough.
  CHECK(explain(*policy, query("/usr/bin/cc", "github.com", 443)).verdict == Verdict::Deny);
  ExplainQuery child = query("/usr/bin/cc", "github.com", 443);
  child.caller.ancestors = {"/usr/bin/make"};
  CHECK(explain(*policy, child).verdict == Verdict::Allow);
}

TEST_CASE("explain: wildcards that miss the bare domain or deeper names say so") {
  const auto policy = policy_from_yaml(R"(version: 1
network_policies:
  r:
    endpoints:
      - { host: "*.example.com", port: 443 }
    binaries: [{ path: /usr/bin/curl }]
)");
  const Explanation bare = explain(*policy, query("/usr/bin/curl", "example.com", 443));
  INFO(notes_text(bare));
  REQUIRE(bare.nearest.size() == 1);
  CHECK(any_contains(bare.nearest.front().why_not, "does not match the bare domain example.com"));
  const Explanation deep = explain(*policy, query("/usr/bin/curl", "a.b.example.com", 443));
  INFO(notes_text(deep));
  REQUIRE(deep.nearest.size() == 1);
  CHECK(any_contains(deep.nearest.front().why_not, "'**.example.com' matches any number"));
  const Explanation ip = explain(*policy, query("/usr/bin/curl", "10.0.0.1", 443));
  CHECK(any_contains(ip.nearest.front().why_not, "a wildcard never matches an IP literal"));
}

TEST_CASE("explain: an HTTP denial says which rule refused and why each allow rule did not match") {
  const auto policy = policy_from_yaml(kPolicy);
  const Explanation e =
      explain(*policy, request("/usr/bin/curl", "api.example.com", 443, "POST", "/repos/a"));
  INFO(notes_text(e));
  CHECK(e.verdict == Verdict::Deny);
  CHECK(e.stage == ExplainStage::HttpRules);
  CHECK(e.http_rule == "no allow rule matched");
  REQUIRE(e.rule != nullptr);
  CHECK(e.rule->name == "api");
  CHECK(any_contains(e.http_notes, "allow GET /repos/** (16:20): the method differs"));
  CHECK(any_contains(e.http_notes, "allow POST /search?q=x* (17:20): the path differs"));

  const Explanation query_only =
      explain(*policy, request("/usr/bin/curl", "api.example.com", 443, "POST", "/search", "q=abc"));
  INFO(notes_text(query_only));
  CHECK(any_contains(query_only.http_notes,
                     "allow POST /search?q=x* (17:20): the method and path match, the query"));
}

TEST_CASE("explain: a matching deny rule is named with its place, and so is the allow rule that allowed") {
  const auto policy = policy_from_yaml(kPolicy);
  const Explanation denied =
      explain(*policy, request("/usr/bin/curl", "api.example.com", 443, "GET", "/repos/a/secrets/k"));
  INFO(notes_text(denied));
  CHECK(denied.verdict == Verdict::Deny);
  REQUIRE(denied.http_rule_where.has_value());
  CHECK(denied.http_rule_where->line == 19);
  CHECK(any_contains(denied.http_notes, "deny_rules[0] GET /repos/*/secrets/** (19:13) matches"));

  const Explanation allowed =
      explain(*policy, request("/usr/bin/curl", "api.example.com", 443, "GET", "/repos/a"));
  CHECK(allowed.verdict == Verdict::Allow);
  REQUIRE(allowed.http_rule_where.has_value());
  CHECK(allowed.http_rule_where->line == 16);
}

TEST_CASE("explain: an IP-literal host is judged by destination safety as the proxy would") {
  const auto policy = policy_from_yaml(kPolicy);
  const Explanation metadata = explain(*policy, query("/usr/bin/curl", "169.254.169.254", 80));
  INFO(notes_text(metadata));
  CHECK(metadata.verdict == Verdict::Deny);
  CHECK(metadata.stage == ExplainStage::Destination);
  CHECK(any_contains(metadata.facts, "egressd never connects there, whatever the policy says"));

  const Explanation named = explain(*policy, query("/usr/bin/curl", "10.1.2.3", 8080));
  CHECK(named.verdict == Verdict::Allow);
  CHECK(any_contains(named.facts, "10.1.2.3 is private"));

  const Explanation range = explain(*policy, query("/usr/bin/curl", "192.168.7.7", 9000));
  CHECK(range.verdict == Verdict::Allow);
  const Explanation outside = explain(*policy, query("/usr/bin/curl", "192.169.7.7", 9000));
  CHECK(outside.verdict == Verdict::Deny);

  const Explanation name = explain(*policy, query("/usr/bin/curl", "internal.example.com", 443));
  CHECK(name.verdict == Verdict::Allow);
  CHECK(any_contains(name.facts, "must lie in the allowed_ips [10.0.0.0/8]"));
}

TEST_CASE(
    "explain: a pinned binary is denied for another digest, allowed for its own, unchecked without one") {
  const std::string pin(64, 'b');
  const auto policy = policy_from_yaml(R"(version: 1
network_policies:
  r:
    endpoints: [{ host: api.example.com, port: 443 }]
    binaries: [{ path: /usr/bin/curl, sha256: )" +
                                       pin + R"( }]
)");
  ExplainQuery q = query("/usr/bin/curl", "api.example.com", 443);
  const Explanation unknown = explain(*policy, q);
  CHECK(unknown.verdict == Verdict::Allow);
  CHECK(any_contains(unknown.facts, "not checked here"));

  q.exe_sha256 = std::string(64, 'c');
  const Explanation other = explain(*policy, q);
  CHECK(other.verdict == Verdict::Deny);
  CHECK(other.stage == ExplainStage::Pin);
  CHECK(other.reason == "binary '/usr/bin/curl' has sha256 " + std::string(64, 'c') +
                            ", but policy 'r' pins sha256 " + pin + " (test.yaml:5)");

  q.exe_sha256 = pin;
  CHECK(explain(*policy, q).verdict == Verdict::Allow);
}

TEST_CASE("explain: enforcement audit lets a refused request through and says it would be denied") {
  const auto policy = policy_from_yaml(R"(version: 1
network_policies:
  r:
    endpoints:
      - { host: api.example.com, port: 443, protocol: rest, enforcement: audit, access: read-only }
    binaries: [{ path: /usr/bin/curl }]
)");
  const Explanation e = explain(*policy, request("/usr/bin/curl", "api.example.com", 443, "DELETE", "/x"));
  CHECK(e.verdict == Verdict::Allow);
  CHECK(e.audited);
  CHECK(e.stage == ExplainStage::HttpRules);
  CHECK(e.reason.find("is not allowed") != std::string::npos);
}

TEST_CASE("explain: a policy in audit mode lets an unlisted binary through, saying what enforce would do") {
  const auto policy = policy_from_yaml(R"(version: 1
mode: audit
network_policies:
  r:
    endpoints: [{ host: a.example.com, port: 443 }, { host: 10.0.0.1, port: 443 }]
    binaries: [{ path: /usr/bin/curl }]
)");
  const Explanation e = explain(*policy, query("/usr/bin/wget", "a.example.com", 443));
  INFO(notes_text(e));
  CHECK(e.verdict == Verdict::Allow);
  CHECK(e.audited);
  CHECK(e.stage == ExplainStage::Policy);
  CHECK(e.reason == "binary '/usr/bin/wget' not allowed in policy 'r'");
  CHECK(e.endpoint == nullptr);
  CHECK(
      any_contains(e.facts, "must resolve to public addresses only (audit lets it by without an endpoint)"));
  // What audit lets by is dialled as a wildcard's would be: a private address stays refused.
  const Explanation private_ip = explain(*policy, query("/usr/bin/wget", "10.0.0.1", 443));
  CHECK(private_ip.verdict == Verdict::Deny);
  CHECK(private_ip.stage == ExplainStage::Destination);
  CHECK(explain(*policy, query("/usr/bin/curl", "10.0.0.1", 443)).verdict == Verdict::Allow);
}

TEST_CASE("explain: rest with tls skip, and a connection to a rest endpoint, are explained") {
  const auto policy = policy_from_yaml(R"(version: 1
network_policies:
  r:
    endpoints:
      - { host: api.example.com, port: 443, protocol: rest, tls: skip, access: read-only }
    binaries: [{ path: /usr/bin/curl }]
)");
  const Explanation e = explain(*policy, query("/usr/bin/curl", "api.example.com", 443));
  CHECK(e.verdict == Verdict::Allow);
  CHECK(any_contains(e.facts, "a TLS stream through it is refused"));
  CHECK(any_contains(e.facts, "--method and --path explain one"));
}

}  // namespace
}  // namespace egressd::policy

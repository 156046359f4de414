#include "policy/suggest.h"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/denial.h"
#include "policy/explain.h"
#include "policy/json_value.h"
#include "tests/unit/policy/policy_fixtures.h"

namespace egressd::policy {
namespace {

using fixtures::policy_from_yaml;

// One deny-log line as egressd writes it (fields it always has), plus `extra` members.
std::string deny_line(const std::string& binary, const std::string& host, int port, const std::string& reason,
                      const std::string& extra = {}, const std::string& method = "CONNECT",
                      const std::string& event = "deny") {
  return R"({"time":"2026-01-01T00:00:00.000Z","event":")" + event +
         R"(","session":1,"client":"127.0.0.1:40000","binary":)" +
         (binary.empty() ? std::string("null") : "\"" + binary + "\"") +
         R"(,"pid":7,"uid":0,"ancestors":[],"method":")" + method + R"(","host":")" + host + R"(","port":)" +
         std::to_string(port) + R"(,"rules_considered":[],"reason":")" + reason + "\"" + extra + "}\n";
}

std::string not_listed(const std::string& binary, const std::string& rule) {
  return "binary '" + binary + "' not allowed in policy '" + rule + "'";
}

std::string no_endpoint(const std::string& host, int port) {
  return "endpoint " + host + ":" + std::to_string(port) + " is not allowed by any policy";
}

struct Suggested {
  Suggestion suggestion;
  std::shared_ptr<const Policy> policy;  // the suggestion, loaded
};

// suggest() over `log` (merged into `base_yaml` unless empty); the result must load.
Suggested run_suggest(const std::string& log, std::string_view base_yaml = {}) {
  std::optional<BasePolicy> base;
  if (!base_yaml.empty()) base = BasePolicy{std::string(base_yaml), policy_from_yaml(base_yaml)};
  Result<Suggestion, std::string> out = suggest(read_deny_log(log), "deny.log", base ? &*base : nullptr);
  if (!out) FAIL(out.error());
  INFO(out->yaml);
  return {*out, policy_from_yaml(out->yaml)};
}

Verdict verdict(const Policy& policy, const std::string& exe, const std::string& host, uint16_t port,
                std::optional<std::string> method = std::nullopt, const std::string& path = {}) {
  ExplainQuery q;
  q.caller.exe = exe;
  q.host = host;
  q.port = port;
  q.method = std::move(method);
  q.path = path;
  const Explanation e = explain(policy, q);
  return e.audited ? Verdict::Deny : e.verdict;
}

bool contains(std::string_view text, std::string_view needle) {
  return text.find(needle) != std::string_view::npos;
}

TEST_CASE("json: one strict JSON value is read, and anything else is refused with the byte it stopped at") {
  auto ok = JsonValue::parse(R"( {"a":[1,true,null,"x\u00e9\ud83d\ude00"],"b":{"c":-1.5e3}} )");
  REQUIRE(ok.has_value());
  CHECK(ok->find("a")->items().at(3).text() == "x\xc3\xa9\xf0\x9f\x98\x80");
  CHECK(ok->find("b")->find("c")->text() == "-1.5e3");
  CHECK(JsonValue::parse("65535")->unsigned_integer() == 65535u);
  CHECK_FALSE(JsonValue::parse("-1")->unsigned_integer().has_value());
  CHECK_FALSE(JsonValue::parse("1.0")->unsigned_integer().has_value());

  const char* bad[] = {
      "",   "{",       "{\"a\":1,}",  "[1,]",     "{\"a\":1,\"a\":2}", "{'a':1}",  "NaN",   "01",
      "1.", "\"\\x\"", "\"\\ud800\"", "\"\xff\"", "\"\xc0\xaf\"",      "\"a\nb\"", "{} {}", "\"\\ud800x\""};
  std::vector<std::string> texts(std::begin(bad), std::end(bad));
  texts.push_back(std::string(JsonValue::kMaxDepth + 2, '[') + std::string(JsonValue::kMaxDepth + 2, ']'));
  for (const std::string& text : texts) {
    CAPTURE(text);
    auto parsed = JsonValue::parse(text);
    REQUIRE_FALSE(parsed.has_value());
    CHECK(parsed.error().starts_with("at byte "));
  }
}

TEST_CASE("deny log: malformed lines are reported with their numbers and skipped, the rest are read") {
  const std::string log =
      deny_line("/usr/bin/curl", "a.example.com", 443, no_endpoint("a.example.com", 443)) +
      "\n"          // line 2: blank, ignored
      "not json\n"  // 3
      "[1,2]\n"     // 4
      R"({"event":"deny","binary":"/x","method":"GET","port":1,"reason":"r"})"
      "\n"  // 5: no host
      R"({"event":"deny","binary":"/x","method":"GET","host":"h","port":"443","reason":"r"})"
      "\n"
      R"({"event":"deny","binary":"/x","method":"GET","host":"h","port":0,"reason":"r"})"
      "\n"
      R"({"event":"deny","binary":7,"method":"GET","host":"h","port":1,"reason":"r"})"
      "\n" +
      deny_line("/usr/bin/wget", "b.example.com", 80, no_endpoint("b.example.com", 80)) +
      R"({"event":"deny","binary":"/x","method":"GET","host":"h","port":1,"reason":"r")";  // 10: cut short
  const DenyLog read = read_deny_log(log);
  REQUIRE(read.denials.size() == 2);
  CHECK(read.denials[0].line == 1);
  CHECK(read.denials[1].line == 9);
  CHECK(*read.denials[1].binary == "/usr/bin/wget");
  REQUIRE(read.problems.size() == 7);
  const int lines[] = {3, 4, 5, 6, 7, 8, 10};
  for (std::size_t i = 0; i < read.problems.size(); ++i) {
    CAPTURE(read.problems[i].message);
    CHECK(read.problems[i].line == lines[i]);
  }
  CHECK(contains(read.problems[2].message, "\"host\" is missing"));
  CHECK(contains(read.problems[3].message, "\"port\" is not a port number"));
}

TEST_CASE("deny log: only denials for a missing rule are turned into allows") {
  struct Row {
    std::string line;
    DenialKind want;
    const char* why;
  };
  const Row rows[] = {
      {deny_line("/b", "h.example", 443, not_listed("/b", "r")), DenialKind::Connection, ""},
      {deny_line("/b", "h.example", 443, no_endpoint("h.example", 443)), DenialKind::Connection, ""},
      {deny_line("/b", "h.example", 443, no_endpoint("h.example", 443), "", "CONNECT", "audit"),
       DenialKind::Connection, ""},
      {deny_line("/b", "h.example", 443, "x",
                 R"(,"url":"https://h.example/a","rule":"r","http_rule":"no allow rule matched")", "GET"),
       DenialKind::Request, ""},
      {deny_line("", "h.example", 443, "caller unknown: no process holds socket inode 1"),
       DenialKind::NotPolicy, "not identified"},
      {deny_line("/b", "h.example", 443,
                 "binary '/b' has sha256 aa, but policy 'r' pins sha256 bb (p.yaml:3)"),
       DenialKind::NotPolicy, "not a missing rule"},
      {deny_line("/b", "h.example", 443, "h.example resolves to 10.0.0.1",
                 R"(,"engine":"ssrf","addresses":["10.0.0.1"])"),
       DenialKind::NotPolicy, "destination safety"},
      {deny_line("/b", "h.example", 443, "too many", "", "CONNECT", "limit"), DenialKind::NotPolicy,
       "connection limit"},
      {deny_line("/b", "h.example", 443, not_listed("/b", "r"), "", "CONNECT", "revoked"),
       DenialKind::NotPolicy, "revoked"},
      {deny_line("/b", "h.example", 443, "x",
                 R"(,"url":"https://h.example/a","rule":"r","http_rule":"deny_rules[0] GET /**")", "GET"),
       DenialKind::NotPolicy, "a deny rule refused it"},
      {deny_line("/b", "h.example", 443, "x",
                 R"(,"url":"https://h.example/a","rule":"r","http_rule":"invalid request path")", "GET"),
       DenialKind::NotPolicy, "the request itself was refused"},
      {deny_line("/b", "h.example", 443,
                 "Host header 'x' does not match the CONNECT authority h.example:443 (domain fronting)"),
       DenialKind::NotPolicy, "not a missing rule"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.line);
    const DenyLog read = read_deny_log(row.line);
    REQUIRE(read.denials.size() == 1);
    const DenialClass kind = classify_denial(read.denials.front());
    CHECK(kind.kind == row.want);
    CHECK(contains(kind.why, row.why));
  }
}

TEST_CASE("suggest: without a policy, one rule per binary, ports grouped by host, allowing every denial") {
  const std::string log =
      deny_line("/usr/bin/curl", "a.example.com", 443, no_endpoint("a.example.com", 443)) +
      deny_line("/usr/bin/curl", "a.example.com", 80, no_endpoint("a.example.com", 80)) +
      deny_line("/usr/bin/curl", "a.example.com", 443, no_endpoint("a.example.com", 443)) +
      deny_line("/usr/bin/wget", "b.example.com", 80, no_endpoint("b.example.com", 80));
  const Suggested out = run_suggest(log);
  INFO(out.suggestion.yaml);
  CHECK(out.suggestion.allowed == 4);
  CHECK(out.suggestion.skipped.empty());
  REQUIRE(out.policy->rules.size() == 2);
  CHECK(out.policy->rules[0].endpoints.size() == 1);
  CHECK(out.policy->rules[0].endpoints[0].ports == std::vector<uint16_t>{80, 443});
  CHECK(verdict(*out.policy, "/usr/bin/curl", "a.example.com", 443) == Verdict::Allow);
  CHECK(verdict(*out.policy, "/usr/bin/curl", "a.example.com", 80) == Verdict::Allow);
  CHECK(verdict(*out.policy, "/usr/bin/wget", "b.example.com", 80) == Verdict::Allow);
  // Nothing beyond: not the other binary's host, not another port, no wildcard.
  CHECK(verdict(*out.policy, "/usr/bin/curl", "b.example.com", 80) == Verdict::Deny);
  CHECK(verdict(*out.policy, "/usr/bin/wget", "b.example.com", 443) == Verdict::Deny);
  CHECK_FALSE(contains(out.suggestion.yaml, "*"));
}

constexpr std::string_view kBase = R"(version: 1
network_policies:
  # a comment that stays
  local:
    endpoints:
      - { host: 127.0.0.1, port: 8080 }
    binaries:
      - { path: /usr/bin/curl }
  two_hosts:
    endpoints:
      - host: a.example.com
        port: 443
      - host: b.example.com
        port: 443
    binaries:
      - path: /usr/bin/python3.11
  api:
    endpoints:
      - host: api.example.com
        port: 443
        protocol: rest
        access: read-only  # GET, HEAD, OPTIONS
    binaries:
      - { path: /usr/bin/curl }
      - { path: /usr/bin/wget }
  flow: { endpoints: [{ host: f.example.com, port: 443, protocol: rest, rules: [{ allow: { method: GET, path: "/a" } }] }], binaries: [{ path: /usr/bin/git }] }
)";

TEST_CASE("suggest: a binary joins a rule whose every endpoint it was denied, keeping the rest of the text") {
  const std::string log = deny_line("/tmp/curl", "127.0.0.1", 8080, not_listed("/tmp/curl", "local"));
  const Suggested out = run_suggest(log, kBase);
  INFO(out.suggestion.yaml);
  CHECK(out.policy->rules.size() == 4);
  CHECK(contains(out.suggestion.yaml, "# a comment that stays"));
  CHECK(contains(out.suggestion.yaml, "      - { path: \"/tmp/curl\" }\n      - { path: /usr/bin/curl }\n"));
  CHECK(verdict(*out.policy, "/tmp/curl", "127.0.0.1", 8080) == Verdict::Allow);
  REQUIRE(out.suggestion.changes.size() == 1);
  CHECK(contains(out.suggestion.changes[0], "rule 'local' (test.yaml:4): add binary /tmp/curl"));
}

TEST_CASE("suggest: a binary denied one of a rule's two hosts gets a rule of its own, not that rule") {
  // wget is listed only beside curl, which was not denied: no rule can take it without widening.
  const std::string log =
      deny_line("/usr/bin/wget", "a.example.com", 443, not_listed("/usr/bin/wget", "two_hosts"));
  const Suggested out = run_suggest(log, kBase);
  INFO(out.suggestion.yaml);
  CHECK(out.policy->rules.size() == 5);
  CHECK(verdict(*out.policy, "/usr/bin/wget", "a.example.com", 443) == Verdict::Allow);
  CHECK(verdict(*out.policy, "/usr/bin/wget", "b.example.com", 443) == Verdict::Deny);
  CHECK(contains(out.suggestion.changes.at(0), "new rule 'wget'"));

  // Denied both: then joining the rule widens nothing.
  const Suggested both = run_suggest(
      log + deny_line("/usr/bin/wget", "b.example.com", 443, not_listed("/usr/bin/wget", "two_hosts")),
      kBase);
  INFO(both.suggestion.yaml);
  CHECK(both.policy->rules.size() == 4);
  CHECK(contains(both.suggestion.changes.at(0), "rule 'two_hosts'"));
}

TEST_CASE("suggest: an endpoint joins a rule whose every binary was denied it, else a rule of its own") {
  const std::string curl_9090 = deny_line("/usr/bin/curl", "127.0.0.1", 9090, no_endpoint("127.0.0.1", 9090));
  const Suggested joined = run_suggest(curl_9090, kBase);
  INFO(joined.suggestion.yaml);
  CHECK(joined.policy->rules.size() == 4);
  CHECK(contains(joined.suggestion.changes.at(0), "rule 'local' (test.yaml:4): add endpoint 127.0.0.1:9090"));
  CHECK(verdict(*joined.policy, "/usr/bin/curl", "127.0.0.1", 9090) == Verdict::Allow);

  // api lists curl and wget; only curl was denied c.example.com, so wget must not get it.
  const Suggested apart = run_suggest(
      deny_line("/usr/bin/curl", "c.example.com", 443, no_endpoint("c.example.com", 443)) +
          deny_line("/usr/bin/python3.11", "c.example.com", 443, no_endpoint("c.example.com", 443)),
      R"(version: 1
network_policies:
  api:
    endpoints: [{ host: api.example.com, port: 443 }]
    binaries: [{ path: /usr/bin/curl }, { path: /usr/bin/wget }]
  py:
    endpoints: [{ host: pypi.org, port: 443 }]
    binaries: [{ path: /usr/bin/python3.11 }]
)");
  INFO(apart.suggestion.yaml);
  CHECK(verdict(*apart.policy, "/usr/bin/curl", "c.example.com", 443) == Verdict::Allow);
  CHECK(verdict(*apart.policy, "/usr/bin/python3.11", "c.example.com", 443) == Verdict::Allow);
  CHECK(verdict(*apart.policy, "/usr/bin/wget", "c.example.com", 443) == Verdict::Deny);
  CHECK(contains(apart.suggestion.yaml, "binaries: [{ path: /usr/bin/python3.11 }]"));  // py joined
  CHECK(contains(apart.suggestion.yaml,
                 "endpoints: [ { host: \"c.example.com\", port: 443 }, { host: pypi.org"));
}

TEST_CASE("suggest: an HTTP denial adds exactly its method and path, a preset written out as its rules") {
  const std::string log =
      deny_line(
          "/usr/bin/curl", "api.example.com", 443, "DELETE /items/1 is not allowed",
          R"(,"url":"https://api.example.com/items/%31?force=1","rule":"api","http_rule":"access: read-only")",
          "DELETE") +
      deny_line("/usr/bin/git", "f.example.com", 443, "POST /b is not allowed",
                R"(,"url":"https://f.example.com/b","rule":"flow","http_rule":"no allow rule matched")",
                "POST");
  const Suggested out = run_suggest(log, kBase);
  INFO(out.suggestion.yaml);
  CHECK(out.suggestion.allowed == 2);
  const Policy& p = *out.policy;
  CHECK(verdict(p, "/usr/bin/curl", "api.example.com", 443, "DELETE", "/items/1") == Verdict::Allow);
  CHECK(verdict(p, "/usr/bin/curl", "api.example.com", 443, "DELETE", "/items/2") == Verdict::Deny);
  CHECK(verdict(p, "/usr/bin/curl", "api.example.com", 443, "POST", "/items/1") == Verdict::Deny);
  // The preset still means what it meant.
  for (const char* method : {"GET", "HEAD", "OPTIONS"}) {
    CAPTURE(method);
    CHECK(verdict(p, "/usr/bin/curl", "api.example.com", 443, method, "/anything/at/all") == Verdict::Allow);
  }
  CHECK(verdict(p, "/usr/bin/curl", "api.example.com", 443, "PUT", "/x") == Verdict::Deny);
  CHECK_FALSE(contains(out.suggestion.yaml, "access: read-only  # GET, HEAD, OPTIONS"));
  CHECK(verdict(p, "/usr/bin/git", "f.example.com", 443, "POST", "/b") == Verdict::Allow);
  CHECK(verdict(p, "/usr/bin/git", "f.example.com", 443, "POST", "/c") == Verdict::Deny);
  CHECK(verdict(p, "/usr/bin/git", "f.example.com", 443, "GET", "/a") == Verdict::Allow);
  // api lists wget too: the change says it may make the request as well.
  bool named_others = false;
  for (const std::string& change : out.suggestion.changes) named_others |= contains(change, "other binaries");
  CHECK(named_others);
}

TEST_CASE("suggest: an HTTP denial on a wildcard endpoint is not added there") {
  const std::string log =
      deny_line("/usr/bin/curl", "x.example.com", 443, "POST / is not allowed",
                R"(,"url":"https://x.example.com/","rule":"w","http_rule":"no allow rule matched")", "POST");
  const Suggested out = run_suggest(log, R"(version: 1
network_policies:
  w:
    endpoints: [{ host: "*.example.com", port: 443, protocol: rest, rules: [{ allow: { method: GET } }] }]
    binaries: [{ path: /usr/bin/curl }]
)");
  CHECK(out.suggestion.allowed == 0);
  REQUIRE(out.suggestion.skipped.size() == 1);
  CHECK(contains(out.suggestion.skipped[0], "is a wildcard"));
}

TEST_CASE("suggest: identity, digest, limit, destination and deny-rule denials become comments saying why") {
  const std::string log =
      deny_line("", "a.example.com", 443, "caller unknown: identification did not finish within 5000 ms") +
      deny_line("/usr/bin/curl", "a.example.com", 443,
                "binary '/usr/bin/curl' has sha256 aa, but policy 'r' pins sha256 bb (p.yaml:3)") +
      deny_line("/usr/bin/curl", "a.example.com", 443, "too many", "", "CONNECT", "limit") +
      deny_line("/usr/bin/curl", "a.example.com", 443, "resolves to 10.0.0.1",
                R"(,"engine":"ssrf","addresses":["10.0.0.1"])") +
      deny_line("/usr/bin/curl", "a.example.com", 443, "x",
                R"(,"url":"https://a.example.com/a","rule":"r","http_rule":"deny_rules[0] GET /**")", "GET") +
      deny_line("/usr/bin/curl", "169.254.169.254", 80, no_endpoint("169.254.169.254", 80));
  const Suggested out = run_suggest(log);
  INFO(out.suggestion.yaml);
  CHECK(out.suggestion.allowed == 0);
  REQUIRE(out.suggestion.skipped.size() == 6);
  const char* whys[] = {"line 1: the caller was not identified",
                        "line 2: not a missing rule",
                        "line 3: a connection limit",
                        "line 4: destination safety refused",
                        "line 5: a deny rule refused it",
                        "line 6: a rule allowing it would still be refused"};
  for (std::size_t i = 0; i < 6; ++i) {
    CAPTURE(out.suggestion.skipped[i]);
    CHECK(contains(out.suggestion.skipped[i], whys[i]));
    CHECK(contains(out.suggestion.yaml, "#   " + out.suggestion.skipped[i]));
  }
  CHECK(out.policy->rules.empty());
}

TEST_CASE("suggest: a denial reached by a redirect is allowed with a comment naming the redirect") {
  const std::string log = deny_line(
      "/usr/bin/curl", "cdn.example.net", 80, no_endpoint("cdn.example.net", 80),
      R"(,"url":"http://cdn.example.net/f.tgz","redirected_by":[{"status":302,"method":"GET","from":"http://example.com/f","to":"http://cdn.example.net/f.tgz"}])",
      "GET");
  const Suggested out = run_suggest(log);
  CHECK(out.suggestion.allowed == 1);
  CHECK(contains(
      out.suggestion.yaml,
      "log line 1 was reached by a redirect: 302 GET http://example.com/f -> http://cdn.example.net/f.tgz"));
}

TEST_CASE("suggest: nothing that a policy would read as a wildcard is written") {
  const std::string log =
      deny_line("/opt/*/tool", "a.example.com", 443, no_endpoint("a.example.com", 443)) +
      deny_line("/usr/bin/curl", "a.example.com", 443, "x",
                R"(,"url":"https://a.example.com/a*b","rule":"r","http_rule":"no allow rule matched")",
                "GET");
  const Suggested out = run_suggest(log, R"(version: 1
network_policies:
  r:
    endpoints: [{ host: a.example.com, port: 443, protocol: rest, rules: [{ allow: { method: GET, path: /x } }] }]
    binaries: [{ path: /usr/bin/curl }]
)");
  CHECK(out.suggestion.allowed == 0);
  REQUIRE(out.suggestion.skipped.size() == 2);
  CHECK(contains(out.suggestion.skipped[0], "cannot be listed exactly"));
  CHECK(contains(out.suggestion.skipped[1], "contains '*'"));
}

TEST_CASE("suggest: text from the deny log cannot add YAML through a comment") {
  const std::string log = deny_line(
      "", "a.example.com", 443,
      R"(caller unknown\nnetwork_policies:\n  evil:\n    endpoints: [{ host: evil.example, port: 443 }]\n    binaries: [{ path: \"/**\" }])");
  const Suggested out = run_suggest(log, kBase);
  INFO(out.suggestion.yaml);
  CHECK(out.policy->rules.size() == 4);
  CHECK(verdict(*out.policy, "/usr/bin/curl", "evil.example", 443) == Verdict::Deny);
}

TEST_CASE("suggest: a line the policy already allows is skipped, and a policy with no rules gets its first") {
  const std::string allowed = deny_line("/usr/bin/curl", "127.0.0.1", 8080, not_listed("/usr/bin/curl", "x"));
  const Suggested out = run_suggest(allowed, kBase);
  REQUIRE(out.suggestion.skipped.size() == 1);
  CHECK(contains(out.suggestion.skipped[0], "already allowed"));

  const Suggested first = run_suggest(allowed, "version: 1\nnetwork_policies: {}\n");
  INFO(first.suggestion.yaml);
  CHECK(verdict(*first.policy, "/usr/bin/curl", "127.0.0.1", 8080) == Verdict::Allow);
}

TEST_CASE("suggest: lines skipped for the same reason are named once, with how many there are") {
  std::string log;
  for (int i = 0; i < 14; ++i)
    log += deny_line("/usr/bin/curl", "a.example.com", 443, "too many", "", "CONNECT", "limit");
  log += deny_line("", "a.example.com", 443, "caller unknown: no process holds socket inode 1");
  const Suggested out = run_suggest(log);
  CHECK(out.suggestion.skipped_lines == 15);
  REQUIRE(out.suggestion.skipped.size() == 2);
  CHECK(out.suggestion.skipped[0].starts_with(
      "lines 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 4 more: a connection limit"));
  CHECK(out.suggestion.skipped[1].starts_with("line 15: the caller was not identified"));
}

TEST_CASE("suggest: a policy without a final newline gets its new rule on lines of its own") {
  const std::string base =
      "version: 1\nnetwork_policies:\n  r:\n    endpoints: [{ host: a.example.com, port: 443 }]\n"
      "    binaries: [{ path: /usr/bin/wget }, { path: /usr/bin/curl }]";
  const Suggested out =
      run_suggest(deny_line("/usr/bin/curl", "b.example.com", 443, no_endpoint("b.example.com", 443)), base);
  INFO(out.suggestion.yaml);
  CHECK(out.policy->rules.size() == 2);
  CHECK(verdict(*out.policy, "/usr/bin/curl", "b.example.com", 443) == Verdict::Allow);
  CHECK(verdict(*out.policy, "/usr/bin/wget", "b.example.com", 443) == Verdict::Deny);
}

}  // namespace
}  // namespace egressd::policy

#include "policy/http_matcher.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tests/unit/policy/policy_fixtures.h"

namespace egressd::policy {
namespace {

constexpr std::string_view kHost = "api.example.com";
constexpr uint16_t kPort = 443;

// A policy whose only rule, 'github', has one endpoint api.example.com:443 with `settings` (YAML block
// lines, indented as endpoint keys are below).
class OneEndpoint {
 public:
  explicit OneEndpoint(std::string_view settings) {
    std::string yaml =
        "version: 1\nnetwork_policies:\n  github:\n    endpoints:\n      - host: api.example.com\n"
        "        port: 443\n";
    std::size_t start = 0;
    while (start < settings.size()) {
      const std::size_t end = std::min(settings.find('\n', start), settings.size());
      if (end > start) yaml += "        " + std::string(settings.substr(start, end - start)) + "\n";
      start = end + 1;
    }
    yaml += "    binaries: [{ path: /usr/bin/curl }]\n";
    policy_ = fixtures::policy_from_yaml(yaml);
  }

  const Rule& rule() const { return policy_->rules.at(0); }
  const Endpoint& endpoint() const { return rule().endpoints.at(0); }

  HttpDecision decide(std::string_view method, std::string_view path, std::string_view query = {}) const {
    return decide_http(rule(), endpoint(), kHost, kPort, {method, path, query});
  }

 private:
  std::shared_ptr<const Policy> policy_;
};

bool contains(std::string_view text, std::string_view fragment) {
  return text.find(fragment) != std::string_view::npos;
}

TEST_CASE("each access preset allows exactly its methods") {
  const OneEndpoint read_only("protocol: rest\naccess: read-only");
  const OneEndpoint read_write("protocol: rest\naccess: read-write");
  const OneEndpoint full("protocol: rest\naccess: full");
  struct Row {
    std::string_view method;
    bool read_only;
    bool read_write;
    bool full;
  };
  const Row rows[] = {
      {"GET", true, true, true},        {"HEAD", true, true, true},       {"OPTIONS", true, true, true},
      {"POST", false, true, true},      {"PUT", false, true, true},       {"PATCH", false, true, true},
      {"DELETE", false, false, true},   {"CONNECT", false, false, true},  {"TRACE", false, false, true},
      {"PROPFIND", false, false, true}, {"M-SEARCH", false, false, true}, {"get", true, true, true},
      {"Post", false, true, true},
  };
  for (const Row& row : rows) {
    CAPTURE(row.method);
    CHECK((read_only.decide(row.method, "/x").verdict == Verdict::Allow) == row.read_only);
    CHECK((read_write.decide(row.method, "/x").verdict == Verdict::Allow) == row.read_write);
    CHECK((full.decide(row.method, "/x").verdict == Verdict::Allow) == row.full);
  }
}

TEST_CASE("an allow by an access preset names the preset as its rule") {
  const OneEndpoint endpoint("protocol: rest\naccess: read-write");
  const HttpDecision decision = endpoint.decide("PATCH", "/repos/a");
  CHECK(decision.verdict == Verdict::Allow);
  CHECK_FALSE(decision.audited);
  CHECK(decision.rule == "access: read-write");
  CHECK(decision.reason ==
        "PATCH /repos/a on api.example.com:443 is allowed by rule 'github' (access: read-write)");
}

TEST_CASE("allow rules match the method and the path glob: '*' within a segment, '**' across") {
  const OneEndpoint endpoint(R"(protocol: rest
rules:
  - allow: { method: GET, path: "/repos/**" }
  - allow: { method: POST, path: "/**/git-upload-pack" }
  - allow: { method: "*", path: /status }
  - allow: { method: put, path: "/files/*/content" })");
  struct Row {
    std::string_view method;
    std::string_view path;
    const char* rule;  // null when denied
  };
  const Row rows[] = {
      {"GET", "/repos/a/b/c", "allow GET /repos/**"},
      {"GET", "/repos/", "allow GET /repos/**"},
      {"GET", "/repos", nullptr},
      {"GET", "/reposx/a", nullptr},
      {"POST", "/repos/a", nullptr},
      {"POST", "/org/repo.git/git-upload-pack", "allow POST /**/git-upload-pack"},
      {"POST", "/org/repo.git/git-receive-pack", nullptr},
      {"GET", "/org/repo.git/git-upload-pack", nullptr},
      {"DELETE", "/status", "allow * /status"},
      {"BREW", "/status", "allow * /status"},
      {"GET", "/status/x", nullptr},
      {"PUT", "/files/a.txt/content", "allow PUT /files/*/content"},
      {"PUT", "/files/a/b/content", nullptr},
      {"PUT", "/files//content", nullptr},  // an empty segment is refused outright
  };
  for (const Row& row : rows) {
    CAPTURE(row.method);
    CAPTURE(row.path);
    const HttpDecision decision = endpoint.decide(row.method, row.path);
    CAPTURE(decision.reason);
    CHECK(decision.verdict == (row.rule != nullptr ? Verdict::Allow : Verdict::Deny));
    if (row.rule != nullptr) CHECK(decision.rule == row.rule);
  }
}

TEST_CASE("methods compare without regard to case, and a rule about GET also covers HEAD") {
  const OneEndpoint endpoint(R"(protocol: rest
rules:
  - allow: { method: GET, path: "/a" }
  - allow: { method: Delete, path: "/b" })");
  struct Row {
    std::string_view method;
    std::string_view path;
    Verdict want;
  };
  const Row rows[] = {{"GET", "/a", Verdict::Allow},    {"get", "/a", Verdict::Allow},
                      {"HEAD", "/a", Verdict::Allow},   {"OPTIONS", "/a", Verdict::Deny},
                      {"DELETE", "/b", Verdict::Allow}, {"delete", "/b", Verdict::Allow},
                      {"HEAD", "/b", Verdict::Deny},    {"GET", "/b", Verdict::Deny}};
  for (const Row& row : rows) {
    CAPTURE(row.method);
    CAPTURE(row.path);
    CHECK(endpoint.decide(row.method, row.path).verdict == row.want);
  }
}

TEST_CASE("a rule without a path, or with '*' or '**', matches any path") {
  for (std::string_view rule : {"{ method: GET }", "{ method: GET, path: \"*\" }",
                                "{ method: GET, path: \"**\" }", "{ method: GET, path: \"/**\" }"}) {
    CAPTURE(rule);
    const OneEndpoint endpoint("protocol: rest\nrules: [{ allow: " + std::string(rule) + " }]");
    for (std::string_view path : {"/", "/a", "/a/b/c", "/a/"}) {
      CAPTURE(path);
      CHECK(endpoint.decide("GET", path).verdict == Verdict::Allow);
    }
    CHECK(endpoint.decide("POST", "/a").verdict == Verdict::Deny);
  }
}

TEST_CASE("an allow rule's query needs each named parameter present with every value matching a glob") {
  const OneEndpoint endpoint(R"(protocol: rest
rules:
  - allow:
      method: GET
      path: /search
      query:
        q: "repo:*"
        per_page: { any: ["10", "100"] })");
  struct Row {
    std::string_view query;
    Verdict want;
  };
  const Row rows[] = {
      {"q=repo:a&per_page=10", Verdict::Allow},
      {"per_page=100&q=repo:a/b", Verdict::Allow},      // order is free; '*' also crosses '/' in a value
      {"q=repo:&per_page=10", Verdict::Allow},          // '*' matches the empty run
      {"q=repo:a&per_page=10&page=3", Verdict::Allow},  // a parameter the rule does not name is free
      {"q=repo:a", Verdict::Deny},                      // per_page missing
      {"per_page=10", Verdict::Deny},                   // q missing
      {"", Verdict::Deny},
      {"q=user:a&per_page=10", Verdict::Deny},
      {"q=repo:a&per_page=1000", Verdict::Deny},
      {"q=repo:a&per_page=10&per_page=20", Verdict::Deny},  // every value must match
      {"q=repo:a&q=user:b&per_page=10", Verdict::Deny},
      {"q=repo:a&q=repo:b&per_page=10&per_page=100", Verdict::Allow},
      {"Q=repo:a&per_page=10", Verdict::Deny},  // names are case-sensitive
      {"q=REPO:a&per_page=10", Verdict::Deny},  // and so are values
      {"q&per_page=10", Verdict::Deny},         // a name without '=' has the empty value
      {"&&q=repo:a&&per_page=10&", Verdict::Allow},
  };
  for (const Row& row : rows) {
    CAPTURE(row.query);
    CHECK(endpoint.decide("GET", "/search", row.query).verdict == row.want);
  }
}

TEST_CASE("query names and values are percent-decoded, '+' as a space, before they are matched") {
  const OneEndpoint endpoint(R"(protocol: rest
rules:
  - allow: { method: GET, path: /search, query: { "sort by": "a b", q: "x/y&z" } })");
  struct Row {
    std::string_view query;
    Verdict want;
  };
  const Row rows[] = {
      {"sort+by=a+b&q=x%2Fy%26z", Verdict::Allow},
      {"sort%20by=a%20b&q=x/y%26z", Verdict::Allow},
      {"%73ort+by=a+b&q=x%2fy%26z", Verdict::Allow},
      {"sort+by=a+b&q=x/y&z", Verdict::Deny},        // an unescaped '&' separates parameters
      {"sort+by=a%2Bb&q=x%2Fy%26z", Verdict::Deny},  // %2B is a literal '+'
      {"sort+by=a+b&q=x%2Fy%26z%", Verdict::Deny},   // an invalid escape never matches
      {"sort+by=a+b&q=x%2Fy%26z&other=%zz", Verdict::Deny},
  };
  for (const Row& row : rows) {
    CAPTURE(row.query);
    CHECK(endpoint.decide("GET", "/search", row.query).verdict == row.want);
  }
}

TEST_CASE("a query that cannot be decoded does not matter to rules that name no parameter") {
  const OneEndpoint endpoint("protocol: rest\nrules: [{ allow: { method: GET, path: /a } }]");
  CHECK(endpoint.decide("GET", "/a", "x=%zz").verdict == Verdict::Allow);
}

TEST_CASE("deny rules win over an access preset and over allow rules") {
  const OneEndpoint preset(R"(protocol: rest
access: full
deny_rules:
  - { method: DELETE, path: "/repos/**" }
  - { method: POST, path: "/admin/**" }
  - { method: "*", path: /danger })");
  const OneEndpoint rules(R"(protocol: rest
rules:
  - allow: { method: "*", path: "/**" }
deny_rules:
  - { method: GET, path: "/secrets/*" })");
  struct Row {
    const OneEndpoint* endpoint;
    std::string_view method;
    std::string_view path;
    const char* rule;  // the deciding rule
    Verdict want;
  };
  const Row rows[] = {
      {&preset, "DELETE", "/repos/a/b", "deny_rules[0] DELETE /repos/**", Verdict::Deny},
      {&preset, "GET", "/repos/a/b", "access: full", Verdict::Allow},
      {&preset, "POST", "/admin/users", "deny_rules[1] POST /admin/**", Verdict::Deny},
      {&preset, "post", "/admin/users", "deny_rules[1] POST /admin/**", Verdict::Deny},
      {&preset, "PUT", "/admin/users", "access: full", Verdict::Allow},
      {&preset, "PATCH", "/danger", "deny_rules[2] * /danger", Verdict::Deny},
      {&rules, "GET", "/secrets/key", "deny_rules[0] GET /secrets/*", Verdict::Deny},
      {&rules, "HEAD", "/secrets/key", "deny_rules[0] GET /secrets/*", Verdict::Deny},
      {&rules, "GET", "/secrets/a/b", "allow * /**", Verdict::Allow},
      {&rules, "PUT", "/secrets/key", "allow * /**", Verdict::Allow},
  };
  for (const Row& row : rows) {
    CAPTURE(row.method);
    CAPTURE(row.path);
    const HttpDecision decision = row.endpoint->decide(row.method, row.path);
    CHECK(decision.verdict == row.want);
    CHECK(decision.rule == row.rule);
  }
}

TEST_CASE("a deny rule's query matches when one value of each named parameter matches") {
  const OneEndpoint endpoint(R"(protocol: rest
access: full
deny_rules:
  - { method: GET, path: /export, query: { format: { any: ["csv", "xls*"] }, scope: all } })");
  struct Row {
    std::string_view query;
    Verdict want;
  };
  const Row rows[] = {
      {"format=csv&scope=all", Verdict::Deny},
      {"format=json&format=xlsx&scope=all", Verdict::Deny},  // one matching value is enough
      {"format=csv&scope=all&scope=mine", Verdict::Deny},
      {"format=json&scope=all", Verdict::Allow},
      {"format=csv", Verdict::Allow},  // scope missing: the deny rule does not apply
      {"", Verdict::Allow},
      {"format=csv&scope=%61ll", Verdict::Deny},      // decoded first
      {"format=csv&scope=all&x=%zz", Verdict::Deny},  // undecodable: fail closed
      {"format=json&scope=mine&x=%zz", Verdict::Deny},
  };
  for (const Row& row : rows) {
    CAPTURE(row.query);
    CHECK(endpoint.decide("GET", "/export", row.query).verdict == row.want);
  }
}

TEST_CASE("a deny rule also matches the path with its path parameters removed, as Tomcat reads it") {
  const OneEndpoint endpoint(R"(protocol: rest
access: full
deny_rules:
  - { method: "*", path: "/admin/**" })");
  struct Row {
    std::string_view path;
    Verdict want;
  };
  const Row rows[] = {{"/admin/users", Verdict::Deny},
                      {"/admin;jsessionid=1/users", Verdict::Deny},
                      {"/admin/users;v=2", Verdict::Deny},
                      {"/public;x=/admin", Verdict::Allow},
                      {"/public/users;v=2", Verdict::Allow}};
  for (const Row& row : rows) {
    CAPTURE(row.path);
    CHECK(endpoint.decide("GET", row.path).verdict == row.want);
  }
}

TEST_CASE("in audit mode a would-be denial is allowed, marked audited, and keeps its rule and reason") {
  const OneEndpoint enforced(R"(protocol: rest
access: read-only
deny_rules: [{ method: GET, path: /private }])");
  const OneEndpoint audited(R"(protocol: rest
enforcement: audit
access: read-only
deny_rules: [{ method: GET, path: /private }])");
  struct Row {
    std::string_view method;
    std::string_view path;
  };
  const Row rows[] = {{"POST", "/upload"}, {"GET", "/private"}, {"GET", "/a/../private"}, {"GET", "*"}};
  for (const Row& row : rows) {
    CAPTURE(row.method);
    CAPTURE(row.path);
    const HttpDecision enforce = enforced.decide(row.method, row.path);
    const HttpDecision audit = audited.decide(row.method, row.path);
    CHECK(enforce.verdict == Verdict::Deny);
    CHECK_FALSE(enforce.audited);
    CHECK(audit.verdict == Verdict::Allow);
    CHECK(audit.audited);
    CHECK(audit.rule == enforce.rule);
    CHECK(audit.reason == enforce.reason);
  }
}

TEST_CASE("in audit mode an allowed request is not marked audited") {
  const OneEndpoint audited("protocol: rest\nenforcement: audit\naccess: read-only");
  const HttpDecision decision = audited.decide("GET", "/a");
  CHECK(decision.verdict == Verdict::Allow);
  CHECK_FALSE(decision.audited);
  CHECK(decision.rule == "access: read-only");
}

TEST_CASE("an endpoint without 'protocol: rest' allows every request without inspecting it") {
  const OneEndpoint l4("tls: skip");
  const OneEndpoint tcp("protocol: tcp");
  const OneEndpoint graphql("protocol: graphql\naccess: read-only");
  struct Row {
    const OneEndpoint* endpoint;
    const char* rule;
  };
  const Row rows[] = {{&l4, "no 'protocol: rest'"},
                      {&tcp, "no 'protocol: rest'"},
                      {&graphql, "'protocol: graphql' not enforced"}};
  for (const Row& row : rows) {
    CAPTURE(row.rule);
    for (std::string_view path : {"/", "/a/../b", "*", "/%2F", ""}) {
      CAPTURE(path);
      const HttpDecision decision = row.endpoint->decide("DELETE", path);
      CHECK(decision.verdict == Verdict::Allow);
      CHECK_FALSE(decision.audited);
      CHECK(decision.rule == row.rule);
    }
  }
  CHECK(l4.decide("POST", "/x").reason ==
        "POST /x on api.example.com:443 is not inspected: rule 'github' allows the connection, and its "
        "endpoint has no 'protocol: rest'");
  CHECK(graphql.decide("POST", "/graphql").reason ==
        "POST /graphql on api.example.com:443 is not inspected: rule 'github' allows the connection, and "
        "egressd does not enforce 'protocol: graphql'");
}

TEST_CASE("normalize_request_path decodes unreserved escapes and keeps the others in upper-case hex") {
  struct Row {
    std::string_view raw;
    const char* normalized;
  };
  const Row rows[] = {
      {"/", "/"},
      {"/repos/a/b", "/repos/a/b"},
      {"/repos/", "/repos/"},
      {"/%41%62c", "/Abc"},
      {"/%72epos/x", "/repos/x"},
      {"/a%2Db%2ec%5Fd%7Ee%30", "/a-b.c_d~e0"},
      {"/a%20b", "/a%20b"},
      {"/a%3fb%3A%40", "/a%3Fb%3A%40"},
      {"/%e2%82%ac", "/%E2%82%AC"},
      {"/a;v=1/b", "/a;v=1/b"},
      {"/a.b/..c/...", "/a.b/..c/..."},  // dots that are not a whole segment are ordinary
      {"/x:y@z!$&'()*+,=", "/x:y@z!$&'()*+,="},
  };
  for (const Row& row : rows) {
    CAPTURE(row.raw);
    const Result<std::string, std::string> path = normalize_request_path(row.raw);
    REQUIRE_MESSAGE(path.has_value(), path.error());
    CHECK(*path == row.normalized);
  }
}

TEST_CASE("normalize_request_path refuses what a server could read differently, saying why") {
  using namespace std::string_view_literals;
  struct Row {
    std::string_view raw;
    std::string_view problem;
  };
  const Row rows[] = {
      {"", "path is empty"},
      {"*", "path is '*' (the asterisk-form of 'OPTIONS *'), not an absolute path"},
      {"repos/a", "path does not start with '/'"},
      {"http://api.example.com/a", "path does not start with '/'"},
      {"api.example.com:443", "path does not start with '/'"},
      {"/a/../b", "path contains a dot-segment ('.' or '..')"},
      {"/a/./b", "path contains a dot-segment"},
      {"/a/..", "path contains a dot-segment"},
      {"/.", "path contains a dot-segment"},
      {"/a/%2e%2e/b", "path contains a dot-segment"},
      {"/a/%2E/b", "path contains a dot-segment"},
      {"/a/.%2e/b", "path contains a dot-segment"},
      {"/a/..;x/b", "path contains a dot-segment"},
      {"/a/%2Fb", "path contains an encoded slash (%2F)"},
      {"/a/%2fb", "path contains an encoded slash (%2F)"},
      {"/a//b", "path contains an empty segment ('//')"},
      {"//a", "path contains an empty segment ('//')"},
      {"/a//", "path contains an empty segment ('//')"},
      {"/a/;x/b", "path contains a segment that is only parameters"},
      {"/a\0b"sv, "path contains a NUL byte"},
      {"/a%00b", "path contains an encoded NUL byte (%00)"},
      {"/a\nb", "path contains a control character"},
      {"/a%0Db", "path contains an encoded control character"},
      {"/a%7f", "path contains an encoded control character"},
      {"/a\\b", "path contains a backslash"},
      {"/a%5cb", "path contains an encoded backslash (%5C)"},
      {"/a b", "path contains a space"},
      {"/a#b", "path contains '#' (a fragment)"},
      {"/a?b", "path contains '?' (the query must be passed separately)"},
      {"/caf\xc3\xa9", "path contains a non-ASCII byte that is not percent-encoded"},
      {"/a%", "path contains an invalid percent-encoding"},
      {"/a%4", "path contains an invalid percent-encoding"},
      {"/a%zz", "path contains an invalid percent-encoding"},
      {"/a%%41", "path contains an invalid percent-encoding"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.raw);
    const Result<std::string, std::string> path = normalize_request_path(row.raw);
    REQUIRE_FALSE(path.has_value());
    CAPTURE(path.error());
    CHECK(contains(path.error(), row.problem));
  }
}

TEST_CASE("a request path that cannot be normalized is denied even where every method is allowed") {
  const OneEndpoint endpoint("protocol: rest\naccess: full");
  struct Row {
    std::string_view method;
    std::string_view path;
    std::string_view problem;
  };
  const Row rows[] = {
      {"GET", "/public/../admin", "path contains a dot-segment ('.' or '..')"},
      {"GET", "/a/%2F/b", "path contains an encoded slash (%2F)"},
      {"OPTIONS", "*", "path is '*' (the asterisk-form of 'OPTIONS *'), not an absolute path"},
      {"GET", "http://api.example.com/",
       "path does not start with '/' (only origin-form request-targets are accepted)"},
      {"GET", "/a//b", "path contains an empty segment ('//')"},
      {"GET", "/a%00", "path contains an encoded NUL byte (%00)"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.path);
    const HttpDecision decision = endpoint.decide(row.method, row.path);
    CHECK(decision.verdict == Verdict::Deny);
    CHECK(decision.rule == "invalid request path");
    CHECK(decision.reason ==
          std::string(row.method) + " " + std::string(row.path) +
              " on api.example.com:443 is denied by rule 'github': " + std::string(row.problem));
  }
}

TEST_CASE("rules and deny rules see percent-encoded unreserved characters decoded") {
  const OneEndpoint endpoint(R"(protocol: rest
rules: [{ allow: { method: "*", path: "/repos/**" } }]
deny_rules: [{ method: "*", path: "/repos/*/admin/**" }])");
  struct Row {
    std::string_view path;
    Verdict want;
  };
  const Row rows[] = {{"/%72epos/a", Verdict::Allow},
                      {"/%52epos/a", Verdict::Deny},  // 'R' is not 'r'
                      {"/repos/a/%61dmin/x", Verdict::Deny},
                      {"/repos/a/%41dmin/x", Verdict::Allow},
                      {"/repos/a%2Fadmin/x", Verdict::Deny}};  // refused: encoded slash
  for (const Row& row : rows) {
    CAPTURE(row.path);
    CHECK(endpoint.decide("GET", row.path).verdict == row.want);
  }
}

TEST_CASE("reasons are sentences naming the rule, method, path and host:port") {
  const OneEndpoint read_only("protocol: rest\naccess: read-only");
  const OneEndpoint rules(R"(protocol: rest
rules:
  - allow: { method: GET, path: "/repos/**" }
  - allow: { method: "*", path: /search, query: { q: "repo:*", per_page: { any: ["10", "100"] } } }
  - allow: { method: DELETE }
deny_rules:
  - { method: DELETE, path: "/repos/**" })");
  struct Row {
    const OneEndpoint* endpoint;
    std::string_view method;
    std::string_view path;
    std::string_view query;
    const char* rule;
    const char* reason;
  };
  const Row rows[] = {
      {&read_only, "POST", "/upload", "", "access: read-only",
       "POST /upload is not allowed on api.example.com:443 by rule 'github' (access: read-only allows GET, "
       "HEAD, "
       "OPTIONS)"},
      {&rules, "DELETE", "/repos/a", "", "deny_rules[0] DELETE /repos/**",
       "DELETE /repos/a on api.example.com:443 is denied by rule 'github' (deny_rules[0] DELETE /repos/**)"},
      {&rules, "GET", "/repos/a", "", "allow GET /repos/**",
       "GET /repos/a on api.example.com:443 is allowed by rule 'github' (allow GET /repos/**)"},
      {&rules, "GET", "/search", "q=repo:a&per_page=10", "allow * /search?q=repo:*&per_page=10|100",
       "GET /search on api.example.com:443 is allowed by rule 'github' (allow * "
       "/search?q=repo:*&per_page=10|100)"},
      {&rules, "DELETE", "/issues/1", "", "allow DELETE (any path)",
       "DELETE /issues/1 on api.example.com:443 is allowed by rule 'github' (allow DELETE (any path))"},
      {&rules, "POST", "/repos/a", "", "no allow rule matched",
       "POST /repos/a is not allowed on api.example.com:443 by rule 'github' (no allow rule matches; it "
       "allows "
       "GET /repos/**, * /search?q=repo:*&per_page=10|100, DELETE (any path))"},
      {&rules, "GET", "/search", "q=user:a&per_page=10", "no allow rule matched",
       "GET /search is not allowed on api.example.com:443 by rule 'github' ('allow * "
       "/search?q=repo:*&per_page=10|100' matches the method and path but not the query parameter(s) q)"},
      {&rules, "GET", "/search", "per_page=1", "no allow rule matched",
       "GET /search is not allowed on api.example.com:443 by rule 'github' ('allow * "
       "/search?q=repo:*&per_page=10|100' matches the method and path but not the query parameter(s) q, "
       "per_page)"},
      {&rules, "GET", "/search", "q=%", "no allow rule matched",
       "GET /search is not allowed on api.example.com:443 by rule 'github' ('allow * "
       "/search?q=repo:*&per_page=10|100' matches the method and path, but the query string is not valid "
       "percent-encoding)"},
      {&rules, "G(T", "/repos/a", "", "invalid request method",
       "G(T /repos/a on api.example.com:443 is denied by rule 'github': the method is not an HTTP token"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.method);
    CAPTURE(row.path);
    CAPTURE(row.query);
    const HttpDecision decision = row.endpoint->decide(row.method, row.path, row.query);
    CHECK(decision.rule == row.rule);
    CHECK(decision.reason == row.reason);
  }
}

TEST_CASE("a reason uses the rule's name and writes an IPv6 host in brackets") {
  const auto policy = fixtures::policy_from_yaml(R"(
version: 1
network_policies:
  key:
    name: internal-api
    endpoints: [{ host: "fd00::1", port: 8443, protocol: rest, access: read-only }]
    binaries: [{ path: /usr/bin/curl }]
)");
  const Rule& rule = policy->rules[0];
  const HttpDecision decision = decide_http(rule, rule.endpoints[0], "fd00::1", 8443, {"PUT", "/v1/x", ""});
  CHECK(decision.reason ==
        "PUT /v1/x is not allowed on [fd00::1]:8443 by rule 'internal-api' (access: read-only allows GET, "
        "HEAD, "
        "OPTIONS)");
}

TEST_CASE("a reason never quotes the request's query") {
  const OneEndpoint endpoint(R"(protocol: rest
rules: [{ allow: { method: GET, path: /a, query: { token: "public-*" } } }]
deny_rules: [{ method: GET, path: /b, query: { token: "*" } }])");
  for (std::string_view path : {"/a", "/b", "/c"}) {
    CAPTURE(path);
    const HttpDecision decision = endpoint.decide("GET", path, "token=s3cr3t&other=hunter2");
    CHECK(decision.verdict == Verdict::Deny);
    CHECK_FALSE(contains(decision.reason, "s3cr3t"));
    CHECK_FALSE(contains(decision.reason, "hunter2"));
  }
}

TEST_CASE("a reason escapes control, space and non-ASCII bytes of the request and cuts a long path short") {
  const OneEndpoint endpoint("protocol: rest\naccess: read-only");
  CHECK(endpoint.decide("GET", "/a\r\nX: y").reason ==
        "GET /a%0D%0AX:%20y on api.example.com:443 is denied by rule 'github': path contains a control "
        "character");
  CHECK(
      endpoint.decide("GET", "/caf\xc3\xa9").reason ==
      "GET /caf%C3%A9 on api.example.com:443 is denied by rule 'github': path contains a non-ASCII byte that "
      "is not percent-encoded");
  const std::string long_path = "/" + std::string(500, 'a');
  const HttpDecision decision = endpoint.decide("POST", long_path);
  CHECK(decision.reason ==
        "POST " + long_path.substr(0, 200) +
            "... is not allowed on api.example.com:443 by rule 'github' (access: read-only "
            "allows GET, HEAD, OPTIONS)");
}

TEST_CASE("a method that is not an HTTP token is denied, whatever the endpoint allows") {
  const OneEndpoint endpoint("protocol: rest\naccess: full");
  for (std::string_view method : {"", "GE T", "GET/", "G\x01T", "\xc3\xa9"}) {
    CAPTURE(method);
    const HttpDecision decision = endpoint.decide(method, "/a");
    CHECK(decision.verdict == Verdict::Deny);
    CHECK(decision.rule == "invalid request method");
  }
}

TEST_CASE("a reason lists at most four allow rules and counts the rest") {
  const OneEndpoint endpoint(R"(protocol: rest
rules:
  - allow: { method: GET, path: /1 }
  - allow: { method: GET, path: /2 }
  - allow: { method: GET, path: /3 }
  - allow: { method: GET, path: /4 }
  - allow: { method: GET, path: /5 }
  - allow: { method: GET, path: /6 })");
  CHECK(endpoint.decide("GET", "/7").reason ==
        "GET /7 is not allowed on api.example.com:443 by rule 'github' (no allow rule matches; it allows GET "
        "/1, "
        "GET /2, GET /3, GET /4 and 2 more)");
}

TEST_CASE("a REST endpoint with neither 'access' nor 'rules' denies every request") {
  // The loader refuses such an endpoint (tests/data/broken/protocol_without_access_or_rules.yaml); the
  // matcher still fails closed on one built by hand.
  Rule rule;
  rule.name = "handmade";
  Endpoint endpoint;
  endpoint.protocol = Protocol::Rest;
  endpoint.deny_rules.push_back(HttpRule{"DELETE", "/x", {}, {}});
  for (std::string_view method : {"GET", "HEAD", "POST"}) {
    CAPTURE(method);
    const HttpDecision decision = decide_http(rule, endpoint, kHost, kPort, {method, "/", ""});
    CHECK(decision.verdict == Verdict::Deny);
    CHECK(decision.rule == "no 'access' or 'rules'");
    CHECK(decision.reason ==
          std::string(method) +
              " / is not allowed on api.example.com:443 by rule 'handmade' (its endpoint has "
              "neither 'access' nor 'rules')");
  }
}

}  // namespace
}  // namespace egressd::policy

namespace egressd::policy {
namespace {

TEST_CASE("a rule in audit mode, its own or the policy's, audits its endpoints' HTTP denials") {
  const std::string endpoint =
      "    endpoints: [{ host: api.example.com, port: 443, protocol: rest, access: read-only }]\n"
      "    binaries: [{ path: /usr/bin/curl }]\n";
  struct Row {
    std::string top;   // top-level lines
    std::string rule;  // the rule's own lines
    bool audited;
  };
  const Row rows[] = {
      {"", "", false},
      {"", "    mode: audit\n", true},
      {"mode: audit\n", "", true},
      {"mode: audit\n", "    mode: enforce\n", false},
      {"mode: enforce\n", "    mode: audit\n", true},
  };
  for (const Row& row : rows) {
    CAPTURE(row.top);
    CAPTURE(row.rule);
    const auto policy = fixtures::policy_from_yaml("version: 1\n" + row.top + "network_policies:\n  api:\n" +
                                                   row.rule + endpoint);
    const Rule& rule = policy->rules.at(0);
    const HttpDecision post = decide_http(rule, rule.endpoints.at(0), kHost, kPort, {"POST", "/upload", ""});
    CHECK(post.audited == row.audited);
    CHECK(post.verdict == (row.audited ? Verdict::Allow : Verdict::Deny));
    CHECK(post.rule == "access: read-only");  // what enforce would have said, either way
    const HttpDecision get = decide_http(rule, rule.endpoints.at(0), kHost, kPort, {"GET", "/a", ""});
    CHECK(get.verdict == Verdict::Allow);
    CHECK_FALSE(get.audited);
  }
}

}  // namespace
}  // namespace egressd::policy

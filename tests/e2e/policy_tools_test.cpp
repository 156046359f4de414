// Policy tooling through the built binary: `egressd check` warnings, `egressd explain` against what a
// running egressd decides, and `egressd suggest` in its whole loop: a real denial in the deny log, the
// suggested policy written over the file egressd watches, and the same request allowed after the reload.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "tests/e2e/scenario.h"
#include "tests/support/json.h"
#include "tests/support/local_origin.h"
#include "tests/support/temp_dir.h"

namespace egressd::test::e2e {
namespace {

constexpr std::string_view kReloaded = "policy reloaded: hash=";

bool has(const std::string& text, std::string_view needle) {
  return text.find(needle) != std::string::npos;
}

std::string curl_policy(const std::string& endpoints) {
  return "version: 1\nnetwork_policies:\n  r:\n    endpoints:\n" + endpoints +
         "    binaries:\n      - { path: \"" + curl() + "\" }\n";
}

// curl's plain-HTTP request with `method` for `url` through egressd: the status it got.
std::string status_of(const std::string& method, const Egressd& egressd, const std::string& url) {
  return run({curl(), "-q", "-sS", "--proxy", egressd.url(), "-X", method, "-o", "/dev/null", "-w",
              "%{http_code}", url})
      .out;
}

// `egressd suggest DENYLOG --policy FILE` for what egressd has logged; the suggestion must be printed.
RunResult suggest_for(const Egressd& egressd) {
  RunResult suggested =
      run({egressd_binary(), "suggest", egressd.deny_log_path(), "--policy", egressd.policy_path()});
  INFO(suggested.err);
  REQUIRE(suggested.exit_code == 0);
  return suggested;
}

// Writes `yaml` over the policy egressd watches and waits for it to be applied.
void reload_with(Egressd& egressd, const std::string& yaml) {
  const size_t reloads = egressd.stderr_count(kReloaded);
  egressd.write_policy_in_place(yaml);
  REQUIRE(egressd.wait_for_stderr_count(kReloaded, reloads + 1, 10s));
}

TEST_CASE(
    "egressd check prints FILE:LINE:COL warnings for a duplicate endpoint and exits 0, or 1 with --strict" *
    doctest::timeout(60)) {
  const TempDir dir;
  const std::string path = dir.file("policy.yaml");
  write_file(path,
             curl_policy("      - { host: a.example.com, port: 443 }\n"
                         "      - { host: a.example.com, port: 443, protocol: rest, access: read-only }\n"));
  const RunResult result = run({egressd_binary(), "check", path});
  INFO(result.out << result.err);
  CHECK(result.exit_code == 0);
  CHECK(has(result.out,
            path + ":6:9: warning: duplicate endpoint a.example.com:443 in rule 'r' (first at 5:9)"));
  CHECK(has(result.out, path + ": ok (1 rules, hash "));
  CHECK(has(result.out, ", 1 warning)"));

  const RunResult strict = run({egressd_binary(), "check", "--strict", path});
  CHECK(strict.exit_code == 1);
  CHECK(strict.out == result.out);
}

TEST_CASE("egressd check names where a symlinked policy leads, and only notes a ConfigMap mount" *
          doctest::timeout(60)) {
  const TempDir dir;
  const std::string policy = curl_policy("      - { host: a.example.com, port: 443 }\n");
  const std::string real = dir.file("real.yaml");
  write_file(real, policy);
  const std::string link = dir.file("policy.yaml");
  REQUIRE(::symlink(real.c_str(), link.c_str()) == 0);
  const RunResult linked = run({egressd_binary(), "check", "--strict", link});
  INFO(linked.out << linked.err);
  CHECK(linked.exit_code == 1);
  CHECK(has(linked.out,
            link + ": warning: the policy path is, or goes through, a symlink and resolves to " + real));

  REQUIRE(::mkdir(dir.file("..2026_v1").c_str(), 0755) == 0);
  write_file(dir.file("..2026_v1/policy.yaml"), policy);
  REQUIRE(::symlink("..2026_v1", dir.file("..data").c_str()) == 0);
  const std::string mounted = dir.file("mounted.yaml");
  REQUIRE(::symlink("..data/policy.yaml", mounted.c_str()) == 0);
  const RunResult configmap = run({egressd_binary(), "check", "--strict", mounted});
  INFO(configmap.out << configmap.err);
  CHECK(configmap.exit_code == 0);
  CHECK(has(configmap.out, mounted + ": note: the policy path is a Kubernetes ConfigMap mount"));
}

TEST_CASE("egressd explain agrees with a running egressd on the listed curl and an unlisted copy" *
          doctest::timeout(60)) {
  const LocalOrigin origin = LocalOrigin::http();
  const TempDir dir;
  const std::string copy = copy_executable(curl(), dir, "curl");
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  REQUIRE(http_status(curl(), egressd, origin.url("/hello")) == "200");
  REQUIRE(http_status(copy, egressd, origin.url("/hello")) == "403");
  REQUIRE(egressd.wait_for_deny_lines(1));
  const Json logged = egressd.deny_log_lines().back();
  const std::string port = std::to_string(origin.port());

  const RunResult allowed =
      run({egressd_binary(), "explain", "--policy", egressd.policy_path(), "--binary", curl(), "--host",
           "127.0.0.1", "--port", port, "--method", "GET", "--path", "/hello"});
  INFO(allowed.out << allowed.err);
  CHECK(allowed.exit_code == 0);
  CHECK(allowed.out.starts_with("ALLOW " + curl() + " -> GET /hello on 127.0.0.1:" + port));
  CHECK(has(allowed.out, "rule:        test (" + egressd.policy_path() + ":3:3)"));

  const RunResult denied = run({egressd_binary(), "explain", "--policy", egressd.policy_path(), "--binary",
                                copy, "--host", "127.0.0.1", "--port", port, "--json"});
  INFO(denied.out << denied.err);
  CHECK(denied.exit_code == 1);
  const Json json = Json::parse(denied.out);
  CHECK(json["verdict"] == "deny");
  CHECK(json["reason"] == logged["reason"].str());
  REQUIRE(json["nearest"].size() == 1);
  CHECK(json["nearest"].at(0)["rule"] == "test");
  CHECK(has(json["nearest"].at(0)["why_not"].at(0).str(), "binary '" + copy + "' is not listed"));
}

TEST_CASE("egressd explain refuses incomplete or malformed questions with exit 2" * doctest::timeout(60)) {
  const std::vector<std::vector<std::string>> questions = {
      {"--binary", "/usr/bin/curl", "--port", "443"},
      {"--binary", "/usr/bin/curl", "--host", "a.example.com", "--port", "70000"},
      {"--binary", "curl", "--host", "a.example.com", "--port", "443"},
      {"--binary", "/usr/bin/curl", "--host", "a.example.com", "--port", "443", "--method", "GET"},
      {"--binary", "/usr/bin/curl", "--host", "a b", "--port", "443"},
      {"--binary", "/usr/bin/curl", "--host", "a.example.com", "--port", "443", "--frobnicate", "x"},
  };
  for (const std::vector<std::string>& question : questions) {
    std::vector<std::string> argv = {egressd_binary(), "explain"};
    argv.insert(argv.end(), question.begin(), question.end());
    const RunResult result = run(argv);
    CAPTURE(result.err);
    CHECK(result.exit_code == 2);
    CHECK(result.out.empty());
  }
}

TEST_CASE("suggest turns real denials into a policy that, written over the file, lets the same curl through" *
          doctest::timeout(90)) {
  const LocalOrigin origin = LocalOrigin::http();
  const TempDir dir;
  const std::string copy = copy_executable(curl(), dir, "curl");
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  REQUIRE(http_status(copy, egressd, origin.url("/hello")) == "403");
  REQUIRE(connect_status(copy, egressd, origin.url("/hello")) == "403");
  REQUIRE(egressd.wait_for_deny_lines(2));

  const RunResult suggested = suggest_for(egressd);
  INFO(suggested.out);
  CHECK(has(suggested.err, "2 denials allowed"));
  CHECK(has(suggested.out, "- { path: \"" + copy + "\" }"));  // joined the rule that has the endpoint
  const std::string written = dir.file("suggested.yaml");
  write_file(written, suggested.out);
  const RunResult explained = run({egressd_binary(), "explain", "--policy", written, "--binary", copy,
                                   "--host", "127.0.0.1", "--port", std::to_string(origin.port())});
  CHECK(explained.exit_code == 0);

  reload_with(egressd, suggested.out);
  CHECK(http_status(copy, egressd, origin.url("/hello")) == "200");
  CHECK(connect_status(copy, egressd, origin.url("/hello")) == "200");
  // Exactly what was denied: another unlisted copy is still refused.
  const std::string other = copy_executable(curl(), dir, "curl-other");
  CHECK(http_status(other, egressd, origin.url("/hello")) == "403");
}

TEST_CASE(
    "suggest adds exactly the method and path egressd refused, which passes after the reload while others do "
    "not" *
    doctest::timeout(90)) {
  const LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing({{"api",
                                    {curl()},
                                    {{"127.0.0.1", origin.port(),
                                      "        protocol: rest\n        rules:\n"
                                      "          - allow: { method: GET, path: /hello }\n"}}}}));
  INFO(egressd.diagnostics());
  REQUIRE(status_of("GET", egressd, origin.url("/hello")) == "200");
  REQUIRE(status_of("DELETE", egressd, origin.url("/any/item")) == "403");
  REQUIRE(egressd.wait_for_deny_lines(1));
  CHECK(egressd.deny_log_lines().back()["http_rule"] == "no allow rule matched");

  const RunResult suggested = suggest_for(egressd);
  INFO(suggested.out);
  CHECK(has(suggested.out, "- allow: { method: \"DELETE\", path: \"/any/item\" }"));
  reload_with(egressd, suggested.out);
  CHECK(status_of("DELETE", egressd, origin.url("/any/item")) == "200");
  CHECK(status_of("DELETE", egressd, origin.url("/any/other")) == "403");
  CHECK(status_of("POST", egressd, origin.url("/any/item")) == "403");
  CHECK(status_of("GET", egressd, origin.url("/hello")) == "200");
}

TEST_CASE("suggest reads - from stdin, names malformed lines on stderr and comments on what it skipped" *
          doctest::timeout(60)) {
  const std::string log =
      R"({"event":"deny","binary":"/usr/bin/wget","method":"CONNECT","host":"a.example.com","port":443,)"
      R"("reason":"endpoint a.example.com:443 is not allowed by any policy"})"
      "\n{\"event\":\"deny\",\n"
      R"({"event":"deny","binary":null,"method":"CONNECT","host":"b.example.com","port":443,)"
      R"("reason":"caller unknown: no process holds socket inode 42"})"
      "\n";
  const RunResult result = run({egressd_binary(), "suggest", "-"}, {.stdin_text = log});
  INFO(result.out << result.err);
  CHECK(result.exit_code == 0);
  CHECK(has(result.err, "<stdin>:2: skipped: not JSON: at byte "));
  CHECK(has(result.out, "#   line 2: malformed, skipped"));
  CHECK(has(result.out, "#   line 3: the caller was not identified"));
  CHECK(has(result.out, "- { host: \"a.example.com\", port: 443 }"));
  CHECK(has(result.out, "- { path: \"/usr/bin/wget\" }"));

  const TempDir dir;
  write_file(dir.file("suggested.yaml"), result.out);
  CHECK(run({egressd_binary(), "check", dir.file("suggested.yaml")}).exit_code == 0);
  CHECK(run({egressd_binary(), "suggest"}).exit_code == 2);
  CHECK(run({egressd_binary(), "suggest", dir.file("missing.log")}).exit_code == 1);
}

}  // namespace
}  // namespace egressd::test::e2e

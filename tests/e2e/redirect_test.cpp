// Redirect hops (the S3 case): an allowed mirror answers 302 to a pre-signed S3 URL; the denial of S3
// says which redirect led there; after the S3 host is added the download completes; and an endpoint's
// `redirects:` lets exactly the redirected URL through without allowing S3 in general.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/e2e/scenario.h"
#include "tests/support/local_origin.h"
#include "tests/support/test_ca.h"

namespace egressd::test::e2e {
namespace {

constexpr const char* kMirror = "mirror.example.com";
constexpr const char* kCdn = "cdn.example.com";
constexpr const char* kEdge = "edge.example.com";
constexpr const char* kS3 = "claude-dl.s3.eu-central-1.amazonaws.com";

// One HTTPS origin answering for every name (egressd resolves them all to 127.0.0.1).
struct Hosts {
  Hosts()
      : ca(TestCa::create(dir.path())), origin(LocalOrigin::https(ca.issue({kMirror, kCdn, kEdge, kS3}))) {}

  std::string url(const char* host, std::string_view path) const { return origin.url_as(host, path); }
  // A URL on `host` that redirects (302) to `to`.
  std::string redirect(const char* host, const std::string& to) const {
    return url(host, "/redirect?to=" + percent_encode(to));
  }
  std::string presigned() const { return url(kS3, "/any/claude/1.2.3/linux-x64?X-Amz-Signature=0123abcd"); }

  std::vector<std::string> egressd_args() const {
    std::vector<std::string> args{"--upstream-ca", ca.ca_path()};
    for (const char* host : {kMirror, kCdn, kEdge, kS3})
      args.insert(args.end(), {"--resolve", std::string(host) + "=127.0.0.1"});
    return args;
  }
  PolicyEndpoint endpoint(const char* host, std::string extra = {}) const {
    return {host, origin.port(), std::move(extra)};
  }

  TempDir dir;
  TestCa ca;
  LocalOrigin origin;
};

// curl -L through egressd trusting its CA: stdout is the body, then "|<code>|<connect code>". `extra`
// follows the URL (say "--next" and another transfer).
RunResult follow(const Egressd& egressd, const std::string& url, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{curl(),     "-q",
                                "-sS",      "-L",
                                "--proxy",  egressd.url(),
                                "--cacert", egressd.ca_path(),
                                "-w",       "|%{http_code}|%{http_connect}"};
  argv.push_back(url);
  argv.insert(argv.end(), extra.begin(), extra.end());  // options for the next URL after --next
  return run(argv);
}

TEST_CASE("S3 case: the mirror's 302 is followed to S3, denied, and the denial names the redirect" *
          doctest::timeout(60)) {
  Hosts hosts;
  Egressd egressd(policy_allowing({PolicyRule{"mirror", {curl()}, {hosts.endpoint(kMirror)}}}),
                  hosts.egressd_args());
  INFO(egressd.diagnostics());
  const std::string start = hosts.redirect(kMirror, hosts.presigned());
  const RunResult denied = follow(egressd, start);
  INFO(denied.out);
  CHECK(denied.out.ends_with("|000|403"));  // the last transfer (the redirect) got its CONNECT refused
  REQUIRE(egressd.wait_for_deny_lines(1));
  const Json line = egressd.deny_log_lines().at(0);
  CHECK(line["binary"] == curl());
  CHECK(line["pid"] == denied.pid);
  CHECK(line["host"] == kS3);
  CHECK(line["port"] == hosts.origin.port());
  CHECK(line["reason"].str().find(kS3) != std::string::npos);
  REQUIRE(line["redirected_by"].size() == 1);
  const Json& hop = line["redirected_by"].at(0);
  CHECK(hop["status"] == 302);
  CHECK(hop["method"] == "GET");
  CHECK(hop["from"] == start);
  CHECK(hop["to"] == hosts.presigned());

  // The fix: add the S3 host; after the reload the same download completes.
  egressd.write_policy_by_rename(policy_allowing({PolicyRule{"mirror", {curl()}, {hosts.endpoint(kMirror)}},
                                                  PolicyRule{"s3", {curl()}, {hosts.endpoint(kS3)}}}));
  REQUIRE(egressd.wait_for_stderr("policy reloaded: hash=", 10s));
  const RunResult allowed = follow(egressd, start);
  CHECK(allowed.out == "GET /any/claude/1.2.3/linux-x64?X-Amz-Signature=0123abcd\n|200|200");
}

TEST_CASE("a chain of three redirects is listed in order in the deny log and the 403 body" *
          doctest::timeout(60)) {
  Hosts hosts;
  Egressd egressd(
      policy_allowing({PolicyRule{
          "cdn", {curl()}, {hosts.endpoint(kMirror), hosts.endpoint(kCdn), hosts.endpoint(kEdge)}}}),
      hosts.egressd_args());
  INFO(egressd.diagnostics());
  const std::string third = hosts.redirect(kEdge, hosts.presigned());
  const std::string second = hosts.redirect(kCdn, third);
  const std::string first = hosts.redirect(kMirror, second);
  const RunResult denied = follow(egressd, first);
  CHECK(denied.out.ends_with("|000|403"));
  REQUIRE(egressd.wait_for_deny_lines(1));
  const Json chain = egressd.deny_log_lines().at(0)["redirected_by"];
  REQUIRE(chain.size() == 3);
  CHECK(chain.at(0)["from"] == first);
  CHECK(chain.at(0)["to"] == second);
  CHECK(chain.at(1)["from"] == second);
  CHECK(chain.at(1)["to"] == third);
  CHECK(chain.at(2)["from"] == third);
  CHECK(chain.at(2)["to"] == hosts.presigned());
}

TEST_CASE("an endpoint's redirects: lets exactly the redirected URL through, and nothing else on that host" *
          doctest::timeout(60)) {
  Hosts hosts;
  Egressd egressd(
      policy_allowing({PolicyRule{
          "mirror", {curl()}, {hosts.endpoint(kMirror, "        redirects: [\"*.s3.*.amazonaws.com\"]\n")}}}),
      hosts.egressd_args());
  INFO(egressd.diagnostics());
  const std::string start = hosts.redirect(kMirror, hosts.presigned());
  const RunResult fetched = follow(egressd, start);
  CHECK(fetched.out == "GET /any/claude/1.2.3/linux-x64?X-Amz-Signature=0123abcd\n|200|200");

  // In the same process, right after the granted fetch: another path on that host is refused...
  const std::string other_url = hosts.url(kS3, "/any/other-bucket/upload");
  const RunResult other = follow(
      egressd, start,
      {"--next", "--proxy", egressd.url(), "--cacert", egressd.ca_path(), "-w", "|%{http_code}", other_url});
  INFO(other.out);
  const std::string granted = "GET /any/claude/1.2.3/linux-x64?X-Amz-Signature=0123abcd\n|200|200";
  REQUIRE(other.out.starts_with(granted + "{"));
  REQUIRE(other.out.ends_with("\n|403"));
  const Json body = Json::parse(other.out.substr(granted.size(), other.out.size() - granted.size() - 5));
  CHECK(body["error"] == "policy_denied");
  CHECK(body["host"] == kS3);
  REQUIRE(body["redirected_by"].size() == 1);  // the 403 body, too, says how the caller got here
  CHECK(body["redirected_by"].at(0)["from"] == start);
  CHECK(body["redirected_by"].at(0)["status"] == 302);
  // ...and another process never had the grant.
  const RunResult stranger = follow(egressd, hosts.presigned());
  CHECK(stranger.out.ends_with("|000|403"));
  REQUIRE(egressd.wait_for_deny_lines(2));
  CHECK(egressd.deny_log_lines().at(0)["url"] == other_url);
  CHECK(egressd.deny_log_lines().at(1)["method"] == "CONNECT");
  // A POST to the very URL the redirect named is not a download: refused as well.
  const RunResult post = follow(egressd, start,
                                {"--next", "--proxy", egressd.url(), "--cacert", egressd.ca_path(), "-w",
                                 "|%{http_code}", "-d", "x", hosts.presigned()});
  CHECK(post.out.ends_with("|403"));
}

TEST_CASE("a plain-HTTP 301 is remembered too: the denial of its target names it, in the log and the 403" *
          doctest::timeout(60)) {
  const LocalOrigin origin = LocalOrigin::http();
  const std::string target = origin.url_as(kS3, "/any/claude/1.2.3/linux-x64?X-Amz-Signature=0123abcd");
  const std::string start = origin.url_as(kMirror, "/redirect?status=301&to=" + percent_encode(target));
  Egressd egressd(
      policy_allowing(curl(), kMirror, origin.port(), "mirror"),
      {"--resolve", std::string(kMirror) + "=127.0.0.1", "--resolve", std::string(kS3) + "=127.0.0.1"});
  INFO(egressd.diagnostics());
  const RunResult denied =
      run({curl(), "-q", "-sS", "-L", "--proxy", egressd.url(), "-w", "|%{http_code}", start});
  INFO(denied.out);
  REQUIRE(denied.out.ends_with("|403"));
  const Json body = Json::parse(denied.out.substr(0, denied.out.size() - 4));
  CHECK(body["host"] == kS3);
  REQUIRE(body["redirected_by"].size() == 1);
  CHECK(body["redirected_by"].at(0)["status"] == 301);
  CHECK(body["redirected_by"].at(0)["from"] == start);
  REQUIRE(egressd.wait_for_deny_lines(1));
  const Json line = egressd.deny_log_lines().at(0);
  CHECK(line["url"] == target);
  REQUIRE(line["redirected_by"].size() == 1);
  CHECK(line["redirected_by"].at(0)["method"] == "GET");
  CHECK(line["redirected_by"].at(0)["to"] == target);
  CHECK(origin.requests().size() == 1);  // only the mirror's request reached an origin
}

}  // namespace
}  // namespace egressd::test::e2e

// git over HTTPS through TLS termination: git's smart HTTP (git http-backend behind the test's origin)
// reached by git-remote-https, which is the process that opens the connection. HTTP rules can allow a
// clone and refuse a push on the same host; an unlisted git is refused at CONNECT.
#include <doctest/doctest.h>

#include <fstream>
#include <string>
#include <vector>

#include "tests/e2e/scenario.h"
#include "tests/support/local_origin.h"
#include "tests/support/test_ca.h"

namespace egressd::test::e2e {
namespace {

constexpr const char* kGitHost = "git.example.com";

// What the connection's /proc/PID/exe names: git-remote-https is a symlink to git-remote-http.
const std::string& git_remote_http() {
  static const std::string path = real_path_of("/usr/lib/git-core/git-remote-https");
  return path;
}

// Fetching needs GET info/refs for upload-pack and POST git-upload-pack; a push would start with
// GET info/refs?service=git-receive-pack, which no rule allows.
constexpr const char* kCloneOnly =
    "        protocol: rest\n"
    "        rules:\n"
    "          - allow: { method: GET, path: \"/git/*/info/refs\", query: { service: git-upload-pack } }\n"
    "          - allow: { method: POST, path: \"/git/*/git-upload-pack\" }\n";

// A bare repository project.git with one commit on main, served as https://git.example.com:PORT/git/,
// which accepts pushes (http.receivepack) so that only egressd can stop one.
struct GitServer {
  GitServer() : ca(TestCa::create(dir.path())), origin(LocalOrigin::https(ca.issue({kGitHost}))) {
    const std::string bare = dir.file("repos") + "/project.git";
    const std::string work = dir.file("work");
    must(git({"init", "-q", "--bare", "--initial-branch=main", bare}));
    must(git({"-C", bare, "config", "http.receivepack", "true"}));
    must(git({"init", "-q", "--initial-branch=main", work}));
    std::ofstream(work + "/README") << "egressd git test\n";
    must(git({"-C", work, "add", "README"}));
    must(git({"-C", work, "commit", "-q", "-m", "first commit"}));
    must(git({"-C", work, "push", "-q", bare, "main"}));
    origin.serve_git(dir.file("repos"));
  }

  // git with a config of its own: HOME is the test's directory, no system config, no prompts.
  RunResult git(std::vector<std::string> args, std::vector<std::string> config = {}) const {
    std::vector<std::string> argv{"git"};
    for (const std::string& setting : config) argv.insert(argv.end(), {"-c", setting});
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, {.env = {"HOME=" + dir.path(), "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
                              "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
                              "GIT_COMMITTER_EMAIL=t@example.com"}});
  }
  // git through egressd, trusting its CA.
  RunResult git_via(const Egressd& egressd, std::vector<std::string> args) const {
    return git(std::move(args), {"http.proxy=" + egressd.url(), "http.sslCAInfo=" + egressd.ca_path()});
  }
  static void must(const RunResult& result) {
    INFO(result.out, result.err);
    REQUIRE(result.exit_code == 0);
  }
  std::vector<std::string> egressd_args() const {
    return {"--resolve", std::string(kGitHost) + "=127.0.0.1", "--upstream-ca", ca.ca_path()};
  }
  std::string url() const { return origin.url_as(kGitHost, "/git/project.git"); }
  std::string policy(const std::string& binary, const std::string& endpoint_keys) const {
    return policy_allowing({PolicyRule{"git", {binary}, {{kGitHost, origin.port(), endpoint_keys}}}});
  }

  TempDir dir;
  TestCa ca;
  LocalOrigin origin;
};

bool received(const LocalOrigin& origin, std::string_view text) {
  for (const RecordedRequest& request : origin.requests()) {
    if (request.target.find(text) != std::string::npos) return true;
  }
  return false;
}

TEST_CASE("git clone over HTTPS through termination; HTTP rules refuse the push on the same host" *
          doctest::timeout(90)) {
  GitServer server;
  Egressd egressd(server.policy(git_remote_http(), kCloneOnly), server.egressd_args());
  INFO(egressd.diagnostics());
  const std::string clone = server.dir.file("clone");

  const RunResult cloned = server.git_via(egressd, {"clone", "-q", server.url(), clone});
  INFO(cloned.err);
  REQUIRE(cloned.exit_code == 0);
  CHECK(server.git({"-C", clone, "log", "--format=%s"}).out == "first commit\n");
  CHECK(server.origin.requests().at(0).sni == kGitHost);
  REQUIRE(egressd.wait_for_access_lines(2));
  CHECK(egressd.access_log_lines().at(0)["binary"] == git_remote_http());

  std::ofstream(clone + "/NEW") << "pushed\n";
  GitServer::must(server.git({"-C", clone, "add", "NEW"}));
  GitServer::must(server.git({"-C", clone, "commit", "-q", "-m", "second"}));
  const RunResult pushed = server.git_via(egressd, {"-C", clone, "push", "origin", "main"});
  CHECK(pushed.exit_code != 0);
  CHECK(pushed.err.find("403") != std::string::npos);
  CHECK_FALSE(received(server.origin, "git-receive-pack"));  // not even its info/refs

  REQUIRE(egressd.wait_for_deny_lines(1));
  const Json line = egressd.deny_log_lines().at(0);
  CHECK(line["binary"] == git_remote_http());
  CHECK(line["method"] == "GET");
  CHECK(line["url"] == server.url() + "/info/refs?service=git-receive-pack");
  CHECK(line["rule"] == "git");
  CHECK(line["http_rule"] == "no allow rule matched");
  CHECK(line["reason"].str().find("matches the method and path but not the query parameter(s) service") !=
        std::string::npos);
}

TEST_CASE("with the push rule added the same push goes through: the refusal was egressd's" *
          doctest::timeout(90)) {
  GitServer server;
  const std::string rules = std::string(kCloneOnly) +
                            "          - allow: { method: GET, path: \"/git/*/info/refs\", query: { service: "
                            "git-receive-pack } }\n"
                            "          - allow: { method: POST, path: \"/git/*/git-receive-pack\" }\n";
  Egressd egressd(server.policy(git_remote_http(), rules), server.egressd_args());
  INFO(egressd.diagnostics());
  const std::string clone = server.dir.file("clone");
  GitServer::must(server.git_via(egressd, {"clone", "-q", server.url(), clone}));
  std::ofstream(clone + "/NEW") << "pushed\n";
  GitServer::must(server.git({"-C", clone, "add", "NEW"}));
  GitServer::must(server.git({"-C", clone, "commit", "-q", "-m", "second"}));
  GitServer::must(server.git_via(egressd, {"-C", clone, "push", "-q", "origin", "main"}));
  CHECK(server.git({"-C", server.dir.file("repos") + "/project.git", "log", "--format=%s", "main"}).out ==
        "second\nfirst commit\n");
  CHECK(egressd.deny_log_lines().empty());
}

TEST_CASE("an unlisted git is refused at CONNECT and the deny log names git-remote-http" *
          doctest::timeout(90)) {
  GitServer server;
  Egressd egressd(server.policy(curl(), kCloneOnly), server.egressd_args());
  INFO(egressd.diagnostics());
  const RunResult cloned = server.git_via(egressd, {"clone", "-q", server.url(), server.dir.file("clone")});
  CHECK(cloned.exit_code != 0);
  CHECK(server.origin.requests().empty());
  REQUIRE(egressd.wait_for_deny_lines(1));
  const Json line = egressd.deny_log_lines().at(0);
  CHECK(line["binary"] == git_remote_http());
  CHECK(line["host"] == kGitHost);
  CHECK(line["port"] == server.origin.port());
}

}  // namespace
}  // namespace egressd::test::e2e

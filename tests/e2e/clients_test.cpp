// Real clients other than curl and git through TLS termination: python (urllib and requests), node
// (undici's fetch, NODE_EXTRA_CA_CERTS) and wget. Each one, listed with read-only access, gets the
// origin's answer to a GET and egressd's JSON 403 for a POST, which it can read like any response; the
// same client unlisted is refused at CONNECT. Then the trust set-up `egressd ca init` prints is run as
// printed and every client works through it with nothing but a proxy variable added.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/e2e/scenario.h"
#include "tests/support/local_origin.h"
#include "tests/support/test_ca.h"

namespace egressd::test::e2e {
namespace {

constexpr const char* kMirror = "mirror.example.com";

// Debian's node-undici: undici's fetch with a ProxyAgent (node's own fetch has no proxy support).
constexpr const char* kNodePath = "NODE_PATH=/usr/share/nodejs";

struct Mirror {
  Mirror() : ca(TestCa::create(dir.path())), origin(LocalOrigin::https(ca.issue({kMirror}))) {}
  std::vector<std::string> egressd_args() const {
    return {"--resolve", std::string(kMirror) + "=127.0.0.1", "--upstream-ca", ca.ca_path()};
  }
  std::string url(std::string_view path) const { return origin.url_as(kMirror, path); }
  std::string read_only_policy(const std::string& binary) const {
    return policy_allowing(
        {PolicyRule{"mirror",
                    {binary},
                    {{kMirror, origin.port(), "        protocol: rest\n        access: read-only\n"}}}});
  }
  TempDir dir;
  TestCa ca;
  LocalOrigin origin;
};

// What a client made of one request: the HTTP status it got ("" if none) and the body, or how it failed.
struct Answer {
  std::string status;
  std::string body;
  std::string error;  // the client's own words when it got no HTTP answer (a refused CONNECT)
};

// The scripts print "STATUS\nBODY" for an HTTP answer, "error: WORDS" otherwise.
Answer parse_answer(const RunResult& result) {
  INFO(result.err);
  if (result.out.starts_with("error: ")) return {"", "", result.out.substr(7)};
  const size_t newline = result.out.find('\n');
  if (newline == std::string::npos) return {"", "", "no output; stderr: " + result.err};
  return {result.out.substr(0, newline), result.out.substr(newline + 1), ""};
}

struct Client {
  std::string name;
  std::string exe;  // what egressd sees in /proc/PID/exe
  // One request through egressd trusting its CA; POST sends a small body.
  Answer (*fetch)(const Egressd& egressd, const std::string& url, const std::string& method);
};

constexpr const char* kUrllib = R"(
import ssl, sys, urllib.error, urllib.request
proxy, ca, url, method = sys.argv[1:5]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"https": proxy}),
                                     urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca)))
request = urllib.request.Request(url, data=b"payload" if method == "POST" else None, method=method)
try:
    with opener.open(request, timeout=20) as response:
        print(response.status); print(response.read().decode(), end="")
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode(), end="")
except OSError as e:
    print("error:", e)
)";

constexpr const char* kRequests = R"(
import sys, requests
proxy, ca, url, method = sys.argv[1:5]
try:
    r = requests.request(method, url, data=b"payload" if method == "POST" else None,
                         proxies={"https": proxy}, verify=ca, timeout=20)
    print(r.status_code); print(r.text, end="")
except requests.exceptions.RequestException as e:
    print("error:", e)
)";

constexpr const char* kNodeFetch = R"(
const {fetch, ProxyAgent} = require('undici');
const [proxy, url, method] = process.argv.slice(1);
fetch(url, {method, body: method === 'POST' ? 'payload' : undefined, dispatcher: new ProxyAgent(proxy)})
  .then(async (r) => { console.log(r.status); process.stdout.write(await r.text()); })
  .catch((e) => console.log(`error: ${e.message} ${e.cause ? e.cause.message : ''}`));
)";

const std::string& python() {
  static const std::string path = real_path_of("/usr/bin/python3");
  return path;
}

const std::vector<Client>& clients() {
  static const std::vector<Client> all = {
      {"python urllib", python(),
       [](const Egressd& egressd, const std::string& url, const std::string& method) {
         return parse_answer(
             run({"/usr/bin/python3", "-c", kUrllib, egressd.url(), egressd.ca_path(), url, method}));
       }},
      {"python requests", python(),
       [](const Egressd& egressd, const std::string& url, const std::string& method) {
         return parse_answer(
             run({"/usr/bin/python3", "-c", kRequests, egressd.url(), egressd.ca_path(), url, method}));
       }},
      {"node fetch", real_path_of("node"),
       [](const Egressd& egressd, const std::string& url, const std::string& method) {
         return parse_answer(run({"node", "-e", kNodeFetch, egressd.url(), url, method},
                                 {.env = {kNodePath, "NODE_EXTRA_CA_CERTS=" + egressd.ca_path()}}));
       }},
      {"wget", real_path_of("wget"),
       [](const Egressd& egressd, const std::string& url, const std::string& method) {
         std::vector<std::string> argv{"wget",
                                       "-q",
                                       "-S",
                                       "-O",
                                       "-",
                                       "--no-hsts",
                                       "--content-on-error",
                                       "--ca-certificate=" + egressd.ca_path(),
                                       "-e",
                                       "use_proxy=yes",
                                       "-e",
                                       "https_proxy=" + egressd.url()};
         if (method == "POST") argv.push_back("--post-data=payload");
         argv.push_back(url);
         const RunResult result = run(argv);
         // -S writes each response head to stderr: the last status line is the answer to the request.
         const size_t status = result.err.rfind("HTTP/1.1 ");
         if (status == std::string::npos) {
           return Answer{"", "", "exit " + std::to_string(result.exit_code) + ": " + result.err};
         }
         return Answer{result.err.substr(status + 9, 3), result.out, ""};
       }},
  };
  return all;
}

TEST_CASE("python, node and wget through termination: GET answered, POST refused by read-only with JSON" *
          doctest::timeout(120)) {
  Mirror mirror;
  for (const Client& client : clients()) {
    INFO("client: ", client.name);
    Egressd egressd(mirror.read_only_policy(client.exe), mirror.egressd_args());
    INFO(egressd.diagnostics());
    const Answer got = client.fetch(egressd, mirror.url("/hello"), "GET");
    CHECK(got.error == "");
    CHECK(got.status == "200");
    CHECK(got.body == "hello\n");

    const Answer refused = client.fetch(egressd, mirror.url("/echo"), "POST");
    REQUIRE(refused.status == "403");
    const Json body = Json::parse(refused.body);
    CHECK(body["error"] == "policy_denied");
    CHECK(body["policy"] == "mirror");
    CHECK(body["rule"] == "access: read-only");
    CHECK(body["method"] == "POST");
    CHECK(body["path"] == "/echo");
    CHECK(body["host"] == kMirror);
    CHECK(body["binary"] == client.exe);
    REQUIRE(egressd.wait_for_deny_lines(1));
    CHECK(egressd.deny_log_lines().at(0)["url"] == mirror.url("/echo"));
  }
  for (const RecordedRequest& request : mirror.origin.requests()) CHECK(request.method == "GET");
}

TEST_CASE("python, node and wget unlisted are refused at CONNECT and the deny log names each binary" *
          doctest::timeout(120)) {
  Mirror mirror;
  Egressd egressd(mirror.read_only_policy(curl()), mirror.egressd_args());
  INFO(egressd.diagnostics());
  size_t denials = 0;
  for (const Client& client : clients()) {
    INFO("client: ", client.name);
    const Answer refused = client.fetch(egressd, mirror.url("/hello"), "GET");
    CHECK(refused.status == "");  // the refused CONNECT is not an answer to the request
    CHECK(refused.error != "");
    REQUIRE(egressd.wait_for_deny_lines(++denials));
    const Json line = egressd.deny_log_lines().at(denials - 1);
    CHECK(line["binary"] == client.exe);
    CHECK(line["method"] == "CONNECT");
    CHECK(line["host"] == kMirror);
  }
  CHECK(mirror.origin.requests().empty());
}

// The text `egressd ca init` prints under "To let clients trust it:", run by bash before each client.
TEST_CASE("the trust set-up egressd ca init prints works as printed for curl, git, wget, python and node" *
          doctest::timeout(120)) {
  Mirror mirror;
  const RunResult init = run({egressd_binary(), "ca", "init", "--out", mirror.dir.file("corp-ca")});
  REQUIRE(init.exit_code == 0);
  const size_t start = init.out.find("To let clients trust it:\n");
  REQUIRE(start != std::string::npos);
  const std::string setup = init.out.substr(start + std::string_view("To let clients trust it:\n").size());

  const std::string repos = mirror.dir.file("repos");
  REQUIRE(run({"git", "init", "-q", "--bare", repos + "/project.git"}).exit_code == 0);
  mirror.origin.serve_git(repos);

  const std::vector<std::string> binaries = {curl(), real_path_of("/usr/lib/git-core/git-remote-https"),
                                             python(), real_path_of("node"), real_path_of("wget")};
  Egressd egressd(
      policy_allowing({PolicyRule{"clients", binaries, {{kMirror, mirror.origin.port()}}}}),
      {"--resolve", std::string(kMirror) + "=127.0.0.1", "--upstream-ca", mirror.ca.ca_path(), "--ca-cert",
       mirror.dir.file("corp-ca") + "/ca.pem", "--ca-key", mirror.dir.file("corp-ca") + "/ca-key.pem"});
  INFO(egressd.diagnostics());
  const std::string hello = mirror.url("/hello");
  const std::string node_fetch =
      "require('undici').fetch(process.argv[1], {dispatcher: new (require('undici').ProxyAgent)("
      "process.env.HTTPS_PROXY)}).then((r) => r.text()).then((t) => process.stdout.write(t))"
      ".catch((e) => { console.error(e); process.exit(1); })";
  struct Row {
    std::string name;
    std::vector<std::string> argv;
    std::string want;
  };
  const std::vector<Row> rows = {
      {"curl", {"curl", "-q", "-sSf", hello}, "hello\n"},
      {"git", {"git", "ls-remote", mirror.url("/git/project.git")}, ""},
      {"wget", {"wget", "-q", "-O", "-", "--no-hsts", hello}, "hello\n"},
      {"python urllib",
       {"/usr/bin/python3", "-c",
        "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode(), end='')",
        hello},
       "hello\n"},
      {"python requests",
       {"/usr/bin/python3", "-c", "import sys, requests; print(requests.get(sys.argv[1]).text, end='')",
        hello},
       "hello\n"},
      {"node", {"node", "-e", node_fetch, hello}, "hello\n"},
  };
  for (const Row& row : rows) {
    INFO("client: ", row.name);
    std::vector<std::string> argv{"bash", "-c", "set -e\n" + setup + "exec \"$@\"\n", "bash"};
    argv.insert(argv.end(), row.argv.begin(), row.argv.end());
    const RunResult result = run(argv, {.env = {"HOME=" + mirror.dir.path(), "https_proxy=" + egressd.url(),
                                                "HTTPS_PROXY=" + egressd.url(), kNodePath}});
    INFO(result.err);
    CHECK(result.exit_code == 0);
    CHECK(result.out == row.want);
  }
  CHECK(egressd.deny_log_lines().empty());
  // Every client went through egressd and its CA (the origin's own CA is trusted by none of them).
  REQUIRE(egressd.wait_for_access_lines(rows.size()));
}

}  // namespace
}  // namespace egressd::test::e2e

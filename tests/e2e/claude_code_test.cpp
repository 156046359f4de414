// The shipped Claude Code set-up, end to end: policies/claude-code.yaml as users get it (only each
// endpoint under test moved to the test's origin port and allowed to reach loopback, where --resolve
// puts every name), examples/claude-code/settings.json read by a real node the way Claude Code applies
// it, and examples/claude-code/env.sh sourced before real clients. The LLM gateway is a stand-in the test
// starts: POST /v1/messages answered with a server-sent-event stream, as the Messages API does.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/e2e/scenario.h"
#include "tests/support/local_origin.h"
#include "tests/support/server_stream.h"
#include "tests/support/tcp_server.h"
#include "tests/support/test_ca.h"
#include "tests/support/wait.h"

namespace egressd::test::e2e {
namespace {

// The names the shipped files use.
constexpr const char* kGateway = "llm-gateway.internal.example";
constexpr const char* kMirror = "mirror.internal.example";
constexpr const char* kGitHub = "github.com";
constexpr const char* kRaw = "raw.githubusercontent.com";
// A bucket host the mirror's `redirects:` patterns cover.
constexpr const char* kS3 = "mirror-artifacts.s3.eu-central-1.amazonaws.com";

// Debian's node-undici: node 20's own fetch has no proxy support; Claude Code brings its own agent.
constexpr const char* kNodePath = "NODE_PATH=/usr/share/nodejs";

std::string source_file(const std::string& relative) {
  return read_file(std::string(EGRESSD_SOURCE_DIR) + "/" + relative);
}

// `text` with the one occurrence of `from` replaced by `to`; fails the test when `from` is not there
// exactly once, so a change to the shipped file cannot leave the test checking something else.
std::string replace_once(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  INFO("looking for: ", from);
  REQUIRE(at != std::string::npos);
  REQUIRE(text.find(from, at + 1) == std::string::npos);
  return text.replace(at, from.size(), to);
}

// policies/claude-code.yaml with, for each endpoint named, the port of the test's origin and
// `allowed_ips: [127.0.0.1]` (egressd dials loopback only where an endpoint says so). Nothing else changes.
std::string shipped_policy_at(const std::vector<std::pair<std::string, uint16_t>>& endpoints) {
  std::string yaml = source_file("policies/claude-code.yaml");
  for (const auto& [host, port] : endpoints) {
    yaml = replace_once(yaml, "- host: " + host + "\n        port: 443\n",
                        "- host: " + host + "\n        port: " + std::to_string(port) +
                            "\n        allowed_ips: [127.0.0.1]\n");
  }
  return yaml;
}

std::vector<std::string> resolve_to_loopback(std::vector<std::string> hosts, const std::string& upstream_ca) {
  std::vector<std::string> args{"--upstream-ca", upstream_ca};
  for (const std::string& host : hosts) args.insert(args.end(), {"--resolve", host + "=127.0.0.1"});
  return args;
}

// What the stand-in gateway sends for POST /v1/messages: the Messages API's event stream for the answer
// "Hello from the gateway", one event per chunk. It holds back everything after the first text delta until
// release(), so a test can see the client read the stream while it is still open.
constexpr const char* kEventsBeforeHold[] = {
    R"({"type":"message_start","message":{"id":"msg_egressd","type":"message","role":"assistant","model":"claude-test","content":[],"stop_reason":null,"usage":{"input_tokens":12,"output_tokens":1}}})",
    R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})",
    R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}})",
};
constexpr const char* kEventsAfterHold[] = {
    R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" from the gateway"}})",
    R"({"type":"content_block_stop","index":0})",
    R"({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":5}})",
    R"({"type":"message_stop"})",
};

// What the node script below prints for that stream.
constexpr const char* kStreamAsRead =
    "status 200\n"
    "event message_start\n"
    "event content_block_start\n"
    "event content_block_delta\n"
    "text Hello\n"
    "event content_block_delta\n"
    "text  from the gateway\n"
    "event content_block_stop\n"
    "event message_delta\n"
    "event message_stop\n"
    "end\n";

struct GatewayRequest {
  std::string method;
  std::string target;
  std::string authorization;
  std::string body;
  std::string sni;
};

// A stand-in LLM gateway on 127.0.0.1: HTTPS with a certificate from the test's CA, keep-alive, requests
// with a Content-Length or chunked body. POST /v1/messages gets the event stream above; anything else a
// 404. Records every request. The destructor releases the hold, stops serving and joins its threads.
class StandInGateway {
 public:
  explicit StandInGateway(const ServerCert& cert)
      : tls_(cert), server_("127.0.0.1", [this](ServerConnection& io) { serve(io); }) {}
  StandInGateway(const StandInGateway&) = delete;
  StandInGateway& operator=(const StandInGateway&) = delete;
  ~StandInGateway() {
    release();
    server_.stop();
  }

  uint16_t port() const { return server_.port(); }
  void release() {
    {
      std::lock_guard lock(mutex_);
      released_ = true;
    }
    released_cv_.notify_all();
  }
  std::vector<GatewayRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  // Reads from the stream until `buffer` holds `size` bytes. False at EOF or when the server stops.
  static bool fill(ServerStream& stream, std::string& buffer, size_t size) {
    while (buffer.size() < size) {
      if (!stream.read_some(buffer)) return false;
    }
    return true;
  }
  // Reads until `buffer` contains `delimiter`; its offset, or nothing at EOF.
  static std::optional<size_t> fill_until(ServerStream& stream, std::string& buffer,
                                          std::string_view delimiter) {
    while (true) {
      if (const size_t at = buffer.find(delimiter); at != std::string::npos) return at;
      if (!stream.read_some(buffer)) return std::nullopt;
    }
  }
  static std::string lower(std::string text) {
    for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
  }

  // One request from `buffer` (which keeps what follows it), or nothing when the client is done.
  static std::optional<GatewayRequest> read_request(ServerStream& stream, std::string& buffer) {
    const std::optional<size_t> head_end = fill_until(stream, buffer, "\r\n\r\n");
    if (!head_end) return std::nullopt;
    const std::string head = buffer.substr(0, *head_end);
    buffer.erase(0, *head_end + 4);
    GatewayRequest request;
    const size_t line_end = head.find("\r\n");
    const std::string line = head.substr(0, line_end);
    request.method = line.substr(0, line.find(' '));
    request.target = line.substr(request.method.size() + 1, line.rfind(' ') - request.method.size() - 1);
    size_t content_length = 0;
    bool chunked = false;
    for (size_t at = line_end; at != std::string::npos && at < head.size();) {
      const size_t next = head.find("\r\n", at + 2);
      const std::string field =
          head.substr(at + 2, next == std::string::npos ? std::string::npos : next - at - 2);
      at = next;
      const size_t colon = field.find(':');
      if (colon == std::string::npos) continue;
      const std::string name = lower(field.substr(0, colon));
      const std::string value = field.substr(field.find_first_not_of(' ', colon + 1));
      if (name == "content-length") content_length = std::stoul(value);
      if (name == "transfer-encoding") chunked = lower(value) == "chunked";
      if (name == "authorization") request.authorization = value;
    }
    if (!chunked) {
      if (!fill(stream, buffer, content_length)) return std::nullopt;
      request.body = buffer.substr(0, content_length);
      buffer.erase(0, content_length);
      return request;
    }
    while (true) {  // chunk-size CRLF data CRLF ..., then 0 CRLF CRLF (no trailers)
      const std::optional<size_t> size_end = fill_until(stream, buffer, "\r\n");
      if (!size_end) return std::nullopt;
      const size_t size = std::stoul(buffer.substr(0, *size_end), nullptr, 16);
      buffer.erase(0, *size_end + 2);
      if (!fill(stream, buffer, size + 2)) return std::nullopt;
      request.body += buffer.substr(0, size);
      buffer.erase(0, size + 2);
      if (size == 0) return request;
    }
  }

  // The next request, or nothing when the client is done or sent what this stand-in cannot read (substr
  // and std::stoul throw then, and nothing may escape the server's thread).
  static std::optional<GatewayRequest> next_request(ServerStream& stream, std::string& buffer) {
    try {
      return read_request(stream, buffer);
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }

  static std::string event_chunk(const char* json) {
    const std::string type = Json::parse(json)["type"].str();
    const std::string event = "event: " + type + "\ndata: " + json + "\n\n";
    char size[16];
    std::snprintf(size, sizeof size, "%zx", event.size());
    return std::string(size) + "\r\n" + event + "\r\n";
  }

  bool send_events(ServerStream& stream) {
    std::string first =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        "Transfer-Encoding: chunked\r\n\r\n";
    for (const char* event : kEventsBeforeHold) first += event_chunk(event);
    if (!stream.send_all(first)) return false;
    {
      std::unique_lock lock(mutex_);
      if (!released_cv_.wait_for(lock, std::chrono::seconds(30), [this] { return released_; })) return false;
    }
    std::string rest;
    for (const char* event : kEventsAfterHold) rest += event_chunk(event);
    return stream.send_all(rest + "0\r\n\r\n");
  }

  void serve(ServerConnection& io) {
    TlsServerStream stream(io, tls_);
    if (!stream.handshake()) return;
    std::string buffer;
    while (std::optional<GatewayRequest> request = next_request(stream, buffer)) {
      request->sni = stream.sni();
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(*request);
      }
      const std::string path = request->target.substr(0, request->target.find('?'));
      if (request->method == "POST" && path == "/v1/messages") {
        if (!send_events(stream)) return;
        continue;
      }
      const std::string body =
          R"({"type":"error","error":{"type":"not_found_error","message":"no such path"}})";
      if (!stream.send_all("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n" + body)) {
        return;
      }
    }
    stream.finish();
  }

  TlsServerConfig tls_;
  mutable std::mutex mutex_;
  std::condition_variable released_cv_;
  bool released_ = false;                 // guarded by mutex_
  std::vector<GatewayRequest> requests_;  // guarded by mutex_
  TcpServer server_;                      // last: its threads use the members above, and it stops first
};

// Claude Code's side, in node: settings.json's env block goes into the environment, as Claude Code applies
// it. node reads NODE_EXTRA_CA_CERTS only when it starts, so when the block sets it, the script starts node
// again with the block in place (as a launcher, or env.sh, must). Then, like Claude Code: an undici
// ProxyAgent from HTTPS_PROXY, and POST ${ANTHROPIC_BASE_URL}/v1/messages?beta=true with stream: true,
// printing each event as it arrives.
//   node claude.js SETTINGS messages           -> "status N", then "event TYPE" / "text TEXT" lines, "end"
//   node claude.js SETTINGS request METHOD URL -> "status N" and the body, or "error: WORDS"
constexpr const char* kClaudeLikeClient = R"(
'use strict';
const fs = require('fs');
const [settingsPath, mode, method, url] = process.argv.slice(2);
const env = JSON.parse(fs.readFileSync(settingsPath, 'utf8')).env;
if (process.env.NODE_EXTRA_CA_CERTS !== env.NODE_EXTRA_CA_CERTS) {
  const again = require('child_process').spawnSync(process.execPath, process.argv.slice(1),
                                                   {env: {...process.env, ...env}, stdio: 'inherit'});
  process.exit(again.status === null ? 1 : again.status);
}
const {fetch, ProxyAgent} = require('undici');
const dispatcher = new ProxyAgent(process.env.HTTPS_PROXY);

async function messages() {
  const response = await fetch(`${process.env.ANTHROPIC_BASE_URL}/v1/messages?beta=true`, {
    method: 'POST', dispatcher,
    headers: {'content-type': 'application/json', 'anthropic-version': '2023-06-01',
              'authorization': `Bearer ${process.env.ANTHROPIC_AUTH_TOKEN}`},
    body: JSON.stringify({model: 'claude-test', max_tokens: 64, stream: true,
                          messages: [{role: 'user', content: 'Say hello'}]}),
  });
  console.log(`status ${response.status}`);
  if (response.status !== 200) return console.log(await response.text());
  const decoder = new TextDecoder();
  let pending = '';
  for await (const bytes of response.body) {
    pending += decoder.decode(bytes, {stream: true});
    for (let end = pending.indexOf('\n\n'); end >= 0; end = pending.indexOf('\n\n')) {
      const data = pending.slice(0, end).split('\n').filter((l) => l.startsWith('data: '));
      pending = pending.slice(end + 2);
      const event = JSON.parse(data.map((l) => l.slice(6)).join('\n'));
      console.log(`event ${event.type}`);
      if (event.type === 'content_block_delta') console.log(`text ${event.delta.text}`);
    }
  }
  console.log('end');
}

async function request() {
  const response = await fetch(url, {method, dispatcher, body: method === 'POST' ? '{}' : undefined});
  console.log(`status ${response.status}`);
  process.stdout.write(await response.text());
}

// Exit once answered, not when undici's idle connections time out.
(mode === 'messages' ? messages() : request())
  .catch((e) => console.log(`error: ${e.message} ${e.cause ? e.cause.message : ''}`))
  .finally(() => process.exit(0));
)";

// The Claude Code side of a test: the script and settings.json as shipped, with the proxy, the CA and the
// gateway's port of this test put in.
struct ClaudeSide {
  ClaudeSide(const Egressd& egressd, uint16_t gateway_port) {
    std::ofstream(script()) << kClaudeLikeClient;
    std::string text = source_file("examples/claude-code/settings.json");
    text = replace_once(text, R"("HTTPS_PROXY": "http://127.0.0.1:3128")",
                        R"("HTTPS_PROXY": ")" + egressd.url() + R"(")");
    text = replace_once(text, R"("NODE_EXTRA_CA_CERTS": "/var/lib/egressd/ca/ca.pem")",
                        R"("NODE_EXTRA_CA_CERTS": ")" + egressd.ca_path() + R"(")");
    text = replace_once(text, std::string(R"("ANTHROPIC_BASE_URL": "https://)") + kGateway + R"(")",
                        std::string(R"("ANTHROPIC_BASE_URL": "https://)") + kGateway + ":" +
                            std::to_string(gateway_port) + R"(")");
    write_file(settings(), text);
  }
  std::string script() const { return dir.file("claude.js"); }
  std::string settings() const { return dir.file("settings.json"); }
  // `node` running the script with `args` after the settings file.
  std::vector<std::string> argv(const std::string& node, std::vector<std::string> args) const {
    std::vector<std::string> all{node, script(), settings()};
    all.insert(all.end(), args.begin(), args.end());
    return all;
  }
  std::vector<std::string> env() const { return {kNodePath, "ANTHROPIC_AUTH_TOKEN=gateway-token-for-tests"}; }

  TempDir dir;
};

// A test's gateway and egressd running the shipped policy for it.
struct GatewayScene {
  GatewayScene()
      : ca(TestCa::create(dir.path())),
        gateway(ca.issue({kGateway})),
        egressd(shipped_policy_at({{kGateway, gateway.port()}}),
                resolve_to_loopback({kGateway}, ca.ca_path())),
        claude(egressd, gateway.port()) {}
  std::string gateway_url(const std::string& path) const {
    return std::string("https://") + kGateway + ":" + std::to_string(gateway.port()) + path;
  }

  TempDir dir;
  TestCa ca;
  StandInGateway gateway;
  Egressd egressd;
  ClaudeSide claude;
};

// The access-log line of the request for `url` inside a terminated tunnel.
std::optional<Json> access_line_for(const Egressd& egressd, const std::string& url) {
  for (const Json& line : egressd.access_log_lines()) {
    if (line.has("url") && line["url"] == url) return line;
  }
  return std::nullopt;
}

TEST_CASE("policies/claude-code.yaml passes egressd check without a warning" * doctest::timeout(30)) {
  const RunResult check =
      run({egressd_binary(), "check", std::string(EGRESSD_SOURCE_DIR) + "/policies/claude-code.yaml"});
  INFO(check.out, check.err);
  CHECK(check.exit_code == 0);
  CHECK(check.out.find("claude-code.yaml: ok (4 rules") != std::string::npos);
  CHECK(check.out.find("warning") == std::string::npos);
}

TEST_CASE(
    "node with settings.json's env posts /v1/messages through egressd and reads the SSE stream as it comes" *
    doctest::timeout(90)) {
  GatewayScene scene;
  INFO(scene.egressd.diagnostics());
  Child claude(scene.claude.argv("node", {"messages"}), {.env = scene.claude.env()});
  // The gateway holds the rest of its answer back: the first words arrive through egressd on their own.
  const bool first_words =
      wait_for([&] { return claude.out().find("text Hello\n") != std::string::npos; }, 30s);
  INFO(claude.out(), claude.err());
  REQUIRE(first_words);
  CHECK(claude.out().find("message_stop") == std::string::npos);
  scene.gateway.release();
  CHECK(claude.wait(30s) == 0);
  CHECK(claude.out() == kStreamAsRead);

  const std::vector<GatewayRequest> requests = scene.gateway.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].method == "POST");
  CHECK(requests[0].target == "/v1/messages?beta=true");
  CHECK(requests[0].authorization == "Bearer gateway-token-for-tests");
  CHECK(requests[0].sni == kGateway);
  CHECK(Json::parse(requests[0].body)["stream"].boolean());

  // egressd opened the TLS (node trusted its CA through NODE_EXTRA_CA_CERTS) and allowed the request
  // by the rule for the Messages API, naming the node it identified.
  const std::string url = scene.gateway_url("/v1/messages?beta=true");
  REQUIRE(wait_for([&] { return access_line_for(scene.egressd, url).has_value(); }, 5s));
  const Json line = *access_line_for(scene.egressd, url);
  CHECK(line["binary"] == real_path_of("node"));
  CHECK(line["rule"] == "claude-code");
  CHECK(line["http_rule"].str().find("POST /v1/messages") != std::string::npos);
  CHECK(scene.egressd.deny_log_lines().empty());
}

TEST_CASE("node with settings.json's env cannot go around the gateway: api.anthropic.com is refused" *
          doctest::timeout(60)) {
  GatewayScene scene;
  INFO(scene.egressd.diagnostics());
  const RunResult direct =
      run(scene.claude.argv("node", {"request", "POST", "https://api.anthropic.com/v1/messages"}),
          {.env = scene.claude.env()});
  INFO(direct.out, direct.err);
  CHECK(direct.out.starts_with("error: "));  // undici reports the refused CONNECT as an error
  REQUIRE(scene.egressd.wait_for_deny_lines(1));
  const Json line = scene.egressd.deny_log_lines().at(0);
  CHECK(line["binary"] == real_path_of("node"));
  CHECK(line["method"] == "CONNECT");
  CHECK(line["host"] == "api.anthropic.com");
  CHECK(line["reason"] == "endpoint api.anthropic.com:443 is not allowed by any policy");
  CHECK(scene.gateway.requests().empty());
}

TEST_CASE("on the gateway node reaches only the Messages API: another path gets egressd's JSON 403" *
          doctest::timeout(60)) {
  GatewayScene scene;
  INFO(scene.egressd.diagnostics());
  const RunResult refused =
      run(scene.claude.argv("node", {"request", "GET", scene.gateway_url("/admin/keys")}),
          {.env = scene.claude.env()});
  INFO(refused.out, refused.err);
  REQUIRE(refused.out.starts_with("status 403\n"));
  const Json body = Json::parse(refused.out.substr(std::string_view("status 403\n").size()));
  CHECK(body["error"] == "policy_denied");
  CHECK(body["policy"] == "claude-code");
  CHECK(body["method"] == "GET");
  CHECK(body["path"] == "/admin/keys");
  CHECK(body["binary"] == real_path_of("node"));
  CHECK(scene.gateway.requests().empty());
}

TEST_CASE("the native build, run from ~/.local/share/claude/versions/VERSION, reaches the gateway too" *
          doctest::timeout(90)) {
  GatewayScene scene;
  scene.gateway.release();
  INFO(scene.egressd.diagnostics());
  // A program at the native installer's path, in a mount namespace of its own with an empty /home, so
  // the machine's /home is left alone: node stands in for the native binary (egressd sees only the path).
  const std::string versioned = "/home/agent/.local/share/claude/versions/2.1.0";
  std::vector<std::string> argv{
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      "mount -t tmpfs tmpfs /home && mkdir -p \"${1%/*}\" && cp \"$2\" \"$1\" && shift 2 && exec \"$@\"",
      "sh",
      versioned,
      real_path_of("node")};
  const std::vector<std::string> client = scene.claude.argv(versioned, {"messages"});
  argv.insert(argv.end(), client.begin(), client.end());
  const RunResult native = run(argv, {.env = scene.claude.env()});
  INFO(native.out, native.err);
  CHECK(native.exit_code == 0);
  CHECK(native.out == kStreamAsRead);
  const std::string url = scene.gateway_url("/v1/messages?beta=true");
  REQUIRE(wait_for([&] { return access_line_for(scene.egressd, url).has_value(); }, 5s));
  CHECK((*access_line_for(scene.egressd, url))["binary"] == versioned);
}

// The mirror and S3 (and GitHub) behind one HTTPS origin answering for every name.
struct PublicHosts {
  PublicHosts()
      : ca(TestCa::create(dir.path())), origin(LocalOrigin::https(ca.issue({kMirror, kS3, kGitHub, kRaw}))) {}
  std::string url(const char* host, std::string_view path) const { return origin.url_as(host, path); }
  std::vector<std::string> egressd_args() const {
    return resolve_to_loopback({kMirror, kS3, kGitHub, kRaw}, ca.ca_path());
  }

  TempDir dir;
  TestCa ca;
  LocalOrigin origin;
};

constexpr const char* kPresignedPath = "/any/claude/2.1.0/linux-x64/claude?X-Amz-Signature=0123abcd";

TEST_CASE(
    "mirror: curl from an install script and wget follow the 302 to S3, and S3 asked directly is refused" *
    doctest::timeout(90)) {
  PublicHosts hosts;
  Egressd egressd(shipped_policy_at({{kMirror, hosts.origin.port()}}), hosts.egressd_args());
  INFO(egressd.diagnostics());
  const std::string presigned = hosts.url(kS3, kPresignedPath);
  const std::string download = hosts.url(kMirror, "/redirect?to=" + percent_encode(presigned));
  const std::string fetched = std::string("GET ") + kPresignedPath + "\n";

  // `curl ... | bash` style: bash is not listed, the curl it runs is.
  const RunResult script = run({"bash", "-c", "curl -q -fsSL --proxy \"$1\" --cacert \"$2\" \"$3\"", "bash",
                                egressd.url(), egressd.ca_path(), download});
  INFO(script.err);
  CHECK(script.out == fetched);
  const RunResult wget = run({"wget", "-q", "-O", "-", "--no-hsts", "--ca-certificate=" + egressd.ca_path(),
                              "-e", "use_proxy=yes", "-e", "https_proxy=" + egressd.url(), download});
  INFO(wget.err);
  CHECK(wget.out == fetched);
  CHECK(egressd.deny_log_lines().empty());

  // Without the mirror's redirect, S3 is not allowed at all.
  CHECK(connect_status(curl(), egressd, presigned) == "403");
  REQUIRE(egressd.wait_for_deny_lines(1));
  const Json line = egressd.deny_log_lines().at(0);
  CHECK(line["binary"] == curl());
  CHECK(line["host"] == kS3);
  CHECK(line["reason"] == std::string("endpoint ") + kS3 + ":" + std::to_string(hosts.origin.port()) +
                              " is not allowed by any policy");
  size_t s3_fetches = 0;
  for (const RecordedRequest& request : hosts.origin.requests()) s3_fetches += request.sni == kS3 ? 1 : 0;
  CHECK(s3_fetches == 2);
}

TEST_CASE("github.com: git fetches through git-remote-https, and a push outside your-org is refused" *
          doctest::timeout(90)) {
  PublicHosts hosts;
  const std::string repos = hosts.dir.file("repos");
  const std::string work = hosts.dir.file("work");
  auto git = [&](std::vector<std::string> args, std::vector<std::string> config = {}) {
    std::vector<std::string> argv{"git"};
    for (const std::string& setting : config) argv.insert(argv.end(), {"-c", setting});
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, {.env = {"HOME=" + hosts.dir.path(), "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
                              "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
                              "GIT_COMMITTER_EMAIL=t@example.com"}});
  };
  REQUIRE(git({"init", "-q", "--bare", "--initial-branch=main", repos + "/project.git"}).exit_code == 0);
  REQUIRE(git({"-C", repos + "/project.git", "config", "http.receivepack", "true"}).exit_code == 0);
  REQUIRE(git({"init", "-q", "--initial-branch=main", work}).exit_code == 0);
  std::ofstream(work + "/README") << "egressd\n";
  REQUIRE(git({"-C", work, "add", "README"}).exit_code == 0);
  REQUIRE(git({"-C", work, "commit", "-q", "-m", "first"}).exit_code == 0);
  REQUIRE(git({"-C", work, "push", "-q", repos + "/project.git", "main"}).exit_code == 0);
  hosts.origin.serve_git(repos);

  Egressd egressd(shipped_policy_at({{kGitHub, hosts.origin.port()}}), hosts.egressd_args());
  INFO(egressd.diagnostics());
  const std::vector<std::string> via{"http.proxy=" + egressd.url(), "http.sslCAInfo=" + egressd.ca_path()};
  // The origin serves repositories under /git/: to the policy this is organisation "git", not your-org.
  const std::string remote = hosts.url(kGitHub, "/git/project.git");
  const RunResult fetched = git({"ls-remote", remote}, via);
  INFO(fetched.err);
  CHECK(fetched.exit_code == 0);
  CHECK(fetched.out.find("refs/heads/main") != std::string::npos);

  const RunResult pushed = git({"-C", work, "push", remote, "main:refs/heads/exfiltrate"}, via);
  INFO(pushed.err);
  CHECK(pushed.exit_code != 0);
  CHECK(pushed.err.find("403") != std::string::npos);
  REQUIRE(egressd.wait_for_deny_lines(1));
  const Json line = egressd.deny_log_lines().at(0);
  CHECK(line["binary"] == real_path_of("/usr/lib/git-core/git-remote-https"));
  CHECK(line["rule"] == "github-git");
  CHECK(line["url"] == remote + "/info/refs?service=git-receive-pack");
  CHECK(git({"-C", repos + "/project.git", "rev-parse", "--verify", "-q", "exfiltrate"}).exit_code != 0);
}

TEST_CASE("raw.githubusercontent.com: curl reads, and curl's POST and wget are refused" *
          doctest::timeout(60)) {
  PublicHosts hosts;
  Egressd egressd(shipped_policy_at({{kRaw, hosts.origin.port()}}), hosts.egressd_args());
  INFO(egressd.diagnostics());
  const std::string file = hosts.url(kRaw, "/any/your-org/tools/main/install.sh");
  const RunResult read = run({curl(), "-q", "-sS", "--proxy", egressd.url(), "--cacert", egressd.ca_path(),
                              "-w", "|%{http_code}", file});
  CHECK(read.out == "GET /any/your-org/tools/main/install.sh\n|200");
  const RunResult post = run({curl(), "-q", "-sS", "--proxy", egressd.url(), "--cacert", egressd.ca_path(),
                              "-o", "/dev/null", "-w", "%{http_code}", "-d", "x", file});
  CHECK(post.out == "403");
  const RunResult wget = run({"wget", "-q", "-O", "-", "--no-hsts", "--ca-certificate=" + egressd.ca_path(),
                              "-e", "use_proxy=yes", "-e", "https_proxy=" + egressd.url(), file});
  CHECK(wget.exit_code != 0);
  REQUIRE(egressd.wait_for_deny_lines(2));
  const Json wget_line = egressd.deny_log_lines().at(1);
  CHECK(wget_line["binary"] == real_path_of("wget"));
  CHECK(wget_line["method"] == "CONNECT");
  CHECK(wget_line["host"] == kRaw);
}

TEST_CASE(
    "env.sh: curl and git work through egressd with nothing else set, and python, pip and npm go to it too" *
    doctest::timeout(120)) {
  PublicHosts hosts;
  const std::string repos = hosts.dir.file("repos");
  REQUIRE(run({"git", "init", "-q", "--bare", repos + "/project.git"}).exit_code == 0);
  hosts.origin.serve_git(repos);
  Egressd egressd(shipped_policy_at({{kGitHub, hosts.origin.port()}, {kRaw, hosts.origin.port()}}),
                  hosts.egressd_args());
  INFO(egressd.diagnostics());
  const std::string env_sh = std::string(EGRESSD_SOURCE_DIR) + "/examples/claude-code/env.sh";
  auto with_env_sh = [&](std::vector<std::string> command) {
    std::vector<std::string> argv{"bash", "-c", ". \"$0\" && exec \"$@\"", env_sh};
    argv.insert(argv.end(), command.begin(), command.end());
    return run(argv, {.env = {"HOME=" + hosts.dir.path(), "EGRESSD=" + egressd.host_port(),
                              "EGRESSD_CA=" + egressd.ca_path(), "GIT_CONFIG_NOSYSTEM=1",
                              "GIT_TERMINAL_PROMPT=0", "npm_config_cache=" + hosts.dir.file("npm-cache")}});
  };
  const RunResult curl_run = with_env_sh({"curl", "-q", "-sSf", hosts.url(kRaw, "/any/file")});
  INFO(curl_run.err);
  CHECK(curl_run.out == "GET /any/file\n");
  const RunResult git_run = with_env_sh({"git", "ls-remote", hosts.url(kGitHub, "/git/project.git")});
  INFO(git_run.err);
  CHECK(git_run.exit_code == 0);
  CHECK(egressd.deny_log_lines().empty());

  // Not allowed by this policy, but sent to egressd (which names each program): the proxy settings reach
  // them.
  const std::string python = real_path_of("/usr/bin/python3");
  const std::string node = real_path_of("node");
  with_env_sh(
      {"/usr/bin/python3", "-c", "import requests; requests.get('https://pypi.org/simple/', timeout=20)"});
  with_env_sh(
      {"/usr/bin/python3", "-c",
       "import urllib.request; urllib.request.urlopen('https://files.pythonhosted.org/', timeout=20)"});
  with_env_sh({"/usr/bin/python3", "-m", "pip", "download", "--no-deps", "--retries", "0", "--timeout", "20",
               "-d", hosts.dir.file("pip"), "egressd-no-such-package"});
  with_env_sh({"npm", "view", "egressd-no-such-package", "--fetch-retries=0"});
  REQUIRE(egressd.wait_for_deny_lines(4));
  std::vector<std::pair<std::string, std::string>> refused;
  for (const Json& line : egressd.deny_log_lines())
    refused.emplace_back(line["binary"].str(), line["host"].str());
  CHECK(std::count(refused.begin(), refused.end(), std::pair{python, std::string("pypi.org")}) >= 2);
  CHECK(std::count(refused.begin(), refused.end(),
                   std::pair{python, std::string("files.pythonhosted.org")}) == 1);
  CHECK(std::count(refused.begin(), refused.end(), std::pair{node, std::string("registry.npmjs.org")}) >= 1);
}

}  // namespace
}  // namespace egressd::test::e2e

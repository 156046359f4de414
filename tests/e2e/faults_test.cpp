// Faults egressd must ride out: an upstream that refuses, resets mid-response or stalls; a name that
// does not resolve; a client that vanishes mid-handshake; a policy file deleted, truncated, replaced by
// a directory; running out of file descriptors. Each time the client gets a clear answer or a clean
// close, nothing is allowed that was not, and egressd keeps serving.
#include <doctest/doctest.h>
#include <sys/socket.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/e2e/scenario.h"
#include "tests/support/http_response.h"
#include "tests/support/local_origin.h"
#include "tests/support/local_tcp_echo.h"
#include "tests/support/raw_client.h"
#include "tests/support/tcp_server.h"

namespace egressd::test::e2e {
namespace {

uint16_t closed_port() {
  TcpServer server("127.0.0.1", [](ServerConnection&) {});
  return server.port();  // closed when `server` goes
}

TEST_CASE("an upstream that refuses the connection gets 502 naming the refusal" * doctest::timeout(60)) {
  const uint16_t port = closed_port();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", port));
  INFO(egressd.diagnostics());
  const Got got = get_through(egressd, "http://127.0.0.1:" + std::to_string(port) + "/");
  CHECK(got.status == "502");
  const Json body = Json::parse(got.body);
  CHECK(body["error"] == "upstream_unreachable");
  CHECK(body["detail"].str().find("connection refused") != std::string::npos);
}

TEST_CASE("an upstream that resets mid-response cuts only that client, which sees a short transfer" *
          doctest::timeout(60)) {
  TcpServer resetting("127.0.0.1", [](ServerConnection& io) {
    std::string request;
    while (request.find("\r\n\r\n") == std::string::npos) {
      if (!io.read_some(request)) return;
    }
    io.send_all("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + std::string(1000, 'x'));
    io.reset_on_close();
  });
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(
      {PolicyRule{"both", {curl()}, {{"127.0.0.1", resetting.port()}, {"127.0.0.1", origin.port()}}}}));
  INFO(egressd.diagnostics());
  const Got cut = get_through(egressd, "http://127.0.0.1:" + std::to_string(resetting.port()) + "/big");
  CHECK(cut.exit_code != 0);  // curl: 18 (partial file) or 56 (receive failure), never a clean 200
  CHECK(cut.body.size() <= 1000);
  CHECK(get_through(egressd, origin.url("/hello")).body == "hello\n");  // egressd goes on
}

TEST_CASE("an upstream that stalls mid-response is cut at --idle-timeout-ms" * doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()), {"--idle-timeout-ms", "500"});
  INFO(egressd.diagnostics());
  const auto started = std::chrono::steady_clock::now();
  const Got stalled = get_through(egressd, origin.url("/slow?n=100000&chunk=1000&delay_ms=1&hold_at=5000"));
  const auto took = std::chrono::steady_clock::now() - started;
  origin.release_holds();
  CHECK(stalled.exit_code != 0);
  CHECK(took >= 400ms);
  CHECK(took < 5s);
  CHECK(get_through(egressd, origin.url("/hello")).body == "hello\n");
}

TEST_CASE("an allowed name that does not resolve gets 502 dns_failed" * doctest::timeout(60)) {
  // In a network namespace of its own egressd's resolver is unreachable: no query leaves the machine.
  Egressd egressd(policy_allowing(curl(), "nothing.example.invalid", 80), {}, PolicyLayout::File, 10'000ms,
                  EgressdNetwork::Isolated);
  INFO(egressd.diagnostics());
  const Got got = get_through(egressd, "http://nothing.example.invalid/");
  CHECK(got.status == "502");
  CHECK(Json::parse(got.body)["error"] == "dns_failed");
}

TEST_CASE("a client that vanishes mid-handshake is cleaned up and egressd keeps serving" *
          doctest::timeout(60)) {
  LocalTcpEcho echo;
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(
      policy_allowing({PolicyRule{
          "both", {self_exe(), curl()}, {{"127.0.0.1", echo.port()}, {"127.0.0.1", origin.port()}}}}),
      {"--log-level", "debug"});
  INFO(egressd.diagnostics());
  {
    RawClient client("127.0.0.1", egressd.port());
    REQUIRE(
        client.send("CONNECT " + echo.host_port() + " HTTP/1.1\r\nHost: " + echo.host_port() + "\r\n\r\n"));
    REQUIRE(client.read_until("\r\n\r\n").starts_with("HTTP/1.1 200"));
    REQUIRE(
        client.send(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11)));  // a ClientHello begun
  }                                                                                     // and gone
  REQUIRE(egressd.wait_for_stderr("[S1] closing"));
  CHECK(get_through(egressd, origin.url("/hello")).body == "hello\n");
}

TEST_CASE("a policy file deleted, emptied or replaced by a directory keeps the last good policy" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  const std::string good = policy_allowing(curl(), "127.0.0.1", origin.port());
  Egressd egressd(good);
  INFO(egressd.diagnostics());
  const std::string path = egressd.policy_path();
  size_t rejected = 0;
  const auto still_serving = [&](const char* what) {
    INFO("after: ", std::string(what));
    REQUIRE(egressd.wait_for_stderr_count("policy rejected (", ++rejected, 10s));
    CHECK(egressd.stderr_text().find("policy rejected (" + std::to_string(rejected) + " since start)") !=
          std::string::npos);
    CHECK(get_through(egressd, origin.url("/hello")).body == "hello\n");
  };
  std::filesystem::remove(path);
  still_serving("deleted");
  egressd.write_policy_in_place("");
  still_serving("emptied");
  std::filesystem::remove(path);
  std::filesystem::create_directory(path);
  egressd.sighup();  // a directory appearing is not a file change to watch for; SIGHUP asks anyway
  still_serving("replaced by a directory");
  std::filesystem::remove(path);
  egressd.write_policy_by_rename(policy_allowing({}));  // a valid policy that allows nothing: applied
  REQUIRE(egressd.wait_for_stderr("policy reloaded: hash=", 10s));
  CHECK(get_through(egressd, origin.url("/hello")).status == "403");
}

TEST_CASE("near its open-file limit egressd answers 503 instead of running out, and recovers" *
          doctest::timeout(90)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()), {"--log-level", "debug"});
  INFO(egressd.diagnostics());
  // 256 descriptors, 64 of them reserved, two per session: room for 96 clients.
  REQUIRE(run({"prlimit", "--pid", std::to_string(egressd.pid()), "--nofile=256:256"}).exit_code == 0);
  std::vector<std::unique_ptr<RawClient>> hogs;
  for (int i = 0; i < 150; ++i) {
    hogs.push_back(std::make_unique<RawClient>("127.0.0.1", egressd.port()));
    hogs.back()->send("GET ");  // a head under way: the session stays open
  }
  REQUIRE(egressd.wait_for_stderr_count("as many as its open-file limit allows", 54, 10s));
  const HttpResponse refused = HttpResponse::parse(hogs.back()->read_until_close(10s));
  CHECK(refused.status == 503);
  CHECK(Json::parse(refused.body)["error"] == "too_many_connections");
  CHECK(egressd.stderr_count("oo many open files") == 0);  // it never actually ran out

  hogs.clear();
  REQUIRE(egressd.wait_for_stderr_count("] closing (", 150, 10s));
  CHECK(get_through(egressd, origin.url("/hello")).body == "hello\n");
}

}  // namespace
}  // namespace egressd::test::e2e

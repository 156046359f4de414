// Requests egressd refuses before any policy decision: https:// in absolute-form, garbage, a huge head.
#include <doctest/doctest.h>

#include "tests/e2e/scenario.h"
#include "tests/support/http_response.h"
#include "tests/support/local_origin.h"
#include "tests/support/raw_client.h"

namespace egressd::test::e2e {
namespace {

HttpResponse send_raw(const Egressd& egressd, const std::string& request) {
  RawClient client("127.0.0.1", egressd.port());
  client.send(request);  // may stop early: egressd can answer and close before reading everything
  const std::string bytes = client.read_until_close(10s);
  CHECK(client.peer_closed());
  return HttpResponse::parse(bytes);
}

TEST_CASE("an https:// absolute-form request gets 400 telling the client to use CONNECT" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  const HttpResponse response =
      send_raw(egressd, "GET https://" + origin.host_port() +
                            "/hello HTTP/1.1\r\nHost: " + origin.host_port() + "\r\n\r\n");
  CHECK(response.status == 400);
  CHECK(response.body.find("CONNECT") != std::string::npos);
  CHECK(origin.connections_accepted() == 0);
}

TEST_CASE("a malformed request line gets 400" * doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  CHECK(send_raw(egressd, "GARBAGE\r\n\r\n").status == 400);
  CHECK(origin.connections_accepted() == 0);
}

TEST_CASE("a request with a 64 KiB header gets 431" * doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  const std::string request = "GET " + origin.url("/hello") + " HTTP/1.1\r\nHost: " + origin.host_port() +
                              "\r\nX-Big: " + std::string(64 * 1024, 'a') + "\r\n\r\n";
  CHECK(send_raw(egressd, request).status == 431);
  CHECK(origin.connections_accepted() == 0);
}

}  // namespace
}  // namespace egressd::test::e2e

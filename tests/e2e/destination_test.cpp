// Destination safety (SSRF): an allowed name is resolved, and every address is checked before anything is
// dialled. Loopback only where the endpoint names it; private ranges only for an exact host or through
// allowed_ips; link-local, metadata and non-unicast never; egressd never dials its own listener.
// Loopback runs on the host network. The other classes run with egressd in a network namespace of its
// own (only loopback there), so a dial that should not happen fails as unreachable (a 502) instead of
// a 403, and no packet can leave the machine either way.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/e2e/scenario.h"
#include "tests/support/local_origin.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace egressd::test::e2e {
namespace {

TEST_CASE("a name resolving to loopback is refused before any dial unless its endpoint allows loopback" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  const std::string url = "http://mirror.test:" + std::to_string(origin.port()) + "/hello";
  Egressd egressd(policy_allowing({PolicyRule{
                      "mirror", {curl()}, {{"mirror.test", origin.port(), "", /*allowed_ips=*/{}}}}}),
                  {"--resolve", "mirror.test=127.0.0.1"});
  INFO(egressd.diagnostics());

  const Got refused = get_through(egressd, url);
  REQUIRE(refused.status == "403");
  const Json body = Json::parse(refused.body);
  CHECK(body["error"] == "ssrf_denied");
  CHECK(body["reason"].str().find("mirror.test resolves to 127.0.0.1 (loopback") != std::string::npos);
  CHECK(connect_status(curl(), egressd, url) == "403");  // a CONNECT is checked the same way
  CHECK(origin.connections_accepted() == 0);

  REQUIRE(egressd.wait_for_deny_lines(2));
  const Json line = egressd.deny_log_lines().at(0);
  CHECK(line["engine"] == "ssrf");
  CHECK(line["addresses"].contains("127.0.0.1"));
  CHECK(line["rules_considered"].contains("mirror"));
  CHECK(line["binary"] == curl());

  // The way out the reason names: allowed_ips on the endpoint.
  egressd.write_policy_by_rename(
      policy_allowing({PolicyRule{"mirror", {curl()}, {{"mirror.test", origin.port(), "", {"127.0.0.1"}}}}}));
  REQUIRE(egressd.wait_for_stderr("policy reloaded: hash=", 10s));
  const Got served = get_through(egressd, url);
  CHECK(served.status == "200");
  CHECK(served.body == "hello\n");
}

TEST_CASE("an endpoint whose host is the loopback literal reaches it, by that literal only" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  Egressd egressd(policy_allowing(curl(), "127.0.0.1", origin.port()));
  INFO(egressd.diagnostics());
  CHECK(get_through(egressd, origin.url("/hello")).status == "200");
  // ::ffff:127.0.0.1 is not the name the endpoint gives: no rule matches it.
  CHECK(
      get_through(egressd, "http://[::ffff:127.0.0.1]:" + std::to_string(origin.port()) + "/hello").status ==
      "403");
  CHECK(origin.connections_accepted() == 1);
}

TEST_CASE("egressd never dials its own listener, even where the policy names its address and port" *
          doctest::timeout(60)) {
  Egressd egressd(policy_allowing({}));
  INFO(egressd.diagnostics());
  egressd.write_policy_by_rename(policy_allowing(curl(), "127.0.0.1", egressd.port(), "loop"));
  REQUIRE(egressd.wait_for_stderr("policy reloaded: hash=", 10s));
  const Got refused = get_through(egressd, "http://127.0.0.1:" + std::to_string(egressd.port()) + "/x");
  REQUIRE(refused.status == "403");
  CHECK(Json::parse(refused.body)["error"] == "ssrf_denied");
  CHECK(Json::parse(refused.body)["reason"].str().find("egressd's own listening address") !=
        std::string::npos);
  REQUIRE(egressd.wait_for_deny_lines(1));
  CHECK(egressd.deny_log_lines().size() == 1);  // one request, not a loop of them
}

TEST_CASE("address classes in an isolated network: what is refused before a dial, what is dialled" *
          doctest::timeout(120)) {
  constexpr uint16_t kPort = 8080;
  // The wildcard endpoint has no allowed_ips; db.internal.test is named exactly; ops.* lists a range.
  const std::string policy = policy_allowing({PolicyRule{"internal",
                                                         {curl()},
                                                         {{"*.internal.test", kPort, "", {}},
                                                          {"db.internal.test", kPort, "", {}},
                                                          {"metadata.internal.test", kPort, "", {}},
                                                          {"*.ops.test", kPort, "", {"10.20.0.0/16"}}}}});
  struct Row {
    const char* host;
    const char* address;
    const char* want;    // "403": refused before any dial; "502": allowed, dialled, unreachable here
    const char* reason;  // in the 403's reason
  };
  const std::vector<Row> rows = {
      {"app.internal.test", "10.20.30.40", "403", "(private, 10.0.0.0/8"},
      {"cgnat.internal.test", "100.64.1.1", "403", "(private, 100.64.0.0/10"},
      {"ula.internal.test", "fd12::1", "403", "(private, fc00::/7"},
      {"mapped.internal.test", "::ffff:192.168.1.1", "403", "private, 192.168.0.0/16"},
      {"nat64.internal.test", "64:ff9b::a9fe:a9fe", "403", "metadata"},
      {"link.internal.test", "169.254.10.10", "403", "link-local"},
      {"metadata.internal.test", "169.254.169.254", "403", "never connects to"},
      {"mcast.internal.test", "224.0.0.251", "403", "never connects to"},
      {"zero.internal.test", "0.0.0.0", "403", "never connects to"},
      {"db.internal.test", "10.20.30.40", "502", ""},
      {"a.ops.test", "10.20.1.2", "502", ""},
      {"b.ops.test", "10.21.1.2", "403", "not in allowed_ips of policy 'internal'"},
      {"public.internal.test", "198.51.100.7", "403", "documentation"},
  };
  std::vector<std::string> args;
  for (const Row& row : rows)
    args.insert(args.end(), {"--resolve", std::string(row.host) + "=" + row.address});
  args.insert(args.end(), {"--connect-timeout-ms", "3000"});
  Egressd egressd(policy, args, PolicyLayout::File, 10'000ms, EgressdNetwork::Isolated);
  INFO(egressd.diagnostics());
  size_t denials = 0;
  for (const Row& row : rows) {
    INFO("host: ", std::string(row.host), " -> ", std::string(row.address));
    const Got got =
        get_through(egressd, "http://" + std::string(row.host) + ":" + std::to_string(kPort) + "/");
    INFO("body: ", got.body);
    CHECK(got.status == row.want);
    if (std::string_view(row.want) != "403") continue;
    const Json body = Json::parse(got.body);
    CHECK(body["error"] == "ssrf_denied");
    CHECK(body["reason"].str().find(row.reason) != std::string::npos);
    REQUIRE(egressd.wait_for_deny_lines(++denials));
    CHECK(egressd.deny_log_lines().at(denials - 1)["engine"] == "ssrf");
  }
}

TEST_CASE("a hostless endpoint with allowed_ips admits IP-literal CONNECTs in its range, never a name" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  const std::string range_policy =
      "version: 1\n"
      "network_policies:\n"
      "  loopback-range:\n"
      "    endpoints:\n"
      "      - { allowed_ips: [127.0.0.0/8], port: " +
      std::to_string(origin.port()) +
      " }\n"
      "    binaries:\n"
      "      - { path: \"" +
      curl() + "\" }\n";
  Egressd egressd(range_policy);
  INFO(egressd.diagnostics());
  CHECK(connect_status(curl(), egressd, origin.url("/hello")) == "200");
  // A name is not an address: the hostless endpoint never matches one, whatever it resolves to.
  CHECK(connect_status(curl(), egressd, "http://localhost:" + std::to_string(origin.port()) + "/hello") ==
        "403");
  CHECK(origin.connections_accepted() == 1);
}

// A DNS server for egressd's isolated network, at the address /etc/resolv.conf names (so egressd's own
// resolver asks it): the first A query for any name gets 127.0.0.1, every later one 169.254.169.254 (a
// rebinding attack), both with TTL 0. AAAA queries get an empty answer. It counts A queries in a file.
constexpr const char* kRebindingDns = R"PY(
import socket, struct, sys
address, count_path = sys.argv[1], sys.argv[2]
family = socket.AF_INET6 if ":" in address else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.bind((address, 53))
print("ready", flush=True)
answered = 0
while True:
    query, peer = s.recvfrom(512)
    ident, flags, qd = struct.unpack(">HHH", query[:6])
    end = 12
    while query[end] != 0:
        end += query[end] + 1
    question = query[12:end + 5]
    qtype = struct.unpack(">H", query[end + 1:end + 3])[0]
    header = struct.pack(">HHHHHH", ident, 0x8180, 1, 0, 0, 0)
    if qtype != 1:
        s.sendto(header + question, peer)
        continue
    answered += 1
    with open(count_path, "w") as f:
        f.write(str(answered))
    ip = "127.0.0.1" if answered == 1 else "169.254.169.254"
    record = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 0, 4) + socket.inet_aton(ip)
    header = struct.pack(">HHHHHH", ident, 0x8180, 1, 1, 0, 0)
    s.sendto(header + question + record, peer)
)PY";

// The first nameserver /etc/resolv.conf names (glibc's default, 127.0.0.1, when none).
std::string resolv_conf_nameserver() {
  const std::string text = read_file("/etc/resolv.conf");
  for (size_t at = 0; at < text.size();) {
    const size_t end = text.find('\n', at);
    const std::string line = text.substr(at, end == std::string::npos ? std::string::npos : end - at);
    if (line.starts_with("nameserver")) {
      const size_t start = line.find_first_not_of(" \t", std::string_view("nameserver").size());
      if (start != std::string::npos) return line.substr(start, line.find_first_of(" \t", start) - start);
    }
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return "127.0.0.1";
}

TEST_CASE("egressd dials the addresses it checked: a second answer from DNS (rebinding) is never used" *
          doctest::timeout(90)) {
  // Everything runs in egressd's own network namespace: the DNS server (holding the nameserver's address on
  // loopback on loopback), the origin on 127.0.0.1:18080, and curl.
  Egressd egressd(policy_allowing(curl(), "rebind.example.test", 18080), {}, PolicyLayout::File, 10'000ms,
                  EgressdNetwork::Isolated);
  INFO(egressd.diagnostics());
  const std::string nameserver = resolv_conf_nameserver();
  const bool v6 = nameserver.find(':') != std::string::npos;
  if (!nameserver.starts_with("127.") && nameserver != "::1") {  // else loopback already holds it
    const RunResult added = run(egressd.in_network(
        {"ip", v6 ? "-6" : "-4", "addr", "add", nameserver + (v6 ? "/128" : "/32"), "dev", "lo"}));
    REQUIRE_MESSAGE(added.exit_code == 0, added.err);
  }
  TempDir dir;
  const std::string count_path = dir.file("a-queries");
  Child dns(egressd.in_network({"/usr/bin/python3", "-c", kRebindingDns, nameserver, count_path}));
  REQUIRE_MESSAGE(wait_for([&] { return dns.out().starts_with("ready") || !dns.running(); }, 10s), dns.err());
  REQUIRE(dns.running());
  write_file(dir.file("hello"), "hello from the address that was checked\n");
  Child origin(egressd.in_network({"/usr/bin/python3", "-u", "-m", "http.server", "--bind", "127.0.0.1",
                                   "--directory", dir.path(), "18080"}));
  REQUIRE_MESSAGE(
      wait_for([&] { return origin.out().find("Serving HTTP") != std::string::npos || !origin.running(); },
               10s),
      origin.err());

  // The one lookup answers 127.0.0.1 (allowed_ips admits it) and that is what egressd dials: a second
  // lookup at connect time would get 169.254.169.254, unreachable here, and a 502.
  const Got first = get_through(egressd, "http://rebind.example.test:18080/hello");
  CHECK(first.status == "200");
  CHECK(first.body == "hello from the address that was checked\n");
  CHECK(read_file(count_path) == "1");

  // The next connection asks again and gets the rebound answer, which is checked like the first: refused
  // before any dial, naming the metadata address.
  const Got second = get_through(egressd, "http://rebind.example.test:18080/hello");
  CHECK(second.status == "403");
  const Json body = Json::parse(second.body);
  CHECK(body["error"] == "ssrf_denied");
  CHECK(body["reason"].str().find("169.254.169.254") != std::string::npos);
  CHECK(read_file(count_path) == "2");
}

}  // namespace
}  // namespace egressd::test::e2e

// Forced egress (examples/nftables/egressd.nft): in a network namespace of the test's own, with the shipped
// rules loaded (only their defines set here), a sandbox user's direct connections are reset and counted
// while the same requests through egressd succeed. egressd runs as a uid of its own with only
// CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH, as the systemd unit runs it, and still identifies its callers.
// Numeric uids and gids need no /etc/passwd entry. Where the kernel has no nftables the rule tests say so
// and stop; a missing nft binary is a failure (scripts/deps.sh installs it). Also: the systemd drop-in
// shipped with the rules, and the README's namespace-per-sandbox variant (a caller over a veth is denied).
#include <doctest/doctest.h>
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tests/e2e/scenario.h"
#include "tests/support/json.h"
#include "tests/support/local_origin.h"
#include "tests/support/network_namespace.h"
#include "tests/support/temp_dir.h"

namespace egressd::test::e2e {
namespace {

constexpr uid_t kSandboxUid = 40001;
// Inside sandbox_uids on purpose: egressd's own rule has to come before the sandbox's.
constexpr uid_t kEgressdUid = 40002;
// In sandbox_gids: any uid whose processes run with it as their gid is confined.
constexpr gid_t kSandboxGid = 40500;
// In neither set: the rules leave it alone.
constexpr uid_t kOtherUid = 30001;

// Addresses that exist only inside the namespace (documentation ranges): "the network" beyond egressd.
constexpr const char* kOriginV4 = "192.0.2.1";
constexpr const char* kOriginV6 = "2001:db8::1";

const std::vector<std::string> kEgressdCapabilities = {"sys_ptrace", "dac_read_search"};

// The rules as shipped, with `values` in place of the values of those defines; every other line as it
// is. Throws when the file does not have exactly one of them.
std::string shipped_rules_with(const std::vector<std::pair<std::string, std::string>>& values) {
  const std::string path = std::string(EGRESSD_SOURCE_DIR) + "/examples/nftables/egressd.nft";
  std::istringstream shipped(read_file(path));
  std::vector<int> replaced(values.size(), 0);
  std::string rules;
  std::string line;
  while (std::getline(shipped, line)) {
    for (size_t i = 0; i < values.size(); ++i) {
      const std::string define = "define " + values[i].first + " = ";
      if (line.starts_with(define)) {
        line = define + values[i].second;
        ++replaced[i];
      }
    }
    rules += line + "\n";
  }
  for (size_t i = 0; i < values.size(); ++i) {
    if (replaced[i] != 1) throw std::runtime_error(path + " does not define " + values[i].first + " once");
  }
  return rules;
}

// nft's words when the kernel has no nftables (nfnetlink or nf_tables missing), nothing when it has them.
// Any other failure throws: it is no reason to skip.
std::optional<std::string> kernel_without_nftables() {
  const RunResult listed = run({"nft", "list", "ruleset"}, {.timeout = 10s});
  if (listed.exit_code == 0) return std::nullopt;
  if (listed.err.find("not supported") != std::string::npos) {
    return listed.err.substr(0, listed.err.find_last_not_of(" \n") + 1);
  }
  throw std::runtime_error("nft list ruleset failed: " + listed.err);
}

void run_checked(std::vector<std::string> argv, const std::string& stdin_text = {}) {
  const std::string command = argv.front() + (argv.size() > 1 ? " " + argv[1] : "");
  const RunResult result = run(std::move(argv), {.stdin_text = stdin_text, .timeout = 10s});
  if (result.exit_code != 0) throw std::runtime_error(command + " failed: " + result.out + result.err);
}

// The namespace with both origins in it, egressd (as kEgressdUid, with the unit's capabilities) allowing
// curl to reach them, and the shipped rules loaded for egressd's port. The test's thread stays inside
// the namespace while the fixture lives, so everything the test runs is inside too.
class ForcedEgress {
 public:
  ForcedEgress() {
    if ((no_nftables_ = kernel_without_nftables())) return;
    run_checked({"ip", "address", "add", std::string(kOriginV4) + "/32", "dev", "lo"});
    // nodad: usable at once, not "tentative" until duplicate address detection is done.
    run_checked({"ip", "address", "add", std::string(kOriginV6) + "/128", "dev", "lo", "nodad"});
    origin_v4_.emplace(LocalOrigin::http_at(kOriginV4));
    origin_v6_.emplace(LocalOrigin::http_at(kOriginV6));
    const std::string policy = policy_allowing({PolicyRule{
        "sandbox", {curl()}, {{kOriginV4, origin_v4_->port()}, {kOriginV6, origin_v6_->port()}}}});
    egressd_.emplace(policy, std::vector<std::string>{}, PolicyLayout::File, 10'000ms, EgressdNetwork::Host,
                     EgressdUser{kEgressdUid, kEgressdUid, kEgressdCapabilities});
    run_checked({"nft", "-f", "-"}, shipped_rules_with({
                                        {"egressd_uid", std::to_string(kEgressdUid)},
                                        {"sandbox_uids", "{ 40000-40999 }"},
                                        {"sandbox_gids", "{ " + std::to_string(kSandboxGid) + " }"},
                                        {"egressd_ipv4", "127.0.0.1"},
                                        {"egressd_ipv6", "::1"},
                                        {"egressd_port", std::to_string(egressd_->port())},
                                    }));
  }

  // True, said with a MESSAGE, when the kernel has no nftables: the test has nothing to check then.
  bool skipped() const {
    if (no_nftables_)
      MESSAGE("skipped: the kernel has no nftables (nft list ruleset: " << *no_nftables_ << ")");
    return no_nftables_.has_value();
  }

  // Packets the rules refused so far: the `bypass` counter.
  static int64_t bypass_packets() {
    const RunResult listed =
        run({"nft", "-j", "list", "counter", "inet", "egressd", "bypass"}, {.timeout = 10s});
    if (listed.exit_code != 0) throw std::runtime_error("nft list counter failed: " + listed.err);
    const Json answer = Json::parse(listed.out)["nftables"];
    for (size_t i = 0; i < answer.size(); ++i) {
      if (answer.at(i).has("counter")) return answer.at(i)["counter"]["packets"].integer();
    }
    throw std::runtime_error("no counter in: " + listed.out);
  }

  // One UDP datagram to host:port sent as uid (gid the same): "sent", or what sendto() failed with.
  static std::string send_datagram(uid_t uid, const std::string& host, const std::string& port) {
    static const std::string kSend =
        "import socket, sys\n"
        "host, port = sys.argv[1], int(sys.argv[2])\n"
        "family = socket.AF_INET6 if ':' in host else socket.AF_INET\n"
        "try:\n"
        "    socket.socket(family, socket.SOCK_DGRAM).sendto(b'x', (host, port))\n"
        "    print('sent')\n"
        "except OSError as error:\n"
        "    print(error.strerror)\n";
    const RunResult sent =
        run(as_user(uid, uid, {"/usr/bin/python3", "-c", kSend, host, port}), {.timeout = 20s});
    if (sent.exit_code != 0 || !sent.out.ends_with('\n')) {
      throw std::runtime_error("python3 failed: " + sent.out + sent.err);
    }
    return sent.out.substr(0, sent.out.size() - 1);
  }

  // curl run directly (no proxy) as uid:gid: its output is the body, its exit code what curl made of it.
  static RunResult direct_get(uid_t uid, gid_t gid, const LocalOrigin& origin) {
    return run(as_user(uid, gid, {curl(), "-q", "-sS", "--max-time", "5", origin.url("/hello")}),
               {.timeout = 20s});
  }

 protected:
  NetworkNamespace namespace_;
  NetworkNamespace::Inside inside_{namespace_};
  std::optional<std::string> no_nftables_;
  std::optional<LocalOrigin> origin_v4_;
  std::optional<LocalOrigin> origin_v6_;
  std::optional<Egressd> egressd_;
};

TEST_CASE_FIXTURE(ForcedEgress,
                  "forced egress: a sandbox user's direct connection is reset and counted, and the same "
                  "request through egressd succeeds" *
                      doctest::timeout(90)) {
  if (skipped()) return;
  INFO(egressd_->diagnostics());
  for (const LocalOrigin* origin : {&*origin_v4_, &*origin_v6_}) {
    CAPTURE(origin->host());
    const int64_t refused_before = bypass_packets();
    const RunResult direct = direct_get(kSandboxUid, kSandboxUid, *origin);
    CAPTURE(direct.err);
    CHECK(direct.exit_code == 7);  // could not connect: the SYN was answered with a reset
    CHECK(bypass_packets() == refused_before + 1);
    CHECK(origin->connections_accepted() == 0);

    const RunResult proxied = run(as_user(kSandboxUid, kSandboxUid,
                                          {curl(), "-q", "-sS", "--max-time", "10", "-p", "--proxy",
                                           egressd_->url(), origin->url("/hello")}),
                                  {.timeout = 20s});
    CAPTURE(proxied.err);
    CHECK(proxied.out == "hello\n");
    CHECK(origin->connections_accepted() == 1);
  }
  // egressd, another unprivileged uid, identified the caller: the unit's two capabilities suffice.
  REQUIRE(egressd_->wait_for_access_lines(2));
  for (const Json& line : egressd_->access_log_lines()) {
    CHECK(line["binary"] == curl());
    CHECK(line["uid"] == static_cast<double>(kSandboxUid));
  }
}

TEST_CASE_FIXTURE(
    ForcedEgress,
    "forced egress: egressd's own user reaches the network directly, although its uid is in the "
    "sandbox range" *
        doctest::timeout(60)) {
  if (skipped()) return;
  const int64_t refused_before = bypass_packets();
  for (const LocalOrigin* origin : {&*origin_v4_, &*origin_v6_}) {
    CAPTURE(origin->host());
    const RunResult direct = direct_get(kEgressdUid, kEgressdUid, *origin);
    CAPTURE(direct.err);
    CHECK(direct.out == "hello\n");
  }
  CHECK(bypass_packets() == refused_before);
}

TEST_CASE_FIXTURE(ForcedEgress,
                  "forced egress: a process whose gid is in sandbox_gids is confined whatever its uid, and "
                  "other users are left alone" *
                      doctest::timeout(60)) {
  if (skipped()) return;
  const int64_t refused_before = bypass_packets();
  const RunResult confined = direct_get(kOtherUid, kSandboxGid, *origin_v4_);
  CAPTURE(confined.err);
  CHECK(confined.exit_code == 7);
  CHECK(bypass_packets() == refused_before + 1);

  const RunResult unconfined = direct_get(kOtherUid, kOtherUid, *origin_v4_);
  CAPTURE(unconfined.err);
  CHECK(unconfined.out == "hello\n");
  CHECK(origin_v4_->connections_accepted() == 1);
}

TEST_CASE_FIXTURE(ForcedEgress,
                  "forced egress: a sandbox user's UDP is refused too, DNS to a loopback resolver included" *
                      doctest::timeout(60)) {
  if (skipped()) return;
  struct Row {
    uid_t uid;
    const char* host;
    const char* port;
    const char* want;
  };
  const Row rows[] = {{kSandboxUid, kOriginV4, "443", "Operation not permitted"},  // QUIC, say
                      {kSandboxUid, kOriginV6, "443", "Operation not permitted"},
                      {kSandboxUid, "127.0.0.53", "53", "Operation not permitted"},  // no resolver listed
                      {kEgressdUid, kOriginV4, "443", "sent"}};
  for (const Row& row : rows) {
    CAPTURE(row.uid);
    CAPTURE(row.host);
    CAPTURE(row.port);
    const int64_t refused_before = bypass_packets();
    CHECK(send_datagram(row.uid, row.host, row.port) == row.want);
    CHECK(bypass_packets() == refused_before + (row.uid == kSandboxUid ? 1 : 0));
  }
}

TEST_CASE_FIXTURE(ForcedEgress,
                  "forced egress: a resolver added to sandbox_dns_ipv4 is reachable on port 53 only" *
                      doctest::timeout(60)) {
  if (skipped()) return;
  run_checked({"nft", "add", "element", "inet", "egressd", "sandbox_dns_ipv4", "{ 127.0.0.53 }"});
  const int64_t refused_before = bypass_packets();
  CHECK(send_datagram(kSandboxUid, "127.0.0.53", "53") == "sent");
  CHECK(bypass_packets() == refused_before);
  CHECK(send_datagram(kSandboxUid, "127.0.0.53", "54") == "Operation not permitted");
  CHECK(send_datagram(kSandboxUid, kOriginV4, "53") == "Operation not permitted");
  CHECK(bypass_packets() == refused_before + 2);
}

TEST_CASE(
    "egressd as an unprivileged user identifies callers of another uid with CAP_SYS_PTRACE and "
    "CAP_DAC_READ_SEARCH, and denies them without" *
    doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  const std::string policy = policy_allowing(curl(), origin.host(), origin.port());
  struct Row {
    std::vector<std::string> capabilities;
    const char* want_status;
  };
  const Row rows[] = {{kEgressdCapabilities, "200"}, {{}, "403"}};
  for (const Row& row : rows) {
    CAPTURE(row.want_status);
    Egressd egressd(policy, {}, PolicyLayout::File, 10'000ms, EgressdNetwork::Host,
                    EgressdUser{kEgressdUid, kEgressdUid, row.capabilities});
    INFO(egressd.diagnostics());
    const RunResult got = run(as_user(kSandboxUid, kSandboxUid,
                                      {curl(), "-q", "-sS", "--max-time", "10", "-o", "/dev/null", "-w",
                                       "%{http_code}", "--proxy", egressd.url(), origin.url("/hello")}),
                              {.timeout = 20s});
    CHECK(got.out == row.want_status);
    if (row.capabilities.empty()) {
      REQUIRE(egressd.wait_for_deny_lines(1));
      const Json line = egressd.deny_log_lines().at(0);
      CHECK(line["binary"].is_null());
      CHECK(line["reason"].str().starts_with("caller unknown"));
    } else {
      REQUIRE(egressd.wait_for_access_lines(1));
      CHECK(egressd.access_log_lines().at(0)["uid"] == static_cast<double>(kSandboxUid));
    }
  }
  CHECK(origin.connections_accepted() == 1);
}

TEST_CASE(
    "examples/nftables/egressd-user.conf passes systemd-analyze verify as a drop-in for the shipped unit, "
    "naming the user the rules let through" *
    doctest::timeout(60)) {
  const std::string source = EGRESSD_SOURCE_DIR;
  const std::string unit = read_file(source + "/systemd/egressd.service");
  const std::string dropin = read_file(source + "/examples/nftables/egressd-user.conf");
  // With DynamicUser=yes, systemd runs the unit as an existing static user of the configured name.
  CHECK(unit.find("\nDynamicUser=yes\n") != std::string::npos);
  CHECK(dropin.find("\nUser=egressd\n") != std::string::npos);
  CHECK(read_file(source + "/examples/nftables/egressd.nft").find("\ndefine egressd_uid = egressd\n") !=
        std::string::npos);

  const TempDir dir;
  const std::string copy = dir.file("egressd.service");
  write_file(copy, std::regex_replace(unit, std::regex("/usr/local/bin/egressd"), egressd_binary()));
  std::filesystem::create_directory(dir.file("egressd.service.d"));
  write_file(dir.file("egressd.service.d/user.conf"), dropin);
  const RunResult verify = run({"systemd-analyze", "verify", copy});
  INFO(verify.out, verify.err);
  CHECK(verify.exit_code == 0);
  CHECK(verify.err.find(dir.path()) == std::string::npos);  // no complaint names the unit or the drop-in
}

TEST_CASE("a caller in another network namespace, over a veth to egressd, is denied as unknown" *
          doctest::timeout(60)) {
  NetworkNamespace proxy_side;
  NetworkNamespace sandbox;
  std::optional<LocalOrigin> origin;
  std::optional<Egressd> egressd;
  {
    const NetworkNamespace::Inside inside(proxy_side);
    run_checked(
        {"ip", "link", "add", "egressd0", "type", "veth", "peer", "name", "eth0", "netns", sandbox.path()});
    run_checked({"ip", "address", "add", "10.200.0.1/30", "dev", "egressd0"});
    run_checked({"ip", "link", "set", "egressd0", "up"});
    origin.emplace(LocalOrigin::http());
    egressd.emplace(policy_allowing(curl(), origin->host(), origin->port()),
                    std::vector<std::string>{"--listen", "10.200.0.1:0"});
  }
  const NetworkNamespace::Inside inside(sandbox);
  run_checked({"ip", "address", "add", "10.200.0.2/30", "dev", "eth0"});
  run_checked({"ip", "link", "set", "eth0", "up"});
  INFO(egressd->diagnostics());
  const RunResult got =
      run({curl(), "-q", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "--proxy",
           "http://10.200.0.1:" + std::to_string(egressd->port()), origin->url("/hello")},
          {.timeout = 20s});
  CAPTURE(got.err);
  CHECK(got.out == "403");
  REQUIRE(egressd->wait_for_deny_lines(1));
  CHECK(egressd->deny_log_lines().at(0)["reason"].str().starts_with("caller unknown"));
  CHECK(origin->connections_accepted() == 0);
}

}  // namespace
}  // namespace egressd::test::e2e

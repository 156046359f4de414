// Tuple -> client socket inode: sock_diag and the /proc/net/tcp{,6} fallback on real loopback sockets,
// and the /proc/net parser on synthetic tables.
#include "procid/socket_inode.h"

#include <sys/socket.h>
#include <unistd.h>

#include <bit>
#include <cstdio>
#include <cstring>
#include <string>

#include <doctest/doctest.h>

#include "tests/unit/procid/loopback.h"

namespace egressd::procid {
namespace {

using loopback::Connection;

constexpr const char* kTableHeader =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

// An address as the kernel prints it in /proc/net/tcp{,6}: each raw 32-bit word with %08X.
std::string kernel_hex(const uint8_t* bytes, size_t length) {
  std::string hex;
  for (size_t offset = 0; offset < length; offset += 4) {
    uint32_t word;
    std::memcpy(&word, bytes + offset, sizeof word);
    char text[9];
    std::snprintf(text, sizeof text, "%08X", word);
    hex += text;
  }
  return hex;
}

struct Row {
  std::string local;  // kernel_hex(...)
  uint16_t local_port;
  std::string remote;
  uint16_t remote_port;
  unsigned state;
  unsigned uid;
  uint64_t inode;
};

std::string table_line(int slot, const Row& row) {
  char line[512];
  std::snprintf(line, sizeof line,
                "%4d: %s:%04X %s:%04X %02X 00000000:00000000 00:00000000 00000000 %5u        0 %llu 1 "
                "0000000000000000 20 4 30 10 -1\n",
                slot, row.local.c_str(), row.local_port, row.remote.c_str(), row.remote_port, row.state,
                row.uid, static_cast<unsigned long long>(row.inode));
  return line;
}

const uint8_t kLoopback4[4] = {127, 0, 0, 1};
const uint8_t kLoopback6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
const uint8_t kMappedLoopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};

TEST_CASE("the /proc/net parser finds the client's row for v4, v6 and v4-mapped tables") {
  const std::string v4 = kernel_hex(kLoopback4, 4), v6 = kernel_hex(kLoopback6, 16),
                    mapped = kernel_hex(kMappedLoopback, 16);
  const std::string tcp = std::string(kTableHeader) +
                          table_line(0, {v4, 8080, "00000000", 0, 0x0A, 0, 100}) +  // the listener
                          table_line(1, {v4, 8080, v4, 40000, 0x01, 0, 101}) +      // proxy's side
                          table_line(2, {v4, 40000, v4, 8080, 0x01, 1000, 102}) +   // the client
                          table_line(3, {v4, 40001, v4, 8080, 0x06, 0, 0});         // TIME_WAIT
  const std::string tcp6 = std::string(kTableHeader) + table_line(0, {v6, 41000, v6, 8080, 0x01, 1001, 201}) +
                           table_line(1, {mapped, 42000, mapped, 8080, 0x01, 1002, 202});
  const IpAddress ip4 = IpAddress::v4(kLoopback4);
  const IpAddress ip6 = IpAddress::v6(kLoopback6);

  const auto from_v4 = parse_proc_net_tcp(tcp, TcpTuple{ip4, 40000, ip4, 8080});
  REQUIRE(from_v4.has_value());
  CHECK(from_v4->inode == 102);
  CHECK(from_v4->uid == 1000);

  const auto from_v6 = parse_proc_net_tcp(tcp6, TcpTuple{ip6, 41000, ip6, 8080});
  REQUIRE(from_v6.has_value());
  CHECK(from_v6->inode == 201);

  const auto from_mapped = parse_proc_net_tcp(tcp6, TcpTuple{ip4, 42000, ip4, 8080});
  REQUIRE(from_mapped.has_value());
  CHECK(from_mapped->inode == 202);
  CHECK(from_mapped->uid == 1002);
}

TEST_CASE("the /proc/net parser ignores TIME_WAIT, inode 0, listener and reversed rows") {
  const std::string v4 = kernel_hex(kLoopback4, 4);
  const IpAddress ip4 = IpAddress::v4(kLoopback4);
  const std::string tcp = std::string(kTableHeader) +
                          table_line(0, {v4, 40001, v4, 8080, 0x06, 0, 0}) +         // TIME_WAIT
                          table_line(1, {v4, 40002, v4, 8080, 0x06, 0, 301}) +       // TIME_WAIT, odd inode
                          table_line(2, {v4, 40003, v4, 8080, 0x05, 0, 0}) +         // FIN_WAIT2 orphan
                          table_line(3, {v4, 8080, v4, 40004, 0x01, 0, 302}) +       // the proxy's side only
                          table_line(4, {v4, 40005, "00000000", 0, 0x0A, 0, 303}) +  // a listener
                          "   5: garbage\n";
  for (uint16_t port : {40001, 40002, 40003, 40004}) {
    CAPTURE(port);
    CHECK_FALSE(parse_proc_net_tcp(tcp, TcpTuple{ip4, port, ip4, 8080}).has_value());
  }
  const IpAddress any = IpAddress::v4({0, 0, 0, 0});
  CHECK_FALSE(parse_proc_net_tcp(tcp, TcpTuple{ip4, 40005, any, 0}).has_value());
}

TEST_CASE("the /proc/net parser reads a line exactly as this kernel prints it") {
  if constexpr (std::endian::native == std::endian::little) {  // %08X of a __be32 read as a host word
    const std::string tcp =
        std::string(kTableHeader) +
        "   0: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000  "
        "      0 424242 1 0000000000000000 20 4 30 10 -1                     \n";
    const IpAddress ip4 = IpAddress::v4(kLoopback4);
    const auto found = parse_proc_net_tcp(tcp, TcpTuple{ip4, 54321, ip4, 8080});
    REQUIRE(found.has_value());
    CHECK(found->inode == 424242);
    CHECK(found->uid == 1000);
  }
}

TEST_CASE("sock_diag finds the inode and uid of a real client socket") {
  const auto listener = loopback::listen_on(AF_INET, "127.0.0.1");
  const Connection connection = loopback::connect_to(listener, AF_INET, "127.0.0.1");
  const auto found = query_sock_diag(connection.tuple);
  if (!found) FAIL(found.error().detail);
  CHECK(found->inode == loopback::inode_of(connection.client.get()));
  CHECK(found->uid == ::getuid());
}

TEST_CASE("the /proc/net fallback finds real v4, v6 and v4-mapped client sockets") {
  struct Case {
    int listen_family;
    const char* listen_address;
    int client_family;
    const char* connect_address;
  };
  const Case cases[] = {{AF_INET, "127.0.0.1", AF_INET, "127.0.0.1"},
                        {AF_INET6, "::1", AF_INET6, "::1"},
                        {AF_INET, "127.0.0.1", AF_INET6, "::ffff:127.0.0.1"}};
  for (const Case& c : cases) {
    CAPTURE(c.connect_address);
    CAPTURE(c.client_family);
    const auto listener = loopback::listen_on(c.listen_family, c.listen_address);
    const Connection connection = loopback::connect_to(listener, c.client_family, c.connect_address);
    const auto found = scan_proc_net_tcp(connection.tuple);
    if (!found) FAIL(found.error().detail);
    CHECK(found->inode == loopback::inode_of(connection.client.get()));
    CHECK(found->uid == ::getuid());
  }
}

TEST_CASE("sock_diag reports a closed client's orphaned socket as gone, not as a holder-less inode") {
  const auto listener = loopback::listen_on(AF_INET, "127.0.0.1");
  Connection connection = loopback::connect_to(listener, AF_INET, "127.0.0.1");
  connection.client.reset();
  const auto found = find_client_socket(connection.tuple);
  REQUIRE_FALSE(found.has_value());
  CAPTURE(found.error().detail);
  CHECK(found.error().stage == LookupError::Stage::NoSocket);
  CHECK(found.error().detail.find("no longer belongs to any process") != std::string::npos);
}

TEST_CASE("a tuple mixing IPv4 and IPv6 is refused before any lookup") {
  const TcpTuple tuple{IpAddress::v4(kLoopback4), 40000, IpAddress::v6(kLoopback6), 8080};
  const auto found = find_client_socket(tuple);
  REQUIRE_FALSE(found.has_value());
  CHECK(found.error().stage == LookupError::Stage::SocketLookup);
  CHECK(found.error().detail ==
        "cannot look up TCP socket 127.0.0.1:40000 -> [::1]:8080: the addresses are not "
        "of one family");
}

}  // namespace
}  // namespace egressd::procid

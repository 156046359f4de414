#include "policy/destination.h"

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/patterns.h"
#include "tests/unit/policy/policy_fixtures.h"

namespace egressd::policy {
namespace {

using fixtures::policy_from_yaml;

IpAddress ip(std::string_view text) {
  const std::optional<IpAddress> address = IpAddress::parse(text);
  if (!address) FAIL("not an IP address: " << text);
  return *address;
}

Cidr cidr(std::string_view text) {
  Result<Cidr, std::string> parsed = parse_cidr(text);
  if (!parsed) FAIL(parsed.error());
  return *parsed;
}

TEST_CASE("IpAddress parses IPv4 and bare IPv6 literals and writes them back in inet_ntop form") {
  CHECK(ip("10.1.2.3").family == 4);
  CHECK(ip("10.1.2.3").bytes[3] == 3);
  CHECK(ip("10.1.2.3").text() == "10.1.2.3");
  CHECK(ip("2001:DB8:0:0::1").family == 6);
  CHECK(ip("2001:DB8:0:0::1").text() == "2001:db8::1");
  CHECK(ip("::ffff:127.0.0.1").text() == "::ffff:127.0.0.1");
  const uint8_t octets[4] = {192, 168, 0, 1};
  CHECK(IpAddress::v4(octets) == ip("192.168.0.1"));
  const uint8_t loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  CHECK(IpAddress::v6(loopback) == ip("::1"));
  CHECK_FALSE(IpAddress::v4(octets) == ip("192.168.0.2"));
}

TEST_CASE("IpAddress rejects names, brackets, zone ids, ports and short forms") {
  for (const char* text : {"example.com", "[::1]", "fe80::1%eth0", "10.0.0.1:80", "10.1", "", "1.2.3.256"}) {
    CAPTURE(text);
    CHECK_FALSE(IpAddress::parse(text).has_value());
  }
  CHECK_FALSE(IpAddress::parse(std::string_view("10.0.0.1\0x", 10)).has_value());  // not "10.0.0.1"
}

TEST_CASE("address_class_name names every class") {
  CHECK(std::string(address_class_name(AddressClass::Public)) == "public");
  CHECK(std::string(address_class_name(AddressClass::Loopback)) == "loopback");
  CHECK(std::string(address_class_name(AddressClass::Private)) == "private");
  CHECK(std::string(address_class_name(AddressClass::LinkLocal)) == "link-local");
  CHECK(std::string(address_class_name(AddressClass::Metadata)) == "metadata");
  CHECK(std::string(address_class_name(AddressClass::NotUnicast)) == "not unicast");
}

struct ClassRow {
  const char* address;
  AddressClass want;
  const char* what;
};

void check_rows(std::span<const ClassRow> rows) {
  for (const ClassRow& row : rows) {
    CAPTURE(row.address);
    const AddressClassification found = classify_address(ip(row.address));
    CHECK(found.cls == row.want);
    CHECK(found.what == row.what);
  }
}

TEST_CASE("IPv4 addresses are classified by the first special range holding them, edges included") {
  const ClassRow rows[] = {
      {"0.0.0.0", AddressClass::NotUnicast, "not unicast, 0.0.0.0/8 (this network)"},
      {"0.255.255.255", AddressClass::NotUnicast, "not unicast, 0.0.0.0/8 (this network)"},
      {"1.0.0.0", AddressClass::Public, "public"},
      {"9.255.255.255", AddressClass::Public, "public"},
      {"10.0.0.0", AddressClass::Private, "private, 10.0.0.0/8 (RFC 1918)"},
      {"10.255.255.255", AddressClass::Private, "private, 10.0.0.0/8 (RFC 1918)"},
      {"11.0.0.0", AddressClass::Public, "public"},
      {"100.63.255.255", AddressClass::Public, "public"},
      {"100.64.0.0", AddressClass::Private, "private, 100.64.0.0/10 (CGNAT, RFC 6598)"},
      {"100.127.255.255", AddressClass::Private, "private, 100.64.0.0/10 (CGNAT, RFC 6598)"},
      {"100.128.0.0", AddressClass::Public, "public"},
      {"126.255.255.255", AddressClass::Public, "public"},
      {"127.0.0.0", AddressClass::Loopback, "loopback, 127.0.0.0/8"},
      {"127.0.0.1", AddressClass::Loopback, "loopback, 127.0.0.0/8"},
      {"127.255.255.255", AddressClass::Loopback, "loopback, 127.0.0.0/8"},
      {"128.0.0.0", AddressClass::Public, "public"},
      {"169.253.255.255", AddressClass::Public, "public"},
      {"169.254.0.0", AddressClass::LinkLocal, "link-local, 169.254.0.0/16"},
      {"169.254.169.253", AddressClass::LinkLocal, "link-local, 169.254.0.0/16"},
      {"169.254.255.255", AddressClass::LinkLocal, "link-local, 169.254.0.0/16"},
      {"169.255.0.0", AddressClass::Public, "public"},
      {"172.15.255.255", AddressClass::Public, "public"},
      {"172.16.0.0", AddressClass::Private, "private, 172.16.0.0/12 (RFC 1918)"},
      {"172.31.255.255", AddressClass::Private, "private, 172.16.0.0/12 (RFC 1918)"},
      {"172.32.0.0", AddressClass::Public, "public"},
      {"191.255.255.255", AddressClass::Public, "public"},
      {"192.0.0.0", AddressClass::Private, "private, 192.0.0.0/24 (IETF protocol assignments)"},
      {"192.0.0.255", AddressClass::Private, "private, 192.0.0.0/24 (IETF protocol assignments)"},
      {"192.0.1.0", AddressClass::Public, "public"},
      {"192.0.2.0", AddressClass::Private, "private, 192.0.2.0/24 (documentation)"},
      {"192.0.2.255", AddressClass::Private, "private, 192.0.2.0/24 (documentation)"},
      {"192.0.3.0", AddressClass::Public, "public"},
      {"192.167.255.255", AddressClass::Public, "public"},
      {"192.168.0.0", AddressClass::Private, "private, 192.168.0.0/16 (RFC 1918)"},
      {"192.168.255.255", AddressClass::Private, "private, 192.168.0.0/16 (RFC 1918)"},
      {"192.169.0.0", AddressClass::Public, "public"},
      {"198.17.255.255", AddressClass::Public, "public"},
      {"198.18.0.0", AddressClass::Private, "private, 198.18.0.0/15 (benchmarking)"},
      {"198.19.255.255", AddressClass::Private, "private, 198.18.0.0/15 (benchmarking)"},
      {"198.20.0.0", AddressClass::Public, "public"},
      {"198.51.99.255", AddressClass::Public, "public"},
      {"198.51.100.0", AddressClass::Private, "private, 198.51.100.0/24 (documentation)"},
      {"198.51.100.255", AddressClass::Private, "private, 198.51.100.0/24 (documentation)"},
      {"198.51.101.0", AddressClass::Public, "public"},
      {"203.0.112.255", AddressClass::Public, "public"},
      {"203.0.113.0", AddressClass::Private, "private, 203.0.113.0/24 (documentation)"},
      {"203.0.113.255", AddressClass::Private, "private, 203.0.113.0/24 (documentation)"},
      {"203.0.114.0", AddressClass::Public, "public"},
      {"223.255.255.255", AddressClass::Public, "public"},
      {"224.0.0.0", AddressClass::NotUnicast, "not unicast, 224.0.0.0/4 (multicast)"},
      {"239.255.255.255", AddressClass::NotUnicast, "not unicast, 224.0.0.0/4 (multicast)"},
      {"240.0.0.0", AddressClass::NotUnicast, "not unicast, 240.0.0.0/4 (reserved, including broadcast)"},
      {"255.255.255.255", AddressClass::NotUnicast,
       "not unicast, 240.0.0.0/4 (reserved, including broadcast)"},
      {"8.8.8.8", AddressClass::Public, "public"},
  };
  check_rows(rows);
}

TEST_CASE("cloud metadata addresses are metadata, named by their service, ahead of their enclosing ranges") {
  const ClassRow rows[] = {
      {"169.254.169.254", AddressClass::Metadata, "cloud metadata service, 169.254.169.254"},
      {"169.254.170.2", AddressClass::Metadata, "AWS ECS task metadata endpoint, 169.254.170.2"},
      {"169.254.170.3", AddressClass::LinkLocal, "link-local, 169.254.0.0/16"},
      {"100.100.100.200", AddressClass::Metadata, "Alibaba Cloud metadata service, 100.100.100.200"},
      {"100.100.100.201", AddressClass::Private, "private, 100.64.0.0/10 (CGNAT, RFC 6598)"},
      {"168.63.129.16", AddressClass::Metadata, "Azure WireServer, 168.63.129.16"},
      {"168.63.129.17", AddressClass::Public, "public"},
      {"192.0.0.192", AddressClass::Metadata, "Oracle Cloud metadata service, 192.0.0.192"},
      {"192.0.0.193", AddressClass::Private, "private, 192.0.0.0/24 (IETF protocol assignments)"},
      {"fd00:ec2::254", AddressClass::Metadata, "AWS instance metadata service over IPv6, fd00:ec2::254"},
      {"fd00:ec2::253", AddressClass::Private, "private, fc00::/7 (unique local)"},
  };
  check_rows(rows);
}

TEST_CASE("IPv6 addresses are classified by the first special range holding them, edges included") {
  const ClassRow rows[] = {
      {"::", AddressClass::NotUnicast, "not unicast, :: (unspecified)"},
      {"::1", AddressClass::Loopback, "loopback, ::1"},
      {"fe80::", AddressClass::LinkLocal, "link-local, fe80::/10"},
      {"fe80::1", AddressClass::LinkLocal, "link-local, fe80::/10"},
      {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", AddressClass::LinkLocal, "link-local, fe80::/10"},
      {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", AddressClass::Public, "public"},
      {"fc00::", AddressClass::Private, "private, fc00::/7 (unique local)"},
      {"fd12:3456::1", AddressClass::Private, "private, fc00::/7 (unique local)"},
      {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", AddressClass::Private, "private, fc00::/7 (unique local)"},
      {"fe00::", AddressClass::Public, "public"},
      {"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", AddressClass::Public, "public"},
      {"fec0::1", AddressClass::Private, "private, fec0::/10 (site-local, deprecated)"},
      {"feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", AddressClass::Private,
       "private, fec0::/10 (site-local, deprecated)"},
      {"ff00::", AddressClass::NotUnicast, "not unicast, ff00::/8 (multicast)"},
      {"ff02::1", AddressClass::NotUnicast, "not unicast, ff00::/8 (multicast)"},
      {"64:ff9b:1::", AddressClass::Private, "private, 64:ff9b:1::/48 (local-use NAT64)"},
      {"64:ff9b:1:ffff:ffff:ffff:ffff:ffff", AddressClass::Private,
       "private, 64:ff9b:1::/48 (local-use NAT64)"},
      {"64:ff9b:2::", AddressClass::Public, "public"},
      {"100::", AddressClass::NotUnicast, "not unicast, 100::/64 (discard-only)"},
      {"100::ffff:ffff:ffff:ffff", AddressClass::NotUnicast, "not unicast, 100::/64 (discard-only)"},
      {"100:0:0:1::", AddressClass::Public, "public"},
      {"2001:db8::", AddressClass::Private, "private, 2001:db8::/32 (documentation)"},
      {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", AddressClass::Private,
       "private, 2001:db8::/32 (documentation)"},
      {"2001:db9::", AddressClass::Public, "public"},
      {"2001:db7:ffff::", AddressClass::Public, "public"},
      {"2606:4700:4700::1111", AddressClass::Public, "public"},
      {"::2:0:0:1", AddressClass::Public, "public"},  // not in ::/96, so no embedding
  };
  check_rows(rows);
}

TEST_CASE("an IPv6 address embedding an IPv4 address is classified by that IPv4 address") {
  const ClassRow rows[] = {
      {"::ffff:127.0.0.1", AddressClass::Loopback, "IPv4-mapped embedding 127.0.0.1: loopback, 127.0.0.0/8"},
      {"::ffff:8.8.8.8", AddressClass::Public, "IPv4-mapped embedding 8.8.8.8: public"},
      {"::ffff:169.254.169.254", AddressClass::Metadata,
       "IPv4-mapped embedding 169.254.169.254: cloud metadata service, 169.254.169.254"},
      {"::ffff:0:10.0.0.1", AddressClass::Private, "SIIT embedding 10.0.0.1: private, 10.0.0.0/8 (RFC 1918)"},
      {"::127.0.0.1", AddressClass::Loopback, "IPv4-compatible embedding 127.0.0.1: loopback, 127.0.0.0/8"},
      {"::2", AddressClass::NotUnicast,
       "IPv4-compatible embedding 0.0.0.2: not unicast, 0.0.0.0/8 (this network)"},
      {"64:ff9b::a9fe:a9fe", AddressClass::Metadata,
       "NAT64 embedding 169.254.169.254: cloud metadata service, 169.254.169.254"},
      {"64:ff9b::808:808", AddressClass::Public, "NAT64 embedding 8.8.8.8: public"},
      {"2002:a01:203::1", AddressClass::Private, "6to4 embedding 10.1.2.3: private, 10.0.0.0/8 (RFC 1918)"},
      {"2002:7f00:1::", AddressClass::Loopback, "6to4 embedding 127.0.0.1: loopback, 127.0.0.0/8"},
      // Teredo: server 65.54.227.120, client 192.168.1.2 stored inverted (3f57:fefd).
      {"2001:0:4136:e378:8000:63bf:3f57:fefd", AddressClass::Private,
       "Teredo embedding 192.168.1.2: private, 192.168.0.0/16 (RFC 1918)"},
      {"2001:0:4136:e378:8000:63bf:f7f7:f7f7", AddressClass::Public, "Teredo embedding 8.8.8.8: public"},
  };
  check_rows(rows);
}

TEST_CASE("the effective address is the embedded IPv4 address, or else the address itself") {
  CHECK(classify_address(ip("::ffff:127.0.0.1")).effective == ip("127.0.0.1"));
  CHECK(classify_address(ip("2002:a01:203::1")).effective == ip("10.1.2.3"));
  CHECK(classify_address(ip("2001:0:4136:e378:8000:63bf:3f57:fefd")).effective == ip("192.168.1.2"));
  CHECK(classify_address(ip("fd00::1")).effective == ip("fd00::1"));
  CHECK(classify_address(ip("10.0.0.1")).effective == ip("10.0.0.1"));
}

TEST_CASE("cidr_contains compares the prefix within a family and the embedded IPv4 across families") {
  struct Row {
    const char* cidr;
    const char* address;
    bool want;
  };
  const Row rows[] = {
      {"10.0.0.0/8", "10.255.0.1", true},
      {"10.0.0.0/8", "11.0.0.1", false},
      {"172.16.0.0/12", "172.31.255.255", true},
      {"172.16.0.0/12", "172.32.0.0", false},
      {"192.168.1.7", "192.168.1.7", true},
      {"192.168.1.7", "192.168.1.8", false},
      {"10.1.2.3/8", "10.9.9.9", true},  // host bits in the policy do not matter
      {"0.0.0.0/0", "8.8.8.8", true},
      {"fd00::/64", "fd00::1", true},
      {"fd00::/64", "fd00:0:0:1::1", false},
      {"2001:db8::/33", "2001:db8:7fff::1", true},
      {"2001:db8::/33", "2001:db8:8000::1", false},
      {"10.0.0.0/8", "::ffff:10.1.2.3", true},  // IPv4 CIDR, mapped address
      {"10.0.0.0/8", "::ffff:11.1.2.3", false},
      {"10.0.0.0/8", "2002:a01:203::1", true},                           // 6to4
      {"10.0.0.0/8", "64:ff9b::a01:203", true},                          // NAT64
      {"192.168.0.0/16", "2001:0:4136:e378:8000:63bf:3f57:fefd", true},  // Teredo
      {"10.0.0.0/8", "fd00::a01:203", false},                            // no embedding
      {"::ffff:10.0.0.0/104", "10.1.2.3", true},                         // IPv6 CIDR, IPv4 address
      {"::ffff:10.0.0.0/104", "11.1.2.3", false},
      {"fd00::/8", "10.1.2.3", false},
      {"::/0", "10.1.2.3", true},
  };
  for (const Row& row : rows) {
    CAPTURE(row.cidr);
    CAPTURE(row.address);
    CHECK(cidr_contains(cidr(row.cidr), ip(row.address)) == row.want);
  }
}

TEST_CASE("never_allowed_overlap rejects entries overlapping link-local, metadata or non-unicast ranges") {
  struct Row {
    const char* cidr;
    const char* message;  // empty: accepted
  };
  const Row rows[] = {
      {"169.254.0.0/16",
       "allowed_ips entry '169.254.0.0/16' covers link-local addresses (169.254.0.0/16), which egressd never "
       "connects to"},
      {"169.254.169.254",
       "allowed_ips entry '169.254.169.254' covers the cloud metadata service (169.254.169.254), which "
       "egressd "
       "never connects to"},
      {"169.0.0.0/8",
       "allowed_ips entry '169.0.0.0/8' covers link-local addresses (169.254.0.0/16), which egressd never "
       "connects to"},
      {"100.100.0.0/16",
       "allowed_ips entry '100.100.0.0/16' covers the Alibaba Cloud metadata service (100.100.100.200), "
       "which "
       "egressd never connects to"},
      {"0.0.0.0/0",
       "allowed_ips entry '0.0.0.0/0' covers non-unicast addresses (224.0.0.0/4, multicast), which egressd "
       "never connects to"},
      {"0.0.0.0",
       "allowed_ips entry '0.0.0.0' covers non-unicast addresses (0.0.0.0/8, this network), which egressd "
       "never connects to"},
      {"255.255.255.255",
       "allowed_ips entry '255.255.255.255' covers non-unicast addresses (240.0.0.0/4, reserved, including "
       "broadcast), which egressd never connects to"},
      {"::/0",
       "allowed_ips entry '::/0' covers non-unicast addresses (ff00::/8, multicast), which egressd never "
       "connects to"},
      {"fe80::1",
       "allowed_ips entry 'fe80::1' covers link-local addresses (fe80::/10), which egressd never connects "
       "to"},
      {"::ffff:169.254.0.0/112",
       "allowed_ips entry '::ffff:169.254.0.0/112' covers link-local addresses (::ffff:169.254.0.0/112, "
       "IPv4-mapped 169.254.0.0/16), which egressd never connects to"},
      {"::ffff:169.254.169.254",
       "allowed_ips entry '::ffff:169.254.169.254' covers the cloud metadata service "
       "(::ffff:169.254.169.254, "
       "IPv4-mapped 169.254.169.254), which egressd never connects to"},
      {"fd00::/8",
       "allowed_ips entry 'fd00::/8' covers the AWS instance metadata service over IPv6 (fd00:ec2::254), "
       "which "
       "egressd never connects to"},
      {"100::/64",
       "allowed_ips entry '100::/64' covers non-unicast addresses (100::/64, discard-only), which egressd "
       "never "
       "connects to"},
      {"::",
       "allowed_ips entry '::' covers non-unicast addresses (::, unspecified), which egressd never connects "
       "to"},
      {"10.0.0.0/8", ""},
      {"127.0.0.1", ""},
      {"127.0.0.0/8", ""},
      {"192.168.0.0/16", ""},
      {"169.255.0.0/16", ""},
      {"8.8.8.8", ""},
      {"fd00::/64", ""},
      {"fd12:3456::/32", ""},
      {"::1", ""},
      {"::ffff:10.0.0.0/104", ""},
      {"2001:db8::/32", ""},
  };
  for (const Row& row : rows) {
    CAPTURE(row.cidr);
    const std::optional<std::string> message = never_allowed_overlap(cidr(row.cidr));
    CHECK(message.value_or("") == row.message);
  }
}

// A scope as DestinationScope::of() builds it, for one endpoint of a one-rule policy.
struct ScopeFixture {
  std::shared_ptr<const Policy> policy;
  DestinationScope scope;
};

ScopeFixture scope_for(std::string_view endpoint) {
  ScopeFixture fixture;
  fixture.policy = policy_from_yaml("version: 1\nnetwork_policies:\n  internal:\n    endpoints: [" +
                                    std::string(endpoint) + "]\n    binaries: [{ path: /usr/bin/curl }]\n");
  const Rule& rule = fixture.policy->rules.at(0);
  fixture.scope = DestinationScope::of(rule, rule.endpoints.at(0));
  return fixture;
}

DestinationCheck check(const DestinationScope& scope, std::string_view host,
                       const std::vector<std::string>& addresses) {
  std::vector<IpAddress> ips;
  for (const std::string& address : addresses) ips.push_back(ip(address));
  return check_destination(scope, host, ips);
}

TEST_CASE("DestinationScope::of reads the rule name, exactness, the IP-literal host and allowed_ips") {
  const ScopeFixture named = scope_for("{ host: db.internal.example.com, port: 5432 }");
  CHECK(named.scope.rule == "internal");
  CHECK(named.scope.exact_host);
  CHECK_FALSE(named.scope.named_ip.has_value());
  CHECK(named.scope.allowed_ips.empty());

  const ScopeFixture wildcard = scope_for("{ host: \"*.internal.example.com\", port: 5432 }");
  CHECK_FALSE(wildcard.scope.exact_host);

  const ScopeFixture literal = scope_for("{ host: \"[::1]\", port: 5432, allowed_ips: [10.0.0.0/8] }");
  CHECK(literal.scope.exact_host);
  CHECK(literal.scope.named_ip == ip("::1"));
  REQUIRE(literal.scope.allowed_ips.size() == 1);
  CHECK(literal.scope.allowed_ips[0].text == "10.0.0.0/8");

  const ScopeFixture hostless = scope_for("{ port: 5432, allowed_ips: [10.0.0.0/8] }");
  CHECK_FALSE(hostless.scope.exact_host);
  CHECK_FALSE(hostless.scope.named_ip.has_value());
  CHECK(hostless.scope.allowed_ips.size() == 1);
}

TEST_CASE("link-local, metadata and non-unicast addresses are refused whatever the endpoint allows") {
  const ScopeFixture exact = scope_for("{ host: api.example.com, port: 443 }");
  const DestinationCheck metadata = check(exact.scope, "api.example.com", {"169.254.169.254"});
  CHECK_FALSE(metadata.allowed);
  CHECK(
      metadata.reason ==
      "api.example.com resolves to 169.254.169.254 (cloud metadata service, 169.254.169.254), which egressd "
      "never connects to");
  CHECK(metadata.refused == ip("169.254.169.254"));

  const DestinationCheck nat64 = check(exact.scope, "api.example.com", {"64:ff9b::a9fe:a9fe"});
  CHECK_FALSE(nat64.allowed);
  CHECK(nat64.reason ==
        "api.example.com resolves to 64:ff9b::a9fe:a9fe (NAT64 embedding 169.254.169.254: cloud metadata "
        "service, 169.254.169.254), which egressd never connects to");

  for (const char* address : {"169.254.1.1", "fe80::1", "224.0.0.1", "255.255.255.255", "0.0.0.0", "::"}) {
    CAPTURE(address);
    CHECK_FALSE(check(exact.scope, "api.example.com", {address}).allowed);
  }
}

TEST_CASE("loopback passes only for the endpoint naming that address or listing it in allowed_ips") {
  const ScopeFixture named = scope_for("{ host: 127.0.0.1, port: 8080 }");
  CHECK(check(named.scope, "127.0.0.1", {"127.0.0.1"}).allowed);
  CHECK(check(named.scope, "127.0.0.1", {"::ffff:127.0.0.1"}).allowed);  // the same address, mapped
  const DestinationCheck other = check(named.scope, "127.0.0.2", {"127.0.0.2"});
  CHECK_FALSE(other.allowed);
  // An IP-literal host is named once, not "127.0.0.2 resolves to 127.0.0.2".
  CHECK(
      other.reason ==
      "127.0.0.2 (loopback, 127.0.0.0/8); only an endpoint whose host is that address, or whose allowed_ips "
      "lists it, may reach loopback");

  const ScopeFixture by_name = scope_for("{ host: localhost.example.com, port: 8080 }");
  const DestinationCheck via_name = check(by_name.scope, "localhost.example.com", {"127.0.0.1"});
  CHECK_FALSE(via_name.allowed);
  CHECK(via_name.reason ==
        "localhost.example.com resolves to 127.0.0.1 (loopback, 127.0.0.0/8); only an endpoint whose host is "
        "that address, or whose allowed_ips lists it, may reach loopback");

  const ScopeFixture listed =
      scope_for("{ host: localhost.example.com, port: 8080, allowed_ips: [127.0.0.1] }");
  CHECK(check(listed.scope, "localhost.example.com", {"127.0.0.1"}).allowed);
}

TEST_CASE("private addresses pass for an exact host, and for a wildcard only through allowed_ips") {
  const ScopeFixture exact = scope_for("{ host: db.example.com, port: 5432 }");
  CHECK(check(exact.scope, "db.example.com", {"10.1.2.3", "fd00::1"}).allowed);

  const ScopeFixture wildcard = scope_for("{ host: \"*.example.com\", port: 5432 }");
  const DestinationCheck denied = check(wildcard.scope, "db.example.com", {"10.1.2.3"});
  CHECK_FALSE(denied.allowed);
  CHECK(denied.reason ==
        "db.example.com resolves to 10.1.2.3 (private, 10.0.0.0/8 (RFC 1918)); a wildcard endpoint reaches "
        "private addresses only through allowed_ips");
  CHECK(check(wildcard.scope, "www.example.com", {"8.8.8.8"}).allowed);

  const ScopeFixture listed = scope_for("{ host: \"*.example.com\", port: 5432, allowed_ips: [10.0.0.0/8] }");
  CHECK(check(listed.scope, "db.example.com", {"10.1.2.3"}).allowed);
}

TEST_CASE("with allowed_ips every address, public ones too, must lie in one of them") {
  const ScopeFixture listed =
      scope_for("{ host: db.example.com, port: 5432, allowed_ips: [10.0.0.0/8, \"fd00::/64\"] }");
  CHECK(check(listed.scope, "db.example.com", {"10.1.2.3", "fd00::5", "::ffff:10.9.9.9"}).allowed);
  const DestinationCheck outside = check(listed.scope, "db.example.com", {"8.8.8.8"});
  CHECK_FALSE(outside.allowed);
  CHECK(outside.reason ==
        "db.example.com resolves to 8.8.8.8 (public), which is not in allowed_ips of policy 'internal' "
        "(10.0.0.0/8, fd00::/64)");
  CHECK(outside.refused == ip("8.8.8.8"));
}

TEST_CASE("one refused address refuses the whole answer and is the one named") {
  const ScopeFixture exact = scope_for("{ host: api.example.com, port: 443 }");
  const DestinationCheck mixed = check(exact.scope, "api.example.com", {"8.8.8.8", "10.0.0.1", "127.0.0.1"});
  CHECK_FALSE(mixed.allowed);
  CHECK(mixed.refused == ip("127.0.0.1"));
  CHECK(mixed.reason.starts_with("api.example.com resolves to 127.0.0.1 (loopback"));
  CHECK(check(exact.scope, "api.example.com", {"8.8.8.8", "10.0.0.1"}).allowed);
}

TEST_CASE("an empty answer is refused") {
  const ScopeFixture exact = scope_for("{ host: api.example.com, port: 443 }");
  const DestinationCheck empty = check(exact.scope, "api.example.com", {});
  CHECK_FALSE(empty.allowed);
  CHECK(empty.reason == "api.example.com has no address to check");
}

}  // namespace
}  // namespace egressd::policy

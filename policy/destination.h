// Where an allowed name may lead (SSRF): the address classes egressd tells apart, and the check every
// resolved address of an allowed destination must pass before anything is dialled. Pure functions; the
// proxy resolves, calls check_destination() and dials exactly the addresses it checked.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "policy/policy.h"

namespace egressd::policy {

struct IpAddress {
  uint8_t family = 0;               // 4 or 6
  std::array<uint8_t, 16> bytes{};  // network byte order; the first 4 for IPv4

  // An IPv4 or IPv6 literal (IPv6 without brackets, no zone).
  static std::optional<IpAddress> parse(std::string_view text);
  static IpAddress v4(const uint8_t (&octets)[4]);
  static IpAddress v6(const uint8_t (&octets)[16]);
  std::string text() const;  // inet_ntop form
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

enum class AddressClass {
  Public,     // globally routable unicast
  Loopback,   // 127.0.0.0/8, ::1: only where the endpoint names it
  Private,    // RFC 1918, CGNAT, ULA, documentation, benchmarking ...: exact host or allowed_ips
  LinkLocal,  // 169.254.0.0/16, fe80::/10: never
  Metadata,   // cloud metadata services (169.254.169.254, fd00:ec2::254, 100.100.100.200, ...): never
  NotUnicast  // unspecified, multicast, broadcast, reserved: never
};

struct AddressClassification {
  AddressClass cls = AddressClass::Public;
  // The address the class was decided on: the IPv4 inside an IPv4-mapped (::ffff:0:0/96), SIIT
  // (::ffff:0:0:0/96), IPv4-compatible (::/96 but :: and ::1), NAT64 (64:ff9b::/96), 6to4 (2002::/16) or
  // Teredo (2001::/32, client bits inverted) address; else the address itself.
  IpAddress effective;
  // What it is, for reasons: "<class name>, <range>[ (<note>)]", except that a metadata address is named
  // by its service; an embedding says so first. "public", "loopback, 127.0.0.0/8",
  // "private, 10.0.0.0/8 (RFC 1918)", "cloud metadata service, 169.254.169.254",
  // "6to4 embedding 10.1.2.3: private, 10.0.0.0/8 (RFC 1918)".
  std::string what;
};

AddressClassification classify_address(const IpAddress& address);
const char* address_class_name(AddressClass cls);  // "public", "loopback", "private", ...

// Whether `address` lies inside `cidr`. Across families, an IPv4 address and the IPv4 embedded in an IPv6
// address (as classify_address() unwraps it) count both as themselves and as their ::ffff:a.b.c.d form.
bool cidr_contains(const Cidr& cidr, const IpAddress& address);

// For the loader: if `cidr` overlaps addresses egressd never connects to (link-local, metadata,
// unspecified, multicast, broadcast, reserved; for IPv6 also their ::ffff:0:0/96 forms), the sentence
// saying so, naming the narrowest such range holding the whole entry, else the broadest one inside it.
// An allowed_ips entry like that is a policy error, so 0.0.0.0/0, ::/0 and fd00::/8 (it holds
// fd00:ec2::254) are rejected.
std::optional<std::string> never_allowed_overlap(const Cidr& cidr);

// What a destination's addresses are checked against. Views: valid while the Rule/Endpoint (or whatever
// the caller built it from) lives.
struct DestinationScope {
  std::string_view rule;              // the rule's name, for reasons
  bool exact_host = false;            // the endpoint names the host exactly (a name or an IP literal);
                                      // false for a wildcard or hostless endpoint
  std::optional<IpAddress> named_ip;  // the endpoint's host when it is an IP literal
  std::span<const Cidr> allowed_ips;  // the endpoint's allowed_ips; empty: none
  static DestinationScope of(const Rule& rule, const Endpoint& endpoint);
};

struct DestinationCheck {
  bool allowed = false;
  std::string reason;  // on deny: a sentence naming host, the address and its class, and the way out
  IpAddress refused;   // on deny: the first address refused
};

// All or nothing, in order, for each address:
// 1. link-local, metadata and non-unicast addresses are refused, whatever the policy says;
// 2. with allowed_ips, the address (or the IPv4 inside it) must lie in one of them;
// 3. without: loopback only if it is the endpoint's IP-literal host, private only for an exact host;
//    public addresses pass.
// No addresses is a deny too. Where `host` is itself the refused address, the reason names it once.
DestinationCheck check_destination(const DestinationScope& scope, std::string_view host,
                                   std::span<const IpAddress> addresses);

}  // namespace egressd::policy

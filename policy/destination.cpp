#include "policy/destination.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/check.h"
#include "policy/patterns.h"

namespace egressd::policy {
namespace {

// One special-purpose range (RFC 6890 and the IANA special-purpose registries, plus the cloud metadata
// services). The first row that contains an address decides its class, so single addresses come before
// the ranges around them.
struct SpecialRange {
  std::string_view cidr;  // as shown in reasons; a single address without /32 or /128
  AddressClass cls;
  std::string_view label;  // a short note, or for Metadata the service's name
};

constexpr SpecialRange kIpv4Ranges[] = {
    {"169.254.169.254", AddressClass::Metadata, "cloud metadata service"},
    {"169.254.170.2", AddressClass::Metadata, "AWS ECS task metadata endpoint"},
    {"100.100.100.200", AddressClass::Metadata, "Alibaba Cloud metadata service"},
    {"168.63.129.16", AddressClass::Metadata, "Azure WireServer"},
    {"192.0.0.192", AddressClass::Metadata, "Oracle Cloud metadata service"},
    {"0.0.0.0/8", AddressClass::NotUnicast, "this network"},
    {"224.0.0.0/4", AddressClass::NotUnicast, "multicast"},
    {"240.0.0.0/4", AddressClass::NotUnicast, "reserved, including broadcast"},
    {"127.0.0.0/8", AddressClass::Loopback, ""},
    {"169.254.0.0/16", AddressClass::LinkLocal, ""},
    {"10.0.0.0/8", AddressClass::Private, "RFC 1918"},
    {"172.16.0.0/12", AddressClass::Private, "RFC 1918"},
    {"192.168.0.0/16", AddressClass::Private, "RFC 1918"},
    {"100.64.0.0/10", AddressClass::Private, "CGNAT, RFC 6598"},
    {"192.0.0.0/24", AddressClass::Private, "IETF protocol assignments"},
    {"192.0.2.0/24", AddressClass::Private, "documentation"},
    {"198.51.100.0/24", AddressClass::Private, "documentation"},
    {"203.0.113.0/24", AddressClass::Private, "documentation"},
    {"198.18.0.0/15", AddressClass::Private, "benchmarking"},
};

// IPv6 addresses that embed an IPv4 address are unwrapped before this table is consulted.
constexpr SpecialRange kIpv6Ranges[] = {
    {"::", AddressClass::NotUnicast, "unspecified"},
    {"::1", AddressClass::Loopback, ""},
    {"fd00:ec2::254", AddressClass::Metadata, "AWS instance metadata service over IPv6"},
    {"fe80::/10", AddressClass::LinkLocal, ""},
    {"fc00::/7", AddressClass::Private, "unique local"},
    {"fec0::/10", AddressClass::Private, "site-local, deprecated"},
    {"ff00::/8", AddressClass::NotUnicast, "multicast"},
    {"64:ff9b:1::/48", AddressClass::Private, "local-use NAT64"},
    {"100::/64", AddressClass::NotUnicast, "discard-only"},
    {"2001:db8::/32", AddressClass::Private, "documentation"},
};

struct Range {
  Cidr cidr;
  AddressClass cls;
  std::string_view label;
};

std::vector<Range> compile(std::span<const SpecialRange> table) {
  std::vector<Range> out;
  for (const SpecialRange& row : table) {
    Result<Cidr, std::string> cidr = parse_cidr(row.cidr);
    EGRESSD_CHECK(cidr.has_value());  // the tables above are constants
    out.push_back({std::move(*cidr), row.cls, row.label});
  }
  return out;
}

// Built once from the constant tables; never changes afterwards (thread-safe static initialization).
const std::vector<Range>& ranges_of(uint8_t family) {
  static const std::vector<Range> ipv4 = compile(kIpv4Ranges);
  static const std::vector<Range> ipv6 = compile(kIpv6Ranges);
  return family == 4 ? ipv4 : ipv6;
}

bool never_connects(AddressClass cls) {
  return cls == AddressClass::LinkLocal || cls == AddressClass::Metadata || cls == AddressClass::NotUnicast;
}

// Whether the first `bits` bits of `a` and `b` are the same.
bool same_prefix(const uint8_t* a, const uint8_t* b, int bits) {
  const int whole_bytes = bits / 8;
  if (std::memcmp(a, b, static_cast<std::size_t>(whole_bytes)) != 0) return false;
  const int rest = bits % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xff00u >> rest);
  return (a[whole_bytes] & mask) == (b[whole_bytes] & mask);
}

bool same_family_contains(const Cidr& cidr, const IpAddress& address) {
  return cidr.family == address.family && same_prefix(cidr.bytes, address.bytes.data(), cidr.prefix_len);
}

// Two CIDRs of one family overlap exactly when one contains the other.
bool overlaps(const Cidr& a, const Cidr& b) {
  return a.family == b.family && same_prefix(a.bytes, b.bytes, std::min(a.prefix_len, b.prefix_len));
}

IpAddress ipv4_at(const IpAddress& address, std::size_t offset, uint8_t flip = 0) {
  const uint8_t octets[4] = {static_cast<uint8_t>(address.bytes[offset] ^ flip),
                             static_cast<uint8_t>(address.bytes[offset + 1] ^ flip),
                             static_cast<uint8_t>(address.bytes[offset + 2] ^ flip),
                             static_cast<uint8_t>(address.bytes[offset + 3] ^ flip)};
  return IpAddress::v4(octets);
}

IpAddress mapped(const IpAddress& ipv4) {
  uint8_t octets[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  std::copy_n(ipv4.bytes.begin(), 4, octets + 12);
  return IpAddress::v6(octets);
}

bool all_zero(const IpAddress& address, std::size_t from, std::size_t to) {
  return std::all_of(address.bytes.begin() + static_cast<std::ptrdiff_t>(from),
                     address.bytes.begin() + static_cast<std::ptrdiff_t>(to),
                     [](uint8_t b) { return b == 0; });
}

struct Embedding {
  std::string_view kind;  // "IPv4-mapped", "6to4", ...
  IpAddress ipv4;
};

// The IPv4 address an IPv6 address stands for, where one is embedded (RFC 4291 §2.5.5, RFC 6052,
// RFC 3056, RFC 4380, RFC 2765): a peer or relay may deliver traffic for it to that IPv4 address.
std::optional<Embedding> embedded_ipv4(const IpAddress& address) {
  if (address.family != 6) return std::nullopt;
  const auto& b = address.bytes;
  if (all_zero(address, 0, 10) && b[10] == 0xff && b[11] == 0xff) {
    return Embedding{"IPv4-mapped", ipv4_at(address, 12)};
  }
  if (all_zero(address, 0, 8) && b[8] == 0xff && b[9] == 0xff && b[10] == 0 && b[11] == 0) {
    return Embedding{"SIIT", ipv4_at(address, 12)};
  }
  // :: and ::1 are the unspecified and loopback addresses, not 0.0.0.0 and 0.0.0.1.
  const bool unspecified_or_loopback = all_zero(address, 0, 15) && b[15] <= 1;
  if (all_zero(address, 0, 12) && !unspecified_or_loopback) {
    return Embedding{"IPv4-compatible", ipv4_at(address, 12)};
  }
  if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && all_zero(address, 4, 12)) {
    return Embedding{"NAT64", ipv4_at(address, 12)};
  }
  if (b[0] == 0x20 && b[1] == 0x02) return Embedding{"6to4", ipv4_at(address, 2)};
  // Teredo stores the client's address with every bit inverted.
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x00) {
    return Embedding{"Teredo", ipv4_at(address, 12, 0xff)};
  }
  return std::nullopt;
}

std::string what_of(const Range& range) {
  if (range.cls == AddressClass::Metadata) return std::string(range.label) + ", " + range.cidr.text;
  std::string what = std::string(address_class_name(range.cls)) + ", " + range.cidr.text;
  if (!range.label.empty()) what += " (" + std::string(range.label) + ")";
  return what;
}

AddressClassification classify_plain(const IpAddress& address) {
  for (const Range& range : ranges_of(address.family == 4 ? 4 : 6)) {
    if (same_family_contains(range.cidr, address)) return {range.cls, address, what_of(range)};
  }
  return {AddressClass::Public, address, address_class_name(AddressClass::Public)};
}

// A range egressd never connects to, as the overlap check sees it: for an IPv6 entry also the
// IPv4-mapped form of each IPv4 range.
struct NeverRange {
  Cidr cidr;
  AddressClass cls;
  std::string_view label;
  std::string shown;  // "169.254.0.0/16", "::ffff:169.254.0.0/112, IPv4-mapped 169.254.0.0/16"
};

std::vector<NeverRange> never_ranges_of(uint8_t family) {
  std::vector<NeverRange> out;
  for (const Range& range : ranges_of(family)) {
    if (never_connects(range.cls)) out.push_back({range.cidr, range.cls, range.label, range.cidr.text});
  }
  if (family != 6) return out;
  for (const Range& range : ranges_of(4)) {
    if (!never_connects(range.cls)) continue;
    Cidr form;
    form.family = 6;
    form.prefix_len = range.cidr.prefix_len + 96;
    form.bytes[10] = 0xff;
    form.bytes[11] = 0xff;
    std::copy_n(range.cidr.bytes, 4, form.bytes + 12);
    IpAddress network;
    network.family = 6;
    std::copy_n(form.bytes, 16, network.bytes.begin());
    form.text = network.text() + (form.prefix_len == 128 ? "" : "/" + std::to_string(form.prefix_len));
    std::string shown = form.text + ", IPv4-mapped " + range.cidr.text;
    out.push_back({std::move(form), range.cls, range.label, std::move(shown)});
  }
  return out;
}

std::string never_phrase(const NeverRange& range) {
  if (range.cls == AddressClass::Metadata) {
    return "the " + std::string(range.label) + " (" + range.shown + ")";
  }
  const std::string noun =
      range.cls == AddressClass::LinkLocal ? "link-local addresses" : "non-unicast addresses";
  return noun + " (" + range.shown + (range.label.empty() ? "" : ", " + std::string(range.label)) + ")";
}

std::string listed(std::span<const Cidr> cidrs) {
  std::string out;
  for (const Cidr& cidr : cidrs) out += (out.empty() ? "" : ", ") + cidr.text;
  return out;
}

DestinationCheck refuse(const IpAddress& address, std::string reason) {
  return {false, std::move(reason), address};
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  // inet_pton reads a C string: a NUL would end the address early and hide whatever follows it.
  if (text.find('\0') != std::string_view::npos) return std::nullopt;
  const std::string terminated(text);
  IpAddress address;
  if (inet_pton(AF_INET, terminated.c_str(), address.bytes.data()) == 1) {
    address.family = 4;
    return address;
  }
  if (inet_pton(AF_INET6, terminated.c_str(), address.bytes.data()) == 1) {
    address.family = 6;
    return address;
  }
  return std::nullopt;
}

IpAddress IpAddress::v4(const uint8_t (&octets)[4]) {
  IpAddress address;
  address.family = 4;
  std::copy_n(octets, 4, address.bytes.begin());
  return address;
}

IpAddress IpAddress::v6(const uint8_t (&octets)[16]) {
  IpAddress address;
  address.family = 6;
  std::copy_n(octets, 16, address.bytes.begin());
  return address;
}

std::string IpAddress::text() const {
  char buffer[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(family == 4 ? AF_INET : AF_INET6, bytes.data(), buffer, sizeof buffer) == nullptr) return "?";
  return buffer;
}

const char* address_class_name(AddressClass cls) {
  switch (cls) {  // no default: -Wswitch must flag a new class here
    case AddressClass::Public:
      return "public";
    case AddressClass::Loopback:
      return "loopback";
    case AddressClass::Private:
      return "private";
    case AddressClass::LinkLocal:
      return "link-local";
    case AddressClass::Metadata:
      return "metadata";
    case AddressClass::NotUnicast:
      return "not unicast";
  }
  return "unknown";
}

AddressClassification classify_address(const IpAddress& address) {
  if (std::optional<Embedding> embedding = embedded_ipv4(address)) {
    AddressClassification inner = classify_plain(embedding->ipv4);
    inner.what = std::string(embedding->kind) + " embedding " + embedding->ipv4.text() + ": " + inner.what;
    return inner;
  }
  return classify_plain(address);
}

bool cidr_contains(const Cidr& cidr, const IpAddress& address) {
  if (same_family_contains(cidr, address)) return true;
  std::optional<IpAddress> ipv4;
  if (address.family == 4) {
    ipv4 = address;
  } else if (std::optional<Embedding> embedding = embedded_ipv4(address)) {
    ipv4 = embedding->ipv4;
  }
  if (!ipv4) return false;
  return same_family_contains(cidr, *ipv4) || same_family_contains(cidr, mapped(*ipv4));
}

std::optional<std::string> never_allowed_overlap(const Cidr& cidr) {
  // Name the range that says most: the narrowest one holding the whole entry (169.254.169.254 is the
  // metadata service before it is link-local), else the broadest one inside it (0.0.0.0/0: multicast).
  const auto rank = [&cidr](const NeverRange& range) {
    const bool holds_entry = range.cidr.prefix_len <= cidr.prefix_len;
    return holds_entry ? 256 + range.cidr.prefix_len : 128 - range.cidr.prefix_len;
  };
  const std::vector<NeverRange> never = never_ranges_of(cidr.family);
  const NeverRange* named = nullptr;
  for (const NeverRange& range : never) {
    if (overlaps(cidr, range.cidr) && (named == nullptr || rank(range) > rank(*named))) named = &range;
  }
  if (named == nullptr) return std::nullopt;
  return "allowed_ips entry '" + cidr.text + "' covers " + never_phrase(*named) +
         ", which egressd never connects to";
}

DestinationScope DestinationScope::of(const Rule& rule, const Endpoint& endpoint) {
  DestinationScope scope;
  scope.rule = rule.name;
  scope.exact_host = !endpoint.hostless() && !endpoint.host.is_wildcard;
  if (endpoint.host.is_ip_literal) scope.named_ip = IpAddress::parse(endpoint.host.text);
  scope.allowed_ips = endpoint.allowed_ips;
  return scope;
}

DestinationCheck check_destination(const DestinationScope& scope, std::string_view host,
                                   std::span<const IpAddress> addresses) {
  if (addresses.empty()) return {false, std::string(host) + " has no address to check", {}};
  const std::optional<IpAddress> host_ip = IpAddress::parse(host);
  for (const IpAddress& address : addresses) {
    const AddressClassification found = classify_address(address);
    // An IP-literal host "resolves" to itself; say so once.
    const std::string subject = (host_ip == address ? "" : std::string(host) + " resolves to ") +
                                address.text() + " (" + found.what + ")";
    if (never_connects(found.cls)) return refuse(address, subject + ", which egressd never connects to");
    if (!scope.allowed_ips.empty()) {
      const bool listed_here =
          std::any_of(scope.allowed_ips.begin(), scope.allowed_ips.end(),
                      [&address](const Cidr& cidr) { return cidr_contains(cidr, address); });
      if (listed_here) continue;
      return refuse(address, subject + ", which is not in allowed_ips of policy '" + std::string(scope.rule) +
                                 "' (" + listed(scope.allowed_ips) + ")");
    }
    if (found.cls == AddressClass::Loopback) {
      // The endpoint names this address, perhaps in another form (127.0.0.1 and ::ffff:127.0.0.1).
      const bool named = scope.named_ip && classify_address(*scope.named_ip).effective == found.effective;
      if (named) continue;
      return refuse(address,
                    subject +
                        "; only an endpoint whose host is that address, or whose allowed_ips lists it, "
                        "may reach loopback");
    }
    if (found.cls == AddressClass::Private && !scope.exact_host) {
      return refuse(address,
                    subject + "; a wildcard endpoint reaches private addresses only through allowed_ips");
    }
  }
  return {true, "", {}};
}

}  // namespace egressd::policy

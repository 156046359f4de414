// Fuzz target: destination safety (SSRF). The input is an address and an allowed_ips entry, split at the
// first NUL or newline (without one, both are the whole input): IpAddress::parse, classify_address,
// parse_cidr, cidr_contains, never_allowed_overlap and check_destination.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/check.h"
#include "policy/destination.h"
#include "policy/patterns.h"

namespace {

namespace policy = egressd::policy;
using policy::AddressClass;
using policy::IpAddress;

bool never_connects(AddressClass cls) {
  return cls == AddressClass::LinkLocal || cls == AddressClass::Metadata || cls == AddressClass::NotUnicast;
}

IpAddress mapped(const IpAddress& ipv4) {  // ::ffff:a.b.c.d
  uint8_t octets[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  for (int i = 0; i < 4; ++i) octets[12 + i] = ipv4.bytes[static_cast<std::size_t>(i)];
  return IpAddress::v6(octets);
}

void check_address(const IpAddress& address) {
  EGRESSD_CHECK(address.family == 4 || address.family == 6);
  const std::optional<IpAddress> again = IpAddress::parse(address.text());
  EGRESSD_CHECK(again.has_value() && *again == address);
  const policy::AddressClassification found = policy::classify_address(address);
  EGRESSD_CHECK(!found.what.empty());
  if (found.effective != address) {  // only IPv6 embeds an IPv4 address; it is classified as that address
    EGRESSD_CHECK(address.family == 6 && found.effective.family == 4);
    EGRESSD_CHECK(policy::classify_address(found.effective).cls == found.cls);
  }
  // Without allowed_ips: a wildcard endpoint reaches public addresses only; an exact host also private ones.
  policy::DestinationScope wildcard;
  wildcard.rule = "fuzz";
  const policy::DestinationCheck by_wildcard =
      policy::check_destination(wildcard, address.text(), std::span<const IpAddress>(&address, 1));
  EGRESSD_CHECK(by_wildcard.allowed == (found.cls == AddressClass::Public));
  policy::DestinationScope exact = wildcard;
  exact.exact_host = true;
  exact.named_ip = address;
  const policy::DestinationCheck by_exact =
      policy::check_destination(exact, address.text(), std::span<const IpAddress>(&address, 1));
  EGRESSD_CHECK(by_exact.allowed == !never_connects(found.cls));
  if (!by_exact.allowed) EGRESSD_CHECK(!by_exact.reason.empty() && by_exact.refused == address);
}

void check_cidr(const policy::Cidr& cidr, const std::optional<IpAddress>& address) {
  EGRESSD_CHECK(cidr.family == 4 || cidr.family == 6);
  const int bits = cidr.family == 4 ? 32 : 128;
  EGRESSD_CHECK(cidr.prefix_len >= 0 && cidr.prefix_len <= bits);
  IpAddress network;
  network.family = cidr.family;
  for (int i = 0; i < bits / 8; ++i) {
    network.bytes[static_cast<std::size_t>(i)] = cidr.bytes[i];
    const int host_bits = std::max(0, std::min(8, 8 * (i + 1) - cidr.prefix_len));
    EGRESSD_CHECK((cidr.bytes[i] & ((1u << host_bits) - 1)) == 0);  // the stored address is the network
  }
  EGRESSD_CHECK(policy::cidr_contains(cidr, network));
  const std::optional<std::string> overlap = policy::never_allowed_overlap(cidr);
  if (overlap) EGRESSD_CHECK(!overlap->empty());
  if (!address) return;

  const policy::AddressClassification found = policy::classify_address(*address);
  const bool contains = policy::cidr_contains(cidr, *address);
  // An entry the loader accepts holds no address egressd never connects to: checked for the address itself,
  // the IPv4 in an IPv6 one against an IPv4 entry, and its ::ffff:a.b.c.d form against an IPv6 entry (as
  // never_allowed_overlap() promises; other IPv6 forms of such an IPv4 are refused by class alone).
  const bool promised =
      found.effective == *address || cidr.family == 4 || policy::cidr_contains(cidr, mapped(found.effective));
  if (contains && never_connects(found.cls) && promised) EGRESSD_CHECK(overlap.has_value());

  policy::DestinationScope scope;
  scope.rule = "fuzz";
  scope.allowed_ips = std::span<const policy::Cidr>(&cidr, 1);
  const policy::DestinationCheck check =
      policy::check_destination(scope, address->text(), std::span<const IpAddress>(&*address, 1));
  EGRESSD_CHECK(check.allowed == (contains && !never_connects(found.cls)));
  if (!check.allowed) EGRESSD_CHECK(!check.reason.empty() && check.refused == *address);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t split = input.find_first_of(std::string_view("\0\n", 2));
  const std::string_view address_text = input.substr(0, split);
  const std::string_view cidr_text = split == std::string_view::npos ? input : input.substr(split + 1);
  const std::optional<IpAddress> address = IpAddress::parse(address_text);
  if (address) check_address(*address);
  // An address is the whole text: nothing hides behind a NUL that inet_pton would stop at.
  if (IpAddress::parse(cidr_text)) EGRESSD_CHECK(cidr_text.find('\0') == std::string_view::npos);
  auto cidr = policy::parse_cidr(cidr_text);
  if (cidr) {
    EGRESSD_CHECK(cidr_text.find('\0') == std::string_view::npos);
    check_cidr(*cidr, address);
  } else {
    EGRESSD_CHECK(!cidr.error().empty());
  }
  return 0;
}

#include "policy/patterns.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

namespace egressd::policy {
namespace {

constexpr std::size_t kMaxLabelLength = 63;  // RFC 1035 §2.3.4
constexpr std::size_t kMaxNameLength = 253;  // RFC 1035 §2.3.4, without the root's trailing dot

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || is_digit(c) || c == '-' || c == '_' || c == '*';
}

std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::vector<std::string> split_labels(std::string_view name) {
  std::vector<std::string> labels;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = name.find('.', start);
    labels.emplace_back(
        name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos) return labels;
    start = dot + 1;
  }
}

std::optional<std::string> canonical_ip(int family, const std::string& text) {
  unsigned char bytes[sizeof(in6_addr)] = {};
  if (inet_pton(family, text.c_str(), bytes) != 1) return std::nullopt;
  char buffer[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(family, bytes, buffer, sizeof buffer) == nullptr) return std::nullopt;
  return std::string(buffer);
}

// A host made only of digits, dots and '*' is meant as an IPv4 address, never as a name: no top-level
// domain is numeric.
bool looks_like_ipv4(std::string_view host) {
  return std::all_of(host.begin(), host.end(), [](char c) { return is_digit(c) || c == '.' || c == '*'; }) &&
         std::any_of(host.begin(), host.end(), is_digit);
}

std::string quoted(std::string_view text) {
  return "'" + std::string(text) + "'";
}

// Wildcard rules (OpenShell's): the last two labels are literal; '**' only as the whole first label; a
// partial wildcard ('*-api') only in the first label; a whole '*' label anywhere but the last two.
std::optional<std::string> wildcard_problem(std::string_view host, const std::vector<std::string>& labels) {
  const std::string pattern = "host pattern " + quoted(host);
  const std::size_t n = labels.size();
  if (n < 3 || labels[n - 1].find('*') != std::string::npos || labels[n - 2].find('*') != std::string::npos) {
    return pattern + " is too broad: its last two labels must be literal, as in '*.example.com'";
  }
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& label = labels[i];
    if (label.find('*') == std::string::npos || label == "*") continue;
    if (label.find("**") != std::string::npos) {
      if (label != "**") {
        return pattern + " mixes '**' with other characters in " + quoted(label) +
               "; '**' must be a whole label, as in '**.example.com'";
      }
      if (i != 0)
        return pattern + " has '**' after the first label; '**' is allowed only as the whole first label";
      continue;
    }
    if (i != 0) {
      return pattern + " has a partial wildcard " + quoted(label) +
             " after the first label; only the first label may mix '*' with other characters";
    }
  }
  return std::nullopt;
}

Result<HostPattern, std::string> parse_ipv6_host(std::string_view written, const std::string& host) {
  std::string inner = host;
  if (host.front() != '[' && std::count(host.begin(), host.end(), ':') == 1) {
    return egressd::unexpected("host " + quoted(written) + " includes a port; write the port under 'port'");
  }
  if (host.front() == '[') {
    const std::size_t close = host.find(']');
    if (close != std::string::npos && close + 1 < host.size() && host[close + 1] == ':') {
      return egressd::unexpected("host " + quoted(written) + " includes a port; write the port under 'port'");
    }
    if (close != host.size() - 1)
      return egressd::unexpected("host " + quoted(written) + " is not a valid IPv6 address");
    inner = host.substr(1, host.size() - 2);
  }
  if (inner.find('*') != std::string::npos) {
    return egressd::unexpected("host " + quoted(written) +
                               " is an IP address with a wildcard; wildcards are allowed only in names");
  }
  std::optional<std::string> canonical = canonical_ip(AF_INET6, inner);
  if (!canonical) return egressd::unexpected("host " + quoted(written) + " is not a valid IPv6 address");
  HostPattern pattern;
  pattern.text = *canonical;
  pattern.is_ip_literal = true;
  pattern.labels = {pattern.text};
  return pattern;
}

}  // namespace

Result<HostPattern, std::string> parse_host_pattern(std::string_view written) {
  const std::string host = ascii_lower(written);
  const std::string name = "host " + quoted(written);
  if (host.empty()) return egressd::unexpected(std::string("host is empty"));
  if (host.find("://") != std::string::npos) {
    return egressd::unexpected(name + " is a URL; write only the host name, and the port under 'port'");
  }
  for (char c : host) {
    if (c == ' ' || c == '\t') return egressd::unexpected(name + " contains a space");
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return egressd::unexpected(name + " contains a control character");
    }
  }
  if (host.front() == '[' || host.find(':') != std::string::npos) return parse_ipv6_host(written, host);
  if (host.back() == '.')
    return egressd::unexpected(name + " ends with a dot; write it without the trailing dot");

  if (looks_like_ipv4(host)) {
    if (host.find('*') != std::string::npos) {
      return egressd::unexpected(name +
                                 " is an IP address with a wildcard; wildcards are allowed only in names");
    }
    std::optional<std::string> canonical = canonical_ip(AF_INET, host);
    if (!canonical) return egressd::unexpected(name + " is not a valid IPv4 address");
    HostPattern pattern;
    pattern.text = *canonical;
    pattern.is_ip_literal = true;
    pattern.labels = split_labels(pattern.text);
    return pattern;
  }

  if (host.size() > kMaxNameLength) {
    return egressd::unexpected(name + " is longer than " + std::to_string(kMaxNameLength) + " characters");
  }
  for (char c : host) {
    if (c != '.' && !is_name_char(c)) {
      const bool printable = static_cast<unsigned char>(c) < 0x80;
      return egressd::unexpected(
          name + " contains " + (printable ? quoted(std::string(1, c)) : "a non-ASCII byte") +
          "; a host name has only letters, digits, '-', '_', '.' and the wildcard '*'" +
          (printable ? "" : " (write internationalized names in punycode, 'xn--...')"));
    }
  }
  HostPattern pattern;
  pattern.text = host;
  pattern.labels = split_labels(host);
  for (const std::string& label : pattern.labels) {
    if (label.empty()) return egressd::unexpected(name + " has an empty label");
    if (label.size() > kMaxLabelLength) {
      return egressd::unexpected(name + " has a label longer than " + std::to_string(kMaxLabelLength) +
                                 " characters");
    }
  }
  pattern.is_wildcard = host.find('*') != std::string::npos;
  if (pattern.is_wildcard) {
    if (std::optional<std::string> problem = wildcard_problem(written, pattern.labels)) {
      return egressd::unexpected(std::move(*problem));
    }
  }
  return pattern;
}

Result<Cidr, std::string> parse_cidr(std::string_view written) {
  // inet_pton reads a C string: a NUL would end the address early and hide whatever follows it.
  if (written.find('\0') != std::string_view::npos) {
    return egressd::unexpected(std::string("allowed_ips entry contains a NUL byte"));
  }
  const std::string entry = "allowed_ips entry " + quoted(written);
  const std::string text(written);
  const std::size_t slash = text.find('/');
  const std::string address = text.substr(0, slash);
  Cidr cidr;
  cidr.text = text;
  if (inet_pton(AF_INET, address.c_str(), cidr.bytes) == 1) {
    cidr.family = 4;
  } else if (inet_pton(AF_INET6, address.c_str(), cidr.bytes) == 1) {
    cidr.family = 6;
  } else {
    return egressd::unexpected(entry + " is not an IP address or a CIDR (like 10.0.0.0/8 or fd00::/8)");
  }
  const int max_prefix = cidr.family == 4 ? 32 : 128;
  cidr.prefix_len = max_prefix;
  if (slash != std::string::npos) {
    const std::string prefix = text.substr(slash + 1);
    const bool numeric =
        !prefix.empty() && prefix.size() <= 3 && std::all_of(prefix.begin(), prefix.end(), is_digit);
    const int value = numeric ? std::stoi(prefix) : -1;
    if (value < 0 || value > max_prefix) {
      return egressd::unexpected(entry + " has an invalid prefix length; it must be 0.." +
                                 std::to_string(max_prefix) + " for an IPv" + std::to_string(cidr.family) +
                                 " address");
    }
    cidr.prefix_len = value;
  }
  // Host bits may be set in the policy (10.1.2.3/8); keep only the network.
  const int byte_count = cidr.family == 4 ? 4 : 16;
  for (int i = 0; i < byte_count; ++i) {
    const int bits_kept = std::clamp(cidr.prefix_len - 8 * i, 0, 8);
    cidr.bytes[i] = static_cast<uint8_t>(cidr.bytes[i] & (0xff00u >> bits_kept));
  }
  return cidr;
}

Result<std::string, std::string> parse_http_method(std::string_view text) {
  std::string upper(text);
  for (char& c : upper) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  const bool token = !upper.empty() && std::all_of(upper.begin(), upper.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' || c == '_';
  });
  if (upper != "*" && !token) {
    return egressd::unexpected("invalid method " + quoted(text) +
                               "; expected an HTTP method such as GET, or '*'");
  }
  return upper;
}

Result<std::string, std::string> parse_http_path(std::string_view text) {
  if (text.empty() || (text.front() != '/' && text != "*" && text != "**")) {
    return egressd::unexpected("path " + quoted(text) + " must start with '/' (a glob such as '/repos/**')");
  }
  return std::string(text);
}

}  // namespace egressd::policy

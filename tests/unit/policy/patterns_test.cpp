#include "policy/patterns.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace egressd::policy {
namespace {

TEST_CASE("accepted host patterns are stored lowercase, IPv6 in canonical form without brackets") {
  struct Row {
    const char* written;
    const char* stored;
    bool is_wildcard;
    bool is_ip_literal;
  };
  const Row rows[] = {
      {"api.github.com", "api.github.com", false, false},
      {"API.GitHub.COM", "api.github.com", false, false},
      {"localhost", "localhost", false, false},
      {"my_service.internal", "my_service.internal", false, false},
      {"*.example.com", "*.example.com", true, false},
      {"**.example.com", "**.example.com", true, false},
      {"*-aiplatform.googleapis.com", "*-aiplatform.googleapis.com", true, false},
      {"*.s3.*.amazonaws.com", "*.s3.*.amazonaws.com", true, false},
      {"*.S3.*.AmazonAWS.com", "*.s3.*.amazonaws.com", true, false},
      {"api.*.example.com", "api.*.example.com", true, false},
      {"10.0.0.1", "10.0.0.1", false, true},
      {"::1", "::1", false, true},
      {"[::1]", "::1", false, true},
      {"2001:DB8:0:0:0:0:0:1", "2001:db8::1", false, true},
      {"[2001:db8::1]", "2001:db8::1", false, true},
      {"::ffff:10.0.0.1", "::ffff:10.0.0.1", false, true},
  };
  for (const Row& row : rows) {
    CAPTURE(row.written);
    Result<HostPattern, std::string> pattern = parse_host_pattern(row.written);
    REQUIRE(pattern.has_value());
    CHECK(pattern->text == row.stored);
    CHECK(pattern->is_wildcard == row.is_wildcard);
    CHECK(pattern->is_ip_literal == row.is_ip_literal);
  }
}

TEST_CASE("a wildcard host pattern is split into lowercase labels") {
  Result<HostPattern, std::string> pattern = parse_host_pattern("*.S3.*.AmazonAWS.com");
  REQUIRE(pattern.has_value());
  CHECK(pattern->labels == std::vector<std::string>{"*", "s3", "*", "amazonaws", "com"});
}

TEST_CASE("too broad or misplaced wildcards are rejected with the rule they break") {
  struct Row {
    const char* written;
    const char* fragment;
  };
  const Row rows[] = {
      {"*", "host pattern '*' is too broad: its last two labels must be literal"},
      {"**", "host pattern '**' is too broad"},
      {"*.com", "host pattern '*.com' is too broad"},
      {"*.*.com", "is too broad"},
      {"example.*", "is too broad"},
      {"api.example.c*", "is too broad"},
      {"*.example*.com", "is too broad"},
      {"foo.**.example.com", "has '**' after the first label; '**' is allowed only as the whole first label"},
      {"foo.us-*.example.com", "has a partial wildcard 'us-*' after the first label"},
      {"**foo.example.com", "mixes '**' with other characters in '**foo'"},
      {"a**b.example.com", "mixes '**' with other characters"},
      {"10.0.0.*", "host '10.0.0.*' is an IP address with a wildcard"},
      {"*.0.0.1", "is an IP address with a wildcard"},
      {"fe80::*", "is an IP address with a wildcard"},
      {"[2001:db8::*]", "is an IP address with a wildcard"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.written);
    Result<HostPattern, std::string> pattern = parse_host_pattern(row.written);
    REQUIRE_FALSE(pattern.has_value());
    CHECK(pattern.error().find(row.fragment) != std::string::npos);
  }
}

TEST_CASE("malformed hosts are rejected with what is wrong with them") {
  struct Row {
    const char* written;
    const char* fragment;
  };
  const Row rows[] = {
      {"", "host is empty"},
      {"api github.com", "contains a space"},
      {"api.github.com\t", "contains a space"},
      {"api.github.com.", "ends with a dot"},
      {"api.github.com:443", "includes a port; write the port under 'port'"},
      {"*.github.com:443", "includes a port"},
      {"[::1]:443", "includes a port"},
      {"https://api.github.com", "is a URL"},
      {"api.github.com/repos", "contains '/'"},
      {"a..example.com", "has an empty label"},
      {".example.com", "has an empty label"},
      {"999.1.1.1", "is not a valid IPv4 address"},
      {"1.2.3", "is not a valid IPv4 address"},
      {"[fe80::zz]", "is not a valid IPv6 address"},
      {"[example.com]", "is not a valid IPv6 address"},
      {"fe80::1::2", "is not a valid IPv6 address"},
      {"b\xc3\xbc"
       "cher.example",
       "non-ASCII"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.written);
    Result<HostPattern, std::string> pattern = parse_host_pattern(row.written);
    REQUIRE_FALSE(pattern.has_value());
    CHECK(pattern.error().find(row.fragment) != std::string::npos);
  }
}

TEST_CASE("allowed_ips entries parse as a network, keeping the text as written") {
  struct Row {
    const char* written;
    int family;
    int prefix_len;
    const char* network;  // inet_pton of the expected network address
  };
  const Row rows[] = {
      {"10.0.0.0/8", 4, 8, "10.0.0.0"},
      {"10.1.2.3/8", 4, 8, "10.0.0.0"},
      {"192.168.1.7", 4, 32, "192.168.1.7"},
      {"172.16.255.1/12", 4, 12, "172.16.0.0"},
      {"0.0.0.0/0", 4, 0, "0.0.0.0"},
      {"fd00::1/64", 6, 64, "fd00::"},
      {"fd12:3456::1/20", 6, 20, "fd12:3000::"},
      {"::1", 6, 128, "::1"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.written);
    Result<Cidr, std::string> cidr = parse_cidr(row.written);
    REQUIRE(cidr.has_value());
    CHECK(cidr->text == row.written);
    CHECK(cidr->family == row.family);
    CHECK(cidr->prefix_len == row.prefix_len);
    Result<Cidr, std::string> network = parse_cidr(row.network);
    REQUIRE(network.has_value());
    CHECK(std::vector<uint8_t>(cidr->bytes, cidr->bytes + 16) ==
          std::vector<uint8_t>(network->bytes, network->bytes + 16));
  }
}

TEST_CASE("allowed_ips entries that are not addresses or have a bad prefix are rejected") {
  struct Row {
    const char* written;
    const char* fragment;
  };
  const Row rows[] = {
      {"10.0.0.0/33", "invalid prefix length; it must be 0..32 for an IPv4 address"},
      {"fd00::/129", "invalid prefix length; it must be 0..128 for an IPv6 address"},
      {"10.0.0.0/", "invalid prefix length"},
      {"10.0.0.0/-1", "invalid prefix length"},
      {"10.0.0.0/8/8", "invalid prefix length"},
      {"10.0.0.256", "is not an IP address or a CIDR"},
      {"example.com", "is not an IP address or a CIDR"},
      {"", "is not an IP address or a CIDR"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.written);
    Result<Cidr, std::string> cidr = parse_cidr(row.written);
    REQUIRE_FALSE(cidr.has_value());
    CHECK(cidr.error().find(row.fragment) != std::string::npos);
  }
  // inet_pton would stop at the NUL and take "10.0.0.1" (found by fuzz/fuzz_destination).
  Result<Cidr, std::string> with_nul = parse_cidr(std::string_view("10.0.0.1\0junk", 13));
  REQUIRE_FALSE(with_nul.has_value());
  CHECK(with_nul.error() == "allowed_ips entry contains a NUL byte");
}

TEST_CASE("L7 methods are upper-cased and must be a token or '*'") {
  struct Row {
    const char* written;
    const char* stored;  // null when rejected
  };
  const Row rows[] = {{"get", "GET"},    {"Post", "POST"}, {"*", "*"},       {"M-SEARCH", "M-SEARCH"},
                      {"GE T", nullptr}, {"", nullptr},    {"GET/", nullptr}};
  for (const Row& row : rows) {
    CAPTURE(row.written);
    Result<std::string, std::string> method = parse_http_method(row.written);
    REQUIRE(method.has_value() == (row.stored != nullptr));
    if (row.stored != nullptr) CHECK(*method == row.stored);
  }
}

TEST_CASE("L7 paths must start with '/' unless they match any path") {
  struct Row {
    const char* written;
    bool accepted;
  };
  const Row rows[] = {{"/repos/**", true}, {"/", true}, {"**", true},
                      {"*", true},         {"", false}, {"repos/**", false}};
  for (const Row& row : rows) {
    CAPTURE(row.written);
    CHECK(parse_http_path(row.written).has_value() == row.accepted);
  }
}

}  // namespace
}  // namespace egressd::policy

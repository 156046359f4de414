#include "tests/support/policy_yaml.h"

#include <doctest/doctest.h>

namespace egressd::test {
namespace {

TEST_CASE("policy_allowing writes one rule with the binary and the endpoint, every scalar quoted") {
  CHECK(policy_allowing("/usr/bin/curl", "::1", 8080) ==
        "version: 1\n"
        "network_policies:\n"
        "  \"test\":\n"
        "    endpoints:\n"
        "      - host: \"::1\"\n"
        "        port: 8080\n"
        "    binaries:\n"
        "      - path: \"/usr/bin/curl\"\n");
}

TEST_CASE("policy_allowing with several rules keeps their order, and with none allows nothing") {
  const std::string yaml = policy_allowing({{"first", {"/a", "/b"}, {{"127.0.0.1", 1}, {"example.test", 2}}},
                                            {"second", {"/c"}, {{"127.0.0.2", 3}}}});
  CHECK(yaml.find("\"first\"") < yaml.find("\"second\""));
  CHECK(yaml.find("path: \"/b\"") != std::string::npos);
  CHECK(yaml.find("host: \"example.test\"\n        port: 2") != std::string::npos);
  CHECK(policy_allowing(std::vector<PolicyRule>{}) == "version: 1\nnetwork_policies: {}\n");
}

}  // namespace
}  // namespace egressd::test

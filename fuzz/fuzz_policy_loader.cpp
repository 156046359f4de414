// Fuzz target: the policy loader (YAML text -> Policy or errors), and decide() on what it accepts. A policy
// file is written by an operator, but a reload reads whatever is on disk: nothing in it may crash egressd.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "common/check.h"
#include "policy/destination.h"
#include "policy/http_matcher.h"
#include "policy/loader.h"
#include "policy/matcher.h"

namespace {

namespace policy = egressd::policy;

constexpr const char* kName = "fuzz.yaml";
constexpr int kMaxDecisions = 64;  // decide() calls per input, to keep each run short

void check_errors(const policy::LoadErrors& errors, std::string_view text) {
  EGRESSD_CHECK(!errors.empty());
  // yaml-cpp counts columns in its UTF-8 re-encoding of the text, where an invalid byte becomes U+FFFD
  // (three bytes), and may point just past the end.
  const auto line_bound = static_cast<long long>(text.size()) + 1;
  const auto col_bound = 3 * static_cast<long long>(text.size()) + 2;
  for (const policy::LoadError& error : errors) {
    EGRESSD_CHECK(error.where.file == kName);
    EGRESSD_CHECK(!error.message.empty());
    // 1-based line and column, or both 0 for an error about the whole file.
    EGRESSD_CHECK(error.where.line >= 0 && error.where.col >= 0);
    EGRESSD_CHECK((error.where.line == 0) == (error.where.col == 0));
    EGRESSD_CHECK(error.where.line <= line_bound && error.where.col <= col_bound);
  }
  EGRESSD_CHECK(std::is_sorted(errors.begin(), errors.end(), [](const auto& a, const auto& b) {
    return std::pair(a.where.line, a.where.col) < std::pair(b.where.line, b.where.col);
  }));
  EGRESSD_CHECK(!policy::format_errors(errors).empty());
}

// decide() must allow what a rule lists: its exact binaries, at each exact host (or, for a hostless
// endpoint, an address in its allowed_ips) and port of its endpoints.
void check_decisions(const policy::Policy& loaded) {
  int budget = kMaxDecisions;
  for (const policy::Rule& rule : loaded.rules) {
    for (const policy::BinaryPattern& binary : rule.binaries) {
      if (binary.is_glob) continue;
      const policy::Caller caller{binary.path, {}};
      for (const policy::Endpoint& endpoint : rule.endpoints) {
        if (endpoint.host.is_wildcard) continue;
        std::string host = endpoint.host.text;
        if (endpoint.hostless()) {
          policy::IpAddress network;
          network.family = endpoint.allowed_ips.front().family;
          std::copy_n(endpoint.allowed_ips.front().bytes, 16, network.bytes.begin());
          host = network.text();
        }
        for (const uint16_t port : endpoint.ports) {
          if (--budget < 0) return;
          const policy::Decision decision = policy::decide(loaded, {caller, host, port});
          EGRESSD_CHECK(decision.verdict == policy::Verdict::Allow);
          EGRESSD_CHECK(decision.rule != nullptr && decision.endpoint != nullptr);
          EGRESSD_CHECK(std::find(decision.endpoint->ports.begin(), decision.endpoint->ports.end(), port) !=
                        decision.endpoint->ports.end());
          EGRESSD_CHECK(!decision.reason.empty());
          const policy::HttpDecision http =
              policy::decide_http(*decision.rule, *decision.endpoint, host, port, {"GET", "/", ""});
          EGRESSD_CHECK(!http.reason.empty() || http.verdict == policy::Verdict::Allow);
        }
      }
    }
  }
  // An unknown caller is denied everywhere (fail closed), with a reason.
  const policy::Caller unknown{"", {}};
  const policy::Decision denied = policy::decide(loaded, {unknown, "example.com", 443});
  EGRESSD_CHECK(denied.verdict == policy::Verdict::Deny && denied.rule == nullptr && !denied.reason.empty());
}

void check_policy(const policy::Policy& loaded) {
  EGRESSD_CHECK(loaded.source_path == kName);
  EGRESSD_CHECK(loaded.source_hash.size() == 16);
  EGRESSD_CHECK(std::all_of(loaded.source_hash.begin(), loaded.source_hash.end(),
                            [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }));
  for (const policy::Rule& rule : loaded.rules) {
    EGRESSD_CHECK(!rule.name.empty());
    EGRESSD_CHECK(!rule.endpoints.empty() && !rule.binaries.empty());
    for (const policy::Endpoint& endpoint : rule.endpoints) {
      EGRESSD_CHECK(!endpoint.ports.empty());
      EGRESSD_CHECK(std::find(endpoint.ports.begin(), endpoint.ports.end(), 0) == endpoint.ports.end());
      EGRESSD_CHECK(!endpoint.hostless() || !endpoint.allowed_ips.empty());
      EGRESSD_CHECK(std::none_of(endpoint.host.text.begin(), endpoint.host.text.end(),
                                 [](char c) { return c >= 'A' && c <= 'Z'; }));
      for (const policy::Cidr& cidr : endpoint.allowed_ips) {
        EGRESSD_CHECK(!policy::never_allowed_overlap(cidr).has_value());
      }
    }
    for (const policy::BinaryPattern& binary : rule.binaries) EGRESSD_CHECK(binary.path.starts_with('/'));
  }
  check_decisions(loaded);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto loaded = policy::load_policy_text(text, kName);
  if (!loaded) {
    check_errors(loaded.error(), text);
    return 0;
  }
  EGRESSD_CHECK(*loaded != nullptr);
  check_policy(**loaded);
  return 0;
}

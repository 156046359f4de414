// T8 (issue #6): decide() with a 10 000-rule policy (exact, `*.` and `**.` hosts, exact and glob
// binaries): the load time of that policy and decide()'s p50/p99 over allowed, wrong-binary and unknown-
// host requests. Prints one JSON object.
//
//   egressd_bench_policy [--rules 10000] [--queries 200000]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "policy/loader.h"
#include "policy/matcher.h"

namespace {

using egressd::policy::Caller;
using egressd::policy::Decision;
using egressd::policy::EgressRequest;
using egressd::policy::Policy;
using egressd::policy::Verdict;

// Rule i: kind i % 4 picks the host shape; every third rule lists a glob binary.
std::string host_of(int i) {
  switch (i % 4) {
    case 0:
      return "api" + std::to_string(i) + ".svc" + std::to_string(i % 97) + ".example.com";
    case 1:
      return "*.s" + std::to_string(i) + ".example.org";
    case 2:
      return "**.d" + std::to_string(i) + ".example.net";
    default:
      return "h" + std::to_string(i) + ".example.com";
  }
}
std::string binary_of(int i) {
  return i % 3 == 0 ? "/opt/tool" + std::to_string(i) + "/**" : "/usr/bin/tool" + std::to_string(i);
}
// A host that rule i's pattern matches, and an executable its binaries list.
std::string matching_host(int i) {
  switch (i % 4) {
    case 1:
      return "x.s" + std::to_string(i) + ".example.org";
    case 2:
      return "a.b.d" + std::to_string(i) + ".example.net";
    default:
      return host_of(i);
  }
}
std::string matching_exe(int i) {
  return i % 3 == 0 ? "/opt/tool" + std::to_string(i) + "/bin/run" : "/usr/bin/tool" + std::to_string(i);
}

std::string policy_yaml(int rules) {
  std::string yaml = "version: 1\nnetwork_policies:\n";
  for (int i = 0; i < rules; ++i) {
    yaml += "  r" + std::to_string(i) + ":\n    endpoints: [{ host: \"" + host_of(i) +
            "\", port: 443 }]\n    binaries: [{ path: \"" + binary_of(i) + "\" }]\n";
  }
  return yaml;
}

struct Query {
  Caller caller;
  std::string host;
  Verdict want;
};

double percentile(std::vector<double>& samples, double q) {
  std::sort(samples.begin(), samples.end());
  return samples[std::min(samples.size() - 1, static_cast<size_t>(q * static_cast<double>(samples.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  int rule_count = 10000;
  int query_count = 200000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--rules")
      rule_count = std::atoi(argv[i + 1]);
    else if (flag == "--queries")
      query_count = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: egressd_bench_policy [--rules 10000] [--queries 200000]\n");
      return 2;
    }
  }
  const std::string yaml = policy_yaml(rule_count);
  std::vector<double> load_ms;
  std::shared_ptr<const Policy> policy;
  for (int round = 0; round < 5; ++round) {
    const auto start = std::chrono::steady_clock::now();
    auto loaded = egressd::policy::load_policy_text(yaml, "bench.yaml");
    load_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    if (!loaded) {
      std::fprintf(stderr, "%s", egressd::policy::format_errors(loaded.error()).c_str());
      return 1;
    }
    policy = *loaded;
  }

  // A third allowed, a third listed host with a binary of another rule, a third unknown host.
  std::mt19937 random(6);
  std::uniform_int_distribution<int> pick(0, rule_count - 1);
  std::vector<Query> queries;
  for (int i = 0; i < 3000; ++i) {
    const int rule = pick(random);
    switch (i % 3) {
      case 0:
        queries.push_back({{matching_exe(rule), {}}, matching_host(rule), Verdict::Allow});
        break;
      case 1:
        queries.push_back({{matching_exe((rule + 1) % rule_count), {}}, matching_host(rule), Verdict::Deny});
        break;
      default:
        queries.push_back(
            {{matching_exe(rule), {}}, "unknown" + std::to_string(rule) + ".example.com", Verdict::Deny});
        break;
    }
  }
  std::vector<double> decide_ns;
  decide_ns.reserve(static_cast<size_t>(query_count));
  int wrong = 0;
  for (int i = 0; i < query_count; ++i) {
    const Query& query = queries[static_cast<size_t>(i) % queries.size()];
    const auto start = std::chrono::steady_clock::now();
    const Decision decision = egressd::policy::decide(*policy, EgressRequest{query.caller, query.host, 443});
    const auto elapsed = std::chrono::steady_clock::now() - start;
    decide_ns.push_back(std::chrono::duration<double, std::nano>(elapsed).count());
    wrong += decision.verdict != query.want;
  }
  std::printf("{\"rules\": %d, \"queries\": %d, \"wrong_verdicts\": %d,\n", rule_count, query_count, wrong);
  std::printf(" \"load_ms\": {\"p50\": %.1f, \"max\": %.1f},\n", percentile(load_ms, 0.5),
              percentile(load_ms, 1.0));
  std::printf(" \"decide_us\": {\"p50\": %.3f, \"p99\": %.3f, \"max\": %.3f}}\n",
              percentile(decide_ns, 0.5) / 1000, percentile(decide_ns, 0.99) / 1000,
              percentile(decide_ns, 1.0) / 1000);
  return wrong == 0 ? 0 : 1;
}

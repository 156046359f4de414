// `egressd explain`: what the policy decides for one binary and host:port (and optionally one HTTP
// request), with the rule, endpoint and binary entry behind it, or for a denial the nearest rules and why
// each did not match. The decision is policy::explain()'s, made by the matchers the proxy runs.
// Exit status: 0 allow, 1 deny, 2 usage (or a policy that does not load).
#include <fcntl.h>
#include <stdlib.h>

#include <climits>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "policy/explain.h"
#include "policy/loader.h"
#include "proxy/commands.h"
#include "proxy/embedded_policy.h"
#include "proxy/exe_digest.h"
#include "proxy/json_text.h"
#include "proxy/target.h"

namespace egressd::proxy {
namespace {

constexpr const char* kExplainUsage =
    "usage: egressd explain --binary PATH --host HOST --port PORT [--method METHOD --path PATH[?QUERY]]\n"
    "                       [--ancestor PATH]... [--policy FILE] [--json]\n";

struct ExplainArgs {
  std::string binary;
  std::vector<std::string> ancestors;
  std::string host;
  std::string port;
  std::optional<std::string> method;
  std::optional<std::string> path;
  std::optional<std::string> policy_path;
  bool json = false;
};

int usage_error(const std::string& message) {
  std::fprintf(stderr, "egressd explain: %s\n%s", message.c_str(), kExplainUsage);
  return 2;
}

// What /proc/PID/exe would say for a process running `path`: the file after symlinks, when it exists.
std::string as_exe(const std::string& path) {
  char resolved[PATH_MAX];
  return ::realpath(path.c_str(), resolved) != nullptr ? std::string(resolved) : path;
}

std::optional<std::string> sha256_of(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  ExeDigests digests(1);
  auto digest = digests.sha256_of_fd(fd.get(), path);
  if (!digest) return std::nullopt;
  return *digest;
}

std::string at(const policy::SourceLocation& where) {
  return where.file + ":" + std::to_string(where.line) + ":" + std::to_string(where.col);
}

std::string location_json(const policy::SourceLocation& where) {
  JsonObject json;
  json.field("file", where.file).field("line", int64_t{where.line}).field("col", int64_t{where.col});
  return json.str();
}

std::string target_text(const policy::ExplainQuery& query) {
  const std::string authority = policy::format_host_port(query.host, query.port);
  if (!query.method) return authority;
  return *query.method + " " + query.path + (query.query.empty() ? "" : "?" + query.query) + " on " +
         authority;
}

void print_text(const policy::Explanation& e, const policy::ExplainQuery& query, const std::string& given) {
  const bool allow = e.verdict == policy::Verdict::Allow;
  std::printf("%s %s -> %s%s\n", allow ? "ALLOW" : "DENY", query.caller.exe.c_str(),
              target_text(query).c_str(),
              e.audited ? " (audit mode: the proxy lets it through and logs that it would be denied)" : "");
  if (given != query.caller.exe)
    std::printf("  binary:      %s resolves to %s\n", given.c_str(), query.caller.exe.c_str());
  if (!allow || e.audited) std::printf("  decided by:  %s\n", policy::stage_name(e.stage));
  std::printf("  reason:      %s\n", e.reason.c_str());
  if (e.rule != nullptr)
    std::printf("  rule:        %s (%s)\n", e.rule->name.c_str(), at(e.rule->where).c_str());
  if (e.endpoint != nullptr) std::printf("  endpoint:    %s\n", at(e.endpoint->where).c_str());
  if (e.binary != nullptr) {
    std::printf("  binary entry: %s (%s)\n", e.binary->path.c_str(), at(e.binary->where).c_str());
  }
  if (!e.http_rule.empty()) {
    std::printf("  http rule:   %s%s\n", e.http_rule.c_str(),
                e.http_rule_where ? (" (" + at(*e.http_rule_where) + ")").c_str() : "");
  }
  for (const std::string& note : e.http_notes) std::printf("    - %s\n", note.c_str());
  for (const std::string& fact : e.facts) std::printf("  note:        %s\n", fact.c_str());
  if (!e.nearest.empty()) std::printf("  nearest rules:\n");
  for (const policy::NearRule& near : e.nearest) {
    std::string lists = near.lists_binary && near.lists_host ? "lists the binary and the host"
                        : near.lists_binary                  ? "lists the binary"
                                                             : "lists the host";
    std::printf("    %s (%s): %s\n", near.rule->name.c_str(), at(near.rule->where).c_str(), lists.c_str());
    for (const std::string& why : near.why_not) std::printf("      - %s\n", why.c_str());
  }
  if (!allow && e.stage == policy::ExplainStage::Policy && e.nearest.empty()) {
    std::printf("  nearest rules: none lists this binary or an endpoint for this host\n");
  }
}

void print_json(const policy::Explanation& e, const policy::ExplainQuery& query,
                const policy::Policy& policy) {
  JsonObject json;
  json.field("verdict", e.verdict == policy::Verdict::Allow ? "allow" : "deny")
      .raw_field("audited", e.audited ? "true" : "false")
      .field("binary", query.caller.exe)
      .field("host", query.host)
      .field("port", int64_t{query.port});
  if (query.method) json.field("method", *query.method).field("path", query.path).field("query", query.query);
  if (e.verdict == policy::Verdict::Deny || e.audited) json.field("stage", policy::stage_name(e.stage));
  json.field("reason", e.reason);
  if (e.rule != nullptr) {
    JsonObject rule;
    rule.field("name", e.rule->name).raw_field("at", location_json(e.rule->where));
    json.raw_field("rule", rule.str());
  } else {
    json.null_field("rule");
  }
  if (e.endpoint != nullptr) {
    json.raw_field("endpoint", location_json(e.endpoint->where));
  } else {
    json.null_field("endpoint");
  }
  if (e.binary != nullptr) {
    JsonObject binary;
    binary.field("path", e.binary->path).raw_field("at", location_json(e.binary->where));
    json.raw_field("binary_entry", binary.str());
  } else {
    json.null_field("binary_entry");
  }
  if (!e.http_rule.empty()) {
    json.field("http_rule", e.http_rule);
    if (e.http_rule_where) json.raw_field("http_rule_at", location_json(*e.http_rule_where));
  }
  json.field("http_notes", e.http_notes)
      .field("rules_considered", e.rules_considered)
      .field("facts", e.facts);
  std::vector<std::string> nearest;
  for (const policy::NearRule& near : e.nearest) {
    JsonObject item;
    item.field("rule", near.rule->name)
        .raw_field("at", location_json(near.rule->where))
        .raw_field("lists_binary", near.lists_binary ? "true" : "false")
        .raw_field("lists_host", near.lists_host ? "true" : "false")
        .field("why_not", near.why_not);
    nearest.push_back(item.str());
  }
  json.raw_field("nearest", json_array(nearest));
  json.field("policy", policy.source_path).field("policy_hash", policy.source_hash);
  std::printf("%s\n", json.str().c_str());
}

std::optional<int> parse_args(const Args& args, ExplainArgs& out) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view flag = args[i];
    if (flag == "--json") {
      out.json = true;
      continue;
    }
    if (i + 1 >= args.size()) return usage_error("'" + std::string(flag) + "' needs a value");
    const std::string value(args[++i]);
    if (flag == "--binary") {
      out.binary = value;
    } else if (flag == "--ancestor") {
      out.ancestors.push_back(value);
    } else if (flag == "--host") {
      out.host = value;
    } else if (flag == "--port") {
      out.port = value;
    } else if (flag == "--method") {
      out.method = value;
    } else if (flag == "--path") {
      out.path = value;
    } else if (flag == "--policy") {
      out.policy_path = value;
    } else {
      return usage_error("unknown option '" + std::string(flag) + "'");
    }
  }
  if (out.binary.empty() || out.binary.front() != '/') return usage_error("--binary needs an absolute path");
  if (out.host.empty() || out.port.empty()) return usage_error("--host and --port are required");
  if (out.method.has_value() != out.path.has_value()) return usage_error("give --method and --path together");
  if (out.path && !out.path->starts_with('/')) return usage_error("--path must start with '/'");
  return std::nullopt;
}

}  // namespace

int command_explain(const Args& args) {
  ExplainArgs given;
  if (std::optional<int> status = parse_args(args, given)) return *status;

  // The host and port as the proxy parses a CONNECT authority: lowercase, brackets off, port checked.
  const bool bare_ipv6 = given.host.find(':') != std::string::npos && !given.host.starts_with('[');
  auto target = parse_connect_authority((bare_ipv6 ? "[" + given.host + "]" : given.host) + ":" + given.port);
  if (!target) return usage_error(target.error());

  std::shared_ptr<const policy::Policy> policy;
  auto loaded = given.policy_path ? policy::load_policy_file(*given.policy_path)
                                  : policy::load_policy_text(kEmbeddedPolicy, kEmbeddedPolicyName);
  if (!loaded) {
    std::fputs(policy::format_errors(loaded.error()).c_str(), stderr);
    std::fprintf(stderr, "egressd explain: the policy does not load, so egressd would not start with it\n");
    return 2;
  }
  policy = *loaded;

  policy::ExplainQuery query;
  query.caller.exe = as_exe(given.binary);
  for (const std::string& ancestor : given.ancestors) query.caller.ancestors.push_back(as_exe(ancestor));
  query.host = target->host;
  query.port = target->port;
  if (given.method) {
    std::string method = *given.method;
    for (char& c : method) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    query.method = method;
    const std::size_t question = given.path->find('?');
    query.path = given.path->substr(0, question);
    query.query = question == std::string::npos ? std::string() : given.path->substr(question + 1);
  }
  policy::Explanation explanation = policy::explain(*policy, query);
  // A pinned binary entry: hash the executable as the proxy would, and decide again with its digest.
  if (explanation.binary != nullptr && !explanation.binary->sha256.empty()) {
    if (std::optional<std::string> digest = sha256_of(query.caller.exe)) {
      query.exe_sha256 = std::move(digest);
      explanation = policy::explain(*policy, query);
    }
  }
  if (given.json) {
    print_json(explanation, query, *policy);
  } else {
    print_text(explanation, query, given.binary);
  }
  return explanation.verdict == policy::Verdict::Allow ? 0 : 1;
}

}  // namespace egressd::proxy

#include "policy/denial.h"

#include <utility>

#include "common/result.h"
#include "policy/json_value.h"

namespace egressd::policy {
namespace {

// A field of a deny-log object, checked for its type; `problem` gets the first mismatch.
class Fields {
 public:
  explicit Fields(const JsonValue& object) : object_(object) {}

  bool required_string(std::string_view key, std::string& out) {
    const JsonValue* value = object_.find(key);
    if (value == nullptr) return missing(key);
    if (!value->is_string()) return wrong(key, "a string");
    out = value->text();
    return true;
  }

  bool optional_string(std::string_view key, std::string& out) {
    const JsonValue* value = object_.find(key);
    if (value == nullptr || value->is_null()) return true;
    if (!value->is_string()) return wrong(key, "a string");
    out = value->text();
    return true;
  }

  bool string_or_null(std::string_view key, std::optional<std::string>& out) {
    const JsonValue* value = object_.find(key);
    if (value == nullptr) return missing(key);
    if (value->is_null()) return true;
    if (!value->is_string()) return wrong(key, "a string or null");
    out = value->text();
    return true;
  }

  bool port(std::string_view key, uint16_t& out) {
    const JsonValue* value = object_.find(key);
    if (value == nullptr) return missing(key);
    const std::optional<uint64_t> number = value->unsigned_integer();
    if (!number || *number < 1 || *number > 65535) return wrong(key, "a port number (1..65535)");
    out = static_cast<uint16_t>(*number);
    return true;
  }

  bool strings(std::string_view key, std::vector<std::string>& out) {
    const JsonValue* value = object_.find(key);
    if (value == nullptr || value->is_null()) return true;
    if (!value->is_array()) return wrong(key, "an array of strings");
    for (const JsonValue& item : value->items()) {
      if (!item.is_string()) return wrong(key, "an array of strings");
      out.push_back(item.text());
    }
    return true;
  }

  // redirected_by: [{status, method, from, to}], as proxy/redirect_memory.cpp writes it.
  bool hops(std::string_view key, std::vector<std::string>& out) {
    const JsonValue* value = object_.find(key);
    if (value == nullptr || value->is_null()) return true;
    if (!value->is_array()) return wrong(key, "an array of redirect hops");
    for (const JsonValue& hop : value->items()) {
      const JsonValue* status = hop.find("status");
      const JsonValue* method = hop.find("method");
      const JsonValue* from = hop.find("from");
      const JsonValue* to = hop.find("to");
      if (!hop.is_object() || status == nullptr || !status->unsigned_integer() || method == nullptr ||
          !method->is_string() || from == nullptr || !from->is_string() || to == nullptr ||
          !to->is_string()) {
        return wrong(key, "an array of {status, method, from, to} objects");
      }
      out.push_back(status->text() + " " + method->text() + " " + from->text() + " -> " + to->text());
    }
    return true;
  }

  const std::string& problem() const { return problem_; }

 private:
  bool missing(std::string_view key) {
    problem_ = "the field \"" + std::string(key) + "\" is missing";
    return false;
  }
  bool wrong(std::string_view key, std::string_view expected) {
    problem_ = "the field \"" + std::string(key) + "\" is not " + std::string(expected);
    return false;
  }

  const JsonValue& object_;
  std::string problem_;
};

Result<Denial, std::string> read_line(std::string_view line) {
  Result<JsonValue, std::string> json = JsonValue::parse(line);
  if (!json) return egressd::unexpected("not JSON: " + json.error());
  if (!json->is_object()) return egressd::unexpected(std::string("not a JSON object"));
  Denial denial;
  Fields fields(*json);
  const bool ok =
      fields.required_string("event", denial.event) && fields.string_or_null("binary", denial.binary) &&
      fields.required_string("method", denial.method) && fields.required_string("host", denial.host) &&
      fields.port("port", denial.port) && fields.required_string("reason", denial.reason) &&
      fields.strings("ancestors", denial.ancestors) && fields.optional_string("url", denial.url) &&
      fields.optional_string("rule", denial.rule) && fields.optional_string("http_rule", denial.http_rule) &&
      fields.optional_string("engine", denial.engine) &&
      fields.optional_string("policy_hash", denial.policy_hash) &&
      fields.hops("redirected_by", denial.redirected_by);
  if (!ok) return egressd::unexpected(fields.problem());
  if (denial.host.empty()) return egressd::unexpected(std::string("the field \"host\" is empty"));
  return denial;
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

}  // namespace

DenyLog read_deny_log(std::string_view text) {
  DenyLog log;
  int number = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = std::min(text.find('\n', start), text.size());
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    Result<Denial, std::string> denial = read_line(line);
    if (!denial) {
      log.problems.push_back({number, std::move(denial.error())});
      continue;
    }
    denial->line = number;
    log.denials.push_back(std::move(*denial));
  }
  return log;
}

DenialClass classify_denial(const Denial& denial) {
  const auto not_policy = [](std::string why) { return DenialClass{DenialKind::NotPolicy, std::move(why)}; };
  if (denial.event == "limit") {
    return not_policy("a connection limit refused it (--max-connections-per-binary), not the policy");
  }
  if (denial.event == "revoked") {
    return not_policy("a policy change revoked it; allowing it again would undo that change");
  }
  if (denial.event != "deny" && denial.event != "audit") {
    return not_policy("the event '" + denial.event + "' is not a denial suggest knows");
  }
  if (!denial.binary) return not_policy("the caller was not identified: " + denial.reason);
  if (!denial.engine.empty()) {
    return not_policy("destination safety refused its address (engine " + denial.engine +
                      "): " + denial.reason);
  }
  if (!denial.http_rule.empty()) {
    if (starts_with(denial.http_rule, "deny_rules[")) {
      return not_policy("a deny rule refused it (" + denial.http_rule +
                        "), and no allow rule can override one");
    }
    if (denial.http_rule != "no allow rule matched" && !starts_with(denial.http_rule, "access: ")) {
      return not_policy("the request itself was refused (" + denial.http_rule + "): " + denial.reason);
    }
    if (denial.rule.empty() || denial.url.empty()) {
      return not_policy("an HTTP denial without its rule and URL cannot be placed");
    }
    return {DenialKind::Request, {}};
  }
  // decide()'s sentences for a missing rule (policy/matcher.cpp); anything else (a sha256 mismatch, an
  // unverifiable executable, domain fronting, a stream that is not HTTP) is not a rule's to fix.
  const bool missing_endpoint =
      starts_with(denial.reason, "endpoint ") && ends_with(denial.reason, " is not allowed by any policy");
  const bool missing_binary =
      starts_with(denial.reason, "binary '" + *denial.binary + "' not allowed in polic");
  const bool no_rules =
      denial.reason == "network connections not allowed by policy (it has no network_policies)";
  if (!missing_endpoint && !missing_binary && !no_rules) {
    return not_policy("not a missing rule: " + denial.reason);
  }
  return {DenialKind::Connection, {}};
}

std::optional<UrlTarget> url_target(std::string_view url) {
  const std::size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::nullopt;
  const std::size_t slash = url.find_first_of("/?#", scheme + 3);
  if (slash == std::string_view::npos || url[slash] != '/') return std::nullopt;  // egressd logs "/" at least
  std::string_view rest = url.substr(slash);
  const std::size_t hash = rest.find('#');
  if (hash != std::string_view::npos) rest = rest.substr(0, hash);
  const std::size_t question = rest.find('?');
  if (question == std::string_view::npos) return UrlTarget{std::string(rest), {}};
  return UrlTarget{std::string(rest.substr(0, question)), std::string(rest.substr(question + 1))};
}

}  // namespace egressd::policy

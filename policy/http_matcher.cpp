#include "policy/http_matcher.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace egressd::policy {
namespace {

constexpr std::size_t kMaxMethodInReason = 32;  // characters of the request's method quoted in a reason
constexpr std::size_t kMaxPathInReason = 200;   // characters of the request's path quoted in a reason
constexpr std::size_t kMaxRulesInReason = 4;    // allow rules listed when none matched

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char hex_digit(int value) {
  return "0123456789ABCDEF"[value & 0xf];
}

bool is_alnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool is_unreserved(unsigned char c) {  // RFC 3986 §2.3
  return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

constexpr std::string_view kTcharSymbols = "!#$%&'*+-.^_`|~";  // RFC 9110 §5.6.2

bool is_token(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return is_alnum(static_cast<unsigned char>(c)) || kTcharSymbols.find(c) != std::string_view::npos;
  });
}

std::string ascii_upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

// Request bytes as a reason quotes them: anything but printable ASCII as %XX, and a long text cut short.
// They come from the network, and the reason goes into a 403 body and the logs word for word.
std::string printable(std::string_view text, std::size_t max_length) {
  std::string out;
  for (char c : text) {
    if (out.size() >= max_length) return out + "...";
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte >= 0x7f) {
      out += '%';
      out += hex_digit(byte >> 4);
      out += hex_digit(byte);
    } else {
      out += c;
    }
  }
  return out;
}

const char* protocol_name(Protocol protocol) {
  switch (protocol) {  // no default: -Wswitch must flag a new protocol here
    case Protocol::None:
      return "none";
    case Protocol::Rest:
      return "rest";
    case Protocol::Websocket:
      return "websocket";
    case Protocol::Graphql:
      return "graphql";
    case Protocol::Mcp:
      return "mcp";
    case Protocol::JsonRpc:
      return "json-rpc";
    case Protocol::Sql:
      return "sql";
    case Protocol::Tcp:
      return "tcp";
  }
  return "unknown";
}

const char* access_name(Access access) {
  switch (access) {
    case Access::None:
      return "none";
    case Access::ReadOnly:
      return "read-only";
    case Access::ReadWrite:
      return "read-write";
    case Access::Full:
      return "full";
  }
  return "unknown";
}

// OpenShell's presets. `method` is upper case.
bool preset_allows(Access access, std::string_view method) {
  const bool read = method == "GET" || method == "HEAD" || method == "OPTIONS";
  const bool write = method == "POST" || method == "PUT" || method == "PATCH";
  switch (access) {
    case Access::None:
      return false;
    case Access::ReadOnly:
      return read;
    case Access::ReadWrite:
      return read || write;
    case Access::Full:
      return true;
  }
  return false;
}

const char* preset_methods(Access access) {
  switch (access) {
    case Access::None:
      return "no method";
    case Access::ReadOnly:
      return "GET, HEAD, OPTIONS";
    case Access::ReadWrite:
      return "GET, HEAD, OPTIONS, POST, PUT, PATCH";
    case Access::Full:
      return "every method";
  }
  return "no method";
}

// `rule_method` is upper case or "*" (the loader's form); `method` is upper case.
bool method_matches(std::string_view rule_method, std::string_view method) {
  if (rule_method == "*" || rule_method == method) return true;
  // RFC 9110 §9.3.2: HEAD is GET without the content, so a rule about GET covers HEAD (as in OpenShell),
  // for allow and deny rules alike.
  return rule_method == "GET" && method == "HEAD";
}

// An empty rule path, "*" and "**" match any path (patterns.h: parse_http_path).
bool path_matches(std::string_view glob, std::string_view path) {
  if (glob.empty() || glob == "*" || glob == "**") return true;
  return path_glob_matches(glob, path);
}

// "/a;x/b;y=1" -> "/a/b": what a server that drops path parameters (Tomcat's ";jsessionid") dispatches on.
std::string without_path_parameters(std::string_view path) {
  std::string out;
  bool in_parameters = false;
  for (char c : path) {
    if (c == '/') in_parameters = false;
    if (c == ';') in_parameters = true;
    if (!in_parameters) out += c;
  }
  return out;
}

struct QueryParameter {
  std::string name;
  std::string value;
};

// application/x-www-form-urlencoded, as servers read a query: '+' is a space, %XX any byte.
std::optional<std::string> form_decode(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] != '%') {
      out += text[i];
    } else {
      const int high = i + 1 < text.size() ? hex_value(text[i + 1]) : -1;
      const int low = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
      if (high < 0 || low < 0) return std::nullopt;
      out += static_cast<char>(high * 16 + low);
      i += 2;
    }
  }
  return out;
}

// '&'-separated name=value pairs, decoded; empty pieces are skipped and a name without '=' has an empty
// value. nullopt when an escape is invalid: no rule about the query can then be said to match or not.
std::optional<std::vector<QueryParameter>> parse_query(std::string_view query) {
  std::vector<QueryParameter> parameters;
  std::size_t start = 0;
  while (start <= query.size()) {
    const std::size_t end = std::min(query.find('&', start), query.size());
    const std::string_view piece = query.substr(start, end - start);
    start = end + 1;
    if (piece.empty()) continue;
    const std::size_t equals = piece.find('=');
    std::optional<std::string> name = form_decode(piece.substr(0, equals));
    std::optional<std::string> value =
        form_decode(equals == std::string_view::npos ? std::string_view() : piece.substr(equals + 1));
    if (!name || !value) return std::nullopt;
    parameters.push_back({std::move(*name), std::move(*value)});
  }
  return parameters;
}

bool any_glob_matches(const std::vector<std::string>& globs, std::string_view value) {
  return std::any_of(globs.begin(), globs.end(),
                     [value](const std::string& glob) { return value_glob_matches(glob, value); });
}

// Allow side (OpenShell's): the parameter is present, and every value it has matches one of the globs, so
// "?owner=me&owner=other" cannot slip past `owner: me` with a server that reads the last value.
bool allow_parameter_matches(const std::string& name, const std::vector<std::string>& globs,
                             const std::vector<QueryParameter>& parameters) {
  bool present = false;
  for (const QueryParameter& parameter : parameters) {
    if (parameter.name != name) continue;
    if (!any_glob_matches(globs, parameter.value)) return false;
    present = true;
  }
  return present;
}

// Deny side (OpenShell's): every named parameter is present, and for each one value matching is enough.
bool deny_query_matches(const HttpRule& rule, const std::vector<QueryParameter>& parameters) {
  return std::all_of(rule.query.begin(), rule.query.end(), [&parameters](const auto& wanted) {
    return std::any_of(parameters.begin(), parameters.end(), [&wanted](const QueryParameter& parameter) {
      return parameter.name == wanted.first && any_glob_matches(wanted.second, parameter.value);
    });
  });
}

// The names of the rule's query parameters that the request does not satisfy (allow side).
std::vector<std::string> unmatched_parameters(const HttpRule& rule,
                                              const std::vector<QueryParameter>& parameters) {
  std::vector<std::string> names;
  for (const auto& [name, globs] : rule.query) {
    if (!allow_parameter_matches(name, globs, parameters)) names.push_back(name);
  }
  return names;
}

template <typename Texts>
std::string join(const Texts& texts, std::string_view separator) {
  std::string out;
  for (const auto& text : texts) {
    if (!out.empty()) out += separator;
    out += text;
  }
  return out;
}

// "GET /repos/**", "* /search?q=repo:*&per_page=10|100", "DELETE (any path)".
std::string describe(const HttpRule& rule) {
  std::string out = rule.method + " " + (rule.path.empty() ? "(any path)" : rule.path);
  for (std::size_t i = 0; i < rule.query.size(); ++i) {
    out += (i == 0 ? "?" : "&") + rule.query[i].first + "=" + join(rule.query[i].second, "|");
  }
  return out;
}

// The parenthesis of a "not allowed" reason: what the endpoint would have allowed.
std::string why_not_allowed(const Endpoint& endpoint, const HttpRule* query_mismatch,
                            const std::optional<std::vector<QueryParameter>>& parameters) {
  if (endpoint.access != Access::None) {
    return std::string("access: ") + access_name(endpoint.access) + " allows " +
           preset_methods(endpoint.access);
  }
  if (query_mismatch != nullptr) {
    const std::string rule = "'allow " + describe(*query_mismatch) + "'";
    if (!parameters)
      return rule + " matches the method and path, but the query string is not valid percent-encoding";
    return rule + " matches the method and path but not the query parameter(s) " +
           join(unmatched_parameters(*query_mismatch, *parameters), ", ");
  }
  std::vector<std::string> allowed;
  for (std::size_t i = 0; i < endpoint.rules.size() && i < kMaxRulesInReason; ++i) {
    allowed.push_back(describe(endpoint.rules[i]));
  }
  std::string out = "no allow rule matches; it allows " + join(allowed, ", ");
  if (endpoint.rules.size() > kMaxRulesInReason) {
    out += " and " + std::to_string(endpoint.rules.size() - kMaxRulesInReason) + " more";
  }
  return out;
}

HttpDecision decide_rest(const Rule& rule, const Endpoint& endpoint, std::string_view host, uint16_t port,
                         const HttpRequestView& request) {
  const std::string target =
      printable(request.method, kMaxMethodInReason) + " " + printable(request.path, kMaxPathInReason);
  const std::string on = " on " + format_host_port(host, port);
  const std::string by = " by rule '" + rule.name + "'";
  const auto deny = [](std::string decided_by, std::string reason) {
    return HttpDecision{Verdict::Deny, false, std::move(decided_by), std::move(reason)};
  };
  const auto allow = [&](std::string decided_by) {
    std::string reason = target + on + " is allowed" + by + " (" + decided_by + ")";
    return HttpDecision{Verdict::Allow, false, std::move(decided_by), std::move(reason)};
  };

  if (!is_token(request.method)) {
    return deny("invalid request method",
                target + on + " is denied" + by + ": the method is not an HTTP token");
  }
  const std::string method = ascii_upper(request.method);
  const Result<std::string, std::string> path = normalize_request_path(request.path);
  if (!path) return deny("invalid request path", target + on + " is denied" + by + ": " + path.error());
  const std::optional<std::vector<QueryParameter>> parameters = parse_query(request.query);

  // Deny rules win over any allow. A server may ignore ";params", so they are also tried without them.
  const bool has_path_parameters = path->find(';') != std::string::npos;
  const std::string without_parameters = has_path_parameters ? without_path_parameters(*path) : std::string();
  for (std::size_t i = 0; i < endpoint.deny_rules.size(); ++i) {
    const HttpRule& deny_rule = endpoint.deny_rules[i];
    if (!method_matches(deny_rule.method, method)) continue;
    if (!path_matches(deny_rule.path, *path) &&
        !(has_path_parameters && path_matches(deny_rule.path, without_parameters))) {
      continue;
    }
    // Fail closed: a query that cannot be read might hold what this rule denies.
    if (!deny_rule.query.empty() && parameters && !deny_query_matches(deny_rule, *parameters)) continue;
    std::string decided_by = "deny_rules[" + std::to_string(i) + "] " + describe(deny_rule);
    std::string reason = target + on + " is denied" + by + " (" + decided_by + ")";
    if (!deny_rule.query.empty() && !parameters) reason += "; the query string is not valid percent-encoding";
    return deny(std::move(decided_by), std::move(reason));
  }

  if (preset_allows(endpoint.access, method))
    return allow(std::string("access: ") + access_name(endpoint.access));
  const HttpRule* query_mismatch = nullptr;  // the first rule that matched all but the query, for the reason
  for (const HttpRule& allow_rule : endpoint.rules) {
    if (!method_matches(allow_rule.method, method) || !path_matches(allow_rule.path, *path)) continue;
    if (allow_rule.query.empty() || (parameters && unmatched_parameters(allow_rule, *parameters).empty())) {
      return allow("allow " + describe(allow_rule));
    }
    if (query_mismatch == nullptr) query_mismatch = &allow_rule;
  }
  if (endpoint.access == Access::None && endpoint.rules.empty()) {  // the loader rejects this; fail closed
    return deny("no 'access' or 'rules'",
                target + " is not allowed" + on + by + " (its endpoint has neither 'access' nor 'rules')");
  }
  // With only a preset, the preset is what refused; otherwise no rule (nor the preset) matched.
  std::string decided_by = endpoint.access != Access::None && endpoint.rules.empty()
                               ? std::string("access: ") + access_name(endpoint.access)
                               : std::string("no allow rule matched");
  return deny(std::move(decided_by), target + " is not allowed" + on + by + " (" +
                                         why_not_allowed(endpoint, query_mismatch, parameters) + ")");
}

std::optional<std::string> raw_byte_problem(unsigned char c) {
  if (c == 0) return "path contains a NUL byte";
  if (c < 0x20 || c == 0x7f) return "path contains a control character";
  if (c >= 0x80) return "path contains a non-ASCII byte that is not percent-encoded";
  if (c == ' ') return "path contains a space";
  if (c == '#') return "path contains '#' (a fragment)";
  if (c == '?') return "path contains '?' (the query must be passed separately)";
  if (c == '\\') return "path contains a backslash";
  return std::nullopt;
}

std::optional<std::string> escape_problem(unsigned char decoded) {
  if (decoded == '/') return "path contains an encoded slash (%2F)";
  if (decoded == 0) return "path contains an encoded NUL byte (%00)";
  if (decoded < 0x20 || decoded == 0x7f) return "path contains an encoded control character";
  if (decoded == '\\') return "path contains an encoded backslash (%5C)";
  return std::nullopt;
}

}  // namespace

Result<std::string, std::string> normalize_request_path(std::string_view path) {
  if (path.empty()) return egressd::unexpected(std::string("path is empty"));
  if (path == "*") {
    return egressd::unexpected(
        std::string("path is '*' (the asterisk-form of 'OPTIONS *'), not an absolute path"));
  }
  if (path.front() != '/') {
    return egressd::unexpected(
        std::string("path does not start with '/' (only origin-form request-targets are accepted)"));
  }
  std::string out;
  out.reserve(path.size());
  for (std::size_t i = 0; i < path.size(); ++i) {
    const auto c = static_cast<unsigned char>(path[i]);
    if (c != '%') {
      if (std::optional<std::string> problem = raw_byte_problem(c))
        return egressd::unexpected(std::move(*problem));
      out += path[i];
      continue;
    }
    const int high = i + 1 < path.size() ? hex_value(path[i + 1]) : -1;
    const int low = i + 2 < path.size() ? hex_value(path[i + 2]) : -1;
    if (high < 0 || low < 0) {
      return egressd::unexpected(
          std::string("path contains an invalid percent-encoding ('%' without two hex digits)"));
    }
    const auto decoded = static_cast<unsigned char>(high * 16 + low);
    if (std::optional<std::string> problem = escape_problem(decoded))
      return egressd::unexpected(std::move(*problem));
    if (is_unreserved(decoded)) {
      out += static_cast<char>(decoded);  // "%41" is "A" to every server: the policy must see "A" too
    } else {
      out += '%';
      out += hex_digit(high);
      out += hex_digit(low);
    }
    i += 2;
  }
  // Servers disagree on "//" (kept, or merged as nginx does) and resolve dot-segments before routing, so
  // a path that has them could reach something the policy did not mean: refuse rather than guess.
  std::size_t start = 1;
  while (true) {
    const std::size_t slash = out.find('/', start);
    const bool last = slash == std::string::npos;
    const std::string_view segment =
        std::string_view(out).substr(start, last ? std::string::npos : slash - start);
    if (segment.empty() && !last)
      return egressd::unexpected(std::string("path contains an empty segment ('//')"));
    const std::string_view name = segment.substr(0, segment.find(';'));  // "..;x" is ".." to Tomcat
    if (name == "." || name == "..") {
      return egressd::unexpected(std::string("path contains a dot-segment ('.' or '..')"));
    }
    if (name.empty() && !segment.empty()) {
      return egressd::unexpected(std::string("path contains a segment that is only parameters (';...')"));
    }
    if (last) break;
    start = slash + 1;
  }
  return out;
}

HttpDecision decide_http(const Rule& rule, const Endpoint& endpoint, std::string_view host, uint16_t port,
                         const HttpRequestView& request) {
  if (endpoint.protocol != Protocol::Rest) {  // the connection was allowed at L4, which is all there is
    const bool l4_only = endpoint.protocol == Protocol::None || endpoint.protocol == Protocol::Tcp;
    const std::string protocol = std::string("'protocol: ") + protocol_name(endpoint.protocol) + "'";
    std::string reason =
        printable(request.method, kMaxMethodInReason) + " " + printable(request.path, kMaxPathInReason) +
        " on " + format_host_port(host, port) + " is not inspected: rule '" + rule.name +
        "' allows the connection, and " +
        (l4_only ? "its endpoint has no 'protocol: rest'" : "egressd does not enforce " + protocol);
    return HttpDecision{Verdict::Allow, false, l4_only ? "no 'protocol: rest'" : protocol + " not enforced",
                        std::move(reason)};
  }
  HttpDecision decision = decide_rest(rule, endpoint, host, port, request);
  if (decision.verdict == Verdict::Deny &&
      (endpoint.enforcement == Enforcement::Audit || rule.mode == Enforcement::Audit)) {
    decision.verdict = Verdict::Allow;  // audit: let it through, and say what enforce would have done
    decision.audited = true;
  }
  return decision;
}

}  // namespace egressd::policy

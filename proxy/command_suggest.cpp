// `egressd suggest DENYLOG [--policy FILE]`: deny-log lines (a file, or - for stdin) -> the policy YAML
// that allows what was denied and nothing more (policy/suggest.h), on stdout. Malformed lines are named
// on stderr with their line numbers and skipped. Exit status: 0 printed, 1 failed, 2 usage.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"
#include "policy/denial.h"
#include "policy/loader.h"
#include "policy/source_file.h"
#include "policy/suggest.h"
#include "proxy/commands.h"

namespace egressd::proxy {
namespace {

constexpr const char* kSuggestUsage = "usage: egressd suggest DENYLOG|- [--policy FILE]\n";
constexpr std::size_t kMaxLogBytes = std::size_t{256} << 20;

int usage_error(const std::string& message) {
  std::fprintf(stderr, "egressd suggest: %s\n%s", message.c_str(), kSuggestUsage);
  return 2;
}

Result<std::string, std::string> read_all(int fd, const std::string& name) {
  std::string text;
  char buffer[64 * 1024];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return unexpected("cannot read " + name + ": " + std::strerror(errno));
    if (n == 0) return text;
    text.append(buffer, static_cast<std::size_t>(n));
    if (text.size() > kMaxLogBytes)
      return unexpected(name + " is larger than 256 MiB; give suggest a part of it");
  }
}

}  // namespace

int command_suggest(const Args& args) {
  std::optional<std::string> log_path;
  std::optional<std::string> policy_path;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--policy") {
      if (i + 1 >= args.size()) return usage_error("--policy needs a file");
      policy_path = std::string(args[++i]);
    } else if (args[i].starts_with("--")) {
      return usage_error("unknown option '" + std::string(args[i]) + "'");
    } else if (log_path) {
      return usage_error("name one deny log");
    } else {
      log_path = std::string(args[i]);
    }
  }
  if (!log_path) return usage_error("name the deny log (or - for stdin)");

  const bool from_stdin = *log_path == "-";
  const std::string log_name = from_stdin ? std::string("<stdin>") : *log_path;
  UniqueFd file;
  if (!from_stdin) {
    file = UniqueFd(::open(log_path->c_str(), O_RDONLY | O_CLOEXEC));
    if (!file) {
      std::fprintf(stderr, "egressd suggest: cannot open %s: %s\n", log_path->c_str(), std::strerror(errno));
      return 1;
    }
  }
  auto text = read_all(from_stdin ? STDIN_FILENO : file.get(), log_name);
  if (!text) {
    std::fprintf(stderr, "egressd suggest: %s\n", text.error().c_str());
    return 1;
  }
  const policy::DenyLog log = policy::read_deny_log(*text);
  for (const policy::DenyLogProblem& problem : log.problems) {
    std::fprintf(stderr, "%s:%d: skipped: %s\n", log_name.c_str(), problem.line, problem.message.c_str());
  }

  std::optional<policy::BasePolicy> base;
  if (policy_path) {
    auto source = policy::read_source_file(*policy_path);
    if (!source) {
      std::fprintf(stderr, "%s\n", source.error().to_string().c_str());
      return 1;
    }
    auto loaded = policy::load_policy_text(*source, *policy_path);
    if (!loaded) {
      std::fputs(policy::format_errors(loaded.error()).c_str(), stderr);
      std::fprintf(stderr, "egressd suggest: %s does not load; fix it first (egressd check)\n",
                   policy_path->c_str());
      return 1;
    }
    base = policy::BasePolicy{std::move(*source), *loaded};
  }
  auto suggestion = policy::suggest(log, log_name, base ? &*base : nullptr);
  if (!suggestion) {
    std::fprintf(stderr, "egressd suggest: %s\n", suggestion.error().c_str());
    return 1;
  }
  std::fputs(suggestion->yaml.c_str(), stdout);
  std::fprintf(
      stderr, "egressd suggest: %zu denial%s allowed, %zu line%s not turned into allows (see the comments)\n",
      suggestion->allowed, suggestion->allowed == 1 ? "" : "s", suggestion->skipped_lines,
      suggestion->skipped_lines == 1 ? "" : "s");
  return 0;
}

}  // namespace egressd::proxy

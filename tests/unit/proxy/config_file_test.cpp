// The daemon config file (--config) and the run flags laid over it: every key lands in Settings, relative
// paths start at the file's directory, every mistake is an error at FILE:LINE:COL, and a flag overrides
// the file wherever it stands on the command line.
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "proxy/config_file.h"
#include "proxy/settings.h"
#include "tests/support/temp_dir.h"

using namespace egressd;
using proxy::apply_config_file;
using proxy::apply_config_text;
using proxy::ConfigErrors;
using proxy::parse_run_flags;
using proxy::Settings;
using test::TempDir;
using test::write_file;

namespace {

// The errors of applying `yaml` (as /etc/egressd/egressd.yaml) over default settings, one string each.
std::vector<std::string> config_errors(const std::string& yaml) {
  Settings settings;
  auto applied = apply_config_text(yaml, "/etc/egressd/egressd.yaml", settings);
  std::vector<std::string> out;
  if (!applied) {
    for (const auto& error : applied.error()) out.push_back(error.to_string());
  }
  return out;
}

Result<Settings, std::string> flags(std::vector<std::string_view> args) {
  return parse_run_flags(args);
}

}  // namespace

TEST_CASE("a config file sets every setting it names") {
  Settings settings;
  const auto applied = apply_config_text(R"(
listen: "[::1]:8128"
policy: /etc/egressd/policy.yaml
watch_policy: false
deny_log: /var/log/egressd/deny.log
access_log: /var/log/egressd/access.log
log_level: debug
state_dir: /var/lib/egressd-test
ca_cert: /etc/egressd/ca.pem
ca_key: /etc/egressd/ca-key.pem
upstream_ca: /etc/egressd/internal.pem
trust_on_first_use: true
metrics: 127.0.0.1:9464
ready_file: /run/egressd/ready
resolve:
  Mirror.Internal: 10.0.0.5
  v6.internal: "[fd00::5]"
timeouts:
  head_ms: 1001
  identify_ms: 1002
  connect_ms: 1003
  idle_ms: 1004
  handshake_ms: 1005
limits:
  max_connections: 77
  max_connections_per_binary: 7
)",
                                         "/etc/egressd/egressd.yaml", settings);
  REQUIRE(applied);
  CHECK(settings.listen_host == "::1");
  CHECK(settings.listen_port == 8128);
  CHECK(settings.policy_path == "/etc/egressd/policy.yaml");
  CHECK_FALSE(settings.watch_policy);
  CHECK(settings.deny_log_path == "/var/log/egressd/deny.log");
  CHECK(settings.access_log_path == "/var/log/egressd/access.log");
  CHECK(settings.log_level == "debug");
  CHECK(settings.state_dir == "/var/lib/egressd-test");
  CHECK(settings.ca_cert_path == "/etc/egressd/ca.pem");
  CHECK(settings.ca_key_path == "/etc/egressd/ca-key.pem");
  CHECK(settings.upstream_ca_path == "/etc/egressd/internal.pem");
  CHECK(settings.trust_on_first_use);
  CHECK(settings.metrics_host == "127.0.0.1");
  CHECK(settings.metrics_port == 9464);
  CHECK(settings.ready_file == "/run/egressd/ready");
  CHECK(settings.resolve ==
        std::map<std::string, std::string>{{"mirror.internal", "10.0.0.5"}, {"v6.internal", "fd00::5"}});
  CHECK(settings.head_timeout_ms == 1001);
  CHECK(settings.identify_timeout_ms == 1002);
  CHECK(settings.connect_timeout_ms == 1003);
  CHECK(settings.idle_timeout_ms == 1004);
  CHECK(settings.handshake_timeout_ms == 1005);
  CHECK(settings.max_connections == 77);
  CHECK(settings.max_connections_per_binary == 7);
}

TEST_CASE("settings a config file leaves out keep their defaults") {
  Settings settings;
  REQUIRE(apply_config_text("timeouts: { idle_ms: 5 }\n", "/etc/egressd/egressd.yaml", settings));
  const Settings defaults;
  CHECK(settings.idle_timeout_ms == 5);
  CHECK(settings.head_timeout_ms == defaults.head_timeout_ms);
  CHECK(settings.listen_host == defaults.listen_host);
  CHECK(settings.listen_port == defaults.listen_port);
  CHECK_FALSE(settings.policy_path.has_value());
  CHECK(settings.watch_policy);
}

TEST_CASE("relative paths in a config file are taken from the file's directory") {
  Settings settings;
  REQUIRE(apply_config_text("policy: policy.yaml\ndeny_log: ../log/deny.log\naccess_log: /abs/access.log\n",
                            "/etc/egressd/egressd.yaml", settings));
  CHECK(settings.policy_path == "/etc/egressd/policy.yaml");
  CHECK(settings.deny_log_path == "/etc/egressd/../log/deny.log");
  CHECK(settings.access_log_path == "/abs/access.log");
}

TEST_CASE("an unknown key in a config file is an error at its line and column, never ignored") {
  struct Row {
    const char* yaml;
    const char* want;
  };
  const Row rows[] = {
      {"listen: 127.0.0.1:3128\nlisten_address: 127.0.0.1:3128\n",
       "/etc/egressd/egressd.yaml:2:1: unknown key 'listen_address'; accepted keys: listen, policy,"},
      {"timeouts:\n  head_ms: 5\n  body_ms: 5\n",
       "/etc/egressd/egressd.yaml:3:3: unknown key 'timeouts.body_ms'; accepted keys under timeouts: "
       "head_ms,"},
      {"limits: { max_conns: 5 }\n",
       "/etc/egressd/egressd.yaml:1:11: unknown key 'limits.max_conns'; accepted keys under limits: "
       "max_connections, max_connections_per_binary"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.yaml);
    const auto errors = config_errors(row.yaml);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].starts_with(row.want));
  }
}

TEST_CASE("a duplicate key in a config file is an error naming where it was first") {
  const auto errors = config_errors("listen: 127.0.0.1:1\npolicy: /p\nlisten: 127.0.0.1:2\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] == "/etc/egressd/egressd.yaml:3:1: duplicate key 'listen' (first at 1:1)");
}

TEST_CASE("a config value of the wrong kind is an error at the value") {
  struct Row {
    const char* yaml;
    const char* want;
  };
  const Row rows[] = {
      {"listen: 3128\n", "/etc/egressd/egressd.yaml:1:9: listen: expected ADDR:PORT, got '3128'"},
      {"listen: 127.0.0.1:99999\n",
       "/etc/egressd/egressd.yaml:1:9: listen: invalid address '127.0.0.1:99999'"},
      {"metrics: [127.0.0.1:9464]\n",
       "/etc/egressd/egressd.yaml:1:10: expected ADDR:PORT for 'metrics', found a sequence"},
      {"policy:\n", "/etc/egressd/egressd.yaml:1:1: expected a file name for 'policy', found an empty value"},
      {"deny_log: \"\"\n",
       "/etc/egressd/egressd.yaml:1:11: expected a file name for 'deny_log', found an empty string"},
      {"watch_policy: yes\n",
       "/etc/egressd/egressd.yaml:1:15: expected true or false for 'watch_policy', found 'yes'"},
      {"trust_on_first_use: \"true\"\n",
       "/etc/egressd/egressd.yaml:1:21: expected true or false for 'trust_on_first_use', found the quoted "
       "string "
       "\"true\""},
      {"log_level: loud\n",
       "/etc/egressd/egressd.yaml:1:12: log_level: unknown level 'loud' (trace, debug, info, warn, error, "
       "off)"},
      {"timeouts: 5\n", "/etc/egressd/egressd.yaml:1:11: expected a mapping for 'timeouts', found '5'"},
      {"timeouts:\n  head_ms: 0\n",
       "/etc/egressd/egressd.yaml:2:12: timeouts.head_ms needs a positive number, got '0'"},
      {"timeouts:\n  head_ms: -5\n",
       "/etc/egressd/egressd.yaml:2:12: timeouts.head_ms needs a positive number, got '-5'"},
      {"timeouts:\n  head_ms: \"30\"\n",
       "/etc/egressd/egressd.yaml:2:12: expected a positive number for 'timeouts.head_ms', found the quoted "
       "string \"30\""},
      {"limits:\n  max_connections: 1e3\n",
       "/etc/egressd/egressd.yaml:2:20: limits.max_connections needs a positive number, got '1e3'"},
      {"resolve:\n  mirror.internal: mirror.example\n",
       "/etc/egressd/egressd.yaml:2:20: resolve needs HOST=IP-ADDRESS, got 'mirror.internal=mirror.example'"},
      {"resolve: [a]\n",
       "/etc/egressd/egressd.yaml:1:10: expected a mapping for 'resolve', found a sequence"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.yaml);
    const auto errors = config_errors(row.yaml);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0] == row.want);
  }
}

TEST_CASE("every error in a config file is reported, in file order") {
  const auto errors = config_errors("listen: nowhere\nwatch_policy: maybe\nbogus: 1\n");
  REQUIRE(errors.size() == 3);
  CHECK(errors[0].starts_with("/etc/egressd/egressd.yaml:1:9: "));
  CHECK(errors[1].starts_with("/etc/egressd/egressd.yaml:2:15: "));
  CHECK(errors[2].starts_with("/etc/egressd/egressd.yaml:3:1: unknown key 'bogus'"));
}

TEST_CASE("an empty config file is an error, not a run on the defaults") {
  for (const char* yaml : {"", "# nothing but a comment\n", "---\n...\n"}) {
    CAPTURE(yaml);
    const auto errors = config_errors(yaml);
    REQUIRE(errors.size() == 1);
    CHECK(
        errors[0] ==
        "/etc/egressd/egressd.yaml: empty config file; expected a mapping of settings (listen, policy, ...)");
  }
}

TEST_CASE("a config file must be one YAML mapping") {
  struct Row {
    const char* yaml;
    const char* want;
  };
  const Row rows[] = {
      {"listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n",
       "/etc/egressd/egressd.yaml:2:1: expected one YAML document, found more"},
      {"- listen\n",
       "/etc/egressd/egressd.yaml:1:1: expected a mapping of settings (listen, policy, ...), found a "
       "sequence"},
      {"listen: [\n", "/etc/egressd/egressd.yaml:2:1: invalid YAML: end of sequence flow not found"},
      // yaml-cpp's LoadAll() would loop forever here (jbeder/yaml-cpp #1040); this must come back.
      {", a", "/etc/egressd/egressd.yaml:1:1: invalid YAML: unexpected token where a document starts"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.yaml);
    const auto errors = config_errors(row.yaml);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0] == row.want);
  }
}

TEST_CASE("a config file that cannot be read is an error naming it") {
  const TempDir dir;
  Settings settings;
  auto missing = apply_config_file(dir.file("absent.yaml"), settings);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().at(0).to_string() ==
        dir.file("absent.yaml") + ": cannot read: No such file or directory");
  auto directory = apply_config_file(dir.path(), settings);
  REQUIRE_FALSE(directory);
  CHECK(directory.error().at(0).to_string() == dir.path() + ": cannot read: a directory, not a file");
}

TEST_CASE("the shipped systemd/egressd.yaml is a valid config for the unit's paths") {
  Settings settings;
  const std::string shipped = std::string(EGRESSD_SOURCE_DIR) + "/systemd/egressd.yaml";
  auto applied = apply_config_file(shipped, settings);
  std::string errors;
  if (!applied) {
    for (const auto& error : applied.error()) errors += error.to_string() + "\n";
  }
  INFO(errors);
  REQUIRE(applied);
  CHECK(settings.policy_path == "/etc/egressd/policy.yaml");
  CHECK(settings.deny_log_path == "/var/log/egressd/deny.log");  // the unit's LogsDirectory=egressd
  CHECK(settings.access_log_path == "/var/log/egressd/access.log");
  CHECK(settings.listen_host == "127.0.0.1");
  CHECK(settings.listen_port == 3128);
  CHECK(settings.state_dir.empty());  // $STATE_DIRECTORY, from the unit's StateDirectory=
}

TEST_CASE("run flags override the config file whether they come before or after --config") {
  const TempDir dir;
  const std::string config = dir.file("egressd.yaml");
  write_file(config, "listen: 127.0.0.3:0\npolicy: from-file.yaml\ndeny_log: /file/deny.log\n");
  for (const std::vector<std::string_view>& args :
       {std::vector<std::string_view>{"--listen", "127.0.0.4:1", "--config", config},
        std::vector<std::string_view>{"--config", config, "--listen=127.0.0.4:1"}}) {
    auto settings = flags(args);
    REQUIRE(settings);
    CHECK(settings->config_path == config);
    CHECK(settings->listen_host == "127.0.0.4");
    CHECK(settings->listen_port == 1);
    CHECK(settings->policy_path == dir.file("from-file.yaml"));  // not overridden: the file's
    CHECK(settings->deny_log_path == "/file/deny.log");
  }
}

TEST_CASE("config file errors come out of the run flags one FILE:LINE:COL line each") {
  const TempDir dir;
  const std::string config = dir.file("egressd.yaml");
  write_file(config, "listen: 127.0.0.1:0\nlisten_addr: x\ntimeouts: { head_ms: 0 }\n");
  auto settings = flags({"--policy", "/p.yaml", "--config", config});
  REQUIRE_FALSE(settings);
  CHECK(settings.error() ==
        config +
            ":2:1: unknown key 'listen_addr'; accepted keys: listen, policy, watch_policy, deny_log, "
            "access_log, log_level, state_dir, ca_cert, ca_key, upstream_ca, trust_on_first_use, metrics, "
            "resolve, ready_file, timeouts, limits\n" +
            config + ":3:22: timeouts.head_ms needs a positive number, got '0'");
}

TEST_CASE("a CA certificate without its key is an error whether from a flag or the config file") {
  const TempDir dir;
  const std::string config = dir.file("egressd.yaml");
  write_file(config, "ca_cert: /etc/egressd/ca.pem\n");
  auto from_file = flags({"--config", config});
  REQUIRE_FALSE(from_file);
  CHECK(from_file.error() == "--ca-cert and --ca-key (ca_cert and ca_key in a config file) go together");
  CHECK(flags({"--config", config, "--ca-key", "/k.pem"}));
}

TEST_CASE("run flags: an unknown option says so instead of asking for a value") {
  struct Row {
    std::vector<std::string_view> args;
    const char* want;
  };
  const Row rows[] = {
      {{"--bogus"}, "unknown option '--bogus'"},
      {{"--bogus", "value"}, "unknown option '--bogus'"},
      {{"--bogus=value"}, "unknown option '--bogus'"},
      {{"--listen", "127.0.0.1:0", "stray"}, "unexpected argument 'stray'"},
      {{"--no-watch=false"}, "--no-watch takes no value"},
      {{"--listen"}, "--listen needs a value"},
      {{"--config"}, "--config needs a value"},
      {{"--config", "a.yaml", "--config=b.yaml"}, "--config given more than once"},
      {{"--log-level", "loud"}, "--log-level: unknown level 'loud' (trace, debug, info, warn, error, off)"},
      {{"--max-connections", "0"}, "--max-connections needs a positive number, got '0'"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.want);
    auto settings = flags(row.args);
    REQUIRE_FALSE(settings);
    CHECK(settings.error() == row.want);
  }
}

TEST_CASE("run flags without --config keep the built-in defaults") {
  auto settings = flags({});
  REQUIRE(settings);
  CHECK(settings->config_path.empty());
  CHECK(settings->listen_host == "127.0.0.1");
  CHECK(settings->listen_port == 3128);
  CHECK_FALSE(settings->policy_path.has_value());
}

// egressd: the command line. Each subcommand lives in its own command_*.cpp (see commands.h).
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/commands.h"

namespace egressd::proxy {
namespace {

constexpr std::string_view kUsage = R"(usage:
  egressd run [options]      run the proxy (defaults: --listen 127.0.0.1:3128, the embedded example policy)
  egressd check [--strict] FILE...
                             validate policy files; prints FILE:LINE:COL errors, then warnings (rules that
                             can never match, duplicates, missing binaries) and notes; exit 0 valid, 1
                             invalid (--strict: also on warnings)
  egressd explain --binary PATH --host HOST --port PORT [--method M --path P] [--policy FILE] [--json]
                             why the policy allows or denies that; exit 0 allow, 1 deny
  egressd suggest DENYLOG|- [--policy FILE]
                             the policy YAML allowing what the deny log shows denied, and nothing more
  egressd ca init --out DIR [--name CN]
                             create a CA for TLS termination in DIR and print how clients trust it
  egressd version

run options (a flag overrides the same setting in the --config file):
  --config FILE              read the settings below from a YAML file (/etc/egressd/egressd.yaml; keys
                             listen, policy, deny_log, ..., timeouts: {head_ms, ...}, limits: {...})
  --listen ADDR:PORT         where to listen (IPv6 as [::1]:3128; port 0 picks a free port)
  --policy FILE              the policy (OpenShell network_policies YAML); reloaded when it changes
  --deny-log FILE            deny decisions as JSON lines (also on the console log)
  --access-log FILE          allow decisions as JSON lines
  --resolve HOST=ADDR        dial ADDR for HOST instead of asking DNS (repeatable)
  --no-watch                 reload only on SIGHUP, not when the file changes
  --ready-file FILE          write the listening address here once ready
  --metrics ADDR:PORT        serve Prometheus /metrics and /healthz there (never reachable through the proxy)
  --ca-cert FILE --ca-key FILE
                             the CA that signs certificates for terminated TLS (PEM; the key mode 0600)
  --state-dir DIR            without --ca-cert: the CA is DIR/ca/ca.pem, generated on first run
                             (default $STATE_DIRECTORY, else /var/lib/egressd)
  --upstream-ca FILE         also trust these CAs when verifying upstream servers
  --log-level LEVEL          trace, debug, info (default), warn, error
  --head-timeout-ms N        time allowed for a request head (default 30000)
  --identify-timeout-ms N    time allowed to identify the caller (default 5000)
  --connect-timeout-ms N     time allowed for DNS and connect upstream (default 10000)
  --idle-timeout-ms N        close a tunnel or exchange idle this long (default 300000)
  --handshake-timeout-ms N   time allowed for a client's TLS handshake (default 10000)
  --trust-on-first-use       record each allowed binary's SHA-256 (STATE_DIR/binary-digests.sha256)
                             and deny it once its executable hashes differently
  --max-connections N        client connections open at once; more get 503 (default 4096)
  --max-connections-per-binary N
                             of those, from one executable (default 1024)
)";

}  // namespace
}  // namespace egressd::proxy

int main(int argc, char** argv) {
  using namespace egressd::proxy;
  Args args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    std::fputs(kUsage.data(), args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  const std::string_view command = args[0];
  args.erase(args.begin());
  if (command == "version" || command == "--version") {
    std::puts("egressd " EGRESSD_VERSION);
    return 0;
  }
  if (command == "run") return command_run(args);
  if (command == "check") return command_check(args);
  if (command == "ca") return command_ca(args);
  if (command == "explain") return command_explain(args);
  if (command == "suggest") return command_suggest(args);
  std::fprintf(stderr, "egressd: unknown command '%s'\n%s", std::string(command).c_str(), kUsage.data());
  return 2;
}

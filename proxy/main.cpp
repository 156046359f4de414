// egressd: flags -> Settings, builds everything, runs the loop. The only place where the parts are wired.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "common/log.h"
#include "policy/loader.h"
#include "policy/store.h"
#include "procid/identify.h"
#include "proxy/decision_log.h"
#include "proxy/embedded_policy.h"
#include "proxy/policy_watcher.h"
#include "proxy/server.h"
#include "proxy/settings.h"
#include "proxy/uv_handle.h"
#include "tls/ca.h"

namespace egressd::proxy {
namespace {

constexpr std::string_view kUsage = R"(usage:
  egressd run [options]      run the proxy (defaults: --listen 127.0.0.1:3128, the embedded example policy)
  egressd check FILE...      validate policy files; prints FILE:LINE:COL errors; exit 0 valid, 1 invalid
  egressd ca init --out DIR [--name CN]
                             create a CA for TLS termination in DIR and print how clients trust it
  egressd version

run options:
  --listen ADDR:PORT         where to listen (IPv6 as [::1]:3128; port 0 picks a free port)
  --policy FILE              the policy (OpenShell network_policies YAML); reloaded when it changes
  --deny-log FILE            deny decisions as JSON lines (also on the console log)
  --access-log FILE          allow decisions as JSON lines
  --resolve HOST=ADDR        dial ADDR for HOST instead of asking DNS (repeatable)
  --no-watch                 reload only on SIGHUP, not when the file changes
  --ready-file FILE          write the listening address here once ready
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

Result<uint64_t, std::string> parse_number(std::string_view flag, std::string_view text) {
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value == 0) {
    return unexpected(fmt::format("{} needs a positive number, got '{}'", flag, text));
  }
  return value;
}

Result<void, std::string> parse_listen(std::string_view text, Settings& settings) {
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    const auto close = text.find("]:");
    if (close == std::string_view::npos)
      return unexpected(fmt::format("--listen: expected [ADDR]:PORT, got '{}'", text));
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return unexpected(fmt::format("--listen: expected ADDR:PORT, got '{}'", text));
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || ptr != port.data() + port.size() || value > 65535 || host.empty()) {
    return unexpected(fmt::format("--listen: invalid address '{}'", text));
  }
  settings.listen_host = std::string(host);
  settings.listen_port = static_cast<uint16_t>(value);
  return {};
}

Result<Settings, std::string> parse_run_flags(const std::vector<std::string_view>& args) {
  Settings settings;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view flag = args[i];
    std::optional<std::string_view> inline_value;
    if (const auto eq = flag.find('='); flag.starts_with("--") && eq != std::string_view::npos) {
      inline_value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    }
    auto value = [&]() -> Result<std::string_view, std::string> {
      if (inline_value) return *inline_value;
      if (i + 1 >= args.size()) return unexpected(fmt::format("{} needs a value", flag));
      return args[++i];
    };
    if (flag == "--trust-on-first-use") {
      settings.trust_on_first_use = true;
      continue;
    }
    if (flag == "--no-watch") {
      settings.watch_policy = false;
      continue;
    }
    auto v = value();
    if (!v) return unexpected(v.error());
    if (flag == "--listen") {
      if (auto ok = parse_listen(*v, settings); !ok) return unexpected(ok.error());
    } else if (flag == "--policy") {
      settings.policy_path = std::string(*v);
    } else if (flag == "--deny-log") {
      settings.deny_log_path = std::string(*v);
    } else if (flag == "--access-log") {
      settings.access_log_path = std::string(*v);
    } else if (flag == "--ca-cert") {
      settings.ca_cert_path = std::string(*v);
    } else if (flag == "--ca-key") {
      settings.ca_key_path = std::string(*v);
    } else if (flag == "--state-dir") {
      settings.state_dir = std::string(*v);
    } else if (flag == "--upstream-ca") {
      settings.upstream_ca_path = std::string(*v);
    } else if (flag == "--ready-file") {
      settings.ready_file = std::string(*v);
    } else if (flag == "--log-level") {
      settings.log_level = std::string(*v);
    } else if (flag == "--resolve") {
      const auto eq = v->find('=');
      std::string host(v->substr(0, eq));
      for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string addr(eq == std::string_view::npos ? std::string_view() : v->substr(eq + 1));
      if (!addr.empty() && addr.front() == '[' && addr.back() == ']') addr = addr.substr(1, addr.size() - 2);
      sockaddr_storage probe{};
      if (host.empty() || addr.empty() ||
          (uv_ip4_addr(addr.c_str(), 0, reinterpret_cast<sockaddr_in*>(&probe)) != 0 &&
           uv_ip6_addr(addr.c_str(), 0, reinterpret_cast<sockaddr_in6*>(&probe)) != 0)) {
        return unexpected(fmt::format("--resolve needs HOST=IP-ADDRESS, got '{}'", *v));
      }
      settings.resolve[host] = addr;
    } else if (uint64_t* number = flag == "--head-timeout-ms"        ? &settings.head_timeout_ms
                                  : flag == "--identify-timeout-ms"  ? &settings.identify_timeout_ms
                                  : flag == "--connect-timeout-ms"   ? &settings.connect_timeout_ms
                                  : flag == "--idle-timeout-ms"      ? &settings.idle_timeout_ms
                                  : flag == "--handshake-timeout-ms" ? &settings.handshake_timeout_ms
                                  : flag == "--max-connections"      ? &settings.max_connections
                                  : flag == "--max-connections-per-binary"
                                      ? &settings.max_connections_per_binary
                                      : nullptr) {
      auto n = parse_number(flag, *v);
      if (!n) return unexpected(n.error());
      if (*n == 0) return unexpected(fmt::format("{} must be at least 1", flag));
      *number = *n;
    } else {
      return unexpected(fmt::format("unknown option '{}'", flag));
    }
  }
  if (settings.ca_cert_path.empty() != settings.ca_key_path.empty()) {
    return unexpected(std::string("--ca-cert and --ca-key go together"));
  }
  if (settings.state_dir.empty()) {
    const char* from_systemd = std::getenv("STATE_DIRECTORY");
    settings.state_dir = from_systemd != nullptr && *from_systemd != '\0' ? from_systemd : "/var/lib/egressd";
  }
  return settings;
}

// The CA given with --ca-cert/--ca-key, or the one in the state directory (generated on first run).
Result<std::shared_ptr<const tls::CertificateAuthority>, std::string> load_ca(const Settings& settings) {
  if (!settings.ca_cert_path.empty()) {
    auto ca = tls::CertificateAuthority::load(settings.ca_cert_path, settings.ca_key_path);
    if (!ca) return unexpected(ca.error().detail);
    return *ca;
  }
  bool created = false;
  // The state directory itself is created on first run (systemd's StateDirectory= makes it beforehand).
  if (::mkdir(settings.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return unexpected(
        fmt::format("cannot create state directory {}: {}", settings.state_dir, std::strerror(errno)));
  }
  const std::string dir = settings.state_dir + "/ca";
  auto ca = tls::CertificateAuthority::load_or_generate(dir, created);
  if (!ca) return unexpected(ca.error().detail);
  if (created) {
    log::warn("generated a new CA in {} ({}); clients must trust {} to talk TLS through egressd", dir,
              (*ca)->sha256_fingerprint(), (*ca)->cert_path());
    log::info("client trust set-up:\n{}", tls::client_trust_instructions((*ca)->cert_path()));
  }
  return *ca;
}

int run_ca(const std::vector<std::string_view>& args) {
  if (args.empty() || args[0] != "init") {
    std::fputs("usage: egressd ca init --out DIR [--name CN]\n", stderr);
    return 2;
  }
  std::string out;
  std::string name = "egressd CA";
  for (size_t i = 1; i < args.size(); ++i) {
    if ((args[i] == "--out" || args[i] == "--name") && i + 1 < args.size()) {
      (args[i] == "--out" ? out : name) = std::string(args[i + 1]);
      ++i;
    } else {
      std::fprintf(stderr, "egressd ca init: unknown option '%s'\n", std::string(args[i]).c_str());
      return 2;
    }
  }
  if (out.empty()) {
    std::fputs("egressd ca init: --out DIR is required\n", stderr);
    return 2;
  }
  auto ca = tls::CertificateAuthority::generate(out, name);
  if (!ca) {
    std::fprintf(stderr, "egressd ca init: %s\n", ca.error().detail.c_str());
    return 1;
  }
  std::printf(
      "created %s (%s)\n  certificate: %s\n  key:         %s/ca-key.pem (mode 0600)\n"
      "  sha256:      %s\n\nTo let clients trust it:\n%s",
      (*ca)->subject().c_str(), name.c_str(), (*ca)->cert_path().c_str(), out.c_str(),
      (*ca)->sha256_fingerprint().c_str(), tls::client_trust_instructions((*ca)->cert_path()).c_str());
  return 0;
}

int run_check(const std::vector<std::string_view>& files) {
  if (files.empty()) {
    std::fputs("egressd check: name at least one policy file\n", stderr);
    return 2;
  }
  int status = 0;
  for (const auto file : files) {
    auto loaded = policy::load_policy_file(std::string(file));
    if (!loaded) {
      std::fputs(policy::format_errors(loaded.error()).c_str(), stdout);
      std::fprintf(stdout, "%s: invalid (%zu error%s)\n", std::string(file).c_str(), loaded.error().size(),
                   loaded.error().size() == 1 ? "" : "s");
      status = 1;
      continue;
    }
    for (const auto& w : (*loaded)->warnings) {
      std::fprintf(stdout, "%s:%d:%d: warning: %s\n", w.where.file.c_str(), w.where.line, w.where.col,
                   w.message.c_str());
    }
    std::fprintf(stdout, "%s: ok (%zu rules, hash %s)\n", std::string(file).c_str(), (*loaded)->rules.size(),
                 (*loaded)->source_hash.c_str());
  }
  return status;
}

Result<void, std::string> write_ready_file(const std::string& path, const std::string& address) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return unexpected(fmt::format("cannot write {}: {}", tmp, std::strerror(errno)));
  const std::string text = address + "\n";
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!written || ::rename(tmp.c_str(), path.c_str()) != 0) {
    return unexpected(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  }
  return {};
}

// Signals, on the loop: SIGHUP reloads, SIGUSR1 reopens the decision logs, SIGTERM and SIGINT stop.
class Signals {
 public:
  Signals(uv_loop_t* loop, Server& server, PolicyWatcher* watcher, bool has_policy_file,
          DecisionLog& deny_log, DecisionLog& access_log)
      : loop_(loop),
        server_(server),
        watcher_(watcher),
        has_policy_file_(has_policy_file),
        deny_log_(deny_log),
        access_log_(access_log) {}

  Result<void, std::string> start() {
    for (auto [handle, signum] :
         {std::pair{&hup_, SIGHUP}, {&usr1_, SIGUSR1}, {&term_, SIGTERM}, {&intr_, SIGINT}}) {
      if (int rc = handle->init(this, [this](uv_signal_t* h) { return uv_signal_init(loop_, h); }); rc != 0) {
        return unexpected(fmt::format("uv_signal_init: {}", uv_strerror(rc)));
      }
      if (int rc = uv_signal_start(handle->get(), &Signals::uv_on_signal, signum); rc != 0) {
        return unexpected(fmt::format("uv_signal_start: {}", uv_strerror(rc)));
      }
    }
    return {};
  }

 private:
  static void uv_on_signal(uv_signal_t* handle, int signum) noexcept {
    auto* self = static_cast<Signals*>(handle->data);
    if (self != nullptr) self->on_signal(signum);
  }

  void on_signal(int signum) {
    if (signum == SIGHUP) {
      if (!has_policy_file_) {
        log::warn("SIGHUP: running on the embedded example policy; there is no file to reload");
        return;
      }
      log::info("SIGHUP: reloading the policy");
      server_.reload_policy();
      return;
    }
    if (signum == SIGUSR1) {
      // As nginx and squid do after logrotate: close and reopen each log at its path.
      bool reopened = true;
      for (DecisionLog* decision_log : {&deny_log_, &access_log_}) {
        if (auto done = decision_log->reopen(); !done) {
          log::warn("SIGUSR1: {}; still writing to the old file", done.error());
          reopened = false;
        }
      }
      if (reopened) log::info("reopened decision logs on SIGUSR1");
      return;
    }
    log::info("{}: stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    if (watcher_ != nullptr) watcher_->stop();
    server_.stop();
    stop();
  }

 public:
  void stop() {
    hup_.close();
    usr1_.close();
    term_.close();
    intr_.close();
  }

 private:
  uv_loop_t* loop_;
  Server& server_;
  PolicyWatcher* watcher_;  // owned by run(); may be null
  bool has_policy_file_;
  DecisionLog& deny_log_;
  DecisionLog& access_log_;
  UvHandle<uv_signal_t> hup_;
  UvHandle<uv_signal_t> usr1_;
  UvHandle<uv_signal_t> term_;
  UvHandle<uv_signal_t> intr_;
};

int run(const Settings& settings) {
  log::init_console();
  if (!log::set_level(settings.log_level)) {
    log::error("unknown --log-level '{}'", settings.log_level);
    return 2;
  }
  auto loaded = settings.policy_path ? policy::load_policy_file(*settings.policy_path)
                                     : policy::load_policy_text(kEmbeddedPolicy, kEmbeddedPolicyName);
  if (!loaded) {
    for (const auto& e : loaded.error()) log::error("policy: {}", e.to_string());
    log::error("refusing to start on an invalid policy");
    return 1;
  }
  for (const auto& w : (*loaded)->warnings) {
    log::warn("policy: {}:{}:{}: {}", w.where.file, w.where.line, w.where.col, w.message);
  }
  policy::PolicyStore store(settings.policy_path.value_or(""), *loaded);

  // Refuse to start with an unusable CA rather than run without the ability to inspect TLS.
  auto ca = load_ca(settings);
  if (!ca) {
    log::error("{}", ca.error());
    return 1;
  }

  auto upstream_tls = tls::UpstreamTls::create(settings.upstream_ca_path);
  if (!upstream_tls) {
    log::error("upstream TLS: {}", upstream_tls.error().detail);
    return 1;
  }
  Interception interception(*ca, *upstream_tls);
  RedirectMemory redirects;

  DecisionLog deny_log("deny log");
  DecisionLog access_log("access log");
  for (auto [log_file, path] :
       {std::pair{&deny_log, &settings.deny_log_path}, {&access_log, &settings.access_log_path}}) {
    if (path->empty()) continue;
    if (auto opened = log_file->open(*path); !opened) {
      log::error("{}", opened.error());
      return 1;
    }
  }
  if (geteuid() != 0) {
    log::warn(
        "not running as root: callers owned by other users cannot be identified and will be denied "
        "(grant CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH)");
  }

  ::signal(SIGPIPE, SIG_IGN);  // a peer closing mid-write is an error value, not a process kill
  uv_loop_t loop;
  if (int rc = uv_loop_init(&loop); rc != 0) {
    log::error("uv_loop_init: {}", uv_strerror(rc));
    return 1;
  }
  int status = 0;
  {
    Server server(&loop, settings, store, deny_log, access_log, procid::identify_peer, interception,
                  redirects);
    std::unique_ptr<PolicyWatcher> watcher;
    auto fail = [&status](const std::string& message) {
      log::error("{}", message);
      status = 1;
    };
    if (auto listening = server.listen(); !listening) fail(listening.error());
    if (status == 0 && settings.policy_path && settings.watch_policy) {
      watcher = std::make_unique<PolicyWatcher>(&loop, *settings.policy_path, server);
      if (auto watching = watcher->start(); !watching) fail(watching.error());
    }
    Signals signals(&loop, server, watcher.get(), settings.policy_path.has_value(), deny_log, access_log);
    if (status == 0) {
      if (auto started = signals.start(); !started) fail(started.error());
    }
    const std::string address = server.bound_address();
    if (status == 0 && !settings.ready_file.empty()) {
      if (auto written = write_ready_file(settings.ready_file, address); !written) fail(written.error());
    }
    if (status == 0) {
      const auto& snapshot = store.current();
      log::info("egressd listening on {}; policy hash={} rules={} from {}{}", address, snapshot->source_hash,
                snapshot->rules.size(), snapshot->source_path,
                settings.policy_path && settings.watch_policy ? " (watched for changes)" : "");
    } else {
      if (watcher) watcher->stop();
      signals.stop();
      server.stop();
    }
    uv_run(&loop, UV_RUN_DEFAULT);  // until SIGTERM/SIGINT has closed every handle
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // close callbacks of handles the destructors closed
  if (int rc = uv_loop_close(&loop); rc != 0) {
    log::error("event loop still had open handles at exit: {}", uv_err_name(rc));
    return 1;
  }
  return status;
}

}  // namespace
}  // namespace egressd::proxy

int main(int argc, char** argv) {
  using namespace egressd::proxy;
  std::vector<std::string_view> args(argv + 1, argv + argc);
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
  if (command == "check") return run_check(args);
  if (command == "ca") return run_ca(args);
  if (command == "run") {
    auto settings = parse_run_flags(args);
    if (!settings) {
      std::fprintf(stderr, "egressd run: %s\n%s", settings.error().c_str(), kUsage.data());
      return 2;
    }
    return run(*settings);
  }
  std::fprintf(stderr, "egressd: unknown command '%s'\n%s", std::string(command).c_str(), kUsage.data());
  return 2;
}

// `egressd run`: builds everything from Settings and runs the loop. The only place where the parts are wired.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "common/log.h"
#include "policy/loader.h"
#include "policy/store.h"
#include "procid/identify.h"
#include "proxy/commands.h"
#include "proxy/decision_log.h"
#include "proxy/embedded_policy.h"
#include "proxy/policy_watcher.h"
#include "proxy/sd_notify.h"
#include "proxy/server.h"
#include "proxy/settings.h"
#include "proxy/uv_handle.h"
#include "tls/ca.h"

namespace egressd::proxy {
namespace {

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

// Signals, on the loop: SIGHUP reloads, SIGUSR1 reopens the decision logs, SIGTERM and SIGINT stop
// (telling systemd first).
class Signals {
 public:
  Signals(uv_loop_t* loop, Server& server, PolicyWatcher* watcher, bool has_policy_file,
          DecisionLog& deny_log, DecisionLog& access_log, SystemdNotifier& notifier)
      : loop_(loop),
        server_(server),
        watcher_(watcher),
        has_policy_file_(has_policy_file),
        deny_log_(deny_log),
        access_log_(access_log),
        notifier_(notifier) {}

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
    const char* name = signum == SIGTERM ? "SIGTERM" : "SIGINT";
    log::info("{}: stopping", name);
    notifier_.stopping(name);
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
  SystemdNotifier& notifier_;
  UvHandle<uv_signal_t> hup_;
  UvHandle<uv_signal_t> usr1_;
  UvHandle<uv_signal_t> term_;
  UvHandle<uv_signal_t> intr_;
};

int run(const Settings& settings) {
  log::init_console();
  if (!settings.config_path.empty()) log::info("settings from {} and the command line", settings.config_path);
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
  // Type=notify: READY=1 once listening, RELOADING=1/READY=1 around reloads, STOPPING=1 (no-op outside
  // systemd).
  SystemdNotifier notifier = SystemdNotifier::from_environment();
  {
    Server server(&loop, settings, store, deny_log, access_log, procid::identify_peers, interception,
                  redirects);
    server.set_reload_observer(&notifier);
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
    Signals signals(&loop, server, watcher.get(), settings.policy_path.has_value(), deny_log, access_log,
                    notifier);
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
      notifier.ready(address, *snapshot);  // after the ready file: both mean "accepting connections"
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

int command_run(const Args& args) {
  auto settings = parse_run_flags(args);
  if (!settings) {
    // One line per error (a config file may have several), each FILE:LINE:COL: or naming its flag.
    std::string_view errors = settings.error();
    while (!errors.empty()) {
      const size_t end = std::min(errors.find('\n'), errors.size());
      std::fprintf(stderr, "egressd run: %.*s\n", static_cast<int>(end), errors.data());
      errors.remove_prefix(std::min(end + 1, errors.size()));
    }
    std::fputs("(egressd help lists the options)\n", stderr);
    return 2;
  }
  return run(*settings);
}

}  // namespace egressd::proxy

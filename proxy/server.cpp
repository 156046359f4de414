#include "proxy/server.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "common/log.h"
#include "proxy/session.h"
#include "proxy/socket_address.h"

namespace egressd::proxy {

Server::Server(uv_loop_t* loop, const Settings& settings, policy::PolicyStore& policies,
               DecisionLog& deny_log, DecisionLog& access_log, Identifier identify,
               Interception& interception, RedirectMemory& redirects)
    : loop_(loop),
      settings_(settings),
      policies_(policies),
      deny_log_(deny_log),
      access_log_(access_log),
      identify_(loop, *this, std::move(identify)),
      interception_(interception),
      redirects_(redirects),
      policy_reload_(loop, policies.path(), *this) {
  note_policy_loaded();
}

void Server::note_policy_loaded() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  policy_loaded_at_ = static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

Server::~Server() = default;

Result<void, std::string> Server::listen() {
  if (settings_.trust_on_first_use && !trusted_) {
    auto trusted = TrustedDigests::open(settings_.state_dir + "/binary-digests.sha256");
    if (!trusted) return unexpected(trusted.error());
    log::info("trust on first use: {} binaries recorded in {}", trusted->size(), trusted->path());
    trusted_.emplace(std::move(*trusted));
  }
  sockaddr_storage addr{};
  int rc = uv_ip4_addr(settings_.listen_host.c_str(), settings_.listen_port,
                       reinterpret_cast<sockaddr_in*>(&addr));
  if (rc != 0) {
    rc = uv_ip6_addr(settings_.listen_host.c_str(), settings_.listen_port,
                     reinterpret_cast<sockaddr_in6*>(&addr));
  }
  if (rc != 0) return unexpected(fmt::format("invalid listen address '{}'", settings_.listen_host));
  if (int err = listener_.init(this, [this](uv_tcp_t* h) { return uv_tcp_init(loop_, h); }); err != 0) {
    return unexpected(fmt::format("uv_tcp_init: {}", uv_strerror(err)));
  }
  if (int err = uv_tcp_bind(listener_.get(), reinterpret_cast<const sockaddr*>(&addr), 0); err != 0) {
    return unexpected(
        fmt::format("cannot bind {}:{}: {}", settings_.listen_host, settings_.listen_port, uv_strerror(err)));
  }
  if (int err = uv_listen(listener_.stream(), 1024, &Server::uv_on_connection); err != 0) {
    return unexpected(fmt::format("cannot listen on {}:{}: {}", settings_.listen_host, settings_.listen_port,
                                  uv_strerror(err)));
  }
  if (int err = reaper_.init(this, [this](uv_check_t* h) { return uv_check_init(loop_, h); }); err != 0) {
    return unexpected(fmt::format("uv_check_init: {}", uv_strerror(err)));
  }
  if (settings_.metrics_host) {
    metrics_server_ = std::make_unique<MetricsServer>(
        loop_, [this] { return render_metrics(); },
        [this]() -> std::optional<std::string> {
          if (stopping_) return "stopping";
          return std::nullopt;
        });
    if (auto listening = metrics_server_->listen(*settings_.metrics_host, settings_.metrics_port);
        !listening) {
      return listening;
    }
    log::info("metrics on http://{}/metrics, health on /healthz", metrics_address());
  }
  return {};
}

std::string Server::metrics_address() const {
  if (!metrics_server_) return {};
  const auto bound = metrics_server_->bound();
  return bound ? endpoint_text(*bound) : std::string();
}

std::string Server::render_metrics() const {
  Metrics::Gauges gauges;
  for (const auto& [id, session] : sessions_) {
    switch (session->phase()) {
      case Session::Phase::ReadingHead:
      case Session::Phase::Identifying:
      case Session::Phase::Verifying:
        ++gauges.connections_deciding;
        break;
      case Session::Phase::Draining:
      case Session::Phase::Closed:
        ++gauges.connections_closing;
        break;
      default:
        ++gauges.connections_allowed;
        break;
    }
    gauges.live_bytes_up += session->bytes_up();
    gauges.live_bytes_down += session->bytes_down();
  }
  const auto& leaves = interception_.leaves();
  gauges.leaf_cache_entries = leaves.size();
  gauges.leaf_cache_hits = leaves.hits();
  gauges.leaf_cache_misses = leaves.misses();
  const auto& snapshot = policies_.current();
  gauges.policy_hash = snapshot->source_hash;
  gauges.policy_source = snapshot->source_path;
  gauges.policy_rules = snapshot->rules.size();
  gauges.policy_loaded_at = policy_loaded_at_;
  return metrics_.render(gauges);
}

std::string Server::bound_address() const {
  if (!listener_) return {};
  sockaddr_storage addr{};
  int len = sizeof addr;
  if (uv_tcp_getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return {};
  return endpoint_text(addr);
}

bool Server::is_own_listener(const sockaddr_storage& dest) const {
  for (const UvHandle<uv_tcp_t>* listener : {&listener_}) {
    sockaddr_storage own{};
    int len = sizeof own;
    if (*listener && uv_tcp_getsockname(listener->get(), reinterpret_cast<sockaddr*>(&own), &len) == 0 &&
        reaches(own, dest)) {
      return true;
    }
  }
  if (metrics_server_) {
    if (const auto own = metrics_server_->bound(); own && reaches(*own, dest)) return true;
  }
  return false;
}

bool Server::reaches(const sockaddr_storage& own, const sockaddr_storage& dest) {
  if (port_of(own) != port_of(dest)) return false;
  const policy::IpAddress listening = policy::classify_address(policy_ip(own)).effective;
  const policy::AddressClassification to = policy::classify_address(policy_ip(dest));
  if (to.effective == listening) return true;
  const bool any_address =
      std::all_of(listening.bytes.begin(), listening.bytes.end(), [](uint8_t b) { return b == 0; });
  if (!any_address) return false;
  if (to.cls == policy::AddressClass::Loopback) return true;
  // Listening on every address: any address of this host reaches it.
  ifaddrs* interfaces = nullptr;
  if (::getifaddrs(&interfaces) != 0) return true;  // cannot tell: refuse rather than risk a loop
  bool local = false;
  for (const ifaddrs* i = interfaces; i != nullptr && !local; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6)) {
      continue;
    }
    sockaddr_storage address{};
    std::memcpy(&address, i->ifa_addr,
                i->ifa_addr->sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6));
    local = policy::classify_address(policy_ip(address)).effective == to.effective;
  }
  ::freeifaddrs(interfaces);
  return local;
}

void Server::uv_on_connection(uv_stream_t* listener, int status) noexcept {
  auto* self = static_cast<Server*>(listener->data);
  if (self == nullptr) return;
  self->on_connection(status);
}

void Server::on_connection(int status) {
  if (status < 0) {
    // Out of descriptors libuv accepts and closes the pending connection itself (its reserve-fd trick),
    // so the loop does not spin; say so once a second, not once per dropped client.
    ++accept_failures_;
    const uint64_t now = uv_now(loop_);
    if (accept_failures_reported_ == 0 || now - last_accept_report_ms_ >= 1000) {
      log::warn("accept: {} ({} connection(s) dropped since the last report)", uv_strerror(status),
                accept_failures_ - accept_failures_reported_);
      accept_failures_reported_ = accept_failures_;
      last_accept_report_ms_ = now;
    }
    return;
  }
  const SessionId id = next_id_++;
  auto session = std::make_unique<Session>(*this, id);
  auto tuple = session->accept(listener_.stream());
  if (!tuple) {
    log::warn("[S{}] accept failed: {}", id, tuple.error());
    session->stop();
    retired_.push_back(std::move(session));
    uv_check_start(reaper_.get(), &Server::uv_on_reap);
    return;
  }
  metrics_.connection_accepted();
  Session& live = *session;
  const size_t open = sessions_.size();
  const uint64_t fd_room = sessions_within_fd_limit();
  sessions_.emplace(id, std::move(session));
  if (open >= settings_.max_connections || open >= fd_room) {
    if (open >= std::min<uint64_t>(settings_.max_connections, fd_room) + kRefusalSlots) {
      return live.stop();  // a flood: even a 503 would hold a descriptor too many
    }
    return live.refuse_at_capacity(
        open >= settings_.max_connections
            ? fmt::format("egressd has {} client connections open (--max-connections {})", open,
                          settings_.max_connections)
            : fmt::format("egressd has {} client connections open, as many as its open-file limit allows",
                          open));
  }
  // Identification starts at once, in parallel with reading the request head.
  if (int rc = identify_.submit(id, *tuple); rc != 0) {
    log::error("[S{}] cannot queue caller identification: {}", id, uv_strerror(rc));
    live.on_identified(unexpected(procid::LookupError{procid::LookupError::Stage::SocketLookup, 0, 0,
                                                      "identification could not be queued"}));
  }
  live.start();
}

uint64_t Server::sessions_within_fd_limit() const {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return UINT64_MAX;
  return limit.rlim_cur > kReservedFds ? (limit.rlim_cur - kReservedFds) / kFdsPerSession : 0;
}

bool Server::admit_binary(const std::string& exe) {
  size_t& count = per_binary_[exe];
  if (count >= settings_.max_connections_per_binary) return false;
  ++count;
  return true;
}

void Server::release_binary(const std::string& exe) {
  const auto it = per_binary_.find(exe);
  if (it == per_binary_.end()) return;
  if (--it->second == 0) per_binary_.erase(it);
}

Session* Server::find(SessionId id) {
  const auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second.get();
}

void Server::on_identified(SessionId id, Result<procid::PeerIdentity, procid::LookupError> result) {
  if (Session* session = find(id); session != nullptr) session->on_identified(std::move(result));
}

void Server::on_digest(SessionId id, Result<ExeDigest, std::string> result) {
  if (Session* session = find(id); session != nullptr) session->on_digest(std::move(result));
}

void Server::retire(SessionId id) {
  const auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  retired_.push_back(std::move(it->second));
  sessions_.erase(it);
  if (reaper_) uv_check_start(reaper_.get(), &Server::uv_on_reap);
}

void Server::uv_on_reap(uv_check_t* check) noexcept {
  auto* self = static_cast<Server*>(check->data);
  if (self == nullptr) return;
  self->retired_.clear();  // their handles close now; libuv frees each in its close callback
  uv_check_stop(check);
  if (self->stopping_ && self->sessions_.empty()) self->reaper_.close();
}

void Server::reload_policy() {
  // Parsing a large policy takes long enough to stall every connection (issue #6, T8): the file is
  // loaded on the thread pool, and on_policy_loaded() installs it back here.
  policy_reload_.request();
}

void Server::on_policy_load_started() {
  if (reload_observer_ != nullptr) reload_observer_->on_reload_started();
}

void Server::on_policy_loaded(Result<std::shared_ptr<const policy::Policy>, policy::LoadErrors> loaded,
                              double load_seconds) {
  const std::string modes_before = policy::describe_modes(*policies_.current());
  const auto result = policies_.install(std::move(loaded));
  metrics_.policy_reload(result.kind == policy::ReloadResult::Kind::Applied     ? "applied"
                         : result.kind == policy::ReloadResult::Kind::Unchanged ? "unchanged"
                                                                                : "rejected",
                         load_seconds);
  switch (result.kind) {
    case policy::ReloadResult::Kind::Applied: {
      note_policy_loaded();
      const auto& snapshot = policies_.current();
      log::info("policy reloaded: hash={} rules={} (from {})", result.hash, snapshot->rules.size(),
                policies_.path());
      for (const auto& warning : snapshot->warnings) {
        log::warn("policy: {}:{}:{}: {}", warning.where.file, warning.where.line, warning.where.col,
                  warning.message);
      }
      if (const std::string modes = policy::describe_modes(*snapshot); modes != modes_before) {
        log::warn("policy mode changed: {} -> {}", modes_before, modes);  // audit lets denials through
      }
      std::vector<SessionId> ids;
      ids.reserve(sessions_.size());
      for (const auto& [id, session] : sessions_) ids.push_back(id);
      for (SessionId id : ids) {  // a re-check may retire the session, so look each one up again
        if (Session* session = find(id); session != nullptr) session->recheck(snapshot);
      }
      break;
    }
    case policy::ReloadResult::Kind::Unchanged:
      log::debug("policy unchanged: hash={}", result.hash);
      break;
    case policy::ReloadResult::Kind::Rejected:
      ++reloads_rejected_;
      log::error("policy rejected ({} since start), keeping hash={}: {}", reloads_rejected_, result.hash,
                 result.errors.empty() ? std::string("unknown error") : result.errors.front().to_string());
      for (size_t i = 1; i < result.errors.size(); ++i)
        log::error("policy: {}", result.errors[i].to_string());
      break;
  }
  if (reload_observer_ != nullptr) reload_observer_->on_reload_finished(result, *policies_.current());
}

void Server::stop() {
  if (stopping_) return;
  stopping_ = true;
  policy_reload_.stop();  // a load in flight finishes on its worker; its result is dropped
  listener_.close();
  if (metrics_server_) metrics_server_->stop();
  std::vector<SessionId> ids;
  for (const auto& [id, session] : sessions_) ids.push_back(id);
  for (SessionId id : ids) {
    if (Session* session = find(id); session != nullptr) session->stop();
  }
  // Sessions retire themselves in stop(); the reaper frees them, then closes itself.
  if (retired_.empty()) reaper_.close();
}

}  // namespace egressd::proxy

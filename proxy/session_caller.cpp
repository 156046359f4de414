// Session: who the caller is (procid's answer) and whether its executable may connect: a binary's sha256
// pin or the digest trusted on first use, hashed on the thread pool.
#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "common/log.h"
#include "proxy/server.h"
#include "proxy/session.h"

namespace egressd::proxy {

void Session::on_identified(Result<procid::PeerIdentity, procid::LookupError> result) {
  if (phase_ == Phase::Closed || identity_) return;
  server_.metrics().identification(static_cast<double>(uv_hrtime() - accepted_ns_) / 1e9, result.has_value());
  if (result) {
    log::debug("[S{}] caller {}({}) uid {} inode {}", id_, result->exe, result->pid, result->uid,
               result->socket_inode);
  } else {
    log::debug("[S{}] caller unknown: {}", id_, result.error().detail);
  }
  identity_.emplace(std::move(result));
  if (phase_ == Phase::Identifying) decide_and_go();
}

const procid::PeerIdentity* Session::caller() const {
  return identity_ && identity_->has_value() ? &identity_->value() : nullptr;
}

std::string Session::caller_text() const {
  const auto* who = caller();
  return who == nullptr ? std::string("?") : fmt::format("{}({})", who->exe, who->pid);
}

namespace {

// The binary entry that lets the caller through: the allowing one, or in audit mode the entry of the
// rule the would-be denial is attributed to (audit relaxes the policy, never a pin). Null for neither.
const policy::BinaryPattern* letting_binary(const policy::Decision& decision) {
  return decision.audited ? decision.audit_binary : decision.binary;
}

}  // namespace

bool Session::digest_needed(const policy::Decision& decision) const {
  const policy::BinaryPattern* binary = letting_binary(decision);
  return (binary != nullptr && !binary->sha256.empty()) || server_.trusted_digests() != nullptr;
}

std::optional<std::string> Session::digest_refusal(const policy::Decision& decision) {
  const std::string& exe = identity_->value().exe;
  const std::string& actual = *exe_sha256_;
  if (const policy::BinaryPattern* binary = letting_binary(decision);
      binary != nullptr && !binary->sha256.empty()) {
    if (actual == binary->sha256) return std::nullopt;
    const policy::Rule* rule = decision.audited ? decision.audit_rule : decision.rule;
    return fmt::format("binary '{}' has sha256 {}, but policy '{}' pins sha256 {} for it ({}:{})", exe,
                       actual, rule->name, binary->sha256, binary->where.file, binary->where.line);
  }
  TrustedDigests* trusted = server_.trusted_digests();
  if (trusted == nullptr) return std::nullopt;
  if (const auto recorded = trusted->recorded(exe)) {
    if (*recorded == actual) return std::nullopt;
    return fmt::format("binary '{}' has sha256 {}, but sha256 {} was trusted for it on first use ({})", exe,
                       actual, *recorded, trusted->path());
  }
  if (exe.find('\n') != std::string::npos)
    return std::string("an executable path with a newline cannot be trusted");
  if (!trusted->record(exe, actual)) {
    log::error("cannot append to {}: {}", trusted->path(), std::strerror(errno));
  }
  log::info("[S{}] trusting {} with sha256 {} from now on (first use)", id_, exe, actual);
  return std::nullopt;
}

void Session::on_digest(Result<ExeDigest, std::string> result) {
  if (phase_ != Phase::Verifying) return;
  const auto& who = identity_->value();
  if (!result) {
    return deny(fmt::format("cannot verify {}: {}", who.exe, result.error()), {}, "deny",
                DenyKind::BinaryDigest);
  }
  const auto holder = std::find_if(who.holders.begin(), who.holders.end(),
                                   [&who](const procid::PeerProcess& p) { return p.pid == who.pid; });
  if (holder == who.holders.end() || holder->start_time != result->start_time) {
    return deny(fmt::format("process {} is no longer {} (its pid was reused before the executable could be "
                            "verified)",
                            who.pid, who.exe),
                {}, "deny", DenyKind::PidReused);
  }
  log::debug("[S{}] {} has sha256 {} ({})", id_, who.exe, result->sha256,
             result->cached ? "cached" : "hashed");
  exe_sha256_ = std::move(result->sha256);
  decide_and_go();
}

}  // namespace egressd::proxy

#include "proxy/decision_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "common/log.h"
#include "proxy/json_text.h"

namespace egressd::proxy {
namespace {

std::string now_rfc3339() {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", utc, static_cast<int>(ms.count()));
}

}  // namespace

std::string format_decision(const DecisionRecord& r) {
  JsonObject json;
  json.field(field::kTime, now_rfc3339())
      .field(field::kEvent, r.event)
      .field(field::kSession, static_cast<int64_t>(r.session))
      .field(field::kClient, r.client);
  if (r.caller != nullptr) {
    json.field(field::kBinary, r.caller->exe)
        .field(field::kPid, static_cast<int64_t>(r.caller->pid))
        .field(field::kUid, static_cast<int64_t>(r.caller->uid))
        .field(field::kAncestors, r.caller->ancestors);
  } else {
    json.null_field(field::kBinary).null_field(field::kPid).null_field(field::kUid);
    json.field(field::kAncestors, std::vector<std::string>{});
  }
  json.field(field::kMethod, r.method).field(field::kHost, r.host).field(field::kPort, int64_t{r.port});
  if (!r.url.empty()) json.field(field::kUrl, r.url);
  if (r.event == "allow" || !r.rule.empty()) json.field(field::kRule, r.rule);
  if (!r.http_rule.empty()) json.field(field::kHttpRule, r.http_rule);
  if (r.event != "allow") json.field(field::kRulesConsidered, r.rules_considered);
  if (!r.redirect_chain_json.empty()) json.raw_field(field::kRedirectedBy, r.redirect_chain_json);
  if (!r.engine.empty()) json.field(field::kEngine, r.engine).field(field::kAddresses, r.addresses);
  json.field(field::kReason, r.reason).field(field::kPolicyHash, r.policy_hash);
  return json.str();
}

DecisionLog::~DecisionLog() {
  if (fd_ >= 0) ::close(fd_);
}

Result<void, std::string> DecisionLog::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return unexpected(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  path_ = path;
  return {};
}

void DecisionLog::write(const DecisionRecord& record) {
  if (fd_ < 0) return;
  std::string line = format_decision(record);
  line.push_back('\n');
  // One write(2) per line on an O_APPEND file: lines never interleave, and a short write is reported.
  const ssize_t n = ::write(fd_, line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) {
    log::error("decision log {}: write failed: {}", path_, n < 0 ? std::strerror(errno) : "short write");
  }
}

}  // namespace egressd::proxy

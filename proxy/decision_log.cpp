#include "proxy/decision_log.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <string_view>
#include <utility>

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
  if (r.event == "allow" && r.rule.empty() && r.would_deny) {
    json.null_field(field::kRule);  // only the policy's mode let it through, no rule
  } else if (r.event == "allow" || !r.rule.empty()) {
    json.field(field::kRule, r.rule);
  }
  if (!r.http_rule.empty()) json.field(field::kHttpRule, r.http_rule);
  if (r.event != "allow") json.field(field::kRulesConsidered, r.rules_considered);
  if (!r.redirect_chain_json.empty()) json.raw_field(field::kRedirectedBy, r.redirect_chain_json);
  if (!r.engine.empty()) json.field(field::kEngine, r.engine).field(field::kAddresses, r.addresses);
  json.field(field::kReason, r.reason);
  if (r.would_deny) json.raw_field(field::kWouldDeny, "true").field(field::kMode, "audit");
  json.field(field::kPolicyHash, r.policy_hash);
  return json.str();
}

std::optional<DropReport::Report> DropReport::dropped(Clock::time_point now) {
  ++total_;
  ++unreported_;
  ++since_resumed_;
  if (last_report_ && now - *last_report_ < kReportInterval) return std::nullopt;
  last_report_ = now;
  const Report report{std::exchange(unreported_, 0), !outage_reported_};
  outage_reported_ = true;
  return report;
}

std::optional<uint64_t> DropReport::written() {
  if (since_resumed_ == 0) return std::nullopt;
  if (!outage_reported_) return std::nullopt;  // a drop the rate limit kept quiet: stay quiet
  outage_reported_ = false;
  unreported_ = 0;  // counted in the line the caller logs now
  return std::exchange(since_resumed_, 0);
}

DecisionLog::~DecisionLog() = default;

namespace {

struct OpenedFile {
  UniqueFd fd;
  dev_t dev = 0;
  ino_t ino = 0;
  bool socket = false;
};

// The descriptor a path such as /dev/stdout or /proc/self/fd/2 names, or -1 for any other path.
int standard_stream_fd(const std::string& path) {
  if (path == "/dev/stdout") return STDOUT_FILENO;
  if (path == "/dev/stderr") return STDERR_FILENO;
  for (const std::string_view prefix : {"/dev/fd/", "/proc/self/fd/"}) {
    if (!path.starts_with(prefix)) continue;
    int fd = -1;
    const char* digits = path.data() + prefix.size();
    const auto [end, ec] = std::from_chars(digits, path.data() + path.size(), fd);
    if (ec == std::errc() && end == path.data() + path.size() && fd >= 0) return fd;
  }
  return -1;
}

// O_NONBLOCK: a FIFO or pipe whose reader is slow must not stall the loop; when it is full the line is
// dropped (EAGAIN) like any other failed write. It changes nothing for a regular file. A standard stream
// that is a socket (systemd's StandardOutput=journal) cannot be opened by path (ENXIO): its descriptor is
// duplicated instead, and written with send(MSG_DONTWAIT), which does not block either.
Result<OpenedFile, std::string> open_for_append(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0640));
  if (!fd && errno == ENXIO) {
    struct stat st {};
    if (const int stream = standard_stream_fd(path);
        stream >= 0 && ::fstat(stream, &st) == 0 && S_ISSOCK(st.st_mode)) {
      UniqueFd dup(::fcntl(stream, F_DUPFD_CLOEXEC, 3));
      if (!dup) return unexpected(fmt::format("cannot duplicate {}: {}", path, std::strerror(errno)));
      return OpenedFile{std::move(dup), st.st_dev, st.st_ino, true};
    }
    errno = ENXIO;
  }
  if (!fd) return unexpected(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return unexpected(fmt::format("cannot stat {}: {}", path, std::strerror(errno)));
  return OpenedFile{std::move(fd), st.st_dev, st.st_ino};
}

std::string plural(uint64_t n, std::string_view noun) {
  return fmt::format("{} {}{}", n, noun, n == 1 ? "" : "s");
}

}  // namespace

Result<void, std::string> DecisionLog::open(const std::string& path) {
  auto opened = open_for_append(path);
  if (!opened) return unexpected(std::move(opened).error());
  fd_ = std::move(opened->fd);
  socket_ = opened->socket;
  dev_ = opened->dev;
  ino_ = opened->ino;
  path_ = path;
  line_cut_ = false;  // a fresh file, or one we cannot know the end of
  return {};
}

Result<void, std::string> DecisionLog::reopen() {
  if (!fd_) return {};
  return open(path_);  // the old file is closed only once the new one is open
}

// One stat(2) per line, to notice a rename (logrotate's default "create" mode) or an rm without being
// told. It is cheap next to the decision being logged (no I/O once the path is in the dentry cache).
void DecisionLog::follow_path() {
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0) {
    if (st.st_dev == dev_ && st.st_ino == ino_) return;
  } else if (errno != ENOENT && errno != ENOTDIR) {
    return;  // cannot tell (EACCES, ...): keep the file we have
  }
  if (auto reopened = open(path_); !reopened) {
    const auto now = DropReport::Clock::now();
    if (now >= next_reopen_warning_) {
      next_reopen_warning_ = now + DropReport::kReportInterval;
      log::warn("{} {} was moved or removed and cannot be reopened ({}); still writing to the old file",
                name_, path_, reopened.error());
    }
    return;
  }
  log::info("{} {} was moved or removed; reopened", name_, path_);
}

void DecisionLog::write(const DecisionRecord& record) {
  if (!fd_) return;
  follow_path();
  std::string line = format_decision(record);
  line.push_back('\n');
  if (line_cut_) line.insert(line.begin(), '\n');
  append(line);
}

// A line that cannot be written whole is dropped, never retried or queued: the decision it records has
// been made and answered already, and must not wait for (or be changed by) the disk.
void DecisionLog::append(const std::string& line) {
  // One write(2) per line on an O_APPEND file: lines never interleave, and a short write is seen.
  ssize_t n = 0;
  do {
    n = socket_ ? ::send(fd_.get(), line.data(), line.size(), MSG_DONTWAIT | MSG_NOSIGNAL)
                : ::write(fd_.get(), line.data(), line.size());
  } while (n < 0 && errno == EINTR);
  const int write_errno = errno;
  if (n == static_cast<ssize_t>(line.size())) {
    line_cut_ = false;
    if (auto resumed = drops_.written()) {
      log::info("{} {}: writing again after {}", name_, path_, plural(*resumed, "dropped line"));
    }
    return;
  }
  if (n > 0) {
    // Disk full mid-line: take the fragment back out so the file stays one JSON object per line. When
    // that fails too, the next line starts with a newline instead, leaving one unparsable line.
    struct stat st {};
    const bool removed = ::fstat(fd_.get(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= n &&
                         ::ftruncate(fd_.get(), st.st_size - n) == 0;
    if (!removed) line_cut_ = true;
  }
  const std::string why =
      n < 0 ? std::strerror(write_errno) : fmt::format("short write ({} of {} bytes)", n, line.size());
  const auto report = drops_.dropped(DropReport::Clock::now());
  if (!report) return;
  if (report->outage_start) {
    log::error(
        "{} {}: write failed: {}; dropped {}, and will drop lines until it can be written again "
        "(reported at most every {} s)",
        name_, path_, why, plural(report->lines, "line"),
        std::chrono::duration_cast<std::chrono::seconds>(DropReport::kReportInterval).count());
  } else {
    log::error("{} {}: write failed: {}; dropped {} more since the last report", name_, path_, why,
               plural(report->lines, "line"));
  }
}

}  // namespace egressd::proxy

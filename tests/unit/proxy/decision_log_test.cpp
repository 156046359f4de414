// DecisionLog on real files: it follows its path across a rename or an rm, reopens on request, and
// drops (and counts) what it cannot write without blocking. DropReport's rate limit, as a table of times.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <string>

#include "common/unique_fd.h"
#include "proxy/decision_log.h"
#include "tests/support/json.h"
#include "tests/support/temp_dir.h"

using namespace egressd;
using namespace std::chrono_literals;
using proxy::DecisionLog;
using proxy::DecisionRecord;
using proxy::DropReport;
using test::Json;
using test::read_complete_lines;
using test::TempDir;

namespace {

const DropReport::Clock::time_point kStart{};

DecisionRecord deny(uint64_t session) {
  DecisionRecord record;
  record.event = "deny";
  record.session = session;
  record.client = "127.0.0.1:40000";
  record.method = "CONNECT";
  record.host = "example.com";
  record.port = 443;
  record.reason = "endpoint example.com:443 is not allowed by any policy";
  record.policy_hash = "0123456789abcdef";
  return record;
}

// The "session" field of every line in `path`.
std::vector<int64_t> sessions_in(const std::string& path) {
  std::vector<int64_t> sessions;
  for (const std::string& line : read_complete_lines(path))
    sessions.push_back(Json::parse(line)["session"].integer());
  return sessions;
}

}  // namespace

TEST_CASE("DropReport reports the first dropped line at once, then at most every 10 s with the count since") {
  DropReport report;
  const auto first = report.dropped(kStart);
  REQUIRE(first.has_value());
  CHECK(first->lines == 1);
  CHECK(first->outage_start);
  CHECK_FALSE(report.dropped(kStart + 1s).has_value());
  CHECK_FALSE(report.dropped(kStart + 9s).has_value());
  CHECK_FALSE(report.dropped(kStart + 9999ms).has_value());
  const auto second = report.dropped(kStart + 10s);
  REQUIRE(second.has_value());
  CHECK(second->lines == 4);  // 1s, 9s, 9.999s and this one
  CHECK_FALSE(second->outage_start);
  CHECK_FALSE(report.dropped(kStart + 19s).has_value());
  CHECK(report.total() == 6);
}

TEST_CASE("DropReport says once that writing resumed, counting every line dropped in the outage") {
  DropReport report;
  CHECK_FALSE(report.written().has_value());  // nothing was dropped
  REQUIRE(report.dropped(kStart).has_value());
  CHECK_FALSE(report.dropped(kStart + 1s).has_value());
  CHECK_FALSE(report.dropped(kStart + 2s).has_value());
  const auto resumed = report.written();
  REQUIRE(resumed.has_value());
  CHECK(*resumed == 3);
  CHECK_FALSE(report.written().has_value());  // once
  CHECK(report.total() == 3);
}

TEST_CASE("DropReport stays quiet for drops its rate limit held back, and counts them in the next report") {
  DropReport report;
  REQUIRE(report.dropped(kStart).has_value());
  REQUIRE(report.written() == std::optional<uint64_t>(1));
  CHECK_FALSE(report.dropped(kStart + 3s).has_value());  // within 10 s of the last report
  CHECK_FALSE(report.written().has_value());             // nobody was told it stopped
  const auto next = report.dropped(kStart + 12s);
  REQUIRE(next.has_value());
  CHECK(next->lines == 2);
  CHECK(next->outage_start);
  CHECK(report.written() == std::optional<uint64_t>(2));
  CHECK(report.total() == 3);
}

TEST_CASE("a decision log whose file was renamed away writes the next line to a new file at its path") {
  const TempDir dir;
  const std::string path = dir.file("deny.log");
  DecisionLog log("deny log");
  REQUIRE(log.open(path));
  log.write(deny(1));
  REQUIRE(std::rename(path.c_str(), dir.file("deny.log.1").c_str()) == 0);  // logrotate's "create" mode
  log.write(deny(2));
  CHECK(sessions_in(path) == std::vector<int64_t>{2});
  CHECK(sessions_in(dir.file("deny.log.1")) == std::vector<int64_t>{1});
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777 & ~0640) == 0);  // 0640 less the umask, as at start
  CHECK(log.dropped_lines() == 0);
}

TEST_CASE("a decision log whose file was removed creates it again for the next line") {
  const TempDir dir;
  const std::string path = dir.file("deny.log");
  DecisionLog log("deny log");
  REQUIRE(log.open(path));
  log.write(deny(1));
  REQUIRE(::unlink(path.c_str()) == 0);
  log.write(deny(2));
  log.write(deny(3));
  CHECK(sessions_in(path) == std::vector<int64_t>{2, 3});
}

TEST_CASE("reopen() creates the file at its path at once, before any line, and later lines go there") {
  const TempDir dir;
  const std::string path = dir.file("access.log");
  DecisionLog log("access log");
  REQUIRE(log.open(path));
  log.write(deny(1));
  REQUIRE(std::rename(path.c_str(), dir.file("access.log.1").c_str()) == 0);
  REQUIRE(log.reopen());
  CHECK(test::file_exists(path));
  CHECK(read_complete_lines(path).empty());
  log.write(deny(2));
  CHECK(sessions_in(path) == std::vector<int64_t>{2});
  CHECK(sessions_in(dir.file("access.log.1")) == std::vector<int64_t>{1});
}

TEST_CASE("a decision log on a full device drops and counts every line, and stays open") {
  DecisionLog log("deny log");
  REQUIRE(log.open("/dev/full"));
  for (uint64_t session = 1; session <= 5; ++session) log.write(deny(session));
  CHECK(log.dropped_lines() == 5);
  CHECK(log.is_open());
}

TEST_CASE("a line cut short by a full file is taken back out, so the next line starts clean" *
          doctest::timeout(60)) {
  const TempDir dir;
  const std::string path = dir.file("deny.log");
  DecisionLog log("deny log");
  REQUIRE(log.open(path));
  log.write(deny(1));
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  // RLIMIT_FSIZE makes write(2) stop 40 bytes into the next line, as a full disk does. In a child, so
  // that the limit never touches the test runner's own output.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::signal(SIGXFSZ, SIG_IGN);  // EFBIG, not death, past the limit
    rlimit limit{};
    ::getrlimit(RLIMIT_FSIZE, &limit);
    const rlim_t unlimited = limit.rlim_cur;
    limit.rlim_cur = static_cast<rlim_t>(st.st_size) + 40;
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(2);
    log.write(deny(2));
    const bool dropped = log.dropped_lines() == 1;
    limit.rlim_cur = unlimited;
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(2);
    log.write(deny(3));
    ::_exit(dropped && log.dropped_lines() == 1 ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(sessions_in(path) == std::vector<int64_t>{1, 3});
}

TEST_CASE("a decision log on a FIFO nobody drains drops lines instead of blocking, then writes again" *
          doctest::timeout(60)) {
  const TempDir dir;
  const std::string path = dir.file("deny.fifo");
  REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
  const UniqueFd reader(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  REQUIRE(reader);
  DecisionLog log("deny log");
  REQUIRE(log.open(path));
  uint64_t written = 0;
  while (log.dropped_lines() == 0 && written < 100'000) log.write(deny(++written));  // until the pipe is full
  REQUIRE(log.dropped_lines() == 1);
  log.write(deny(++written));
  CHECK(log.dropped_lines() == 2);

  char buffer[4096];
  while (::read(reader.get(), buffer, sizeof buffer) > 0) {
  }
  log.write(deny(++written));
  CHECK(log.dropped_lines() == 2);
  const ssize_t n = ::read(reader.get(), buffer, sizeof buffer);
  REQUIRE(n > 0);
  const std::string line(buffer, static_cast<size_t>(n));
  CHECK(line.ends_with("\n"));
  CHECK(Json::parse(line.substr(0, line.size() - 1))["session"].integer() == static_cast<int64_t>(written));
}

TEST_CASE("a would-be denial's line keeps every field of its denial and adds would_deny and mode") {
  DecisionRecord denied = deny(7);
  denied.rules_considered = {"github"};
  DecisionRecord audited = denied;
  audited.event = "audit";
  audited.rule = "learning";
  audited.would_deny = true;
  const Json plain = Json::parse(proxy::format_decision(denied));
  const Json line = Json::parse(proxy::format_decision(audited));
  CHECK_FALSE(plain.has("would_deny"));
  CHECK_FALSE(plain.has("mode"));
  CHECK(line["event"] == "audit");
  CHECK(line["would_deny"].boolean());
  CHECK(line["mode"] == "audit");
  CHECK(line["rule"] == "learning");
  for (const std::string& key : plain.keys()) {
    CAPTURE(key);
    CHECK(line.has(key));
  }
}

TEST_CASE("an access-log line audit mode let through is marked, with a null rule when no rule did") {
  DecisionRecord allowed = deny(8);
  allowed.event = "allow";
  allowed.would_deny = true;
  const Json line = Json::parse(proxy::format_decision(allowed));
  CHECK(line["event"] == "allow");
  CHECK(line["would_deny"].boolean());
  CHECK(line["mode"] == "audit");
  CHECK(line["rule"].is_null());
  allowed.would_deny = false;
  allowed.rule = "github";
  const Json plain = Json::parse(proxy::format_decision(allowed));
  CHECK(plain["rule"] == "github");
  CHECK_FALSE(plain.has("would_deny"));
}

TEST_CASE("a standard stream that is a socket (the journal's) is written through its descriptor") {
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  const UniqueFd ours(pair[0]);
  const UniqueFd journal(pair[1]);
  const std::string path = "/dev/fd/" + std::to_string(ours.get());
  CHECK(::open(path.c_str(), O_WRONLY | O_APPEND) < 0);  // what opening it by path gives: ENXIO
  CHECK(errno == ENXIO);
  proxy::DecisionLog log("deny log");
  REQUIRE(log.open(path));
  proxy::DecisionRecord record;
  record.event = "deny";
  record.reason = "through the socket";
  log.write(record);
  log.write(record);
  char buffer[4096];
  std::string received;
  while (std::count(received.begin(), received.end(), '\n') < 2) {
    const ssize_t n = ::recv(journal.get(), buffer, sizeof buffer, 0);
    REQUIRE(n > 0);
    received.append(buffer, static_cast<size_t>(n));
  }
  const auto first = Json::parse(received.substr(0, received.find('\n')));
  CHECK(first["reason"] == "through the socket");
  CHECK(log.dropped_lines() == 0);
}

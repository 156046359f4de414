// Identity integrity: a binary entry may pin the executable's SHA-256, and --trust-on-first-use records
// each allowed binary's digest and denies it once the file at that path hashes differently. Hashing
// runs on the thread pool, once per binary version: other connections never wait for it.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <string>

#include "tests/e2e/scenario.h"
#include "tests/support/local_origin.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace egressd::test::e2e {
namespace {

std::string sha256_of(const std::string& path) {
  const RunResult result = run({"sha256sum", path}, {.timeout = std::chrono::seconds(60)});
  REQUIRE(result.exit_code == 0);
  return result.out.substr(0, 64);
}

std::string pinned_policy(const std::string& binary, const std::string& sha256, uint16_t port) {
  return "version: 1\nnetwork_policies:\n  pinned:\n    endpoints:\n      - { host: 127.0.0.1, port: " +
         std::to_string(port) + " }\n    binaries:\n      - { path: \"" + binary + "\", sha256: \"" + sha256 +
         "\" }\n";
}

std::string fetch(const std::string& client, const Egressd& egressd, const LocalOrigin& origin) {
  return run({client, "-q", "-sS", "--proxy", egressd.url(), origin.url("/hello")}).out;
}

TEST_CASE("a sha256 pin lets the binary with that digest through and denies it naming both digests" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  const std::string actual = sha256_of(curl());
  {
    Egressd egressd(pinned_policy(curl(), actual, origin.port()));
    INFO(egressd.diagnostics());
    CHECK(fetch(curl(), egressd, origin) == "hello\n");
  }
  const std::string wrong(64, '0');
  Egressd egressd(pinned_policy(curl(), wrong, origin.port()));
  INFO(egressd.diagnostics());
  const std::string denied = fetch(curl(), egressd, origin);
  const Json body = Json::parse(denied);
  CHECK(body["reason"].str().find("has sha256 " + actual) != std::string::npos);
  CHECK(body["reason"].str().find("pins sha256 " + wrong) != std::string::npos);
  CHECK(origin.connections_accepted() == 1);  // only the allowed run reached it
  REQUIRE(egressd.wait_for_deny_lines(1));
  CHECK(egressd.deny_log_lines().at(0)["binary"] == curl());
}

TEST_CASE("trust on first use records a binary's digest and denies it once the file at its path changes" *
          doctest::timeout(60)) {
  LocalOrigin origin = LocalOrigin::http();
  const TempDir dir;
  const std::string tool = copy_executable(curl(), dir, "fetcher");
  const std::string state = dir.file("state");
  const std::vector<std::string> args = {"--trust-on-first-use", "--state-dir", state};
  const std::string policy = policy_allowing(tool, "127.0.0.1", origin.port());
  const std::string first = sha256_of(tool);
  {
    Egressd egressd(policy, args);
    INFO(egressd.diagnostics());
    CHECK(fetch(tool, egressd, origin) == "hello\n");
    CHECK(fetch(tool, egressd, origin) == "hello\n");
    std::ifstream record(state + "/binary-digests.sha256");
    std::string line;
    std::getline(record, line);
    CHECK(line == first + "  " + tool);
  }
  // The same path, other contents (a byte appended: still the same program, a different file).
  std::ofstream(tool, std::ios::app | std::ios::binary) << '\n';
  const std::string second = sha256_of(tool);
  Egressd egressd(policy, args);  // a restart keeps what was trusted
  INFO(egressd.diagnostics());
  const Json body = Json::parse(fetch(tool, egressd, origin));
  CHECK(body["reason"].str().find("has sha256 " + second + ", but sha256 " + first +
                                  " was trusted for it on first use") != std::string::npos);
  CHECK(origin.connections_accepted() == 2);
}

TEST_CASE("hashing a 1 GiB binary holds back only its own connection: another client is served meanwhile" *
          doctest::timeout(120)) {
  LocalOrigin origin = LocalOrigin::http();
  const TempDir dir;
  const std::string big = copy_executable(curl(), dir, "big-curl");
  {
    const int fd = ::open(big.c_str(), O_WRONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, off_t{1} << 30) == 0);  // trailing zeros: an ELF runs with them
    ::close(fd);
  }
  const std::string pin = sha256_of(big);
  std::string policy = pinned_policy(big, pin, origin.port());
  policy += "  plain:\n    endpoints:\n      - { host: 127.0.0.1, port: " + std::to_string(origin.port()) +
            " }\n    binaries:\n      - { path: \"" + curl() + "\" }\n";
  Egressd egressd(policy, {"--log-level", "debug"});
  INFO(egressd.diagnostics());
  Child slow({big, "-q", "-sS", "--proxy", egressd.url(), origin.url("/hello")});
  REQUIRE(egressd.wait_for_stderr("verifying the executable of " + big, std::chrono::seconds(20)));
  CHECK(fetch(curl(), egressd, origin) == "hello\n");  // while the big one is being hashed
  REQUIRE(slow.wait(std::chrono::seconds(60)) == 0);
  CHECK(slow.out() == "hello\n");
  REQUIRE(egressd.wait_for_access_lines(2));
  const auto lines = egressd.access_log_lines();
  CHECK(lines.at(0)["binary"] == curl());  // served first, though it asked second
  CHECK(lines.at(1)["binary"] == big);
  // The second run of the big binary is the cache's: no second read of the gigabyte.
  CHECK(fetch(big, egressd, origin) == "hello\n");
  CHECK(egressd.stderr_count(big + " has sha256 " + pin + " (hashed)") == 1);
  CHECK(egressd.stderr_count(big + " has sha256 " + pin + " (cached)") == 1);
}

// The caller: connects, sends a CONNECT, prints its pid, then waits on a FIFO; once the test writes to it,
// hands the socket to the holder over a Unix socket and exits.
constexpr const char* kHandOver = R"PY(
import os, socket, sys
proxy_port, target, unix_path, fifo = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
c = socket.create_connection(("127.0.0.1", proxy_port))
c.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
print(os.getpid(), flush=True)
with open(fifo) as f:
    f.read()
u = socket.socket(socket.AF_UNIX)
u.connect(unix_path)
socket.send_fds(u, [b"x"], [c.fileno()])
u.close()
)PY";

// The holder: receives the socket and prints everything egressd answers on it until it closes.
constexpr const char* kHolder = R"PY(
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(1)
print("ready", flush=True)
conn, _ = s.accept()
_, fds, _, _ = socket.recv_fds(conn, 1, 1)
c = socket.socket(fileno=fds[0])
c.settimeout(60)
data = b""
while True:
    chunk = c.recv(65536)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode(errors="replace"))
)PY";

TEST_CASE("a pid reused while its executable is hashed is denied: the start time is checked again" *
          doctest::timeout(120)) {
  // The caller runs a copy of python padded to 1 GiB (sparse: hashing it takes a second or more,
  // reading it costs no disk). While egressd hashes it, the caller hands its socket to another process and
  // exits, and the test makes a new process take its pid (through ns_last_pid). The hash is of the right
  // file, so only the start-time check after hashing can tell the pid now names someone else.
  LocalOrigin origin = LocalOrigin::http();
  const TempDir dir;
  const std::string big = copy_executable(real_path_of("/usr/bin/python3"), dir, "big-python");
  {
    const int fd = ::open(big.c_str(), O_WRONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, off_t{1} << 30) == 0);
    ::close(fd);
  }
  const std::string fifo = dir.file("go");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const std::string unix_path = dir.file("holder.sock");
  Egressd egressd(policy_allowing(big, "127.0.0.1", origin.port()),
                  {"--trust-on-first-use", "--log-level", "debug"});
  INFO(egressd.diagnostics());
  Child holder({"/usr/bin/python3", "-c", kHolder, unix_path});
  REQUIRE(wait_for([&] { return holder.out() == "ready\n" || !holder.running(); }, 10s));
  Child caller({big, "-c", kHandOver, std::to_string(egressd.port()),
                "127.0.0.1:" + std::to_string(origin.port()), unix_path, fifo},
               {.env = {"PYTHONHOME=/usr"}});
  REQUIRE(egressd.wait_for_stderr("verifying the executable of " + big, 20s));
  const pid_t reused = caller.pid();
  REQUIRE(caller.out() == std::to_string(reused) + "\n");
  write_file(fifo, "go\n");
  REQUIRE(caller.wait(10s) == 0);  // reaped: its pid is free

  // Spawn until a process gets the caller's pid: other processes may take it first.
  std::optional<Child> successor;
  for (int attempt = 0; attempt < 100 && !successor; ++attempt) {
    write_file("/proc/sys/kernel/ns_last_pid", std::to_string(reused - 1));
    Child candidate({"sleep", "60"});
    if (candidate.pid() == reused) successor.emplace(std::move(candidate));
  }
  REQUIRE_MESSAGE(successor.has_value(), "no process got pid " << reused);
  CHECK(egressd.stderr_count("(hashed)") == 0);  // still hashing: the reuse happened inside the window

  REQUIRE(holder.wait(60s) == 0);
  const std::string answer = holder.out().substr(std::string_view("ready\n").size());
  INFO("holder: " << answer << holder.err());
  CHECK(answer.starts_with("HTTP/1.1 403"));
  CHECK(answer.find("process " + std::to_string(reused) + " is no longer") != std::string::npos);
  CHECK(origin.connections_accepted() == 0);
  REQUIRE(egressd.wait_for_deny_lines(1));
  CHECK(egressd.deny_log_lines().at(0)["reason"].str().find("pid was reused") != std::string::npos);
}

}  // namespace
}  // namespace egressd::test::e2e

#include "tests/support/process.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

extern char** environ;

namespace egressd::test {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void fail_errno(const std::string& what, int error) {
  throw std::runtime_error(what + ": " + std::strerror(error));
}

// Writing a child's stdin after it exited must be an EPIPE, not the end of the test binary.
void ignore_sigpipe_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action {};
    action.sa_handler = SIG_IGN;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGPIPE, &action, nullptr);
  });
}

// What a developer's shell may set to route clients or choose whom they trust: a test says both itself.
bool is_proxy_or_trust_variable(std::string_view entry) {
  static constexpr std::string_view kTrust[] = {
      "curl_ca_bundle",     "git_ssl_cainfo",      "git_ssl_capath", "ssl_cert_file",     "ssl_cert_dir",
      "requests_ca_bundle", "node_extra_ca_certs", "pip_cert",       "npm_config_cafile", "wgetrc"};
  const size_t eq = entry.find('=');
  std::string name(entry.substr(0, eq));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return (name.size() > 6 && name.ends_with("_proxy")) || std::ranges::find(kTrust, name) != std::end(kTrust);
}

std::vector<std::string> child_environment(const std::vector<std::string>& additions) {
  std::vector<std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    if (!is_proxy_or_trust_variable(*entry)) env.emplace_back(*entry);
  }
  for (const std::string& addition : additions) {
    const std::string key = addition.substr(0, addition.find('=') + 1);
    std::erase_if(env, [&](const std::string& e) { return e.starts_with(key); });
    env.push_back(addition);
  }
  return env;
}

std::string find_in_path(std::string_view program) {
  if (program.find('/') != std::string_view::npos) return std::string(program);
  const char* path_env = ::getenv("PATH");
  const std::string path = path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) dir = ".";
    const std::string candidate = dir + "/" + std::string(program);
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    start = end + 1;
  }
  throw std::runtime_error("program not found in PATH: " + std::string(program));
}

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

Pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) fail_errno("pipe2", errno);
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

UniqueFd open_or_throw(const std::string& path, int flags) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC, 0644));
  if (!fd.valid()) fail_errno("open " + path, errno);
  return fd;
}

struct SpawnSpec {
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string working_dir;
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
};

// fork + execve. Everything the child needs is prepared before fork(): between fork and exec a
// multi-threaded process may only make async-signal-safe calls.
pid_t spawn(const SpawnSpec& spec) {
  if (spec.argv.empty()) throw std::runtime_error("spawn: empty argv");
  ignore_sigpipe_once();
  const std::string program = find_in_path(spec.argv[0]);
  std::vector<char*> argv;
  for (const std::string& arg : spec.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const std::vector<std::string> env_strings = child_environment(spec.env);
  std::vector<char*> envp;
  for (const std::string& entry : env_strings) envp.push_back(const_cast<char*>(entry.c_str()));
  envp.push_back(nullptr);
  const char* working_dir = spec.working_dir.empty() ? nullptr : spec.working_dir.c_str();
  Pipe exec_error = make_pipe();  // CLOEXEC: closes on a successful exec, carries errno otherwise
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) fail_errno("fork", errno);
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::setpgid(0, 0);
    struct sigaction action {};
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGPIPE, &action, nullptr);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int error = 0;
    if (::dup2(spec.stdin_fd, 0) < 0 || ::dup2(spec.stdout_fd, 1) < 0 || ::dup2(spec.stderr_fd, 2) < 0) {
      error = errno;
    } else if (working_dir != nullptr && ::chdir(working_dir) != 0) {
      error = errno;
    } else {
      ::execve(program.c_str(), argv.data(), envp.data());
      error = errno;
    }
    [[maybe_unused]] ssize_t ignored = ::write(exec_error.write.get(), &error, sizeof error);
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also here, so a kill(-pid) right after spawn() reaches it (may race: ignored)
  exec_error.write.reset();
  int error = 0;
  ssize_t n;
  do {
    n = ::read(exec_error.read.get(), &error, sizeof error);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof error)) {
    ::waitpid(pid, nullptr, 0);
    throw std::runtime_error("cannot execute " + program + ": " + std::strerror(error));
  }
  return pid;
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -1;
}

// True once `pid` has exited; it stays a zombie (WNOWAIT), so its process-group id cannot be reused yet.
bool has_exited(pid_t pid) {
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) return false;
  return info.si_pid == pid;
}

// SIGKILLs whatever is left in the child's process group (strays, or the child itself), then reaps the
// child: the group id is still reserved by the unreaped child while we kill it.
int kill_group_and_reap(pid_t pid) {
  ::kill(-pid, SIGKILL);
  int raw = 0;
  while (::waitpid(pid, &raw, 0) < 0 && errno == EINTR) {
  }
  return decode_status(raw);
}

UniqueFd open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  const long fd = ::syscall(SYS_pidfd_open, pid, 0);
  if (fd >= 0) {
    ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
    return UniqueFd(static_cast<int>(fd));
  }
#endif
  (void)pid;
  return UniqueFd();
}

int remaining_ms(Clock::time_point until) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

void read_into(int fd, std::string& sink, bool& open) {
  char buffer[65536];
  const ssize_t n = ::read(fd, buffer, sizeof buffer);
  if (n > 0) {
    sink.append(buffer, static_cast<size_t>(n));
  } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    open = false;
  }
}

}  // namespace

RunResult run(std::vector<std::string> argv, RunOptions options) {
  Pipe in = make_pipe();
  Pipe out = make_pipe();
  Pipe err = make_pipe();
  SpawnSpec spec{std::move(argv), std::move(options.env), std::move(options.working_dir),
                 in.read.get(),   out.write.get(),        err.write.get()};
  RunResult result;
  result.pid = spawn(spec);
  in.read.reset();
  out.write.reset();
  err.write.reset();
  ::fcntl(in.write.get(), F_SETFL, O_NONBLOCK);  // a large stdin must not block while output piles up
  UniqueFd pidfd = open_pidfd(result.pid);

  const auto until = Clock::now() + options.timeout;
  size_t stdin_written = 0;
  if (options.stdin_text.empty()) in.write.reset();
  bool out_open = true;
  bool err_open = true;
  bool exited = false;
  while ((out_open || err_open || !exited) && !result.timed_out) {
    std::array<pollfd, 4> fds{};
    nfds_t count = 0;
    int out_index = -1, err_index = -1, in_index = -1;
    if (out_open) fds[out_index = static_cast<int>(count++)] = {out.read.get(), POLLIN, 0};
    if (err_open) fds[err_index = static_cast<int>(count++)] = {err.read.get(), POLLIN, 0};
    if (in.write.valid()) fds[in_index = static_cast<int>(count++)] = {in.write.get(), POLLOUT, 0};
    if (!exited && pidfd.valid()) fds[count++] = {pidfd.get(), POLLIN, 0};
    // Without a pidfd the exit is noticed by polling waitid every 10 ms.
    const int wait_ms = (!exited && !pidfd.valid()) ? std::min(10, remaining_ms(until)) : remaining_ms(until);
    const int ready = ::poll(fds.data(), count, wait_ms);
    if (ready < 0 && errno != EINTR) fail_errno("poll", errno);
    if (out_index >= 0 && fds[out_index].revents != 0) read_into(out.read.get(), result.out, out_open);
    if (err_index >= 0 && fds[err_index].revents != 0) read_into(err.read.get(), result.err, err_open);
    if (in_index >= 0 && fds[in_index].revents != 0) {
      const ssize_t n = ::write(in.write.get(), options.stdin_text.data() + stdin_written,
                                options.stdin_text.size() - stdin_written);
      if (n > 0) stdin_written += static_cast<size_t>(n);
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || stdin_written == options.stdin_text.size()) {
        in.write.reset();
      }
    }
    if (!exited) exited = has_exited(result.pid);
    if ((out_open || err_open || !exited) && Clock::now() >= until) result.timed_out = true;
  }
  result.exit_code = kill_group_and_reap(result.pid);
  return result;
}

Child::Child(std::vector<std::string> argv, ChildOptions options)
    : stdout_path_(std::move(options.stdout_path)), stderr_path_(std::move(options.stderr_path)) {
  if (stdout_path_.empty() || stderr_path_.empty()) {
    output_dir_.emplace();
    if (stdout_path_.empty()) stdout_path_ = output_dir_->file("stdout");
    if (stderr_path_.empty()) stderr_path_ = output_dir_->file("stderr");
  }
  UniqueFd in = open_or_throw("/dev/null", O_RDONLY);
  UniqueFd out = open_or_throw(stdout_path_, O_WRONLY | O_CREAT | O_TRUNC);
  UniqueFd err = open_or_throw(stderr_path_, O_WRONLY | O_CREAT | O_TRUNC);
  pid_ = spawn(SpawnSpec{std::move(argv), std::move(options.env), std::move(options.working_dir), in.get(),
                         out.get(), err.get()});
  pidfd_ = open_pidfd(pid_);
}

Child::Child(Child&& other) noexcept
    : output_dir_(std::move(other.output_dir_)),
      stdout_path_(std::move(other.stdout_path_)),
      stderr_path_(std::move(other.stderr_path_)),
      pid_(std::exchange(other.pid_, 0)),
      pidfd_(std::move(other.pidfd_)),
      exit_code_(other.exit_code_) {}

Child::~Child() {
  if (pid_ > 0 && !exit_code_) kill_and_reap();
}

bool Child::reap_if_exited() {
  if (exit_code_) return true;
  if (pid_ <= 0) return true;
  if (!has_exited(pid_)) return false;
  exit_code_ = kill_group_and_reap(pid_);
  return true;
}

bool Child::running() {
  return !reap_if_exited();
}

std::optional<int> Child::wait(std::chrono::milliseconds deadline) {
  const auto until = Clock::now() + deadline;
  while (!reap_if_exited()) {
    const int left = remaining_ms(until);
    if (left == 0) return std::nullopt;
    if (pidfd_.valid()) {
      pollfd fd{pidfd_.get(), POLLIN, 0};
      ::poll(&fd, 1, left);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(10, left)));
    }
  }
  return exit_code_;
}

void Child::signal(int sig) {
  if (pid_ > 0 && !exit_code_) ::kill(pid_, sig);
}

int Child::kill_and_reap() {
  if (pid_ <= 0) return -1;
  if (!exit_code_) {
    ::kill(pid_, SIGKILL);  // in case it left the group we made for it
    exit_code_ = kill_group_and_reap(pid_);
  }
  return *exit_code_;
}

std::string Child::out() const {
  return try_read_file(stdout_path_).value_or("");
}
std::string Child::err() const {
  return try_read_file(stderr_path_).value_or("");
}

std::vector<std::string> as_user(uid_t uid, gid_t gid, std::vector<std::string> argv,
                                 const std::vector<std::string>& capabilities) {
  std::string caps = "-all";
  for (const std::string& capability : capabilities) caps += ",+" + capability;
  std::vector<std::string> prefix = {"setpriv",
                                     "--reuid=" + std::to_string(uid),
                                     "--regid=" + std::to_string(gid),
                                     "--clear-groups",
                                     "--bounding-set=" + caps,
                                     "--inh-caps=" + caps,
                                     "--ambient-caps=" + caps,
                                     "--no-new-privs",
                                     "--pdeathsig=KILL",
                                     "--"};
  argv.insert(argv.begin(), prefix.begin(), prefix.end());
  return argv;
}

std::string real_path_of(std::string_view program) {
  const std::string found = find_in_path(program);
  char resolved[PATH_MAX];
  if (::realpath(found.c_str(), resolved) == nullptr) fail_errno("realpath " + found, errno);
  return resolved;
}

std::string copy_executable(const std::string& path, const TempDir& dir, std::string name) {
  const std::string target = dir.file(name);
  write_file(target, read_file(path));
  if (::chmod(target.c_str(), 0755) != 0) fail_errno("chmod " + target, errno);
  return target;
}

}  // namespace egressd::test

#include "tests/support/egressd.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "tests/support/wait.h"

namespace egressd::test {
namespace {

std::string& registered_binary() {
  static std::string path;
  return path;
}

std::string configmap_version_dir(int version) {
  return "..2026_v" + std::to_string(version);
}

[[noreturn]] void fail_errno(const std::string& what, int error) {
  throw std::runtime_error(what + ": " + std::strerror(error));
}

size_t count_occurrences(std::string_view text, std::string_view needle) {
  if (needle.empty()) return 0;
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string_view::npos;
       at = text.find(needle, at + needle.size())) {
    ++count;
  }
  return count;
}

}  // namespace

bool detail::set_egressd_binary(const char* path) {
  registered_binary() = path;
  return true;
}

std::string egressd_binary() {
  if (const char* from_env = ::getenv("EGRESSD_BINARY"); from_env != nullptr && *from_env != '\0') {
    return from_env;
  }
  if (registered_binary().empty()) {
    throw std::runtime_error("egressd binary unknown: set EGRESSD_BINARY (e2e_tests is built with it)");
  }
  return registered_binary();
}

Egressd::Egressd(const std::string& policy_yaml, std::vector<std::string> extra_args, PolicyLayout layout,
                 std::chrono::milliseconds ready_deadline, EgressdNetwork network,
                 std::optional<EgressdUser> user, std::vector<std::string> env)
    : deny_log_path_(dir_.file("deny.log")),
      access_log_path_(dir_.file("access.log")),
      ready_path_(dir_.file("ready")),
      stderr_path_(dir_.file("egressd.stderr")),
      network_(network) {
  switch (layout) {
    case PolicyLayout::File:
      policy_path_ = dir_.file("policy.yaml");
      write_file(policy_path_, policy_yaml);
      break;
    case PolicyLayout::ConfigMap: {
      const std::string config = dir_.file("config");
      const std::string version = configmap_version_dir(configmap_version_);
      std::filesystem::create_directories(config + "/" + version);
      write_file(config + "/" + version + "/policy.yaml", policy_yaml);
      std::filesystem::create_directory_symlink(version, config + "/..data");
      policy_path_ = config + "/policy.yaml";
      std::filesystem::create_symlink("..data/policy.yaml", policy_path_);
      break;
    }
  }

  std::vector<std::string> argv;
  if (network == EgressdNetwork::Isolated) {
    // unshare and sh exec in place: the child's pid stays egressd's.
    argv = {"unshare", "--net", "--", "sh", "-c", "ip link set lo up && exec \"$@\"", "sh"};
  }
  const std::vector<std::string> egressd_argv = {
      egressd_binary(), "run",        "--listen",     "127.0.0.1:0",     "--policy",
      policy_path_,     "--deny-log", deny_log_path_, "--access-log",    access_log_path_,
      "--ready-file",   ready_path_,  "--state-dir",  dir_.file("state")};
  std::vector<std::string> command = egressd_argv;
  command.insert(command.end(), extra_args.begin(), extra_args.end());
  if (user) {
    if (::chown(dir_.path().c_str(), user->uid, user->gid) != 0) fail_errno("chown " + dir_.path(), errno);
    command = as_user(user->uid, user->gid, std::move(command), user->capabilities);
  }
  argv.insert(argv.end(), command.begin(), command.end());
  child_.emplace(argv, ChildOptions{.env = std::move(env),
                                    .working_dir = dir_.path(),
                                    .stdout_path = dir_.file("egressd.stdout"),
                                    .stderr_path = stderr_path_});

  std::string ready;
  const bool is_ready = wait_for(
      [&] {
        ready = try_read_file(ready_path_).value_or("");
        return ready.ends_with('\n') || !child_->running();
      },
      ready_deadline);
  const size_t colon = ready.rfind(':');
  if (!is_ready || !ready.ends_with('\n') || colon == std::string::npos) {
    const std::optional<int> exit_code = child_->exit_code();
    const int killed = child_->kill_and_reap();
    throw std::runtime_error(
        "egressd did not become ready (" +
        (exit_code ? "exit code " + std::to_string(*exit_code) : "killed: " + std::to_string(killed)) +
        ", ready file '" + ready + "'); stderr:\n" + stderr_text());
  }
  port_ = static_cast<uint16_t>(std::stoul(ready.substr(colon + 1)));
}

Egressd::~Egressd() {
  stop();
}

std::vector<std::string> Egressd::in_network(std::vector<std::string> argv) const {
  if (network_ == EgressdNetwork::Host) return argv;
  argv.insert(argv.begin(), {"nsenter", "--net=/proc/" + std::to_string(pid()) + "/ns/net", "--"});
  return argv;
}

void Egressd::write_policy_in_place(const std::string& yaml) {
  write_file(policy_path_, yaml);
}

void Egressd::write_policy_by_rename(const std::string& yaml) {
  write_file_by_rename(policy_path_, yaml);
}

void Egressd::swap_policy_symlink(const std::string& yaml) {
  const std::string config = dir_.file("config");
  if (!file_exists(config + "/..data"))
    throw std::runtime_error("swap_policy_symlink needs PolicyLayout::ConfigMap");
  const std::string old_version = configmap_version_dir(configmap_version_);
  const std::string new_version = configmap_version_dir(++configmap_version_);
  std::filesystem::create_directory(config + "/" + new_version);
  write_file(config + "/" + new_version + "/policy.yaml", yaml);
  std::filesystem::create_directory_symlink(new_version, config + "/..data_tmp");
  if (::rename((config + "/..data_tmp").c_str(), (config + "/..data").c_str()) != 0) {
    fail_errno("rename ..data_tmp over ..data", errno);
  }
  std::filesystem::remove_all(config + "/" + old_version);
}

void Egressd::sighup() {
  child_->signal(SIGHUP);
}

std::string Egressd::stderr_text() const {
  return try_read_file(stderr_path_).value_or("");
}

size_t Egressd::stderr_count(std::string_view text) const {
  return count_occurrences(stderr_text(), text);
}

bool Egressd::wait_for_stderr(std::string_view text, std::chrono::milliseconds deadline) {
  return wait_for_stderr_count(text, 1, deadline);
}

bool Egressd::wait_for_stderr_count(std::string_view text, size_t count, std::chrono::milliseconds deadline) {
  return wait_for([&] { return stderr_count(text) >= count; }, deadline);
}

std::vector<Json> Egressd::deny_log_lines() const {
  return parse_json_lines(read_complete_lines(deny_log_path_));
}

std::vector<Json> Egressd::access_log_lines() const {
  return parse_json_lines(read_complete_lines(access_log_path_));
}

bool Egressd::wait_for_deny_lines(size_t count, std::chrono::milliseconds deadline) {
  return wait_for([&] { return read_complete_lines(deny_log_path_).size() >= count; }, deadline);
}

bool Egressd::wait_for_access_lines(size_t count, std::chrono::milliseconds deadline) {
  return wait_for([&] { return read_complete_lines(access_log_path_).size() >= count; }, deadline);
}

std::string Egressd::diagnostics() const {
  return "--- egressd stderr:\n" + stderr_text() + "--- deny log:\n" +
         try_read_file(deny_log_path_).value_or("") + "--- access log:\n" +
         try_read_file(access_log_path_).value_or("");
}

int Egressd::stop(int sig, std::chrono::milliseconds grace) {
  if (!child_) return -1;
  if (const std::optional<int> code = child_->exit_code()) return *code;
  child_->signal(sig);
  if (const std::optional<int> code = child_->wait(grace)) return *code;
  return child_->kill_and_reap();
}

}  // namespace egressd::test

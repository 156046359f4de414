// policy/lint.h's checks against this host: binaries that exist (stat), and where the policy path leads
// (realpath, readlink).
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "policy/lint.h"

namespace egressd::policy {
namespace {

std::string in_quotes(std::string_view text) {
  return "'" + std::string(text) + "'";
}

// The literal start of a glob, up to its first '*'.
std::string_view glob_prefix(std::string_view glob) {
  return glob.substr(0, glob.find('*'));
}

struct HostCheck {
  bool usable = false;       // the entry can match an executable on this host
  std::string problem;       // when not usable: what is wrong, as a clause
  bool missing = false;      // it (or the glob's directory) does not exist, rather than being unusable
  std::string could_create;  // when missing: who other than root could create it, as a clause
  bool unknown = false;      // could not be checked (permissions)
};

std::string mode_text(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// "staff (gid 50)", or "gid 50" when the group has no name here.
std::string group_text(gid_t gid) {
  std::vector<char> buffer(16384);
  struct group entry {};
  struct group* found = nullptr;
  const bool named = ::getgrgid_r(gid, &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr;
  return named ? std::string(found->gr_name) + " (gid " + std::to_string(gid) + ")"
               : "gid " + std::to_string(gid);
}

// "alice (uid 1000)", or "uid 1000".
std::string user_text(uid_t uid) {
  std::vector<char> buffer(16384);
  struct passwd entry {};
  struct passwd* found = nullptr;
  const bool named = ::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr;
  return named ? std::string(found->pw_name) + " (uid " + std::to_string(uid) + ")"
               : "uid " + std::to_string(uid);
}

// Who other than root could create something at `path`, which does not exist: judged on the nearest
// directory on its way that does.
std::string who_could_create(const std::string& path) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  while (true) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) return {};
      if ((st.st_mode & S_IWOTH) != 0) {
        return dir.string() + " is writable by everyone (mode " + mode_text(st.st_mode) + ")";
      }
      if ((st.st_mode & S_IWGRP) != 0 && st.st_gid != 0) {
        return dir.string() + " is writable by group " + group_text(st.st_gid) + " (mode " +
               mode_text(st.st_mode) + ")";
      }
      if (st.st_uid != 0) return dir.string() + " belongs to " + user_text(st.st_uid);
      return {};
    }
    if (!dir.has_parent_path() || dir.parent_path() == dir) return {};
    dir = dir.parent_path();
  }
}

HostCheck check_exact(const BinaryPattern& binary) {
  HostCheck check;
  struct stat st {};
  if (::stat(binary.path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      check.problem = "is a directory, not an executable";
    } else if (!S_ISREG(st.st_mode)) {
      check.problem = "is not a regular file";
    } else if ((st.st_mode & 0111) == 0) {
      check.problem = "is not executable (mode " + mode_text(st.st_mode) + "), so no process runs it";
    } else {
      check.usable = true;
    }
    return check;
  }
  if (errno != ENOENT && errno != ENOTDIR) {
    check.unknown = true;
    check.problem = std::string("cannot be checked: ") + std::strerror(errno);
    return check;
  }
  check.missing = true;
  char target[PATH_MAX];
  struct stat link {};
  if (::lstat(binary.path.c_str(), &link) == 0 && S_ISLNK(link.st_mode)) {
    const ssize_t n = ::readlink(binary.path.c_str(), target, sizeof target - 1);
    check.problem = "is a symlink to " +
                    (n > 0 ? std::string(target, static_cast<std::size_t>(n)) : std::string("a target")) +
                    ", which does not exist on this host";
  } else {
    check.problem = "does not exist on this host";
  }
  check.could_create = who_could_create(binary.path);
  return check;
}

// A glob needs the directory before its first wildcard ("/opt/tools" for "/opt/tools/*/bin/psql").
HostCheck check_glob(const BinaryPattern& binary) {
  HostCheck check;
  const std::string_view prefix = glob_prefix(binary.path);
  const std::size_t slash = prefix.rfind('/');
  const std::string dir =
      slash == 0 || slash == std::string_view::npos ? "/" : std::string(prefix.substr(0, slash));
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      check.usable = true;
    } else {
      check.problem = "needs the directory " + dir + ", which is not a directory on this host";
    }
    return check;
  }
  if (errno != ENOENT && errno != ENOTDIR) {
    check.unknown = true;
    check.problem = "cannot be checked: " + dir + ": " + std::strerror(errno);
    return check;
  }
  check.missing = true;
  check.problem = "needs the directory " + dir + ", which does not exist on this host";
  check.could_create = who_could_create(dir);
  return check;
}

}  // namespace

std::vector<LintFinding> lint_binaries_on_host(const Policy& policy) {
  std::vector<LintFinding> findings;
  for (const Rule& rule : policy.rules) {
    std::vector<HostCheck> checks;
    for (const BinaryPattern& binary : rule.binaries) {
      checks.push_back(binary.is_glob ? check_glob(binary) : check_exact(binary));
    }
    const bool any_usable =
        std::any_of(checks.begin(), checks.end(), [](const HostCheck& check) { return check.usable; });
    for (std::size_t i = 0; i < checks.size(); ++i) {
      const HostCheck& check = checks[i];
      const BinaryPattern& binary = rule.binaries[i];
      if (check.usable) continue;
      std::string message = "binary " + in_quotes(binary.path) + " " + check.problem;
      if (check.unknown) {
        findings.push_back({LintLevel::Note, binary.where, std::move(message)});
      } else if (!check.missing) {
        findings.push_back({LintLevel::Warning, binary.where, std::move(message)});
      } else if (!check.could_create.empty()) {
        message += ", and not only root could create it: " + check.could_create +
                   "; whoever does gets rule " + in_quotes(rule.name) + "'s access";
        findings.push_back({LintLevel::Warning, binary.where, std::move(message)});
      } else if (any_usable) {
        message += "; this entry matches nothing here (fine if the policy is shared with hosts that have it)";
        findings.push_back({LintLevel::Note, binary.where, std::move(message)});
      } else {
        message +=
            "; no binary of rule " + in_quotes(rule.name) + " exists here, so it allows nothing on this host";
        findings.push_back({LintLevel::Warning, binary.where, std::move(message)});
      }
    }
  }
  return findings;
}

std::optional<LintFinding> lint_policy_path(const std::string& path) {
  if (path.empty()) return std::nullopt;
  std::error_code error;
  const std::filesystem::path absolute = std::filesystem::absolute(path, error).lexically_normal();
  if (error) return std::nullopt;
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr) return std::nullopt;  // the loader says why
  const std::string target = resolved;
  if (target == absolute.string()) return std::nullopt;
  const SourceLocation where{path, 0, 0};
  struct stat link {};
  char text[PATH_MAX];
  if (::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode)) {
    const ssize_t n = ::readlink(path.c_str(), text, sizeof text - 1);
    const std::string link_text = n > 0 ? std::string(text, static_cast<std::size_t>(n)) : std::string();
    if (link_text.starts_with("..data/")) {
      return LintFinding{LintLevel::Note, where,
                         "the policy path is a Kubernetes ConfigMap mount (-> " + link_text + ", now " +
                             target + "); egressd follows it and reloads when ..data is swapped"};
    }
  }
  return LintFinding{LintLevel::Warning, where,
                     "the policy path is, or goes through, a symlink and resolves to " + target +
                         ": egressd enforces what that file says, so whoever can change it, or the link, "
                         "changes the policy"};
}

}  // namespace egressd::policy

#include "procid/identify.h"

#include <algorithm>
#include <string>
#include <utility>

#include "procid/holders.h"
#include "procid/socket_inode.h"

namespace egressd::procid {
namespace {

// What "the same executable" means between holders: the path and whether the image behind it is the
// deleted one (an old image and the new file at the same path are different programs).
bool same_executable(const PeerProcess& a, const PeerProcess& b) {
  return a.exe == b.exe && a.exe_deleted == b.exe_deleted;
}

std::string quoted_exe(const PeerProcess& process) {
  return "'" + process.exe + (process.exe_deleted ? " (deleted)" : "") + "'";
}

LookupError ambiguous(uint64_t socket_inode, const std::vector<PeerProcess>& holders) {
  std::string pids;
  std::string exes;
  std::vector<const PeerProcess*> distinct;
  for (const PeerProcess& holder : holders) {
    pids += (pids.empty() ? "" : ", ") + std::to_string(holder.pid);
    const bool seen = std::any_of(distinct.begin(), distinct.end(),
                                  [&](const PeerProcess* other) { return same_executable(*other, holder); });
    if (!seen) {
      distinct.push_back(&holder);
      exes += (exes.empty() ? "" : ", ") + quoted_exe(holder);
    }
  }
  LookupError error;
  error.stage = LookupError::Stage::Ambiguous;
  error.detail = "ambiguous socket ownership: inode " + std::to_string(socket_inode) + " is held by pids [" +
                 pids + "] running different executables [" + exes + "]";
  return error;
}

// Ancestor exes found in every holder's chain, in the first holder's order (nearest first), each once.
std::vector<std::string> common_ancestors(const std::vector<PeerProcess>& holders) {
  const auto in_chain = [](const std::vector<Ancestor>& chain, const std::string& exe) {
    return std::any_of(chain.begin(), chain.end(), [&](const Ancestor& a) { return a.exe == exe; });
  };
  std::vector<std::string> common;
  for (const Ancestor& ancestor : holders.front().ancestors) {
    if (ancestor.exe.empty() || std::find(common.begin(), common.end(), ancestor.exe) != common.end())
      continue;
    const bool everywhere = std::all_of(holders.begin() + 1, holders.end(), [&](const PeerProcess& holder) {
      return in_chain(holder.ancestors, ancestor.exe);
    });
    if (everywhere) common.push_back(ancestor.exe);
  }
  return common;
}

}  // namespace

std::string LookupError::message() const {
  return "caller unknown: " + detail;
}

Result<PeerIdentity, LookupError> identity_from_holders(uint64_t socket_inode, uid_t socket_uid,
                                                        std::vector<PeerProcess> holders) {
  if (holders.empty()) {
    LookupError error;
    error.stage = LookupError::Stage::NoHolder;
    error.detail = "no process holds socket inode " + std::to_string(socket_inode) +
                   " (the client exited or passed the descriptor on)";
    return unexpected(std::move(error));
  }
  std::sort(holders.begin(), holders.end(),
            [](const PeerProcess& a, const PeerProcess& b) { return a.pid < b.pid; });
  const bool one_executable = std::all_of(holders.begin() + 1, holders.end(), [&](const PeerProcess& holder) {
    return same_executable(holder, holders.front());
  });
  if (!one_executable) return unexpected(ambiguous(socket_inode, holders));

  // The holder that started first most likely made the connection; the others inherited it.
  const auto first_started =
      std::min_element(holders.begin(), holders.end(), [](const auto& a, const auto& b) {
        return a.start_time != b.start_time ? a.start_time < b.start_time : a.pid < b.pid;
      });
  PeerIdentity identity;
  identity.exe = holders.front().exe;
  identity.pid = first_started->pid;
  identity.uid = socket_uid;
  identity.socket_inode = socket_inode;
  identity.ancestors = common_ancestors(holders);
  identity.holders = std::move(holders);
  return identity;
}

Result<PeerIdentity, LookupError> identify_peer(const TcpTuple& tuple) {
  const auto socket = find_client_socket(tuple);
  if (!socket) return unexpected(socket.error());
  auto holders = find_holders(socket->inode);
  if (!holders) return unexpected(std::move(holders).error());
  return identity_from_holders(socket->inode, socket->uid, std::move(*holders));
}

std::vector<Result<PeerIdentity, LookupError>> identify_peers(std::span<const TcpTuple> tuples) {
  std::vector<Result<PeerIdentity, LookupError>> answers(tuples.size(), unexpected(LookupError{}));
  std::vector<size_t> scanned;  // indexes of the tuples whose socket was found
  std::vector<uint64_t> inodes;
  std::vector<uid_t> uids;
  for (size_t i = 0; i < tuples.size(); ++i) {
    const auto socket = find_client_socket(tuples[i]);
    if (!socket) {
      answers[i] = unexpected(socket.error());
      continue;
    }
    scanned.push_back(i);
    inodes.push_back(socket->inode);
    uids.push_back(socket->uid);
  }
  if (inodes.empty()) return answers;
  auto holders = find_holders_of(inodes);
  for (size_t k = 0; k < scanned.size(); ++k) {
    auto& answer = answers[scanned[k]];
    if (!holders[k]) {
      answer = unexpected(std::move(holders[k]).error());
    } else {
      answer = identity_from_holders(inodes[k], uids[k], std::move(*holders[k]));
    }
  }
  return answers;
}

}  // namespace egressd::procid

#include "procid/socket_inode.h"

#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <span>
#include <string>
#include <utility>

#include "common/log.h"
#include "procid/proc_fs.h"

namespace egressd::procid {
namespace {

// Linux's TCP states (include/net/tcp_states.h); userspace headers do not export all of them.
constexpr uint8_t kTcpTimeWait = 6;
constexpr uint8_t kTcpListen = 10;

std::string state_name(unsigned state) {
  static constexpr std::array<const char*, 14> kNames = {
      "0",     "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",    "TIME_WAIT",
      "CLOSE", "CLOSE_WAIT",  "LAST_ACK", "LISTEN",   "CLOSING",   "NEW_SYN_RECV", "BOUND_INACTIVE"};
  if (state > 0 && state < kNames.size()) return kNames[state];
  return "state " + std::to_string(state);
}

std::string endpoint(const IpAddress& ip, uint16_t port) {
  if (ip.family == 6) return "[" + ip.to_string() + "]:" + std::to_string(port);
  return ip.to_string() + ":" + std::to_string(port);
}

std::string connection(const TcpTuple& tuple) {
  return endpoint(tuple.client_ip, tuple.client_port) + " -> " + endpoint(tuple.proxy_ip, tuple.proxy_port);
}

size_t address_length(const IpAddress& ip) {
  return ip.family == 4 ? 4 : 16;
}

LookupError lookup_error(LookupError::Stage stage, int errno_value, std::string detail) {
  LookupError error;
  error.stage = stage;
  error.errno_value = errno_value;
  error.detail = std::move(detail);
  return error;
}

LookupError no_socket(const TcpTuple& tuple) {
  return lookup_error(LookupError::Stage::NoSocket, ENOENT,
                      "no TCP socket " + connection(tuple) + " (the client may have closed it)");
}

LookupError netlink_failed(std::string_view call, int errno_value) {
  return lookup_error(LookupError::Stage::SocketLookup, errno_value,
                      "sock_diag " + std::string(call) + " failed: " + errno_text(errno_value));
}

// Both ends are plain IPv4 or both IPv6 (IpAddress already turned v4-mapped into IPv4).
std::optional<LookupError> invalid_tuple(const TcpTuple& tuple) {
  const bool known_family = tuple.client_ip.family == 4 || tuple.client_ip.family == 6;
  if (known_family && tuple.client_ip.family == tuple.proxy_ip.family) return std::nullopt;
  return lookup_error(
      LookupError::Stage::SocketLookup, EINVAL,
      "cannot look up TCP socket " + connection(tuple) + ": the addresses are not of one family");
}

IpAddress address_from_diag(uint8_t family, const __be32 (&words)[4]) {
  if (family == AF_INET) {
    uint8_t bytes[4];
    std::memcpy(bytes, words, sizeof bytes);
    return IpAddress::v4(bytes);
  }
  uint8_t bytes[16];
  std::memcpy(bytes, words, sizeof bytes);
  return IpAddress::v6(bytes);  // normalizes a v4-mapped AF_INET6 socket to the v4 tuple
}

// Checks that the kernel answered for the client socket we asked about: inet_lookup() falls back to a
// listener on the client's address:port (procid.md §2b), and orphans / TIME_WAIT carry inode 0.
Result<ClientSocket, LookupError> accept_diag_reply(const inet_diag_msg& reply, const TcpTuple& tuple) {
  if (reply.idiag_family != AF_INET && reply.idiag_family != AF_INET6) {
    return unexpected(
        lookup_error(LookupError::Stage::SocketLookup, EPROTO,
                     "sock_diag answered with address family " + std::to_string(reply.idiag_family)));
  }
  const IpAddress src = address_from_diag(reply.idiag_family, reply.id.idiag_src);
  const IpAddress dst = address_from_diag(reply.idiag_family, reply.id.idiag_dst);
  const uint16_t sport = ntohs(reply.id.idiag_sport);
  const uint16_t dport = ntohs(reply.id.idiag_dport);
  if (reply.idiag_state == kTcpListen) {
    LookupError error = no_socket(tuple);
    error.detail = "no TCP socket " + connection(tuple) + ": the kernel offered the listening socket on " +
                   endpoint(src, sport) + " instead";
    return unexpected(std::move(error));
  }
  if (src != tuple.client_ip || sport != tuple.client_port || dst != tuple.proxy_ip ||
      dport != tuple.proxy_port) {
    LookupError error = no_socket(tuple);
    error.detail = "no TCP socket " + connection(tuple) + ": sock_diag answered for " + endpoint(src, sport) +
                   " -> " + endpoint(dst, dport) + " (" + state_name(reply.idiag_state) + ")";
    return unexpected(std::move(error));
  }
  if (reply.idiag_inode == 0) {
    LookupError error = no_socket(tuple);
    error.detail = "TCP socket " + connection(tuple) + " is in " + state_name(reply.idiag_state) +
                   " and no longer belongs to any process (the client closed it or exited)";
    return unexpected(std::move(error));
  }
  return ClientSocket{reply.idiag_inode, reply.idiag_uid};
}

bool parse_hex_u32(std::string_view text, uint32_t& value) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
  return ec == std::errc() && end == text.data() + text.size();
}

// "0100007F:1F90" (v4) or 32 hex digits ":PORT" (v6). The kernel prints each raw __be32 word with %08X,
// so copying the parsed host-order word back into memory restores the network byte order.
bool parse_proc_net_endpoint(std::string_view text, IpAddress& ip, uint16_t& port) {
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos) return false;
  const std::string_view hex_address = text.substr(0, colon);
  uint32_t port_value = 0;
  if (!parse_hex_u32(text.substr(colon + 1), port_value) || port_value > 0xffff) return false;
  port = static_cast<uint16_t>(port_value);
  if (hex_address.size() != 8 && hex_address.size() != 32) return false;
  uint8_t bytes[16] = {};
  for (size_t word = 0; word < hex_address.size() / 8; ++word) {
    uint32_t value = 0;
    if (!parse_hex_u32(hex_address.substr(word * 8, 8), value)) return false;
    std::memcpy(bytes + word * 4, &value, sizeof value);
  }
  if (hex_address.size() == 8) {
    const uint8_t v4_bytes[4] = {bytes[0], bytes[1], bytes[2], bytes[3]};
    ip = IpAddress::v4(v4_bytes);
  } else {
    ip = IpAddress::v6(bytes);
  }
  return true;
}

template <typename Number>
bool parse_decimal(std::string_view text, Number& value) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

// Splits on spaces; returns how many fields were stored (at most fields.size()).
size_t split_fields(std::string_view line, std::span<std::string_view> fields) {
  size_t count = 0;
  size_t pos = 0;
  while (count < fields.size()) {
    pos = line.find_first_not_of(' ', pos);
    if (pos == std::string_view::npos) break;
    const size_t end = std::min(line.find(' ', pos), line.size());
    fields[count++] = line.substr(pos, end - pos);
    pos = end;
  }
  return count;
}

// Reads one table; a table that does not exist (IPv6 disabled: no tcp6) holds no sockets.
Result<std::optional<ClientSocket>, LookupError> scan_table(const char* path, const TcpTuple& tuple) {
  auto text = read_file_at(AT_FDCWD, path);
  if (!text) {
    if (text.error() == ENOENT) return std::optional<ClientSocket>();
    return unexpected(lookup_error(LookupError::Stage::SocketLookup, text.error(),
                                   std::string("cannot read ") + path + ": " + errno_text(text.error())));
  }
  return parse_proc_net_tcp(*text, tuple);
}

}  // namespace

std::optional<ClientSocket> parse_proc_net_tcp(std::string_view table, const TcpTuple& tuple) {
  // "sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ..."
  enum Field {
    kSlot,
    kLocal,
    kRemote,
    kState,
    kQueues,
    kTimer,
    kRetransmits,
    kUid,
    kTimeout,
    kInode,
    kCount
  };
  size_t line_start = table.find('\n');  // the first line is the header
  while (line_start != std::string_view::npos && line_start < table.size()) {
    const size_t line_end = std::min(table.find('\n', line_start + 1), table.size());
    const std::string_view line = table.substr(line_start + 1, line_end - line_start - 1);
    line_start = line_end;

    std::array<std::string_view, kCount> fields;
    if (split_fields(line, fields) != kCount) continue;
    IpAddress local_ip, remote_ip;
    uint16_t local_port = 0, remote_port = 0;
    uint32_t state = 0;
    uid_t uid = 0;
    uint64_t inode = 0;
    if (!parse_proc_net_endpoint(fields[kLocal], local_ip, local_port) ||
        !parse_proc_net_endpoint(fields[kRemote], remote_ip, remote_port) ||
        !parse_hex_u32(fields[kState], state) || !parse_decimal(fields[kUid], uid) ||
        !parse_decimal(fields[kInode], inode)) {
      continue;
    }
    // Over loopback the proxy's own accepted socket is in the same table with the tuple reversed.
    if (local_ip != tuple.client_ip || local_port != tuple.client_port || remote_ip != tuple.proxy_ip ||
        remote_port != tuple.proxy_port) {
      continue;
    }
    if (state == kTcpListen || state == kTcpTimeWait || inode == 0) continue;
    return ClientSocket{inode, uid};
  }
  return std::nullopt;
}

Result<ClientSocket, LookupError> scan_proc_net_tcp(const TcpTuple& tuple) {
  if (auto invalid = invalid_tuple(tuple)) return unexpected(std::move(*invalid));
  // A v4 client may sit in tcp6 as an AF_INET6 socket connected to ::ffff:a.b.c.d (procid.md §2a).
  if (tuple.client_ip.family == 4) {
    auto v4_row = scan_table("/proc/net/tcp", tuple);
    if (!v4_row) return unexpected(std::move(v4_row).error());
    if (*v4_row) return **v4_row;
  }
  auto v6_row = scan_table("/proc/net/tcp6", tuple);
  if (!v6_row) return unexpected(std::move(v6_row).error());
  if (*v6_row) return **v6_row;
  return unexpected(no_socket(tuple));
}

Result<ClientSocket, LookupError> query_sock_diag(const TcpTuple& tuple) {
  if (auto invalid = invalid_tuple(tuple)) return unexpected(std::move(*invalid));
  // A fresh socket per call: no state shared between worker threads and no stale reply to mistake for ours.
  UniqueFd netlink(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!netlink) return unexpected(netlink_failed("socket", errno));
  // The kernel answers an exact request synchronously inside sendto(); the timeout only bounds a surprise.
  const timeval timeout{1, 0};
  if (::setsockopt(netlink.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0) {
    return unexpected(netlink_failed("setsockopt(SO_RCVTIMEO)", errno));
  }

  struct {
    nlmsghdr header;
    inet_diag_req_v2 body;
  } request{};
  static_assert(offsetof(decltype(request), body) == NLMSG_HDRLEN);
  constexpr uint32_t kSequence = 1;
  request.header.nlmsg_len = sizeof request;
  request.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  request.header.nlmsg_flags = NLM_F_REQUEST;  // no NLM_F_DUMP: a hash lookup, not a walk of every bucket
  request.header.nlmsg_seq = kSequence;
  // One AF_INET request also finds an AF_INET6 socket connected to ::ffff:a.b.c.d (procid.md §2b).
  request.body.sdiag_family = tuple.client_ip.family == 4 ? AF_INET : AF_INET6;
  request.body.sdiag_protocol = IPPROTO_TCP;
  request.body.idiag_states = ~0U;
  // The client socket's local side is the client; its remote side is egressd.
  request.body.id.idiag_sport = htons(tuple.client_port);
  request.body.id.idiag_dport = htons(tuple.proxy_port);
  std::memcpy(request.body.id.idiag_src, tuple.client_ip.bytes, address_length(tuple.client_ip));
  std::memcpy(request.body.id.idiag_dst, tuple.proxy_ip.bytes, address_length(tuple.proxy_ip));
  request.body.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  request.body.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  for (;;) {
    const ssize_t sent = ::sendto(netlink.get(), &request, sizeof request, 0,
                                  reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel);
    if (sent == static_cast<ssize_t>(sizeof request)) break;
    if (sent < 0 && errno == EINTR) continue;
    return unexpected(netlink_failed("sendto", sent < 0 ? errno : EMSGSIZE));
  }

  char reply[8192];
  for (;;) {
    const ssize_t received = ::recv(netlink.get(), reply, sizeof reply, MSG_TRUNC);
    if (received < 0) {
      if (errno == EINTR) continue;
      return unexpected(netlink_failed("recv", errno));
    }
    const size_t length = static_cast<size_t>(received);
    if (length > sizeof reply) return unexpected(netlink_failed("recv", EMSGSIZE));
    // Walked by hand rather than with NLMSG_OK/NLMSG_NEXT, whose signed/unsigned mix trips -Wsign-compare.
    for (size_t offset = 0; length - offset >= NLMSG_HDRLEN;) {
      nlmsghdr header;
      std::memcpy(&header, reply + offset, sizeof header);
      if (header.nlmsg_len < NLMSG_HDRLEN || header.nlmsg_len > length - offset) break;
      const char* payload = reply + offset + NLMSG_HDRLEN;
      const size_t payload_length = header.nlmsg_len - NLMSG_HDRLEN;
      offset += std::min<size_t>(NLMSG_ALIGN(header.nlmsg_len), length - offset);
      if (header.nlmsg_seq != kSequence) continue;
      if (header.nlmsg_type == NLMSG_ERROR) {
        nlmsgerr status;
        if (payload_length < sizeof status) return unexpected(netlink_failed("reply", EBADMSG));
        std::memcpy(&status, payload, sizeof status);
        if (status.error == -ENOENT) return unexpected(no_socket(tuple));
        return unexpected(netlink_failed("SOCK_DIAG_BY_FAMILY", status.error == 0 ? ENODATA : -status.error));
      }
      if (header.nlmsg_type == SOCK_DIAG_BY_FAMILY) {
        inet_diag_msg diag;
        if (payload_length < sizeof diag) return unexpected(netlink_failed("reply", EBADMSG));
        std::memcpy(&diag, payload, sizeof diag);
        return accept_diag_reply(diag, tuple);
      }
    }
  }
}

Result<ClientSocket, LookupError> find_client_socket(const TcpTuple& tuple) {
  if (auto invalid = invalid_tuple(tuple)) return unexpected(std::move(*invalid));
  auto from_diag = query_sock_diag(tuple);
  if (from_diag || from_diag.error().stage != LookupError::Stage::SocketLookup) return from_diag;
  log::debug("procid: {}; reading /proc/net/tcp instead", from_diag.error().detail);
  auto from_proc = scan_proc_net_tcp(tuple);
  if (from_proc || from_proc.error().stage != LookupError::Stage::SocketLookup) return from_proc;
  LookupError error = std::move(from_proc).error();
  error.detail = from_diag.error().detail + ", and " + error.detail;
  return unexpected(std::move(error));
}

}  // namespace egressd::procid

#include "tests/support/local_origin.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>

#include "tests/support/process.h"
#include "tests/support/server_stream.h"
#include "tests/support/tcp_server.h"
#include "tests/support/test_ca.h"

namespace egressd::test {
namespace {

constexpr size_t kMaxHeadBytes = 1 << 20;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

std::string percent_decode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += text[i] == '+' ? ' ' : text[i];
    }
  }
  return out;
}

// The value of query parameter `name` in `target`, if present.
std::optional<std::string> query_param(std::string_view target, std::string_view name) {
  const size_t question = target.find('?');
  if (question == std::string_view::npos) return std::nullopt;
  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

size_t size_param(std::string_view target, std::string_view name, size_t fallback) {
  const std::optional<std::string> value = query_param(target, name);
  if (!value || value->empty()) return fallback;
  return static_cast<size_t>(std::stoull(*value));
}

char pattern_at(size_t i) {
  static constexpr char kAlphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  return kAlphabet[(i * 31 + (i >> 8) * 7 + (i >> 16)) % 62];
}

std::string pattern_slice(size_t offset, size_t length) {
  std::string out(length, '\0');
  for (size_t i = 0; i < length; ++i) out[i] = pattern_at(offset + i);
  return out;
}

// True if the comma-separated header value `list` holds `token` (case-insensitive), as Connection does.
bool has_token(std::string_view list, std::string_view token) {
  while (true) {
    const size_t comma = list.find(',');
    if (iequals(trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) return false;
    list.remove_prefix(comma + 1);
  }
}

// One chunk of a chunked body.
std::string chunk(std::string_view data) {
  char size_line[32];
  std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
  return size_line + std::string(data) + "\r\n";
}

const char* redirect_reason(int status) {
  switch (status) {
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    default:
      return nullptr;
  }
}

// How one request is answered: the response head follows the request (keep-alive, HEAD).
struct Reply {
  bool keep_alive;
  bool head_only;  // a HEAD request: the head a GET would get, without the body

  std::string operator()(int status, std::string_view reason, std::string_view content_type,
                         std::string_view body, std::string_view extra_headers = {}) const {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
    if (!content_type.empty()) out += "Content-Type: " + std::string(content_type) + "\r\n";
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    out += extra_headers;
    if (!keep_alive) out += "Connection: close\r\n";
    out += "\r\n";
    if (!head_only) out += body;
    return out;
  }
  // The head of a chunked 200 response; the caller sends the chunks.
  std::string chunked_head(std::string_view content_type, std::string_view extra_headers = {}) const {
    std::string out = "HTTP/1.1 200 OK\r\nContent-Type: " + std::string(content_type) + "\r\n";
    out += extra_headers;
    out += "Transfer-Encoding: chunked\r\n";
    if (!keep_alive) out += "Connection: close\r\n";
    return out + "\r\n";
  }
};

// Reads HTTP/1.1 requests off one connection. `buffer_` holds bytes received but not yet consumed.
class RequestReader {
 public:
  explicit RequestReader(ServerStream& io) : io_(io) {}

  // The next request head, or nothing at EOF / on a malformed head.
  std::optional<RecordedRequest> read_head() {
    size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (buffer_.size() > kMaxHeadBytes || !io_.read_some(buffer_)) return std::nullopt;
    }
    const std::string head = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    RecordedRequest request;
    size_t line_end = head.find("\r\n");
    const std::string_view request_line = std::string_view(head).substr(0, line_end);
    const size_t sp1 = request_line.find(' ');
    const size_t sp2 = request_line.rfind(' ');
    if (sp1 == std::string_view::npos || sp2 == sp1) return std::nullopt;
    request.method = request_line.substr(0, sp1);
    request.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    request.version = request_line.substr(sp2 + 1);
    while (line_end != std::string::npos) {
      const size_t start = line_end + 2;
      line_end = head.find("\r\n", start);
      const std::string_view line = std::string_view(head).substr(start, line_end - start);
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos) return std::nullopt;
      request.headers.emplace_back(std::string(line.substr(0, colon)),
                                   std::string(trim(line.substr(colon + 1))));
    }
    return request;
  }

  // Bytes received after the last request read (the start of an upgraded protocol's stream).
  std::string take_buffered() { return std::exchange(buffer_, {}); }

  // The body announced by the head (Content-Length or chunked); nothing if the connection ends first.
  std::optional<std::string> read_body(const RecordedRequest& request) {
    const std::optional<std::string> encoding = request.header("Transfer-Encoding");
    if (encoding && iequals(trim(*encoding), "chunked")) return read_chunked();
    const std::optional<std::string> length = request.header("Content-Length");
    if (!length) return std::string();
    const size_t size = static_cast<size_t>(std::stoull(*length));
    if (!fill(size)) return std::nullopt;
    std::string body = buffer_.substr(0, size);
    buffer_.erase(0, size);
    return body;
  }

 private:
  bool fill(size_t size) {
    while (buffer_.size() < size) {
      if (!io_.read_some(buffer_)) return false;
    }
    return true;
  }

  std::optional<std::string> read_line() {
    size_t end;
    while ((end = buffer_.find("\r\n")) == std::string::npos) {
      if (buffer_.size() > kMaxHeadBytes || !io_.read_some(buffer_)) return std::nullopt;
    }
    std::string line = buffer_.substr(0, end);
    buffer_.erase(0, end + 2);
    return line;
  }

  std::optional<std::string> read_chunked() {
    std::string body;
    while (true) {
      const std::optional<std::string> size_line = read_line();
      if (!size_line) return std::nullopt;
      const size_t size =
          static_cast<size_t>(std::stoull(size_line->substr(0, size_line->find(';')), nullptr, 16));
      if (size == 0) break;
      if (!fill(size + 2)) return std::nullopt;
      body.append(buffer_, 0, size);
      buffer_.erase(0, size + 2);  // data and its CRLF
    }
    while (true) {  // trailers, up to the empty line
      const std::optional<std::string> trailer = read_line();
      if (!trailer) return std::nullopt;
      if (trailer->empty()) return body;
    }
  }

  ServerStream& io_;
  std::string buffer_;
};

}  // namespace

std::optional<std::string> RecordedRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) return value;
  }
  return std::nullopt;
}

std::string RecordedRequest::head_text() const {
  std::string text = method + " " + target + " " + version + "\n";
  for (const auto& [key, value] : headers) text += key + ": " + value + "\n";
  return text;
}

struct LocalOrigin::State {
  State(const std::string& address, std::string body, const ServerCert* cert)
      : hello_body(std::move(body)),
        tls(cert ? std::make_unique<TlsServerConfig>(*cert) : nullptr),
        server(address, [this](ServerConnection& io) { serve(io); }) {}
  ~State() {
    {
      std::lock_guard lock(mutex);
      stopping = true;
    }
    released_cv.notify_all();
    server.stop();
  }

  void serve(ServerConnection& io);
  void serve_http(ServerConnection& io, ServerStream& stream, const std::string& sni);
  bool send_slow(ServerConnection& io, ServerStream& stream, const std::string& target, const Reply& reply);
  bool send_events(ServerConnection& io, ServerStream& stream, const std::string& target, const Reply& reply);
  static void serve_upgrade(ServerStream& stream, RequestReader& reader, const std::string& protocol);
  static std::string serve_git(const std::string& project_root, const RecordedRequest& request,
                               const std::string& body, const Reply& reply);
  std::string git_project_root() const {
    std::lock_guard lock(mutex);
    return git_root;
  }
  void record(RecordedRequest request) {
    std::lock_guard lock(mutex);
    recorded.push_back(std::move(request));
  }

  const std::string hello_body;
  const std::unique_ptr<TlsServerConfig> tls;  // null: plain HTTP
  std::atomic<size_t> slow_sent{0};
  mutable std::mutex mutex;
  std::condition_variable released_cv;
  bool holds_released = false;            // guarded by mutex
  bool stopping = false;                  // guarded by mutex
  std::string git_root;                   // guarded by mutex; empty: no /git/ routes
  std::vector<RecordedRequest> recorded;  // guarded by mutex
  TcpServer server;                       // last: its threads use the members above, and it is stopped first
};

void LocalOrigin::State::serve(ServerConnection& io) {
  if (!tls) {
    PlainServerStream stream(io);
    serve_http(io, stream, {});
    return;
  }
  TlsServerStream stream(io, *tls);
  if (!stream.handshake()) return;
  serve_http(io, stream, stream.sni());
  stream.finish();
}

void LocalOrigin::State::serve_http(ServerConnection& io, ServerStream& stream, const std::string& sni) {
  RequestReader reader(stream);
  while (true) {
    std::optional<RecordedRequest> request = reader.read_head();
    if (!request) return;
    request->connection = io.index();
    request->sni = sni;
    const std::optional<std::string> expect = request->header("Expect");
    if (expect && iequals(*expect, "100-continue") && !stream.send_all("HTTP/1.1 100 Continue\r\n\r\n")) {
      return;
    }
    const std::optional<std::string> body = reader.read_body(*request);
    if (!body) return;
    request->body_size = body->size();
    record(*request);

    const std::optional<std::string> connection = request->header("Connection");
    const Reply reply{
        .keep_alive = request->version == "HTTP/1.1" && !(connection && has_token(*connection, "close")),
        .head_only = request->method == "HEAD"};
    const std::string& method = request->method;
    const std::string& target = request->target;
    const std::string path = target.substr(0, target.find('?'));
    const bool get_or_head = method == "GET" || method == "HEAD";
    bool sent;
    if (get_or_head && path == "/hello") {
      sent = stream.send_all(reply(200, "OK", "text/plain", hello_body));
    } else if (get_or_head && path == "/bytes") {
      sent =
          stream.send_all(reply(200, "OK", "application/octet-stream", pattern(size_param(target, "n", 0))));
    } else if (method == "GET" && path == "/slow") {
      sent = send_slow(io, stream, target, reply);
    } else if (method == "GET" && path == "/events") {
      sent = send_events(io, stream, target, reply);
    } else if (method == "POST" && path == "/echo") {
      sent = stream.send_all(reply(200, "OK", "application/octet-stream", *body));
    } else if (path == "/redirect") {
      const std::string location = query_param(target, "to").value_or("/");
      const int status = static_cast<int>(size_param(target, "status", 302));
      const char* reason = redirect_reason(status);
      sent = reason
                 ? stream.send_all(reply(status, reason, "", "", "Location: " + location + "\r\n"))
                 : stream.send_all(reply(400, "Bad Request", "text/plain", "unsupported redirect status\n"));
    } else if (method == "GET" && path == "/upgrade") {
      const std::optional<std::string> protocol = request->header("Upgrade");
      if (protocol && !protocol->empty() && connection && has_token(*connection, "upgrade")) {
        serve_upgrade(stream, reader, *protocol);
        return;
      }
      sent = stream.send_all(reply(400, "Bad Request", "text/plain",
                                   "/upgrade needs Connection: Upgrade and an Upgrade header\n"));
    } else if (path == "/any" || path.starts_with("/any/")) {
      sent = stream.send_all(reply(200, "OK", "text/plain", method + " " + target + "\n"));
    } else if (const std::string root = git_project_root(); !root.empty() && path.starts_with("/git/")) {
      sent = stream.send_all(serve_git(root, *request, *body, reply));
    } else {
      sent = stream.send_all(reply(404, "Not Found", "text/plain", "not found\n"));
    }
    if (!sent || !reply.keep_alive) return;
  }
}

bool LocalOrigin::State::send_slow(ServerConnection& io, ServerStream& stream, const std::string& target,
                                   const Reply& reply) {
  const size_t total = size_param(target, "n", 0);
  const size_t chunk_size = std::max<size_t>(1, size_param(target, "chunk", 16384));
  const auto delay = std::chrono::milliseconds(size_param(target, "delay_ms", 10));
  const bool holds = query_param(target, "hold_at").has_value();
  const size_t hold_at = size_param(target, "hold_at", 0);
  if (!stream.send_all(reply.chunked_head("application/octet-stream"))) return false;
  bool held = false;
  for (size_t offset = 0; offset < total; offset += chunk_size) {
    const size_t length = std::min(chunk_size, total - offset);
    if (!stream.send_all(chunk(pattern_slice(offset, length)))) return false;
    slow_sent += length;
    if (holds && !held && offset + length >= hold_at) {
      held = true;
      std::unique_lock lock(mutex);
      released_cv.wait(lock, [this] { return holds_released || stopping; });
      if (stopping) return false;
    }
    if (offset + length < total && !io.pause_for(delay)) return false;
  }
  return stream.send_all("0\r\n\r\n");
}

bool LocalOrigin::State::send_events(ServerConnection& io, ServerStream& stream, const std::string& target,
                                     const Reply& reply) {
  const size_t count = size_param(target, "n", 3);
  const auto interval = std::chrono::milliseconds(size_param(target, "interval_ms", 100));
  if (!stream.send_all(reply.chunked_head("text/event-stream", "Cache-Control: no-cache\r\n"))) return false;
  for (size_t i = 1; i <= count; ++i) {
    if (i > 1 && !io.pause_for(interval)) return false;
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now().time_since_epoch());
    if (!stream.send_all(chunk("data: " + std::to_string(i) + " " + std::to_string(now.count()) + "\n\n"))) {
      return false;
    }
  }
  return stream.send_all("0\r\n\r\n");
}

void LocalOrigin::State::serve_upgrade(ServerStream& stream, RequestReader& reader,
                                       const std::string& protocol) {
  if (!stream.send_all("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + protocol +
                       "\r\n\r\n")) {
    return;
  }
  std::string pending = reader.take_buffered();  // sent right behind the request head
  while (pending.empty() || stream.send_all(pending)) {
    pending.clear();
    if (!stream.read_some(pending)) return;  // EOF: the connection closes
  }
}

// One request through `git http-backend` as a CGI (RFC 3875): the request's facts in the environment,
// the body on stdin; its output is CGI headers (Status: among them), a blank line, then the body.
std::string LocalOrigin::State::serve_git(const std::string& project_root, const RecordedRequest& request,
                                          const std::string& body, const Reply& reply) {
  const size_t question = request.target.find('?');
  const std::string path = request.target.substr(0, question);
  const std::string query = question == std::string::npos ? "" : request.target.substr(question + 1);
  std::vector<std::string> env = {
      "GIT_PROJECT_ROOT=" + project_root,
      "GIT_HTTP_EXPORT_ALL=1",
      "GATEWAY_INTERFACE=CGI/1.1",
      "SERVER_PROTOCOL=" + request.version,
      "REQUEST_METHOD=" + request.method,
      "PATH_INFO=" + path.substr(std::string_view("/git").size()),
      "QUERY_STRING=" + query,
      "CONTENT_LENGTH=" + std::to_string(body.size()),
      "CONTENT_TYPE=" + request.header("Content-Type").value_or(""),
      "REMOTE_ADDR=127.0.0.1",
  };
  for (const char* name : {"Content-Encoding", "Git-Protocol"}) {
    if (const std::optional<std::string> value = request.header(name)) {
      std::string variable = "HTTP_" + std::string(name);
      std::transform(variable.begin(), variable.end(), variable.begin(), [](char c) {
        return c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      });
      env.push_back(variable + "=" + *value);
    }
  }
  const RunResult cgi = run({"git", "http-backend"}, {.env = std::move(env), .stdin_text = body});
  if (cgi.exit_code != 0 && cgi.out.empty()) {
    return reply(500, "Internal Server Error", "text/plain", "git http-backend failed: " + cgi.err);
  }
  int status = 200;
  std::string reason = "OK";
  std::string content_type;
  std::string extra_headers;
  size_t offset = 0;
  while (offset < cgi.out.size()) {
    const size_t end = cgi.out.find('\n', offset);
    if (end == std::string::npos) break;
    std::string_view line(cgi.out.data() + offset, end - offset);
    offset = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = trim(line.substr(colon + 1));
    if (iequals(name, "Status")) {
      status = std::stoi(std::string(value.substr(0, 3)));
      reason = std::string(trim(value.substr(std::min<size_t>(3, value.size()))));
    } else if (iequals(name, "Content-Type")) {
      content_type = value;
    } else {
      extra_headers += std::string(line) + "\r\n";
    }
  }
  return reply(status, reason, content_type, std::string_view(cgi.out).substr(offset), extra_headers);
}

LocalOrigin::LocalOrigin(const std::string& address, std::string hello_body, const ServerCert* cert)
    : state_(std::make_unique<State>(address, std::move(hello_body), cert)) {}
LocalOrigin::LocalOrigin(LocalOrigin&&) noexcept = default;
LocalOrigin::~LocalOrigin() = default;

LocalOrigin LocalOrigin::http(std::string hello_body) {
  return LocalOrigin("127.0.0.1", std::move(hello_body), nullptr);
}
LocalOrigin LocalOrigin::http_v6(std::string hello_body) {
  return LocalOrigin("::1", std::move(hello_body), nullptr);
}
LocalOrigin LocalOrigin::http_at(const std::string& address, std::string hello_body) {
  return LocalOrigin(address, std::move(hello_body), nullptr);
}
LocalOrigin LocalOrigin::https(const ServerCert& cert, std::string hello_body) {
  return LocalOrigin("127.0.0.1", std::move(hello_body), &cert);
}

const std::string& LocalOrigin::host() const {
  return state_->server.address();
}
uint16_t LocalOrigin::port() const {
  return state_->server.port();
}
std::string LocalOrigin::host_port() const {
  return state_->server.host_port();
}
std::string LocalOrigin::url(std::string_view path) const {
  return (is_https() ? "https://" : "http://") + host_port() + std::string(path);
}
std::string LocalOrigin::url_as(std::string_view name, std::string_view path) const {
  return (is_https() ? "https://" : "http://") + std::string(name) + ":" + std::to_string(port()) +
         std::string(path);
}
bool LocalOrigin::is_https() const {
  return state_->tls != nullptr;
}

std::vector<RecordedRequest> LocalOrigin::requests() const {
  std::lock_guard lock(state_->mutex);
  return state_->recorded;
}

size_t LocalOrigin::connections_accepted() const {
  return state_->server.connections_accepted();
}
size_t LocalOrigin::slow_bytes_sent() const {
  return state_->slow_sent.load();
}

void LocalOrigin::release_holds() {
  {
    std::lock_guard lock(state_->mutex);
    state_->holds_released = true;
  }
  state_->released_cv.notify_all();
}

void LocalOrigin::serve_git(std::string project_root) {
  std::lock_guard lock(state_->mutex);
  state_->git_root = std::move(project_root);
}

std::string LocalOrigin::pattern(size_t n) {
  return pattern_slice(0, n);
}

uint64_t LocalOrigin::checksum(std::string_view bytes) {
  uint64_t hash = 14695981039346656037ULL;
  for (const char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ULL;
  }
  return hash;
}

}  // namespace egressd::test

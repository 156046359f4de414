#include "tests/support/local_origin.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <stdexcept>

#include "tests/support/tcp_server.h"

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

std::string response(int status, std::string_view reason, std::string_view content_type,
                     std::string_view body, bool keep_alive, std::string_view extra_headers = {}) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
  if (!content_type.empty()) out += "Content-Type: " + std::string(content_type) + "\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  out += extra_headers;
  if (!keep_alive) out += "Connection: close\r\n";
  out += "\r\n";
  out += body;
  return out;
}

// Reads HTTP/1.1 requests off one connection. `buffer_` holds bytes received but not yet consumed.
class RequestReader {
 public:
  explicit RequestReader(ServerConnection& io) : io_(io) {}

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

  ServerConnection& io_;
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
  State(const std::string& address, std::string body)
      : hello_body(std::move(body)), server(address, [this](ServerConnection& io) { serve(io); }) {}
  ~State() {
    {
      std::lock_guard lock(mutex);
      stopping = true;
    }
    released_cv.notify_all();
    server.stop();
  }

  void serve(ServerConnection& io);
  bool send_slow(ServerConnection& io, const std::string& target, bool keep_alive);
  void record(RecordedRequest request) {
    std::lock_guard lock(mutex);
    recorded.push_back(std::move(request));
  }

  const std::string hello_body;
  std::atomic<size_t> slow_sent{0};
  mutable std::mutex mutex;
  std::condition_variable released_cv;
  bool holds_released = false;            // guarded by mutex
  bool stopping = false;                  // guarded by mutex
  std::vector<RecordedRequest> recorded;  // guarded by mutex
  TcpServer server;                       // last: its threads use the members above, and it is stopped first
};

void LocalOrigin::State::serve(ServerConnection& io) {
  RequestReader reader(io);
  while (true) {
    std::optional<RecordedRequest> request = reader.read_head();
    if (!request) return;
    request->connection = io.index();
    const std::optional<std::string> expect = request->header("Expect");
    if (expect && iequals(*expect, "100-continue") && !io.send_all("HTTP/1.1 100 Continue\r\n\r\n")) return;
    const std::optional<std::string> body = reader.read_body(*request);
    if (!body) return;
    request->body_size = body->size();
    const std::optional<std::string> connection = request->header("Connection");
    const bool keep_alive = request->version == "HTTP/1.1" && !(connection && iequals(*connection, "close"));
    const std::string method = request->method;
    const std::string target = request->target;
    record(std::move(*request));

    const std::string path = target.substr(0, target.find('?'));
    bool sent;
    if (method == "GET" && path == "/hello") {
      sent = io.send_all(response(200, "OK", "text/plain", hello_body, keep_alive));
    } else if (method == "GET" && path == "/bytes") {
      sent = io.send_all(
          response(200, "OK", "application/octet-stream", pattern(size_param(target, "n", 0)), keep_alive));
    } else if (method == "GET" && path == "/slow") {
      sent = send_slow(io, target, keep_alive);
    } else if (method == "POST" && path == "/echo") {
      sent = io.send_all(response(200, "OK", "application/octet-stream", *body, keep_alive));
    } else if (method == "GET" && path == "/redirect") {
      const std::string location = query_param(target, "to").value_or("/");
      sent = io.send_all(response(302, "Found", "", "", keep_alive, "Location: " + location + "\r\n"));
    } else {
      sent = io.send_all(response(404, "Not Found", "text/plain", "not found\n", keep_alive));
    }
    if (!sent || !keep_alive) return;
  }
}

bool LocalOrigin::State::send_slow(ServerConnection& io, const std::string& target, bool keep_alive) {
  const size_t total = size_param(target, "n", 0);
  const size_t chunk = std::max<size_t>(1, size_param(target, "chunk", 16384));
  const auto delay = std::chrono::milliseconds(size_param(target, "delay_ms", 10));
  const bool holds = query_param(target, "hold_at").has_value();
  const size_t hold_at = size_param(target, "hold_at", 0);
  std::string head =
      "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n";
  if (!keep_alive) head += "Connection: close\r\n";
  if (!io.send_all(head + "\r\n")) return false;
  bool held = false;
  for (size_t offset = 0; offset < total; offset += chunk) {
    const size_t length = std::min(chunk, total - offset);
    char size_line[32];
    std::snprintf(size_line, sizeof size_line, "%zx\r\n", length);
    if (!io.send_all(size_line + pattern_slice(offset, length) + "\r\n")) return false;
    slow_sent += length;
    if (holds && !held && offset + length >= hold_at) {
      held = true;
      std::unique_lock lock(mutex);
      released_cv.wait(lock, [this] { return holds_released || stopping; });
      if (stopping) return false;
    }
    if (offset + length < total && !io.pause_for(delay)) return false;
  }
  return io.send_all("0\r\n\r\n");
}

LocalOrigin::LocalOrigin(const std::string& address, std::string hello_body)
    : state_(std::make_unique<State>(address, std::move(hello_body))) {}
LocalOrigin::LocalOrigin(LocalOrigin&&) noexcept = default;
LocalOrigin::~LocalOrigin() = default;

LocalOrigin LocalOrigin::http(std::string hello_body) {
  return LocalOrigin("127.0.0.1", std::move(hello_body));
}
LocalOrigin LocalOrigin::http_v6(std::string hello_body) {
  return LocalOrigin("::1", std::move(hello_body));
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
  return "http://" + host_port() + std::string(path);
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

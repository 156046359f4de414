// egressd_loadgen: the benchmark's client. Drives one workload through a forward proxy (or directly at
// the origin) with blocking sockets, one thread per connection, and prints one JSON line per run.
// Every failure is counted and reported; a run with failures exits 1 so the benchmark never hides them.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string mode;
  std::string proxy;   // HOST:PORT of the proxy; empty: straight to the origin
  std::string target;  // HOST:PORT the request is for (CONNECT authority, absolute-form URL)
  std::string dial;    // HOST:PORT to dial when there is no proxy; defaults to target
  std::string sni;     // TLS server name and the name verified; defaults to target's host
  std::string path = "/1k";
  std::string ca_file;    // trust anchor for TLS inside
  bool tls = false;       // TLS inside the connection
  bool absolute = false;  // absolute-form HTTP to the proxy instead of CONNECT
  int concurrency = 1;
  double duration_s = 5;
  int count = 100;           // idle: tunnels to hold; first-contact: distinct hosts
  std::string host_pattern;  // first-contact: "h%d.t7.bench"-style, %d replaced by the index
};

struct Endpoint {
  std::string host;
  std::string port;
};

std::optional<Endpoint> split_host_port(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) return std::nullopt;
  return Endpoint{std::string(text.substr(0, colon)), std::string(text.substr(colon + 1))};
}

// Owns one socket and, once TLS is up, the SSL object on it.
class Stream {
 public:
  Stream() = default;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (fd_ >= 0) close(fd_);
  }

  bool dial(const Endpoint& endpoint, std::string& error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* answers = nullptr;
    if (int rc = getaddrinfo(endpoint.host.c_str(), endpoint.port.c_str(), &hints, &answers); rc != 0) {
      error = std::string("getaddrinfo: ") + gai_strerror(rc);
      return false;
    }
    for (addrinfo* a = answers; a != nullptr; a = a->ai_next) {
      fd_ = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd_ < 0) continue;
      if (connect(fd_, a->ai_addr, a->ai_addrlen) == 0) break;
      close(fd_);
      fd_ = -1;
    }
    freeaddrinfo(answers);
    if (fd_ < 0) {
      error = std::string("connect: ") + std::strerror(errno);
      return false;
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return true;
  }

  bool start_tls(SSL_CTX* ctx, const std::string& name, std::string& error) {
    ssl_ = SSL_new(ctx);
    if (ssl_ == nullptr || SSL_set_fd(ssl_, fd_) != 1) return fail_tls("SSL_new", error);
    in6_addr ip6{};
    in_addr ip4{};
    const bool is_ip =
        inet_pton(AF_INET, name.c_str(), &ip4) == 1 || inet_pton(AF_INET6, name.c_str(), &ip6) == 1;
    if (is_ip) {
      if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), name.c_str()) != 1)
        return fail_tls("set1_ip", error);
    } else {
      if (SSL_set_tlsext_host_name(ssl_, name.c_str()) != 1 || SSL_set1_host(ssl_, name.c_str()) != 1) {
        return fail_tls("SSL_set1_host", error);
      }
    }
    ERR_clear_error();
    if (SSL_connect(ssl_) != 1) return fail_tls("TLS handshake", error);
    return true;
  }

  bool write_all(std::string_view bytes, std::string& error) {
    while (!bytes.empty()) {
      ssize_t n = 0;
      if (ssl_ != nullptr) {
        ERR_clear_error();
        n = SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()));
        if (n <= 0) return fail_tls("SSL_write", error);
      } else {
        n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          error = std::string("send: ") + std::strerror(errno);
          return false;
        }
      }
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads more bytes into buffer_; false on EOF or error.
  bool fill(std::string& error) {
    char chunk[65536];
    ssize_t n = 0;
    if (ssl_ != nullptr) {
      ERR_clear_error();
      n = SSL_read(ssl_, chunk, sizeof chunk);
      if (n <= 0) return fail_tls("SSL_read", error);
    } else {
      do {
        n = recv(fd_, chunk, sizeof chunk, 0);
      } while (n < 0 && errno == EINTR);
      if (n < 0) {
        error = std::string("recv: ") + std::strerror(errno);
        return false;
      }
      if (n == 0) {
        error = "connection closed early";
        return false;
      }
    }
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  // The status code and headers (lowercased names) of one response head; the head is consumed.
  bool read_head(int& status, std::string& head, std::string& error) {
    size_t end = 0;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (buffer_.size() > 65536) {
        error = "response head too large";
        return false;
      }
      if (!fill(error)) return false;
    }
    head = buffer_.substr(0, end + 2);
    buffer_.erase(0, end + 4);
    if (head.size() < 12 || !head.starts_with("HTTP/1.")) {
      error = "not an HTTP response: " + head.substr(0, 40);
      return false;
    }
    status = std::atoi(head.c_str() + 9);
    std::transform(head.begin(), head.end(), head.begin(), [](unsigned char c) { return std::tolower(c); });
    return true;
  }

  // Reads one response body as framed by head; returns the number of body bytes.
  bool read_body(const std::string& head, uint64_t& body_bytes, std::string& error) {
    body_bytes = 0;
    if (auto at = head.find("\r\ncontent-length:"); at != std::string::npos) {
      uint64_t length = std::strtoull(head.c_str() + at + 17, nullptr, 10);
      while (body_bytes < length) {
        if (buffer_.empty() && !fill(error)) return false;
        const uint64_t take = std::min<uint64_t>(length - body_bytes, buffer_.size());
        buffer_.erase(0, take);
        body_bytes += take;
      }
      return true;
    }
    if (head.find("\r\ntransfer-encoding: chunked") != std::string::npos) {
      for (;;) {
        size_t eol = 0;
        while ((eol = buffer_.find("\r\n")) == std::string::npos) {
          if (!fill(error)) return false;
        }
        const uint64_t size = std::strtoull(buffer_.c_str(), nullptr, 16);
        buffer_.erase(0, eol + 2);
        while (buffer_.size() < size + 2) {
          if (!fill(error)) return false;
        }
        buffer_.erase(0, size + 2);  // trailers are not used by the origin
        body_bytes += size;
        if (size == 0) return true;
      }
    }
    error = "response without Content-Length or chunked framing";
    return false;
  }

  // CONNECT through a proxy; true once the proxy answered 200.
  bool tunnel(const std::string& authority, std::string& error) {
    if (!write_all("CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n", error))
      return false;
    int status = 0;
    std::string head;
    if (!read_head(status, head, error)) return false;
    if (status != 200) {
      error = "CONNECT answered " + std::to_string(status);
      if (auto at = head.find("\r\nx-egressd-reason:"); at != std::string::npos) {
        const size_t from = at + 19;  // past "\r\nx-egressd-reason:"
        error.append(": ").append(std::string_view(head).substr(from, head.find("\r\n", from) - from));
      }
      return false;
    }
    return true;
  }

  // One GET and its whole response; false unless the response is a 200.
  bool get(const std::string& request_target, const std::string& host, uint64_t& body_bytes,
           std::string& error) {
    if (!write_all("GET " + request_target + " HTTP/1.1\r\nHost: " + host +
                       "\r\nUser-Agent: egressd_loadgen\r\n\r\n",
                   error)) {
      return false;
    }
    int status = 0;
    std::string head;
    if (!read_head(status, head, error)) return false;
    if (!read_body(head, body_bytes, error)) return false;
    // A proxy without client keep-alive (tinyproxy) says so; the next request then needs a new connection.
    ++requests_done_;
    peer_closes_ = head.find("\r\nconnection: close") != std::string::npos || head.starts_with("http/1.0");
    if (status != 200) {
      error = "GET answered " + std::to_string(status);
      return false;
    }
    return true;
  }

  int fd() const { return fd_; }
  bool peer_closes() const { return peer_closes_; }
  uint64_t requests_done() const { return requests_done_; }

 private:
  bool fail_tls(const char* what, std::string& error) {
    const unsigned long code = ERR_get_error();
    char text[256] = "no detail";
    if (code != 0) ERR_error_string_n(code, text, sizeof text);
    error = std::string(what) + ": " + text;
    return false;
  }

  int fd_ = -1;
  SSL* ssl_ = nullptr;  // owned
  std::string buffer_;
  bool peer_closes_ = false;
  uint64_t requests_done_ = 0;
};

struct Latencies {
  std::mutex mutex;
  std::vector<double> us;
  std::atomic<uint64_t> failures{0};
  std::string first_error;

  void add(double value_us) {
    std::lock_guard lock(mutex);
    us.push_back(value_us);
  }
  void fail(const std::string& error) {
    if (failures.fetch_add(1) == 0) {
      std::lock_guard lock(mutex);
      first_error = error;
    }
  }
  double percentile(double p) {
    if (us.empty()) return 0;
    std::sort(us.begin(), us.end());
    const size_t at = std::min(us.size() - 1, static_cast<size_t>(p * static_cast<double>(us.size())));
    return us[at];
  }
};

std::string json_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
      continue;
    }
    out += c;
  }
  return out;
}

class Runner {
 public:
  explicit Runner(Options options) : o_(std::move(options)) {}

  bool prepare(std::string& error) {
    auto target = split_host_port(o_.target);
    if (!target) return (error = "--target must be HOST:PORT"), false;
    target_ = *target;
    if (o_.sni.empty()) o_.sni = target_.host;
    auto dial = split_host_port(!o_.proxy.empty() ? o_.proxy : !o_.dial.empty() ? o_.dial : o_.target);
    if (!dial) return (error = "--proxy/--dial must be HOST:PORT"), false;
    dial_ = *dial;
    if (o_.tls) {
      ctx_ = SSL_CTX_new(TLS_client_method());
      if (ctx_ == nullptr) return (error = "SSL_CTX_new failed"), false;
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
      // Every new tunnel pays a full handshake, as a fresh client process would.
      SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_OFF);
      SSL_CTX_set_options(ctx_, SSL_OP_NO_TICKET);
      if (o_.ca_file.empty() || SSL_CTX_load_verify_locations(ctx_, o_.ca_file.c_str(), nullptr) != 1) {
        return (error = "--ca FILE is needed for TLS and must be a readable PEM file"), false;
      }
    }
    return true;
  }

  ~Runner() {
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  }

  // Dials, tunnels (when proxied and not absolute-form) and starts TLS when asked.
  bool open(Stream& stream, const std::string& authority, const std::string& sni, std::string& error) {
    if (!stream.dial(dial_, error)) return false;
    if (!o_.proxy.empty() && !o_.absolute && !stream.tunnel(authority, error)) return false;
    if (ctx_ != nullptr && o_.tls && !stream.start_tls(ctx_, sni, error)) return false;
    return true;
  }

  std::string request_target() const {
    if (o_.absolute) return "http://" + o_.target + o_.path;
    return o_.path;
  }

  int download() {
    Stream stream;
    std::string error;
    uint64_t bytes = 0;
    const auto start = Clock::now();
    const bool ok =
        open(stream, o_.target, o_.sni, error) && stream.get(request_target(), o_.target, bytes, error);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("{\"mode\":\"download\",\"ok\":%s,\"bytes\":%llu,\"seconds\":%.6f,\"mb_per_s\":%.3f%s}\n",
                ok ? "true" : "false", static_cast<unsigned long long>(bytes), seconds,
                seconds > 0 ? static_cast<double>(bytes) / seconds / 1e6 : 0.0, error_field(error).c_str());
    return ok ? 0 : 1;
  }

  // New connection per operation (mode "tunnels") or one keep-alive connection per worker ("requests").
  int load(bool keep_alive) {
    Latencies latencies;
    std::atomic<uint64_t> done{0};
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(o_.duration_s));
    const auto start = Clock::now();
    std::vector<std::thread> workers;
    for (int i = 0; i < o_.concurrency; ++i) {
      workers.emplace_back([&] {
        std::unique_ptr<Stream> stream;
        while (Clock::now() < deadline) {
          std::string error;
          const auto t0 = Clock::now();
          if (!keep_alive || stream == nullptr) {
            stream = std::make_unique<Stream>();
            if (!open(*stream, o_.target, o_.sni, error)) {
              latencies.fail(error);
              stream.reset();
              continue;
            }
          }
          uint64_t bytes = 0;
          if (!stream->get(request_target(), o_.target, bytes, error)) {
            // A kept-alive connection the proxy closed while idle is retried once on a new one, as
            // HTTP clients do for idempotent requests; any other failure counts.
            const bool retry = stream->requests_done() > 0;
            stream = std::make_unique<Stream>();
            error.clear();
            if (!retry || !open(*stream, o_.target, o_.sni, error) ||
                !stream->get(request_target(), o_.target, bytes, error)) {
              latencies.fail(error);
              stream.reset();
              continue;
            }
          }
          if (!keep_alive || stream->peer_closes()) stream.reset();
          latencies.add(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
          done.fetch_add(1);
        }
      });
    }
    for (auto& worker : workers) worker.join();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    const uint64_t ops = done.load();
    std::printf(
        "{\"mode\":\"%s\",\"ok\":%s,\"operations\":%llu,\"failures\":%llu,\"seconds\":%.3f,\"per_s\":%.1f,"
        "\"p50_us\":%.1f,\"p99_us\":%.1f%s}\n",
        o_.mode.c_str(), latencies.failures == 0 && ops > 0 ? "true" : "false",
        static_cast<unsigned long long>(ops), static_cast<unsigned long long>(latencies.failures.load()),
        seconds, static_cast<double>(ops) / seconds, latencies.percentile(0.50), latencies.percentile(0.99),
        error_field(latencies.first_error).c_str());
    return latencies.failures == 0 && ops > 0 ? 0 : 1;
  }

  // Opens count tunnels, says so on stdout, and holds them until stdin reaches EOF.
  int idle() {
    std::vector<std::unique_ptr<Stream>> tunnels;
    std::string first_error;
    int failures = 0;
    for (int i = 0; i < o_.count; ++i) {
      auto stream = std::make_unique<Stream>();
      std::string error;
      if (!open(*stream, o_.target, o_.sni, error)) {
        if (failures++ == 0) first_error = error;
        continue;
      }
      tunnels.push_back(std::move(stream));
    }
    const bool ok = failures == 0;
    std::printf("{\"mode\":\"idle\",\"ok\":%s,\"tunnels\":%zu,\"failures\":%d%s}\n", ok ? "true" : "false",
                tunnels.size(), failures, error_field(first_error).c_str());
    std::fflush(stdout);
    char byte = 0;
    while (read(STDIN_FILENO, &byte, 1) > 0) {
    }
    return ok ? 0 : 1;
  }

  // Per host: a first tunnel (the proxy mints a leaf) and then a second one (cached leaf), one at a time.
  int first_contact() {
    const auto pct = o_.host_pattern.find("%d");
    if (pct == std::string::npos) {
      std::fprintf(stderr, "first-contact needs --host-pattern containing %%d\n");
      return 2;
    }
    Latencies first;
    Latencies cached;
    for (int round = 0; round < 2; ++round) {
      for (int i = 0; i < o_.count; ++i) {
        std::string host = o_.host_pattern;
        host.replace(pct, 2, std::to_string(i));
        const std::string authority = host + ":" + target_.port;
        Latencies& into = round == 0 ? first : cached;
        std::string error;
        uint64_t bytes = 0;
        const auto t0 = Clock::now();
        Stream stream;
        if (!open(stream, authority, host, error) || !stream.get(o_.path, authority, bytes, error)) {
          into.fail(host + ": " + error);
          continue;
        }
        into.add(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      }
    }
    const bool ok = first.failures == 0 && cached.failures == 0 && o_.count > 0;
    std::printf(
        "{\"mode\":\"first-contact\",\"ok\":%s,\"hosts\":%d,\"failures\":%llu,\"first_p50_us\":%.1f,"
        "\"first_p99_us\":%.1f,\"cached_p50_us\":%.1f,\"cached_p99_us\":%.1f%s}\n",
        ok ? "true" : "false", o_.count,
        static_cast<unsigned long long>(first.failures.load() + cached.failures.load()),
        first.percentile(0.5), first.percentile(0.99), cached.percentile(0.5), cached.percentile(0.99),
        error_field(!first.first_error.empty() ? first.first_error : cached.first_error).c_str());
    return ok ? 0 : 1;
  }

 private:
  static std::string error_field(const std::string& error) {
    return error.empty() ? std::string() : ",\"error\":\"" + json_escape(error) + "\"";
  }

  Options o_;
  Endpoint target_;
  Endpoint dial_;
  SSL_CTX* ctx_ = nullptr;  // owned
};

constexpr std::string_view kUsage =
    "usage: egressd_loadgen MODE --target HOST:PORT [--proxy HOST:PORT | --dial HOST:PORT] [--tls --ca "
    "FILE]\n"
    "                       [--sni NAME] [--path PATH] [--absolute] [--concurrency N] [--duration SECONDS]\n"
    "                       [--count N] [--host-pattern NAME_WITH_%d]\n"
    "modes: download (one GET, MB/s), tunnels (new connection per GET), requests (keep-alive GETs),\n"
    "       idle (hold --count tunnels until stdin closes), first-contact (--count hosts, first vs cached)\n";

bool parse(int argc, char** argv, Options& o) {
  if (argc < 2) return false;
  o.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--tls") {
      o.tls = true;
      continue;
    }
    if (flag == "--absolute") {
      o.absolute = true;
      continue;
    }
    if (i + 1 >= argc) return false;
    const std::string value = argv[++i];
    if (flag == "--proxy") {
      o.proxy = value;
    } else if (flag == "--target") {
      o.target = value;
    } else if (flag == "--dial") {
      o.dial = value;
    } else if (flag == "--sni") {
      o.sni = value;
    } else if (flag == "--path") {
      o.path = value;
    } else if (flag == "--ca") {
      o.ca_file = value;
    } else if (flag == "--host-pattern") {
      o.host_pattern = value;
    } else if (flag == "--concurrency" || flag == "--count") {
      int number = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), number);
      if (ec != std::errc() || end != value.data() + value.size() || number <= 0) return false;
      (flag == "--count" ? o.count : o.concurrency) = number;
    } else if (flag == "--duration") {
      char* end = nullptr;
      o.duration_s = std::strtod(value.c_str(), &end);
      if (end == value.c_str() || *end != '\0' || o.duration_s <= 0) return false;
    } else {
      return false;
    }
  }
  return !o.target.empty();
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!parse(argc, argv, options)) {
    std::cerr << kUsage;
    return 2;
  }
  if (options.absolute && options.tls) {
    std::cerr << "--absolute and --tls exclude each other\n";
    return 2;
  }
  Runner runner(options);
  std::string error;
  if (!runner.prepare(error)) {
    std::cerr << "egressd_loadgen: " << error << "\n";
    return 2;
  }
  if (options.mode == "download") return runner.download();
  if (options.mode == "tunnels") return runner.load(false);
  if (options.mode == "requests") return runner.load(true);
  if (options.mode == "idle") return runner.idle();
  if (options.mode == "first-contact") return runner.first_contact();
  std::cerr << kUsage;
  return 2;
}

// TlsEngine over memory BIOs: a real handshake between a server engine presenting a minted leaf and a
// client engine verifying it, data both ways, close_notify, and each way verification can fail.
#include "tls/tls_engine.h"

#include <doctest/doctest.h>

#include <string>
#include <utility>

#include "tests/unit/tls/tls_fixtures.h"

namespace egressd::tls {
namespace {

using fixtures::complete_handshake;
using fixtures::deliver;
using fixtures::TestCa;

// A CA, a minter, and an upstream context that trusts the CA: both ends of a terminated CONNECT.
struct Pki {
  TestCa test_ca;
  LeafMinter minter{test_ca.ca()};
  std::shared_ptr<const UpstreamTls> trusting = create_upstream(test_ca.cert_path());

  static std::shared_ptr<const UpstreamTls> create_upstream(const std::string& extra_ca_file) {
    auto upstream = UpstreamTls::create(extra_ca_file);
    REQUIRE_MESSAGE(upstream.has_value(), upstream.error().detail);
    return *upstream;
  }
  TlsEngine server_for(const std::string& leaf_host) const {
    auto leaf = minter.mint(leaf_host);
    REQUIRE_MESSAGE(leaf.has_value(), leaf.error().detail);
    auto server = TlsEngine::server(*leaf);
    REQUIRE_MESSAGE(server.has_value(), server.error().detail);
    return std::move(*server);
  }
  static TlsEngine client_for(SSL_CTX* ctx, const std::string& host) {
    auto client = TlsEngine::client(ctx, host);
    REQUIRE_MESSAGE(client.has_value(), client.error().detail);
    return std::move(*client);
  }
};

// Both engines of a handshake that must succeed.
std::pair<TlsEngine, TlsEngine> connected_pair(const Pki& pki, const std::string& host) {
  TlsEngine client = Pki::client_for(pki.trusting->ctx(), host);
  TlsEngine server = pki.server_for(host);
  const auto failure = complete_handshake(client, server);
  REQUIRE_MESSAGE(!failure.has_value(), (failure ? failure->error.detail : ""));
  return {std::move(client), std::move(server)};
}

// `length` bytes that are not one repeated value, so misordered or dropped records would show.
std::string payload(size_t length) {
  std::string bytes(length, '\0');
  for (size_t i = 0; i < length; ++i) bytes[i] = static_cast<char>((i * 131 + i / 4096) & 0xff);
  return bytes;
}

TEST_CASE("client and server engines complete a handshake in memory, with SNI and ALPN http/1.1") {
  const Pki pki;
  TlsEngine client = Pki::client_for(pki.trusting->ctx(), "api.example.com");
  TlsEngine server = pki.server_for("api.example.com");
  CHECK_FALSE(client.handshake_done());
  CHECK_FALSE(server.handshake_done());
  const auto failure = complete_handshake(client, server);
  REQUIRE_MESSAGE(!failure.has_value(), (failure ? failure->error.detail : ""));
  CHECK(client.handshake_done());
  CHECK(server.handshake_done());
  CHECK(server.sni() == "api.example.com");
  CHECK(server.alpn() == "http/1.1");
  CHECK(client.alpn() == "http/1.1");
  CHECK(client.peer_verify_error() == "");
  // handshake() after completion stays Done and has nothing more to say.
  auto again = client.handshake();
  REQUIRE(again.has_value());
  CHECK(*again == TlsEngine::Progress::Done);
}

TEST_CASE("plaintext crosses in both directions, including 1 MiB in a single write") {
  const Pki pki;
  auto [client, server] = connected_pair(pki, "example.com");
  CHECK(deliver(client, server, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n") ==
        "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
  CHECK(deliver(server, client, "HTTP/1.1 204 No Content\r\n\r\n") == "HTTP/1.1 204 No Content\r\n\r\n");
  const std::string big = payload(1 << 20);
  CHECK(deliver(client, server, big) == big);
  CHECK(deliver(server, client, big) == big);
}

TEST_CASE("ciphertext delivered a byte at a time still decrypts completely") {
  const Pki pki;
  auto [client, server] = connected_pair(pki, "example.com");
  const std::string message = payload(20000);  // two records
  REQUIRE(client.write_plaintext(message).has_value());
  const std::string ciphertext = client.take_ciphertext();
  CHECK(client.take_ciphertext().empty());  // take_ciphertext() moved everything out
  std::string received;
  size_t failed_reads = 0;
  size_t closed_reads = 0;
  for (char byte : ciphertext) {
    server.receive_ciphertext(std::string_view(&byte, 1));
    auto open = server.read_plaintext(received);
    if (!open) ++failed_reads;
    if (open && !*open) ++closed_reads;
  }
  CHECK(failed_reads == 0);
  CHECK(closed_reads == 0);
  CHECK(received == message);
}

TEST_CASE("after close_notify read_plaintext() returns false, with the data sent before it") {
  const Pki pki;
  auto [client, server] = connected_pair(pki, "example.com");
  REQUIRE(client.write_plaintext("last words").has_value());
  client.shutdown();
  client.shutdown();  // once only: a second close_notify is never queued
  server.receive_ciphertext(client.take_ciphertext());
  std::string received;
  auto open = server.read_plaintext(received);
  REQUIRE(open.has_value());
  CHECK_FALSE(*open);
  CHECK(received == "last words");
  // Still closed on the next read.
  open = server.read_plaintext(received);
  REQUIRE(open.has_value());
  CHECK_FALSE(*open);
}

TEST_CASE("a client whose trust store lacks the CA fails with a Verify error saying why") {
  const Pki pki;
  const auto system_only = Pki::create_upstream("");
  TlsEngine client = Pki::client_for(system_only->ctx(), "example.com");
  TlsEngine server = pki.server_for("example.com");
  const auto failure = complete_handshake(client, server);
  REQUIRE(failure.has_value());
  CHECK(failure->client_side);
  CHECK(failure->error.kind == TlsError::Kind::Verify);
  // The server sends leaf + CA, so OpenSSL reaches the self-signed CA and finds it untrusted.
  CHECK(failure->error.detail == "certificate verify failed: self-signed certificate in certificate chain");
  CHECK(client.peer_verify_error() == "self-signed certificate in certificate chain");
  CHECK_FALSE(client.handshake_done());
}

TEST_CASE("a client whose trust store lacks the issuer of a lone leaf says 'unable to get local issuer'") {
  const Pki pki;
  const TestCa stranger;  // the server's leaf is signed by pki's CA; the client trusts only `stranger`
  const auto trusts_stranger = Pki::create_upstream(stranger.cert_path());
  TlsEngine client = Pki::client_for(trusts_stranger->ctx(), "example.com");
  // A server context with the leaf alone (no chain), as many real servers misconfigure it.
  auto leaf = pki.minter.mint("example.com");
  REQUIRE(leaf.has_value());
  SslCtxPtr lone(SSL_CTX_new(TLS_server_method()));
  REQUIRE(lone != nullptr);
  REQUIRE(SSL_CTX_use_certificate(lone.get(), (*leaf)->certificate.get()) == 1);
  REQUIRE(SSL_CTX_use_PrivateKey(lone.get(), SSL_CTX_get0_privatekey((*leaf)->server_ctx.get())) == 1);
  auto lone_leaf = std::make_shared<Leaf>();
  lone_leaf->host = "example.com";
  lone_leaf->server_ctx = std::move(lone);
  auto server = TlsEngine::server(std::move(lone_leaf));
  REQUIRE(server.has_value());
  const auto failure = complete_handshake(client, *server);
  REQUIRE(failure.has_value());
  CHECK(failure->client_side);
  CHECK(failure->error.kind == TlsError::Kind::Verify);
  CHECK(failure->error.detail == "certificate verify failed: unable to get local issuer certificate");
}

TEST_CASE("a client checking another name than the leaf's fails with 'hostname mismatch'") {
  const Pki pki;
  struct Row {
    const char* client_host;
    const char* leaf_host;
    const char* detail;
  };
  const Row rows[] = {
      {"evil.example", "example.com", "certificate verify failed: hostname mismatch"},
      {"www.example.com", "example.com", "certificate verify failed: hostname mismatch"},
      {"127.0.0.2", "127.0.0.1", "certificate verify failed: IP address mismatch"},
      {"127.0.0.1", "localhost", "certificate verify failed: IP address mismatch"},
      {"localhost", "127.0.0.1", "certificate verify failed: hostname mismatch"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.client_host);
    CAPTURE(row.leaf_host);
    TlsEngine client = Pki::client_for(pki.trusting->ctx(), row.client_host);
    TlsEngine server = pki.server_for(row.leaf_host);
    const auto failure = complete_handshake(client, server);
    REQUIRE(failure.has_value());
    CHECK(failure->client_side);
    CHECK(failure->error.kind == TlsError::Kind::Verify);
    CHECK(failure->error.detail == row.detail);
  }
}

TEST_CASE("an IP host verifies against the leaf's IP SAN and sends no SNI") {
  const Pki pki;
  for (const char* host : {"127.0.0.1", "::1"}) {
    CAPTURE(host);
    auto [client, server] = connected_pair(pki, host);
    CHECK(server.sni() == "");
    CHECK(client.peer_verify_error() == "");
    CHECK(deliver(client, server, "ping") == "ping");
  }
}

TEST_CASE("a client that offers only h2 gets no ALPN rather than a failed handshake") {
  const Pki pki;
  TlsEngine server = pki.server_for("example.com");
  // A bare OpenSSL client, since TlsEngine::client always offers http/1.1.
  SslPtr ssl(SSL_new(pki.trusting->ctx()));
  REQUIRE(ssl != nullptr);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  REQUIRE(in != nullptr);
  REQUIRE(out != nullptr);
  BIO_set_mem_eof_return(in, -1);
  SSL_set_bio(ssl.get(), in, out);
  SSL_set_connect_state(ssl.get());
  REQUIRE(SSL_set_tlsext_host_name(ssl.get(), "example.com") == 1);
  REQUIRE(SSL_set1_host(ssl.get(), "example.com") == 1);
  const unsigned char h2_only[] = {2, 'h', '2'};
  REQUIRE(SSL_set_alpn_protos(ssl.get(), h2_only, sizeof h2_only) == 0);
  auto drain = [](BIO* bio) {
    std::string bytes(BIO_ctrl_pending(bio), '\0');
    if (!bytes.empty())
      REQUIRE(BIO_read(bio, bytes.data(), static_cast<int>(bytes.size())) == static_cast<int>(bytes.size()));
    return bytes;
  };
  bool client_done = false;
  bool server_done = false;
  for (int round = 0; round < 16 && !(client_done && server_done); ++round) {
    const int rc = SSL_do_handshake(ssl.get());
    client_done = rc == 1;
    if (!client_done) REQUIRE(SSL_get_error(ssl.get(), rc) == SSL_ERROR_WANT_READ);
    server.receive_ciphertext(drain(out));
    auto step = server.handshake();
    REQUIRE_MESSAGE(step.has_value(), step.error().detail);
    server_done = *step == TlsEngine::Progress::Done;
    const std::string reply = server.take_ciphertext();
    if (!reply.empty())
      REQUIRE(BIO_write(in, reply.data(), static_cast<int>(reply.size())) == static_cast<int>(reply.size()));
  }
  CHECK(client_done);
  CHECK(server_done);
  CHECK(server.alpn() == "");
  CHECK(server.sni() == "example.com");
}

TEST_CASE("plain HTTP sent to a server engine fails the handshake with OpenSSL's reason") {
  const Pki pki;
  TlsEngine server = pki.server_for("example.com");
  server.receive_ciphertext("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
  auto step = server.handshake();
  REQUIRE_FALSE(step.has_value());
  CHECK(step.error().kind == TlsError::Kind::Handshake);
  CHECK(step.error().detail.find("http request") != std::string::npos);
}

TEST_CASE("a server engine reports the client's alert when the client rejects its certificate") {
  const Pki pki;
  TlsEngine client = Pki::client_for(Pki::create_upstream("")->ctx(), "example.com");
  TlsEngine server = pki.server_for("example.com");
  const auto client_failure = complete_handshake(client, server);
  REQUIRE(client_failure.has_value());
  REQUIRE(client_failure->client_side);
  server.receive_ciphertext(client.take_ciphertext());  // the alert the client queued when it gave up
  auto step = server.handshake();
  REQUIRE_FALSE(step.has_value());
  CHECK(step.error().kind == TlsError::Kind::Handshake);
  CHECK(step.error().detail.find("unknown ca") != std::string::npos);
}

TEST_CASE("an engine moved mid-handshake carries on, and the moved-from engine fails instead of crashing") {
  const Pki pki;
  TlsEngine client = Pki::client_for(pki.trusting->ctx(), "example.com");
  TlsEngine server = pki.server_for("example.com");
  REQUIRE(client.handshake().has_value());
  server.receive_ciphertext(client.take_ciphertext());
  TlsEngine moved = std::move(client);
  const auto failure = complete_handshake(moved, server);
  REQUIRE_MESSAGE(!failure.has_value(), (failure ? failure->error.detail : ""));
  CHECK(deliver(moved, server, "still here") == "still here");

  // NOLINTBEGIN(bugprone-use-after-move): what a moved-from engine does is the point of this check
  CHECK_FALSE(client.handshake().has_value());
  std::string out;
  CHECK_FALSE(client.read_plaintext(out).has_value());
  CHECK_FALSE(client.write_plaintext("x").has_value());
  CHECK(client.take_ciphertext().empty());
  CHECK_FALSE(client.handshake_done());
  client.shutdown();
  // NOLINTEND(bugprone-use-after-move)
}

}  // namespace
}  // namespace egressd::tls

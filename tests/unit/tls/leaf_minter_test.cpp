// Minting leaves with a throwaway CA: names and addresses, issuer, validity, serials, the shared key,
// end-entity extensions, and that OpenSSL's own verifier accepts them for their host only.
#include "tls/leaf_minter.h"

#include <doctest/doctest.h>

#include <chrono>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/tls/tls_fixtures.h"

namespace egressd::tls {
namespace {

using fixtures::TestCa;

std::shared_ptr<const Leaf> mint(const LeafMinter& minter, const std::string& host) {
  auto leaf = minter.mint(host);
  REQUIRE_MESSAGE(leaf.has_value(), leaf.error().detail);
  return *leaf;
}

TEST_CASE("a leaf for a host name carries DNS:<name> and CN=<name>, lowercased") {
  const TestCa test_ca;
  const LeafMinter minter(test_ca.ca());
  struct Row {
    const char* host;
    const char* name;
  };
  const Row rows[] = {{"api.github.com", "api.github.com"},
                      {"Registry.NPMJS.org", "registry.npmjs.org"},
                      {"localhost", "localhost"},
                      {"under_score.example", "under_score.example"}};
  for (const Row& row : rows) {
    CAPTURE(row.host);
    const auto leaf = mint(minter, row.host);
    CHECK(leaf->host == row.name);
    CHECK(fixtures::subject_alt_names(leaf->certificate.get()) ==
          std::vector<std::string>{std::string("DNS:") + row.name});
    CHECK(fixtures::common_name(X509_get_subject_name(leaf->certificate.get())) == row.name);
  }
}

TEST_CASE("a leaf for an IP literal carries IP:<address>, never DNS") {
  const TestCa test_ca;
  const LeafMinter minter(test_ca.ca());
  struct Row {
    const char* host;
    const char* san;
    const char* leaf_host;
  };
  const Row rows[] = {{"127.0.0.1", "IP:127.0.0.1", "127.0.0.1"},
                      {"::1", "IP:::1", "::1"},
                      {"[::1]", "IP:::1", "::1"},
                      {"2001:DB8::7", "IP:2001:db8::7", "2001:db8::7"}};
  for (const Row& row : rows) {
    CAPTURE(row.host);
    const auto leaf = mint(minter, row.host);
    CHECK(leaf->host == row.leaf_host);
    CHECK(fixtures::subject_alt_names(leaf->certificate.get()) == std::vector<std::string>{row.san});
    CHECK(fixtures::verify_server_certificate(leaf->certificate.get(), test_ca.ca()->certificate(),
                                              row.leaf_host) == "");
  }
}

TEST_CASE("a leaf's issuer is the CA's subject and its authority key identifier is the CA's key identifier") {
  const TestCa test_ca;
  const auto leaf = mint(LeafMinter(test_ca.ca()), "example.com");
  X509* cert = leaf->certificate.get();
  X509* ca = test_ca.ca()->certificate();
  CHECK(X509_NAME_cmp(X509_get_issuer_name(cert), X509_get_subject_name(ca)) == 0);
  const ASN1_OCTET_STRING* authority_key_id = X509_get0_authority_key_id(cert);
  REQUIRE(authority_key_id != nullptr);
  CHECK(ASN1_OCTET_STRING_cmp(authority_key_id, X509_get0_subject_key_id(ca)) == 0);
  CHECK(X509_get0_subject_key_id(cert) != nullptr);
  CHECK(X509_check_issued(ca, cert) == X509_V_OK);
  CHECK(X509_get_signature_nid(cert) == NID_ecdsa_with_SHA256);
}

TEST_CASE("a leaf is valid from an hour ago until now plus the validity, and Leaf::not_after says so") {
  const TestCa test_ca;
  const auto leaf = mint(LeafMinter(test_ca.ca(), std::chrono::hours(48)), "example.com");
  const time_t now = std::time(nullptr);
  const time_t not_before = fixtures::to_time_t(X509_get0_notBefore(leaf->certificate.get()));
  const time_t not_after = fixtures::to_time_t(X509_get0_notAfter(leaf->certificate.get()));
  CHECK(not_before <= now - 3600 + 60);
  CHECK(not_before >= now - 3600 - 60);
  CHECK(not_after >= now + 48 * 3600 - 60);
  CHECK(not_after <= now + 48 * 3600 + 60);
  CHECK(std::chrono::system_clock::to_time_t(leaf->not_after) == not_after);
}

TEST_CASE("two leaves for the same host have different random serials but share one key") {
  const TestCa test_ca;
  const LeafMinter minter(test_ca.ca());
  const auto first = mint(minter, "example.com");
  const auto second = mint(minter, "example.com");
  const auto other = mint(minter, "other.example");
  CHECK(ASN1_INTEGER_cmp(X509_get0_serialNumber(first->certificate.get()),
                         X509_get0_serialNumber(second->certificate.get())) != 0);
  for (const auto& leaf : {first, second}) {
    BignumPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf->certificate.get()), nullptr));
    REQUIRE(serial != nullptr);
    CHECK(BN_is_negative(serial.get()) == 0);
    CHECK(BN_is_zero(serial.get()) == 0);
    CHECK(BN_num_bits(serial.get()) <= 127);
    CHECK(BN_num_bits(serial.get()) > 64);  // random 127 bits: below 2^64 once in 2^63
  }
  CHECK(EVP_PKEY_eq(X509_get0_pubkey(first->certificate.get()),
                    X509_get0_pubkey(second->certificate.get())) == 1);
  CHECK(EVP_PKEY_eq(X509_get0_pubkey(first->certificate.get()), X509_get0_pubkey(other->certificate.get())) ==
        1);
  EVP_PKEY* key = X509_get0_pubkey(first->certificate.get());
  CHECK(EVP_PKEY_is_a(key, "EC") == 1);
  CHECK(EVP_PKEY_get_bits(key) == 256);
  // A different minter has a different key.
  const auto elsewhere = mint(LeafMinter(test_ca.ca()), "example.com");
  CHECK(EVP_PKEY_eq(key, X509_get0_pubkey(elsewhere->certificate.get())) != 1);
}

TEST_CASE("a leaf verifies against the CA for its own host and fails for any other name") {
  const TestCa test_ca;
  const auto leaf = mint(LeafMinter(test_ca.ca()), "api.example.com");
  X509* ca = test_ca.ca()->certificate();
  struct Row {
    const char* host;
    const char* want;
  };
  const Row rows[] = {{"api.example.com", ""},
                      {"API.Example.com", ""},
                      {"example.com", "hostname mismatch"},
                      {"www.api.example.com", "hostname mismatch"},
                      {"127.0.0.1", "IP address mismatch"}};
  for (const Row& row : rows) {
    CAPTURE(row.host);
    CHECK(fixtures::verify_server_certificate(leaf->certificate.get(), ca, row.host) == row.want);
  }
  // And not against another CA.
  const TestCa stranger;
  CHECK(fixtures::verify_server_certificate(leaf->certificate.get(), stranger.ca()->certificate(),
                                            "api.example.com") == "unable to get local issuer certificate");
}

TEST_CASE(
    "a leaf is an end-entity server certificate: critical CA:FALSE, critical digitalSignature, serverAuth") {
  const TestCa test_ca;
  const auto leaf = mint(LeafMinter(test_ca.ca()), "example.com");
  X509* cert = leaf->certificate.get();
  const uint32_t flags = X509_get_extension_flags(cert);
  CHECK((flags & EXFLAG_CA) == 0);
  CHECK((flags & EXFLAG_BCONS) != 0);
  CHECK(X509_get_key_usage(cert) == KU_DIGITAL_SIGNATURE);
  CHECK(X509_get_extended_key_usage(cert) == XKU_SSL_SERVER);
  for (int nid : {NID_basic_constraints, NID_key_usage}) {
    CAPTURE(nid);
    const int index = X509_get_ext_by_NID(cert, nid, -1);
    REQUIRE(index >= 0);
    CHECK(X509_EXTENSION_get_critical(X509_get_ext(cert, index)) == 1);
  }
  CHECK(X509_check_ca(cert) == 0);
  CHECK(X509_get_version(cert) == X509_VERSION_3);
}

TEST_CASE("a host longer than 64 characters gets a truncated CN while the SAN keeps the full name") {
  const TestCa test_ca;
  const std::string host = std::string(60, 'a') + ".long.example.com";
  const auto leaf = mint(LeafMinter(test_ca.ca()), host);
  CHECK(fixtures::common_name(X509_get_subject_name(leaf->certificate.get())) == host.substr(0, 64));
  CHECK(fixtures::subject_alt_names(leaf->certificate.get()) == std::vector<std::string>{"DNS:" + host});
  CHECK(fixtures::verify_server_certificate(leaf->certificate.get(), test_ca.ca()->certificate(), host) ==
        "");
}

TEST_CASE("mint() refuses text that is not a host name or an IP literal") {
  const TestCa test_ca;
  const LeafMinter minter(test_ca.ca());
  for (const char* host : {"", "two words.example", "a.example,DNS:evil.example", "*.example.com", "a/b",
                           "example.com:443", "ex\nample.com"}) {
    CAPTURE(host);
    auto leaf = minter.mint(host);
    REQUIRE_FALSE(leaf.has_value());
    CHECK(leaf.error().kind == TlsError::Kind::Mint);
    CHECK(leaf.error().detail.find("not a host name or IP address") != std::string::npos);
  }
}

TEST_CASE("a leaf's server context presents the leaf, the CA as chain, and the shared key") {
  const TestCa test_ca;
  const auto leaf = mint(LeafMinter(test_ca.ca()), "example.com");
  SSL_CTX* ctx = leaf->server_ctx.get();
  REQUIRE(ctx != nullptr);
  CHECK(X509_cmp(SSL_CTX_get0_certificate(ctx), leaf->certificate.get()) == 0);
  STACK_OF(X509)* chain = nullptr;
  REQUIRE(SSL_CTX_get0_chain_certs(ctx, &chain) == 1);
  REQUIRE(chain != nullptr);
  REQUIRE(sk_X509_num(chain) == 1);
  CHECK(X509_cmp(sk_X509_value(chain, 0), test_ca.ca()->certificate()) == 0);
  CHECK(SSL_CTX_check_private_key(ctx) == 1);
  CHECK(SSL_CTX_get_min_proto_version(ctx) == TLS1_2_VERSION);
  CHECK((SSL_CTX_get_options(ctx) & SSL_OP_NO_RENEGOTIATION) != 0);
}

TEST_CASE("minting on several threads at once gives leaves that all verify") {
  const TestCa test_ca;
  const LeafMinter minter(test_ca.ca());
  constexpr int kThreads = 4;
  constexpr int kPerThread = 8;
  std::vector<std::shared_ptr<const Leaf>> leaves(kThreads * kPerThread);
  std::vector<std::string> errors(kThreads * kPerThread);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int slot = t * kPerThread + i;
        auto leaf = minter.mint("host" + std::to_string(slot) + ".example");
        if (leaf) {
          leaves[slot] = *leaf;
        } else {
          errors[slot] = leaf.error().detail;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int slot = 0; slot < kThreads * kPerThread; ++slot) {
    CAPTURE(slot);
    CHECK(errors[slot] == "");
    REQUIRE(leaves[slot] != nullptr);
    CHECK(fixtures::verify_server_certificate(leaves[slot]->certificate.get(), test_ca.ca()->certificate(),
                                              "host" + std::to_string(slot) + ".example") == "");
  }
}

}  // namespace
}  // namespace egressd::tls

// TestCa, checked with OpenSSL's own verifier: what the HTTPS origins of the e2e tests are built on.
#include "tests/support/test_ca.h"

#include <doctest/doctest.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "tests/support/temp_dir.h"

namespace egressd::test {
namespace {

X509Ptr parse_cert(const std::string& pem) {
  const BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  REQUIRE(cert);
  return cert;
}

struct Verification {
  int result = 0;  // X509_verify_cert: 1 verified
  int error = 0;   // X509_V_OK or the reason
};

// Verifies `cert_pem` for TLS server use against the CA certificates in the file `ca_file`, for the DNS
// name `host` or the IP literal `ip` (whichever is not empty).
Verification verify(const std::string& cert_pem, const std::string& ca_file, const std::string& host,
                    const std::string& ip = {}) {
  const X509StorePtr store(X509_STORE_new());
  REQUIRE(X509_STORE_load_file(store.get(), ca_file.c_str()) == 1);
  const X509Ptr cert = parse_cert(cert_pem);
  const X509StoreCtxPtr context(X509_STORE_CTX_new());
  REQUIRE(X509_STORE_CTX_init(context.get(), store.get(), cert.get(), nullptr) == 1);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(context.get());
  REQUIRE(X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER) == 1);
  if (!host.empty()) REQUIRE(X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0) == 1);
  if (!ip.empty()) REQUIRE(X509_VERIFY_PARAM_set1_ip_asc(param, ip.c_str()) == 1);
  Verification verification{X509_verify_cert(context.get()), X509_STORE_CTX_get_error(context.get())};
  ERR_clear_error();
  return verification;
}

TEST_CASE("a certificate TestCa issues verifies against the CA file for each of its names" *
          doctest::timeout(30)) {
  const TempDir dir;
  const TestCa ca = TestCa::create(dir.path());
  CHECK(ca.ca_path() == dir.file("origin-ca.pem"));
  CHECK(read_file(ca.ca_path()) == ca.ca_pem());
  const ServerCert cert = ca.issue({"mirror.example.com", "*.pkg.example.org", "127.0.0.1", "::1"});
  struct Row {
    std::string host;
    std::string ip;
    int want_error;
  };
  const Row rows[] = {{"mirror.example.com", "", X509_V_OK},
                      {"deb.pkg.example.org", "", X509_V_OK},
                      {"", "127.0.0.1", X509_V_OK},
                      {"", "::1", X509_V_OK},
                      {"example.com", "", X509_V_ERR_HOSTNAME_MISMATCH},
                      {"a.b.pkg.example.org", "", X509_V_ERR_HOSTNAME_MISMATCH},
                      {"", "127.0.0.2", X509_V_ERR_IP_ADDRESS_MISMATCH}};
  for (const Row& row : rows) {
    CAPTURE(row.host);
    CAPTURE(row.ip);
    const Verification verification = verify(cert.cert_pem, ca.ca_path(), row.host, row.ip);
    CHECK(verification.error == row.want_error);
    CHECK((verification.result == 1) == (row.want_error == X509_V_OK));
  }
}

TEST_CASE("a TestCa certificate is a P-256 serverAuth leaf whose key matches, valid now" *
          doctest::timeout(30)) {
  const TempDir dir;
  const TestCa ca = TestCa::create(dir.path(), "custom CA name");
  const ServerCert cert = ca.issue({"mirror.example.com"});
  const X509Ptr leaf = parse_cert(cert.cert_pem);
  const X509Ptr root = parse_cert(ca.ca_pem());
  CHECK(X509_check_ca(root.get()) != 0);
  CHECK(X509_check_ca(leaf.get()) == 0);
  CHECK(X509_check_purpose(leaf.get(), X509_PURPOSE_SSL_SERVER, 0) == 1);
  CHECK((X509_get_extended_key_usage(leaf.get()) & XKU_SSL_SERVER) != 0);
  CHECK(X509_cmp_current_time(X509_get0_notBefore(leaf.get())) < 0);
  CHECK(X509_cmp_current_time(X509_get0_notAfter(leaf.get())) > 0);
  CHECK(X509_NAME_cmp(X509_get_issuer_name(leaf.get()), X509_get_subject_name(root.get())) == 0);
  char common_name[128] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(root.get()), NID_commonName, common_name,
                            sizeof common_name);
  CHECK(std::string(common_name) == "custom CA name");

  const BioPtr key_bio(BIO_new_mem_buf(cert.key_pem.data(), static_cast<int>(cert.key_pem.size())));
  const EvpPkeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  REQUIRE(key);
  CHECK(X509_check_private_key(leaf.get(), key.get()) == 1);
  char group[64] = {};
  CHECK(EVP_PKEY_get_group_name(key.get(), group, sizeof group, nullptr) == 1);
  CHECK(std::string(group) == "prime256v1");
  CHECK(cert.cert_path.empty());
  CHECK(cert.key_path.empty());
}

TEST_CASE("TestCa draws a new serial and key for every certificate" * doctest::timeout(30)) {
  const TempDir dir;
  const TestCa ca = TestCa::create(dir.path());
  const X509Ptr first = parse_cert(ca.issue({"a.example"}).cert_pem);
  const X509Ptr second = parse_cert(ca.issue({"a.example"}).cert_pem);
  CHECK(ASN1_INTEGER_cmp(X509_get0_serialNumber(first.get()), X509_get0_serialNumber(second.get())) != 0);
  CHECK(EVP_PKEY_eq(X509_get0_pubkey(first.get()), X509_get0_pubkey(second.get())) != 1);
}

TEST_CASE("TestCa writes the certificate and key files when given a file stem" * doctest::timeout(30)) {
  const TempDir dir;
  const TestCa ca = TestCa::create(dir.path());
  const ServerCert cert = ca.issue({"mirror.example.com"}, "mirror");
  CHECK(cert.cert_path == dir.file("mirror.pem"));
  CHECK(cert.key_path == dir.file("mirror-key.pem"));
  CHECK(read_file(cert.cert_path) == cert.cert_pem);
  CHECK(read_file(cert.key_path) == cert.key_pem);
  CHECK(verify(read_file(cert.cert_path), ca.ca_path(), "mirror.example.com").result == 1);
}

TEST_CASE("a self-signed server certificate does not verify against a TestCa" * doctest::timeout(30)) {
  const TempDir dir;
  const TestCa ca = TestCa::create(dir.path());
  const ServerCert cert = TestCa::self_signed_server({"mirror.example.com", "127.0.0.1"});
  const Verification verification = verify(cert.cert_pem, ca.ca_path(), "mirror.example.com");
  CHECK(verification.result != 1);
  CHECK(verification.error == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
  CHECK(X509_check_ca(parse_cert(cert.cert_pem).get()) == 0);
}

TEST_CASE("TestCa refuses a server certificate without names" * doctest::timeout(30)) {
  const TempDir dir;
  const TestCa ca = TestCa::create(dir.path());
  CHECK_THROWS_AS(ca.issue({}), std::runtime_error);
  CHECK_THROWS_AS(TestCa::self_signed_server({}), std::runtime_error);
}

}  // namespace
}  // namespace egressd::test

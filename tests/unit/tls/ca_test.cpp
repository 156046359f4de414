// The corporate CA: generation (modes, extensions), loading with every refusal an operator can hit,
// load_or_generate on a state directory, and what is printed about it.
#include "tls/ca.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <string>

#include "tests/support/temp_dir.h"
#include "tests/unit/tls/tls_fixtures.h"
#include "tls/leaf_minter.h"

namespace egressd::tls {
namespace {

using fixtures::TestCa;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Whether `cert`'s extension `nid` (which must be present) is marked critical.
bool is_critical(X509* cert, int nid) {
  const int index = X509_get_ext_by_NID(cert, nid, -1);
  REQUIRE(index >= 0);
  return X509_EXTENSION_get_critical(X509_get_ext(cert, index)) == 1;
}

TEST_CASE("generate() creates the directory 0700 and writes ca.pem 0644 and ca-key.pem 0600") {
  const test::TempDir dir;
  const std::string ca_dir = dir.file("ca");
  const mode_t old_umask = ::umask(0);  // the modes must not depend on the caller's umask
  auto ca = CertificateAuthority::generate(ca_dir, "egressd CA");
  ::umask(old_umask);
  REQUIRE_MESSAGE(ca.has_value(), ca.error().detail);
  CHECK(fixtures::mode_of(ca_dir) == 0700);
  CHECK(fixtures::mode_of(ca_dir + "/ca.pem") == 0644);
  CHECK(fixtures::mode_of(ca_dir + "/ca-key.pem") == 0600);
  CHECK((*ca)->cert_path() == ca_dir + "/ca.pem");
}

TEST_CASE(
    "generate() leaves an existing directory's mode alone and still writes the key 0600 under umask 0") {
  const test::TempDir dir;
  REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
  const mode_t old_umask = ::umask(0);
  auto ca = CertificateAuthority::generate(dir.path(), "egressd CA");
  ::umask(old_umask);
  REQUIRE_MESSAGE(ca.has_value(), ca.error().detail);
  CHECK(fixtures::mode_of(dir.path()) == 0755);
  CHECK(fixtures::mode_of(dir.file("ca-key.pem")) == 0600);
}

TEST_CASE(
    "a generated CA has critical CA:TRUE pathlen 0, critical keyCertSign and cRLSign only, and an SKI") {
  const TestCa test_ca;
  const X509Ptr cert = fixtures::read_certificate(test_ca.cert_path());
  const uint32_t flags = X509_get_extension_flags(cert.get());
  CHECK((flags & EXFLAG_CA) != 0);
  CHECK(is_critical(cert.get(), NID_basic_constraints));
  CHECK(X509_get_pathlen(cert.get()) == 0);
  CHECK(is_critical(cert.get(), NID_key_usage));
  CHECK(X509_get_key_usage(cert.get()) == (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(cert.get());
  REQUIRE(ski != nullptr);
  CHECK(ASN1_STRING_length(ski) == 20);  // SHA-1 of the public key (RFC 5280 4.2.1.2 method 1)
  CHECK(X509_get_version(cert.get()) == X509_VERSION_3);
}

TEST_CASE("a generated CA is self-signed with a P-256 key, named CN=<name>, O=egressd, valid for ten years") {
  const TestCa test_ca;
  const X509Ptr cert = fixtures::read_certificate(test_ca.cert_path());
  CHECK(test_ca.ca()->subject() == "CN=egressd test CA, O=egressd");
  CHECK(X509_NAME_cmp(X509_get_subject_name(cert.get()), X509_get_issuer_name(cert.get())) == 0);
  EVP_PKEY* key = X509_get0_pubkey(cert.get());
  REQUIRE(key != nullptr);
  CHECK(EVP_PKEY_is_a(key, "EC") == 1);
  CHECK(EVP_PKEY_get_bits(key) == 256);
  CHECK(X509_verify(cert.get(), key) == 1);
  CHECK(X509_get_signature_nid(cert.get()) == NID_ecdsa_with_SHA256);
  // It is a trust anchor OpenSSL accepts for itself.
  X509StorePtr store(X509_STORE_new());
  REQUIRE(X509_STORE_add_cert(store.get(), cert.get()) == 1);
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  REQUIRE(X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) == 1);
  CHECK(X509_verify_cert(ctx.get()) == 1);

  const time_t now = std::time(nullptr);
  const time_t not_before = fixtures::to_time_t(X509_get0_notBefore(cert.get()));
  const time_t not_after = fixtures::to_time_t(X509_get0_notAfter(cert.get()));
  CHECK(not_before <= now - 3600 + 60);
  CHECK(not_before >= now - 3600 - 60);
  CHECK(not_after >= now + 3650L * 24 * 3600 - 60);
  CHECK(not_after <= now + 3650L * 24 * 3600 + 60);
  // The serial is random, positive and at most 128 bits.
  BignumPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr));
  REQUIRE(serial != nullptr);
  CHECK(BN_is_negative(serial.get()) == 0);
  CHECK(BN_is_zero(serial.get()) == 0);
  CHECK(BN_num_bits(serial.get()) <= 127);
}

TEST_CASE("generate() refuses to overwrite an existing ca.pem or ca-key.pem, and writes nothing") {
  for (const char* existing : {"ca.pem", "ca-key.pem"}) {
    CAPTURE(existing);
    const test::TempDir dir;
    test::write_file(dir.file(existing), "keep me\n");
    auto ca = CertificateAuthority::generate(dir.path(), "egressd CA");
    REQUIRE_FALSE(ca.has_value());
    CHECK(ca.error().kind == TlsError::Kind::CaUnusable);
    CHECK(contains(ca.error().detail, dir.file(existing) + " already exists"));
    CHECK(test::read_file(dir.file(existing)) == "keep me\n");
    const std::string other = std::string(existing) == "ca.pem" ? "ca-key.pem" : "ca.pem";
    CHECK_FALSE(test::file_exists(dir.file(other)));
  }
}

TEST_CASE("generate() under a missing parent directory says that the parent does not exist") {
  const test::TempDir dir;
  auto ca = CertificateAuthority::generate(dir.file("missing/ca"), "egressd CA");
  REQUIRE_FALSE(ca.has_value());
  CHECK(ca.error().kind == TlsError::Kind::CaUnusable);
  CHECK(contains(ca.error().detail, dir.file("missing/ca")));
  CHECK(contains(ca.error().detail, "parent directory does not exist"));
}

TEST_CASE("load() reads back a generated CA with the same fingerprint and subject") {
  const TestCa test_ca;
  auto loaded = CertificateAuthority::load(test_ca.cert_path(), test_ca.key_path());
  REQUIRE_MESSAGE(loaded.has_value(), loaded.error().detail);
  CHECK((*loaded)->sha256_fingerprint() == test_ca.ca()->sha256_fingerprint());
  CHECK((*loaded)->subject() == test_ca.ca()->subject());
  CHECK((*loaded)->cert_path() == test_ca.cert_path());
  CHECK(EVP_PKEY_eq((*loaded)->key(), test_ca.ca()->key()) == 1);
}

TEST_CASE("an RSA CA made with other tools loads, and the leaves it signs verify against it") {
  const test::TempDir dir;
  const EvpPkeyPtr key = fixtures::rsa_key();
  const X509Ptr cert = fixtures::self_signed_certificate(key.get(), {.common_name = "Example Corp Root"});
  fixtures::write_ca_files(dir.file("corp.pem"), cert.get(), dir.file("corp.key"), key.get());

  auto ca = CertificateAuthority::load(dir.file("corp.pem"), dir.file("corp.key"));
  REQUIRE_MESSAGE(ca.has_value(), ca.error().detail);
  CHECK((*ca)->subject() == "CN=Example Corp Root");
  const LeafMinter minter(*ca);
  auto leaf = minter.mint("git.example.com");
  REQUIRE_MESSAGE(leaf.has_value(), leaf.error().detail);
  CHECK(X509_get_signature_nid((*leaf)->certificate.get()) == NID_sha256WithRSAEncryption);
  CHECK(fixtures::verify_server_certificate((*leaf)->certificate.get(), cert.get(), "git.example.com") == "");
}

TEST_CASE("load() refuses a key that group or others can access, and says to chmod 600") {
  struct Row {
    mode_t mode;
    const char* says;
  };
  const Row rows[] = {{0644, "readable by group or others (mode 0644)"},
                      {0640, "readable by group or others (mode 0640)"},
                      {0604, "readable by group or others (mode 0604)"},
                      {0620, "accessible to group or others (mode 0620)"}};
  const TestCa test_ca;
  for (const Row& row : rows) {
    CAPTURE(row.mode);
    REQUIRE(::chmod(test_ca.key_path().c_str(), row.mode) == 0);
    auto ca = CertificateAuthority::load(test_ca.cert_path(), test_ca.key_path());
    REQUIRE_FALSE(ca.has_value());
    CHECK(ca.error().kind == TlsError::Kind::CaUnusable);
    CHECK(contains(ca.error().detail, "CA key " + test_ca.key_path()));
    CHECK(contains(ca.error().detail, row.says));
    CHECK(contains(ca.error().detail, "chmod 600 " + test_ca.key_path()));
  }
  REQUIRE(::chmod(test_ca.key_path().c_str(), 0400) == 0);  // owner-only read is fine
  CHECK(CertificateAuthority::load(test_ca.cert_path(), test_ca.key_path()).has_value());
}

TEST_CASE("load() refuses a missing certificate or key file, naming the file and the reason") {
  const TestCa test_ca;
  const std::string missing = test_ca.dir().file("nowhere.pem");
  struct Row {
    std::string cert;
    std::string key;
    std::string says;
  };
  const Row rows[] = {
      {missing, test_ca.key_path(), "cannot read CA certificate " + missing + ": No such file or directory"},
      {test_ca.cert_path(), missing, "cannot read CA key " + missing + ": No such file or directory"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.cert);
    CAPTURE(row.key);
    auto ca = CertificateAuthority::load(row.cert, row.key);
    REQUIRE_FALSE(ca.has_value());
    CHECK(ca.error().kind == TlsError::Kind::CaUnusable);
    CHECK(ca.error().detail == row.says);
  }
}

TEST_CASE("load() refuses a key that does not match the certificate") {
  const TestCa first;
  const TestCa second;
  auto ca = CertificateAuthority::load(first.cert_path(), second.key_path());
  REQUIRE_FALSE(ca.has_value());
  CHECK(ca.error().kind == TlsError::Kind::CaUnusable);
  CHECK(ca.error().detail ==
        "CA key " + second.key_path() + " does not match the certificate " + first.cert_path());
}

TEST_CASE("load() refuses a certificate that is not a CA") {
  const test::TempDir dir;
  const EvpPkeyPtr key = fixtures::p256_key();
  const X509Ptr cert =
      fixtures::self_signed_certificate(key.get(), {.common_name = "www.example.com", .is_ca = false});
  fixtures::write_ca_files(dir.file("server.pem"), cert.get(), dir.file("server.key"), key.get());
  auto ca = CertificateAuthority::load(dir.file("server.pem"), dir.file("server.key"));
  REQUIRE_FALSE(ca.has_value());
  CHECK(ca.error().kind == TlsError::Kind::CaUnusable);
  CHECK(contains(ca.error().detail, dir.file("server.pem")));
  CHECK(contains(ca.error().detail, "is not a CA certificate (it lacks basicConstraints CA:TRUE)"));
}

TEST_CASE("load() refuses a CA that has expired or is not valid yet, saying when") {
  struct Row {
    long not_before_s;
    long not_after_s;
    const char* says;
  };
  const Row rows[] = {{-7200, -3600, "expired on "}, {3600, 7200, "is not valid before "}};
  for (const Row& row : rows) {
    CAPTURE(row.says);
    const test::TempDir dir;
    const EvpPkeyPtr key = fixtures::p256_key();
    const X509Ptr cert = fixtures::self_signed_certificate(
        key.get(), {.not_before_s = row.not_before_s, .not_after_s = row.not_after_s});
    fixtures::write_ca_files(dir.file("ca.pem"), cert.get(), dir.file("ca-key.pem"), key.get());
    auto ca = CertificateAuthority::load(dir.file("ca.pem"), dir.file("ca-key.pem"));
    REQUIRE_FALSE(ca.has_value());
    CHECK(ca.error().kind == TlsError::Kind::CaUnusable);
    CHECK(contains(ca.error().detail, "CA certificate " + dir.file("ca.pem") + " " + row.says));
    CHECK(contains(ca.error().detail, " GMT"));
  }
}

TEST_CASE("load() refuses files that hold no PEM certificate or key") {
  const TestCa test_ca;
  const std::string garbage = test_ca.dir().file("garbage.pem");
  test::write_file(garbage,
                   "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n");
  REQUIRE(::chmod(garbage.c_str(), 0600) == 0);
  struct Row {
    std::string cert;
    std::string key;
    std::string says;
  };
  const Row rows[] = {
      {garbage, test_ca.key_path(), "CA certificate " + garbage + " holds no PEM certificate"},
      {test_ca.cert_path(), garbage, "CA key " + garbage + " holds no PEM private key"},
      {test_ca.key_path(), test_ca.key_path(),
       "CA certificate " + test_ca.key_path() + " holds no PEM certificate"},
      {test_ca.cert_path(), test_ca.cert_path(), "readable by group or others"},  // ca.pem is 0644
  };
  for (const Row& row : rows) {
    CAPTURE(row.cert);
    CAPTURE(row.key);
    auto ca = CertificateAuthority::load(row.cert, row.key);
    REQUIRE_FALSE(ca.has_value());
    CHECK(ca.error().kind == TlsError::Kind::CaUnusable);
    CHECK(contains(ca.error().detail, row.says));
  }
}

TEST_CASE("load() refuses an encrypted key instead of prompting for a passphrase") {
  const TestCa test_ca;
  const std::string encrypted = test_ca.dir().file("encrypted.key");
  test::write_file(encrypted, fixtures::private_key_pem(test_ca.ca()->key(), EVP_aes_256_cbc(), "secret"));
  REQUIRE(::chmod(encrypted.c_str(), 0600) == 0);
  auto ca = CertificateAuthority::load(test_ca.cert_path(), encrypted);
  REQUIRE_FALSE(ca.has_value());
  CHECK(ca.error().kind == TlsError::Kind::CaUnusable);
  CHECK(contains(ca.error().detail, "CA key " + encrypted + " is encrypted"));
}

TEST_CASE("load_or_generate() generates a CA on the first call and reuses it on the next") {
  const test::TempDir dir;
  const std::string ca_dir = dir.file("state-ca");
  bool created = false;
  auto first = CertificateAuthority::load_or_generate(ca_dir, created);
  REQUIRE_MESSAGE(first.has_value(), first.error().detail);
  CHECK(created);
  CHECK((*first)->subject() == "CN=egressd CA, O=egressd");
  CHECK(fixtures::mode_of(ca_dir + "/ca-key.pem") == 0600);

  auto second = CertificateAuthority::load_or_generate(ca_dir, created);
  REQUIRE_MESSAGE(second.has_value(), second.error().detail);
  CHECK_FALSE(created);
  CHECK((*second)->sha256_fingerprint() == (*first)->sha256_fingerprint());
}

TEST_CASE("load_or_generate() applies load()'s checks to an existing CA") {
  const TestCa test_ca;
  REQUIRE(::chmod(test_ca.key_path().c_str(), 0644) == 0);
  bool created = true;
  auto ca = CertificateAuthority::load_or_generate(test_ca.dir().file("ca"), created);
  REQUIRE_FALSE(ca.has_value());
  CHECK_FALSE(created);
  CHECK(contains(ca.error().detail, "readable by group or others"));
}

TEST_CASE(
    "load_or_generate() refuses a directory holding only one of the two files, naming the missing one") {
  for (const char* present : {"ca.pem", "ca-key.pem"}) {
    CAPTURE(present);
    const TestCa test_ca;
    const std::string missing = std::string(present) == "ca.pem" ? test_ca.key_path() : test_ca.cert_path();
    REQUIRE(::unlink(missing.c_str()) == 0);
    bool created = true;
    auto ca = CertificateAuthority::load_or_generate(test_ca.dir().file("ca"), created);
    REQUIRE_FALSE(ca.has_value());
    CHECK_FALSE(created);
    CHECK(ca.error().kind == TlsError::Kind::CaUnusable);
    CHECK(contains(ca.error().detail, "but not " + missing));
    CHECK_FALSE(test::file_exists(missing));  // nothing was generated next to the survivor
  }
}

TEST_CASE("sha256_fingerprint() is the colon-separated uppercase SHA-256 of the DER certificate") {
  const TestCa test_ca;
  unsigned char* der = nullptr;
  const int length = i2d_X509(test_ca.ca()->certificate(), &der);
  REQUIRE(length > 0);
  unsigned char digest[32];
  unsigned int digest_length = 0;
  REQUIRE(EVP_Digest(der, static_cast<size_t>(length), digest, &digest_length, EVP_sha256(), nullptr) == 1);
  OPENSSL_free(der);
  std::string want;
  for (unsigned int i = 0; i < digest_length; ++i) {
    char pair[4];
    std::snprintf(pair, sizeof pair, i == 0 ? "%02X" : ":%02X", digest[i]);
    want += pair;
  }
  CHECK(test_ca.ca()->sha256_fingerprint() == want);
  CHECK(want.size() == 32 * 3 - 1);
}

TEST_CASE("client_trust_instructions() exports a combined bundle for each client and NODE_EXTRA_CA_CERTS") {
  // tests/e2e/clients_test.cpp runs the printed text and each client after it.
  const std::string text = client_trust_instructions("/var/lib/egressd/ca/ca.pem");
  CHECK(contains(text, "cat /etc/ssl/certs/ca-certificates.crt /var/lib/egressd/ca/ca.pem > "));
  for (const char* variable : {"CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE",
                               "PIP_CERT", "NPM_CONFIG_CAFILE"}) {
    CAPTURE(variable);
    CHECK(contains(text, std::string("export ") + variable + "=\"$HOME/.egressd-ca-bundle.pem\"\n"));
  }
  CHECK(contains(text, "export NODE_EXTRA_CA_CERTS=/var/lib/egressd/ca/ca.pem\n"));
  CHECK(contains(text, "update-ca-certificates"));
  CHECK_FALSE(contains(text, "SSL_CERT_FILE=/var/lib"));  // never the CA alone: the system CAs would be lost
  CHECK(contains(text, "export WGETRC=\"$HOME/.egressd-wgetrc\"\n"));
  // A path the shell would split is quoted.
  CHECK(
      contains(client_trust_instructions("/tmp/my ca.pem"), "export NODE_EXTRA_CA_CERTS='/tmp/my ca.pem'\n"));
}

}  // namespace
}  // namespace egressd::tls

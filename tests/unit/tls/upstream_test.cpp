// UpstreamTls: the verifying client context, with the system store and an optional extra CA file.
#include "tls/upstream.h"

#include <doctest/doctest.h>
#include <openssl/pem.h>

#include <string>

#include "tests/support/temp_dir.h"
#include "tests/unit/tls/tls_fixtures.h"

namespace egressd::tls {
namespace {

// Whether `ctx`'s trust store accepts `cert` (a self-signed root) as an anchor.
bool store_trusts(SSL_CTX* ctx, X509* cert) {
  X509StoreCtxPtr verify(X509_STORE_CTX_new());
  REQUIRE(verify != nullptr);
  REQUIRE(X509_STORE_CTX_init(verify.get(), SSL_CTX_get_cert_store(ctx), cert, nullptr) == 1);
  return X509_verify_cert(verify.get()) == 1;
}

TEST_CASE("UpstreamTls::create() with a missing extra CA file fails, naming the file and the reason") {
  const test::TempDir dir;
  auto upstream = UpstreamTls::create(dir.file("corp-ca.pem"));
  REQUIRE_FALSE(upstream.has_value());
  CHECK(upstream.error().kind == TlsError::Kind::CaUnusable);
  CHECK(upstream.error().detail ==
        "cannot read extra CA file " + dir.file("corp-ca.pem") + ": No such file or directory");
}

TEST_CASE("UpstreamTls::create() with an extra CA file holding no certificate fails, naming the file") {
  const test::TempDir dir;
  test::write_file(dir.file("notes.txt"), "not a certificate\n");
  auto upstream = UpstreamTls::create(dir.file("notes.txt"));
  REQUIRE_FALSE(upstream.has_value());
  CHECK(upstream.error().kind == TlsError::Kind::CaUnusable);
  CHECK(upstream.error().detail.find("extra CA file " + dir.file("notes.txt") +
                                     " holds no usable PEM certificate") == 0);
}

TEST_CASE("UpstreamTls trusts the extra CA file in addition to the system store") {
  const fixtures::TestCa test_ca;
  auto with_extra = UpstreamTls::create(test_ca.cert_path());
  REQUIRE_MESSAGE(with_extra.has_value(), with_extra.error().detail);
  auto system_only = UpstreamTls::create("");
  REQUIRE_MESSAGE(system_only.has_value(), system_only.error().detail);
  CHECK(store_trusts((*with_extra)->ctx(), test_ca.ca()->certificate()));
  CHECK_FALSE(store_trusts((*system_only)->ctx(), test_ca.ca()->certificate()));
}

TEST_CASE("UpstreamTls loads the system trust store") {
  // The first root of Debian's bundle must verify through the context's store alone.
  const std::string bundle = "/etc/ssl/certs/ca-certificates.crt";
  if (!test::file_exists(bundle)) {
    MESSAGE("no " << bundle << " (ca-certificates not installed); skipped");
    return;
  }
  const X509Ptr root = fixtures::read_certificate(bundle);
  for (const std::string extra : {"", "with extra"}) {
    CAPTURE(extra);
    const fixtures::TestCa test_ca;
    auto upstream = UpstreamTls::create(extra.empty() ? "" : test_ca.cert_path());
    REQUIRE_MESSAGE(upstream.has_value(), upstream.error().detail);
    CHECK(store_trusts((*upstream)->ctx(), root.get()));
  }
}

TEST_CASE("UpstreamTls requires a verified peer, TLS 1.2 or later, and allows no partial chain") {
  auto upstream = UpstreamTls::create("");
  REQUIRE(upstream.has_value());
  SSL_CTX* ctx = (*upstream)->ctx();
  CHECK((SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER) != 0);
  CHECK(SSL_CTX_get_min_proto_version(ctx) == TLS1_2_VERSION);
  CHECK((X509_VERIFY_PARAM_get_flags(SSL_CTX_get0_param(ctx)) & X509_V_FLAG_PARTIAL_CHAIN) == 0);
}

}  // namespace
}  // namespace egressd::tls

#include "tls/leaf_minter.h"

#include <fmt/format.h>
#include <openssl/err.h>

#include <algorithm>
#include <ctime>
#include <string_view>

#include "tls/certificate_fields.h"

namespace egressd::tls {
namespace {

constexpr long kBackdateSeconds = -3600;     // an hour of tolerance for clients whose clock is behind
constexpr size_t kMaxCommonNameLength = 64;  // ub-common-name (RFC 5280); the SAN carries the full name
constexpr size_t kMaxHostLength = 253;
constexpr std::string_view kHttp11 = "http/1.1";

// ALPN (RFC 7301) on the client-facing side: we speak HTTP/1.1 only. A client that offers only h2 gets no
// ALPN at all (NOACK) instead of a fatal no_application_protocol alert, and falls back to HTTP/1.1.
int select_http11(SSL* /*ssl*/, const unsigned char** out, unsigned char* out_length, const unsigned char* in,
                  unsigned int in_length, void* /*arg*/) {
  unsigned int offset = 0;
  while (offset < in_length) {
    const unsigned int length = in[offset];
    if (length == 0 || offset + 1 + length > in_length) break;  // malformed list: offer nothing
    const std::string_view offered(reinterpret_cast<const char*>(in + offset + 1), length);
    if (offered == kHttp11) {
      *out = in + offset + 1;
      *out_length = static_cast<unsigned char>(length);
      return SSL_TLSEXT_ERR_OK;
    }
    offset += 1 + length;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

// Letters, digits, '-', '_' and '.': what a DNS SAN for a CONNECT authority may hold. Anything else
// (spaces, commas, '*', control bytes) is not a host we mint for.
bool is_host_name(const std::string& host) {
  return std::all_of(host.begin(), host.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
  });
}

// subjectAltName with the one name: IP:host for a literal, else DNS:host. Built as ASN.1 rather than
// through the config-string parser, so that no host text is ever parsed as extension syntax.
bool add_subject_alt_name(X509* cert, const std::string& host, bool is_ip) {
  GeneralNamesPtr names(GENERAL_NAMES_new());
  if (names == nullptr) return false;
  GENERAL_NAME* name = GENERAL_NAME_new();
  if (name == nullptr) return false;
  if (is_ip) {
    ASN1_OCTET_STRING* address = a2i_IPADDRESS(host.c_str());
    if (address == nullptr) {
      GENERAL_NAME_free(name);
      return false;
    }
    GENERAL_NAME_set0_value(name, GEN_IPADD, address);
  } else {
    ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
    if (dns == nullptr || ASN1_STRING_set(dns, host.data(), static_cast<int>(host.size())) != 1) {
      ASN1_IA5STRING_free(dns);
      GENERAL_NAME_free(name);
      return false;
    }
    GENERAL_NAME_set0_value(name, GEN_DNS, dns);
  }
  if (sk_GENERAL_NAME_push(names.get(), name) <= 0) {
    GENERAL_NAME_free(name);
    return false;
  }
  return X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) == 1;
}

}  // namespace

LeafMinter::LeafMinter(std::shared_ptr<const CertificateAuthority> ca, std::chrono::hours validity)
    : ca_(std::move(ca)), validity_(validity) {
  leaf_key_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  // On failure mint() reports it; the constructor cannot, and must not throw.
  if (leaf_key_ == nullptr) ERR_clear_error();
}

Result<std::shared_ptr<const Leaf>, TlsError> LeafMinter::mint(const std::string& host) const {
  const std::string name = fields::normalize_host(host);
  auto mint_error = [&name](std::string_view what) {
    std::string detail = fmt::format("cannot mint a certificate for '{}': {}", name, what);
    const std::string queued = drain_openssl_errors();
    if (!queued.empty()) detail += " (" + queued + ")";
    return unexpected(TlsError{TlsError::Kind::Mint, std::move(detail)});
  };
  if (ca_ == nullptr) return mint_error("no CA");
  if (leaf_key_ == nullptr) return mint_error("the shared leaf key could not be generated");
  const bool is_ip = fields::is_ip_literal(name);
  if (name.empty() || name.size() > kMaxHostLength || (!is_ip && !is_host_name(name))) {
    return mint_error("not a host name or IP address");
  }

  ERR_clear_error();
  X509Ptr cert(X509_new());
  if (cert == nullptr) return mint_error("X509_new failed");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1) return mint_error("X509_set_version failed");
  if (!fields::set_random_serial(cert.get())) return mint_error("no random serial");

  X509NamePtr subject(X509_NAME_new());
  const std::string common_name = name.substr(0, kMaxCommonNameLength);
  if (subject == nullptr ||
      X509_NAME_add_entry_by_txt(subject.get(), "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                                 0) != 1 ||
      X509_set_subject_name(cert.get(), subject.get()) != 1) {
    return mint_error("cannot set the subject");
  }
  X509* ca_cert = ca_->certificate();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert)) != 1)
    return mint_error("cannot set the issuer");
  const std::time_t now = std::time(nullptr);
  const long validity_s =
      static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(validity_).count());
  if (!fields::set_validity(cert.get(), now, kBackdateSeconds, 0, validity_s)) {
    return mint_error("cannot set the validity period");
  }
  if (X509_set_pubkey(cert.get(), leaf_key_.get()) != 1) return mint_error("X509_set_pubkey failed");
  // "keyid,issuer": the CA's subject key identifier, or its issuer and serial for a CA that has none.
  if (!fields::add_extension(cert.get(), ca_cert, NID_basic_constraints, "critical,CA:FALSE") ||
      !fields::add_extension(cert.get(), ca_cert, NID_key_usage, "critical,digitalSignature") ||
      !fields::add_extension(cert.get(), ca_cert, NID_ext_key_usage, "serverAuth") ||
      !fields::add_extension(cert.get(), ca_cert, NID_subject_key_identifier, "hash") ||
      !fields::add_extension(cert.get(), ca_cert, NID_authority_key_identifier, "keyid,issuer") ||
      !add_subject_alt_name(cert.get(), name, is_ip)) {
    return mint_error("cannot add extensions");
  }
  if (X509_sign(cert.get(), ca_->key(), EVP_sha256()) <= 0) return mint_error("X509_sign failed");

  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (ctx == nullptr) return mint_error("SSL_CTX_new failed");
  if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1) {
    return mint_error("SSL_CTX_set_min_proto_version failed");
  }
  if (SSL_CTX_use_certificate(ctx.get(), cert.get()) != 1)
    return mint_error("SSL_CTX_use_certificate failed");
  // Leaf then CA: a client that trusts the CA ignores the extra copy, and one that does not is told which
  // CA it is missing ("self-signed certificate in certificate chain").
  if (SSL_CTX_add1_chain_cert(ctx.get(), ca_cert) != 1) return mint_error("SSL_CTX_add1_chain_cert failed");
  if (SSL_CTX_use_PrivateKey(ctx.get(), leaf_key_.get()) != 1)
    return mint_error("SSL_CTX_use_PrivateKey failed");
  if (SSL_CTX_check_private_key(ctx.get()) != 1)
    return mint_error("the leaf key does not match the certificate");
  // No renegotiation (a client could use it to make us do handshakes at will) and no resumption: each
  // leaf has its own context, so tickets would buy little and need key rotation.
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
  if (SSL_CTX_set_num_tickets(ctx.get(), 0) != 1) return mint_error("SSL_CTX_set_num_tickets failed");
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_alpn_select_cb(ctx.get(), select_http11, nullptr);

  auto leaf = std::make_shared<Leaf>();
  leaf->host = name;
  leaf->certificate = std::move(cert);
  leaf->server_ctx = std::move(ctx);
  leaf->not_after = std::chrono::system_clock::from_time_t(now) + validity_;
  return std::shared_ptr<const Leaf>(std::move(leaf));
}

}  // namespace egressd::tls

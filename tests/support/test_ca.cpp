#include "tests/support/test_ca.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <stdexcept>
#include <utility>

#include "tests/support/temp_dir.h"

namespace egressd::test {
namespace {

constexpr long kNotBeforeSeconds = -60 * 60;     // an hour ago: tolerates a little clock skew
constexpr long kNotAfterSeconds = 24 * 60 * 60;  // a day: longer than any test run

// Throws with `what` and the first queued OpenSSL error (the queue is cleared).
[[noreturn]] void fail(const std::string& what) {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  char reason[256] = "no OpenSSL error queued";
  if (code != 0) ERR_error_string_n(code, reason, sizeof reason);
  throw std::runtime_error("TestCa: " + what + ": " + reason);
}

EvpPkeyPtr new_p256_key() {
  std::unique_ptr<EVP_PKEY_CTX, OpenSslFree<EVP_PKEY_CTX_free>> context(
      EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* key = nullptr;
  if (!context || EVP_PKEY_keygen_init(context.get()) != 1 ||
      EVP_PKEY_CTX_set_group_name(context.get(), "P-256") != 1 || EVP_PKEY_keygen(context.get(), &key) != 1) {
    fail("generating a P-256 key");
  }
  return EvpPkeyPtr(key);
}

std::string read_all(BIO* bio) {
  BUF_MEM* memory = nullptr;
  BIO_get_mem_ptr(bio, &memory);
  return std::string(memory->data, memory->length);
}

std::string cert_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) fail("writing a certificate as PEM");
  return read_all(bio.get());
}

std::string key_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    fail("writing a private key as PEM");
  }
  return read_all(bio.get());
}

// Adds the extension `nid` written in openssl.cnf syntax ("critical,CA:TRUE"). `issuer` may be `cert`.
void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
  const X509ExtensionPtr extension(X509V3_EXT_conf_nid(nullptr, &context, nid, value));
  if (!extension || X509_add_ext(cert, extension.get(), -1) != 1) {
    fail(std::string("adding ") + OBJ_nid2sn(nid) + " = " + value);
  }
}

// subjectAltName: IP entries for IP literals, DNS entries for everything else.
void add_subject_alt_names(X509* cert, const std::vector<std::string>& names) {
  GeneralNamesPtr alt_names(sk_GENERAL_NAME_new_null());
  if (!alt_names) fail("allocating subjectAltName");
  for (const std::string& name : names) {
    GeneralNamePtr entry(GENERAL_NAME_new());
    if (!entry) fail("allocating a GENERAL_NAME");
    if (ASN1_OCTET_STRING* ip = a2i_IPADDRESS(name.c_str())) {
      GENERAL_NAME_set0_value(entry.get(), GEN_IPADD, ip);
    } else {
      ERR_clear_error();  // not an IP literal: a DNS name
      ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
      if (!dns || ASN1_STRING_set(dns, name.data(), static_cast<int>(name.size())) != 1) {
        ASN1_IA5STRING_free(dns);
        fail("encoding DNS name " + name);
      }
      GENERAL_NAME_set0_value(entry.get(), GEN_DNS, dns);
    }
    if (sk_GENERAL_NAME_push(alt_names.get(), entry.get()) == 0) fail("adding " + name);
    entry.release();  // owned by alt_names now
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, alt_names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    fail("adding subjectAltName");
  }
}

X509NamePtr name_with_cn(const std::string& common_name) {
  X509NamePtr name(X509_NAME_new());
  const auto add = [&](const char* field, const std::string& value) {
    if (X509_NAME_add_entry_by_txt(name.get(), field, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1, 0) != 1) {
      fail(std::string("setting ") + field + " = " + value);
    }
  };
  if (!name) fail("allocating a name");
  add("O", "egressd tests");
  add("CN", common_name.substr(0, 64));  // ub-common-name
  return name;
}

struct CertSpec {
  std::string common_name;
  bool ca = false;
  std::vector<std::string> names = {};  // subjectAltName (server certificates only)
};

// A certificate for `subject_key`, signed by `signing_key` on behalf of `issuer` (nullptr: self-signed).
X509Ptr make_cert(const CertSpec& spec, EVP_PKEY* subject_key, X509* issuer, EVP_PKEY* signing_key) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) fail("allocating a certificate");
  const BignumPtr serial(BN_new());
  if (!serial || BN_rand(serial.get(), 159, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1 ||
      !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get()))) {
    fail("drawing a serial number");
  }
  if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), kNotBeforeSeconds) ||
      !X509_gmtime_adj(X509_getm_notAfter(cert.get()), kNotAfterSeconds)) {
    fail("setting the validity");
  }
  const X509NamePtr subject = name_with_cn(spec.common_name);
  if (X509_set_subject_name(cert.get(), subject.get()) != 1 ||
      X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : subject.get()) != 1 ||
      X509_set_pubkey(cert.get(), subject_key) != 1) {
    fail("setting the names and key");
  }
  X509* const signer = issuer ? issuer : cert.get();
  add_extension(cert.get(), signer, NID_subject_key_identifier, "hash");
  if (spec.ca) {
    add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), signer, NID_key_usage, "critical,digitalSignature");
    add_extension(cert.get(), signer, NID_ext_key_usage, "serverAuth");
    add_subject_alt_names(cert.get(), spec.names);
  }
  if (issuer) add_extension(cert.get(), signer, NID_authority_key_identifier, "keyid:always");
  if (X509_sign(cert.get(), signing_key, EVP_sha256()) <= 0) fail("signing the certificate");
  return cert;
}

void require_names(const std::vector<std::string>& names) {
  if (names.empty()) throw std::runtime_error("TestCa: a server certificate needs at least one name");
}

}  // namespace

TestCa::TestCa(std::string dir, X509Ptr cert, EvpPkeyPtr key)
    : dir_(std::move(dir)),
      ca_path_(dir_ + "/origin-ca.pem"),
      ca_pem_(cert_pem(cert.get())),
      cert_(std::move(cert)),
      key_(std::move(key)) {}
TestCa::TestCa(TestCa&&) noexcept = default;
TestCa::~TestCa() = default;

TestCa TestCa::create(const std::string& dir, std::string common_name) {
  EvpPkeyPtr key = new_p256_key();
  X509Ptr cert =
      make_cert({.common_name = std::move(common_name), .ca = true}, key.get(), nullptr, key.get());
  TestCa ca(dir, std::move(cert), std::move(key));
  write_file(ca.ca_path_, ca.ca_pem_);
  return ca;
}

ServerCert TestCa::issue(std::vector<std::string> names, const std::string& file_stem) const {
  require_names(names);
  const EvpPkeyPtr key = new_p256_key();
  const X509Ptr cert = make_cert({.common_name = names.front(), .names = std::move(names)}, key.get(),
                                 cert_.get(), key_.get());
  ServerCert server{.cert_pem = cert_pem(cert.get()), .key_pem = key_pem(key.get())};
  if (!file_stem.empty()) {
    server.cert_path = dir_ + "/" + file_stem + ".pem";
    server.key_path = dir_ + "/" + file_stem + "-key.pem";
    write_file(server.cert_path, server.cert_pem);
    write_file(server.key_path, server.key_pem);
  }
  return server;
}

ServerCert TestCa::self_signed_server(std::vector<std::string> names) {
  require_names(names);
  const EvpPkeyPtr key = new_p256_key();
  const X509Ptr cert =
      make_cert({.common_name = names.front(), .names = std::move(names)}, key.get(), nullptr, key.get());
  return ServerCert{.cert_pem = cert_pem(cert.get()), .key_pem = key_pem(key.get())};
}

}  // namespace egressd::test

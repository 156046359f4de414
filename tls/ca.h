// The corporate CA that signs minted leaf certificates: loaded from PEM files, or generated on first run
// into a state directory. Immutable once built; shared as std::shared_ptr<const CertificateAuthority>.
#pragma once

#include <memory>
#include <string>

#include "common/result.h"
#include "tls/error.h"
#include "tls/ssl_ptr.h"

namespace egressd::tls {

class CertificateAuthority {
 public:
  // Loads a CA certificate and its private key (PEM; RSA or EC). Refuses, with a message naming the
  // file and what to do: a key readable by group or others, an unreadable file, a key that does not
  // match the certificate, a certificate that is not a CA (basicConstraints CA:TRUE) or has expired,
  // an encrypted key (it never prompts). cert_path() is made absolute.
  static Result<std::shared_ptr<const CertificateAuthority>, TlsError> load(const std::string& cert_path,
                                                                            const std::string& key_path);

  // Creates a new CA in `dir` (ca.pem mode 0644, ca-key.pem mode 0600; the directory is created 0700 if
  // missing): P-256 key, basicConstraints critical CA:TRUE pathlen:0, keyUsage critical keyCertSign and
  // cRLSign, subject key identifier, 10 years. Refuses to overwrite existing files.
  static Result<std::shared_ptr<const CertificateAuthority>, TlsError> generate(
      const std::string& dir, const std::string& common_name);

  // Loads `dir`/ca.pem and `dir`/ca-key.pem if both exist, else generate()s them. `created` tells which.
  static Result<std::shared_ptr<const CertificateAuthority>, TlsError> load_or_generate(
      const std::string& dir, bool& created);

  X509* certificate() const { return cert_.get(); }  // borrowed; valid while this object lives
  EVP_PKEY* key() const { return key_.get(); }       // borrowed; never formatted or logged
  const std::string& cert_path() const { return cert_path_; }
  std::string subject() const;             // one-line subject, e.g. "CN=egressd CA"
  std::string sha256_fingerprint() const;  // "AB:CD:..." of the DER certificate

 private:
  X509Ptr cert_;
  EvpPkeyPtr key_;
  std::string cert_path_;
};

// Shell lines a client environment needs to trust `ca_cert_path` (curl, git, python, requests, pip,
// node, npm): printed by `egressd ca init` and on first generation.
std::string client_trust_instructions(const std::string& ca_cert_path);

}  // namespace egressd::tls

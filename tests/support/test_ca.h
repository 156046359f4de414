// A throwaway certificate authority for HTTPS origins in tests, made with the OpenSSL 3 API directly (not
// the openssl CLI, not egressd's tls/ module: tests must not trust the code under test). egressd is given
// ca_path() with --upstream-ca, and a LocalOrigin::https serves a certificate issue() minted for whatever
// names the test requests (say mirror.example.com, resolved to 127.0.0.1 with --resolve). Keys are P-256;
// certificates are valid from an hour ago for a day. Failures throw std::runtime_error.
#pragma once

#include <string>
#include <vector>

#include "tests/support/openssl_ptr.h"

namespace egressd::test {

// A server certificate and its private key, PEM-encoded. The paths are set only when files were written.
struct ServerCert {
  std::string cert_pem;
  std::string key_pem;
  std::string cert_path = {};
  std::string key_path = {};
};

class TestCa {
 public:
  // A new CA (self-signed, CA:TRUE, P-256); writes its certificate to dir/origin-ca.pem.
  static TestCa create(const std::string& dir, std::string common_name = "egressd test origin CA");
  // A server certificate for `names` signed by its own key, not by any CA: what no client should trust.
  static ServerCert self_signed_server(std::vector<std::string> names);

  TestCa(TestCa&&) noexcept;
  TestCa& operator=(TestCa&&) = delete;
  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;
  ~TestCa();

  // A server certificate signed by this CA. Each name becomes a subjectAltName: an IP entry for an IP
  // literal ("127.0.0.1", "::1"), a DNS entry otherwise ("mirror.example.com", "*.example.com"); the first
  // is also the subject CN. EKU serverAuth, a random serial. With a `file_stem`, also writes
  // dir/<stem>.pem and dir/<stem>-key.pem (dir as given to create()) and sets the paths.
  ServerCert issue(std::vector<std::string> names, const std::string& file_stem = {}) const;

  const std::string& ca_path() const { return ca_path_; }  // dir/origin-ca.pem
  const std::string& ca_pem() const { return ca_pem_; }

 private:
  TestCa(std::string dir, X509Ptr cert, EvpPkeyPtr key);

  std::string dir_;
  std::string ca_path_;
  std::string ca_pem_;
  X509Ptr cert_;
  EvpPkeyPtr key_;
};

}  // namespace egressd::test

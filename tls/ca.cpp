#include "tls/ca.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <system_error>

#include "common/unique_fd.h"
#include "tls/certificate_fields.h"

namespace egressd::tls {
namespace {

constexpr const char* kCertFileName = "ca.pem";
constexpr const char* kKeyFileName = "ca-key.pem";
constexpr const char* kDefaultCommonName = "egressd CA";
constexpr off_t kMaxPemBytes = 1 << 20;  // a CA file is a few KiB; anything bigger is not one
constexpr int kValidityDays = 3650;
constexpr long kBackdateSeconds = -3600;  // an hour of tolerance for clients whose clock is behind

TlsError ca_error(std::string detail) {
  return TlsError{TlsError::Kind::CaUnusable, std::move(detail)};
}

// `detail`, followed by whatever OpenSSL queued to explain it.
std::string with_openssl_errors(std::string detail) {
  const std::string queued = drain_openssl_errors();
  if (!queued.empty()) detail += " (" + queued + ")";
  return detail;
}

std::string errno_text(int error) {
  return std::strerror(error);
}

// The whole of `path`. A `secret` file (a private key) must not be accessible to group or others: the
// mode is checked on the open descriptor before a byte is read.
Result<std::string, TlsError> read_pem_file(const std::string& path, const char* what, bool secret) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0)
    return unexpected(ca_error(fmt::format("cannot read {} {}: {}", what, path, errno_text(errno))));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return unexpected(ca_error(fmt::format("cannot stat {} {}: {}", what, path, errno_text(errno))));
  }
  if (!S_ISREG(st.st_mode))
    return unexpected(ca_error(fmt::format("{} {} is not a regular file", what, path)));
  const unsigned mode = st.st_mode & 07777;
  if (secret && (mode & 044) != 0) {
    return unexpected(ca_error(fmt::format(
        "{} {} is readable by group or others (mode {:04o}); run `chmod 600 {}`", what, path, mode, path)));
  }
  if (secret && (mode & 077) != 0) {
    return unexpected(ca_error(fmt::format(
        "{} {} is accessible to group or others (mode {:04o}); run `chmod 600 {}`", what, path, mode, path)));
  }
  if (st.st_size > kMaxPemBytes) {
    return unexpected(
        ca_error(fmt::format("{} {} is too large to be a PEM file ({} bytes)", what, path, st.st_size)));
  }
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return unexpected(ca_error(fmt::format("cannot read {} {}: {}", what, path, errno_text(errno))));
    }
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > static_cast<size_t>(kMaxPemBytes)) {
      return unexpected(ca_error(fmt::format("{} {} is too large to be a PEM file", what, path)));
    }
  }
  return text;
}

// A PEM password callback that never prompts: an encrypted key is refused rather than waiting on a tty.
int refuse_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* asked) {
  *static_cast<bool*>(asked) = true;
  return -1;
}

Result<X509Ptr, TlsError> parse_certificate(const std::string& pem, const std::string& path) {
  ERR_clear_error();
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return unexpected(ca_error(with_openssl_errors("BIO_new_mem_buf failed")));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return unexpected(ca_error(with_openssl_errors(fmt::format(
        "CA certificate {} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)", path))));
  }
  return cert;
}

Result<EvpPkeyPtr, TlsError> parse_private_key(const std::string& pem, const std::string& path) {
  ERR_clear_error();
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return unexpected(ca_error(with_openssl_errors("BIO_new_mem_buf failed")));
  bool passphrase_asked = false;
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, refuse_passphrase, &passphrase_asked));
  if (key == nullptr && passphrase_asked) {
    ERR_clear_error();
    return unexpected(ca_error(fmt::format(
        "CA key {} is encrypted; egressd needs it unencrypted (protected by mode 0600 instead)", path)));
  }
  if (key == nullptr) {
    return unexpected(ca_error(with_openssl_errors(fmt::format("CA key {} holds no PEM private key", path))));
  }
  return key;
}

// Everything that makes a certificate and key usable for signing leaves, checked once at load.
Result<void, TlsError> check_usable(X509* cert, EVP_PKEY* key, const std::string& cert_path,
                                    const std::string& key_path) {
  const int key_type = EVP_PKEY_get_base_id(key);
  if (key_type != EVP_PKEY_RSA && key_type != EVP_PKEY_EC) {
    const char* name = EVP_PKEY_get0_type_name(key);
    return unexpected(ca_error(fmt::format("CA key {} is a {} key; egressd signs with RSA or EC keys",
                                           key_path, name != nullptr ? name : "unknown")));
  }
  const EVP_PKEY* cert_key = X509_get0_pubkey(cert);
  if (cert_key == nullptr || EVP_PKEY_eq(cert_key, key) != 1) {
    ERR_clear_error();
    return unexpected(
        ca_error(fmt::format("CA key {} does not match the certificate {}", key_path, cert_path)));
  }
  // Also computes and caches the parsed extensions, so that later concurrent readers (the minter on
  // the thread pool) only read them.
  const uint32_t flags = X509_get_extension_flags(cert);
  if ((flags & EXFLAG_INVALID) != 0) {
    return unexpected(
        ca_error(with_openssl_errors(fmt::format("CA certificate {} has malformed extensions", cert_path))));
  }
  if ((flags & EXFLAG_CA) == 0) {
    return unexpected(ca_error(fmt::format(
        "CA certificate {} is not a CA certificate (it lacks basicConstraints CA:TRUE)", cert_path)));
  }
  if ((flags & EXFLAG_KUSAGE) != 0 && (X509_get_key_usage(cert) & KU_KEY_CERT_SIGN) == 0) {
    return unexpected(ca_error(fmt::format(
        "CA certificate {} may not sign certificates (its keyUsage lacks keyCertSign)", cert_path)));
  }
  const int starts = X509_cmp_current_time(X509_get0_notBefore(cert));
  const int ends = X509_cmp_current_time(X509_get0_notAfter(cert));
  if (starts == 0 || ends == 0) {
    ERR_clear_error();
    return unexpected(
        ca_error(fmt::format("CA certificate {} has an unreadable validity period", cert_path)));
  }
  if (starts > 0) {
    return unexpected(ca_error(fmt::format("CA certificate {} is not valid before {}", cert_path,
                                           fields::time_text(X509_get0_notBefore(cert)))));
  }
  if (ends < 0) {
    return unexpected(ca_error(fmt::format("CA certificate {} expired on {}", cert_path,
                                           fields::time_text(X509_get0_notAfter(cert)))));
  }
  return {};
}

// `path` made absolute (without resolving symlinks), so trust instructions work from any directory.
std::string absolute_path(const std::string& path) {
  std::error_code error;
  std::filesystem::path absolute = std::filesystem::absolute(path, error);
  return error ? path : absolute.lexically_normal().string();
}

bool path_exists(const std::string& path) {
  struct stat st {};
  // Anything but "does not exist" counts as there, so that load() reports the real problem.
  return ::lstat(path.c_str(), &st) == 0 || errno != ENOENT;
}

Result<void, TlsError> ensure_directory(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode))
      return unexpected(ca_error(fmt::format("{} exists and is not a directory", dir)));
    return {};
  }
  if (errno != ENOENT) {
    return unexpected(ca_error(fmt::format("cannot use CA directory {}: {}", dir, errno_text(errno))));
  }
  if (::mkdir(dir.c_str(), 0700) != 0) {
    const int error = errno;
    return unexpected(ca_error(fmt::format("cannot create CA directory {}: {}{}", dir, errno_text(error),
                                           error == ENOENT ? " (its parent directory does not exist)" : "")));
  }
  // mkdir's mode passed through the umask; the key's directory is the owner's alone whatever it is.
  if (::chmod(dir.c_str(), 0700) != 0) {
    return unexpected(ca_error(fmt::format("cannot chmod 0700 CA directory {}: {}", dir, errno_text(errno))));
  }
  return {};
}

// Creates `path` with exactly `mode` (never more open, not even briefly) and writes `text` to it.
// Refuses an existing file. On failure nothing is left behind.
Result<void, TlsError> write_new_file(const std::string& path, const std::string& text, mode_t mode) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
  if (fd.get() < 0) {
    if (errno == EEXIST) {
      return unexpected(ca_error(fmt::format("{} already exists; refusing to overwrite a CA file", path)));
    }
    return unexpected(ca_error(fmt::format("cannot create {}: {}", path, errno_text(errno))));
  }
  auto fail = [&path](const char* call) {
    const int error = errno;
    ::unlink(path.c_str());
    return unexpected(ca_error(fmt::format("{} {}: {}", call, path, errno_text(error))));
  };
  // The umask may have removed bits from `mode` (0644 for the certificate); set exactly what we mean.
  if (::fchmod(fd.get(), mode) != 0) return fail("fchmod");
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd.get(), text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("write");
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return fail("fsync");
  if (::close(fd.release()) != 0) return fail("close");
  return {};
}

Result<std::string, TlsError> to_pem(auto write_fn) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || write_fn(bio.get()) != 1) {
    return unexpected(ca_error(with_openssl_errors("cannot encode the new CA as PEM")));
  }
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(length));
}

// A self-signed CA certificate for `key`: see CertificateAuthority::generate.
Result<X509Ptr, TlsError> make_ca_certificate(EVP_PKEY* key, const std::string& common_name) {
  auto failed = [](const char* step) {
    return unexpected(
        ca_error(with_openssl_errors(fmt::format("cannot build the CA certificate: {} failed", step))));
  };
  X509Ptr cert(X509_new());
  if (cert == nullptr) return failed("X509_new");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1) return failed("X509_set_version");
  if (!fields::set_random_serial(cert.get())) return failed("setting a random serial");
  X509_NAME* name = X509_get_subject_name(cert.get());
  const auto* organization = reinterpret_cast<const unsigned char*>("egressd");
  const auto* cn = reinterpret_cast<const unsigned char*>(common_name.c_str());
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, organization, -1, -1, 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, cn, -1, -1, 0) != 1) {
    return failed("X509_NAME_add_entry_by_txt");
  }
  if (X509_set_issuer_name(cert.get(), name) != 1) return failed("X509_set_issuer_name");
  if (!fields::set_validity(cert.get(), std::time(nullptr), kBackdateSeconds, kValidityDays, 0)) {
    return failed("setting the validity period");
  }
  if (X509_set_pubkey(cert.get(), key) != 1) return failed("X509_set_pubkey");
  if (!fields::add_extension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
      !fields::add_extension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign") ||
      !fields::add_extension(cert.get(), cert.get(), NID_subject_key_identifier, "hash")) {
    return failed("adding extensions");
  }
  if (X509_sign(cert.get(), key, EVP_sha256()) <= 0) return failed("X509_sign");
  return cert;
}

// Adds single quotes when the shell would otherwise split or expand `word`.
std::string shell_word(const std::string& word) {
  const bool plain = !word.empty() && word.find_first_not_of(
                                          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                          "0123456789/._-+,:@%") == std::string::npos;
  if (plain) return word;
  std::string quoted = "'";
  for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

}  // namespace

Result<std::shared_ptr<const CertificateAuthority>, TlsError> CertificateAuthority::load(
    const std::string& cert_path, const std::string& key_path) {
  Result<std::string, TlsError> cert_pem = read_pem_file(cert_path, "CA certificate", false);
  if (!cert_pem) return unexpected(std::move(cert_pem).error());
  Result<std::string, TlsError> key_pem = read_pem_file(key_path, "CA key", true);
  if (!key_pem) return unexpected(std::move(key_pem).error());
  Result<X509Ptr, TlsError> cert = parse_certificate(*cert_pem, cert_path);
  if (!cert) return unexpected(std::move(cert).error());
  Result<EvpPkeyPtr, TlsError> key = parse_private_key(*key_pem, key_path);
  if (!key) return unexpected(std::move(key).error());
  if (Result<void, TlsError> usable = check_usable(cert->get(), key->get(), cert_path, key_path); !usable) {
    return unexpected(std::move(usable).error());
  }
  auto ca = std::make_shared<CertificateAuthority>();
  ca->cert_ = std::move(*cert);
  ca->key_ = std::move(*key);
  ca->cert_path_ = absolute_path(cert_path);
  return std::shared_ptr<const CertificateAuthority>(std::move(ca));
}

Result<std::shared_ptr<const CertificateAuthority>, TlsError> CertificateAuthority::generate(
    const std::string& dir, const std::string& common_name) {
  if (common_name.empty()) return unexpected(ca_error("the CA's common name is empty"));
  if (Result<void, TlsError> made = ensure_directory(dir); !made) return unexpected(std::move(made).error());
  const std::string cert_path = dir + "/" + kCertFileName;
  const std::string key_path = dir + "/" + kKeyFileName;
  for (const std::string& path : {cert_path, key_path}) {
    if (path_exists(path)) {
      return unexpected(ca_error(fmt::format("{} already exists; refusing to overwrite a CA file", path)));
    }
  }

  ERR_clear_error();
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (key == nullptr)
    return unexpected(ca_error(with_openssl_errors("cannot generate a P-256 key for the CA")));
  Result<X509Ptr, TlsError> cert = make_ca_certificate(key.get(), common_name);
  if (!cert) return unexpected(std::move(cert).error());
  Result<std::string, TlsError> key_pem = to_pem([&key](BIO* bio) {
    return PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  });
  if (!key_pem) return unexpected(std::move(key_pem).error());
  Result<std::string, TlsError> cert_pem =
      to_pem([&cert](BIO* bio) { return PEM_write_bio_X509(bio, cert->get()); });
  if (!cert_pem) return unexpected(std::move(cert_pem).error());

  if (Result<void, TlsError> written = write_new_file(key_path, *key_pem, 0600); !written) {
    return unexpected(std::move(written).error());
  }
  if (Result<void, TlsError> written = write_new_file(cert_path, *cert_pem, 0644); !written) {
    ::unlink(key_path.c_str());  // a key without its certificate would block the next load_or_generate
    return unexpected(std::move(written).error());
  }
  auto ca = std::make_shared<CertificateAuthority>();
  ca->cert_ = std::move(*cert);
  ca->key_ = std::move(key);
  ca->cert_path_ = absolute_path(cert_path);
  X509_get_extension_flags(ca->cert_.get());  // cache the parsed extensions before any concurrent reader
  return std::shared_ptr<const CertificateAuthority>(std::move(ca));
}

Result<std::shared_ptr<const CertificateAuthority>, TlsError> CertificateAuthority::load_or_generate(
    const std::string& dir, bool& created) {
  created = false;
  const std::string cert_path = dir + "/" + kCertFileName;
  const std::string key_path = dir + "/" + kKeyFileName;
  const bool have_cert = path_exists(cert_path);
  const bool have_key = path_exists(key_path);
  if (have_cert && have_key) return load(cert_path, key_path);
  if (have_cert != have_key) {
    const std::string& present = have_cert ? cert_path : key_path;
    const std::string& missing = have_cert ? key_path : cert_path;
    return unexpected(ca_error(
        fmt::format("found {} but not {}: restore the missing file, or remove {} to generate a new CA",
                    present, missing, present)));
  }
  auto generated = generate(dir, kDefaultCommonName);
  if (generated) created = true;
  return generated;
}

std::string CertificateAuthority::subject() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  // RFC 2253 order (most specific first) with ", " separators and UTF-8 kept: "CN=egressd CA, O=egressd".
  const unsigned long flags =
      (ASN1_STRFLGS_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) | XN_FLAG_SEP_CPLUS_SPC | XN_FLAG_DN_REV | XN_FLAG_FN_SN;
  if (bio == nullptr || X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert_.get()), 0, flags) < 0) {
    ERR_clear_error();
    return "(unprintable subject)";
  }
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(length));
}

std::string CertificateAuthority::sha256_fingerprint() const {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (X509_digest(cert_.get(), EVP_sha256(), digest, &length) != 1) {
    ERR_clear_error();
    return "";
  }
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string text;
  for (unsigned int i = 0; i < length; ++i) {
    if (i > 0) text += ':';
    text += kHex[digest[i] >> 4];
    text += kHex[digest[i] & 0x0f];
  }
  return text;
}

std::string client_trust_instructions(const std::string& ca_cert_path) {
  const std::string ca = shell_word(ca_cert_path);
  const std::string bundle = "\"$HOME/.egressd-ca-bundle.pem\"";
  return fmt::format(
      "# curl, git, wget, python (requests and ssl), pip and npm use the file they are given instead of the\n"
      "# system CAs, so give them a bundle of the system CAs plus this one:\n"
      "cat /etc/ssl/certs/ca-certificates.crt {ca} > {bundle}\n"
      "export CURL_CA_BUNDLE={bundle}\n"
      "export GIT_SSL_CAINFO={bundle}\n"
      "export REQUESTS_CA_BUNDLE={bundle}\n"
      "export SSL_CERT_FILE={bundle}\n"
      "export PIP_CERT={bundle}\n"
      "export NPM_CONFIG_CAFILE={bundle}\n"
      "printf 'ca_certificate = %s\\n' {bundle} > \"$HOME/.egressd-wgetrc\"\n"
      "export WGETRC=\"$HOME/.egressd-wgetrc\"\n"
      "# node adds this file to its built-in CAs:\n"
      "export NODE_EXTRA_CA_CERTS={ca}\n"
      "# Or trust it system-wide on Debian/Ubuntu, for curl, git, wget and python's ssl (node still needs\n"
      "# NODE_EXTRA_CA_CERTS):\n"
      "#   sudo cp {ca} /usr/local/share/ca-certificates/egressd.crt && sudo update-ca-certificates\n",
      fmt::arg("ca", ca), fmt::arg("bundle", bundle));
}

}  // namespace egressd::tls

#include "tls/error.h"

#include <openssl/err.h>

namespace egressd::tls {

std::string drain_openssl_errors() {
  std::string joined;
  const char* data = nullptr;
  int flags = 0;
  while (unsigned long code = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    if (!joined.empty()) joined += "; ";
    joined += text;
    // The optional data names the object involved (a file, a provider); never key material.
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr && *data != '\0') {
      joined += " (";
      joined += data;
      joined += ")";
    }
  }
  return joined;
}

}  // namespace egressd::tls

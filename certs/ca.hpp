#pragma once
// The local certificate authority: created once per install in `ca.dir`, never shipped.
// ca.key is 0600 and leakscope refuses to start when anyone but the owner can read it.

#include "certs/openssl_ptr.hpp"

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace leakscope::certs {

// Start-up failure around the CA; the message names the file and the fix.
class ca_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class certificate_authority {
 public:
  // Loads ca.pem/ca.key from `dir`, or creates both (and the folder, 0700) when neither exists.
  static certificate_authority load_or_create(const std::filesystem::path& dir);
  // Loads an existing pair; throws ca_error when missing, mismatched or too open.
  static certificate_authority load(const std::filesystem::path& dir);

  X509* cert() const { return cert_.get(); }
  EVP_PKEY* key() const { return key_.get(); }
  const std::filesystem::path& cert_file() const { return cert_file_; }
  bool created() const { return created_; }

  std::string pem() const;
  std::vector<std::uint8_t> der() const;
  // "AB:CD:…" SHA-256 of the DER certificate, as browsers and `openssl x509 -fingerprint` show it.
  std::string sha256_fingerprint() const;
  // Android's system store names a CA file after the OpenSSL 0.9.8 subject hash: "9a5ba575.0".
  std::string android_file_name() const;

 private:
  certificate_authority(x509_ptr cert, pkey_ptr key, std::filesystem::path cert_file, bool created)
      : cert_(std::move(cert)), key_(std::move(key)), cert_file_(std::move(cert_file)), created_(created) {}

  x509_ptr cert_;
  pkey_ptr key_;
  std::filesystem::path cert_file_;
  bool created_ = false;
};

}  // namespace leakscope::certs

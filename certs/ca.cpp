#include "certs/ca.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace leakscope::certs {

std::string last_openssl_error() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) {
    return "unknown OpenSSL error";
  }
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}

namespace {

using bio_ptr = std::unique_ptr<BIO, openssl_deleter<BIO, BIO_free_all>>;

std::string bio_string(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr || X509_add_ext(cert, ext, -1) != 1) {
    X509_EXTENSION_free(ext);
    throw ca_error("cannot add certificate extension " + std::string(OBJ_nid2sn(nid)) + ": " +
                   last_openssl_error());
  }
  X509_EXTENSION_free(ext);
}

// Writes `text` to a new file with `mode`, failing rather than overwriting anything.
void write_new_file(const std::filesystem::path& file, const std::string& text, mode_t mode) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    throw ca_error(file.string() + ": cannot create (" + std::strerror(errno) + ")");
  }
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      ::close(fd);
      throw ca_error(file.string() + ": cannot write (" + std::strerror(errno) + ")");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    throw ca_error(file.string() + ": cannot write (" + std::strerror(errno) + ")");
  }
}

std::string host_label() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') {
    return "localhost";
  }
  return std::string(name).substr(0, 24);
}

void create_pair(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    throw ca_error(dir.string() + ": cannot create the CA folder (" + ec.message() + ")");
  }
  ::chmod(dir.c_str(), 0700);

  pkey_ptr key(EVP_EC_gen("P-256"));
  x509_ptr cert(X509_new());
  if (!key || !cert) {
    throw ca_error("cannot generate the CA key: " + last_openssl_error());
  }
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -24 * 3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 10L * 365 * 24 * 3600);

  // A per-install name, so two labs' CAs are never confused on a phone's trust list.
  char suffix[9];
  unsigned char r[4];
  RAND_bytes(r, sizeof r);
  std::snprintf(suffix, sizeof suffix, "%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
  const std::string cn = "leakscope CA " + host_label() + " " + suffix;
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("leakscope"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key.get());
  add_extension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
  add_extension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  add_extension(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
  add_extension(cert.get(), cert.get(), NID_authority_key_identifier, "keyid:always");
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
    throw ca_error("cannot sign the CA certificate: " + last_openssl_error());
  }

  bio_ptr key_bio(BIO_new(BIO_s_mem()));
  bio_ptr cert_bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  PEM_write_bio_X509(cert_bio.get(), cert.get());
  write_new_file(dir / "ca.key", bio_string(key_bio.get()), 0600);
  write_new_file(dir / "ca.pem", bio_string(cert_bio.get()), 0644);
}

// Reads one PEM object with OpenSSL's `read(FILE*, …)` function of its type.
template <class Ptr, class Read>
Ptr read_pem(const std::filesystem::path& file, Read read, const char* what) {
  std::FILE* f = std::fopen(file.c_str(), "rb");
  if (f == nullptr) {
    throw ca_error(file.string() + ": cannot open (" + std::strerror(errno) + ")");
  }
  Ptr object(read(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  if (!object) {
    throw ca_error(file.string() + ": not a PEM " + what + " (" + last_openssl_error() + ")");
  }
  return object;
}

}  // namespace

certificate_authority certificate_authority::load_or_create(const std::filesystem::path& dir) {
  const bool has_key = std::filesystem::exists(dir / "ca.key");
  const bool has_cert = std::filesystem::exists(dir / "ca.pem");
  if (has_key != has_cert) {
    throw ca_error(dir.string() + ": has " + (has_key ? "ca.key but no ca.pem" : "ca.pem but no ca.key") +
                   "; restore the missing file or empty the folder to create a new CA");
  }
  if (!has_key) {
    create_pair(dir);
    auto ca = load(dir);
    ca.created_ = true;
    return ca;
  }
  return load(dir);
}

certificate_authority certificate_authority::load(const std::filesystem::path& dir) {
  const auto key_file = dir / "ca.key";
  const auto cert_file = dir / "ca.pem";
  struct stat st {};
  if (::stat(key_file.c_str(), &st) != 0) {
    throw ca_error(key_file.string() + ": cannot read the CA key (" + std::strerror(errno) + ")");
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
    throw ca_error(key_file.string() + ": the CA key is readable by group or others (mode " + mode +
                   "); run chmod 600 " + key_file.string());
  }
  auto key = read_pem<pkey_ptr>(key_file, PEM_read_PrivateKey, "private key");
  auto cert = read_pem<x509_ptr>(cert_file, PEM_read_X509, "certificate");
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    throw ca_error(cert_file.string() + ": does not match " + key_file.string());
  }
  return certificate_authority(std::move(cert), std::move(key), std::filesystem::absolute(cert_file), false);
}

std::string certificate_authority::pem() const {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert_.get());
  return bio_string(bio.get());
}

std::vector<std::uint8_t> certificate_authority::der() const {
  unsigned char* out = nullptr;
  const int n = i2d_X509(cert_.get(), &out);
  std::vector<std::uint8_t> bytes;
  if (n > 0) {
    bytes.assign(out, out + n);
  }
  OPENSSL_free(out);
  return bytes;
}

std::string certificate_authority::sha256_fingerprint() const {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  X509_digest(cert_.get(), EVP_sha256(), md, &len);
  std::string out;
  char hex[4];
  for (unsigned int i = 0; i < len; ++i) {
    std::snprintf(hex, sizeof hex, i + 1 < len ? "%02X:" : "%02X", md[i]);
    out += hex;
  }
  return out;
}

std::string certificate_authority::android_file_name() const {
  char name[16];
  std::snprintf(name, sizeof name, "%08lx.0", X509_subject_name_hash_old(cert_.get()));
  return name;
}

}  // namespace leakscope::certs

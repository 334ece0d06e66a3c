#include "certs/leaf.hpp"

#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <arpa/inet.h>
#include <cctype>

namespace leakscope::certs {

std::array<std::uint8_t, 16> random_serial() {
  std::array<std::uint8_t, 16> serial{};
  RAND_bytes(serial.data(), static_cast<int>(serial.size()));
  serial[0] &= 0x7f;
  serial[0] |= 0x01;  // never a leading zero byte: keeps the DER length fixed
  return serial;
}

namespace {

bool is_ip_literal(std::string_view host, unsigned char (&buf)[16], int& family) {
  const std::string h(host);
  if (inet_pton(AF_INET, h.c_str(), buf) == 1) {
    family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, h.c_str(), buf) == 1) {
    family = AF_INET6;
    return true;
  }
  return false;
}

bool add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  const bool ok = ext != nullptr && X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// The SAN is built as an ASN.1 structure, not from a config string, so a hostile SNI cannot
// smuggle extra names in through commas.
bool add_san(X509* cert, std::string_view host) {
  GENERAL_NAMES* names = sk_GENERAL_NAME_new_null();
  GENERAL_NAME* name = GENERAL_NAME_new();
  unsigned char ip[16];
  int family = 0;
  if (is_ip_literal(host, ip, family)) {
    ASN1_OCTET_STRING* value = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(value, ip, family == AF_INET ? 4 : 16);
    GENERAL_NAME_set0_value(name, GEN_IPADD, value);
  } else {
    ASN1_IA5STRING* value = ASN1_IA5STRING_new();
    ASN1_STRING_set(value, host.data(), static_cast<int>(host.size()));
    GENERAL_NAME_set0_value(name, GEN_DNS, value);
  }
  sk_GENERAL_NAME_push(names, name);
  const bool ok = X509_add1_ext_i2d(cert, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) == 1;
  GENERAL_NAMES_free(names);
  return ok;
}

}  // namespace

bool valid_leaf_host(std::string_view host) {
  unsigned char ip[16];
  int family = 0;
  if (is_ip_literal(host, ip, family)) {
    return true;
  }
  if (host.empty() || host.size() > 253 || host.front() == '.' || host.back() == '.') {
    return false;
  }
  if (host.rfind("*.", 0) == 0) {
    host.remove_prefix(2);
  }
  std::size_t label = 0;
  for (const char c : host) {
    if (c == '.') {
      if (label == 0) {
        return false;
      }
      label = 0;
      continue;
    }
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') || ++label > 63) {
      return false;
    }
  }
  return label > 0;
}

std::shared_ptr<const leaf_certificate> mint_leaf(const certificate_authority& ca, std::string_view host,
                                                  std::chrono::system_clock::time_point now,
                                                  const std::array<std::uint8_t, 16>& serial) {
  if (!valid_leaf_host(host)) {
    return nullptr;
  }
  auto leaf = std::make_shared<leaf_certificate>();
  leaf->key.reset(EVP_EC_gen("P-256"));
  leaf->cert.reset(X509_new());
  X509* x = leaf->cert.get();
  if (!leaf->key || x == nullptr) {
    return nullptr;
  }
  X509_set_version(x, 2);
  BIGNUM* bn = BN_bin2bn(serial.data(), static_cast<int>(serial.size()), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
  BN_free(bn);

  std::time_t t = std::chrono::system_clock::to_time_t(now);
  constexpr long day = 24 * 3600;
  X509_time_adj_ex(X509_getm_notBefore(x), -1, 0, &t);
  X509_time_adj_ex(X509_getm_notAfter(x), 365, 0, &t);
  leaf->not_after = now + std::chrono::seconds(365 * day);

  // CN is informational (clients match the SAN) and limited to 64 characters by RFC 5280.
  const std::string cn(host.substr(0, 64));
  X509_NAME* subject = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("leakscope"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(ca.cert()));
  X509_set_pubkey(x, leaf->key.get());

  const bool ok = add_san(x, host) &&
                  add_extension(x, ca.cert(), NID_basic_constraints, "critical,CA:FALSE") &&
                  add_extension(x, ca.cert(), NID_key_usage, "critical,digitalSignature") &&
                  add_extension(x, ca.cert(), NID_ext_key_usage, "serverAuth") &&
                  add_extension(x, ca.cert(), NID_subject_key_identifier, "hash") &&
                  add_extension(x, ca.cert(), NID_authority_key_identifier, "keyid:always") &&
                  X509_sign(x, ca.key(), EVP_sha256()) != 0;
  if (!ok) {
    last_openssl_error();
    return nullptr;
  }
  return leaf;
}

leaf_cache::leaf_cache(const certificate_authority& ca, std::size_t capacity, clock_fn clock, serial_fn serial)
    : ca_(ca),
      capacity_(std::max<std::size_t>(capacity, 1)),
      clock_(clock ? std::move(clock) : clock_fn([] { return std::chrono::system_clock::now(); })),
      serial_(serial ? std::move(serial) : serial_fn(random_serial)) {}

std::shared_ptr<const leaf_certificate> leaf_cache::get(std::string_view host_in) {
  std::string host(host_in);
  std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
  const auto now = clock_();
  // Re-mint a week before expiry so a long session never serves an expired leaf.
  const auto fresh_until = now + std::chrono::hours(24 * 7);

  std::lock_guard lock(mutex_);
  if (auto it = index_.find(host); it != index_.end()) {
    if (it->second->leaf->not_after > fresh_until) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->leaf;
    }
    lru_.erase(it->second);
    index_.erase(it);
  }
  auto leaf = mint_leaf(ca_, host, now, serial_());
  if (!leaf) {
    return nullptr;
  }
  ++mints_;
  lru_.push_front({host, leaf});
  index_[host] = lru_.begin();
  while (lru_.size() > capacity_) {
    index_.erase(lru_.back().host);
    lru_.pop_back();
  }
  return leaf;
}

std::size_t leaf_cache::size() const {
  std::lock_guard lock(mutex_);
  return lru_.size();
}

std::size_t leaf_cache::mint_count() const {
  std::lock_guard lock(mutex_);
  return mints_;
}

}  // namespace leakscope::certs

#include "certs/leaf.hpp"
#include "tests/temp_dir.hpp"

#include <doctest/doctest.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <sys/stat.h>

using namespace leakscope::certs;

namespace {

struct temp_dir : leakscope::testing::temp_dir {
  temp_dir() : leakscope::testing::temp_dir("certs") {}
};

unsigned mode_of(const std::filesystem::path& p) {
  struct stat st {};
  ::stat(p.c_str(), &st);
  return st.st_mode & 0777;
}

// Verifies `leaf` against `ca` the way a TLS client does: chain, purpose, and host or IP.
int verify(const certificate_authority& ca, X509* leaf, const char* host, const char* ip) {
  x509_store_ptr store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), ca.cert());
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store.get(), leaf, nullptr);
  X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx);
  if (host != nullptr) {
    X509_VERIFY_PARAM_set1_host(param, host, 0);
  }
  if (ip != nullptr) {
    X509_VERIFY_PARAM_set1_ip_asc(param, ip);
  }
  const int ok = X509_verify_cert(ctx);
  const int err = X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  return ok == 1 ? X509_V_OK : err;
}

}  // namespace

TEST_CASE("the CA is created once with a private key only its owner can read") {
  temp_dir dir;
  const auto ca = certificate_authority::load_or_create(dir.path / "ca");
  CHECK(ca.created());
  CHECK(mode_of(dir.path / "ca/ca.key") == 0600);
  CHECK(mode_of(dir.path / "ca") == 0700);
  CHECK(X509_check_ca(ca.cert()) == 1);

  const auto again = certificate_authority::load_or_create(dir.path / "ca");
  CHECK_FALSE(again.created());
  CHECK(again.sha256_fingerprint() == ca.sha256_fingerprint());
  CHECK(ca.sha256_fingerprint().size() == 32 * 3 - 1);
}

TEST_CASE("each install gets its own CA") {
  temp_dir a, b;
  const auto ca1 = certificate_authority::load_or_create(a.path);
  const auto ca2 = certificate_authority::load_or_create(b.path);
  CHECK(ca1.sha256_fingerprint() != ca2.sha256_fingerprint());
  CHECK(EVP_PKEY_eq(ca1.key(), ca2.key()) != 1);
}

TEST_CASE("a CA key readable by others is refused") {
  temp_dir dir;
  certificate_authority::load_or_create(dir.path);
  ::chmod((dir.path / "ca.key").c_str(), 0644);
  try {
    certificate_authority::load_or_create(dir.path);
    FAIL("expected refusal");
  } catch (const ca_error& e) {
    CHECK(std::string(e.what()).find("readable by group or others (mode 644); run chmod 600") != std::string::npos);
  }
}

TEST_CASE("half a CA is an error, not a silent new CA") {
  temp_dir dir;
  certificate_authority::load_or_create(dir.path);
  std::filesystem::remove(dir.path / "ca.pem");
  CHECK_THROWS_AS(certificate_authority::load_or_create(dir.path), ca_error);
}

TEST_CASE("CA export formats") {
  temp_dir dir;
  const auto ca = certificate_authority::load_or_create(dir.path);
  CHECK(ca.pem().rfind("-----BEGIN CERTIFICATE-----", 0) == 0);
  const auto der = ca.der();
  REQUIRE(der.size() > 100);
  CHECK(der[0] == 0x30);
  const auto name = ca.android_file_name();
  CHECK(name.size() == 10);
  CHECK(name.substr(8) == ".0");
  char expected[16];
  std::snprintf(expected, sizeof expected, "%08lx.0", X509_subject_name_hash_old(ca.cert()));
  CHECK(name == expected);
}

TEST_CASE("a leaf for a DNS name verifies against the CA with its own key") {
  temp_dir dir;
  const auto ca = certificate_authority::load_or_create(dir.path);
  const auto now = std::chrono::system_clock::now();
  const auto leaf = mint_leaf(ca, "alog.umeng.com", now, random_serial());
  REQUIRE(leaf);
  CHECK(verify(ca, leaf->cert.get(), "alog.umeng.com", nullptr) == X509_V_OK);
  CHECK(verify(ca, leaf->cert.get(), "other.example", nullptr) == X509_V_ERR_HOSTNAME_MISMATCH);
  CHECK(EVP_PKEY_eq(leaf->key.get(), ca.key()) != 1);
  CHECK(EVP_PKEY_get_base_id(leaf->key.get()) == EVP_PKEY_EC);
  CHECK(X509_check_private_key(leaf->cert.get(), leaf->key.get()) == 1);
  CHECK((X509_get_extended_key_usage(leaf->cert.get()) & XKU_SSL_SERVER) != 0);
  CHECK(X509_check_ca(leaf->cert.get()) == 0);
  CHECK(X509_get0_subject_key_id(leaf->cert.get()) != nullptr);
  CHECK(X509_get0_authority_key_id(leaf->cert.get()) != nullptr);

  int days = 0, secs = 0;
  ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(leaf->cert.get()), X509_get0_notAfter(leaf->cert.get()));
  CHECK(days <= 397);
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  CHECK(X509_cmp_time(X509_get0_notBefore(leaf->cert.get()), &t) < 0);
  std::time_t t_minus_23h = t - 23 * 3600;
  CHECK(X509_cmp_time(X509_get0_notBefore(leaf->cert.get()), &t_minus_23h) < 0);
}

TEST_CASE("a leaf for an IP address carries an IP SAN") {
  temp_dir dir;
  const auto ca = certificate_authority::load_or_create(dir.path);
  for (const char* ip : {"203.0.113.7", "2001:db8::1"}) {
    const auto leaf = mint_leaf(ca, ip, std::chrono::system_clock::now(), random_serial());
    REQUIRE(leaf);
    CHECK(verify(ca, leaf->cert.get(), nullptr, ip) == X509_V_OK);
    CHECK(verify(ca, leaf->cert.get(), nullptr, "192.0.2.1") == X509_V_ERR_IP_ADDRESS_MISMATCH);
  }
}

TEST_CASE("hostile host names are not minted") {
  temp_dir dir;
  const auto ca = certificate_authority::load_or_create(dir.path);
  for (const char* host : {"", "a,DNS:evil.example", "a..b", "-bad host", ".x", "evil\n.example"}) {
    CHECK_FALSE(mint_leaf(ca, host, std::chrono::system_clock::now(), random_serial()));
  }
}

TEST_CASE("the leaf cache is a bounded LRU driven by the injected clock") {
  temp_dir dir;
  const auto ca = certificate_authority::load_or_create(dir.path);
  auto now = std::chrono::system_clock::now();
  std::uint8_t next_serial = 1;
  leaf_cache cache(ca, 2, [&] { return now; }, [&] {
    std::array<std::uint8_t, 16> s{};
    s[15] = next_serial++;
    return s;
  });

  const auto a = cache.get("a.example");
  const auto b = cache.get("B.example");
  CHECK(cache.get("a.example") == a);
  CHECK(cache.get("b.example") == b);  // names are case-insensitive
  CHECK(cache.mint_count() == 2);

  cache.get("c.example");  // evicts the least recently used: a
  CHECK(cache.size() == 2);
  CHECK(cache.get("b.example") == b);
  CHECK(cache.get("a.example") != a);
  CHECK(cache.mint_count() == 4);

  const auto serial = ASN1_INTEGER_get(X509_get0_serialNumber(a->cert.get()));
  CHECK(serial == 1);

  const auto before = cache.get("a.example");
  now += std::chrono::hours(24 * 360);  // within a week of expiry: re-minted
  const auto after = cache.get("a.example");
  CHECK(after != before);
  CHECK(cache.get("a.example") == after);
}

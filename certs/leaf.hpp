#pragma once
// Leaf certificates presented to the phone, one per host, each with its own ECDSA P-256 key
// (never the CA's: a leaked leaf key must not let anyone sign for every host).

#include "certs/ca.hpp"

#include <array>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace leakscope::certs {

struct leaf_certificate {
  x509_ptr cert;
  pkey_ptr key;
  std::chrono::system_clock::time_point not_after;
};

using clock_fn = std::function<std::chrono::system_clock::time_point()>;
using serial_fn = std::function<std::array<std::uint8_t, 16>()>;

// 128 random bits with the top bit clear, so the DER INTEGER stays positive (RFC 5280 §4.1.2.2).
std::array<std::uint8_t, 16> random_serial();

// Mints a leaf for `host` (a DNS name or an IP literal, which becomes an IP SAN): EKU serverAuth,
// valid from a day before `now` for 365 days (under the 397-day limit browsers enforce).
// Returns nullptr when `host` is not a plausible name or OpenSSL fails.
std::shared_ptr<const leaf_certificate> mint_leaf(const certificate_authority& ca, std::string_view host,
                                                  std::chrono::system_clock::time_point now,
                                                  const std::array<std::uint8_t, 16>& serial);

// True for names a leaf may carry: LDH labels, dots, an optional leading "*." or an IP literal.
bool valid_leaf_host(std::string_view host);

// Bounded LRU of minted leaves, safe to share between threads. The clock and serial source are
// parameters so tests can age entries and pin serials.
class leaf_cache {
 public:
  leaf_cache(const certificate_authority& ca, std::size_t capacity, clock_fn clock = nullptr,
             serial_fn serial = nullptr);

  // The cached leaf for `host` (lower-cased), minted on a miss or when it expires within a week.
  std::shared_ptr<const leaf_certificate> get(std::string_view host);

  std::size_t size() const;
  std::size_t mint_count() const;

 private:
  struct entry {
    std::string host;
    std::shared_ptr<const leaf_certificate> leaf;
  };

  const certificate_authority& ca_;
  std::size_t capacity_;
  clock_fn clock_;
  serial_fn serial_;
  mutable std::mutex mutex_;
  std::list<entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<entry>::iterator> index_;
  std::size_t mints_ = 0;
};

}  // namespace leakscope::certs

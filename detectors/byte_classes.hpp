#pragma once
// The classes of bytes the engine's first look at a value goes by (engine.cpp,
// could_match_given): whether a value holds digits and how many, letters of either case, the
// letters of a verification-code word, or a byte that always makes a value worth a look.

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <utility>

#if defined(__x86_64__)
#include <tmmintrin.h>
#endif

namespace leakscope::detectors {

namespace char_class {
constexpr unsigned digit = 1;        // must stay 1: it is also added up
constexpr unsigned trigger = 2;      // a value holding it is always worth a look: email, escapes,
                                     // lists, JSON, MAC and vCard, +86, key=value text,
                                     // non-ASCII (SMS, names)
constexpr unsigned lower = 4;
constexpr unsigned code_middle = 8;  // the middle of "ode", "OTP" or "otp"
constexpr unsigned upper = 16;
constexpr unsigned code_o = 32;      // the o of "ode", "OTP" or "otp", which hex digits lack
constexpr unsigned code_word = code_middle | code_o;  // a value without both holds no code word
}  // namespace char_class

inline constexpr char trigger_punctuation[] = {'@', '%', ',', ';', '|', '{', '[', ':', '+', '=', '&'};

inline constexpr std::array<std::uint8_t, 256> char_classes = [] {
  std::array<std::uint8_t, 256> t{};
  for (int c = '0'; c <= '9'; ++c) {
    t[c] = char_class::digit;
  }
  for (int c = 'a'; c <= 'z'; ++c) {
    t[c] = char_class::lower;
    t[c - 'a' + 'A'] = char_class::upper;
  }
  for (const char c : {'d', 'T', 't'}) {
    t[static_cast<unsigned char>(c)] |= char_class::code_middle;
  }
  for (const char c : {'o', 'O'}) {
    t[static_cast<unsigned char>(c)] |= char_class::code_o;
  }
  for (const char c : trigger_punctuation) {
    t[static_cast<unsigned char>(c)] = char_class::trigger;
  }
  for (int c = 0x80; c < 256; ++c) {
    t[c] = char_class::trigger;
  }
  return t;
}();

// The classes of a value's bytes, or-ed, and how many of them are digits.
struct byte_summary {
  unsigned seen = 0;
  std::size_t digits = 0;
};

// A byte at a time, through the table: short values, and the tail of long ones.
inline byte_summary summarize_bytes_one_by_one(std::string_view v, byte_summary into = {}) {
  for (const char c : v) {
    const unsigned k = char_classes[static_cast<unsigned char>(c)];
    into.seen |= k;
    into.digits += k & char_class::digit;
  }
  return into;
}

namespace nibble_classes {
// The classes again, each split into sets of the form {high nibbles} x {low nibbles}, so that a
// byte's bits are lo[c & 15] & hi[c >> 4]: two table lookups (SSSE3's pshufb) per 16 bytes
// and per table. Bytes from 0x80 have no bits here; their sign bit says they are triggers.
// First table: the digits, the letters (a range straddles two high nibbles), the code-word
// letters ('d', 'T', 't' share the low nibble 4; 'O', 'o' the low nibble F), and the trigger
// marks "+,{|". Second table: the other trigger marks "%&", ":;=", "@", "[".
struct table_pair {
  std::array<std::uint8_t, 16> lo{};
  std::array<std::uint8_t, 16> hi{};
};
constexpr table_pair make(std::initializer_list<std::pair<std::initializer_list<int>, std::initializer_list<int>>> sets) {
  table_pair t;
  std::uint8_t bit = 1;
  for (const auto& [his, los] : sets) {
    for (const int h : his) {
      t.hi[static_cast<std::size_t>(h)] |= bit;
    }
    for (const int l : los) {
      t.lo[static_cast<std::size_t>(l)] |= bit;
    }
    bit = static_cast<std::uint8_t>(bit << 1);
  }
  return t;
}
constexpr auto first = make({{{3}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},                                     // 0: digit
                             {{6}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}},             // 1: a-o
                             {{7}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},                              // 2: p-z
                             {{4}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}},             // 3: A-O
                             {{5}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},                              // 4: P-Z
                             {{5, 6, 7}, {4}},                                                       // 5: T d t
                             {{4, 6}, {15}},                                                         // 6: O o
                             {{2, 7}, {11, 12}}});                                                   // 7: + , { |
constexpr auto second = make({{{2}, {5, 6}}, {{3}, {10, 11, 13}}, {{4}, {0}}, {{5}, {11}}});          // % & : ; = @ [
}  // namespace nibble_classes

// summarize_bytes() 16 bytes a step, where the processor has SSSE3 (every x86-64 of the last
// fifteen years): SDK batches carry padding, tokens and user agents of hundreds of bytes, where
// the table took a quarter of a scanned upload's detection time. SSE2 alone needs about 45
// operations per 16 bytes for these classes, no faster than the table.
#if defined(__x86_64__)
inline unsigned or_bytes(__m128i v) {
  v = _mm_or_si128(v, _mm_srli_si128(v, 8));
  v = _mm_or_si128(v, _mm_srli_si128(v, 4));
  v = _mm_or_si128(v, _mm_srli_si128(v, 2));
  v = _mm_or_si128(v, _mm_srli_si128(v, 1));
  return static_cast<unsigned>(_mm_cvtsi128_si32(v)) & 0xff;
}
#endif

#if defined(__x86_64__)
[[gnu::target("ssse3")]] inline byte_summary summarize_bytes_ssse3(std::string_view v) {
  using namespace nibble_classes;
  const __m128i zero = _mm_setzero_si128();
  const __m128i nibble = _mm_set1_epi8(0x0f);
  const __m128i one = _mm_set1_epi8(1);
  const __m128i lo1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(first.lo.data()));
  const __m128i hi1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(first.hi.data()));
  const __m128i lo2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(second.lo.data()));
  const __m128i hi2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(second.hi.data()));
  __m128i bits1 = zero, bits2 = zero, high = zero, counts = zero;
  std::size_t digits = 0;
  std::size_t i = 0;
  unsigned steps = 0;
  for (; i + 16 <= v.size(); i += 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(v.data() + i));
    const __m128i lo = _mm_and_si128(x, nibble);
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(x, 4), nibble);
    const __m128i b1 = _mm_and_si128(_mm_shuffle_epi8(lo1, lo), _mm_shuffle_epi8(hi1, hi));
    bits1 = _mm_or_si128(bits1, b1);
    bits2 = _mm_or_si128(bits2, _mm_and_si128(_mm_shuffle_epi8(lo2, lo), _mm_shuffle_epi8(hi2, hi)));
    high = _mm_or_si128(high, x);
    counts = _mm_add_epi8(counts, _mm_and_si128(b1, one));  // bit 0: a digit
    if (++steps == 255) {  // before a lane's count can pass 255
      const __m128i sums = _mm_sad_epu8(counts, zero);
      digits += static_cast<std::size_t>(_mm_cvtsi128_si32(sums) + _mm_extract_epi16(sums, 4));
      counts = zero;
      steps = 0;
    }
  }
  const __m128i sums = _mm_sad_epu8(counts, zero);
  digits += static_cast<std::size_t>(_mm_cvtsi128_si32(sums) + _mm_extract_epi16(sums, 4));
  // Each table's bits, or-ed over the 16 bytes.
  const unsigned f = or_bytes(bits1);
  const unsigned g = or_bytes(bits2);
  byte_summary out;
  out.digits = digits;
  out.seen = ((f & 1) ? char_class::digit : 0u) | ((f & 6) ? char_class::lower : 0u) |
             ((f & 24) ? char_class::upper : 0u) | ((f & 32) ? char_class::code_middle : 0u) |
             ((f & 64) ? char_class::code_o : 0u) |
             ((f & 128) || g != 0 || _mm_movemask_epi8(high) != 0 ? char_class::trigger : 0u);
  return summarize_bytes_one_by_one(v.substr(i), out);
}
#endif

#if defined(__x86_64__)
inline bool has_ssse3() {
  static const bool yes = __builtin_cpu_supports("ssse3");
  return yes;
}
#endif

// The classes of `v`'s bytes: below 32 bytes (most keys and values) a byte at a time, where
// setting up the tables would cost more than it saves.
inline byte_summary summarize_bytes(std::string_view v) {
#if defined(__x86_64__)
  if (v.size() >= 32 && has_ssse3()) {
    return summarize_bytes_ssse3(v);
  }
#endif
  return summarize_bytes_one_by_one(v);
}

}  // namespace leakscope::detectors

#include "detectors/validators.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <ctime>

namespace leakscope::detectors {

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

bool all_hex(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isxdigit(c); });
}

bool luhn_valid(std::string_view digits) {
  if (!all_digits(digits)) {
    return false;
  }
  int sum = 0;
  bool twice = false;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    int d = *it - '0';
    if (twice) {
      d *= 2;
      if (d > 9) {
        d -= 9;
      }
    }
    sum += d;
    twice = !twice;
  }
  return sum % 10 == 0;
}

namespace {

bool one_digit_repeated(std::string_view s) {
  return s.find_first_not_of(s.front()) == std::string_view::npos;
}

}  // namespace

bool imei_valid(std::string_view s) {
  if (s.size() != 15 || !luhn_valid(s) || one_digit_repeated(s)) {
    return false;
  }
  // Reporting Body Identifiers allocated by the GSMA (the first two TAC digits).
  static constexpr std::string_view rbi[] = {"01", "10", "30", "33", "35", "44", "45", "49", "50",
                                             "51", "52", "53", "54", "86", "91", "98", "99"};
  return std::find(std::begin(rbi), std::end(rbi), s.substr(0, 2)) != std::end(rbi);
}

bool meid_valid(std::string_view s) {
  if (s.size() != 14 || !all_hex(s) || one_digit_repeated(s)) {
    return false;
  }
  const auto hi = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return hi >= 'A' && hi <= 'F';
}

bool mcc_valid(std::string_view m) {
  if (m.size() != 3 || !all_digits(m)) {
    return false;
  }
  // E.212 MCCs in use, by zone; a test for "is this plausibly an IMSI", not a registry.
  static constexpr std::string_view mccs[] = {
      "202", "204", "206", "208", "212", "213", "214", "216", "218", "219", "220", "222", "226", "228", "230",
      "231", "232", "234", "235", "238", "240", "242", "244", "246", "247", "248", "250", "255", "257", "259",
      "260", "262", "266", "268", "270", "272", "274", "276", "278", "280", "282", "283", "284", "286", "288",
      "290", "292", "293", "294", "295", "297", "302", "308", "310", "311", "312", "313", "314", "315", "316",
      "330", "334", "338", "340", "342", "344", "346", "348", "350", "352", "354", "356", "358", "360", "362",
      "364", "366", "368", "370", "372", "374", "376", "400", "401", "402", "404", "405", "406", "410", "412",
      "413", "414", "415", "416", "417", "418", "419", "420", "421", "422", "424", "425", "426", "427", "428",
      "429", "430", "431", "432", "434", "436", "437", "438", "440", "441", "450", "452", "454", "455", "456",
      "457", "460", "461", "466", "467", "470", "472", "502", "505", "510", "514", "515", "520", "525", "528",
      "530", "536", "537", "539", "540", "541", "542", "544", "545", "546", "547", "548", "549", "550", "551",
      "552", "553", "554", "555", "602", "603", "604", "605", "606", "607", "608", "609", "610", "611", "612",
      "613", "614", "615", "616", "617", "618", "619", "620", "621", "622", "623", "624", "625", "626", "627",
      "628", "629", "630", "631", "632", "633", "634", "635", "636", "637", "638", "639", "640", "641", "642",
      "643", "645", "646", "647", "648", "649", "650", "651", "652", "653", "654", "655", "657", "659", "702",
      "704", "706", "708", "710", "712", "714", "716", "722", "724", "730", "732", "734", "736", "738", "740",
      "744", "746", "748", "750"};
  return std::find(std::begin(mccs), std::end(mccs), m) != std::end(mccs);
}

bool imsi_valid(std::string_view s) {
  return s.size() == 15 && all_digits(s) && mcc_valid(s.substr(0, 3)) && !one_digit_repeated(s.substr(5));
}

bool iccid_valid(std::string_view s) {
  return (s.size() == 19 || s.size() == 20) && all_digits(s) && s.substr(0, 2) == "89" && luhn_valid(s.substr(0, 19));
}

bool prc_id_valid(std::string_view s) {
  if (s.size() != 18 || !all_digits(s.substr(0, 17))) {
    return false;
  }
  const char last = static_cast<char>(std::toupper(static_cast<unsigned char>(s[17])));
  if (!std::isdigit(static_cast<unsigned char>(last)) && last != 'X') {
    return false;
  }
  if (s[0] < '1' || s[0] > '8') {
    return false;  // province codes 11–82
  }
  // ISO 7064 MOD 11-2.
  static constexpr int weights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  int sum = 0;
  for (int i = 0; i < 17; ++i) {
    sum += (s[static_cast<std::size_t>(i)] - '0') * weights[i];
  }
  static constexpr char check[] = "10X98765432";
  if (check[sum % 11] != last) {
    return false;
  }
  const int year = std::stoi(std::string(s.substr(6, 4)));
  const int month = std::stoi(std::string(s.substr(10, 2)));
  const int day = std::stoi(std::string(s.substr(12, 2)));
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  if (year < 1900 || year > tm.tm_year + 1900 || month < 1 || month > 12 || day < 1) {
    return false;
  }
  static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return day <= days[month - 1] + (month == 2 && leap ? 1 : 0);
}

bool prc_mobile_valid(std::string_view s) {
  return s.size() == 11 && all_digits(s) && s[0] == '1' && s[1] >= '3' && s[1] <= '9';
}

bool bank_card_valid(std::string_view s) {
  return s.size() >= 16 && s.size() <= 19 && luhn_valid(s) && !one_digit_repeated(s);
}

std::string_view normalized_mac(std::string_view s, char (&out)[13]) {
  std::size_t n = 0;
  if (s.size() == 17) {
    const char sep = s[2];
    if (sep != ':' && sep != '-') {
      return {};
    }
    for (std::size_t i = 0; i < 17; ++i) {
      if (i % 3 == 2) {
        if (s[i] != sep) {
          return {};
        }
      } else if (std::isxdigit(static_cast<unsigned char>(s[i]))) {
        out[n++] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
      } else {
        return {};
      }
    }
  } else if (s.size() == 12 && all_hex(s)) {
    for (const char c : s) {
      out[n++] = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  } else {
    return {};
  }
  out[12] = '\0';
  const std::string_view mac(out, 12);
  if (mac == "000000000000" || mac == "ffffffffffff" || mac == "020000000000") {
    return {};
  }
  return mac;
}

bool uuid_valid(std::string_view s) {
  if (s.size() != 36) {
    return false;
  }
  for (std::size_t i = 0; i < 36; ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) {
      return false;
    }
  }
  return s != "00000000-0000-0000-0000-000000000000";
}

bool email_valid(std::string_view s) {
  const auto at = s.find('@');
  if (at == 0 || at == std::string_view::npos || s.size() > 254 || s.find('@', at + 1) != std::string_view::npos) {
    return false;
  }
  const auto local = s.substr(0, at);
  const auto domain = s.substr(at + 1);
  const auto dot = domain.rfind('.');
  if (dot == std::string_view::npos || dot == 0 || domain.size() - dot < 3) {
    return false;
  }
  auto ok_local = [](unsigned char c) { return std::isalnum(c) || std::string_view("._%+-").find(static_cast<char>(c)) != std::string_view::npos; };
  auto ok_domain = [](unsigned char c) { return std::isalnum(c) || c == '.' || c == '-'; };
  return std::all_of(local.begin(), local.end(), ok_local) && std::all_of(domain.begin(), domain.end(), ok_domain) &&
         std::all_of(domain.begin() + static_cast<long>(dot) + 1, domain.end(), [](unsigned char c) { return std::isalpha(c); });
}

bool package_name_valid(std::string_view s) {
  if (s.size() < 3 || s.size() > 150) {
    return false;
  }
  int labels = 1;
  bool label_start = true;
  for (const char c : s) {
    if (c == '.') {
      if (label_start) {
        return false;
      }
      ++labels;
      label_start = true;
      continue;
    }
    const auto u = static_cast<unsigned char>(c);
    if (label_start ? !std::islower(u) : !(std::islower(u) || std::isdigit(u) || c == '_')) {
      return false;
    }
    label_start = false;
  }
  return labels >= 2 && !label_start;
}

}  // namespace leakscope::detectors

#include "captures/har_reader.hpp"

#include "captures/base64.hpp"

#include <nlohmann/json.hpp>

#include <cctype>
#include <ctime>

namespace leakscope::captures {

using nlohmann::json;

std::optional<std::chrono::system_clock::time_point> parse_iso8601(const std::string& s) {
  int y, mo, d, h, mi;
  double sec;
  int consumed = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%lf%n", &y, &mo, &d, &h, &mi, &sec, &consumed) != 6) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = 0;
  const std::time_t base = ::timegm(&tm);
  if (base == -1) {
    return std::nullopt;
  }
  long offset = 0;
  const std::string zone = s.substr(static_cast<std::size_t>(consumed));
  if (!zone.empty() && zone != "Z" && zone != "z") {
    int zh = 0, zm = 0;
    char sign = 0;
    if (std::sscanf(zone.c_str(), "%c%2d:%2d", &sign, &zh, &zm) < 2 || (sign != '+' && sign != '-')) {
      return std::nullopt;
    }
    offset = (sign == '+' ? 1 : -1) * (zh * 3600L + zm * 60L);
  }
  const auto micros = static_cast<std::int64_t>((static_cast<double>(base - offset) + sec) * 1e6);
  return std::chrono::system_clock::time_point(std::chrono::microseconds(micros));
}

namespace {

std::string str(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool split_url(har_request& r) {
  const auto sep = r.url.find("://");
  if (sep == std::string::npos) {
    return false;
  }
  r.scheme = r.url.substr(0, sep);
  for (auto& c : r.scheme) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  const auto path = r.url.find_first_of("/?#", sep + 3);
  std::string authority = r.url.substr(sep + 3, path == std::string::npos ? std::string::npos : path - sep - 3);
  if (const auto at = authority.rfind('@'); at != std::string::npos) {
    authority = authority.substr(at + 1);
  }
  r.port = r.scheme == "https" ? 443 : 80;
  const auto close = authority.find(']');
  const auto colon = authority.rfind(':');
  if (colon != std::string::npos && (close == std::string::npos || colon > close)) {
    try {
      r.port = static_cast<std::uint16_t>(std::stoul(authority.substr(colon + 1)));
    } catch (const std::exception&) {
      return false;
    }
    authority = authority.substr(0, colon);
  }
  if (authority.size() > 1 && authority.front() == '[') {
    authority = authority.substr(1, authority.size() - 2);
  }
  for (auto& c : authority) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  r.host = authority;
  r.target = path == std::string::npos ? "/" : r.url.substr(path);
  if (const auto hash = r.target.find('#'); hash != std::string::npos) {
    r.target.erase(hash);
  }
  if (r.target.empty() || r.target.front() != '/') {
    r.target = "/" + r.target;
  }
  return !r.host.empty();
}

}  // namespace

std::vector<har_request> read_har(const std::string& text, std::vector<std::string>* skipped) {
  const json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded()) {
    throw har_error("not a JSON document");
  }
  if (!doc.is_object() || !doc.contains("log") || !doc["log"].is_object()) {
    throw har_error("no \"log\" object: not a HAR file");
  }
  // A const json's operator[] on a missing key is undefined behaviour (it read past the
  // object for {"log":{}}; found by AddressSanitizer): look the key up.
  const auto found = doc["log"].find("entries");
  if (found == doc["log"].end() || !found->is_array()) {
    throw har_error("log.entries is missing or not a list");
  }
  const auto& entries = *found;
  std::vector<har_request> out;
  out.reserve(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    const std::string where = "log.entries[" + std::to_string(i) + "]";
    auto skip = [&](const std::string& why) {
      if (skipped != nullptr) {
        skipped->push_back(where + ": " + why);
      }
    };
    if (!e.is_object() || !e.contains("request") || !e["request"].is_object()) {
      skip("no request");
      continue;
    }
    const auto& req = e["request"];
    har_request r;
    r.index = i;
    r.method = str(req, "method");
    r.url = str(req, "url");
    if (r.method.empty() || !split_url(r)) {
      skip("request.method or request.url is missing or malformed");
      continue;
    }
    if (const auto t = parse_iso8601(str(e, "startedDateTime"))) {
      r.started = *t;
    }
    r.server_ip = str(e, "serverIPAddress");
    if (e.contains("response") && e["response"].is_object() && e["response"].contains("status") &&
        e["response"]["status"].is_number_integer()) {
      r.status = e["response"]["status"].get<int>();
    }
    if (e.contains("time") && e["time"].is_number()) {
      r.time_ms = e["time"].get<double>();
    }
    if (r.server_ip.size() > 1 && r.server_ip.front() == '[') {
      r.server_ip = r.server_ip.substr(1, r.server_ip.size() - 2);
    }
    if (req.contains("headers") && req["headers"].is_array()) {
      for (const auto& h : req["headers"]) {
        if (h.is_object()) {
          r.headers.emplace_back(str(h, "name"), str(h, "value"));
        }
      }
    }
    if (req.contains("postData") && req["postData"].is_object()) {
      const auto& pd = req["postData"];
      r.body = str(pd, "text");
      const std::string encoding = str(pd, "encoding").empty() ? str(pd, "_encoding") : str(pd, "encoding");
      if (encoding == "base64") {
        if (auto decoded = base64_decode(r.body)) {
          r.body = std::move(*decoded);
        } else {
          skip("postData.text is marked base64 but is not; scanned as text");
        }
      }
      if (r.body.empty() && pd.contains("params") && pd["params"].is_array()) {
        // Writers that list form parameters instead of the text: rebuild the form body.
        for (const auto& p : pd["params"]) {
          if (p.is_object()) {
            r.body += (r.body.empty() ? "" : "&") + str(p, "name") + "=" + str(p, "value");
          }
        }
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace leakscope::captures

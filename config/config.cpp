#include "config/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <arpa/inet.h>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

namespace leakscope::config {

bool is_category(const std::string& name) {
  const auto& all = categories();
  return std::find(all.begin(), all.end(), name) != all.end();
}

bool cidr::contains(const std::vector<std::uint8_t>& address) const {
  if (address.size() != network.size()) {
    return false;
  }
  unsigned bits = prefix;
  for (std::size_t i = 0; i < network.size() && bits > 0; ++i) {
    const unsigned take = std::min(bits, 8u);
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - take));
    if ((address[i] & mask) != (network[i] & mask)) {
      return false;
    }
    bits -= take;
  }
  return true;
}

std::optional<cidr> parse_cidr(const std::string& text) {
  const auto slash = text.find('/');
  const std::string host = text.substr(0, slash);
  cidr result;
  result.text = text;
  unsigned char buf[16];
  if (inet_pton(AF_INET, host.c_str(), buf) == 1) {
    result.network.assign(buf, buf + 4);
  } else if (inet_pton(AF_INET6, host.c_str(), buf) == 1) {
    result.network.assign(buf, buf + 16);
  } else {
    return std::nullopt;
  }
  const unsigned max_prefix = static_cast<unsigned>(result.network.size() * 8);
  result.prefix = max_prefix;
  if (slash != std::string::npos) {
    const std::string digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3 ||
        !std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); })) {
      return std::nullopt;
    }
    result.prefix = static_cast<unsigned>(std::stoul(digits));
    if (result.prefix > max_prefix) {
      return std::nullopt;
    }
  }
  return result;
}

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) {
    return {};
  }
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Splits "16MiB" into 16 and "MiB"; rejects signs, blanks and empty numbers.
std::optional<std::pair<std::uint64_t, std::string>> split_number(const std::string& raw) {
  const std::string text = trim(raw);
  std::size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    ++i;
  }
  if (i == 0 || i > 18) {
    return std::nullopt;
  }
  return std::make_pair(std::stoull(text.substr(0, i)), trim(text.substr(i)));
}

}  // namespace

std::optional<std::uint64_t> parse_size(const std::string& text) {
  const auto parts = split_number(text);
  if (!parts) {
    return std::nullopt;
  }
  static const std::map<std::string, std::uint64_t> units = {
      {"", 1},        {"B", 1},         {"KiB", 1ull << 10}, {"MiB", 1ull << 20},
      {"GiB", 1ull << 30}, {"KB", 1000}, {"MB", 1000'000},   {"GB", 1000'000'000}};
  const auto unit = units.find(parts->second);
  if (unit == units.end() || parts->first > UINT64_MAX / unit->second) {
    return std::nullopt;
  }
  return parts->first * unit->second;
}

std::optional<std::chrono::milliseconds> parse_duration(const std::string& text) {
  const auto parts = split_number(text);
  if (!parts) {
    return std::nullopt;
  }
  static const std::map<std::string, std::uint64_t> units = {
      {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}};
  const auto unit = units.find(parts->second);
  if (unit == units.end() || parts->first > UINT64_MAX / unit->second / 2) {
    return std::nullopt;
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(parts->first * unit->second));
}

namespace {

// Walks a YAML document with the file name at hand, so every error says where it is.
class reader {
 public:
  reader(std::string name, std::filesystem::path base_dir)
      : name_(std::move(name)), base_dir_(std::move(base_dir)) {}

  [[noreturn]] void fail(const YAML::Node& node, const std::string& key, const std::string& what) const {
    std::ostringstream out;
    out << name_;
    const auto mark = node.Mark();
    if (mark.line >= 0) {
      out << ':' << mark.line + 1 << ':' << mark.column + 1;
    }
    out << ": " << key << ' ' << what;
    throw config_error(out.str());
  }

  // Ensures `node` is a map whose keys are all in `known`.
  void expect_map(const YAML::Node& node, const std::string& key,
                  std::initializer_list<const char*> known) const {
    if (!node.IsMap()) {
      fail(node, key, "must be a mapping" + got(node));
    }
    for (const auto& item : node) {
      if (!item.first.IsScalar()) {
        fail(item.first, key, "has a key that is not a plain name");
      }
      const auto k = item.first.Scalar();
      if (std::find_if(known.begin(), known.end(), [&](const char* n) { return k == n; }) ==
          known.end()) {
        std::string list;
        for (const char* n : known) {
          list += list.empty() ? n : std::string(", ") + n;
        }
        fail(item.first, join(key, k), "is not a known key (known under " +
                                            (key.empty() ? std::string("the top level") : key) +
                                            ": " + list + ")");
      }
    }
  }

  std::string scalar(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) {
      fail(node, key, "must be a single value" + got(node));
    }
    return node.Scalar();
  }

  bool boolean(const YAML::Node& node, const std::string& key) const {
    const auto s = scalar(node, key);
    if (s == "true") {
      return true;
    }
    if (s == "false") {
      return false;
    }
    fail(node, key, "must be true or false (got \"" + s + "\")");
  }

  std::uint64_t integer(const YAML::Node& node, const std::string& key, std::uint64_t max) const {
    const auto s = scalar(node, key);
    const auto parts = split_number(s);
    if (!parts || !parts->second.empty() || parts->first > max) {
      fail(node, key, "must be a whole number from 0 to " + std::to_string(max) + " (got \"" + s + "\")");
    }
    return parts->first;
  }

  double number(const YAML::Node& node, const std::string& key) const {
    const auto s = scalar(node, key);
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size()) {
      fail(node, key, "must be a number (got \"" + s + "\")");
    }
    return v;
  }

  std::uint64_t size(const YAML::Node& node, const std::string& key) const {
    const auto s = scalar(node, key);
    const auto v = parse_size(s);
    if (!v) {
      fail(node, key, "must be a size such as 64KiB or 16MiB (got \"" + s + "\")");
    }
    return *v;
  }

  std::chrono::milliseconds duration(const YAML::Node& node, const std::string& key) const {
    const auto s = scalar(node, key);
    const auto v = parse_duration(s);
    if (!v || v->count() == 0) {
      fail(node, key, "must be a positive duration such as 500ms, 10s or 2m (got \"" + s + "\")");
    }
    return *v;
  }

  std::vector<std::string> strings(const YAML::Node& node, const std::string& key) const {
    std::vector<std::string> out;
    if (node.IsScalar()) {  // a single value where a list is expected is accepted
      out.push_back(node.Scalar());
      return out;
    }
    if (!node.IsSequence()) {
      fail(node, key, "must be a list" + got(node));
    }
    for (std::size_t i = 0; i < node.size(); ++i) {
      out.push_back(scalar(node[i], key + "[" + std::to_string(i) + "]"));
    }
    return out;
  }

  std::filesystem::path path(const YAML::Node& node, const std::string& key) const {
    return resolve_path(scalar(node, key));
  }

  std::filesystem::path resolve_path(const std::string& text) const {
    std::filesystem::path p = text;
    if (text == "~" || text.rfind("~/", 0) == 0) {
      const char* home = std::getenv("HOME");
      p = std::filesystem::path(home ? home : "/root") / text.substr(std::min<std::size_t>(2, text.size()));
    }
    if (p.is_relative()) {
      p = base_dir_ / p;
    }
    return p.lexically_normal();
  }

  std::vector<std::string> categories_list(const YAML::Node& node, const std::string& key) const {
    auto list = strings(node, key);
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (!is_category(list[i])) {
        const YAML::Node item = node.IsSequence() ? node[i] : node;
        fail(item, key, "names an unknown category \"" + list[i] + "\" (see DESIGN.md: imei, imsi, phone_number, …)");
      }
    }
    return list;
  }

  static std::string join(const std::string& a, const std::string& b) {
    return a.empty() ? b : a + "." + b;
  }

  const std::string& name() const { return name_; }
  const std::filesystem::path& base_dir() const { return base_dir_; }

 private:
  static std::string got(const YAML::Node& node) {
    switch (node.Type()) {
      case YAML::NodeType::Scalar:
        return " (got \"" + node.Scalar() + "\")";
      case YAML::NodeType::Sequence:
        return " (got a list)";
      case YAML::NodeType::Map:
        return " (got a mapping)";
      default:
        return " (got nothing)";
    }
  }

  std::string name_;
  std::filesystem::path base_dir_;
};

// Calls `fn(value, key_path)` for each present key of a map node.
void for_each_key(const YAML::Node& node, const std::string& prefix,
                  const std::function<void(const std::string&, const YAML::Node&, const std::string&)>& fn) {
  for (const auto& item : node) {
    const auto k = item.first.Scalar();
    fn(k, item.second, reader::join(prefix, k));
  }
}

YAML::Node parse_yaml(const std::string& text, const std::string& name) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    std::ostringstream out;
    out << name << ':' << e.mark.line + 1 << ':' << e.mark.column + 1 << ": invalid YAML: " << e.msg;
    throw config_error(out.str());
  }
}

std::string read_file(const std::filesystem::path& file, const char* what) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw config_error(file.string() + ": cannot read the " + what + " file (does it exist?)");
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

device_profile parse_device(const reader& r, const YAML::Node& node, const std::string& prefix) {
  device_profile d;
  if (node.IsNull()) {
    return d;
  }
  r.expect_map(node, prefix,
               {"imei", "meid", "imsi", "iccid", "serial_number", "android_id", "advertising_id",
                "mac_address", "phone_number", "email", "id_card", "bank_card", "location",
                "cell_location", "wifi_location", "sms", "contacts", "installed_apps"});
  const std::map<std::string, std::vector<std::string>*> lists = {
      {"imei", &d.imei},
      {"meid", &d.meid},
      {"imsi", &d.imsi},
      {"iccid", &d.iccid},
      {"serial_number", &d.serial_number},
      {"android_id", &d.android_id},
      {"advertising_id", &d.advertising_id},
      {"mac_address", &d.mac_address},
      {"phone_number", &d.phone_number},
      {"email", &d.email},
      {"id_card", &d.id_card},
      {"bank_card", &d.bank_card},
      {"cell_location", &d.cell_location},
      {"wifi_location", &d.wifi_location},
      {"sms", &d.sms},
      {"installed_apps", &d.installed_apps}};
  for_each_key(node, prefix, [&](const std::string& k, const YAML::Node& v, const std::string& key) {
    if (auto it = lists.find(k); it != lists.end()) {
      *it->second = r.strings(v, key);
      for (const auto& s : *it->second) {
        if (trim(s).empty()) {
          r.fail(v, key, "contains an empty value");
        }
      }
    } else if (k == "location") {
      r.expect_map(v, key, {"lat", "lng", "radius_m"});
      location_fix fix;
      if (!v["lat"] || !v["lng"]) {
        r.fail(v, key, "needs both lat and lng");
      }
      fix.lat = r.number(v["lat"], key + ".lat");
      fix.lng = r.number(v["lng"], key + ".lng");
      if (fix.lat < -90 || fix.lat > 90) {
        r.fail(v["lat"], key + ".lat", "must be between -90 and 90");
      }
      if (fix.lng < -180 || fix.lng > 180) {
        r.fail(v["lng"], key + ".lng", "must be between -180 and 180");
      }
      if (v["radius_m"]) {
        fix.radius_m = r.number(v["radius_m"], key + ".radius_m");
        if (fix.radius_m <= 0) {
          r.fail(v["radius_m"], key + ".radius_m", "must be positive");
        }
      }
      d.location = fix;
    } else if (k == "contacts") {
      if (!v.IsSequence()) {
        r.fail(v, key, "must be a list of {name, phone}");
      }
      for (std::size_t i = 0; i < v.size(); ++i) {
        const auto item_key = key + "[" + std::to_string(i) + "]";
        r.expect_map(v[i], item_key, {"name", "phone"});
        contact c;
        if (v[i]["name"]) {
          c.name = r.scalar(v[i]["name"], item_key + ".name");
        }
        if (v[i]["phone"]) {
          c.phone = r.scalar(v[i]["phone"], item_key + ".phone");
        }
        if (c.name.empty() && c.phone.empty()) {
          r.fail(v[i], item_key, "needs a name or a phone");
        }
        d.contacts.push_back(c);
      }
    }
  });
  return d;
}

std::string ip_literal(const reader& r, const YAML::Node& node, const std::string& key) {
  const auto s = r.scalar(node, key);
  unsigned char buf[16];
  if (inet_pton(AF_INET, s.c_str(), buf) != 1 && inet_pton(AF_INET6, s.c_str(), buf) != 1) {
    r.fail(node, key, "must be an IP address (got \"" + s + "\")");
  }
  return s;
}

std::uint16_t port(const reader& r, const YAML::Node& node, const std::string& key) {
  const auto v = r.integer(node, key, 65535);
  return static_cast<std::uint16_t>(v);
}

config parse_root(const reader& r, const YAML::Node& root) {
  config c = default_config(r.base_dir());
  if (!root || root.IsNull()) {
    return c;
  }
  r.expect_map(root, "",
               {"listen", "clients", "ca", "upstream", "tls", "capture", "control", "app", "device",
                "sdk_catalog", "declared", "rules", "limits"});

  for_each_key(root, "", [&](const std::string& k, const YAML::Node& v, const std::string& key) {
    if (k == "listen") {
      r.expect_map(v, key, {"address", "port", "mode"});
      if (v["address"]) {
        c.listen.address = ip_literal(r, v["address"], "listen.address");
      }
      if (v["port"]) {
        c.listen.port = port(r, v["port"], "listen.port");
      }
      if (v["mode"]) {
        const auto m = r.scalar(v["mode"], "listen.mode");
        if (m == "explicit") {
          c.listen.mode = listen_mode::explicit_proxy;
        } else if (m == "transparent") {
          c.listen.mode = listen_mode::transparent;
        } else {
          r.fail(v["mode"], "listen.mode", "must be explicit or transparent (got \"" + m + "\")");
        }
      }
    } else if (k == "clients") {
      r.expect_map(v, key, {"allow"});
      if (v["allow"]) {
        c.clients.allow.clear();
        const auto list = r.strings(v["allow"], "clients.allow");
        for (std::size_t i = 0; i < list.size(); ++i) {
          auto block = parse_cidr(list[i]);
          if (!block) {
            r.fail(v["allow"].IsSequence() ? v["allow"][i] : v["allow"], "clients.allow",
                   "must list address blocks such as 192.168.1.0/24 (got \"" + list[i] + "\")");
          }
          c.clients.allow.push_back(*block);
        }
      }
    } else if (k == "ca") {
      r.expect_map(v, key, {"dir"});
      if (v["dir"]) {
        c.ca.dir = r.path(v["dir"], "ca.dir");
      }
    } else if (k == "upstream") {
      r.expect_map(v, key, {"verify", "extra_ca", "resolve", "allow_ports", "allow_private"});
      if (v["verify"]) {
        c.upstream.verify = r.boolean(v["verify"], "upstream.verify");
      }
      if (v["extra_ca"]) {
        for (const auto& p : r.strings(v["extra_ca"], "upstream.extra_ca")) {
          c.upstream.extra_ca.push_back(r.resolve_path(p));
        }
      }
      if (v["resolve"]) {
        const auto& m = v["resolve"];
        if (!m.IsMap()) {
          r.fail(m, "upstream.resolve", "must map host names to IP addresses");
        }
        for_each_key(m, "upstream.resolve", [&](const std::string& host, const YAML::Node& ip, const std::string& k2) {
          c.upstream.resolve[lower(host)] = ip_literal(r, ip, k2);
        });
      }
      if (v["allow_ports"]) {
        const auto& p = v["allow_ports"];
        if (p.IsScalar() && p.Scalar() == "any") {
          c.upstream.allow_ports.reset();
        } else if (p.IsSequence()) {
          std::vector<std::uint16_t> ports;
          for (std::size_t i = 0; i < p.size(); ++i) {
            ports.push_back(port(r, p[i], "upstream.allow_ports[" + std::to_string(i) + "]"));
          }
          c.upstream.allow_ports = ports;
        } else {
          r.fail(p, "upstream.allow_ports", "must be any or a list of ports");
        }
      }
      if (v["allow_private"]) {
        c.upstream.allow_private = r.boolean(v["allow_private"], "upstream.allow_private");
      }
    } else if (k == "tls") {
      r.expect_map(v, key, {"passthrough", "auto_passthrough"});
      if (v["passthrough"]) {
        for (const auto& h : r.strings(v["passthrough"], "tls.passthrough")) {
          c.tls.passthrough.push_back(lower(h));
        }
      }
      if (v["auto_passthrough"]) {
        c.tls.auto_passthrough = r.boolean(v["auto_passthrough"], "tls.auto_passthrough");
      }
    } else if (k == "capture") {
      r.expect_map(v, key, {"dir", "max_inspect_body", "pcapng", "har"});
      if (v["dir"]) {
        c.capture.dir = r.path(v["dir"], "capture.dir");
      }
      if (v["max_inspect_body"]) {
        c.capture.max_inspect_body = r.size(v["max_inspect_body"], "capture.max_inspect_body");
      }
      if (v["pcapng"]) {
        c.capture.pcapng = r.boolean(v["pcapng"], "capture.pcapng");
      }
      if (v["har"]) {
        c.capture.har = r.boolean(v["har"], "capture.har");
      }
    } else if (k == "control") {
      r.expect_map(v, key, {"address", "port"});
      if (v["address"]) {
        c.control.address = ip_literal(r, v["address"], "control.address");
      }
      if (v["port"]) {
        c.control.port = port(r, v["port"], "control.port");
      }
    } else if (k == "app") {
      r.expect_map(v, key, {"name", "first_party"});
      if (v["name"]) {
        c.app.name = r.scalar(v["name"], "app.name");
      }
      if (v["first_party"]) {
        for (const auto& d : r.strings(v["first_party"], "app.first_party")) {
          c.app.first_party.push_back(lower(d));
        }
      }
    } else if (k == "device") {
      if (v.IsScalar()) {
        const auto file = r.resolve_path(v.Scalar());
        try {
          c.device = load_device_profile(file);
        } catch (const config_error& e) {
          r.fail(v, "device", std::string("points to a profile that does not load: ") + e.what());
        }
      } else {
        c.device = parse_device(r, v, "device");
      }
    } else if (k == "sdk_catalog") {
      for (const auto& p : r.strings(v, "sdk_catalog")) {
        c.sdk_catalog.push_back(r.resolve_path(p));
      }
    } else if (k == "declared") {
      r.expect_map(v, key, {"first_party", "sdks"});
      if (v["first_party"]) {
        c.declared.first_party = r.categories_list(v["first_party"], "declared.first_party");
      }
      if (v["sdks"]) {
        if (!v["sdks"].IsMap()) {
          r.fail(v["sdks"], "declared.sdks", "must map SDK names to lists of categories");
        }
        for_each_key(v["sdks"], "declared.sdks", [&](const std::string& sdk, const YAML::Node& cats, const std::string& k2) {
          c.declared.sdks[sdk] = r.categories_list(cats, k2);
        });
      }
    } else if (k == "rules") {
      r.expect_map(v, key, {"frequency"});
      const auto& f = v["frequency"];
      if (f) {
        r.expect_map(f, "rules.frequency", {"max_per_minute"});
        const auto& m = f["max_per_minute"];
        if (m) {
          if (!m.IsMap()) {
            r.fail(m, "rules.frequency.max_per_minute", "must map default or a category to a number");
          }
          for_each_key(m, "rules.frequency.max_per_minute", [&](const std::string& cat, const YAML::Node& n, const std::string& k2) {
            const auto limit = static_cast<unsigned>(r.integer(n, k2, 1'000'000));
            if (cat == "default") {
              c.rules.max_per_minute_default = limit;
            } else if (is_category(cat)) {
              c.rules.max_per_minute[cat] = limit;
            } else {
              r.fail(n, k2, "is neither default nor a known category");
            }
          });
        }
      }
    } else if (k == "limits") {
      r.expect_map(v, key, {"max_header_bytes", "max_headers", "max_decoded_body", "max_connections", "timeouts"});
      if (v["max_header_bytes"]) {
        c.limits.max_header_bytes = r.size(v["max_header_bytes"], "limits.max_header_bytes");
      }
      if (v["max_headers"]) {
        c.limits.max_headers = static_cast<unsigned>(r.integer(v["max_headers"], "limits.max_headers", 100'000));
      }
      if (v["max_decoded_body"]) {
        c.limits.max_decoded_body = r.size(v["max_decoded_body"], "limits.max_decoded_body");
      }
      if (v["max_connections"]) {
        c.limits.max_connections =
            static_cast<unsigned>(r.integer(v["max_connections"], "limits.max_connections", 1'000'000));
      }
      if (const auto& t = v["timeouts"]) {
        r.expect_map(t, "limits.timeouts", {"idle", "handshake", "headers", "upstream_connect", "upstream_response"});
        const std::map<std::string, std::chrono::milliseconds*> fields = {
            {"idle", &c.limits.timeouts.idle},
            {"handshake", &c.limits.timeouts.handshake},
            {"headers", &c.limits.timeouts.headers},
            {"upstream_connect", &c.limits.timeouts.upstream_connect},
            {"upstream_response", &c.limits.timeouts.upstream_response}};
        for_each_key(t, "limits.timeouts", [&](const std::string& name, const YAML::Node& n, const std::string& k2) {
          *fields.at(name) = r.duration(n, k2);
        });
      }
    }
  });
  return c;
}

}  // namespace

config default_config(const std::filesystem::path& base_dir) {
  config c;
  c.clients.allow = {*parse_cidr("127.0.0.1/32"), *parse_cidr("::1/128")};
  const reader r("<defaults>", base_dir);
  c.ca.dir = r.resolve_path("~/.leakscope/ca");
  c.capture.dir = r.resolve_path("captures");
  return c;
}

config parse_config(const std::string& text, const std::string& name, const std::filesystem::path& base_dir) {
  const reader r(name, base_dir);
  return parse_root(r, parse_yaml(text, name));
}

config load_config(const std::filesystem::path& file) {
  const auto text = read_file(file, "config");
  auto dir = std::filesystem::absolute(file).parent_path();
  config c = parse_config(text, file.string(), dir);
  c.source = std::filesystem::absolute(file);
  return c;
}

std::vector<sdk_entry> parse_sdk_catalog(const std::string& text, const std::string& name) {
  static const std::set<std::string> categories = {"analytics", "push", "ads", "location", "crash", "social",
                                                   "payment", "risk", "attribution", "cloud", "other"};
  const reader r(name, "/");
  const auto root = parse_yaml(text, name);
  r.expect_map(root, "", {"sdks"});
  const auto& list = root["sdks"];
  if (!list || !list.IsSequence()) {
    r.fail(root, "sdks", "must be a list of {domain, sdk, vendor, category}");
  }
  std::vector<sdk_entry> out;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto key = "sdks[" + std::to_string(i) + "]";
    const auto& item = list[i];
    r.expect_map(item, key, {"domain", "sdk", "vendor", "category", "country", "detail", "source"});
    sdk_entry e;
    for (const char* required : {"domain", "sdk", "category"}) {
      if (!item[required]) {
        r.fail(item, key, std::string("needs ") + required);
      }
    }
    e.domain = lower(r.scalar(item["domain"], key + ".domain"));
    e.sdk = r.scalar(item["sdk"], key + ".sdk");
    e.category = r.scalar(item["category"], key + ".category");
    if (!categories.count(e.category)) {
      r.fail(item["category"], key + ".category",
             "must be one of analytics, push, ads, location, crash, social, payment, risk, attribution, cloud, other (got \"" +
                 e.category + "\")");
    }
    for (const auto& [field, target] : {std::pair<const char*, std::string*>{"vendor", &e.vendor},
                                        {"country", &e.country}, {"detail", &e.detail}, {"source", &e.source}}) {
      if (item[field]) {
        *target = r.scalar(item[field], key + "." + field);
      }
    }
    if (e.domain.empty() || e.domain.front() == '.' || e.domain.find(' ') != std::string::npos) {
      r.fail(item["domain"], key + ".domain", "must be a domain name such as umeng.com");
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<sdk_entry> load_sdk_catalogs(const config& cfg) {
  auto all = parse_sdk_catalog(builtin_sdk_catalog(), "config/sdk-endpoints.yaml (built in)");
  for (const auto& file : cfg.sdk_catalog) {
    auto extra = parse_sdk_catalog(read_file(file, "SDK catalog"), file.string());
    all.insert(all.end(), extra.begin(), extra.end());
  }
  return all;
}

device_profile load_device_profile(const std::filesystem::path& file) {
  const auto text = read_file(file, "device profile");
  const reader r(file.string(), std::filesystem::absolute(file).parent_path());
  return parse_device(r, parse_yaml(text, file.string()), "");
}

}  // namespace leakscope::config

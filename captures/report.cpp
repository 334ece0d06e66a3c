#include "captures/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>
#include <sstream>

namespace leakscope::captures {

using nlohmann::json;

namespace {

struct rule_text {
  const char* id;
  const char* title;
  const char* clause;
};

// The clauses of the 2019 identification method (App违法违规收集使用个人信息行为认定方法,
// 国信办秘字〔2019〕191号) and the 2020 MIIT special rectification notice (工信部信管函〔2020〕164号).
constexpr rule_text rule_texts[] = {
    {"R1", "Collected before consent",
     "认定方法 三、1：在征得用户同意前就开始收集个人信息 (collecting personal information before the user agrees to the "
     "privacy policy)"},
    {"R2", "Collected after refusal",
     "认定方法 三、2：用户明确表示不同意后，仍收集个人信息 (collecting personal information after the user explicitly refused)"},
    {"R3", "Sent to a third party without consent or beyond what is declared",
     "认定方法 五、1：未经用户同意向他人提供个人信息，包括通过客户端嵌入的第三方代码、插件等方式 (providing personal "
     "information to third parties, including through embedded SDKs, without consent)"},
    {"R4", "Beyond the declared scope",
     "认定方法 三、3 / 三、9 / 四、1：实际收集的个人信息超出用户授权范围或所声明的范围，收集与业务功能无关的个人信息 "
     "(collecting beyond what was authorised or declared)"},
    {"R5", "Collected more often than needed",
     "认定方法 四、4：收集个人信息的频度等超出业务功能实际需要 (collection frequency beyond what the function needs)"},
    {"R6", "Collected in the background",
     "工信部〔2020〕164号 专项整治 第（二）项：APP 后台自启动、私自收集个人信息 (collecting personal information while in "
     "the background)"},
};

const rule_text& text_of(const std::string& id) {
  for (const auto& r : rule_texts) {
    if (id == r.id) {
      return r;
    }
  }
  return rule_texts[0];
}

std::int64_t t_of(const json& record) { return record.value("t_session_ms", std::int64_t{0}); }

std::string str_of(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The destination a finding is about: the SDK, or the registrable domain when no SDK matched.
std::string destination_of(const json& leak) {
  if (leak.contains("sdk") && leak["sdk"].is_object()) {
    return str_of(leak["sdk"], "name");
  }
  const auto domain = str_of(leak, "domain");
  return domain.empty() ? str_of(leak["dest"], "host") : domain;
}

struct interval {
  std::int64_t from;
  std::int64_t to;
  bool contains(std::int64_t t) const { return t >= from && t < to; }
};

// From each `open` mark until the next `close` mark (or the end of the session).
std::vector<interval> intervals(const std::vector<json>& marks, const char* open, const char* close) {
  std::vector<interval> out;
  bool inside = false;
  std::int64_t start = 0;
  for (const auto& m : marks) {
    const auto kind = str_of(m, "kind");
    if (kind == open && !inside) {
      inside = true;
      start = t_of(m);
    } else if (kind == close && inside) {
      out.push_back({start, t_of(m)});
      inside = false;
    }
  }
  if (inside) {
    out.push_back({start, std::numeric_limits<std::int64_t>::max()});
  }
  return out;
}

bool listed(const std::vector<std::string>& list, const std::string& category) {
  return std::find(list.begin(), list.end(), category) != list.end();
}

// The most leaks inside any 60-second window.
std::size_t peak_per_minute(std::vector<std::int64_t> times) {
  std::sort(times.begin(), times.end());
  std::size_t best = 0;
  std::size_t lo = 0;
  for (std::size_t hi = 0; hi < times.size(); ++hi) {
    while (times[hi] - times[lo] >= 60'000) {
      ++lo;
    }
    best = std::max(best, hi - lo + 1);
  }
  return best;
}

}  // namespace

json build_report(const session_records& records, const report_rules& rules,
                  const std::function<std::string(const std::string&)>& party_of_host) {
  std::vector<json> marks = records.marks;
  std::stable_sort(marks.begin(), marks.end(), [](const json& a, const json& b) { return t_of(a) < t_of(b); });
  std::optional<std::int64_t> consent;
  for (const auto& m : marks) {
    if (str_of(m, "kind") == "consent") {
      consent = t_of(m);
      break;
    }
  }
  const auto refused = intervals(marks, "refuse", "consent");
  const auto background = intervals(marks, "background", "foreground");

  // rule -> destination -> category -> leaks
  std::map<std::string, std::map<std::string, std::map<std::string, std::vector<const json*>>>> hits;
  std::map<std::string, std::map<std::string, std::vector<const json*>>> by_destination;  // for R5
  for (const auto& leak : records.leaks) {
    const auto t = t_of(leak);
    const auto category = str_of(leak, "category");
    const auto party = str_of(leak, "party");
    const auto dest = destination_of(leak);
    auto add = [&](const char* rule) { hits[rule][dest][category].push_back(&leak); };
    if (!consent || t < *consent) {
      add("R1");
    }
    if (std::any_of(refused.begin(), refused.end(), [&](const interval& i) { return i.contains(t); })) {
      add("R2");
    }
    if (party == "third") {
      const auto it = rules.declared_sdks.find(dest);
      if (it == rules.declared_sdks.end() || !listed(it->second, category)) {
        add("R3");
      }
    }
    if (party == "first" && !listed(rules.declared_first_party, category)) {
      add("R4");
    }
    if (std::any_of(background.begin(), background.end(), [&](const interval& i) { return i.contains(t); })) {
      add("R6");
    }
    by_destination[dest][category].push_back(&leak);
  }

  auto finding = [&](const std::string& rule, const std::string& dest, const std::string& category,
                     const std::vector<const json*>& leaks) {
    const auto& first = *leaks.front();
    const auto& last = *leaks.back();
    json ids = json::array();
    std::set<std::uint64_t> flows;
    for (const auto* l : leaks) {
      ids.push_back(l->value("id", 0));
      flows.insert(l->value("flow", std::uint64_t{0}));
    }
    const auto& text = text_of(rule);
    json f = {{"rule", rule},
              {"title", text.title},
              {"clause", text.clause},
              {"party", str_of(first, "party")},
              {"sdk", first.contains("sdk") && first["sdk"].is_object() ? first["sdk"] : json(nullptr)},
              {"destination", dest},
              {"domain", str_of(first, "domain")},
              {"hosts", json::array()},
              {"category", category},
              {"count", leaks.size()},
              {"first_ts", str_of(first, "ts")},
              {"last_ts", str_of(last, "ts")},
              {"first_t_session_ms", t_of(first)},
              {"last_t_session_ms", t_of(last)},
              {"first_t_consent_ms", consent ? json(t_of(first) - *consent) : json(nullptr)},
              {"leaks", ids},
              {"flows", flows}};
    std::set<std::string> hosts;
    for (const auto* l : leaks) {
      hosts.insert(str_of((*l)["dest"], "host"));
    }
    f["hosts"] = hosts;
    return f;
  };

  json findings = json::array();
  for (const char* rule : {"R1", "R2", "R3", "R4"}) {
    for (const auto& [dest, cats] : hits[rule]) {
      for (const auto& [category, leaks] : cats) {
        findings.push_back(finding(rule, dest, category, leaks));
      }
    }
  }
  for (const auto& [dest, cats] : by_destination) {
    for (const auto& [category, leaks] : cats) {
      std::vector<std::int64_t> times;
      for (const auto* l : leaks) {
        times.push_back(t_of(*l));
      }
      const auto peak = peak_per_minute(times);
      const auto override_it = rules.max_per_minute.find(category);
      const unsigned limit = override_it != rules.max_per_minute.end() ? override_it->second : rules.max_per_minute_default;
      if (peak > limit) {
        auto f = finding("R5", dest, category, leaks);
        f["peak_per_minute"] = peak;
        f["limit_per_minute"] = limit;
        findings.push_back(std::move(f));
      }
    }
  }
  for (const auto& [dest, cats] : hits["R6"]) {
    for (const auto& [category, leaks] : cats) {
      findings.push_back(finding("R6", dest, category, leaks));
    }
  }

  // Limits of the evidence, per destination host.
  std::map<std::pair<std::string, std::string>, std::size_t> limit_counts;
  for (const auto& flow : records.flows) {
    const auto host = flow.contains("dest") ? str_of(flow["dest"], "host") : std::string();
    const auto error = flow.contains("error") && flow["error"].is_object() ? str_of(flow["error"], "type") : std::string();
    if (error == "tls_client_rejected") {
      ++limit_counts[{"pinning", host}];
    }
    if (str_of(flow, "kind") == "passthrough") {
      ++limit_counts[{"passthrough", host}];
    }
    if (flow.value("request_truncated", false)) {
      ++limit_counts[{"truncated", host}];
    }
    if (flow.contains("incomplete") && flow["incomplete"].is_array()) {
      for (const auto& reason : flow["incomplete"]) {
        if (reason == "opaque_body" && party_of_host(host) == "third") {
          ++limit_counts[{"opaque", host}];
        }
      }
    }
  }
  static const std::map<std::string, std::string> limit_text = {
      {"pinning", "the app refused leakscope's certificate (pinning suspected): what it sent there is not seen"},
      {"passthrough", "tunnelled without interception (tls.passthrough or after a rejection): not inspected"},
      {"truncated", "request bodies larger than capture.max_inspect_body: inspected only up to the cap"},
      {"opaque", "bodies that look encrypted at the application layer (high entropy, no structure) sent to a third "
                 "party: their content cannot be judged"}};
  json limits = json::array();
  for (const auto& [key, count] : limit_counts) {
    limits.push_back({{"kind", key.first}, {"host", key.second}, {"count", count}, {"detail", limit_text.at(key.first)}});
  }

  json session = records.session;
  session["flows"] = records.flows.size();
  session["leaks"] = records.leaks.size();
  session["consent_t_session_ms"] = consent ? json(*consent) : json(nullptr);
  if (!consent) {
    session["note"] = "no consent mark: every leak counts as collected before consent (R1)";
  }
  json rules_json = json::array();
  for (const auto& r : rule_texts) {
    rules_json.push_back({{"rule", r.id}, {"title", r.title}, {"clause", r.clause}});
  }
  // Every leak as a point in time, for the timeline chart.
  json points = json::array();
  for (const auto& leak : records.leaks) {
    points.push_back({{"id", leak.value("id", 0)},
                      {"t_session_ms", t_of(leak)},
                      {"ts", str_of(leak, "ts")},
                      {"category", str_of(leak, "category")},
                      {"destination", destination_of(leak)},
                      {"host", str_of(leak["dest"], "host")}});
  }
  return {{"session", session}, {"marks", marks},   {"rules", rules_json},
          {"findings", findings}, {"limits", limits}, {"leak_points", points}};
}

namespace {

std::string seconds(std::int64_t ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms) / 1000.0);
  return buf;
}

std::string consent_text(const json& f) {
  if (f["first_t_consent_ms"].is_null()) {
    return "no consent mark";
  }
  const auto ms = f["first_t_consent_ms"].get<std::int64_t>();
  return ms < 0 ? seconds(-ms) + " before consent" : seconds(ms) + " after consent";
}

std::string sdk_text(const json& f) {
  if (f["sdk"].is_object()) {
    return f["sdk"].value("name", "") + " (" + f["sdk"].value("vendor", "") + ", " + f["sdk"].value("category", "") + ")";
  }
  return f.value("destination", "");
}

}  // namespace

std::string report_markdown(const json& report) {
  std::ostringstream out;
  const auto& s = report["session"];
  out << "# leakscope report\n\n"
      << "Session started " << s.value("start", "?") << " (" << s.value("source", "?") << "): " << s.value("flows", 0)
      << " flows, " << s.value("leaks", 0) << " leaks.";
  if (s.contains("note")) {
    out << " " << s.value("note", "");
  }
  out << "\n\n## Timeline marks\n\n";
  if (report["marks"].empty()) {
    out << "None.\n";
  } else {
    out << "| time | session time | mark |\n|---|---|---|\n";
    for (const auto& m : report["marks"]) {
      out << "| " << m.value("ts", "") << " | " << seconds(m.value("t_session_ms", std::int64_t{0})) << " | "
          << m.value("kind", "") << (m["text"].is_string() ? ": " + m["text"].get<std::string>() : "") << " |\n";
    }
  }
  out << "\n## Findings\n";
  for (const auto& rule : report["rules"]) {
    const auto id = rule.value("rule", "");
    out << "\n### " << id << " " << rule.value("title", "") << "\n\n" << rule.value("clause", "") << "\n\n";
    std::size_t n = 0;
    for (const auto& f : report["findings"]) {
      if (f.value("rule", "") != id) {
        continue;
      }
      if (n++ == 0) {
        out << "| destination | party | category | count | first | last | relative to consent | leaks |\n"
            << "|---|---|---|---|---|---|---|---|\n";
      }
      std::string ids;
      for (const auto& i : f["leaks"]) {
        ids += (ids.empty() ? "" : ", ") + std::to_string(i.get<std::uint64_t>());
        if (ids.size() > 60) {
          ids += ", …";
          break;
        }
      }
      out << "| " << sdk_text(f) << " | " << f.value("party", "") << " | " << f.value("category", "") << " | "
          << f.value("count", 0)
          << (f.contains("peak_per_minute") ? " (peak " + std::to_string(f.value("peak_per_minute", 0)) + "/min, limit " +
                                                  std::to_string(f.value("limit_per_minute", 0)) + ")"
                                            : "")
          << " | " << f.value("first_ts", "") << " | " << f.value("last_ts", "") << " | " << consent_text(f) << " | "
          << ids << " |\n";
    }
    if (n == 0) {
      out << "No finding.\n";
    }
  }
  out << "\n## Limits of the evidence\n\n";
  if (report["limits"].empty()) {
    out << "None recorded.\n";
  } else {
    out << "| host | what | count |\n|---|---|---|\n";
    for (const auto& l : report["limits"]) {
      out << "| " << l.value("host", "") << " | " << l.value("detail", "") << " | " << l.value("count", 0) << " |\n";
    }
  }
  return out.str();
}

namespace {

std::string esc(const std::string& s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

const char* colour_of(const std::string& category) {
  static const std::map<std::string, const char*> palette = {
      {"imei", "#d62728"},          {"meid", "#ff9896"},          {"imsi", "#9467bd"},      {"iccid", "#c5b0d5"},
      {"serial_number", "#8c564b"}, {"android_id", "#e377c2"},    {"advertising_id", "#f7b6d2"},
      {"mac_address", "#7f7f7f"},   {"phone_number", "#1f77b4"},  {"email", "#aec7e8"},     {"id_card", "#ff7f0e"},
      {"bank_card", "#ffbb78"},     {"location", "#2ca02c"},      {"cell_location", "#98df8a"},
      {"wifi_location", "#17becf"}, {"sms", "#bcbd22"},           {"contacts", "#dbdb8d"},  {"installed_apps", "#393b79"}};
  const auto it = palette.find(category);
  return it != palette.end() ? it->second : "#000000";
}

// Time across, one row per destination (SDKs first), a dot per leak coloured by category,
// marks as vertical lines.
std::string timeline_svg(const json& leaks_by_row, const std::vector<std::string>& rows, const json& marks,
                         std::int64_t t0, std::int64_t t1) {
  const int left = 220, width = 960, row_h = 22, top = 40;
  const int height = top + static_cast<int>(rows.size()) * row_h + 30;
  const double span = std::max<double>(1.0, static_cast<double>(t1 - t0));
  auto x = [&](std::int64_t t) { return left + (width - left - 20) * (static_cast<double>(t - t0) / span); };
  std::ostringstream svg;
  svg << "<svg width='" << width << "' height='" << height
      << "' role='img' aria-label='timeline of leaks'>";
  svg << "<rect x='0' y='0' width='" << width << "' height='" << height << "' fill='#fff'/>";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const int y = top + static_cast<int>(i) * row_h;
    svg << "<rect x='" << left << "' y='" << y << "' width='" << width - left - 20 << "' height='" << row_h
        << "' fill='" << (i % 2 ? "#f7f7f7" : "#fdfdfd") << "'/>";
    svg << "<text x='" << left - 8 << "' y='" << y + 15 << "' text-anchor='end' font-size='12'>" << esc(rows[i])
        << "</text>";
    for (const auto& l : leaks_by_row[rows[i]]) {
      svg << "<circle cx='" << x(l.value("t_session_ms", std::int64_t{0})) << "' cy='" << y + row_h / 2
          << "' r='4.5' fill='" << colour_of(l.value("category", "")) << "'><title>"
          << esc(l.value("category", "") + " → " + l.value("host", "") + " at " + l.value("ts", "")) << "</title></circle>";
    }
  }
  for (const auto& m : marks) {
    const double mx = x(m.value("t_session_ms", std::int64_t{0}));
    const auto kind = m.value("kind", "");
    const char* colour = kind == "consent" ? "#2ca02c" : kind == "refuse" ? "#d62728" : "#555";
    svg << "<line x1='" << mx << "' x2='" << mx << "' y1='" << top - 12 << "' y2='" << height - 24 << "' stroke='"
        << colour << "' stroke-dasharray='4 3'/>";
    svg << "<text x='" << mx + 3 << "' y='" << top - 16 << "' font-size='11' fill='" << colour << "'>" << esc(kind)
        << "</text>";
  }
  svg << "<text x='" << left << "' y='" << height - 8 << "' font-size='11'>" << seconds(t0) << "</text>";
  svg << "<text x='" << width - 20 << "' y='" << height - 8 << "' font-size='11' text-anchor='end'>" << seconds(t1)
      << "</text></svg>";
  return svg.str();
}

}  // namespace

std::string report_html(const json& report) {
  // Rows: every destination with a leak, SDKs first, each with its leaks (from the findings).
  std::map<std::string, std::map<std::uint64_t, json>> row_leaks;
  std::set<std::string> sdk_rows;
  std::int64_t t0 = 0, t1 = 0;
  bool any = false;
  auto span = [&](std::int64_t t) {
    t0 = any ? std::min(t0, t) : t;
    t1 = any ? std::max(t1, t) : t;
    any = true;
  };
  for (const auto& f : report["findings"]) {
    const auto dest = f.value("destination", "");
    if (f["sdk"].is_object()) {
      sdk_rows.insert(dest);
    }
    span(f.value("first_t_session_ms", std::int64_t{0}));
    span(f.value("last_t_session_ms", std::int64_t{0}));
  }
  for (const auto& m : report["marks"]) {
    span(m.value("t_session_ms", std::int64_t{0}));
  }
  if (report.contains("leak_points")) {
    for (const auto& p : report["leak_points"]) {
      row_leaks[p.value("destination", "")][p.value("id", std::uint64_t{0})] = p;
      span(p.value("t_session_ms", std::int64_t{0}));
    }
  }
  std::vector<std::string> rows(sdk_rows.begin(), sdk_rows.end());
  for (const auto& [dest, leaks] : row_leaks) {
    if (!sdk_rows.count(dest)) {
      rows.push_back(dest);
    }
  }
  json by_row = json::object();
  for (const auto& row : rows) {
    by_row[row] = json::array();
    for (const auto& [id, p] : row_leaks[row]) {
      by_row[row].push_back(p);
    }
  }

  std::ostringstream html;
  const auto& s = report["session"];
  html << "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>leakscope report</title><style>"
       << "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}"
       << "table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;"
          "text-align:left;vertical-align:top}th{background:#f0f0f0}.clause{color:#555;font-size:13px}"
       << ".legend span{display:inline-block;margin-right:12px;font-size:12px}.dot{display:inline-block;width:10px;"
          "height:10px;border-radius:5px;margin-right:4px}"
       << "</style></head><body><h1>leakscope report</h1>";
  html << "<p>Session started " << esc(s.value("start", "?")) << " (" << esc(s.value("source", "?")) << "): "
       << s.value("flows", 0) << " flows, " << s.value("leaks", 0) << " leaks. "
       << (s.contains("note") ? esc(s.value("note", "")) : "") << "</p>";
  html << "<h2>Timeline</h2>" << timeline_svg(by_row, rows, report["marks"], t0, t1) << "<div class='legend'>";
  std::set<std::string> categories;  // every dot on the chart has its colour explained
  for (const auto& row : by_row) {
    for (const auto& p : row) {
      categories.insert(p.value("category", ""));
    }
  }
  for (const auto& c : categories) {
    html << "<span><i class='dot' style='background:" << colour_of(c) << "'></i>" << esc(c) << "</span>";
  }
  html << "</div>";

  html << "<h2>By SDK and destination</h2><table><tr><th>destination</th><th>party</th><th>categories</th>"
          "<th>rules</th></tr>";
  std::map<std::string, std::pair<std::set<std::string>, std::set<std::string>>> per_dest;
  std::map<std::string, std::string> party_of_dest;
  for (const auto& f : report["findings"]) {
    const auto dest = sdk_text(f);
    per_dest[dest].first.insert(f.value("category", ""));
    per_dest[dest].second.insert(f.value("rule", ""));
    party_of_dest[dest] = f.value("party", "");
  }
  for (const auto& [dest, sets] : per_dest) {
    auto joined = [](const std::set<std::string>& set) {
      std::string out;
      for (const auto& v : set) {
        out += (out.empty() ? "" : ", ") + v;
      }
      return out;
    };
    html << "<tr><td>" << esc(dest) << "</td><td>" << esc(party_of_dest[dest]) << "</td><td>" << esc(joined(sets.first))
         << "</td><td>" << esc(joined(sets.second)) << "</td></tr>";
  }
  html << "</table><h2>By rule</h2>";
  for (const auto& rule : report["rules"]) {
    const auto id = rule.value("rule", "");
    html << "<h3>" << esc(id + " " + rule.value("title", "")) << "</h3><p class='clause'>" << esc(rule.value("clause", ""))
         << "</p>";
    std::ostringstream rows_html;
    std::size_t n = 0;
    for (const auto& f : report["findings"]) {
      if (f.value("rule", "") != id) {
        continue;
      }
      ++n;
      rows_html << "<tr><td>" << esc(sdk_text(f)) << "</td><td>" << esc(f.value("party", "")) << "</td><td>"
                << esc(f.value("category", "")) << "</td><td>" << f.value("count", 0)
                << (f.contains("peak_per_minute") ? " (peak " + std::to_string(f.value("peak_per_minute", 0)) + "/min)" : "")
                << "</td><td>" << esc(f.value("first_ts", "")) << "</td><td>" << esc(consent_text(f)) << "</td></tr>";
    }
    if (n == 0) {
      html << "<p>No finding.</p>";
    } else {
      html << "<table><tr><th>destination</th><th>party</th><th>category</th><th>count</th><th>first</th>"
              "<th>relative to consent</th></tr>"
           << rows_html.str() << "</table>";
    }
  }
  html << "<h2>Limits of the evidence</h2>";
  if (report["limits"].empty()) {
    html << "<p>None recorded.</p>";
  } else {
    html << "<table><tr><th>host</th><th>what</th><th>count</th></tr>";
    for (const auto& l : report["limits"]) {
      html << "<tr><td>" << esc(l.value("host", "")) << "</td><td>" << esc(l.value("detail", "")) << "</td><td>"
           << l.value("count", 0) << "</td></tr>";
    }
    html << "</table>";
  }
  html << "</body></html>\n";
  return html.str();
}

}  // namespace leakscope::captures

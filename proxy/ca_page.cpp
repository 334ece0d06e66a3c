#include "proxy/ca_page.hpp"

namespace leakscope::proxy {

std::optional<ca_response> ca_page(const certs::certificate_authority& ca, const std::string& path, const std::string& root) {
  const std::string android = ca.android_file_name();
  if (path == "/ca.pem") {
    return ca_response{200, "application/x-pem-file", ca.pem(), "leakscope-ca.pem"};
  }
  if (path == "/ca.der" || path == "/ca.crt") {
    const auto der = ca.der();
    // application/x-x509-ca-cert makes Android offer to install it and iOS treat it as a profile.
    return ca_response{200, "application/x-x509-ca-cert", std::string(der.begin(), der.end()), "leakscope-ca.crt"};
  }
  if (path == "/" + android) {
    return ca_response{200, "application/octet-stream", ca.pem(), android};
  }
  if (path != "/" && !path.empty()) {
    return std::nullopt;
  }
  const std::string html = R"(<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>leakscope CA</title>
<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:1.5em auto;padding:0 1em;line-height:1.45;color:#222}
a.button{display:block;margin:.6em 0;padding:.8em 1em;background:#1f5fbf;color:#fff;text-decoration:none;border-radius:6px}
code{background:#f2f2f2;padding:0 .2em;word-break:break-all}h2{margin-top:1.4em}</style></head><body>
<h1>Install the leakscope CA</h1>
<p>This phone's traffic goes through leakscope. To let it read HTTPS, install this certificate
authority. It was created for this installation only; its SHA-256 fingerprint is
<code>)" + ca.sha256_fingerprint() + R"(</code>. Compare it with the one leakscope printed at start.</p>
<a class="button" href=")" + root + R"(ca.crt">Download for Android or iOS (DER, ca.crt)</a>
<a class="button" href=")" + root + R"(ca.pem">Download as PEM (ca.pem)</a>
<a class="button" href=")" + root + android + R"(">Android system store file ()" + android + R"()</a>
<h2>Android</h2>
<ul><li><b>User store</b>: download ca.crt, then Settings → Security → Encryption &amp; credentials → Install a
certificate → CA certificate. Since Android 7, apps trust user CAs only if their
<code>network_security_config</code> says so: most release apps will refuse leakscope (and be reported as
"pinning suspected").</li>
<li><b>System store</b> (rooted phone or emulator image): copy <code>)" + android + R"(</code> to
<code>/system/etc/security/cacerts/</code>, <code>chmod 644</code>, reboot. Every app then trusts it.</li>
<li><b>Debug builds</b> of the app under test: add <code>&lt;certificates src="user"/&gt;</code> to the
<code>debug-overrides</code> of its <code>network_security_config</code>.</li></ul>
<h2>iOS</h2>
<ol><li>Open ca.crt in Safari and allow the profile to download.</li>
<li>Settings → General → VPN &amp; Device Management → the leakscope profile → Install.</li>
<li>Settings → General → About → Certificate Trust Settings → enable full trust for the leakscope CA.</li></ol>
<p>Remove the certificate when the audit is over.</p></body></html>
)";
  return ca_response{200, "text/html; charset=utf-8", html, ""};
}

std::string http_response(const ca_response& r) {
  std::string head = "HTTP/1.1 " + std::to_string(r.status) + (r.status == 200 ? " OK" : " Not Found") +
                     "\r\nContent-Type: " + r.content_type + "\r\nContent-Length: " + std::to_string(r.body.size()) +
                     "\r\nCache-Control: no-store\r\nConnection: close\r\n";
  if (!r.filename.empty()) {
    head += "Content-Disposition: attachment; filename=\"" + r.filename + "\"\r\n";
  }
  return head + "\r\n" + r.body;
}

}  // namespace leakscope::proxy

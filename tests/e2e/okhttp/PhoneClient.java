// The Android HTTP stack in an end-to-end test: OkHttp (Debian's libokhttp-java) as an app
// would use it, trusting the CAs it is given, optionally through an explicit proxy, optionally
// pinning a server key with CertificatePinner.
//
// java PhoneClient [--proxy host:port] [--resolve host:ip] [--pin host=sha256/...] --ca file.pem...
//                  (get URL | post URL JSON)...
// Prints one line per request: "<status> <body>" or "error <exception class>: <message>".
// Requests share one OkHttpClient, so a pinning failure and the retry run as in one app.

import java.io.FileInputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Proxy;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509TrustManager;
import okhttp3.CertificatePinner;
import okhttp3.MediaType;
import okhttp3.OkHttpClient;
import okhttp3.Request;
import okhttp3.RequestBody;
import okhttp3.Response;

public final class PhoneClient {
  public static void main(String[] args) throws Exception {
    OkHttpClient.Builder builder = new OkHttpClient.Builder()
        .connectTimeout(20, TimeUnit.SECONDS)
        .readTimeout(20, TimeUnit.SECONDS)
        .retryOnConnectionFailure(false);
    List<String> cas = new ArrayList<>();
    Map<String, String> resolve = new HashMap<>();
    CertificatePinner.Builder pins = new CertificatePinner.Builder();
    boolean pinned = false;
    List<String[]> requests = new ArrayList<>();
    for (int i = 0; i < args.length; ++i) {
      switch (args[i]) {
        case "--proxy": {
          String[] hp = args[++i].split(":");
          builder.proxy(new Proxy(Proxy.Type.HTTP, new InetSocketAddress(hp[0], Integer.parseInt(hp[1]))));
          break;
        }
        case "--resolve": {
          String[] hi = args[++i].split(":", 2);
          resolve.put(hi[0], hi[1]);
          break;
        }
        case "--pin": {
          String[] hp = args[++i].split("=", 2);
          pins.add(hp[0], hp[1]);
          pinned = true;
          break;
        }
        case "--ca":
          cas.add(args[++i]);
          break;
        case "get":
          requests.add(new String[] {"get", args[++i], null});
          break;
        case "post":
          requests.add(new String[] {"post", args[++i], args[++i]});
          break;
        default:
          throw new IllegalArgumentException("unknown argument " + args[i]);
      }
    }
    KeyStore store = KeyStore.getInstance(KeyStore.getDefaultType());
    store.load(null, null);
    CertificateFactory cf = CertificateFactory.getInstance("X.509");
    for (String path : cas) {
      try (FileInputStream in = new FileInputStream(path)) {
        Certificate c = cf.generateCertificate(in);
        store.setCertificateEntry(path, c);
      }
    }
    TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
    tmf.init(store);
    X509TrustManager tm = (X509TrustManager) tmf.getTrustManagers()[0];
    SSLContext ssl = SSLContext.getInstance("TLS");
    ssl.init(null, new javax.net.ssl.TrustManager[] {tm}, null);
    builder.sslSocketFactory(ssl.getSocketFactory(), tm);
    if (pinned) {
      builder.certificatePinner(pins.build());
    }
    if (!resolve.isEmpty()) {
      builder.dns(host -> resolve.containsKey(host)
          ? Collections.singletonList(InetAddress.getByName(resolve.get(host)))
          : okhttp3.Dns.SYSTEM.lookup(host));
    }
    OkHttpClient client = builder.build();
    boolean allOk = true;
    for (String[] r : requests) {
      Request.Builder req = new Request.Builder().url(r[1]);
      if (r[0].equals("post")) {
        req.post(RequestBody.create(MediaType.get("application/json; charset=utf-8"), r[2]));
      }
      try (Response response = client.newCall(req.build()).execute()) {
        System.out.println(response.code() + " " + response.body().string().trim());
      } catch (Exception e) {
        allOk = false;
        System.out.println("error " + e.getClass().getSimpleName() + ": " + e.getMessage());
      }
    }
    System.exit(allOk ? 0 : 1);
  }
}

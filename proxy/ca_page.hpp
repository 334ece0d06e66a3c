#pragma once
// The page a technician opens on the phone to install the CA: http://leakscope/ through the
// proxy, or /ca on the control endpoint. Pure: the CA in, responses out.

#include "certs/ca.hpp"

#include <optional>
#include <string>

namespace leakscope::proxy {

struct ca_response {
  int status = 200;
  std::string content_type;
  std::string body;
  std::string filename;  // for Content-Disposition on downloads
};

// `path` below the page's root: "/", "/ca.pem", "/ca.der" (also "/ca.crt"), "/<hash>.0".
// nullopt for anything else.
std::optional<ca_response> ca_page(const certs::certificate_authority& ca, const std::string& path, const std::string& root);

// A whole HTTP/1.1 response for `r`, closing the connection.
std::string http_response(const ca_response& r);

}  // namespace leakscope::proxy

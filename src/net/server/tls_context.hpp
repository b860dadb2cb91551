#pragma once
// A TLS listener's PEM files, loaded and verified in one place for the REST
// listener (serve.json "http_tls") and keel serve --check's look at the
// gRPC one ("grpc_tls").

#include <memory>
#include <string>

namespace boost::asio::ssl {
class context;
}

namespace keel::net::detail {

// A server context from cert_file (the chain, leaf first), key_file (an
// unencrypted private key matching the leaf) and, when set, client_ca_file
// (the CAs whose client certificates are required). Null without
// cert_file. Throws keel::Error (kInvalidInput) naming `section`.field and
// the file: unreadable, empty, not PEM, or a key not matching the
// certificate; never the key's text.
std::unique_ptr<boost::asio::ssl::context> make_tls_context(const std::string& section, const std::string& cert_file,
                                                            const std::string& key_file,
                                                            const std::string& client_ca_file);
// make_tls_context's checks, keeping nothing (keel serve --check).
void check_tls_files(const std::string& section, const std::string& cert_file, const std::string& key_file,
                     const std::string& client_ca_file);

}  // namespace keel::net::detail

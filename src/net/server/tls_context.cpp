#include "net/server/tls_context.hpp"

#include <keel/core/status.hpp>

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange

#include <boost/asio/ssl/context.hpp>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <fstream>
#include <iterator>

namespace keel::net::detail {
namespace asio = boost::asio;
using boost::system::error_code;

namespace {

std::string read_tls_file(const std::string& section, const std::string& path, const char* field) {
  std::ifstream in(path, std::ios::binary);
  std::string s;
  if (in) s.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (!in.is_open() || in.bad())
    throw Error(StatusCode::kInvalidInput, section + "." + field + ": cannot read " + path);
  if (s.empty()) throw Error(StatusCode::kInvalidInput, section + "." + field + ": " + path + " is empty");
  return s;
}

// OpenSSL's reason for the last error, then clears the queue.
std::string ssl_reason() {
  const unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (e == 0) return "unknown error";
  const char* r = ERR_reason_error_string(e);
  return r ? r : "error " + std::to_string(e);
}

int no_passphrase(char*, int, int, void*) { return 0; }  // an encrypted key fails, never prompts

}  // namespace

std::unique_ptr<asio::ssl::context> make_tls_context(const std::string& section, const std::string& cert_file,
                                                  const std::string& key_file, const std::string& client_ca_file) {
  if (cert_file.empty()) {
    if (!key_file.empty() || !client_ca_file.empty())
      throw Error(StatusCode::kInvalidInput, section + ": key_file and client_ca_file need cert_file");
    return nullptr;
  }
  if (key_file.empty()) throw Error(StatusCode::kInvalidInput, section + ".key_file: missing");
  auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                   asio::ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  ERR_clear_error();

  const std::string cert = read_tls_file(section, cert_file, "cert_file");
  error_code ec;
  ctx->use_certificate_chain(asio::buffer(cert), ec);
  if (ec)
    throw Error(StatusCode::kInvalidInput,
                section + ".cert_file: " + cert_file + " is not a PEM certificate chain (" + ec.message() + ")");

  std::string key = read_tls_file(section, key_file, "key_file");
  BIO* bio = BIO_new_mem_buf(key.data(), static_cast<int>(key.size()));
  EVP_PKEY* pkey = bio ? PEM_read_bio_PrivateKey(bio, nullptr, no_passphrase, nullptr) : nullptr;
  if (bio) BIO_free(bio);
  OPENSSL_cleanse(key.data(), key.size());
  if (!pkey)
    throw Error(StatusCode::kInvalidInput,
                section + ".key_file: " + key_file + " is not an unencrypted PEM private key (" + ssl_reason() + ")");
  const bool used = SSL_CTX_use_PrivateKey(native, pkey) == 1;
  EVP_PKEY_free(pkey);
  if (!used || SSL_CTX_check_private_key(native) != 1) {
    ERR_clear_error();
    throw Error(StatusCode::kInvalidInput, section + ".key_file: " + key_file + " does not match the certificate in " +
                                               section + ".cert_file " + cert_file);
  }

  if (!client_ca_file.empty()) {
    const std::string ca = read_tls_file(section, client_ca_file, "client_ca_file");
    ctx->add_certificate_authority(asio::buffer(ca), ec);
    if (ec)
      throw Error(StatusCode::kInvalidInput,
                  section + ".client_ca_file: " + client_ca_file + " is not a PEM certificate list (" + ec.message() + ")");
    // The CAs' names in the CertificateRequest, so that clients pick a
    // matching certificate.
    if (STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null()) {
      BIO* cb = BIO_new_mem_buf(ca.data(), static_cast<int>(ca.size()));
      while (cb) {
        X509* x = PEM_read_bio_X509(cb, nullptr, no_passphrase, nullptr);
        if (!x) break;
        if (X509_NAME* n = X509_NAME_dup(X509_get_subject_name(x))) sk_X509_NAME_push(names, n);
        X509_free(x);
      }
      if (cb) BIO_free(cb);
      ERR_clear_error();
      SSL_CTX_set_client_CA_list(native, names);  // takes ownership
    }
    ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
    // Needed for session resumption with client verification.
    SSL_CTX_set_session_id_context(native, reinterpret_cast<const unsigned char*>(section.data()),
                                   static_cast<unsigned>(std::min<std::size_t>(section.size(), SSL_MAX_SID_CTX_LENGTH)));
  } else {
    ctx->set_verify_mode(asio::ssl::verify_none);
  }
  return ctx;
}

void check_tls_files(const std::string& section, const std::string& cert_file, const std::string& key_file,
                     const std::string& client_ca_file) {
  (void)make_tls_context(section, cert_file, key_file, client_ca_file);
}

}  // namespace keel::net::detail

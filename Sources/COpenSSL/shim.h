// The system's OpenSSL (Debian: libssl-dev), for TLS in the own HTTP/1.1 transport
// (Sources/CommandPipelineHTTP/Transport/HTTP1/TLS.swift).
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

// Swift does not import function-like macros: these wrap the few the transport needs.

/// TLS 1.2 at least; no compression (CRIME), no renegotiation; partial writes from a buffer
/// that may move between retries (the transport's own output buffer); read-ahead (one read
/// per record burst instead of a header then a body). 1 on success.
static inline int commandpipeline_tls_configure(SSL_CTX *context) {
    if (SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) != 1) return 0;
    SSL_CTX_set_options(context, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    // No SSL_OP_IGNORE_UNEXPECTED_EOF: a TCP close without TLS's close_notify stays an error
    // (SSL_ERROR_SSL "unexpected eof" on OpenSSL 3, SSL_ERROR_SYSCALL on 1.1), so a body
    // delimited by the close is refused when it ends that way (RFC 9112 section 9.8: a
    // truncation attack looks exactly like it). Framed bodies end by their framing first.
    SSL_CTX_set_mode(context, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(context, 1);
    return 1;
}

/// Server Name Indication (a host name, never an IP address). 1 on success.
static inline int commandpipeline_tls_set_server_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

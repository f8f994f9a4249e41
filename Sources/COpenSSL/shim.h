// The system's OpenSSL (Debian: libssl-dev), for TLS in the own HTTP/1.1 transport
// (Sources/CommandPipelineHTTP/Transport/HTTP1/TLS.swift).
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

// Swift does not import function-like macros: these wrap the few the transport needs.

/// TLS 1.2 at least; no compression (CRIME), no renegotiation; an end of stream without
/// close_notify read as an end of stream; partial writes from a buffer
/// that may move between retries (the transport's own output buffer); read-ahead (one read
/// per record burst instead of a header then a body). 1 on success.
static inline int commandpipeline_tls_configure(SSL_CTX *context) {
    if (SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) != 1) return 0;
    SSL_CTX_set_options(context, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    // A close without close_notify ends the stream, as with OpenSSL 1.1 and most clients:
    // servers often close that way, and the HTTP framing says whether the answer was whole.
    SSL_CTX_set_options(context, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    SSL_CTX_set_mode(context, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(context, 1);
    return 1;
}

/// Server Name Indication (a host name, never an IP address). 1 on success.
static inline int commandpipeline_tls_set_server_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

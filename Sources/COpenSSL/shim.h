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

/// The subject-name hashes (the names of a hashed certificate directory's files, `%08lx.N`)
/// of the certificates in `context`'s store, up to `max` of them; how many certificates the
/// store holds (those past `max` are counted, not hashed), or -1 when it cannot be read.
static inline int commandpipeline_store_subject_hashes(SSL_CTX *context, unsigned long *hashes, int max) {
    X509_STORE *store = SSL_CTX_get_cert_store(context);
    if (store == NULL || !X509_STORE_lock(store)) return -1;
    STACK_OF(X509_OBJECT) *objects = X509_STORE_get0_objects(store);
    int count = 0;
    for (int i = 0; i < sk_X509_OBJECT_num(objects); i++) {
        X509 *certificate = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, i));
        if (certificate == NULL) continue;
        if (count < max) hashes[count] = X509_NAME_hash_ex(X509_get_subject_name(certificate), NULL, NULL, NULL);
        count++;
    }
    X509_STORE_unlock(store);
    return count;
}

/// Whether `leaf` verifies against `context`'s trust, `untrusted` (or NULL) offered as the
/// chain's intermediate, as a server would send it: no handshake (for tests: which
/// certificates a verification reads). 1 when it verifies.
static inline int commandpipeline_verify(SSL_CTX *context, X509 *leaf, X509 *untrusted) {
    STACK_OF(X509) *chain = sk_X509_new_null();
    if (chain == NULL) return 0;
    if (untrusted != NULL && !sk_X509_push(chain, untrusted)) { sk_X509_free(chain); return 0; }
    X509_STORE_CTX *verification = X509_STORE_CTX_new();
    int ok = verification != NULL && X509_STORE_CTX_init(verification, SSL_CTX_get_cert_store(context), leaf, chain) == 1
        && X509_verify_cert(verification) == 1;
    X509_STORE_CTX_free(verification);
    sk_X509_free(chain);
    return ok;
}

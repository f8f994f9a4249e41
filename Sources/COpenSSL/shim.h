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

// The system's bundle file, read the first time a chain needs an issuer that neither the
// certificates already loaded nor the certificate directory have (SystemTrustStore.swift):
// a lookup added after the directory's, so OpenSSL asks it only on a miss there. Parsing the
// bundle (~150 certificates) costs 10-20 ms of CPU; most chains never need it.
#include <stdlib.h>
#include <string.h>

typedef struct { char *path; int loaded; } commandpipeline_lazy_bundle;

static inline int commandpipeline_lazy_bundle_get(X509_LOOKUP *lookup, X509_LOOKUP_TYPE type, const X509_NAME *name, X509_OBJECT *found) {
    commandpipeline_lazy_bundle *bundle = (commandpipeline_lazy_bundle *)X509_LOOKUP_get_method_data(lookup);
    // Once read, the bundle's certificates are in the store, where OpenSSL looks first: a
    // later miss is a certificate the bundle does not hold either.
    if (bundle == NULL || bundle->loaded) return 0;
    bundle->loaded = 1;
    X509_STORE *store = X509_LOOKUP_get_store(lookup);
    int read = X509_load_cert_crl_file(lookup, bundle->path, X509_FILETYPE_PEM) > 0;
    ERR_clear_error();  // a missing or partly unreadable bundle is a miss, as with OpenSSL's default paths
    if (!read || store == NULL || !X509_STORE_lock(store)) return 0;
    X509_OBJECT *object = X509_OBJECT_retrieve_by_subject(X509_STORE_get0_objects(store), type, name);
    X509 *certificate = object != NULL ? X509_OBJECT_get0_X509(object) : NULL;
    int ok = certificate != NULL && X509_OBJECT_set1_X509(found, certificate) == 1;
    // Like OpenSSL's own directory lookup, `found` borrows the store's reference (the caller
    // takes its own): drop the one set1 took.
    if (ok) X509_free(certificate);
    X509_STORE_unlock(store);
    return ok;
}

static inline void commandpipeline_lazy_bundle_free(X509_LOOKUP *lookup) {
    commandpipeline_lazy_bundle *bundle = (commandpipeline_lazy_bundle *)X509_LOOKUP_get_method_data(lookup);
    if (bundle != NULL) { free(bundle->path); free(bundle); }
    X509_LOOKUP_set_method_data(lookup, NULL);
}

/// The lookup method (made once by the caller and kept: lookups made from it point at it).
static inline X509_LOOKUP_METHOD *commandpipeline_lazy_bundle_method(void) {
    X509_LOOKUP_METHOD *method = X509_LOOKUP_meth_new("commandpipeline lazy bundle");
    if (method == NULL) return NULL;
    if (X509_LOOKUP_meth_set_get_by_subject(method, commandpipeline_lazy_bundle_get) != 1
        || X509_LOOKUP_meth_set_free(method, commandpipeline_lazy_bundle_free) != 1) {
        X509_LOOKUP_meth_free(method);
        return NULL;
    }
    return method;
}

/// Adds the lazily read bundle at `path` to `context`'s store, after its other lookups. 1 on success.
static inline int commandpipeline_lazy_bundle_add(SSL_CTX *context, X509_LOOKUP_METHOD *method, const char *path) {
    commandpipeline_lazy_bundle *bundle = (commandpipeline_lazy_bundle *)calloc(1, sizeof *bundle);
    if (bundle == NULL || (bundle->path = strdup(path)) == NULL) { free(bundle); return 0; }
    X509_LOOKUP *lookup = X509_STORE_add_lookup(SSL_CTX_get_cert_store(context), method);
    if (lookup == NULL || X509_LOOKUP_set_method_data(lookup, bundle) != 1) { free(bundle->path); free(bundle); return 0; }
    return 1;
}

/// How many certificates and CRLs `context`'s store holds (for tests: what has been read).
static inline int commandpipeline_store_count(SSL_CTX *context) {
    X509_STORE *store = SSL_CTX_get_cert_store(context);
    if (store == NULL || !X509_STORE_lock(store)) return -1;
    int count = sk_X509_OBJECT_num(X509_STORE_get0_objects(store));
    X509_STORE_unlock(store);
    return count;
}

/* tls: HTTPS credentials for libmicrohttpd's GnuTLS, swapped on reload without a restart. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_TLS_H
#define SP_TLS_H

#include <microhttpd.h>
#include <stddef.h>

/* TLS 1.2 and 1.3 only, AEAD ciphers, ECDHE: the "intermediate" profile of Mozilla's
 * Server Side TLS guidelines (https://wiki.mozilla.org/Security/Server_Side_TLS), which
 * every mail client and browser of the last years meets. */
#define SP_TLS_PRIORITIES                                                                          \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+CHACHA20-POLY1305:+AES-256-GCM:"      \
    "+AES-128-GCM:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-GROUP-ALL:+GROUP-X25519:"        \
    "+GROUP-SECP256R1:+GROUP-SECP384R1"

typedef struct sp_tls sp_tls_t;

/* Where a connection keeps the credentials its handshake took, so that they outlive a
 * reload until it closes: a pointer in the connection's socket context. */
typedef void **(*sp_tls_slot_fn)(struct MHD_Connection *conn);

/* Reads the PEM certificate chain CERT and its private key KEY. One per process: GnuTLS's
 * certificate callback carries no context. SLOT finds a connection's holder. NULL + ERR
 * when the files cannot be read, do not parse or do not belong together. */
sp_tls_t *sp_tls_new(const char *cert, const char *key, sp_tls_slot_fn slot, char *err,
                     size_t errlen);

/* Reads the files again. 0: new handshakes take the new pair (connections that have
 * theirs keep it); -1 + ERR: the old pair stays in use. */
int sp_tls_reload(sp_tls_t *t, char *err, size_t errlen);

/* The options that make a daemon serve HTTPS with T (an MHD_OPTION_ARRAY list). */
struct MHD_OptionItem *sp_tls_options(sp_tls_t *t);

/* A connection that had a handshake closes: HOLD (what its slot holds) is given back. */
void sp_tls_release(void *hold);

/* The pair in use in words: its subject, expiry and chain length. */
void sp_tls_describe(sp_tls_t *t, char *buf, size_t len);

/* After every daemon has stopped. NULL is fine. */
void sp_tls_free(sp_tls_t *t);

#endif

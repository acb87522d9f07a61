/* tls: HTTPS credentials for libmicrohttpd's GnuTLS, swapped on reload without a restart. */
/* SPDX-License-Identifier: MIT */
#include "tls.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHAIN_MAX 16

/* A certificate chain and its key. Each handshake that takes it holds a reference until
 * its connection closes: GnuTLS keeps pointers to it in the session. */
typedef struct pair {
    gnutls_pcert_st pcert[CHAIN_MAX];
    unsigned n_pcert;
    gnutls_privkey_t key;
    atomic_int refs;
    char subject[256];
    time_t not_after;
} pair_t;

struct sp_tls {
    char cert_path[512], key_path[512];
    struct MHD_OptionItem options[4];
};

/* The certificate callback has no context of its own: the pair in use is the process's. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pair_t *current;
static sp_tls_slot_fn slot_of;

static void pair_free(pair_t *p)
{
    if (!p)
        return;
    for (unsigned i = 0; i < p->n_pcert; i++)
        gnutls_pcert_deinit(&p->pcert[i]);
    if (p->key)
        gnutls_privkey_deinit(p->key);
    free(p);
}

static void pair_unref(pair_t *p)
{
    if (p && 1 == atomic_fetch_sub(&p->refs, 1))
        pair_free(p);
}

/* The public key of a certificate or of a private key, DER. 0, or -1. */
static int pubkey_der(gnutls_pubkey_t pub, gnutls_datum_t *out)
{
    return gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, out) < 0 ? -1 : 0;
}

static pair_t *pair_load(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
    gnutls_datum_t cert = {0}, key = {0}, a = {0}, b = {0};
    gnutls_pubkey_t from_key = NULL;
    pair_t *p = calloc(1, sizeof(*p));
    if (!p)
        abort();
    atomic_init(&p->refs, 1);
    int rc = gnutls_load_file(cert_path, &cert);
    if (rc < 0) {
        snprintf(err, errlen, "--tls-cert %s: cannot read it (%s)", cert_path, gnutls_strerror(rc));
        goto fail;
    }
    rc = gnutls_load_file(key_path, &key);
    if (rc < 0) {
        snprintf(err, errlen, "--tls-key %s: cannot read it (%s)", key_path, gnutls_strerror(rc));
        goto fail;
    }
    p->n_pcert = CHAIN_MAX;
    rc = gnutls_pcert_list_import_x509_raw(p->pcert, &p->n_pcert, &cert, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0 || 0 == p->n_pcert) {
        p->n_pcert = 0;
        snprintf(err, errlen, "--tls-cert %s: not a PEM certificate chain (%s)", cert_path,
                 rc < 0 ? gnutls_strerror(rc) : "no certificate");
        goto fail;
    }
    if (gnutls_privkey_init(&p->key) < 0)
        abort();
    rc = gnutls_privkey_import_x509_raw(p->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc < 0) {
        snprintf(err, errlen, "--tls-key %s: not an unencrypted PEM private key (%s)", key_path,
                 gnutls_strerror(rc));
        goto fail;
    }
    /* A key that is not the certificate's would fail every handshake: refuse it here. */
    if (gnutls_pubkey_init(&from_key) < 0)
        abort();
    if (gnutls_pubkey_import_privkey(from_key, p->key, 0, 0) < 0 || 0 != pubkey_der(from_key, &a) ||
        0 != pubkey_der(p->pcert[0].pubkey, &b) || a.size != b.size ||
        0 != memcmp(a.data, b.data, a.size)) {
        snprintf(err, errlen, "--tls-key %s is not the key of the certificate in %s", key_path,
                 cert_path);
        goto fail;
    }
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) >= 0) {
        if (gnutls_x509_crt_import(crt, &p->pcert[0].cert, GNUTLS_X509_FMT_DER) >= 0) {
            size_t n = sizeof(p->subject);
            if (gnutls_x509_crt_get_dn(crt, p->subject, &n) < 0)
                p->subject[0] = '\0';
            p->not_after = gnutls_x509_crt_get_expiration_time(crt);
        }
        gnutls_x509_crt_deinit(crt);
    }
    gnutls_free(cert.data);
    gnutls_free(key.data);
    gnutls_free(a.data);
    gnutls_free(b.data);
    gnutls_pubkey_deinit(from_key);
    return p;
fail:
    gnutls_free(cert.data);
    if (key.data) {
        memset(key.data, 0, key.size);
        gnutls_free(key.data);
    }
    gnutls_free(a.data);
    gnutls_free(b.data);
    if (from_key)
        gnutls_pubkey_deinit(from_key);
    pair_free(p);
    return NULL;
}

/* GnuTLS asks for the server's certificate during each handshake. */
static int retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                    const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                    gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    (void)req_ca_dn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    struct MHD_Connection *conn = gnutls_session_get_ptr(session);
    void **slot = conn && slot_of ? slot_of(conn) : NULL;
    pthread_mutex_lock(&lock);
    pair_t *p = current;
    if (p)
        atomic_fetch_add(&p->refs, 1);
    pthread_mutex_unlock(&lock);
    if (!p)
        return -1;
    if (slot) {
        pair_unref(*slot); /* a second handshake on one connection */
        *slot = p;
    }
    /* Without a slot the reference is never given back: the pair outlives every
     * connection that might use it. */
    *pcert = p->pcert;
    *pcert_length = p->n_pcert;
    *pkey = p->key;
    return 0;
}

sp_tls_t *sp_tls_new(const char *cert, const char *key, sp_tls_slot_fn slot, char *err,
                     size_t errlen)
{
    sp_tls_t *t = calloc(1, sizeof(*t));
    if (!t)
        abort();
    snprintf(t->cert_path, sizeof(t->cert_path), "%s", cert);
    snprintf(t->key_path, sizeof(t->key_path), "%s", key);
    pair_t *p = pair_load(cert, key, err, errlen);
    if (!p) {
        free(t);
        return NULL;
    }
    pthread_mutex_lock(&lock);
    pair_unref(current);
    current = p;
    slot_of = slot;
    pthread_mutex_unlock(&lock);
    t->options[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)retrieve};
    t->options[1] =
        (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)SP_TLS_PRIORITIES};
    t->options[2] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    return t;
}

int sp_tls_reload(sp_tls_t *t, char *err, size_t errlen)
{
    pair_t *p = pair_load(t->cert_path, t->key_path, err, errlen);
    if (!p)
        return -1;
    pthread_mutex_lock(&lock);
    pair_t *old = current;
    current = p;
    pthread_mutex_unlock(&lock);
    pair_unref(old);
    return 0;
}

struct MHD_OptionItem *sp_tls_options(sp_tls_t *t)
{
    return t->options;
}

void sp_tls_release(void *hold)
{
    pair_unref(hold);
}

void sp_tls_describe(sp_tls_t *t, char *buf, size_t len)
{
    (void)t;
    pthread_mutex_lock(&lock);
    const pair_t *p = current;
    char when[32] = "?";
    struct tm tm;
    if (p && p->not_after > 0 && gmtime_r(&p->not_after, &tm))
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(buf, len, "%s, valid until %s, %u certificate%s in the chain", p ? p->subject : "",
             when, p ? p->n_pcert : 0, p && 1 == p->n_pcert ? "" : "s");
    pthread_mutex_unlock(&lock);
}

void sp_tls_free(sp_tls_t *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&lock);
    pair_unref(current);
    current = NULL;
    slot_of = NULL;
    pthread_mutex_unlock(&lock);
    free(t);
}

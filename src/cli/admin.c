/* admin: the command line's user and token commands (dashboard users, API tokens). */
/* SPDX-License-Identifier: MIT */
#include "admin.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "event.h"
#include "store.h"

#define NAME_RULE "1-128 letters, digits or - _ @ + ."

/* ---- listings: JSON, a table on a terminal, tab-separated lines elsewhere ------------- */

#define TABLE_COLS_MAX 8

typedef struct table {
    size_t cols, rows;
    char **cells; /* rows * cols, the header first */
} table_t;

static void table_add(table_t *t, const char *const *row)
{
    if (t->cols > TABLE_COLS_MAX)
        abort();
    t->cells = realloc(t->cells, (t->rows + 1) * t->cols * sizeof(*t->cells));
    if (!t->cells)
        abort();
    for (size_t c = 0; c < t->cols; c++) {
        t->cells[t->rows * t->cols + c] = strdup(row[c] && row[c][0] ? row[c] : "-");
        if (!t->cells[t->rows * t->cols + c])
            abort();
    }
    t->rows++;
}

static void table_free(table_t *t)
{
    for (size_t i = 0; i < t->rows * t->cols; i++)
        free(t->cells[i]);
    free(t->cells);
}

/* A terminal gets the header and aligned columns; a pipe gets the rows alone, one per line
 * with tabs between the cells (names and times hold neither). */
static void table_print(table_t *t, FILE *out)
{
    bool tty = isatty(fileno(out));
    size_t width[TABLE_COLS_MAX] = {0};
    for (size_t r = 0; r < t->rows; r++)
        for (size_t c = 0; c < t->cols; c++) {
            size_t n = strlen(t->cells[r * t->cols + c]);
            if (n > width[c])
                width[c] = n;
        }
    for (size_t r = tty ? 0 : 1; r < t->rows; r++) {
        for (size_t c = 0; c < t->cols; c++) {
            const char *cell = t->cells[r * t->cols + c];
            if (!tty)
                fprintf(out, "%s%s", cell, c + 1 < t->cols ? "\t" : "\n");
            else if (c + 1 < t->cols)
                fprintf(out, "%-*s  ", (int)width[c], cell);
            else
                fprintf(out, "%s\n", cell);
        }
    }
}

static int print_json(json_t *arr)
{
    char *text = json_dumps(arr, JSON_INDENT(2));
    json_decref(arr);
    if (!text)
        abort();
    puts(text);
    free(text);
    return 0;
}

static json_t *ts_json(int64_t ms)
{
    char buf[32];
    if (ms <= 0)
        return json_null();
    sp_format_ts(ms, buf, sizeof(buf));
    return json_string(buf);
}

/* ---- users ----------------------------------------------------------------------------- */

static int read_password(char *buf, size_t len)
{
    if (!fgets(buf, (int)len, stdin))
        return -1;
    size_t n = strlen(buf);
    while (n && ('\n' == buf[n - 1] || '\r' == buf[n - 1]))
        buf[--n] = '\0';
    return n >= 8 ? 0 : -1;
}

static bool name_ok(const char *name)
{
    return name && strlen(name) <= 128 && sp_event_id_valid(name);
}

/* user add / user passwd: CREATE tells them apart. */
static int set_password(const sp_config_t *cfg, const char *name, bool create)
{
    char err[512], password[1024], hash[256];
    if (0 != read_password(password, sizeof(password))) {
        sodium_memzero(password, sizeof(password));
        fprintf(stderr, "spypixel: give a password of at least 8 characters on standard input\n");
        return 2;
    }
    int rc = sp_auth_password_hash(password, hash, sizeof(hash));
    sodium_memzero(password, sizeof(password));
    if (0 != rc) {
        fprintf(stderr, "spypixel: out of memory while hashing the password\n");
        return 1;
    }
    sp_store_t *store = sp_store_open(cfg, err, sizeof(err));
    char old[256];
    int absent = store ? store->ops->user_get(store, name, old, sizeof(old), err, sizeof(err)) : -1;
    rc = absent >= 0 ? store->ops->user_put(store, name, hash, create, err, sizeof(err)) : -1;
    sp_store_close(store);
    if (rc < 0) {
        fprintf(stderr, "spypixel: %s\n", err);
        return 1;
    }
    if (rc > 0) {
        fprintf(stderr, "spypixel: no user %s (user add creates one)\n", name);
        return 1;
    }
    if (absent)
        fprintf(stderr, "user %s created\n", name);
    else
        fprintf(stderr, "password of user %s changed; its sessions and API tokens have ended\n",
                name);
    return 0;
}

static int delete_user(const sp_config_t *cfg, const char *name)
{
    char err[512];
    sp_store_t *store = sp_store_open(cfg, err, sizeof(err));
    int rc = store ? store->ops->user_delete(store, name, err, sizeof(err)) : -1;
    sp_store_close(store);
    if (rc < 0) {
        fprintf(stderr, "spypixel: %s\n", err);
        return 1;
    }
    if (rc > 0) {
        fprintf(stderr, "spypixel: no user %s\n", name);
        return 1;
    }
    fprintf(stderr, "user %s deleted with its sessions and API tokens\n", name);
    return 0;
}

typedef struct listing {
    bool json;
    json_t *arr;
    table_t table;
} listing_t;

/* Prints L as asked once RC (the store's listing) is 0; frees it either way. */
static int listing_end(listing_t *l, int rc, const char *err)
{
    if (0 == rc && l->json) {
        print_json(l->arr);
        l->arr = NULL;
    } else if (0 == rc) {
        table_print(&l->table, stdout);
    } else {
        fprintf(stderr, "spypixel: %s\n", err);
    }
    json_decref(l->arr);
    table_free(&l->table);
    return rc ? 1 : 0;
}

static int add_user(void *ctx, const sp_user_row_t *u)
{
    listing_t *l = ctx;
    if (l->json) {
        json_array_append_new(l->arr,
                              json_pack("{s:s, s:o, s:I, s:I}", "name", u->name, "created_at",
                                        ts_json(u->created_at), "sessions", (json_int_t)u->sessions,
                                        "tokens", (json_int_t)u->tokens));
        return 0;
    }
    char created[32], sessions[24], tokens[24];
    sp_format_ts(u->created_at, created, sizeof(created));
    snprintf(sessions, sizeof(sessions), "%lld", (long long)u->sessions);
    snprintf(tokens, sizeof(tokens), "%lld", (long long)u->tokens);
    const char *row[] = {u->name, created, sessions, tokens};
    table_add(&l->table, row);
    return 0;
}

static int list_users(const sp_config_t *cfg, bool json)
{
    char err[512];
    static const char *const header[] = {"NAME", "CREATED", "SESSIONS", "TOKENS"};
    listing_t l = {.json = json, .arr = json_array(), .table = {.cols = 4}};
    table_add(&l.table, header);
    sp_store_t *store = sp_store_open(cfg, err, sizeof(err));
    int rc = store ? store->ops->user_list(store, add_user, &l, err, sizeof(err)) : -1;
    sp_store_close(store);
    return listing_end(&l, rc, err);
}

int sp_admin_user(const sp_config_t *cfg, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "", *name = NULL;
    bool from_stdin = false, json = false, extra = false;
    for (int i = 1; i < argc; i++) {
        if (0 == strcmp(argv[i], "--password-stdin"))
            from_stdin = true;
        else if (0 == strcmp(argv[i], "--json"))
            json = true;
        else if (!name && '-' != argv[i][0])
            name = argv[i];
        else
            extra = true;
    }
    bool add = 0 == strcmp(sub, "add"), passwd = 0 == strcmp(sub, "passwd");
    bool del = 0 == strcmp(sub, "delete"), list = 0 == strcmp(sub, "list");
    bool usage = extra || (!add && !passwd && !del && !list) || (list && name) ||
                 (!list && (!name || json)) || ((add || passwd) != from_stdin);
    if (usage) {
        fputs(SP_ADMIN_USER_HELP, stderr);
        return 2;
    }
    if (!list && !name_ok(name)) {
        fprintf(stderr, "spypixel: a user name is " NAME_RULE "\n");
        return 2;
    }
    if (add || passwd)
        return set_password(cfg, name, add);
    if (del)
        return delete_user(cfg, name);
    return list_users(cfg, json);
}

/* ---- API tokens ------------------------------------------------------------------------ */

static int create_token(const sp_config_t *cfg, const char *name, const char *owner)
{
    char err[512], token[SP_AUTH_SECRET_MAX], hash[SP_AUTH_HASH_MAX], pwhash[256];
    sp_store_t *store = sp_store_open(cfg, err, sizeof(err));
    int rc = -1;
    if (store && owner) {
        rc = store->ops->user_get(store, owner, pwhash, sizeof(pwhash), err, sizeof(err));
        if (rc > 0) {
            sp_store_close(store);
            fprintf(stderr, "spypixel: no user %s\n", owner);
            return 1;
        }
    }
    if (store && (!owner || 0 == rc)) {
        sp_auth_new_secret("spt_", token, sizeof(token));
        sp_auth_secret_hash(token, hash, sizeof(hash));
        rc = store->ops->token_put(store, hash, name, owner, err, sizeof(err));
    }
    sp_store_close(store);
    if (rc) {
        fprintf(stderr, "spypixel: %s\n", err);
        return 1;
    }
    printf("%s\n", token);
    sodium_memzero(token, sizeof(token));
    return 0;
}

static int add_token(void *ctx, const sp_token_row_t *t)
{
    listing_t *l = ctx;
    if (l->json) {
        json_array_append_new(l->arr,
                              json_pack("{s:s, s:s, s:s?, s:o}", "id", t->id, "name", t->name,
                                        "user", t->owner, "created_at", ts_json(t->created_at)));
        return 0;
    }
    char created[32];
    sp_format_ts(t->created_at, created, sizeof(created));
    const char *row[] = {t->id, t->name, t->owner, created};
    table_add(&l->table, row);
    return 0;
}

static int list_tokens(const sp_config_t *cfg, bool json)
{
    char err[512];
    static const char *const header[] = {"ID", "NAME", "USER", "CREATED"};
    listing_t l = {.json = json, .arr = json_array(), .table = {.cols = 4}};
    table_add(&l.table, header);
    sp_store_t *store = sp_store_open(cfg, err, sizeof(err));
    int rc = store ? store->ops->token_list(store, add_token, &l, err, sizeof(err)) : -1;
    sp_store_close(store);
    return listing_end(&l, rc, err);
}

static int revoke_token(const sp_config_t *cfg, const char *id_or_name)
{
    char err[512];
    int64_t revoked = 0;
    sp_store_t *store = sp_store_open(cfg, err, sizeof(err));
    int rc = store ? store->ops->token_revoke(store, id_or_name, &revoked, err, sizeof(err)) : -1;
    sp_store_close(store);
    if (rc) {
        fprintf(stderr, "spypixel: %s\n", err);
        return 1;
    }
    if (!revoked) {
        fprintf(stderr, "spypixel: no token has the ID or the name %s ('token list' shows them)\n",
                id_or_name);
        return 1;
    }
    fprintf(stderr, "%lld token%s revoked\n", (long long)revoked, 1 == revoked ? "" : "s");
    return 0;
}

int sp_admin_token(const sp_config_t *cfg, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "", *name = NULL, *owner = NULL;
    bool json = false, extra = false;
    for (int i = 1; i < argc; i++) {
        if (0 == strcmp(argv[i], "--json"))
            json = true;
        else if (0 == strcmp(argv[i], "--user") && i + 1 < argc && !owner)
            owner = argv[++i];
        else if (!name && '-' != argv[i][0])
            name = argv[i];
        else
            extra = true;
    }
    bool create = 0 == strcmp(sub, "create"), list = 0 == strcmp(sub, "list");
    bool revoke = 0 == strcmp(sub, "revoke");
    bool usage = extra || (!create && !list && !revoke) || (list && name) ||
                 (!list && (!name || json)) || (owner && !create);
    if (usage) {
        fputs(SP_ADMIN_TOKEN_HELP, stderr);
        return 2;
    }
    if ((name && !name_ok(name)) || (owner && !name_ok(owner))) {
        fprintf(stderr, "spypixel: a token or user name is " NAME_RULE "\n");
        return 2;
    }
    if (create)
        return create_token(cfg, name, owner);
    if (revoke)
        return revoke_token(cfg, name);
    return list_tokens(cfg, json);
}

/* scan_css: the scanner's CSS reader: the URLs a style sheet loads, and when, and the sheet without
 * them. */
/* SPDX-License-Identifier: MIT */
#include "scan_css.h"
#include "text.h"

#include <string.h>
#include <strings.h>

#include <glib.h>

/* Blocks nested deeper than this are read as one opaque block: their URLs are still found and
 * replaced, but no rule in them is told apart. A browser keeps no such limit; a stack of frames
 * per block would let a hostile sheet of braces cost memory out of proportion to its size. */
#define DEPTH_MAX 256
/* Selector and media texts shown in findings are cut to about this many bytes. */
#define SHOWN_MAX 120
/* Nesting of functions and brackets tracked inside one selector. */
#define SEL_DEPTH_MAX 32

/* ---- Tokens (CSS Syntax Level 3, section 4) -------------------------------------------------- */

typedef enum tok_type {
    T_EOF,
    T_WS,
    T_IDENT,
    T_FUNCTION,
    T_AT,
    T_HASH,
    T_STRING,
    T_BAD_STRING,
    T_URL,
    T_BAD_URL,
    T_DELIM,
    T_NUMBER, /* numbers, percentages and dimensions */
    T_CDO,
    T_CDC,
    T_COLON,
    T_SEMI,
    T_COMMA,
    T_LBRACK,
    T_RBRACK,
    T_LPAREN,
    T_RPAREN,
    T_LBRACE,
    T_RBRACE,
} tok_type_t;

/* A token: where it is in the source and where its value is (a name, a string's contents, a
 * URL), escapes still in. */
typedef struct tok {
    tok_type_t type;
    size_t start, end;
    size_t vstart, vend;
} tok_t;

typedef struct lexer {
    const char *s;
    size_t n, pos;
    bool has_peek;
    tok_t peek;
} lexer_t;

static int at(const lexer_t *l, size_t i)
{
    return i < l->n ? (unsigned char)l->s[i] : -1;
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_nl(int c)
{
    return '\n' == c || '\r' == c || '\f' == c;
}

static bool is_ws(int c)
{
    return ' ' == c || '\t' == c || is_nl(c);
}

/* Any byte of a UTF-8 sequence is >= 0x80, and every non-ASCII code point starts a name. */
static bool is_name_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || '_' == c || c >= 0x80;
}

static bool is_name_char(int c)
{
    return is_name_start(c) || is_digit(c) || '-' == c;
}

static bool is_nonprintable(int c)
{
    return (c >= 0 && c <= 8) || 0x0b == c || (c >= 0x0e && c <= 0x1f) || 0x7f == c;
}

/* A backslash that escapes: not one before a newline. One at the very end escapes too. */
static bool valid_escape(const lexer_t *l, size_t i)
{
    return '\\' == at(l, i) && !is_nl(at(l, i + 1));
}

static bool starts_name(const lexer_t *l, size_t i)
{
    int c = at(l, i);
    if ('-' == c) {
        int d = at(l, i + 1);
        return is_name_start(d) || '-' == d || valid_escape(l, i + 1);
    }
    return is_name_start(c) || valid_escape(l, i);
}

static bool starts_number(const lexer_t *l, size_t i)
{
    int c = at(l, i);
    if ('+' == c || '-' == c) {
        c = at(l, ++i);
        if (is_digit(c))
            return true;
    }
    return is_digit(c) || ('.' == c && is_digit(at(l, i + 1)));
}

/* Past an escape; I is just after the backslash. */
static size_t skip_escape(const lexer_t *l, size_t i)
{
    if (i >= l->n)
        return i;
    if (!is_hex(at(l, i)))
        return i + 1;
    for (int k = 0; k < 6 && is_hex(at(l, i)); k++)
        i++;
    if ('\r' == at(l, i) && '\n' == at(l, i + 1))
        return i + 2;
    return is_ws(at(l, i)) ? i + 1 : i;
}

static size_t skip_name(const lexer_t *l, size_t i)
{
    for (;;) {
        if (is_name_char(at(l, i)))
            i++;
        else if (valid_escape(l, i))
            i = skip_escape(l, i + 1);
        else
            return i;
    }
}

static size_t skip_number(const lexer_t *l, size_t i)
{
    if ('+' == at(l, i) || '-' == at(l, i))
        i++;
    while (is_digit(at(l, i)))
        i++;
    if ('.' == at(l, i) && is_digit(at(l, i + 1)))
        for (i++; is_digit(at(l, i));)
            i++;
    int e = at(l, i);
    if ('e' == e || 'E' == e) {
        int s = at(l, i + 1);
        if (is_digit(s))
            i += 1;
        else if (('+' == s || '-' == s) && is_digit(at(l, i + 2)))
            i += 2;
        else
            s = -1;
        if (s >= 0)
            while (is_digit(at(l, i)))
                i++;
    }
    if (starts_name(l, i))
        return skip_name(l, i);
    return '%' == at(l, i) ? i + 1 : i;
}

/* Appends S[FROM..TO) to OUT with CSS escapes undone; a backslash before a newline (a string
 * continued on the next line) is dropped with the newline. */
static void unescape(const char *s, size_t from, size_t to, GString *out)
{
    for (size_t i = from; i < to;) {
        if ('\\' != s[i]) {
            size_t run = i;
            while (run < to && '\\' != s[run])
                run++;
            g_string_append_len(out, s + i, (gssize)(run - i));
            i = run;
            continue;
        }
        if (++i >= to) {
            g_string_append_unichar(out, 0xfffd);
            break;
        }
        char c = s[i];
        if ('\n' == c || '\f' == c) {
            i++;
        } else if ('\r' == c) {
            i += (i + 1 < to && '\n' == s[i + 1]) ? 2 : 1;
        } else if (is_hex((unsigned char)c)) {
            guint32 cp = 0;
            for (int k = 0; k < 6 && i < to && is_hex((unsigned char)s[i]); k++, i++)
                cp = cp * 16 + (guint32)g_ascii_xdigit_value(s[i]);
            if (i + 1 < to && '\r' == s[i] && '\n' == s[i + 1])
                i += 2;
            else if (i < to && is_ws((unsigned char)s[i]))
                i++;
            if (0 == cp || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                cp = 0xfffd;
            g_string_append_unichar(out, cp);
        } else {
            /* The escaped character itself, all of its UTF-8 bytes. */
            size_t n = 1;
            while (i + n < to && 0x80 == ((unsigned char)s[i + n] & 0xc0))
                n++;
            g_string_append_len(out, s + i, (gssize)n);
            i += n;
        }
    }
}

/* Whether the name S[FROM..TO) is WORD, escapes undone, ASCII case ignored. */
static bool name_is(const char *s, size_t from, size_t to, const char *word)
{
    if (!memchr(s + from, '\\', to - from))
        return strlen(word) == to - from && 0 == g_ascii_strncasecmp(s + from, word, to - from);
    GString *buf = g_string_new(NULL);
    unescape(s, from, to, buf);
    bool same = 0 == g_ascii_strcasecmp(buf->str, word);
    g_string_free(buf, TRUE);
    return same;
}

static void lex_string(const lexer_t *l, size_t i, tok_t *t)
{
    int quote = at(l, i++);
    t->vstart = i;
    for (;;) {
        int c = at(l, i);
        if (c < 0 || c == quote) {
            t->type = T_STRING;
            t->vend = i;
            t->end = c < 0 ? i : i + 1;
            return;
        }
        if (is_nl(c)) { /* the newline is left for the next token */
            t->type = T_BAD_STRING;
            t->vend = t->end = i;
            return;
        }
        if ('\\' == c) {
            int d = at(l, i + 1);
            if (d < 0)
                i++;
            else if (is_nl(d))
                i += ('\r' == d && '\n' == at(l, i + 2)) ? 3 : 2;
            else
                i = skip_escape(l, i + 1);
            continue;
        }
        i++;
    }
}

/* An unquoted url( ... ); I is just after the parenthesis. */
static void lex_url(const lexer_t *l, size_t i, tok_t *t)
{
    while (is_ws(at(l, i)))
        i++;
    t->vstart = i;
    for (;;) {
        int c = at(l, i);
        if (')' == c || c < 0) {
            t->type = T_URL;
            t->vend = i;
            t->end = c < 0 ? i : i + 1;
            return;
        }
        if (is_ws(c)) {
            t->vend = i;
            while (is_ws(at(l, i)))
                i++;
            if (')' == at(l, i) || at(l, i) < 0) {
                t->type = T_URL;
                t->end = at(l, i) < 0 ? i : i + 1;
                return;
            }
            break;
        }
        if ('"' == c || '\'' == c || '(' == c || is_nonprintable(c))
            break;
        if ('\\' == c) {
            if (!valid_escape(l, i))
                break;
            i = skip_escape(l, i + 1);
            continue;
        }
        i++;
    }
    /* A bad URL: its remnants up to the closing parenthesis; nothing is fetched. */
    for (;;) {
        int c = at(l, i);
        if (c < 0)
            break;
        if (')' == c) {
            i++;
            break;
        }
        if (valid_escape(l, i))
            i = skip_escape(l, i + 1);
        else
            i++;
    }
    t->type = T_BAD_URL;
    t->vend = t->vstart;
    t->end = i;
}

static void lex_name_like(const lexer_t *l, size_t i, tok_t *t)
{
    size_t name_end = skip_name(l, i);
    t->vstart = i;
    t->vend = name_end;
    if ('(' != at(l, name_end)) {
        t->type = T_IDENT;
        t->end = name_end;
        return;
    }
    if (name_is(l->s, i, name_end, "url")) {
        size_t j = name_end + 1;
        while (is_ws(at(l, j)) && is_ws(at(l, j + 1)))
            j++;
        int q = at(l, j), q2 = at(l, j + 1);
        if ('"' == q || '\'' == q || (is_ws(q) && ('"' == q2 || '\'' == q2))) {
            t->type = T_FUNCTION; /* url("...") is a function holding a string */
            t->end = j;
            return;
        }
        lex_url(l, name_end + 1, t);
        return;
    }
    t->type = T_FUNCTION;
    t->end = name_end + 1;
}

static tok_t lex(lexer_t *l)
{
    if (l->has_peek) {
        l->has_peek = false;
        return l->peek;
    }
    tok_t t = {0};
    size_t i = l->pos;
    while ('/' == at(l, i) && '*' == at(l, i + 1)) {
        const char *close = i + 2 < l->n ? memmem(l->s + i + 2, l->n - i - 2, "*/", 2) : NULL;
        i = close ? (size_t)(close - l->s) + 2 : l->n; /* unterminated: to the end */
    }
    t.start = t.vstart = t.vend = i;
    t.end = i + 1;
    int c = at(l, i);
    if (c < 0) {
        t.type = T_EOF;
        t.end = i;
    } else if (is_ws(c)) {
        while (is_ws(at(l, i)))
            i++;
        t.type = T_WS;
        t.end = i;
    } else if ('"' == c || '\'' == c) {
        lex_string(l, i, &t);
    } else if ('#' == c) {
        if (is_name_char(at(l, i + 1)) || valid_escape(l, i + 1)) {
            t.type = T_HASH;
            t.vstart = i + 1;
            t.vend = t.end = skip_name(l, i + 1);
        } else {
            t.type = T_DELIM;
        }
    } else if ('+' == c || '.' == c || ('-' == c && starts_number(l, i)) || is_digit(c)) {
        if (starts_number(l, i)) {
            t.type = T_NUMBER;
            t.end = skip_number(l, i);
        } else {
            t.type = T_DELIM;
        }
    } else if ('-' == c && '-' == at(l, i + 1) && '>' == at(l, i + 2)) {
        t.type = T_CDC;
        t.end = i + 3;
    } else if ('<' == c && '!' == at(l, i + 1) && '-' == at(l, i + 2) && '-' == at(l, i + 3)) {
        t.type = T_CDO;
        t.end = i + 4;
    } else if ('@' == c) {
        if (starts_name(l, i + 1)) {
            t.type = T_AT;
            t.vstart = i + 1;
            t.vend = t.end = skip_name(l, i + 1);
        } else {
            t.type = T_DELIM;
        }
    } else if (starts_name(l, i)) {
        lex_name_like(l, i, &t);
    } else {
        static const struct {
            char c;
            tok_type_t type;
        } single[] = {{'(', T_LPAREN}, {')', T_RPAREN}, {'[', T_LBRACK},
                      {']', T_RBRACK}, {'{', T_LBRACE}, {'}', T_RBRACE},
                      {',', T_COMMA},  {':', T_COLON},  {';', T_SEMI}};
        t.type = T_DELIM;
        for (size_t k = 0; k < sizeof(single) / sizeof(single[0]); k++)
            if (single[k].c == c)
                t.type = single[k].type;
    }
    l->pos = t.end;
    return t;
}

static void unlex(lexer_t *l, tok_t t)
{
    l->peek = t;
    l->has_peek = true;
}

static bool is_delim(const char *s, const tok_t *t, char c)
{
    return T_DELIM == t->type && s[t->start] == c;
}

/* ---- Reading component values ---------------------------------------------------------------- */

/* What an open parenthesis, bracket or brace belongs to. */
typedef enum open_kind {
    OPEN_BLOCK,     /* ( [ { */
    OPEN_URL,       /* url("...") or src("..."): its string is a URL */
    OPEN_IMAGE_SET, /* image-set("a.png" 1x): its strings are URLs */
    OPEN_FUNCTION,  /* any other function */
} open_kind_t;

typedef struct open {
    open_kind_t kind;
    tok_type_t closer;
    size_t start;          /* where the function or block starts */
    size_t svstart, svend; /* OPEN_URL: its string's value */
    bool has_string;
    bool junk; /* OPEN_URL: holds more than its string, so it is invalid and loads nothing */
} open_t;

/* A URL in what was read: its value (escapes in) and what `none` replaces. */
typedef struct occ {
    size_t vstart, vend;
    size_t rstart, rend;
} occ_t;

typedef struct edit {
    size_t start, end;
    const char *with;
} edit_t;

/* A block being read: the style sheet itself, a style rule's declarations, an @media's rules. */
typedef struct frame {
    bool decls;     /* holds declarations (and nested rules), else rules */
    bool droppable; /* goes whole when the strip leaves it empty (not the sheet itself) */
    const char *print;
    const sp_scan_forward_rule_t *forward;
    bool forward_only; /* every selector of the rule detects forwards */
    const char *selector;
    size_t rule_start;                     /* where the rule that opened the block starts */
    guint edits_mark;                      /* edits made before the block */
    size_t items;                          /* declarations, nested rules and imports in it */
    size_t emptied;                        /* how many of them the strip removed */
    bool any_dropped;                      /* a URL in it, at any depth, was dropped */
    const sp_scan_forward_rule_t *subject; /* sel_info_t.subject of its rule */
    char *owned[2]; /* the texts above that this frame made (inner frames borrow them) */
} frame_t;

typedef struct walk {
    lexer_t lx;
    const char *css;
    size_t len;
    bool strip, inline_style;
    sp_scan_css_fn fn;
    void *ctx;
    GArray *frames;  /* frame_t */
    GArray *edits;   /* edit_t, in document order, never overlapping */
    GArray *toks;    /* what read_values read */
    GArray *occs;    /* occ_t: the URLs in it */
    GArray *opens;   /* open_t: the blocks open in it */
    size_t last_end; /* end of the last token read that was not whitespace */
    size_t dropped;
} walk_t;

/* What ends read_values. */
#define STOP_SEMI   0x1u /* ';' */
#define STOP_LBRACE 0x2u /* '{' opens the rule's block */
#define STOP_RBRACE 0x4u /* '}' closes the enclosing block (left unread) */
#define STOP_EMPTY  0x8u /* the block already open when reading started is closed */

static open_kind_t function_kind(const char *s, const tok_t *t)
{
    if (name_is(s, t->vstart, t->vend, "url") || name_is(s, t->vstart, t->vend, "src"))
        return OPEN_URL;
    if (name_is(s, t->vstart, t->vend, "image-set") ||
        name_is(s, t->vstart, t->vend, "-webkit-image-set"))
        return OPEN_IMAGE_SET;
    return OPEN_FUNCTION;
}

/* Whether the values read so far begin a custom property ("--name:"), whose value may hold a
 * {} block that is not a nested rule. */
static bool is_custom_property(const walk_t *w)
{
    const tok_t *t = (const tok_t *)w->toks->data;
    size_t n = w->toks->len, i = 0;
    if (!n || T_IDENT != t[0].type || t[0].vend - t[0].vstart < 2 ||
        !sp_has_prefix(w->css + t[0].vstart, "--"))
        return false;
    for (i = 1; i < n && T_WS == t[i].type; i++)
        ;
    return i < n && T_COLON == t[i].type;
}

/* Reads component values into w->toks, and the URLs among them into w->occs, until one of STOPS
 * at the top level or the end. FIRST, when not NULL, was read already. Returns the token that
 * stopped it in *TERM (T_EOF at the end). */
static void read_values(walk_t *w, const tok_t *first, unsigned stops, tok_t *term)
{
    g_array_set_size(w->toks, 0);
    g_array_set_size(w->occs, 0);
    g_array_set_size(w->opens, 0);
    if (stops & STOP_EMPTY) {
        open_t o = {.kind = OPEN_BLOCK, .closer = T_RBRACE};
        g_array_append_val(w->opens, o);
    }
    bool use_first = NULL != first;
    for (;;) {
        tok_t t = use_first ? *first : lex(&w->lx);
        use_first = false;
        guint depth = w->opens->len;
        open_t *top = depth ? &g_array_index(w->opens, open_t, depth - 1) : NULL;
        if (T_EOF == t.type) {
            *term = t;
            break;
        }
        if (!depth) {
            if ((T_SEMI == t.type && (stops & STOP_SEMI)) ||
                (T_LBRACE == t.type && (stops & STOP_LBRACE) && !is_custom_property(w))) {
                *term = t;
                return;
            }
            if (T_RBRACE == t.type && (stops & STOP_RBRACE)) {
                unlex(&w->lx, t);
                *term = t;
                return;
            }
        }
        g_array_append_val(w->toks, t);
        if (T_WS != t.type)
            w->last_end = t.end;
        if (top && t.type == top->closer) {
            if (OPEN_URL == top->kind && top->has_string && !top->junk) {
                occ_t o = {top->svstart, top->svend, top->start, t.end};
                g_array_append_val(w->occs, o);
            }
            g_array_set_size(w->opens, depth - 1);
            if ((stops & STOP_EMPTY) && 1 == depth) {
                *term = t;
                return;
            }
            continue;
        }
        if (top && OPEN_URL == top->kind && T_WS != t.type &&
            !(T_STRING == t.type && !top->has_string))
            top->junk = true;
        open_t o = {.kind = OPEN_BLOCK, .start = t.start};
        switch (t.type) {
        case T_FUNCTION:
            o.kind = function_kind(w->css, &t);
            o.closer = T_RPAREN;
            g_array_append_val(w->opens, o);
            break;
        case T_LPAREN:
            o.closer = T_RPAREN;
            g_array_append_val(w->opens, o);
            break;
        case T_LBRACK:
            o.closer = T_RBRACK;
            g_array_append_val(w->opens, o);
            break;
        case T_LBRACE:
            o.closer = T_RBRACE;
            g_array_append_val(w->opens, o);
            break;
        case T_URL: {
            occ_t u = {t.vstart, t.vend, t.start, t.end};
            g_array_append_val(w->occs, u);
            break;
        }
        case T_STRING:
            if (top && OPEN_URL == top->kind && !top->has_string) {
                top->has_string = true;
                top->svstart = t.vstart;
                top->svend = t.vend;
            } else if (top && OPEN_IMAGE_SET == top->kind) {
                occ_t u = {t.vstart, t.vend, t.start, t.end};
                g_array_append_val(w->occs, u);
            }
            break;
        default:
            break;
        }
    }
    /* Unclosed at the end: a url("...") still counts, to the end of the sheet. */
    for (guint i = w->opens->len; i-- > 0;) {
        open_t *o = &g_array_index(w->opens, open_t, i);
        if (OPEN_URL == o->kind && o->has_string && !o->junk) {
            occ_t u = {o->svstart, o->svend, o->start, w->len};
            g_array_append_val(w->occs, u);
        }
    }
}

static int occ_cmp(gconstpointer a, gconstpointer b)
{
    const occ_t *x = a, *y = b;
    return x->rstart < y->rstart ? -1 : x->rstart > y->rstart;
}

/* ---- Texts shown in findings ----------------------------------------------------------------- */

/* S cut to SHOWN_MAX bytes, on a character boundary, with "..." for what was cut. */
static char *cut_shown(GString *s)
{
    if (s->len > SHOWN_MAX) {
        size_t cut = SHOWN_MAX;
        while (cut && 0x80 == ((unsigned char)s->str[cut] & 0xc0))
            cut--;
        g_string_truncate(s, cut);
        g_string_append(s, "...");
    }
    return g_string_free(s, FALSE);
}

/* PREFIX (may be NULL), then TOKS[0..N) as written, whitespace collapsed to one space, cut to
 * SHOWN_MAX bytes. g_free the result. */
static char *shown_text(const char *prefix, const char *css, const tok_t *toks, size_t n)
{
    GString *s = g_string_new(prefix);
    size_t from = s->len;
    for (size_t i = 0; i < n && s->len <= SHOWN_MAX; i++) {
        if (T_WS == toks[i].type) {
            if (s->len > from)
                g_string_append_c(s, ' ');
        } else {
            g_string_append_len(s, css + toks[i].start, (gssize)(toks[i].end - toks[i].start));
        }
    }
    while (s->len > from && ' ' == s->str[s->len - 1])
        g_string_truncate(s, s->len - 1);
    return cut_shown(s);
}

/* ---- Media queries and selectors ------------------------------------------------------------- */

static bool opens_block(tok_type_t t)
{
    return T_FUNCTION == t || T_LPAREN == t || T_LBRACK == t || T_LBRACE == t;
}

static bool closes_block(tok_type_t t)
{
    return T_RPAREN == t || T_RBRACK == t || T_RBRACE == t;
}

/* Whether the media query list TOKS[0..N) selects print only: each query's media type is print
 * ("only print", "print and (...)") or it is "not screen". A query that starts with a feature
 * applies to every medium. */
static bool media_print(const char *css, const tok_t *toks, size_t n)
{
    bool all = true;
    size_t queries = 0;
    for (size_t i = 0; i <= n; i++) {
        bool neg = false, decided = false, print = false, seen_word = false;
        size_t depth = 0;
        for (; i < n; i++) {
            const tok_t *t = &toks[i];
            if (!depth && T_COMMA == t->type)
                break;
            if (T_WS == t->type)
                continue;
            bool word = T_IDENT == t->type && !depth;
            if (opens_block(t->type))
                depth++;
            else if (closes_block(t->type) && depth)
                depth--;
            if (decided)
                continue;
            if (word && !seen_word && name_is(css, t->vstart, t->vend, "only")) {
                seen_word = true;
                continue;
            }
            if (word && !seen_word && name_is(css, t->vstart, t->vend, "not")) {
                seen_word = neg = true;
                continue;
            }
            if (word)
                print = neg ? name_is(css, t->vstart, t->vend, "screen")
                            : name_is(css, t->vstart, t->vend, "print");
            decided = true;
        }
        queries++;
        all = all && decided && print;
    }
    return queries && all;
}

bool sp_scan_css_media_is_print(const char *media)
{
    if (!media)
        return false;
    lexer_t l = {.s = media, .n = strlen(media)};
    GArray *toks = g_array_new(FALSE, FALSE, sizeof(tok_t));
    for (tok_t t; T_EOF != (t = lex(&l)).type;)
        g_array_append_val(toks, t);
    bool print = media_print(media, (const tok_t *)toks->data, toks->len);
    g_array_free(toks, TRUE);
    return print;
}

/* What a selector says about forwards. */
typedef struct sel_info {
    const sp_scan_forward_rule_t *forward; /* the first forward-detection selector found */
    bool all_forward;                      /* every complex selector of the list has one */
    /* An ancestor-only rule (blockquote) on the styled element itself: a rule nested in this
     * one styles its descendants, for which it is an ancestor. */
    const sp_scan_forward_rule_t *subject;
    /* Nested, this selector styles a descendant of its parent rule's element: it has no '&', or
     * one before a combinator. */
    bool below_parent;
} sel_info_t;

/* How the inside of a function or bracket in a selector is read. */
typedef enum sel_open {
    SEL_MATCH,  /* :is() :where() :matches() :has() -webkit-any(): its selectors count */
    SEL_IGNORE, /* :not() and functions that hold no selector */
    SEL_ATTR,   /* [name=value] */
} sel_open_t;

static const sp_scan_forward_rule_t *match_simple(const char *css, const tok_t *t,
                                                  sp_scan_sel_kind_t kind, GString *buf)
{
    g_string_truncate(buf, 0);
    unescape(css, t->vstart, t->vend, buf);
    return sp_scan_rules_match_forward(kind, buf->str, NULL);
}

/* The forward-detection selectors in the selector list TOKS[0..N): a type, class, id or
 * attribute of sp_scan_rules_forward anywhere in a complex selector, but a rule that the
 * message's own HTML may use (blockquote) only in a compound before the last, where it is an
 * ancestor of the styled element. */
static sel_info_t analyze_selector(const char *css, const tok_t *toks, size_t n)
{
    sel_info_t info = {.forward = NULL, .all_forward = true};
    bool amp = false, amp_in_compound = false;
    sel_open_t opens[SEL_DEPTH_MAX];
    size_t depth = 0;
    const sp_scan_forward_rule_t *found = NULL, *pending = NULL;
    bool in_compound = false, space = false, complexes = false;
    char prev = 0; /* '.', ':' or 0: what came before a name */
    const tok_t *attr_name = NULL, *attr_value = NULL;
    GString *buf = g_string_new(NULL);
    for (size_t i = 0; i <= n; i++) {
        const tok_t *t = i < n ? &toks[i] : NULL;
        sel_open_t cur =
            depth ? opens[depth > SEL_DEPTH_MAX ? SEL_DEPTH_MAX - 1 : depth - 1] : SEL_MATCH;
        bool ignored = false;
        for (size_t k = 0; k < depth && k < SEL_DEPTH_MAX; k++)
            ignored = ignored || SEL_IGNORE == opens[k];
        if (depth > SEL_DEPTH_MAX)
            ignored = true;
        if (!t || (!depth && T_COMMA == t->type)) {
            /* The end of a complex selector: its last compound is the styled element. */
            if (in_compound || found)
                complexes = true;
            if (found && !info.forward)
                info.forward = found;
            if (!found)
                info.all_forward = false;
            if (pending && !info.subject)
                info.subject = pending;
            found = pending = NULL;
            amp_in_compound = false;
            in_compound = space = false;
            prev = 0;
            continue;
        }
        if (!depth) {
            bool combinator =
                is_delim(css, t, '>') || is_delim(css, t, '+') || is_delim(css, t, '~');
            if (T_WS == t->type) {
                space = in_compound;
                continue;
            }
            if (combinator || space) {
                if (pending && !found)
                    found = pending;
                if (amp_in_compound)
                    info.below_parent = true;
                amp_in_compound = false;
                pending = NULL;
                in_compound = space = false;
                prev = 0;
                if (combinator)
                    continue;
            }
            in_compound = true;
        }
        if (opens_block(t->type)) {
            sel_open_t kind = SEL_IGNORE;
            if (T_LBRACK == t->type) {
                kind = SEL_ATTR;
                attr_name = attr_value = NULL;
            } else if (T_FUNCTION == t->type && ':' == prev &&
                       (name_is(css, t->vstart, t->vend, "is") ||
                        name_is(css, t->vstart, t->vend, "where") ||
                        name_is(css, t->vstart, t->vend, "matches") ||
                        name_is(css, t->vstart, t->vend, "has") ||
                        name_is(css, t->vstart, t->vend, "-webkit-any") ||
                        name_is(css, t->vstart, t->vend, "-moz-any"))) {
                kind = SEL_MATCH;
            }
            if (depth < SEL_DEPTH_MAX)
                opens[depth] = kind;
            depth++;
            prev = 0;
            continue;
        }
        if (closes_block(t->type)) {
            if (depth && SEL_ATTR == cur && !ignored && attr_name) {
                g_string_truncate(buf, 0);
                unescape(css, attr_name->vstart, attr_name->vend, buf);
                char *name = g_strdup(buf->str);
                g_string_truncate(buf, 0);
                if (attr_value)
                    unescape(css, attr_value->vstart, attr_value->vend, buf);
                const sp_scan_forward_rule_t *r = sp_scan_rules_match_forward(
                    SP_SCAN_SEL_ATTR, name, attr_value ? buf->str : NULL);
                g_free(name);
                if (r && !found)
                    found = r;
            }
            if (depth)
                depth--;
            prev = 0;
            continue;
        }
        if (ignored)
            continue;
        if (SEL_ATTR == cur) {
            if (T_IDENT == t->type && !attr_name)
                attr_name = t;
            else if ((T_IDENT == t->type || T_STRING == t->type) && attr_name && !attr_value && i &&
                     is_delim(css, &toks[i - 1], '='))
                attr_value = t;
            continue;
        }
        if (is_delim(css, t, '&'))
            amp = amp_in_compound = true;
        const sp_scan_forward_rule_t *r = NULL;
        if (T_HASH == t->type)
            r = match_simple(css, t, SP_SCAN_SEL_ID, buf);
        else if (T_IDENT == t->type && '.' == prev)
            r = match_simple(css, t, SP_SCAN_SEL_CLASS, buf);
        else if (T_IDENT == t->type && ':' != prev)
            r = match_simple(css, t, SP_SCAN_SEL_TYPE, buf);
        if (r && r->ancestor_only && !pending)
            pending = r;
        else if (r && !r->ancestor_only && !found)
            found = r;
        prev = is_delim(css, t, '.') ? '.' : T_COLON == t->type ? ':' : 0;
    }
    g_string_free(buf, TRUE);
    if (!complexes)
        info.all_forward = false;
    if (!amp)
        info.below_parent = true;
    return info;
}

/* ---- The walk -------------------------------------------------------------------------------- */

static frame_t *top_frame(walk_t *w)
{
    return &g_array_index(w->frames, frame_t, w->frames->len - 1);
}

static void add_edit(walk_t *w, size_t start, size_t end, const char *with)
{
    edit_t e = {start, end, with};
    if (w->strip)
        g_array_append_val(w->edits, e);
}

/* Tells FN the URLs read (w->occs) as used by PROPERTY in frame F; the dropped ones are replaced
 * by `none`, or, under print and forward conditions, the whole item [START, END) goes. Returns
 * how many were dropped. */
static size_t tell_urls(walk_t *w, frame_t *f, const char *property, const char *print,
                        size_t start, size_t end, bool whole_item)
{
    size_t dropped = 0;
    GString *url = g_string_new(NULL);
    g_array_sort(w->occs, occ_cmp);
    guint mark = w->edits->len;
    size_t done = 0; /* where the last URL told ends: edits must not overlap */
    for (guint i = 0; i < w->occs->len; i++) {
        const occ_t *o = &g_array_index(w->occs, occ_t, i);
        if (i && o->rstart < done)
            continue;
        done = o->rend;
        g_string_truncate(url, 0);
        unescape(w->css, o->vstart, o->vend, url);
        sp_scan_css_url_t u = {
            .url = url->str,
            .property = property,
            .selector = f->selector,
            .print = print,
            .forward = f->forward,
        };
        if (!w->fn(&u, w->ctx))
            continue;
        dropped++;
        if (!whole_item)
            add_edit(w, o->rstart, o->rend, "none");
    }
    g_string_free(url, TRUE);
    if (dropped && whole_item && w->strip) {
        g_array_set_size(w->edits, mark);
        add_edit(w, start, end, "");
    }
    if (dropped) {
        f->any_dropped = true;
        if (whole_item)
            f->emptied++;
    }
    w->dropped += dropped;
    return dropped;
}

static void push_frame(walk_t *w, frame_t f)
{
    f.edits_mark = w->edits->len;
    g_array_append_val(w->frames, f);
}

static void free_frame(frame_t *f)
{
    g_free(f->owned[0]);
    g_free(f->owned[1]);
}

/* The selector of a rule read from TOKS[0..N) in frame F: a rule nested in a style rule is
 * written relative to it, so both are shown. Stored in CHILD, which owns it. */
static void set_selector(const walk_t *w, const frame_t *f, frame_t *child, const tok_t *toks,
                         size_t n)
{
    char *prefix = NULL;
    if (f->decls && f->selector && *f->selector && '@' != *f->selector)
        prefix = g_strdup_printf("%s { ", f->selector);
    child->selector = child->owned[0] = shown_text(prefix, w->css, toks, n);
    g_free(prefix);
}

/* Ends the innermost block at END: a rule the strip emptied goes whole, and so does a rule whose
 * selectors all detect forwards once a URL in it was dropped. */
static void close_frame(walk_t *w, size_t end)
{
    frame_t f = *top_frame(w);
    g_array_set_size(w->frames, w->frames->len - 1);
    frame_t *parent = top_frame(w);
    bool whole =
        f.droppable && f.any_dropped && (f.forward_only || (f.items && f.emptied == f.items));
    if (whole && w->strip) {
        g_array_set_size(w->edits, f.edits_mark);
        add_edit(w, f.rule_start, end, "");
    }
    if (whole)
        parent->emptied++;
    if (f.any_dropped)
        parent->any_dropped = true;
    free_frame(&f);
}

/* Opens the block of a style rule whose selector is TOKS[0..N), in frame F (a rule nested in a
 * style rule when F holds declarations). */
static void push_rule(walk_t *w, const frame_t *f, const tok_t *toks, size_t n, size_t start)
{
    sel_info_t sel = analyze_selector(w->css, toks, n);
    const sp_scan_forward_rule_t *forward = f->forward ? f->forward : sel.forward;
    bool forward_only = f->forward_only || (sel.forward && sel.all_forward);
    /* "blockquote { & #_t {...} }": the parent's blockquote is an ancestor here. */
    if (!forward && f->decls && f->subject && sel.below_parent)
        forward = f->subject, forward_only = true;
    frame_t child = {
        .decls = true,
        .droppable = true,
        .print = f->print,
        .forward = forward,
        .forward_only = forward_only,
        .subject = sel.subject,
        .rule_start = start,
    };
    set_selector(w, f, &child, toks, n);
    push_frame(w, child);
}

/* A block nested past DEPTH_MAX: read to its end as values, its URLs replaced by `none`. */
static void opaque_block(walk_t *w, frame_t *f)
{
    tok_t term;
    read_values(w, NULL, STOP_EMPTY, &term);
    tell_urls(w, f, "", f->print, 0, 0, false);
}

/* A style rule, or a rule nested in one; FIRST starts its selector. */
static void style_rule(walk_t *w, const tok_t *first, unsigned stops)
{
    tok_t term;
    read_values(w, first, stops | STOP_LBRACE, &term);
    frame_t *f = top_frame(w);
    if (T_LBRACE != term.type)
        return; /* a selector without a block is no rule */
    f->items++;
    if (w->frames->len >= DEPTH_MAX) {
        opaque_block(w, f);
        return;
    }
    const tok_t *toks = (const tok_t *)w->toks->data;
    size_t n = w->toks->len;
    push_rule(w, f, toks, n, first->start);
}

/* A declaration or a nested rule in a block of declarations; FIRST starts it. */
static void declaration(walk_t *w, const tok_t *first)
{
    frame_t *f = top_frame(w);
    unsigned stops = STOP_SEMI | (w->frames->len > 1 ? STOP_RBRACE : 0);
    if (!(w->inline_style && 1 == w->frames->len))
        stops |= STOP_LBRACE;
    tok_t term;
    size_t start = first->start;
    read_values(w, first, stops, &term);
    if (T_LBRACE == term.type) {
        /* A nested rule (CSS nesting): read again as a rule from its prelude. */
        tok_t *toks = (tok_t *)w->toks->data;
        size_t n = w->toks->len;
        f->items++;
        if (w->frames->len >= DEPTH_MAX) {
            opaque_block(w, f);
            return;
        }
        push_rule(w, f, toks, n, start);
        return;
    }
    size_t end = T_SEMI == term.type ? term.end : w->last_end;
    if (!w->occs->len) {
        f->items++;
        return;
    }
    /* The property, for the finding: the name before the colon. */
    const tok_t *t = (const tok_t *)w->toks->data;
    GString *prop = g_string_new(NULL);
    if (w->toks->len && T_IDENT == t[0].type)
        unescape(w->css, t[0].vstart, t[0].vend, prop);
    char *lower = g_ascii_strdown(prop->str, -1);
    g_string_free(prop, TRUE);
    f->items++;
    tell_urls(w, f, lower, f->print, start, end, NULL != f->print || NULL != f->forward);
    g_free(lower);
}

static bool at_name_in(const char *css, const tok_t *t, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (name_is(css, t->vstart, t->vend, names[i]))
            return true;
    return false;
}

/* Conditional group rules: their block holds rules (or, nested in a style rule, declarations)
 * under the same conditions as the rest. */
static const char *const group_rules[] = {
    "media", "supports",       "document",  "-moz-document",     "layer",          "container",
    "scope", "starting-style", "keyframes", "-webkit-keyframes", "-moz-keyframes", "-o-keyframes",
};

/* The index after the block that TOKS[AT] opens. */
static size_t skip_block(const tok_t *toks, size_t n, size_t from)
{
    size_t depth = 0, i = from;
    do {
        if (opens_block(toks[i].type))
            depth++;
        else if (closes_block(toks[i].type))
            depth--;
        i++;
    } while (i < n && depth);
    return i;
}

static void import_rule(walk_t *w, frame_t *f, size_t start, size_t end)
{
    const tok_t *toks = (const tok_t *)w->toks->data;
    size_t n = w->toks->len, i = 0, url_tok = n;
    while (i < n && T_WS == toks[i].type)
        i++;
    /* @import "sheet.css" is a string; url(...) was found by read_values. */
    if (i < n && T_STRING == toks[i].type && !w->occs->len) {
        occ_t o = {toks[i].vstart, toks[i].vend, toks[i].start, toks[i].end};
        g_array_append_val(w->occs, o);
        url_tok = i;
    } else if (i < n && (T_URL == toks[i].type || T_FUNCTION == toks[i].type)) {
        url_tok = i;
    }
    if (!w->occs->len)
        return;
    /* The media list after the URL, past layer(...) and supports(...). */
    size_t from = url_tok < n && T_FUNCTION == toks[url_tok].type ? skip_block(toks, n, url_tok)
                                                                  : url_tok + 1;
    for (;;) {
        while (from < n && T_WS == toks[from].type)
            from++;
        if (from >= n || T_FUNCTION != toks[from].type)
            break;
        from = skip_block(toks, n, from);
    }
    char *own = NULL;
    if (from < n && media_print(w->css, toks + from, n - from))
        own = shown_text("@import ... ", w->css, toks + from, n - from);
    f->items++;
    tell_urls(w, f, "@import", own ? own : f->print, start, end, true);
    g_free(own);
}

/* An at-rule; FIRST is its at-keyword. */
static void at_rule(walk_t *w, const tok_t *first)
{
    frame_t *f = top_frame(w);
    unsigned stops = STOP_SEMI | STOP_LBRACE | (w->frames->len > 1 ? STOP_RBRACE : 0);
    tok_t term;
    w->last_end = first->end;
    read_values(w, NULL, stops, &term);
    size_t end = T_SEMI == term.type ? term.end : w->last_end;
    if (name_is(w->css, first->vstart, first->vend, "import") && T_LBRACE != term.type) {
        import_rule(w, f, first->start, end);
        return;
    }
    if (T_LBRACE != term.type)
        return; /* @charset, @namespace...: nothing fetched */
    f->items++;
    if (w->frames->len >= DEPTH_MAX) {
        opaque_block(w, f);
        return;
    }
    const tok_t *toks = (const tok_t *)w->toks->data;
    size_t n = w->toks->len;
    bool group = at_name_in(w->css, first, group_rules, G_N_ELEMENTS(group_rules));
    frame_t child = {
        .decls = f->decls || !group,
        .droppable = true,
        .print = f->print,
        .forward = f->forward,
        .forward_only = f->forward_only,
        .selector = f->selector,
        .rule_start = first->start,
    };
    if (!group) {
        GString *name = g_string_new("@");
        unescape(w->css, first->vstart, first->vend, name);
        child.selector = child.owned[0] = cut_shown(name);
    }
    if (name_is(w->css, first->vstart, first->vend, "media") && media_print(w->css, toks, n))
        child.print = child.owned[1] = shown_text("@media ", w->css, toks, n);
    push_frame(w, child);
}

char *sp_scan_css_walk(const char *css, size_t len, bool inline_style, const char *print,
                       sp_scan_css_fn fn, void *ctx, bool strip, size_t *dropped)
{
    walk_t w = {
        .lx = {.s = css, .n = len},
        .css = css,
        .len = len,
        .strip = strip,
        .inline_style = inline_style,
        .fn = fn,
        .ctx = ctx,
        .frames = g_array_new(FALSE, FALSE, sizeof(frame_t)),
        .edits = g_array_new(FALSE, FALSE, sizeof(edit_t)),
        .toks = g_array_new(FALSE, FALSE, sizeof(tok_t)),
        .occs = g_array_new(FALSE, FALSE, sizeof(occ_t)),
        .opens = g_array_new(FALSE, FALSE, sizeof(open_t)),
    };
    frame_t sheet = {.decls = inline_style, .print = print, .selector = ""};
    push_frame(&w, sheet);
    for (;;) {
        frame_t *f = top_frame(&w);
        tok_t t = lex(&w.lx);
        if (T_WS == t.type || (T_SEMI == t.type && f->decls))
            continue;
        if ((T_CDO == t.type || T_CDC == t.type) && 1 == w.frames->len)
            continue;
        if (T_EOF == t.type) {
            while (w.frames->len > 1)
                close_frame(&w, len);
            break;
        }
        if (T_RBRACE == t.type && w.frames->len > 1) {
            close_frame(&w, t.end);
            continue;
        }
        if (T_AT == t.type)
            at_rule(&w, &t);
        else if (f->decls)
            declaration(&w, &t);
        else
            style_rule(&w, &t, w.frames->len > 1 ? STOP_RBRACE : 0);
    }
    char *out = NULL;
    if (strip && w.edits->len) {
        GString *s = g_string_sized_new(len);
        size_t copied = 0;
        for (guint i = 0; i < w.edits->len; i++) {
            const edit_t *e = &g_array_index(w.edits, edit_t, i);
            g_string_append_len(s, css + copied, (gssize)(e->start - copied));
            g_string_append(s, e->with);
            /* What follows must not run into what was written or what came before ("none" and
             * "url(" would make one function): the rest of the sheet then reads as it did. */
            int before = s->len ? (unsigned char)s->str[s->len - 1] : -1;
            int after = e->end < len ? (unsigned char)css[e->end] : -1;
            if ((is_name_char(before) || '\\' == before) &&
                (is_name_char(after) || '\\' == after || '(' == after))
                g_string_append_c(s, ' ');
            copied = e->end;
        }
        g_string_append_len(s, css + copied, (gssize)(len - copied));
        out = g_string_free(s, FALSE);
    }
    if (dropped)
        *dropped = w.dropped;
    free_frame(top_frame(&w));
    g_array_free(w.frames, TRUE);
    g_array_free(w.edits, TRUE);
    g_array_free(w.toks, TRUE);
    g_array_free(w.occs, TRUE);
    g_array_free(w.opens, TRUE);
    return out;
}

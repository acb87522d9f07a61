/* test_journal: the open log: open, ID and lock, append and read, record sizes, rotation and
 * release, reopen, torn tails, the mapped active segment (allocation, a killed process, a
 * faulting copy), damaged records, waiting, sync (group commit), concurrent appends. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"

/* A record's bytes around its payload: magic and length before it, the length again after. */
#define OVERHEAD 12
#define MAXREC   ((size_t)SP_JOURNAL_RECORD_MAX)
/* A segment's size when the options leave it at 0. */
#define DEFAULT_SEGMENT ((int64_t)64 << 20)

/* ---- fixture: a fresh temp folder per test; the journal is DIR inside it ---------------- */

typedef struct fixture {
    char base[64];
    char dir[128]; /* base/journal: does not exist yet */
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    if (!fx)
        return -1;
    snprintf(fx->base, sizeof(fx->base), "/tmp/spypixel-test-journal-XXXXXX");
    if (!mkdtemp(fx->base)) {
        free(fx);
        return -1;
    }
    snprintf(fx->dir, sizeof(fx->dir), "%s/journal", fx->base);
    *state = fx;
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    int rc = nftw(fx->base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return rc;
}

/* ---- helpers ------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static sp_journal_t *open_journal(const char *dir, size_t segment_bytes)
{
    char err[512] = "";
    sp_journal_options_t opt = {.dir = dir, .segment_bytes = segment_bytes};
    sp_journal_t *j = sp_journal_open(&opt, err, sizeof(err));
    if (!j)
        fail_msg("sp_journal_open(%s): %s", dir, err);
    return j;
}

/* Deterministic payload bytes for SEED. */
static void fill(unsigned char *p, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 0x9e3779b9u;
    for (size_t k = 0; k < len; k++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[k] = (unsigned char)(x >> 11);
    }
}

/* Where a payload differs from fill(SEED), or -1 when it does not. */
static long differs(const unsigned char *p, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 0x9e3779b9u;
    for (size_t k = 0; k < len; k++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        if (p[k] != (unsigned char)(x >> 11))
            return (long)k;
    }
    return -1;
}

/* What the test appended: record I starts at pos[I] and ends at end[I]. */
#define MODEL_MAX 4096
typedef struct model {
    size_t n;
    uint32_t seed[MODEL_MAX];
    size_t len[MODEL_MAX];
    int64_t pos[MODEL_MAX], end[MODEL_MAX];
} model_t;

static model_t *model_new(void)
{
    model_t *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    return m;
}

/* Appends fill(SEED) of LEN bytes (single-threaded) and checks the position it returns. */
static int64_t append_rec(sp_journal_t *j, model_t *m, uint32_t seed, size_t len)
{
    static unsigned char buf[SP_JOURNAL_RECORD_MAX];
    assert_true(len <= sizeof(buf));
    assert_true(m->n < MODEL_MAX);
    fill(buf, len, seed);
    int64_t before = sp_journal_end(j);
    int64_t end = sp_journal_append(j, buf, len, NULL);
    if (end != before + (int64_t)(len + OVERHEAD))
        fail_msg("append of %zu bytes at %" PRId64 " returned %" PRId64 " (errno %d)", len, before,
                 end, errno);
    assert_int_equal(end, sp_journal_end(j));
    m->seed[m->n] = seed;
    m->len[m->n] = len;
    m->pos[m->n] = before;
    m->end[m->n] = end;
    m->n++;
    return end;
}

/* Reads the next record from C and checks it is record I of M. */
static void expect_record(sp_journal_cursor_t *c, const model_t *m, size_t i)
{
    const void *payload = NULL;
    size_t len = 0;
    int64_t end = -1;
    char err[256] = "";
    int rc = sp_journal_next(c, &payload, &len, &end, err, sizeof(err));
    if (1 != rc)
        fail_msg("record %zu (at %" PRId64 "): next gave %d (%s)", i, m->pos[i], rc, err);
    if (len != m->len[i])
        fail_msg("record %zu: %zu bytes, want %zu", i, len, m->len[i]);
    long at = differs(payload, len, m->seed[i]);
    if (at >= 0)
        fail_msg("record %zu: payload differs at byte %ld", i, at);
    if (end != m->end[i])
        fail_msg("record %zu: ends at %" PRId64 ", want %" PRId64, i, end, m->end[i]);
}

static void expect_none(sp_journal_cursor_t *c)
{
    const void *payload = NULL;
    size_t len = 0;
    int64_t end = -1;
    char err[256] = "";
    int rc = sp_journal_next(c, &payload, &len, &end, err, sizeof(err));
    if (0 != rc)
        fail_msg("next gave %d (%s) at the end, want 0", rc, err);
}

static sp_journal_cursor_t *cursor_at(sp_journal_t *j, int64_t pos)
{
    char err[256] = "";
    sp_journal_cursor_t *c = sp_journal_cursor_new(j, pos, err, sizeof(err));
    if (!c)
        fail_msg("cursor at %" PRId64 ": %s", pos, err);
    return c;
}

/* Reads records FROM.. of M from their position on, then expects the end. */
static void check_from(sp_journal_t *j, const model_t *m, size_t from)
{
    int64_t pos = from < m->n ? m->pos[from] : sp_journal_end(j);
    sp_journal_cursor_t *c = cursor_at(j, pos);
    for (size_t i = from; i < m->n; i++)
        expect_record(c, m, i);
    expect_none(c);
    sp_journal_cursor_free(c);
}

static void segment_path(const char *dir, int64_t start, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%016" PRIx64 ".jnl", dir, (uint64_t)start);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The segment files in DIR (names "<16 hex>.jnl"), their starts ascending. Returns how many. */
static size_t list_segments(const char *dir, int64_t *out, size_t cap)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (20 != l || 0 != strcmp(e->d_name + 16, ".jnl") ||
            16 != strspn(e->d_name, "0123456789abcdef"))
            continue;
        unsigned long long v = strtoull(e->d_name, NULL, 16);
        assert_true(n < cap);
        out[n++] = (int64_t)v;
    }
    closedir(d);
    qsort(out, n, sizeof(*out), cmp_i64);
    return n;
}

static size_t count_segments(const char *dir)
{
    int64_t starts[1024];
    return list_segments(dir, starts, 1024);
}

static int64_t file_size(const char *path)
{
    struct stat st;
    if (0 != stat(path, &st))
        fail_msg("stat %s: %s", path, strerror(errno));
    return (int64_t)st.st_size;
}

static int64_t segment_size(const char *dir, int64_t start)
{
    char path[256];
    segment_path(dir, start, path, sizeof(path));
    return file_size(path);
}

/* Writes N bytes at OFF of the segment starting at START (behind the journal's back). */
static void poke(const char *dir, int64_t start, int64_t off, const void *bytes, size_t n)
{
    char path[256];
    segment_path(dir, start, path, sizeof(path));
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal((ssize_t)n, pwrite(fd, bytes, n, off));
    close(fd);
}

static void append_bytes(const char *dir, int64_t start, const void *bytes, size_t n)
{
    char path[256];
    segment_path(dir, start, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal((ssize_t)n, write(fd, bytes, n));
    close(fd);
}

/* The magic as the journal writes it: the first 4 bytes of a record. */
static uint32_t read_magic(const char *dir, int64_t start)
{
    char path[256];
    segment_path(dir, start, path, sizeof(path));
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    uint32_t magic = 0;
    assert_int_equal(4, pread(fd, &magic, 4, 0));
    close(fd);
    return magic;
}

/* The segment holding POS (the greatest start <= POS). */
static int64_t segment_of(const char *dir, int64_t pos)
{
    int64_t starts[1024];
    size_t n = list_segments(dir, starts, 1024);
    int64_t s = -1;
    for (size_t i = 0; i < n && starts[i] <= pos; i++)
        s = starts[i];
    assert_true(s >= 0);
    return s;
}

/* ---- open, ID, lock ------------------------------------------------------------------ */

static void test_open_id_lock(void **state)
{
    fixture_t *fx = *state;
    struct stat st;
    assert_int_not_equal(0, stat(fx->dir, &st));

    sp_journal_t *j = open_journal(fx->dir, 0);
    assert_int_equal(0, stat(fx->dir, &st));
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(0, sp_journal_start(j));
    assert_int_equal(0, sp_journal_end(j));
    assert_int_equal(0, sp_journal_appended(j));
    assert_int_equal(1, count_segments(fx->dir));
    /* The active segment is allocated whole while it is open (see test_active_allocated). */
    assert_int_equal(DEFAULT_SEGMENT, segment_size(fx->dir, 0));

    /* The ID: 32 lowercase hex digits, also in DIR/id. */
    char id[SP_JOURNAL_ID_LEN + 1];
    const char *jid = sp_journal_id(j);
    assert_non_null(jid);
    assert_int_equal(SP_JOURNAL_ID_LEN, strlen(jid));
    assert_int_equal(SP_JOURNAL_ID_LEN, strspn(jid, "0123456789abcdef"));
    snprintf(id, sizeof(id), "%s", jid);
    char path[256], text[128] = "";
    snprintf(path, sizeof(path), "%s/id", fx->dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(text, sizeof(text), f));
    fclose(f);
    text[strcspn(text, "\n")] = '\0';
    assert_string_equal(id, text);

    /* A second open of the folder while the first holds it. */
    char err[512] = "";
    sp_journal_options_t opt = {.dir = fx->dir};
    assert_null(sp_journal_open(&opt, err, sizeof(err)));
    if (!strstr(err, "in use"))
        fail_msg("second open: '%s'", err);
    /* The refused open did not take the first one's lock with it. */
    model_t *m = model_new();
    append_rec(j, m, 1, 10);
    err[0] = '\0';
    assert_null(sp_journal_open(&opt, err, sizeof(err)));
    assert_non_null(strstr(err, "in use"));
    check_from(j, m, 0);
    sp_journal_close(j);

    /* Reopened: the same ID; another folder: another ID. */
    j = open_journal(fx->dir, 0);
    assert_string_equal(id, sp_journal_id(j));
    sp_journal_close(j);
    j = open_journal(fx->dir, 4096);
    assert_string_equal(id, sp_journal_id(j));
    char other[160];
    snprintf(other, sizeof(other), "%s/other", fx->base);
    sp_journal_t *j2 = open_journal(other, 0);
    assert_string_not_equal(id, sp_journal_id(j2));
    sp_journal_close(j2);
    sp_journal_close(j);
    sp_journal_close(NULL);
    free(m);
}

static void test_open_errors(void **state)
{
    fixture_t *fx = *state;
    char err[512], path[256];
    sp_journal_options_t opt = {0};

    /* A parent that does not exist. */
    snprintf(path, sizeof(path), "%s/missing/journal", fx->base);
    opt.dir = path;
    err[0] = '\0';
    assert_null(sp_journal_open(&opt, err, sizeof(err)));
    assert_non_null(strstr(err, "journal"));
    assert_non_null(strstr(err, path));

    /* A file where the folder should be. */
    snprintf(path, sizeof(path), "%s/file", fx->base);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    err[0] = '\0';
    assert_null(sp_journal_open(&opt, err, sizeof(err)));
    assert_true(strlen(err) > 0);

    /* An ID file that holds something else. */
    sp_journal_close(open_journal(fx->dir, 0));
    snprintf(path, sizeof(path), "%s/id", fx->dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("not-an-id\n", f);
    fclose(f);
    opt.dir = fx->dir;
    err[0] = '\0';
    assert_null(sp_journal_open(&opt, err, sizeof(err)));
    if (!strstr(err, "journal ID"))
        fail_msg("bad id file: '%s'", err);
    /* The failed open let go of the lock: fixing the ID lets it open. */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("0123456789abcdef0123456789abcdef\n", f);
    fclose(f);
    sp_journal_t *j = open_journal(fx->dir, 0);
    assert_string_equal("0123456789abcdef0123456789abcdef", sp_journal_id(j));
    sp_journal_close(j);

    /* A folder name too long. */
    char long_dir[5000];
    memset(long_dir, 'a', sizeof(long_dir) - 1);
    long_dir[sizeof(long_dir) - 1] = '\0';
    opt.dir = long_dir;
    err[0] = '\0';
    assert_null(sp_journal_open(&opt, err, sizeof(err)));
    assert_true(strlen(err) > 0);
}

/* Files in the folder that are not segments are left alone. */
static void test_foreign_files(void **state)
{
    fixture_t *fx = *state;
    sp_journal_t *j = open_journal(fx->dir, 0);
    model_t *m = model_new();
    for (uint32_t i = 0; i < 5; i++)
        append_rec(j, m, i, 100);
    sp_journal_close(j);

    static const char *const names[] = {"notes.txt", "zzzzzzzzzzzzzzzz.jnl", "0000.jnl",
                                        "00000000000000000.jnl", "0000000000000000.jnl.bak"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[256];
        snprintf(path, sizeof(path), "%s/%s", fx->dir, names[i]);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs("not a segment", f);
        fclose(f);
    }
    j = open_journal(fx->dir, 0);
    assert_int_equal(0, sp_journal_start(j));
    assert_int_equal(m->end[4], sp_journal_end(j));
    assert_int_equal(1, count_segments(fx->dir));
    check_from(j, m, 0);
    append_rec(j, m, 9, 7);
    sp_journal_release(j, sp_journal_end(j));
    check_from(j, m, 0);
    sp_journal_close(j);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[256];
        snprintf(path, sizeof(path), "%s/%s", fx->dir, names[i]);
        assert_int_equal(13, file_size(path));
    }
    free(m);
}

/* ---- append and read ------------------------------------------------------------------ */

static void test_append_read(void **state)
{
    fixture_t *fx = *state;
    sp_journal_t *j = open_journal(fx->dir, 0);
    model_t *m = model_new();

    int64_t last = 0;
    for (uint32_t i = 0; i < 300; i++) {
        int64_t end = append_rec(j, m, 1000 + i, (i * 37) % 3001);
        assert_true(end > last);
        last = end;
    }
    assert_int_equal(last, sp_journal_end(j));
    assert_int_equal(300, sp_journal_appended(j));
    assert_int_equal(0, sp_journal_start(j));

    /* From the start, then from a record in the middle, then from the end. */
    check_from(j, m, 0);
    check_from(j, m, 150);
    check_from(j, m, 299);
    check_from(j, m, 300);

    /* Positions outside [start, end] are refused. */
    char err[256] = "";
    assert_null(sp_journal_cursor_new(j, last + 1, err, sizeof(err)));
    assert_non_null(strstr(err, "outside"));
    err[0] = '\0';
    assert_null(sp_journal_cursor_new(j, -1, err, sizeof(err)));
    assert_non_null(strstr(err, "outside"));

    /* Read while appending: 0 at the end, the new record once it is there. */
    sp_journal_cursor_t *c = cursor_at(j, 0);
    for (size_t i = 0; i < m->n; i++)
        expect_record(c, m, i);
    expect_none(c);
    expect_none(c);
    for (uint32_t i = 0; i < 200; i++) {
        size_t first = m->n;
        append_rec(j, m, 5000 + i, i % 5 ? i * 13 : 0);
        if (i % 3 == 0)
            append_rec(j, m, 9000 + i, 64);
        for (size_t k = first; k < m->n; k++)
            expect_record(c, m, k);
        expect_none(c);
    }
    sp_journal_cursor_free(c);
    sp_journal_cursor_free(NULL);
    assert_int_equal(m->n, sp_journal_appended(j));
    check_from(j, m, 0);
    sp_journal_close(j);
    free(m);
}

static void test_record_sizes(void **state)
{
    fixture_t *fx = *state;
    static const size_t sizes[] = {0,          1,    2,           3,      4,     5,      7,    8,
                                   9,          11,   12,          13,     15,    16,     17,   31,
                                   100,        255,  256,         257,    1000,  4083,   4084, 4085,
                                   4095,       4096, 4097,        65535,  65536, 65537,  0,    1,
                                   MAXREC - 1, 0,    MAXREC - 12, MAXREC, 3,     MAXREC, 0};
    static unsigned char big[SP_JOURNAL_RECORD_MAX + 1];
    /* The default segment size, then one smaller than the largest records. */
    static const size_t segment_bytes[] = {0, 4096};
    for (size_t s = 0; s < 2; s++) {
        char dir[160];
        snprintf(dir, sizeof(dir), "%s/seg%zu", fx->base, s);
        sp_journal_t *j = open_journal(dir, segment_bytes[s]);
        model_t *m = model_new();
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
            append_rec(j, m, (uint32_t)(i + 1), sizes[i]);

        /* Too large: refused with EMSGSIZE, nothing appended. */
        int64_t end = sp_journal_end(j);
        uint64_t appended = sp_journal_appended(j);
        errno = 0;
        assert_int_equal(-1, sp_journal_append(j, big, SP_JOURNAL_RECORD_MAX + 1, NULL));
        assert_int_equal(EMSGSIZE, errno);
        errno = 0;
        assert_int_equal(-1, sp_journal_append(j, big, SIZE_MAX, NULL));
        assert_int_equal(EMSGSIZE, errno);
        assert_int_equal(end, sp_journal_end(j));
        assert_int_equal(appended, sp_journal_appended(j));

        /* A zero-length append with no payload pointer. */
        int64_t e = sp_journal_append(j, NULL, 0, NULL);
        assert_int_equal(end + OVERHEAD, e);
        m->seed[m->n] = 0;
        m->len[m->n] = 0;
        m->pos[m->n] = end;
        m->end[m->n] = e;
        m->n++;

        check_from(j, m, 0);
        sp_journal_close(j);

        /* And after a reopen (which scans the last segment). */
        j = open_journal(dir, segment_bytes[s]);
        assert_int_equal(m->end[m->n - 1], sp_journal_end(j));
        check_from(j, m, 0);
        if (segment_bytes[s]) {
            /* A record larger than a segment has one to itself; no segment file is larger
             * than its size unless it holds one record. */
            int64_t starts[1024];
            size_t n = list_segments(dir, starts, 1024);
            assert_true(n > 5);
            for (size_t i = 0; i < n; i++) {
                int64_t size = segment_size(dir, starts[i]);
                if (size > 4096) {
                    size_t k = 0;
                    while (k < m->n && m->pos[k] != starts[i])
                        k++;
                    assert_true(k < m->n);
                    assert_int_equal(m->end[k] - m->pos[k], size);
                }
            }
        }
        sp_journal_close(j);
        free(m);
    }
}

/* ---- rotation and release -------------------------------------------------------------- */

static void test_rotation_release(void **state)
{
    fixture_t *fx = *state;
    sp_journal_t *j = open_journal(fx->dir, 4096);
    model_t *m = model_new();
    for (uint32_t i = 0; i < 300; i++)
        append_rec(j, m, i, 100 + (i * 53) % 200);
    int64_t end = sp_journal_end(j);

    int64_t starts[1024];
    size_t n = list_segments(fx->dir, starts, 1024);
    if (n < 10 || n > 40)
        fail_msg("%zu segments", n);
    /* Each segment starts at a record boundary, holds at most 4096 bytes, and they tile
     * [0, end) without gaps. */
    assert_int_equal(0, starts[0]);
    for (size_t i = 0; i < n; i++) {
        int64_t size = segment_size(fx->dir, starts[i]);
        int64_t next = i + 1 < n ? starts[i + 1] : end;
        if (i + 1 == n) { /* the active one: allocated whole, its records up to the end */
            assert_int_equal(4096, size);
            size = end - starts[i];
        }
        assert_true(size > 0 && size <= 4096);
        assert_int_equal(next, starts[i] + size);
        bool boundary = false;
        for (size_t k = 0; k < m->n && !boundary; k++)
            boundary = m->pos[k] == starts[i];
        assert_true(boundary);
        /* It was started because the next record did not fit. */
        if (i + 1 < n) {
            size_t k = 0;
            while (m->pos[k] != starts[i + 1])
                k++;
            assert_true(size + (m->end[k] - m->pos[k]) > 4096);
        }
    }

    /* One cursor reads across every boundary. */
    check_from(j, m, 0);

    /* A cursor opened before a release keeps the segment it has open. */
    sp_journal_cursor_t *early = cursor_at(j, 0);

    /* Release in the middle of segment 3: segments 0..2 go, 3 stays. */
    sp_journal_release(j, starts[3] + 1);
    int64_t left[1024];
    size_t nl = list_segments(fx->dir, left, 1024);
    assert_int_equal(n - 3, nl);
    assert_int_equal(starts[3], left[0]);
    assert_int_equal(starts[3], sp_journal_start(j));
    assert_int_equal(end, sp_journal_end(j));

    /* Released positions are refused; the new start reads on. */
    char err[256] = "";
    assert_null(sp_journal_cursor_new(j, 0, err, sizeof(err)));
    assert_non_null(strstr(err, "outside"));
    assert_null(sp_journal_cursor_new(j, starts[3] - 1, err, sizeof(err)));
    size_t first = 0;
    while (m->pos[first] != starts[3])
        first++;
    check_from(j, m, first);

    /* The early cursor: what its open file holds, then the released position is refused. */
    size_t read = 0;
    int rc;
    for (;;) {
        const void *payload;
        size_t len;
        int64_t rend;
        err[0] = '\0';
        rc = sp_journal_next(early, &payload, &len, &rend, err, sizeof(err));
        if (1 != rc)
            break;
        assert_int_equal(m->len[read], len);
        assert_int_equal(-1, differs(payload, len, m->seed[read]));
        assert_int_equal(m->end[read], rend);
        read++;
        assert_true(read < m->n);
    }
    assert_int_equal(-1, rc);
    assert_non_null(strstr(err, "released"));
    assert_true(m->end[read - 1] <= starts[1]);
    sp_journal_cursor_free(early);

    /* Exactly at a segment's start: the ones before it go, it stays. */
    sp_journal_release(j, starts[5]);
    nl = list_segments(fx->dir, left, 1024);
    assert_int_equal(n - 5, nl);
    assert_int_equal(starts[5], left[0]);
    assert_int_equal(starts[5], sp_journal_start(j));
    /* A position before the start deletes nothing more. */
    sp_journal_release(j, starts[2]);
    assert_int_equal(n - 5, count_segments(fx->dir));
    assert_int_equal(starts[5], sp_journal_start(j));

    /* At the end, and past it: never the active segment. */
    sp_journal_release(j, end);
    nl = list_segments(fx->dir, left, 1024);
    assert_int_equal(1, nl);
    assert_int_equal(starts[n - 1], left[0]);
    assert_int_equal(starts[n - 1], sp_journal_start(j));
    sp_journal_release(j, INT64_MAX);
    assert_int_equal(1, count_segments(fx->dir));
    while (m->pos[first] != starts[n - 1])
        first++;
    check_from(j, m, first);

    /* Appending goes on; the release is kept across a reopen. */
    for (uint32_t i = 0; i < 100; i++)
        append_rec(j, m, 7000 + i, 150);
    assert_true(count_segments(fx->dir) > 2);
    check_from(j, m, first);
    int64_t start = sp_journal_start(j);
    size_t segs = count_segments(fx->dir);
    sp_journal_close(j);

    j = open_journal(fx->dir, 4096);
    assert_int_equal(start, sp_journal_start(j));
    assert_int_equal(m->end[m->n - 1], sp_journal_end(j));
    assert_int_equal(segs, count_segments(fx->dir));
    check_from(j, m, first);
    append_rec(j, m, 99999, 4000);
    check_from(j, m, first);
    sp_journal_close(j);
    free(m);
}

/* Records that fill a segment exactly: the next starts a new one; none is split. */
static void test_rotation_exact_fit(void **state)
{
    fixture_t *fx = *state;
    sp_journal_t *j = open_journal(fx->dir, 4096);
    model_t *m = model_new();
    for (uint32_t i = 0; i < 12; i++)
        append_rec(j, m, i, 1024 - OVERHEAD);
    int64_t starts[64];
    size_t n = list_segments(fx->dir, starts, 64);
    assert_int_equal(3, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal((int64_t)(4096 * i), starts[i]);
        assert_int_equal(4096, segment_size(fx->dir, starts[i]));
    }
    /* One byte more than fits. */
    append_rec(j, m, 100, 1);
    assert_int_equal(4, count_segments(fx->dir));
    append_rec(j, m, 101, 4096 - 2 * OVERHEAD - 1); /* fills the fourth exactly */
    assert_int_equal(4, count_segments(fx->dir));
    assert_int_equal(4096, segment_size(fx->dir, 3 * 4096));
    check_from(j, m, 0);
    sp_journal_close(j);
    free(m);
}

/* One release takes every segment wholly before it, however many (it once stopped at 64). */
static void test_release_many_segments(void **state)
{
    fixture_t *fx = *state;
    sp_journal_t *j = open_journal(fx->dir, 4096);
    model_t *m = model_new();
    for (uint32_t i = 0; i < 100; i++)
        append_rec(j, m, i, 4096 - OVERHEAD); /* one record per segment */
    assert_int_equal(100, count_segments(fx->dir));
    sp_journal_release(j, sp_journal_end(j));
    assert_int_equal(1, count_segments(fx->dir));
    assert_int_equal(m->pos[99], sp_journal_start(j));
    check_from(j, m, 99);
    sp_journal_close(j);
    free(m);
}

/* An older segment that lost its end (a power loss without sync): the reader skips to the
 * next segment instead of stopping there for good. */
static void test_short_older_segment(void **state)
{
    fixture_t *fx = *state;
    sp_journal_t *j = open_journal(fx->dir, 4096);
    model_t *m = model_new();
    for (uint32_t i = 0; i < 6; i++)
        append_rec(j, m, i, 1500); /* two records per segment */
    sp_journal_close(j);
    assert_int_equal(3, count_segments(fx->dir));
    /* Cut the first segment's second record. */
    char path[4200];
    snprintf(path, sizeof(path), "%s/%016" PRIx64 ".jnl", fx->dir, (uint64_t)0);
    struct stat st;
    assert_int_equal(0, stat(path, &st));
    assert_int_equal(0, truncate(path, st.st_size - 100));

    j = open_journal(fx->dir, 4096);
    char err[256];
    sp_journal_cursor_t *c = sp_journal_cursor_new(j, 0, err, sizeof(err));
    assert_non_null(c);
    const void *p;
    size_t len;
    int64_t end;
    size_t got = 0;
    int64_t ends[8];
    int rc;
    while (1 == (rc = sp_journal_next(c, &p, &len, &end, err, sizeof(err))) && got < 8)
        ends[got++] = end;
    assert_int_equal(0, rc);
    /* Record 0, then records 2..5: record 1 was lost with the segment's end. */
    assert_int_equal(5, got);
    assert_int_equal(m->end[0], ends[0]);
    for (size_t i = 1; i < got; i++)
        assert_int_equal(m->end[i + 1], ends[i]);
    sp_journal_cursor_free(c);
    sp_journal_close(j);
    free(m);
}

/* ---- reopen ---------------------------------------------------------------------------- */

static void test_reopen(void **state)
{
    fixture_t *fx = *state;
    sp_journal_t *j = open_journal(fx->dir, 0);
    model_t *m = model_new();
    for (uint32_t i = 0; i < 50; i++)
        append_rec(j, m, i, 10 + i * 11);
    int64_t end = sp_journal_end(j);
    char id[SP_JOURNAL_ID_LEN + 1];
    snprintf(id, sizeof(id), "%s", sp_journal_id(j));
    sp_journal_close(j);

    for (int round = 0; round < 3; round++) {
        j = open_journal(fx->dir, 0);
        assert_string_equal(id, sp_journal_id(j));
        assert_int_equal(0, sp_journal_start(j));
        assert_int_equal(end, sp_journal_end(j));
        assert_int_equal(0, sp_journal_appended(j));
        check_from(j, m, 0);
        /* Appending continues at the old end. */
        for (uint32_t i = 0; i < 10; i++)
            append_rec(j, m, 100 * (round + 1) + i, 20 + i);
        assert_int_equal(10, sp_journal_appended(j));
        assert_int_equal(end, m->pos[50 + 10 * round]);
        assert_int_equal(end + 20 + OVERHEAD, m->end[50 + 10 * round]);
        end = sp_journal_end(j);
        check_from(j, m, 0);
        sp_journal_close(j);
    }
    assert_int_equal(1, count_segments(fx->dir));
    assert_int_equal(end, segment_size(fx->dir, 0));
    free(m);
}

/* ---- torn tails ------------------------------------------------------------------------ */

/* Opens DIR after damage to its tail and checks that it ends at M's last record, that the last
 * segment was cut back to SEG_SIZE, and that appends go on after the old records. */
static void expect_recovered(const char *dir, size_t segment_bytes, model_t *m, int64_t seg,
                             int64_t seg_size)
{
    sp_journal_t *j = open_journal(dir, segment_bytes);
    int64_t end = m->n ? m->end[m->n - 1] : 0;
    if (end != sp_journal_end(j))
        fail_msg("%s: ends at %" PRId64 ", want %" PRId64, dir, sp_journal_end(j), end);
    check_from(j, m, 0);
    /* The damage is gone: new records follow the old ones directly. */
    append_rec(j, m, 4242, 33);
    append_rec(j, m, 4243, 0);
    assert_int_equal(end, m->pos[m->n - 2]);
    check_from(j, m, 0);
    sp_journal_close(j);
    /* Closed, the files hold the records and nothing else. */
    int64_t last = segment_of(dir, m->end[m->n - 1]);
    assert_int_equal(m->end[m->n - 1] - last, segment_size(dir, last));
    if (last != seg)
        assert_int_equal(seg_size, segment_size(dir, seg));
    /* And once more: nothing left to cut. */
    j = open_journal(dir, segment_bytes);
    assert_int_equal(m->end[m->n - 1], sp_journal_end(j));
    check_from(j, m, 0);
    sp_journal_close(j);
}

static void test_torn_tail_cut(void **state)
{
    fixture_t *fx = *state;
    const size_t last_len = 40;
    /* Every cut inside the last record, from its first byte to one short of its end. */
    for (size_t cut = 0; cut < last_len + OVERHEAD; cut++) {
        char dir[160];
        snprintf(dir, sizeof(dir), "%s/cut%03zu", fx->base, cut);
        sp_journal_t *j = open_journal(dir, 0);
        model_t *m = model_new();
        for (uint32_t i = 0; i < 4; i++)
            append_rec(j, m, i, 10 * (i + 1));
        append_rec(j, m, 77, last_len);
        sp_journal_close(j);

        char path[256];
        segment_path(dir, 0, path, sizeof(path));
        int64_t last = m->pos[4];
        assert_int_equal(0, truncate(path, (off_t)(last + (int64_t)cut)));
        m->n--; /* the torn record is gone */
        expect_recovered(dir, 0, m, 0, last);
        free(m);
    }
}

typedef struct tail_case {
    const char *name;
    unsigned char bytes[256];
    size_t n;
} tail_case_t;

static void put(tail_case_t *c, const void *p, size_t n)
{
    assert_true(c->n + n <= sizeof(c->bytes));
    memcpy(c->bytes + c->n, p, n);
    c->n += n;
}

static void put_u32(tail_case_t *c, uint32_t v)
{
    put(c, &v, sizeof(v));
}

static void test_torn_tail_garbage(void **state)
{
    fixture_t *fx = *state;
    static const unsigned char zeros[8192];
    tail_case_t cases[8];
    size_t nc = 0;
    memset(cases, 0, sizeof(cases));

    /* The magic is learned from a journal's first record. */
    uint32_t magic;
    {
        char dir[160];
        snprintf(dir, sizeof(dir), "%s/probe", fx->base);
        sp_journal_t *j = open_journal(dir, 0);
        assert_int_equal(OVERHEAD + 1, sp_journal_append(j, "x", 1, NULL));
        sp_journal_close(j);
        magic = read_magic(dir, 0);
    }
    const char text[] = "this is not a record, only noise after a crash\n";
    tail_case_t *c = &cases[nc++];
    c->name = "text";
    put(c, text, sizeof(text) - 1);
    c = &cases[nc++];
    c->name = "three bytes of a magic";
    put(c, &magic, 3);
    c = &cases[nc++];
    c->name = "a magic alone";
    put_u32(c, magic);
    c = &cases[nc++];
    c->name = "a header and half a payload";
    put_u32(c, magic);
    put_u32(c, 100);
    put(c, zeros, 50);
    c = &cases[nc++];
    c->name = "a whole record with a wrong trailer";
    put_u32(c, magic);
    put_u32(c, 10);
    put(c, "0123456789", 10);
    put_u32(c, 11);
    c = &cases[nc++];
    c->name = "a length over the maximum";
    put_u32(c, magic);
    put_u32(c, SP_JOURNAL_RECORD_MAX + 1);
    put(c, zeros, 100);
    put_u32(c, SP_JOURNAL_RECORD_MAX + 1);
    c = &cases[nc++];
    c->name = "a length of 2^32-1";
    put_u32(c, magic);
    put_u32(c, UINT32_MAX);
    put(c, zeros, 16);

    /* The bytes above, then 8 KiB of zeros (what a power loss can leave), each after the
     * records of a journal with one segment and after those of one with several. */
    for (size_t seg_kind = 0; seg_kind < 2; seg_kind++) {
        for (size_t k = 0; k <= nc; k++) {
            size_t segment_bytes = seg_kind ? 4096 : 0;
            char dir[160];
            snprintf(dir, sizeof(dir), "%s/g%zu-%zu", fx->base, seg_kind, k);
            sp_journal_t *j = open_journal(dir, segment_bytes);
            model_t *m = model_new();
            for (uint32_t i = 0; i < 20; i++)
                append_rec(j, m, i, 300 + i);
            sp_journal_close(j);
            int64_t seg = segment_of(dir, m->end[m->n - 1]); /* the last */
            int64_t size = segment_size(dir, seg);
            if (k < nc)
                append_bytes(dir, seg, cases[k].bytes, cases[k].n);
            else
                append_bytes(dir, seg, zeros, sizeof(zeros));
            assert_true(segment_size(dir, seg) > size);
            expect_recovered(dir, segment_bytes, m, seg, size);
            if (seg_kind)
                assert_true(count_segments(dir) >= 2);
            free(m);
        }
    }

    /* A valid record written behind the journal's back, then zeros: the record is kept. */
    {
        char dir[160];
        snprintf(dir, sizeof(dir), "%s/valid", fx->base);
        sp_journal_t *j = open_journal(dir, 0);
        model_t *m = model_new();
        for (uint32_t i = 0; i < 3; i++)
            append_rec(j, m, i, 20);
        sp_journal_close(j);
        unsigned char rec[5 + OVERHEAD];
        uint32_t u = 5;
        memcpy(rec, &magic, 4);
        memcpy(rec + 4, &u, 4);
        fill(rec + 8, 5, 555);
        memcpy(rec + 13, &u, 4);
        append_bytes(dir, 0, rec, sizeof(rec));
        append_bytes(dir, 0, zeros, 100);
        m->seed[m->n] = 555;
        m->len[m->n] = 5;
        m->pos[m->n] = m->end[m->n - 1];
        m->end[m->n] = m->pos[m->n] + (int64_t)sizeof(rec);
        m->n++;
        expect_recovered(dir, 0, m, 0, m->end[m->n - 1]);
        free(m);
    }
}

/* The torn record was the only one of a segment just started: the segment is left empty and
 * the next append goes into it. */
static void test_torn_tail_new_segment(void **state)
{
    fixture_t *fx = *state;
    sp_journal_t *j = open_journal(fx->dir, 4096);
    model_t *m = model_new();
    for (uint32_t i = 0; i < 9; i++)
        append_rec(j, m, i, 1000); /* 4 to a segment */
    sp_journal_close(j);
    int64_t starts[16];
    assert_int_equal(3, list_segments(fx->dir, starts, 16));
    assert_int_equal(m->pos[8], starts[2]);
    int64_t seg1_size = segment_size(fx->dir, starts[1]);

    char path[256];
    segment_path(fx->dir, starts[2], path, sizeof(path));
    assert_int_equal(0, truncate(path, 500));
    m->n--;
    j = open_journal(fx->dir, 4096);
    assert_int_equal(starts[2], sp_journal_end(j));
    assert_int_equal(seg1_size, segment_size(fx->dir, starts[1]));
    assert_int_equal(3, count_segments(fx->dir));
    sp_journal_cursor_t *c = cursor_at(j, 0);
    for (size_t i = 0; i < m->n; i++)
        expect_record(c, m, i);
    expect_none(c);
    append_rec(j, m, 50, 1000);
    assert_int_equal(starts[2], m->pos[m->n - 1]);
    assert_int_equal(3, count_segments(fx->dir));
    expect_record(c, m, m->n - 1);
    expect_none(c);
    sp_journal_cursor_free(c);
    check_from(j, m, 0);
    sp_journal_close(j);
    assert_int_equal(1000 + OVERHEAD, segment_size(fx->dir, starts[2]));
    free(m);
}

/* ---- the mapped active segment ----------------------------------------------------------- */

/* While open, the active segment's blocks are all allocated (a copy into its mapping cannot
 * meet a full disk); closed or rotated out, it is cut back to its records. */
static void test_active_allocated(void **state)
{
    fixture_t *fx = *state;
    sp_journal_t *j = open_journal(fx->dir, 16384);
    model_t *m = model_new();
    char path[256];
    segment_path(fx->dir, 0, path, sizeof(path));
    struct stat st;
    assert_int_equal(0, stat(path, &st));
    assert_int_equal(16384, st.st_size);
    assert_true((int64_t)st.st_blocks * 512 >= 16384); /* allocated, not a hole */

    for (uint32_t i = 0; i < 10; i++)
        append_rec(j, m, i, 700);
    assert_int_equal(16384, segment_size(fx->dir, 0));
    check_from(j, m, 0);
    /* What the copies wrote is in the file for any other reader (here pread). */
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    unsigned char rec[700 + OVERHEAD];
    assert_int_equal(sizeof(rec), pread(fd, rec, sizeof(rec), m->pos[9]));
    close(fd);
    assert_int_equal(-1, differs(rec + 8, 700, 9));

    /* Rotated out: cut back; the new one allocated whole. */
    for (uint32_t i = 10; i < 30; i++)
        append_rec(j, m, i, 700);
    int64_t starts[16];
    size_t n = list_segments(fx->dir, starts, 16);
    assert_int_equal(2, n);
    assert_int_equal(starts[1] - starts[0], segment_size(fx->dir, starts[0]));
    assert_int_equal(16384, segment_size(fx->dir, starts[1]));
    check_from(j, m, 0);
    sp_journal_close(j);
    assert_int_equal(m->end[m->n - 1] - starts[1], segment_size(fx->dir, starts[1]));

    /* Reopened: allocated again, appends go on after the records. */
    j = open_journal(fx->dir, 16384);
    assert_int_equal(m->end[m->n - 1], sp_journal_end(j));
    assert_int_equal(16384, segment_size(fx->dir, starts[1]));
    append_rec(j, m, 99, 50);
    check_from(j, m, 0);
    sp_journal_close(j);
    free(m);
}

/* The resident memory (kB) of this process's mapping of PATH, from /proc/self/smaps; -1
 * when it has none. */
static long mapping_rss_kb(const char *path)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    assert_non_null(f);
    char line[512];
    long rss = -1;
    bool in = false;
    while (fgets(line, sizeof(line), f)) {
        size_t n = strlen(line), pl = strlen(path);
        if (n > pl && 0 == strncmp(line + n - 1 - pl, path, pl) && '\n' == line[n - 1])
            in = true;
        else if (in && 1 == sscanf(line, "Rss: %ld kB", &rss))
            break;
    }
    fclose(f);
    return rss;
}

/* Pages written in full leave the process (they stay in the page cache): after 8 MiB of
 * records the mapping of a 64 MiB segment holds about a megabyte, and every record reads
 * back. */
static void test_written_pages_released(void **state)
{
    fixture_t *fx = *state;
    sp_journal_t *j = open_journal(fx->dir, 0);
    model_t *m = model_new();
    char path[256];
    segment_path(fx->dir, 0, path, sizeof(path));
    for (uint32_t i = 0; i < 2100; i++)
        append_rec(j, m, i, 4096);
    assert_true(sp_journal_end(j) > 8 << 20);
    long rss = mapping_rss_kb(path);
    if (rss < 0 || rss > 2048)
        fail_msg("the segment's mapping holds %ld kB", rss);
    check_from(j, m, 0);
    sp_journal_close(j);
    free(m);
}

/* A process killed after its appends (no close: the file is still as long as a segment,
 * zeros after the records) leaves every record it appended, and the next open goes on
 * after the last. */
static void test_killed_after_appends(void **state)
{
    fixture_t *fx = *state;
    /* The child's model, where the parent can read it. */
    model_t *m = mmap(NULL, sizeof(*m), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(MAP_FAILED != m);
    memset(m, 0, sizeof(*m));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (0 == pid) {
        sp_journal_t *j = open_journal(fx->dir, 8192);
        for (uint32_t i = 0; i < 40; i++)
            append_rec(j, m, 500 + i, 100 + 7 * i); /* several segments */
        kill(getpid(), SIGKILL);
        _exit(3);
    }
    int status = 0;
    assert_int_equal(pid, waitpid(pid, &status, 0));
    assert_true(WIFSIGNALED(status) && SIGKILL == WTERMSIG(status));
    assert_int_equal(40, m->n);
    int64_t last = segment_of(fx->dir, m->end[m->n - 1]);
    assert_int_equal(8192, segment_size(fx->dir, last)); /* never cut back */

    sp_journal_t *j = open_journal(fx->dir, 8192);
    assert_int_equal(m->end[m->n - 1], sp_journal_end(j));
    check_from(j, m, 0);
    append_rec(j, m, 1, 10);
    assert_int_equal(m->end[m->n - 2], m->pos[m->n - 1]);
    check_from(j, m, 0);
    sp_journal_close(j);
    munmap(m, sizeof(*m));
}

/* Run in a child whose files may not grow past 256 KiB (RLIMIT_FSIZE), so that a 64 MiB
 * segment cannot be allocated: 0 when the appends went through pwritev up to the limit and
 * failed cleanly there; otherwise the number of the check that failed. */
static int unallocatable_child(const char *dir)
{
    signal(SIGXFSZ, SIG_IGN); /* a write past the limit then fails with EFBIG */
    struct rlimit rl = {256 * 1024, 256 * 1024};
    if (0 != setrlimit(RLIMIT_FSIZE, &rl))
        return 1;
    char err[256];
    sp_journal_options_t opt = {.dir = dir};
    sp_journal_t *j = sp_journal_open(&opt, err, sizeof(err));
    if (!j)
        return 2;
    static unsigned char rec[1000];
    int64_t end = 0;
    for (uint32_t i = 0; i < 100; i++) {
        fill(rec, sizeof(rec), i);
        int64_t e = sp_journal_append(j, rec, sizeof(rec), NULL);
        if (e != end + (int64_t)(sizeof(rec) + OVERHEAD))
            return 3;
        end = e;
    }
    char path[256];
    segment_path(dir, 0, path, sizeof(path));
    struct stat st;
    if (0 != stat(path, &st) || st.st_size != end) /* written, not allocated ahead */
        return 4;
    /* Up to the limit, then a clean refusal (EFBIG, or ENOSPC for a record cut short):
     * nothing appended, the end unchanged. */
    int64_t e;
    while ((e = sp_journal_append(j, rec, sizeof(rec), NULL)) > 0)
        end = e;
    if ((EFBIG != errno && ENOSPC != errno) || sp_journal_end(j) != end || end > 256 * 1024 ||
        end + (int64_t)(sizeof(rec) + OVERHEAD) <= 256 * 1024)
        return 5;
    sp_journal_cursor_t *c = sp_journal_cursor_new(j, 0, err, sizeof(err));
    const void *payload;
    size_t len;
    int64_t next, n = 0;
    while (c && 1 == sp_journal_next(c, &payload, &len, &next, err, sizeof(err))) {
        fill(rec, sizeof(rec), (uint32_t)n);
        if (len != sizeof(rec) || (n < 100 && 0 != memcmp(payload, rec, len)))
            return 6;
        n++;
    }
    if (!c || next != end)
        return 7;
    sp_journal_cursor_free(c);
    sp_journal_close(j);
    return 0;
}

/* A segment whose blocks cannot be allocated (a disk that is nearly full) is not mapped:
 * its records go through pwritev, as before the mapping, until the disk refuses one. */
static void test_unallocatable_segment(void **state)
{
    fixture_t *fx = *state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (0 == pid)
        _exit(unallocatable_child(fx->dir));
    int status = 0;
    assert_int_equal(pid, waitpid(pid, &status, 0));
    assert_true(WIFEXITED(status));
    if (0 != WEXITSTATUS(status))
        fail_msg("check %d failed in the child", WEXITSTATUS(status));
}

/* The segment's file cut short behind the journal's back: the next copy into the mapping
 * faults (SIGBUS). The append is made with pwritev instead, the process lives on, and so
 * do the appends after it. */
static void test_mapping_fault(void **state)
{
    fixture_t *fx = *state;
    sp_journal_t *j = open_journal(fx->dir, 16384);
    model_t *m = model_new();
    append_rec(j, m, 1, 4096 - OVERHEAD); /* one page exactly */
    char path[256];
    segment_path(fx->dir, 0, path, sizeof(path));
    assert_int_equal(0, truncate(path, 4096)); /* the next page is past the end now */
    append_rec(j, m, 2, 300);
    append_rec(j, m, 3, 5000); /* across pages */
    check_from(j, m, 0);
    assert_int_equal(4096 + 300 + 5000 + 2 * OVERHEAD, segment_size(fx->dir, 0));
    sp_journal_close(j);
    j = open_journal(fx->dir, 16384);
    assert_int_equal(m->end[m->n - 1], sp_journal_end(j));
    append_rec(j, m, 4, 10);
    check_from(j, m, 0);
    sp_journal_close(j);
    free(m);
}

/* ---- damaged records --------------------------------------------------------------------- */

/* Expects -1 and "damaged ... <position>" from C, twice: the cursor does not move. */
static void expect_damaged(sp_journal_cursor_t *c, int64_t pos)
{
    char want[64];
    snprintf(want, sizeof(want), "%" PRId64, pos);
    for (int k = 0; k < 3; k++) {
        const void *payload;
        size_t len;
        int64_t end;
        char err[256] = "";
        int rc = sp_journal_next(c, &payload, &len, &end, err, sizeof(err));
        if (-1 != rc || !strstr(err, "damaged") || !strstr(err, want))
            fail_msg("call %d at %" PRId64 ": %d '%s'", k, pos, rc, err);
    }
}

static void test_damaged_record(void **state)
{
    fixture_t *fx = *state;
    sp_journal_t *j = open_journal(fx->dir, 0);
    model_t *m = model_new();
    for (uint32_t i = 0; i < 12; i++)
        append_rec(j, m, i, 50);

    /* A magic overwritten: what is before reads, then -1 there, again and again. */
    poke(fx->dir, 0, m->pos[5], "XXXX", 4);
    sp_journal_cursor_t *c = cursor_at(j, 0);
    for (size_t i = 0; i < 5; i++)
        expect_record(c, m, i);
    expect_damaged(c, m->pos[5]);
    sp_journal_cursor_free(c);
    /* A cursor after it reads on. */
    c = cursor_at(j, m->pos[6]);
    expect_record(c, m, 6);
    expect_record(c, m, 7);

    /* A trailer that is not the length. */
    uint32_t bad = 49;
    poke(fx->dir, 0, m->end[8] - 4, &bad, 4);
    sp_journal_cursor_free(c);
    c = cursor_at(j, m->pos[8]);
    expect_damaged(c, m->pos[8]);
    sp_journal_cursor_free(c);

    /* A length over the maximum, and one that points past the journal's end. */
    bad = UINT32_MAX;
    poke(fx->dir, 0, m->pos[9] + 4, &bad, 4);
    c = cursor_at(j, m->pos[9]);
    expect_damaged(c, m->pos[9]);
    sp_journal_cursor_free(c);
    bad = 5000;
    poke(fx->dir, 0, m->pos[11] + 4, &bad, 4);
    c = cursor_at(j, m->pos[11]);
    expect_damaged(c, m->pos[11]);
    /* A length one more than the payload. */
    bad = 51;
    poke(fx->dir, 0, m->pos[10] + 4, &bad, 4);
    sp_journal_cursor_free(c);
    c = cursor_at(j, m->pos[10]);
    expect_damaged(c, m->pos[10]);
    sp_journal_cursor_free(c);

    /* Appends still work and read back. */
    append_rec(j, m, 77, 10);
    c = cursor_at(j, m->pos[m->n - 1]);
    expect_record(c, m, m->n - 1);
    expect_none(c);
    sp_journal_cursor_free(c);
    sp_journal_close(j);
    free(m);
}

/* A damaged record in a segment before the last survives a reopen (only the last segment is
 * scanned); the cursor skips the rest of that segment, with a warning, and reads on. */
static void test_damaged_record_old_segment(void **state)
{
    fixture_t *fx = *state;
    sp_journal_t *j = open_journal(fx->dir, 4096);
    model_t *m = model_new();
    for (uint32_t i = 0; i < 40; i++)
        append_rec(j, m, i, 500);
    sp_journal_close(j);
    int64_t starts[64];
    size_t n = list_segments(fx->dir, starts, 64);
    assert_true(n >= 3);
    /* The second record of the second segment. */
    size_t k = 0;
    while (m->pos[k] != starts[1])
        k++;
    k++;
    poke(fx->dir, starts[1], m->pos[k] - starts[1], "\0\0\0\0", 4);

    j = open_journal(fx->dir, 4096);
    assert_int_equal(m->end[m->n - 1], sp_journal_end(j));
    sp_journal_cursor_t *c = cursor_at(j, 0);
    for (size_t i = 0; i < k; i++)
        expect_record(c, m, i);
    /* Not the last segment: the reader skips the rest of it and goes on at the next. */
    size_t k2 = k;
    while (m->pos[k2] != starts[2])
        k2++;
    for (size_t i = k2; i < m->n; i++)
        expect_record(c, m, i);
    sp_journal_cursor_free(c);
    check_from(j, m, k + 1);
    sp_journal_close(j);
    free(m);
}

/* ---- waiting ------------------------------------------------------------------------------ */

typedef struct delayed {
    sp_journal_t *j;
    int delay_ms;
    bool wake; /* sp_journal_wake instead of an append */
    int64_t end;
} delayed_t;

static void *delayed_main(void *arg)
{
    delayed_t *d = arg;
    sleep_ms(d->delay_ms);
    if (d->wake)
        sp_journal_wake(d->j);
    else
        d->end = sp_journal_append(d->j, "late", 4, NULL);
    return NULL;
}

static void test_wait(void **state)
{
    fixture_t *fx = *state;
    sp_journal_t *j = open_journal(fx->dir, 0);

    /* Nothing past the end: false after the timeout. */
    int64_t t0 = now_ms();
    assert_false(sp_journal_wait(j, 0, 0));
    assert_false(sp_journal_wait(j, 0, 80));
    int64_t took = now_ms() - t0;
    if (took < 70 || took > 3000)
        fail_msg("an 80 ms wait took %" PRId64 " ms", took);

    /* Something past POS: true at once. */
    int64_t end = sp_journal_append(j, "abc", 3, NULL);
    assert_true(end > 0);
    t0 = now_ms();
    assert_true(sp_journal_wait(j, 0, 5000));
    assert_true(sp_journal_wait(j, end - 1, 5000));
    assert_true(sp_journal_wait(j, -1, 0));
    assert_true(now_ms() - t0 < 1000);
    t0 = now_ms();
    assert_false(sp_journal_wait(j, end, 30));
    assert_true(now_ms() - t0 >= 20);
    assert_false(sp_journal_wait(j, end + 1000, 10));

    /* An append on another thread during the wait ends it. */
    delayed_t d = {j, 50, false, 0};
    pthread_t th;
    t0 = now_ms();
    assert_int_equal(0, pthread_create(&th, NULL, delayed_main, &d));
    assert_true(sp_journal_wait(j, end, 5000));
    took = now_ms() - t0;
    pthread_join(th, NULL);
    assert_int_equal(end + 4 + OVERHEAD, d.end);
    if (took > 3000)
        fail_msg("the wait ended %" PRId64 " ms after the append", took);
    end = d.end;

    /* sp_journal_wake ends a wait at once: false, nothing new. */
    d = (delayed_t){j, 50, true, 0};
    t0 = now_ms();
    assert_int_equal(0, pthread_create(&th, NULL, delayed_main, &d));
    assert_false(sp_journal_wait(j, end, 5000));
    took = now_ms() - t0;
    pthread_join(th, NULL);
    if (took < 30 || took > 3000)
        fail_msg("a woken wait took %" PRId64 " ms", took);
    /* And from then on every wait returns at once. */
    t0 = now_ms();
    assert_false(sp_journal_wait(j, end, 5000));
    assert_true(sp_journal_wait(j, end - 1, 5000));
    assert_true(now_ms() - t0 < 1000);
    sp_journal_close(j);
}

/* ---- sync ---------------------------------------------------------------------------------- */

#define SYNC_MAX 2048
typedef struct sync_log {
    pthread_mutex_t lock;
    atomic_int count;
    atomic_int on_main; /* calls made on the test's own thread */
    pthread_t main;
    int seen[SYNC_MAX]; /* times each token was told */
    int foreign;        /* waiters that are not tokens */
} sync_log_t;

static int tokens[SYNC_MAX]; /* their addresses are the waiters */

static void on_synced(void *ctx, void *waiter)
{
    sync_log_t *log = ctx;
    if (pthread_equal(pthread_self(), log->main))
        atomic_fetch_add(&log->on_main, 1);
    pthread_mutex_lock(&log->lock);
    int *t = waiter;
    if (t >= tokens && t < tokens + SYNC_MAX)
        log->seen[t - tokens]++;
    else
        log->foreign++;
    pthread_mutex_unlock(&log->lock);
    atomic_fetch_add(&log->count, 1);
}

/* Waits (at most 5 s) until LOG has WANT calls. */
static void wait_count(sync_log_t *log, int want)
{
    for (int i = 0; i < 5000 && atomic_load(&log->count) < want; i++)
        sleep_ms(1);
    if (atomic_load(&log->count) != want)
        fail_msg("%d synced calls, want %d", atomic_load(&log->count), want);
}

static sp_journal_t *open_sync(const char *dir, size_t segment_bytes, sync_log_t *log)
{
    char err[512] = "";
    sp_journal_options_t opt = {
        .dir = dir,
        .segment_bytes = segment_bytes,
        .sync = true,
        .synced = on_synced,
        .synced_ctx = log,
    };
    sp_journal_t *j = sp_journal_open(&opt, err, sizeof(err));
    if (!j)
        fail_msg("sp_journal_open(%s, sync): %s", dir, err);
    return j;
}

static void test_sync(void **state)
{
    fixture_t *fx = *state;
    sync_log_t *log = calloc(1, sizeof(*log));
    assert_non_null(log);
    pthread_mutex_init(&log->lock, NULL);
    log->main = pthread_self();

    sp_journal_t *j = open_sync(fx->dir, 4096, log);
    model_t *m = model_new();

    /* One append with a waiter: told, on the syncer thread. */
    unsigned char buf[600];
    fill(buf, 100, 1);
    assert_true(sp_journal_append(j, buf, 100, &tokens[0]) > 0);
    wait_count(log, 1);
    assert_int_equal(1, log->seen[0]);

    /* Several, across rotations: each told once. */
    for (int i = 1; i < 200; i++) {
        fill(buf, 500, (uint32_t)i);
        assert_true(sp_journal_append(j, buf, 500, &tokens[i]) > 0);
    }
    wait_count(log, 200);
    for (int i = 0; i < 200; i++)
        assert_int_equal(1, log->seen[i]);
    assert_true(count_segments(fx->dir) > 10);

    /* No waiter: nothing to tell. */
    for (uint32_t i = 0; i < 20; i++)
        append_rec(j, m, i, 64);
    sleep_ms(100);
    assert_int_equal(200, atomic_load(&log->count));

    /* Pending waiters are told by the close. */
    for (int i = 200; i < 1200; i++) {
        fill(buf, 8, (uint32_t)i);
        assert_true(sp_journal_append(j, buf, 8, &tokens[i]) > 0);
    }
    sp_journal_close(j);
    assert_int_equal(1200, atomic_load(&log->count));
    for (int i = 0; i < 1200; i++)
        if (1 != log->seen[i])
            fail_msg("token %d told %d times", i, log->seen[i]);
    assert_int_equal(0, log->foreign);
    assert_int_equal(0, atomic_load(&log->on_main));

    /* What was appended with sync reads back after a reopen without it. */
    j = open_journal(fx->dir, 4096);
    int64_t end = sp_journal_end(j);
    int64_t start = sp_journal_start(j);
    assert_int_equal(0, start);
    sp_journal_cursor_t *c = cursor_at(j, 0);
    size_t records = 0;
    const void *payload;
    size_t len;
    int64_t rend = 0;
    char err[256];
    while (1 == sp_journal_next(c, &payload, &len, &rend, err, sizeof(err)) && records < 5000)
        records++;
    assert_int_equal(1220, records);
    assert_int_equal(end, rend);
    sp_journal_cursor_free(c);
    sp_journal_close(j);

    /* Closing with nothing pending tells nothing. */
    atomic_store(&log->count, 0);
    j = open_sync(fx->dir, 0, log);
    sp_journal_close(j);
    assert_int_equal(0, atomic_load(&log->count));
    pthread_mutex_destroy(&log->lock);
    free(log);
    free(m);
}

/* Many threads appending with sync at once: every waiter is told exactly once. */
typedef struct sync_appender {
    sp_journal_t *j;
    int first, n;
    int failures;
} sync_appender_t;

static void *sync_appender_main(void *arg)
{
    sync_appender_t *a = arg;
    unsigned char buf[64];
    for (int i = a->first; i < a->first + a->n; i++) {
        fill(buf, sizeof(buf), (uint32_t)i);
        if (sp_journal_append(a->j, buf, sizeof(buf), &tokens[i]) < 0)
            a->failures++;
    }
    return NULL;
}

static void test_sync_concurrent(void **state)
{
    fixture_t *fx = *state;
    sync_log_t *log = calloc(1, sizeof(*log));
    assert_non_null(log);
    pthread_mutex_init(&log->lock, NULL);
    log->main = pthread_self();
    sp_journal_t *j = open_sync(fx->dir, 16384, log);
    sync_appender_t a[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        a[t] = (sync_appender_t){j, t * 500, 500, 0};
        assert_int_equal(0, pthread_create(&th[t], NULL, sync_appender_main, &a[t]));
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(0, a[t].failures);
    }
    wait_count(log, 2000);
    sp_journal_close(j);
    assert_int_equal(2000, atomic_load(&log->count));
    for (int i = 0; i < 2000; i++)
        assert_int_equal(1, log->seen[i]);
    assert_int_equal(0, atomic_load(&log->on_main));
    pthread_mutex_destroy(&log->lock);
    free(log);
}

/* ---- concurrent appends --------------------------------------------------------------------- */

#define THREADS 4
#define PER     2000

/* A payload: the thread, its counter, then filler bytes of a length both decide. */
static size_t filler_len(uint32_t t, uint32_t i)
{
    return (i * 7 + t * 3) % 97;
}

typedef struct appender {
    sp_journal_t *j;
    uint32_t id;
    int failures, out_of_order;
    int64_t ends[PER];
} appender_t;

static void *appender_main(void *arg)
{
    appender_t *a = arg;
    unsigned char buf[8 + 128];
    int64_t last = -1;
    for (uint32_t i = 0; i < PER; i++) {
        memcpy(buf, &a->id, 4);
        memcpy(buf + 4, &i, 4);
        size_t n = filler_len(a->id, i);
        fill(buf + 8, n, a->id << 16 | i);
        int64_t end = sp_journal_append(a->j, buf, 8 + n, NULL);
        if (end < 0)
            a->failures++;
        if (end <= last)
            a->out_of_order++;
        a->ends[i] = last = end;
    }
    return NULL;
}

/* Checks one payload against NEXT[], the counter each thread is at. A description of what is
 * wrong, or NULL. */
static const char *check_payload(const unsigned char *p, size_t len, uint32_t *next)
{
    uint32_t t, i;
    if (len < 8)
        return "short";
    memcpy(&t, p, 4);
    memcpy(&i, p + 4, 4);
    if (t >= THREADS)
        return "no such thread";
    if (i != next[t])
        return "out of order";
    if (len != 8 + filler_len(t, i) || differs(p + 8, len - 8, t << 16 | i) >= 0)
        return "damaged payload";
    next[t]++;
    return NULL;
}

typedef struct reader {
    sp_journal_t *j;
    int total;
    bool release; /* release what it has read as it goes */
    int read;
    const char *problem;
    char err[256];
    int64_t end;
} reader_t;

/* Reads behind the appenders until TOTAL records (at most 20 s). */
static void *reader_main(void *arg)
{
    reader_t *r = arg;
    uint32_t next[THREADS] = {0};
    sp_journal_cursor_t *c = sp_journal_cursor_new(r->j, 0, r->err, sizeof(r->err));
    if (!c) {
        r->problem = "no cursor";
        return NULL;
    }
    int64_t deadline = now_ms() + 20000, pos = 0;
    while (r->read < r->total && now_ms() < deadline) {
        const void *payload;
        size_t len;
        int64_t end;
        int rc = sp_journal_next(c, &payload, &len, &end, r->err, sizeof(r->err));
        if (rc < 0) {
            r->problem = "next failed";
            break;
        }
        if (0 == rc) {
            sp_journal_wait(r->j, pos, 100);
            continue;
        }
        if (end <= pos) {
            r->problem = "positions going back";
            break;
        }
        pos = end;
        if ((r->problem = check_payload(payload, len, next)))
            break;
        r->read++;
        if (r->release && 0 == r->read % 200)
            sp_journal_release(r->j, pos);
    }
    r->end = pos;
    if (!r->problem && r->read != r->total)
        r->problem = "timed out";
    sp_journal_cursor_free(c);
    return NULL;
}

static void run_concurrent(fixture_t *fx, bool release)
{
    sp_journal_t *j = open_journal(fx->dir, 64 * 1024);
    appender_t *a = calloc(THREADS, sizeof(*a));
    assert_non_null(a);
    pthread_t th[THREADS], rth;
    reader_t r = {.j = j, .total = THREADS * PER, .release = release};
    assert_int_equal(0, pthread_create(&rth, NULL, reader_main, &r));
    for (uint32_t t = 0; t < THREADS; t++) {
        a[t].j = j;
        a[t].id = t;
        assert_int_equal(0, pthread_create(&th[t], NULL, appender_main, &a[t]));
    }
    for (uint32_t t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    pthread_join(rth, NULL);

    int64_t max_end = 0;
    for (uint32_t t = 0; t < THREADS; t++) {
        assert_int_equal(0, a[t].failures);
        assert_int_equal(0, a[t].out_of_order);
        if (a[t].ends[PER - 1] > max_end)
            max_end = a[t].ends[PER - 1];
    }
    assert_int_equal(max_end, sp_journal_end(j));
    assert_int_equal(THREADS * PER, sp_journal_appended(j));
    if (r.problem)
        fail_msg("reader: %s after %d records (%s)", r.problem, r.read, r.err);
    assert_int_equal(THREADS * PER, r.read);
    assert_int_equal(max_end, r.end);

    /* Every end a thread was given is where a record ends: all distinct. */
    int64_t *all = calloc(THREADS * PER, sizeof(*all));
    assert_non_null(all);
    for (uint32_t t = 0; t < THREADS; t++)
        memcpy(all + t * PER, a[t].ends, sizeof(a[t].ends));
    qsort(all, THREADS * PER, sizeof(*all), cmp_i64);
    for (size_t i = 1; i < THREADS * PER; i++)
        assert_true(all[i] > all[i - 1]);

    if (!release) {
        /* A fresh cursor afterwards: exactly THREADS * PER records, each intact, each thread's
         * in its own order, ending where the threads were told. */
        uint32_t next[THREADS] = {0};
        sp_journal_cursor_t *c = cursor_at(j, 0);
        size_t i = 0;
        for (;; i++) {
            const void *payload;
            size_t len;
            int64_t end;
            char err[256] = "";
            int rc = sp_journal_next(c, &payload, &len, &end, err, sizeof(err));
            if (0 == rc)
                break;
            if (1 != rc)
                fail_msg("record %zu: %d (%s)", i, rc, err);
            assert_true(i < THREADS * PER);
            assert_int_equal(all[i], end);
            const char *problem = check_payload(payload, len, next);
            if (problem)
                fail_msg("record %zu: %s", i, problem);
        }
        assert_int_equal(THREADS * PER, i);
        for (uint32_t t = 0; t < THREADS; t++)
            assert_int_equal(PER, next[t]);
        sp_journal_cursor_free(c);
        assert_true(count_segments(fx->dir) > 5);
    } else {
        /* The reader released behind itself: little is left. */
        sp_journal_release(j, sp_journal_end(j));
        assert_int_equal(1, count_segments(fx->dir));
    }
    free(all);
    free(a);
    sp_journal_close(j);
}

static void test_concurrent_appends(void **state)
{
    run_concurrent(*state, false);
}

static void test_concurrent_appends_release(void **state)
{
    run_concurrent(*state, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_id_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_exact_fit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_many_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_older_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_new_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_active_allocated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_written_pages_released, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_after_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unallocatable_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_record_old_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_appends_release, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

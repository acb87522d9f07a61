/* test_journal: the open log: open, ID and lock, append and read, record sizes, rotation and
 * release, reopen, torn tails, the mapped active segment (allocation in steps, a killed
 * process, a faulting copy), checksums and damaged records, the first record format, the
 * spill (a full disk, an immutable segment, drops), waiting, sync (group commit), concurrent
 * appends. */
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
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"

/* A record's bytes around its payload: magic and length before it, the length again after. */
#define OVERHEAD 12
#define MAXREC   ((size_t)SP_JOURNAL_RECORD_MAX)
/* A segment's size when the options leave it at 0, and the step its blocks are allocated in. */
#define DEFAULT_SEGMENT ((int64_t)64 << 20)
#define GROW_STEP       ((int64_t)2 << 20)
/* The record formats' magics, as the journal writes them (little-endian "SPJ3") and wrote
 * them before ("SPJ2", "SPJ1"). */
#define MAGIC    0x334a5053u
#define MAGIC_V2 0x324a5053u
#define MAGIC_V1 0x314a5053u

/* ---- fixture: a fresh temp folder per test; the journal is DIR inside it ---------------- */

typedef struct fixture {
    char base[64];
    char dir[128];          /* base/journal: does not exist yet */
    char mnt[128];          /* a tmpfs mounted by the test, or "" */
    char immutable[4][256]; /* files the test made immutable, made mutable again at teardown */
    int n_immutable;
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

static int set_immutable(const char *path, bool on);

static int teardown(void **state)
{
    fixture_t *fx = *state;
    for (int i = 0; i < fx->n_immutable; i++)
        set_immutable(fx->immutable[i], false);
    if (fx->mnt[0])
        umount2(fx->mnt, MNT_DETACH);
    int rc = nftw(fx->base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return rc;
}

/* ---- helpers ------------------------------------------------------------------------- */

/* Sets or clears the immutable flag (chattr +i) of PATH: 0, or the errno (EOPNOTSUPP,
 * ENOTTY where the file system has no such flag, EPERM without the capability). */
static int set_immutable(const char *path, bool on)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0)
        return errno;
    int flags = 0, rc = 0;
    if (0 != ioctl(fd, FS_IOC_GETFLAGS, &flags))
        rc = errno;
    else {
        flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
        if (0 != ioctl(fd, FS_IOC_SETFLAGS, &flags))
            rc = errno;
    }
    close(fd);
    return rc;
}

/* Makes PATH immutable until the test ends; false (the caller skips) where it cannot be. */
static bool make_immutable(fixture_t *fx, const char *path)
{
    assert_true(fx->n_immutable < 4);
    int rc = set_immutable(path, true);
    if (rc) {
        print_message("skipped: cannot make %s immutable (%s)\n", path, strerror(rc));
        return false;
    }
    snprintf(fx->immutable[fx->n_immutable++], sizeof(fx->immutable[0]), "%s", path);
    return true;
}

/* Mounts a tmpfs of SIZE (mount(8)'s "4m") at base/mnt; false (the caller skips) where
 * mounting is not allowed. */
static bool mount_small(fixture_t *fx, const char *size)
{
    char mnt[128], opts[32];
    snprintf(mnt, sizeof(mnt), "%s/mnt", fx->base);
    snprintf(opts, sizeof(opts), "size=%s", size);
    assert_int_equal(0, mkdir(mnt, 0700));
    if (0 != mount("tmpfs", mnt, "tmpfs", 0, opts)) {
        print_message("skipped: cannot mount a tmpfs (%s): these tests run as root\n",
                      strerror(errno));
        return false;
    }
    snprintf(fx->mnt, sizeof(fx->mnt), "%s", mnt);
    return true;
}

/* Fills the file system holding DIR with DIR/filler, to its last byte. */
static void fill_disk(const char *dir)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/filler", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    static const char zeros[65536];
    for (size_t chunk = sizeof(zeros); chunk >= 1; chunk /= 16)
        while (write(fd, zeros, chunk) > 0)
            ;
    assert_int_equal(ENOSPC, errno);
    close(fd);
}

static void free_disk(const char *dir)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/filler", dir);
    assert_int_equal(0, unlink(path));
}

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

/* The bytes of disk the segment starting at START holds (its blocks, not its length). */
static int64_t allocated(const char *dir, int64_t start)
{
    char path[256];
    struct stat st;
    segment_path(dir, start, path, sizeof(path));
    if (0 != stat(path, &st))
        fail_msg("stat %s: %s", path, strerror(errno));
    return (int64_t)st.st_blocks * 512;
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

/* CRC32C bit by bit, as RFC 3720 (iSCSI) defines it: the reference the journal's is held to. */
static uint32_t ref_crc32c(uint32_t crc, const void *p, size_t n)
{
    const unsigned char *b = p;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= b[i];
        for (int k = 0; k < 8; k++)
            crc = (crc & 1) ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
    }
    return ~crc;
}

/* What the journal's format 3 XORs a record's checksum with: splitmix64's finalizer of the
 * record's position, its low 32 bits. */
static uint32_t ref_position_mix(int64_t pos)
{
    uint64_t z = (uint64_t)pos + 0x9e3779b97f4a7c15u;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return (uint32_t)(z ^ (z >> 31));
}

/* A record as the journal writes it at position POS (FORMAT 3: its checksum bound to the
 * position), or wrote it before (2: the checksum alone; 1: the length again), into OUT
 * (LEN + OVERHEAD bytes). */
static void make_record(unsigned char *out, int format, const void *payload, uint32_t len,
                        int64_t pos)
{
    uint32_t magic = 3 == format ? MAGIC : 2 == format ? MAGIC_V2 : MAGIC_V1;
    uint32_t trailer = 1 == format ? len : ref_crc32c(ref_crc32c(0, &len, 4), payload, len);
    if (3 == format)
        trailer ^= ref_position_mix(pos);
    memcpy(out, &magic, 4);
    memcpy(out + 4, &len, 4);
    memcpy(out + 8, payload, len);
    memcpy(out + 8 + len, &trailer, 4);
}

static sp_journal_t *open_spill(const char *dir, size_t segment_bytes, size_t spill_max)
{
    char err[512] = "";
    sp_journal_options_t opt = {.dir = dir, .segment_bytes = segment_bytes, .spill_max = spill_max};
    sp_journal_t *j = sp_journal_open(&opt, err, sizeof(err));
    if (!j)
        fail_msg("sp_journal_open(%s): %s", dir, err);
    return j;
}

static sp_journal_stats_t stats_of(sp_journal_t *j)
{
    sp_journal_stats_t st;
    sp_journal_stats(j, &st);
    return st;
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
    /* The active segment is as long as a segment while it is open, but only its first step
     * is allocated (see test_active_allocated, test_grown_in_steps). */
    assert_int_equal(DEFAULT_SEGMENT, segment_size(fx->dir, 0));
    assert_true(allocated(fx->dir, 0) >= GROW_STEP && allocated(fx->dir, 0) < 2 * GROW_STEP);

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
    c->name = "a whole record whose payload was damaged after its checksum was made";
    {
        unsigned char rec[10 + OVERHEAD];
        make_record(rec, 2, "0123456789", 10, 0);
        rec[8 + 4] ^= 0x10;
        put(c, rec, sizeof(rec));
    }
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
        assert_int_equal(MAGIC, magic);
        unsigned char rec[5 + OVERHEAD], payload[5];
        fill(payload, 5, 555);
        make_record(rec, 3, payload, 5, m->end[m->n - 1]);
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

/* Runs APPENDS on a journal in DIR (8 KiB segments) in a child killed (SIGKILL) right after
 * it, with no close: the model of what it appended, in memory shared with the child (munmap
 * it). */
static model_t *killed_after(const char *dir,
                             void (*appends)(sp_journal_t *j, model_t *m, const char *dir))
{
    model_t *m = mmap(NULL, sizeof(*m), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(MAP_FAILED != m);
    memset(m, 0, sizeof(*m));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (0 == pid) {
        appends(open_journal(dir, 8192), m, dir);
        kill(getpid(), SIGKILL);
        _exit(3);
    }
    int status = 0;
    assert_int_equal(pid, waitpid(pid, &status, 0));
    assert_true(WIFSIGNALED(status) && SIGKILL == WTERMSIG(status));
    return m;
}

static void forty_appends(sp_journal_t *j, model_t *m, const char *dir)
{
    for (uint32_t i = 0; i < 40; i++)
        append_rec(j, m, 500 + i, 100 + 7 * i); /* several segments */
}

/* A process killed after its appends (no close: the file is still as long as a segment,
 * zeros after the records) leaves every record it appended, and the next open goes on
 * after the last. */
static void test_killed_after_appends(void **state)
{
    fixture_t *fx = *state;
    model_t *m = killed_after(fx->dir, forty_appends);
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

/* Appends COUNT records of varied sizes (seeds from SEED0), releasing behind them up to the
 * eighth record from the end, as the writer does once the store has them. */
static void append_releasing(sp_journal_t *j, model_t *m, uint32_t seed0, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++) {
        append_rec(j, m, seed0 + i, 60 + (i * 37) % 300);
        if (m->n > 8)
            sp_journal_release(j, m->pos[m->n - 8]);
    }
}

/* How many spares (released segments kept to be written over) DIR holds. */
static size_t spares_in(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += 22 == strlen(e->d_name) && 0 == strcmp(e->d_name + 16, ".spare");
    closedir(d);
    return n;
}

/* Opens the journal in DIR with what it logs to stderr into LOG (LEN bytes). */
static sp_journal_t *open_logged(const char *dir, size_t segment_bytes, char *log, size_t len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s.log", dir);
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    sp_journal_t *j = open_journal(dir, segment_bytes);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(fd, log, len - 1, 0);
    log[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return j;
}

/* A released segment's file becomes the next segment's (the spare): every rotation of a
 * journal whose writer keeps up takes one over, the files on disk stay those not yet
 * released and the spare, and the earlier records left in them are never read as the new
 * segment's, while the journal is open or after it was closed. */
static void test_recycled_segments(void **state)
{
    fixture_t *fx = *state;
    sp_journal_t *j = open_journal(fx->dir, 8192);
    model_t *m = model_new();
    append_releasing(j, m, 0, 1500);
    /* Until the active segment is young: most of an earlier one's bytes then lie past it. */
    while (m->end[m->n - 1] - segment_of(fx->dir, m->end[m->n - 1]) > 2048)
        append_releasing(j, m, 5000 + (uint32_t)m->n, 1);
    uint64_t recycled = stats_of(j).recycled;
    /* The first rotations have nothing released yet to take over. */
    if (recycled + 2 < (uint64_t)(m->end[m->n - 1] / 8192) || recycled < 30)
        fail_msg("%" PRIu64 " segments recycled of about %" PRId64, recycled,
                 m->end[m->n - 1] / 8192);
    if (count_segments(fx->dir) > 3 || spares_in(fx->dir) > 4)
        fail_msg("%zu segments and %zu spares on disk", count_segments(fx->dir),
                 spares_in(fx->dir));
    check_from(j, m, m->n - 8);

    /* The active segment was a spare: an earlier segment's records lie past the new ones. */
    int64_t seg = segment_of(fx->dir, m->end[m->n - 1]), end = m->end[m->n - 1] - seg;
    unsigned char past[512];
    char path[256];
    segment_path(fx->dir, seg, path, sizeof(path));
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal((ssize_t)sizeof(past), pread(fd, past, sizeof(past), end));
    close(fd);
    static const unsigned char zeros[4];
    assert_memory_equal(zeros, past, 4); /* where the records end */
    assert_non_null(memmem(past, sizeof(past), "SPJ3", 4));

    /* A backlog released at once (the store caught up after a burst): the newest four kept,
     * the rest deleted, and the next four rotations take them. */
    int64_t before = m->end[m->n - 1];
    while (m->end[m->n - 1] < before + 6 * 8192)
        append_rec(j, m, 7000 + (uint32_t)m->n, 200);
    sp_journal_release(j, m->pos[m->n - 1]);
    assert_int_equal(4, spares_in(fx->dir));
    assert_int_equal(1, count_segments(fx->dir));
    recycled = stats_of(j).recycled;
    int64_t burst = m->end[m->n - 1];
    while (m->end[m->n - 1] < burst + 4 * 8192 - 300)
        append_rec(j, m, 8000 + (uint32_t)m->n, 200);
    assert_int_equal(recycled + 4, stats_of(j).recycled);
    assert_int_equal(0, spares_in(fx->dir));
    append_releasing(j, m, 9000, 60);
    check_from(j, m, m->n - 8);
    seg = segment_of(fx->dir, m->end[m->n - 1]);
    end = m->end[m->n - 1] - seg;

    sp_journal_close(j);
    assert_int_equal(0, spares_in(fx->dir));
    assert_int_equal(end, segment_size(fx->dir, seg)); /* cut back to its records */
    j = open_journal(fx->dir, 8192);
    assert_int_equal(m->end[m->n - 1], sp_journal_end(j));
    check_from(j, m, m->n - 8);
    assert_int_equal(0, stats_of(j).damaged);
    sp_journal_close(j);
    free(m);
}

static void recycling_appends(sp_journal_t *j, model_t *m, const char *dir)
{
    append_releasing(j, m, 900, 300);
    for (uint32_t i = 0; i < 100 && !spares_in(dir); i++)
        append_releasing(j, m, 2000 + i, 1); /* until the next spare is made */
}

/* Killed while the active segment is a recycled one: on the next open its records end where
 * they ended, and the earlier segment's records behind them are neither read as its own nor
 * taken for damage or a record cut short (nothing is logged); a spare left behind is deleted.
 * A record cut short there still is. */
static void test_killed_recycled(void **state)
{
    fixture_t *fx = *state;
    model_t *m = killed_after(fx->dir, recycling_appends);
    int64_t seg = segment_of(fx->dir, m->end[m->n - 1]), end = m->end[m->n - 1] - seg;
    assert_int_equal(8192, segment_size(fx->dir, seg)); /* never cut back */
    char path[256];
    segment_path(fx->dir, seg, path, sizeof(path));
    unsigned char past[512];
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal((ssize_t)sizeof(past), pread(fd, past, sizeof(past), end));
    close(fd);
    assert_non_null(memmem(past, sizeof(past), "SPJ3", 4)); /* an earlier segment's records */
    assert_true(spares_in(fx->dir) > 0);

    char log[4096];
    sp_journal_t *j = open_logged(fx->dir, 8192, log, sizeof(log));
    if (log[0])
        fail_msg("logged on open: %s", log);
    assert_int_equal(0, spares_in(fx->dir));
    assert_int_equal(m->end[m->n - 1], sp_journal_end(j));
    assert_int_equal(0, stats_of(j).damaged);
    check_from(j, m, m->n - 8);
    /* Appends go on where the records ended. */
    append_rec(j, m, 1, 10);
    check_from(j, m, m->n - 9);
    sp_journal_close(j);

    /* Half a record (its header, a few payload bytes) written over the end: cut short. */
    m->n--;
    fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char rec[100 + OVERHEAD], payload[100];
    fill(payload, sizeof(payload), 7);
    make_record(rec, 3, payload, sizeof(payload), m->end[m->n - 1]);
    assert_int_equal(0, ftruncate(fd, 8192));
    assert_int_equal(20, pwrite(fd, rec, 20, end));
    close(fd);
    j = open_logged(fx->dir, 8192, log, sizeof(log));
    if (!strstr(log, "cut short"))
        fail_msg("the torn record was not logged: %s", log);
    assert_int_equal(m->end[m->n - 1], sp_journal_end(j));
    check_from(j, m, m->n - 8);
    sp_journal_close(j);
    munmap(m, sizeof(*m));
}

/* Killed right after a rotation renamed a spare to the new segment's name, before its first
 * record: the segment opens with no records (the spare's first one was zeroed when it was
 * kept), nothing is logged, and appends go on in it. Its first record, still bound to its old
 * position, would read as a record cut short. */
static void test_killed_at_rotation(void **state)
{
    fixture_t *fx = *state;
    model_t *m = killed_after(fx->dir, recycling_appends);
    int64_t end = m->end[m->n - 1];
    char spare[300] = "", path[256];
    DIR *d = opendir(fx->dir);
    assert_non_null(d);
    for (struct dirent *e; !spare[0] && (e = readdir(d));)
        if (22 == strlen(e->d_name) && 0 == strcmp(e->d_name + 16, ".spare"))
            snprintf(spare, sizeof(spare), "%s/%s", fx->dir, e->d_name);
    closedir(d);
    assert_true(spare[0]);
    segment_path(fx->dir, end, path, sizeof(path));
    assert_int_equal(0, rename(spare, path)); /* as take_spare does */
    unsigned char head[512];
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal((ssize_t)sizeof(head), pread(fd, head, sizeof(head), 0));
    close(fd);
    assert_memory_equal("\0\0\0\0", head, 4);
    assert_non_null(memmem(head + 4, sizeof(head) - 4, "SPJ3", 4)); /* its old records */

    char log[4096];
    sp_journal_t *j = open_logged(fx->dir, 8192, log, sizeof(log));
    if (log[0])
        fail_msg("logged on open: %s", log);
    assert_int_equal(0, spares_in(fx->dir));
    assert_int_equal(end, sp_journal_end(j));
    assert_int_equal(0, stats_of(j).damaged);
    check_from(j, m, m->n - 8);
    append_rec(j, m, 1, 10);
    fd = open(path, O_RDONLY); /* the record is the renamed file's first */
    assert_true(fd >= 0);
    assert_int_equal(4, pread(fd, head, 4, 0));
    close(fd);
    assert_memory_equal("SPJ3", head, 4);
    check_from(j, m, m->n - 9);
    sp_journal_close(j);
    munmap(m, sizeof(*m));
}

static void wait_drained(sp_journal_t *j);

/* The disk full: the spares are deleted the first time it refuses a record, and the room
 * they gave back takes the held records at once, the filler still there. */
static void test_spares_given_back(void **state)
{
    fixture_t *fx = *state;
    if (!mount_small(fx, "64m"))
        skip();
    char dir[192];
    snprintf(dir, sizeof(dir), "%s/journal", fx->mnt);
    const int64_t segment = 8 << 20; /* its blocks allocated 2 MiB at a time */
    sp_journal_t *j = open_spill(dir, (size_t)segment, 1 << 20);
    static unsigned char buf[4000];
    int64_t last = 0;
    while (sp_journal_end(j) < 3 * segment + 100000) { /* a backlog, released at once */
        last = sp_journal_end(j);
        assert_true(sp_journal_append(j, buf, sizeof(buf), NULL) > last);
    }
    sp_journal_release(j, last);
    assert_int_equal(3, spares_in(dir));
    assert_int_equal(1, count_segments(dir));

    fill_disk(fx->mnt);
    model_t *m = model_new();
    for (uint32_t i = 0; 0 == stats_of(j).spilled; i++) { /* to the end of the step allocated */
        assert_true(i < 1000);
        fill(buf, sizeof(buf), 100 + i);
        int64_t before = sp_journal_accepted_end(j);
        int64_t end = sp_journal_append(j, buf, sizeof(buf), NULL);
        assert_int_equal(before + (int64_t)(sizeof(buf) + OVERHEAD), end);
        m->seed[m->n] = 100 + i;
        m->len[m->n] = sizeof(buf);
        m->pos[m->n] = before;
        m->end[m->n++] = end;
    }
    /* That record was refused and held: the spares are gone, and it goes into their room. */
    assert_int_equal(0, spares_in(dir));
    wait_drained(j);
    sp_journal_stats_t st = stats_of(j);
    assert_int_equal(0, st.held);
    assert_int_equal(0, st.dropped);
    for (uint32_t k = 0; k < 20; k++)
        append_rec(j, m, 5000 + k, sizeof(buf));
    assert_int_equal(1, stats_of(j).spilled);
    check_from(j, m, 0);
    sp_journal_close(j);
    free_disk(fx->mnt);
    free(m);
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

/* ---- checksums, damaged records, the first format ------------------------------------------- */

/* The checksum is CRC32C (RFC 3720) of the length field and the payload, as the reference
 * computes it, and the magic says so. */
static void test_checksum_format(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(0xe3069283u, ref_crc32c(0, "123456789", 9)); /* the standard check value */
    sp_journal_t *j = open_journal(fx->dir, 0);
    model_t *m = model_new();
    static const size_t lens[] = {0, 1, 7, 8, 9, 63, 700, 4093, 70000};
    for (uint32_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        append_rec(j, m, i, lens[i]);
    sp_journal_close(j);
    char path[256];
    segment_path(fx->dir, 0, path, sizeof(path));
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    for (size_t i = 0; i < m->n; i++) {
        unsigned char *rec = malloc(m->len[i] + OVERHEAD), *want = malloc(m->len[i] + OVERHEAD);
        unsigned char *payload = malloc(m->len[i] + 1);
        assert_non_null(rec);
        assert_non_null(want);
        assert_non_null(payload);
        assert_int_equal(m->len[i] + OVERHEAD, pread(fd, rec, m->len[i] + OVERHEAD, m->pos[i]));
        fill(payload, m->len[i], m->seed[i]);
        make_record(want, 3, payload, (uint32_t)m->len[i], m->pos[i]);
        if (0 != memcmp(rec, want, m->len[i] + OVERHEAD))
            fail_msg("record %zu (%zu bytes) is not as the format says", i, m->len[i]);
        free(rec);
        free(want);
        free(payload);
    }
    close(fd);
    free(m);
}

/* Reads C to its end: record I of M for every I in WANT, in order, then nothing. */
static void expect_only(sp_journal_cursor_t *c, const model_t *m, const size_t *want, size_t n)
{
    for (size_t k = 0; k < n; k++)
        expect_record(c, m, want[k]);
    expect_none(c);
}

/* Each kind of damage inside the journal: the record is skipped, counted, and reading goes
 * on at the next one, before and after a reopen (damage with whole records after it is not
 * a torn end). */
static void test_damaged_record(void **state)
{
    fixture_t *fx = *state;
    sp_journal_t *j = open_journal(fx->dir, 0);
    model_t *m = model_new();
    for (uint32_t i = 0; i < 20; i++)
        append_rec(j, m, i, 50);

    uint32_t bad;
    poke(fx->dir, 0, m->pos[2], "XXXX", 4); /* a magic overwritten */
    unsigned char byte = 0;
    {
        char path[256];
        segment_path(fx->dir, 0, path, sizeof(path));
        int fd = open(path, O_RDWR);
        assert_true(fd >= 0);
        assert_int_equal(1, pread(fd, &byte, 1, m->pos[5] + 8 + 20));
        byte ^= 0x01; /* one bit of a payload: the first format could not see this */
        assert_int_equal(1, pwrite(fd, &byte, 1, m->pos[5] + 8 + 20));
        close(fd);
    }
    bad = 0x12345678;
    poke(fx->dir, 0, m->end[8] - 4, &bad, 4); /* a checksum */
    bad = UINT32_MAX;
    poke(fx->dir, 0, m->pos[11] + 4, &bad, 4); /* a length over the maximum */
    bad = 5000;
    poke(fx->dir, 0, m->pos[14] + 4, &bad, 4); /* a length past the journal's end */
    bad = 51;
    poke(fx->dir, 0, m->pos[17] + 4, &bad, 4); /* a length one more than the payload */
    static const size_t left[] = {0, 1, 3, 4, 6, 7, 9, 10, 12, 13, 15, 16, 18, 19};
    size_t n_left = sizeof(left) / sizeof(left[0]);

    sp_journal_cursor_t *c = cursor_at(j, 0);
    expect_only(c, m, left, n_left);
    sp_journal_cursor_free(c);
    assert_int_equal(6, stats_of(j).damaged);
    /* A cursor placed on a damaged record reads from the next one. */
    c = cursor_at(j, m->pos[5]);
    expect_only(c, m, left + 4, n_left - 4);
    sp_journal_cursor_free(c);

    /* Appends go on and read back. */
    append_rec(j, m, 77, 10);
    c = cursor_at(j, m->pos[m->n - 1]);
    expect_record(c, m, m->n - 1);
    expect_none(c);
    sp_journal_cursor_free(c);
    sp_journal_close(j);

    /* Reopened: nothing after the damage was cut as a torn end. */
    j = open_journal(fx->dir, 0);
    assert_int_equal(m->end[m->n - 1], sp_journal_end(j));
    c = cursor_at(j, 0);
    size_t again[sizeof(left) / sizeof(left[0]) + 1];
    memcpy(again, left, sizeof(left));
    again[n_left] = m->n - 1;
    expect_only(c, m, again, n_left + 1);
    sp_journal_cursor_free(c);
    sp_journal_close(j);
    free(m);
}

/* The last segment's records, a hole, and past the hole a whole record (a copy of the third,
 * which carries no position of its own): opened, the journal ends after the copy and reads it,
 * the hole a damaged stretch skipped. The scan skips holes (SEEK_DATA) rather than reading their
 * zeros: this is what it must not skip. And a hole with nothing after it but zeros is no record:
 * the journal ends after the last record and appends follow it. */
static void test_record_past_hole(void **state)
{
    fixture_t *fx = *state;
    sp_journal_t *j = open_journal(fx->dir, 0);
    model_t *m = model_new();
    for (uint32_t i = 0; i < 5; i++)
        append_rec(j, m, i, 100 + i);
    sp_journal_close(j);

    char path[256];
    segment_path(fx->dir, 0, path, sizeof(path));
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    size_t n = (size_t)(m->end[2] - m->pos[2]);
    unsigned char copy[256], payload[256];
    assert_true(n <= sizeof(copy));
    assert_int_equal((ssize_t)n, pread(fd, copy, n, m->pos[2]));
    const int64_t far = 8 << 20; /* 8 MiB: a hole of nearly all of it between */
    /* Record 2 copied there as it is does not check: its checksum is bound to its position. */
    assert_int_equal((ssize_t)n, pwrite(fd, copy, n, far));
    close(fd);
    j = open_journal(fx->dir, 0);
    assert_int_equal(m->end[4], sp_journal_end(j));
    assert_int_equal(0, stats_of(j).damaged);
    check_from(j, m, 0);
    sp_journal_close(j); /* and cut back to its records */
    /* Written for that position, it is a record. */
    fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    fill(payload, m->len[2], m->seed[2]);
    make_record(copy, 3, payload, (uint32_t)m->len[2], far);
    assert_int_equal((ssize_t)n, pwrite(fd, copy, n, far));
    close(fd);
    assert_true(allocated(fx->dir, 0) < far / 2); /* a hole indeed */

    j = open_journal(fx->dir, 0);
    assert_int_equal(far + (int64_t)n, sp_journal_end(j));
    assert_int_equal(1, stats_of(j).damaged);
    m->seed[m->n] = m->seed[2];
    m->len[m->n] = m->len[2];
    m->pos[m->n] = far;
    m->end[m->n] = far + (int64_t)n;
    m->n++;
    check_from(j, m, 0);
    sp_journal_close(j);

    /* Only zeros past the records: cut back to them. */
    assert_int_equal(0, truncate(path, (off_t)m->end[4]));
    assert_int_equal(0, truncate(path, (off_t)far));
    m->n = 5;
    expect_recovered(fx->dir, 0, m, 0, m->end[4]);
    free(m);
}

/* A damaged record in a segment before the last survives a reopen (only the last segment is
 * scanned); the reader skips that record alone and reads on. */
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
    for (size_t i = 0; i < m->n; i++)
        if (i != k)
            expect_record(c, m, i);
    expect_none(c);
    sp_journal_cursor_free(c);
    assert_int_equal(1, stats_of(j).damaged);
    check_from(j, m, k + 1);
    sp_journal_close(j);
    free(m);
}

/* A journal written before records had checksums ("SPJ1": the length again at the end) is
 * read; appends after it are in the current format; damage in it is skipped the same. */
static void test_first_format(void **state)
{
    fixture_t *fx = *state;
    sp_journal_close(open_journal(fx->dir, 0)); /* the folder, its ID and an empty segment */
    char path[256];
    segment_path(fx->dir, 0, path, sizeof(path));
    assert_int_equal(0, truncate(path, 0));
    model_t *m = model_new();
    int64_t pos = 0;
    for (uint32_t i = 0; i < 6; i++) {
        unsigned char payload[300], rec[300 + OVERHEAD];
        size_t len = 100 + 30 * i;
        fill(payload, len, 900 + i);
        make_record(rec, 1, payload, (uint32_t)len, 0);
        append_bytes(fx->dir, 0, rec, len + OVERHEAD);
        m->seed[m->n] = 900 + i;
        m->len[m->n] = len;
        m->pos[m->n] = pos;
        pos += (int64_t)(len + OVERHEAD);
        m->end[m->n++] = pos;
    }
    uint32_t bad = 7;
    poke(fx->dir, 0, m->end[3] - 4, &bad, 4); /* record 3's trailer */

    sp_journal_t *j = open_journal(fx->dir, 0);
    assert_int_equal(pos, sp_journal_end(j));
    append_rec(j, m, 1, 40);
    append_rec(j, m, 2, 0);
    static const size_t want[] = {0, 1, 2, 4, 5, 6, 7};
    sp_journal_cursor_t *c = cursor_at(j, 0);
    expect_only(c, m, want, sizeof(want) / sizeof(want[0]));
    sp_journal_cursor_free(c);
    sp_journal_close(j);
    assert_int_equal(MAGIC_V1, read_magic(fx->dir, 0));
    j = open_journal(fx->dir, 0);
    assert_int_equal(m->end[m->n - 1], sp_journal_end(j));
    c = cursor_at(j, 0);
    expect_only(c, m, want, sizeof(want) / sizeof(want[0]));
    sp_journal_cursor_free(c);
    sp_journal_close(j);
    free(m);
}

/* ---- the spill: records the disk refuses ------------------------------------------------------
 */

/* Waits (at most 5 s) until J holds nothing in memory and writes again. */
static void wait_drained(sp_journal_t *j)
{
    for (int i = 0; i < 500; i++) {
        sp_journal_stats_t st = stats_of(j);
        if (0 == st.held && 0 == st.error)
            return;
        sleep_ms(10);
    }
    sp_journal_stats_t st = stats_of(j);
    fail_msg("still %llu records held, error %d", (unsigned long long)st.held, st.error);
}

/* A full disk: appends are held in memory at the positions they will have, in order, up to
 * the spill's size; past it they are refused and counted. Once space returns, the held
 * records are written by the journal's thread, in order, where they were promised. */
static void test_spill_full_disk(void **state)
{
    fixture_t *fx = *state;
    if (!mount_small(fx, "4m"))
        skip();
    char dir[192];
    snprintf(dir, sizeof(dir), "%s/journal", fx->mnt);
    const size_t len = 1000, spill = 50 * (len + OVERHEAD);
    sp_journal_t *j = open_spill(dir, 0, spill);
    model_t *m = model_new();
    append_rec(j, m, 1, len);
    sp_journal_close(j);
    /* Full before the reopen: not even the first step of the segment can be allocated. */
    fill_disk(fx->mnt);
    j = open_spill(dir, 0, spill);
    int64_t written = sp_journal_end(j);
    assert_int_equal(m->end[0], written);

    /* The page the segment's last record is in may still take a few (tmpfs allocates pages);
     * then records are held, 50 of them, and refused after that. */
    static unsigned char buf[1000];
    int64_t pos = written;
    uint32_t refused = 0;
    for (uint32_t i = 0; refused < 10; i++) {
        assert_true(i < 200);
        fill(buf, len, 100 + i);
        errno = 0;
        int64_t end = sp_journal_append(j, buf, len, NULL);
        if (end < 0) {
            assert_int_equal(ENOSPC, errno);
            assert_int_equal(50, stats_of(j).held); /* refused only once the spill is full */
            refused++;
            continue;
        }
        assert_int_equal(0, refused); /* nothing accepted after the first refusal */
        if (end != pos + (int64_t)(len + OVERHEAD))
            fail_msg("append %u returned %" PRId64 " (errno %d)", i, end, errno);
        m->seed[m->n] = 100 + i;
        m->len[m->n] = len;
        m->pos[m->n] = pos;
        m->end[m->n++] = end;
        pos = end;
    }
    written = sp_journal_end(j);
    assert_int_equal(m->pos[m->n - 50], written); /* readers see none of the held ones yet */
    sp_journal_stats_t st = stats_of(j);
    assert_int_equal(ENOSPC, st.error);
    assert_true(st.error_since > 0);
    assert_int_equal(50, st.held);
    assert_int_equal(spill, st.held_bytes);
    assert_int_equal(spill, st.held_max);
    assert_int_equal(10, st.dropped);
    assert_int_equal(pos, sp_journal_accepted_end(j));
    sp_journal_cursor_t *c = cursor_at(j, written);
    expect_none(c);

    free_disk(fx->mnt);
    wait_drained(j);
    assert_int_equal(pos, sp_journal_end(j));
    for (size_t i = m->n - 50; i < m->n; i++)
        expect_record(c, m, i);
    expect_none(c);
    sp_journal_cursor_free(c);
    /* Writing again: appends go straight to the disk. */
    append_rec(j, m, 7, 10);
    assert_int_equal(0, stats_of(j).held);
    st = stats_of(j);
    assert_int_equal(50, st.spilled);
    assert_int_equal(10, st.dropped);
    check_from(j, m, 0);
    sp_journal_close(j);
    j = open_spill(dir, 0, spill);
    check_from(j, m, 0);
    sp_journal_close(j);
    free(m);
}

typedef struct spill_appender {
    sp_journal_t *j;
    uint32_t thread;
    int64_t ends[1000];
    int failures;
} spill_appender_t;

static void *spill_appender_main(void *arg)
{
    spill_appender_t *a = arg;
    unsigned char buf[200];
    for (uint32_t i = 0; i < 1000; i++) {
        uint32_t tag[2] = {a->thread, i};
        fill(buf, sizeof(buf), a->thread * 1000 + i);
        memcpy(buf, tag, sizeof(tag));
        if ((a->ends[i] = sp_journal_append(a->j, buf, sizeof(buf), NULL)) < 0)
            a->failures++;
        if (0 == i % 100)
            sleep_ms(5);
    }
    return NULL;
}

/* Four threads append while the disk fills and frees again: every append gets a position,
 * and every record is read back where it was promised, each thread's in its own order. */
static void test_spill_concurrent(void **state)
{
    fixture_t *fx = *state;
    if (!mount_small(fx, "4m"))
        skip();
    char dir[192];
    snprintf(dir, sizeof(dir), "%s/journal", fx->mnt);
    sp_journal_t *j = open_spill(dir, 16384, 8 << 20);
    fill_disk(fx->mnt);
    spill_appender_t *a = calloc(4, sizeof(*a));
    assert_non_null(a);
    pthread_t th[4];
    for (uint32_t t = 0; t < 4; t++) {
        a[t].j = j;
        a[t].thread = t;
        assert_int_equal(0, pthread_create(&th[t], NULL, spill_appender_main, &a[t]));
    }
    sleep_ms(30);
    assert_true(stats_of(j).held > 0);
    free_disk(fx->mnt);
    for (uint32_t t = 0; t < 4; t++)
        pthread_join(th[t], NULL);
    wait_drained(j);
    int64_t *pos_of[4];
    for (uint32_t t = 0; t < 4; t++) {
        assert_int_equal(0, a[t].failures);
        pos_of[t] = a[t].ends;
    }
    sp_journal_cursor_t *c = cursor_at(j, 0);
    uint32_t next[4] = {0};
    size_t n = 0;
    for (;;) {
        const void *payload;
        size_t len;
        int64_t end;
        char err[256] = "";
        int rc = sp_journal_next(c, &payload, &len, &end, err, sizeof(err));
        if (0 == rc)
            break;
        assert_int_equal(1, rc);
        uint32_t tag[2];
        assert_int_equal(200, len);
        memcpy(tag, payload, sizeof(tag));
        assert_true(tag[0] < 4);
        if (tag[1] != next[tag[0]])
            fail_msg("thread %u: record %u where %u was due", tag[0], tag[1], next[tag[0]]);
        if (end != pos_of[tag[0]][tag[1]])
            fail_msg("thread %u record %u: at %" PRId64 ", promised %" PRId64, tag[0], tag[1], end,
                     pos_of[tag[0]][tag[1]]);
        next[tag[0]]++;
        n++;
    }
    assert_int_equal(4000, n);
    assert_true(stats_of(j).spilled > 0);
    sp_journal_cursor_free(c);
    sp_journal_close(j);
    free(a);
}

/* With sync, a record held in memory is answered at once (on the appending thread): no
 * durable record can be promised, and the answer must not wait for a disk that may not
 * come back. */
static void test_spill_sync(void **state)
{
    fixture_t *fx = *state;
    if (!mount_small(fx, "4m"))
        skip();
    char dir[192];
    snprintf(dir, sizeof(dir), "%s/journal", fx->mnt);
    sync_log_t *log = calloc(1, sizeof(*log));
    assert_non_null(log);
    pthread_mutex_init(&log->lock, NULL);
    log->main = pthread_self();
    sp_journal_close(open_journal(dir, 0));
    fill_disk(fx->mnt);
    char err[512] = "";
    sp_journal_options_t opt = {
        .dir = dir, .sync = true, .synced = on_synced, .synced_ctx = log, .spill_max = 1 << 20};
    sp_journal_t *j = sp_journal_open(&opt, err, sizeof(err));
    if (!j)
        fail_msg("%s", err);
    assert_true(sp_journal_append(j, "held", 4, &tokens[0]) > 0);
    assert_int_equal(1, atomic_load(&log->count));
    assert_int_equal(1, atomic_load(&log->on_main));
    assert_int_equal(1, stats_of(j).held);
    free_disk(fx->mnt);
    wait_drained(j);
    /* Written again: the next waiter is told by the syncer, once on disk. */
    assert_true(sp_journal_append(j, "disk", 4, &tokens[1]) > 0);
    wait_count(log, 2);
    assert_int_equal(1, atomic_load(&log->on_main));
    assert_int_equal(1, log->seen[1]);
    sp_journal_close(j);
    pthread_mutex_destroy(&log->lock);
    free(log);
}

/* The active segment made immutable under the journal (chattr +i): the copy that meets it
 * faults, the write is refused (EPERM), the record is held, and the journal's thread goes on
 * in a new segment. Nothing is lost and the order holds. */
static void test_spill_immutable_segment(void **state)
{
    fixture_t *fx = *state;
    sp_journal_t *j = open_spill(fx->dir, 0, 1 << 20);
    model_t *m = model_new();
    for (uint32_t i = 0; i < 3; i++)
        append_rec(j, m, i, 100);
    char path[256];
    segment_path(fx->dir, 0, path, sizeof(path));
    if (!make_immutable(fx, path)) {
        sp_journal_close(j);
        free(m);
        skip();
    }
    static unsigned char buf[1000];
    int64_t pos = m->end[m->n - 1];
    for (uint32_t i = 0; i < 20; i++) { /* past the pages already written */
        fill(buf, sizeof(buf), 50 + i);
        int64_t end = sp_journal_append(j, buf, sizeof(buf), NULL);
        assert_int_equal(pos + (int64_t)(sizeof(buf) + OVERHEAD), end);
        m->seed[m->n] = 50 + i;
        m->len[m->n] = sizeof(buf);
        m->pos[m->n] = pos;
        m->end[m->n++] = end;
        pos = end;
    }
    wait_drained(j);
    assert_true(stats_of(j).spilled > 0);
    assert_int_equal(2, count_segments(fx->dir));
    check_from(j, m, 0);
    sp_journal_close(j);

    /* Reopened with the immutable segment last: read, left as it is, and a new one started. */
    int64_t starts[4];
    assert_int_equal(2, list_segments(fx->dir, starts, 4));
    segment_path(fx->dir, starts[1], path, sizeof(path));
    assert_true(make_immutable(fx, path));
    j = open_spill(fx->dir, 0, 1 << 20);
    assert_int_equal(pos, sp_journal_end(j));
    assert_int_equal(0, stats_of(j).error);
    append_rec(j, m, 99, 10);
    assert_int_equal(3, count_segments(fx->dir));
    check_from(j, m, 0);
    sp_journal_close(j);
    free(m);
}

/* Segments are allocated a step at a time as records reach them, not whole at once; the file
 * is as long as a segment from the start, its tail a hole that takes no room. */
static void test_grown_in_steps(void **state)
{
    fixture_t *fx = *state;
    sp_journal_t *j = open_journal(fx->dir, 0);
    assert_int_equal(DEFAULT_SEGMENT, segment_size(fx->dir, 0));
    assert_true(allocated(fx->dir, 0) >= GROW_STEP);
    assert_true(allocated(fx->dir, 0) < 2 * GROW_STEP);
    model_t *m = model_new();
    for (uint32_t i = 0; i < 600; i++) /* 2.4 MB */
        append_rec(j, m, i, 4000);
    assert_true(allocated(fx->dir, 0) >= 2 * GROW_STEP);
    assert_true(allocated(fx->dir, 0) < 3 * GROW_STEP);
    check_from(j, m, 0);
    sp_journal_close(j);
    assert_int_equal(m->end[m->n - 1], segment_size(fx->dir, 0));
    assert_true(allocated(fx->dir, 0) < 3 * GROW_STEP);
    free(m);
}

/* The store a journal is indexed into is recorded beside it. */
static void test_store_binding(void **state)
{
    fixture_t *fx = *state;
    sp_journal_t *j = open_journal(fx->dir, 0);
    assert_string_equal("", sp_journal_store_id(j));
    char err[256] = "";
    assert_int_equal(-1, sp_journal_bind(j, "not/an id", err, sizeof(err)));
    assert_int_equal(-1, sp_journal_bind(j, "", err, sizeof(err)));
    assert_int_equal(0, sp_journal_bind(j, "0123abcdEF", err, sizeof(err)));
    assert_string_equal("0123abcdEF", sp_journal_store_id(j));
    sp_journal_close(j);
    j = open_journal(fx->dir, 0);
    assert_string_equal("0123abcdEF", sp_journal_store_id(j));
    sp_journal_close(j);
    char path[256];
    snprintf(path, sizeof(path), "%s/store", fx->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("garbage!\n", f);
    fclose(f);
    sp_journal_options_t opt = {.dir = fx->dir};
    err[0] = '\0';
    assert_null(sp_journal_open(&opt, err, sizeof(err)));
    assert_non_null(strstr(err, "store ID"));
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
        cmocka_unit_test_setup_teardown(test_recycled_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_recycled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_at_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spares_given_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unallocatable_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grown_in_steps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checksum_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_past_hole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_record_old_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_binding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spill_full_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spill_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spill_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spill_immutable_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_appends_release, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

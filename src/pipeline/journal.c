/* journal: the open log. Request threads append each recorded request to it before they
 * answer; the writer indexes it into the store behind them. */
/* SPDX-License-Identifier: MIT */
#include "journal.h"
#include "event.h" /* sp_deadline, sp_now_ms */
#include "log.h"
#include "sigbus.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* The record formats, read as little-endian u32 (the machine's order, as the lengths). "SPJ3":
 * the trailer is the CRC32C of the length and payload, XORed with position_mix of the record's
 * position; "SPJ2": that CRC32C alone; "SPJ1": the length again. */
#define MAGIC         0x334a5053u
#define MAGIC_V2      0x324a5053u
#define MAGIC_V1      0x314a5053u
#define HEADER_BYTES  8 /* magic, length */
#define TRAILER_BYTES 4 /* a record cut short or damaged does not end in its checksum */
/* Zeros written after each record of a recycled segment, where the next one will start: its
 * records end there, although an earlier segment's bytes follow (see recycled segments). */
#define END_MARK_BYTES 4
/* Released segments kept to be written over (recycled segments): a burst of this many
 * segments' records (256 MiB by default) goes into pages already in memory. */
#define SPARES_MAX      4
#define SEGMENT_DEFAULT ((size_t)64 << 20)
#define READ_CHUNK      ((size_t)1 << 20)
#define RELEASE_CHUNK   ((size_t)1 << 20) /* written pages leave the mapping by this much */
/* The active segment's blocks are allocated this much at a time, as records reach them: a
 * whole segment at once took 64 MiB of a disk that the store (and anything else on it)
 * may need, and could not be had at all on a disk with less free. */
#define GROW_STEP ((size_t)2 << 20)
/* Held records are written back this many at a time under the lock, so that appends wait
 * for one batch at most; a retry waits this long at first, twice as long each time after,
 * up to the most. */
#define DRAIN_BATCH    256
#define RETRY_FIRST_MS 50
#define RETRY_MOST_MS  1000

typedef struct waiter {
    int64_t end;
    void *waiter;
} waiter_t;

/* A record the disk refused, as it is to be written, waiting in memory (the spill). */
typedef struct held {
    struct held *next;
    size_t total;
    unsigned char bytes[]; /* header, payload, trailer */
} held_t;

struct sp_journal {
    sp_journal_options_t opt;
    char dir[PATH_MAX - 32];
    char id[SP_JOURNAL_ID_LEN + 1];
    char store_id[65];
    int lock_fd, dir_fd;

    pthread_mutex_t lock; /* appends, the segment list, the waiters, the spill */
    pthread_cond_t readable, sync_wake, spill_wake;
    int fd;             /* the active (last) segment, opened for appending; -1 when none is */
    int64_t seg_start;  /* its first position */
    unsigned char *map; /* the active segment mapped (see map_active), or NULL */
    size_t map_len;
    size_t map_released; /* the pages of the mapping before this are no longer ours */
    size_t alloc;        /* its blocks are allocated (or written) up to here: copies go below */
    int64_t end;         /* past the last complete record written */
    int64_t *segs;       /* starts of the segments held, ascending; the last is active */
    size_t n_segs, cap_segs;
    /* Segments from here on were started by this process, in the current format only: a
     * released one may become a spare, whose file a rotation takes over (see recycled
     * segments). */
    int64_t own_from;
    int64_t spares[SPARES_MAX]; /* the first positions they had, oldest first */
    size_t n_spares;
    size_t spares_coming; /* being made by sp_journal_release */
    bool active_recycled; /* the active segment's file was a spare: see write_record */
    uint64_t recycled;
    int readers_waiting;
    bool wake_readers;             /* set by sp_journal_wake: waits end at once from then on */
    atomic_int_fast64_t published; /* = end, read without the lock */
    atomic_int_fast64_t accepted;  /* = end + held_bytes, read without the lock */
    atomic_uint_fast64_t appended;
    atomic_uint_fast64_t damaged;

    /* Records the disk refused, oldest first, and why it did (0: it takes them). */
    held_t *held_head, *held_tail;
    size_t held_bytes, held;
    int write_error;
    int64_t error_since;
    uint64_t spilled, dropped;
    uint64_t spilled_then, dropped_then; /* the counts when the disk began refusing records */
    pthread_t spiller;
    bool spiller_started, closing;

    /* With sync. */
    pthread_t syncer;
    bool syncer_started;
    waiter_t *waiters, *spare;
    size_t n_waiters, cap_waiters, cap_spare;
};

/* Reads one segment's file through a buffer. */
typedef struct reader {
    int fd;
    int64_t base; /* the segment's first position: a record's position is BASE + its offset */
    unsigned char *buf;
    size_t cap, len; /* buf holds LEN bytes of the file from offset AT */
    int64_t at;
} reader_t;

struct sp_journal_cursor {
    sp_journal_t *j;
    int64_t pos;
    int64_t seg_start; /* the first position of the segment in r, whose fd is -1 when none */
    int64_t seg_next;  /* the start of the segment after it, -1 when it was the last */
    reader_t r;
};

static void segment_path(const sp_journal_t *j, int64_t start, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%016" PRIx64 ".jnl", j->dir, (uint64_t)start);
}

/* A spare is named by the position its segment started at, with another suffix: not a
 * segment for list_segments. */
static void spare_path(const sp_journal_t *j, int64_t was, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%016" PRIx64 ".spare", j->dir, (uint64_t)was);
}

static int fail(char *err, size_t errlen, const char *what, const char *path)
{
    snprintf(err, errlen, "journal: %s %s: %s", what, path, strerror(errno));
    return -1;
}

static void push_segment(sp_journal_t *j, int64_t start)
{
    if (j->n_segs == j->cap_segs) {
        j->cap_segs = j->cap_segs ? 2 * j->cap_segs : 16;
        j->segs = realloc(j->segs, j->cap_segs * sizeof(*j->segs));
        if (!j->segs)
            abort();
    }
    j->segs[j->n_segs++] = start;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The segments on disk, ascending. Names that are not ours are left alone. */
static int list_segments(sp_journal_t *j, char *err, size_t errlen)
{
    DIR *d = opendir(j->dir);
    if (!d)
        return fail(err, errlen, "cannot read", j->dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        if (22 == strlen(e->d_name) && 0 == strcmp(e->d_name + 16, ".spare") &&
            16 == strspn(e->d_name, "0123456789abcdef")) {
            unlinkat(dirfd(d), e->d_name, 0); /* a spare left by a crash: see recycled segments */
            continue;
        }
        if (20 != strlen(e->d_name) || 0 != strcmp(e->d_name + 16, ".jnl"))
            continue;
        errno = 0;
        unsigned long long v = strtoull(e->d_name, &end, 16);
        if (errno || end != e->d_name + 16 || v > INT64_MAX)
            continue;
        push_segment(j, (int64_t)v);
    }
    closedir(d);
    if (j->n_segs > 1)
        qsort(j->segs, j->n_segs, sizeof(*j->segs), cmp_i64);
    return 0;
}

/* The journal's ID, made once from random bytes and kept in DIR/id. */
static int load_id(sp_journal_t *j, char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/id", j->dir);
    FILE *f = fopen(path, "r");
    if (f) {
        bool ok = fgets(j->id, sizeof(j->id), f) && SP_JOURNAL_ID_LEN == strlen(j->id) &&
                  SP_JOURNAL_ID_LEN == strspn(j->id, "0123456789abcdef");
        fclose(f);
        if (ok)
            return 0;
        snprintf(err, errlen, "journal: %s does not hold a journal ID", path);
        return -1;
    }
    unsigned char raw[SP_JOURNAL_ID_LEN / 2];
    if (sizeof(raw) != getrandom(raw, sizeof(raw), 0))
        return fail(err, errlen, "no random bytes for", path);
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(j->id + 2 * i, 3, "%02x", raw[i]);
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s/id.tmp", j->dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        return fail(err, errlen, "cannot create", tmp);
    }
    bool ok = fprintf(f, "%s\n", j->id) > 0 && 0 == fflush(f) && 0 == fsync(fileno(f));
    if (0 != fclose(f) || !ok || 0 != rename(tmp, path))
        return fail(err, errlen, "cannot write", path);
    fsync(j->dir_fd);
    return 0;
}

/* Reads a u32 in the file's (the machine's) byte order. */
static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* ---- CRC32C (Castagnoli), as iSCSI (RFC 3720), ext4 and btrfs use it --------------------- */

static uint32_t crc_table[256];
static bool crc_hw;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc_table[i] = c;
    }
#if defined(__x86_64__)
    crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__)
/* SSE 4.2's crc32 instruction computes this very polynomial, 8 bytes a cycle or so: the
 * checksum of a 700-byte record costs tens of nanoseconds. */
__attribute__((target("sse4.2"))) static uint32_t crc_update_hw(uint32_t c, const unsigned char *p,
                                                                size_t n)
{
    uint64_t c64 = c;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = __builtin_ia32_crc32di(c64, v);
    }
    c = (uint32_t)c64;
    for (; n; p++, n--)
        c = __builtin_ia32_crc32qi(c, *p);
    return c;
}
#endif

/* Continues CRC (0 to start) over N bytes at P. */
static uint32_t crc32c(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&crc_once, crc_init);
    uint32_t c = ~crc;
    const unsigned char *b = p;
#if defined(__x86_64__)
    if (crc_hw)
        return ~crc_update_hw(c, b, n);
#endif
    for (; n; b++, n--)
        c = crc_table[(c ^ *b) & 0xff] ^ (c >> 8);
    return ~c;
}

/* The checksum of a record's length field and payload ("SPJ2" records end in it as it is). */
static uint32_t record_crc(uint32_t len, const void *payload)
{
    return crc32c(crc32c(0, &len, sizeof(len)), payload, len);
}

/* What a current record's checksum is XORed with: its position, mixed (splitmix64's
 * finalizer) so that two positions agree on all 32 bits about once in 2^32. Positions never
 * repeat, so a record read at another position than its own (an earlier segment's, in a
 * recycled segment's file: see recycled segments) does not check, and is not taken for one of this
 * segment's. */
static uint32_t position_mix(int64_t pos)
{
    uint64_t z = (uint64_t)pos + 0x9e3779b97f4a7c15u;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return (uint32_t)(z ^ (z >> 31));
}

/* ---- reading a segment's file ------------------------------------------------------ */

static void reader_init(reader_t *r)
{
    r->fd = -1;
    r->base = 0;
    r->cap = READ_CHUNK;
    r->len = 0;
    r->at = 0;
    r->buf = malloc(r->cap);
    if (!r->buf)
        abort();
}

static void reader_free(reader_t *r)
{
    free(r->buf);
    r->buf = NULL;
}

/* Makes the buffer hold NEED bytes from file offset OFF, reading ahead at most to LIMIT
 * (more when NEED asks for it). Returns them, with *HAVE the bytes held from OFF (fewer
 * than NEED at the end of the file), or NULL on a read error. */
static const unsigned char *reader_get(reader_t *r, int64_t off, size_t need, int64_t limit,
                                       size_t *have)
{
    int64_t from = off - r->at;
    if (r->len > 0 && from >= 0 && (size_t)from + need <= r->len) {
        *have = r->len - (size_t)from;
        return r->buf + from;
    }
    if (need > r->cap) {
        free(r->buf);
        r->cap = need;
        r->buf = malloc(r->cap);
        if (!r->buf)
            abort();
    }
    size_t want = r->cap;
    if (limit > off && (int64_t)want > limit - off)
        want = (size_t)(limit - off);
    if (want < need)
        want = need;
    ssize_t n;
    do
        n = pread(r->fd, r->buf, want, off);
    while (n < 0 && EINTR == errno);
    r->at = off;
    r->len = n > 0 ? (size_t)n : 0;
    if (n < 0)
        return NULL;
    *have = r->len;
    return r->buf;
}

enum { REC_ERROR = -1, REC_NONE = 0, REC_OK = 1 };

/* Whether a whole, undamaged record of any format starts at file offset OFF and ends by
 * LIMIT (a current one written at this position): REC_OK with its payload (valid until the
 * reader's next read) and length, REC_NONE when not, REC_ERROR on a read error. */
static int record_at(reader_t *r, int64_t off, int64_t limit, const unsigned char **payload,
                     uint32_t *len)
{
    /* Nothing is read past LIMIT: what lies there may still be written, and the buffer
     * would keep what it held before. */
    if (limit - off < HEADER_BYTES + TRAILER_BYTES)
        return REC_NONE;
    size_t have;
    const unsigned char *p = reader_get(r, off, HEADER_BYTES, limit, &have);
    if (!p)
        return REC_ERROR;
    if (have < HEADER_BYTES)
        return REC_NONE;
    uint32_t magic = get_u32(p), rlen = get_u32(p + 4);
    size_t total = HEADER_BYTES + (size_t)rlen + TRAILER_BYTES;
    if ((MAGIC != magic && MAGIC_V2 != magic && MAGIC_V1 != magic) ||
        rlen > SP_JOURNAL_RECORD_MAX || off + (int64_t)total > limit)
        return REC_NONE;
    if (!(p = reader_get(r, off, total, limit, &have)))
        return REC_ERROR;
    if (have < total)
        return REC_NONE;
    uint32_t trailer = get_u32(p + HEADER_BYTES + rlen), want = rlen;
    if (MAGIC_V1 != magic)
        want =
            record_crc(rlen, p + HEADER_BYTES) ^ (MAGIC == magic ? position_mix(r->base + off) : 0);
    if (trailer != want)
        return REC_NONE;
    *payload = p + HEADER_BYTES;
    *len = rlen;
    return REC_OK;
}

/* The first offset from OFF on, at most LIMIT, where R's file may hold anything but zeros: past
 * a hole (SEEK_DATA), which reads as zeros and holds no record. The last segment is allocated
 * ahead of its records and left a hole past that (GROW_STEP): after a crash, reading the hole
 * to its end to make sure no record lay past a damaged stretch took 130 ms of a restart for a
 * 64 MiB segment, the kernel zero-filling each page as it was read. LIMIT when the file holds
 * only zeros from OFF on; OFF itself when the file system cannot tell. */
static int64_t data_from(const reader_t *r, int64_t off, int64_t limit)
{
    off_t data = lseek(r->fd, (off_t)off, SEEK_DATA);
    if (data < 0)
        return ENXIO == errno ? limit : off;
    return data < limit ? (int64_t)data : limit;
}

/* The first offset in [FROM, LIMIT) where a whole record starts, -1 when there is none,
 * or -2 on a read error. A damaged stretch is skipped up to it: only a record whose
 * checksum (or, in the first format, repeated length) holds counts, so what is found is a
 * real record, not bytes that look like one, nor a record of the segment a recycled file
 * held before. */
static int64_t resync(reader_t *r, int64_t from, int64_t limit)
{
    for (int64_t off = from; off + HEADER_BYTES + TRAILER_BYTES <= limit;) {
        /* A hole holds no record, nor the end of a magic begun before it. */
        if ((off = data_from(r, off, limit)) + HEADER_BYTES + TRAILER_BYTES > limit)
            break;
        size_t have;
        const unsigned char *p = reader_get(r, off, HEADER_BYTES, limit, &have);
        if (!p)
            return -2;
        if (have < HEADER_BYTES)
            return -1;
        if ((int64_t)have > limit - off)
            have = (size_t)(limit - off);
        /* Both magics begin with "SPJ". */
        const unsigned char *hit = memmem(p, have, "SPJ", 3);
        if (!hit) {
            off += (int64_t)have - 2; /* a match may straddle the buffer's end */
            continue;
        }
        int64_t at = off + (hit - p);
        const unsigned char *payload;
        uint32_t len;
        int rc = record_at(r, at, limit, &payload, &len);
        if (REC_ERROR == rc)
            return -2;
        if (REC_OK == rc)
            return at;
        off = at + 1;
    }
    return -1;
}

/* True when the file from OFF on holds nothing but zeros (or nothing). */
static bool only_zeros(reader_t *r, int64_t off, int64_t limit)
{
    while ((off = data_from(r, off, limit)) < limit) {
        size_t have;
        const unsigned char *p = reader_get(r, off, 1, limit, &have);
        if (!p)
            return false;
        if (!have)
            return true;
        if ((int64_t)have > limit - off)
            have = (size_t)(limit - off);
        for (size_t i = 0; i < have; i++)
            if (p[i])
                return false;
        off += (int64_t)have;
    }
    return true;
}

/* Whether the records end cleanly at OFF: the zeros written after the last record are
 * there, or nothing but zeros follows. Anything else is a record cut short, or damage. */
static bool records_end_at(reader_t *r, int64_t off, int64_t limit)
{
    size_t have;
    const unsigned char *p =
        limit - off >= END_MARK_BYTES ? reader_get(r, off, END_MARK_BYTES, limit, &have) : NULL;
    if (p && have >= END_MARK_BYTES && 0 == get_u32(p))
        return true;
    return only_zeros(r, off, limit);
}

/* Where the records of the last segment (FD, SIZE bytes) end: after the last whole record
 * that no damage hides. A stretch that is not a record but has whole records after it was
 * damaged in place: it stays, and readers skip it. What follows the last whole record
 * (zeros where the segment was allocated ahead, or a record cut short by a crash) is not
 * part of the journal. -1 on a read error. */
static int64_t scan_segment(sp_journal_t *j, int fd, int64_t size)
{
    reader_t r;
    reader_init(&r);
    r.fd = fd;
    r.base = j->seg_start;
    int64_t off = 0, valid = 0;
    while (off < size) {
        const unsigned char *payload;
        uint32_t len;
        int rc = record_at(&r, off, size, &payload, &len);
        if (REC_ERROR == rc) {
            valid = -1;
            break;
        }
        if (REC_OK == rc) {
            off += HEADER_BYTES + (int64_t)len + TRAILER_BYTES;
            valid = off;
            continue;
        }
        int64_t next = resync(&r, off + 1, size);
        if (-2 == next) {
            valid = -1;
            break;
        }
        if (next < 0)
            break;
        atomic_fetch_add(&j->damaged, 1);
        sp_log_warn("damaged bytes in the journal's last segment; they are skipped",
                    "segment=%016" PRIx64 " offset=%" PRId64 " bytes=%" PRId64,
                    (uint64_t)j->seg_start, off, next - off);
        off = next;
    }
    if (valid >= 0 && valid < size && !records_end_at(&r, valid, size))
        sp_log_warn("the journal's last record was cut short (a crash while it was written, "
                    "before its answer) and is dropped",
                    "segment=%016" PRIx64 " offset=%" PRId64 " bytes=%" PRId64,
                    (uint64_t)j->seg_start, valid, size - valid);
    reader_free(&r);
    return valid;
}

static void *syncer_main(void *arg);

/* ---- the mapped active segment ----------------------------------------------------- */

/* An append copies its record into a shared mapping of the active segment: the bytes are
 * in the page cache as soon as the copy ends, as with pwrite(2), which a crash of the
 * process cannot take back either, and fdatasync(2) writes them out the same. A pwritev of
 * a 700-byte record cost 2.4 us on the bench machine, the copy 0.45 us.
 *
 * A copy goes only where the segment's blocks are allocated (fallocate(2), GROW_STEP at a
 * time as the records reach them; the rest of the segment is a hole), so the disk cannot
 * fill under it; the file's end is cut back to its records when the segment is rotated out
 * or closed. Where blocks cannot
 * be allocated (a nearly full disk, a file system without fallocate) or the segment cannot
 * be mapped, records go through pwritev, which takes a record as long as the disk has room
 * for it. Should a copy still fault (SIGBUS: an I/O error, the file cut short or made
 * immutable behind our back), the guard below takes the thread back out of it, and that
 * record and the rest of the segment go through pwritev. */

/* Set while this thread copies a record; volatile, or the compiler, seeing no reader, may
 * drop the store before the copy. */
static _Thread_local sigjmp_buf *volatile copy_guard;

static bool journal_fault(void *addr)
{
    if (copy_guard)
        siglongjmp(*copy_guard, 1);
    (void)addr;
    return false;
}

static void unmap_active(sp_journal_t *j)
{
    if (j->map)
        munmap(j->map, j->map_len);
    j->map = NULL;
    j->map_len = 0;
}

/* Allocates the active segment's blocks up to NEED, a step at a time, when the disk has
 * them; j->alloc says how far they are. */
static void grow(sp_journal_t *j, size_t need)
{
    size_t want = (need + GROW_STEP - 1) / GROW_STEP * GROW_STEP;
    if (want > j->opt.segment_bytes)
        want = j->opt.segment_bytes; /* NEED is never past it: see write_record */
    if (want > j->alloc && 0 == fallocate(j->fd, 0, (off_t)j->alloc, (off_t)(want - j->alloc)))
        j->alloc = want;
}

/* Maps the active segment, whose records end at j->end (and its file with them), and
 * allocates its first step. */
static void map_active(sp_journal_t *j)
{
    size_t used = (size_t)(j->end - j->seg_start);
    j->alloc = used;
    if (used >= j->opt.segment_bytes)
        return; /* a record larger than a segment fills it */
    /* The whole segment's addresses; only what is allocated is copied to. The file is made
     * as long as the segment at once, its tail a hole that takes no room: with its end just
     * past the allocated step, the kernel read the segment's pages in one at a time, a page
     * fault each (200,000 appends of 700 bytes: 34,800 faults and 350 ms of CPU, against
     * 7,600 and 120 ms with the segment allocated whole). */
    if (0 != ftruncate(j->fd, (off_t)j->opt.segment_bytes)) {
        /* Left as long as its records: the steps make it longer as they are allocated. */
    }
    void *m = mmap(NULL, j->opt.segment_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, j->fd, 0);
    if (MAP_FAILED == m)
        return;
    /* Watched with each mapping, not once: a handler someone installed since (a test
     * framework does, per test) would otherwise be the one to see the fault. */
    sp_sigbus_watch(journal_fault);
    j->map = m;
    j->map_len = j->opt.segment_bytes;
    j->map_released = 0;
    grow(j, used + 1);
}

/* Takes the pages of the mapping that are written in full out of the process: they stay
 * in the page cache, dirty until written back, but no longer count in the server's
 * resident memory (a whole segment would, 64 MiB), and writeback need not write-protect
 * them in our page tables first. */
static void release_written(sp_journal_t *j)
{
    static size_t page;
    if (!page)
        page = (size_t)sysconf(_SC_PAGESIZE);
    size_t upto = (size_t)(j->end - j->seg_start) / page * page;
    if (upto > j->map_len)
        upto = j->map_len;
    if (upto > j->map_released &&
        0 == madvise(j->map + j->map_released, upto - j->map_released, MADV_DONTNEED))
        j->map_released = upto;
}

/* Unmaps the active segment and cuts its file back to its records (the blocks allocated
 * past them are given back), before it is closed. */
static void trim_active(sp_journal_t *j)
{
    unmap_active(j);
    struct stat st;
    off_t used = (off_t)(j->end - j->seg_start);
    if (0 == fstat(j->fd, &st) && st.st_size > used && 0 != ftruncate(j->fd, used)) {
        /* Left long: the zeros after the records end the segment when it is read. */
    }
}

/* Copies the record in IOV to OFF of the mapping, and MARK zeros after it. False when the
 * copy faulted: the mapping is dropped, and the record is to be written with pwritev. */
static bool copy_record(sp_journal_t *j, const struct iovec *iov, int n, off_t off, size_t mark)
{
    sigjmp_buf jump;
    if (0 != sigsetjmp(jump, 0)) {
        copy_guard = NULL;
        sp_log_error("the journal's mapping faulted; appending with pwritev from here on",
                     "offset=%lld", (long long)off);
        unmap_active(j);
        return false;
    }
    copy_guard = &jump;
    unsigned char *p = j->map + off;
    /* The zeros first: a crash between the two leaves a record cut short, not one whose end
     * cannot be told from the bytes the file held before. */
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    memset(p + total, 0, mark);
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len) /* an empty payload may come as NULL, which memcpy may not get */
            memcpy(p, iov[i].iov_base, iov[i].iov_len);
        p += iov[i].iov_len;
    }
    copy_guard = NULL;
    return true;
}

/* Opens the segment starting at START for appending (creating it with CREATE): its fd, or
 * -1 + ERR, errno kept. */
static int open_segment(sp_journal_t *j, int64_t start, bool create, char *err, size_t errlen)
{
    char path[PATH_MAX];
    segment_path(j, start, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0), 0600);
    if (fd < 0) {
        int saved = errno;
        fail(err, errlen, "cannot open", path);
        errno = saved;
        return -1;
    }
    if (create && j->opt.sync)
        fsync(j->dir_fd); /* the new name survives a power loss too */
    return fd;
}

static bool store_id_valid(const char *id)
{
    size_t n = strlen(id);
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'z') ||
              (id[i] >= 'A' && id[i] <= 'Z')))
            return false;
    return n >= 1 && n <= 64;
}

/* The ID of the store this journal is indexed into, from DIR/store when it is there. */
static int load_store_id(sp_journal_t *j, char *err, size_t errlen)
{
    char path[PATH_MAX], line[80] = "";
    snprintf(path, sizeof(path), "%s/store", j->dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return ENOENT == errno ? 0 : fail(err, errlen, "cannot read", path);
    bool ok = fgets(line, sizeof(line), f);
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    if (!ok || !store_id_valid(line)) {
        snprintf(err, errlen, "journal: %s does not hold a store ID", path);
        return -1;
    }
    /* At most 64 characters (store_id_valid): the precision says so to the compiler. */
    snprintf(j->store_id, sizeof(j->store_id), "%.64s", line);
    return 0;
}

static void *spiller_main(void *arg);

/* ---- recycled segments ------------------------------------------------------------ */

/* A new segment's pages are new to the page cache: each is zeroed by the kernel when the
 * request thread's copy first touches it (the fault reads the allocated, unwritten blocks
 * as zeros), 3% of the request thread under keep-alive load, and writeback then converts
 * the blocks to written ones. A segment the store has taken in full is, soon after, still
 * in the page cache, its blocks written: sp_journal_release keeps up to SPARES_MAX of the
 * newest such segments' files as spares (DIR/POSITION.spare) instead of deleting them, and
 * a rotation renames the newest to the new segment's name and writes over it, as a
 * database recycles its log files. Its earlier records stay behind the new ones: each
 * current record's checksum is bound to its position (position_mix), which never repeats,
 * so none of them reads as the new segment's, and zeros after each record mark where the
 * new ones end. Only segments this process started, all in the current format, become
 * spares; none is kept when most of its pages have left the page cache (writing over them
 * would read them from disk first) or the disk has less than four segments free (a spare
 * holds a segment's blocks); spares left by a crash are deleted on open, and those left on
 * close. */

/* Whether the released segment open as FD is worth keeping as a spare: see above. */
static bool worth_recycling(const sp_journal_t *j, int fd)
{
    struct statvfs vfs;
    struct stat st;
    if (0 != fstatvfs(fd, &vfs) ||
        (uint64_t)vfs.f_bavail * vfs.f_frsize < 4 * (uint64_t)j->opt.segment_bytes ||
        0 != fstat(fd, &st) || st.st_size <= 0)
        return false;
    size_t len = (size_t)st.st_size, page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (len + page - 1) / page, resident = 0;
    void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (MAP_FAILED == m)
        return false;
    unsigned char *vec = malloc(pages);
    if (!vec)
        abort();
    if (0 == mincore(m, len, vec))
        for (size_t i = 0; i < pages; i++)
            resident += vec[i] & 1;
    free(vec);
    munmap(m, len);
    return resident * 4 >= pages * 3;
}

/* Makes the released segment that started at WAS a spare when it is worth it: true when it
 * did. Its first record is zeroed first, so that its file, renamed by a rotation and left
 * so by a crash before the first append, opens as a segment with no records: its first one
 * is bound to its old position and would otherwise read as a record cut short there. */
static bool keep_as_spare(sp_journal_t *j, int64_t was)
{
    char path[PATH_MAX], spare[PATH_MAX];
    segment_path(j, was, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return false;
    static const unsigned char end_mark[END_MARK_BYTES];
    bool worth = worth_recycling(j, fd) &&
                 (ssize_t)sizeof(end_mark) == pwrite(fd, end_mark, sizeof(end_mark), 0);
    close(fd);
    spare_path(j, was, spare, sizeof(spare));
    return worth && 0 == rename(path, spare);
}

/* Deletes the spares: at close, or when the disk refuses records (their blocks are given back
 * to it). Under the lock, or with no other thread left. */
static void drop_spares(sp_journal_t *j)
{
    for (size_t i = 0; i < j->n_spares; i++) {
        char spare[PATH_MAX];
        spare_path(j, j->spares[i], spare, sizeof(spare));
        unlink(spare);
    }
    j->n_spares = 0;
}

/* Renames the newest spare to the name of a segment starting at START, when there is one:
 * true when it did. Under the lock. */
static bool take_spare(sp_journal_t *j, int64_t start)
{
    if (!j->n_spares)
        return false;
    char spare[PATH_MAX], path[PATH_MAX];
    spare_path(j, j->spares[--j->n_spares], spare, sizeof(spare));
    segment_path(j, start, path, sizeof(path));
    if (0 == rename(spare, path))
        return true;
    unlink(spare);
    return false;
}

/* Starts a new active segment at the end, retiring the one before (if any): in the spare's
 * file when there is one. Under the lock. 0, or -1 with errno. */
static int rotate(sp_journal_t *j)
{
    /* With sync, the old segment is made durable now: the syncer only syncs the active one. */
    if (j->fd >= 0 && j->opt.sync && 0 != fdatasync(j->fd))
        return -1;
    char err[64];
    bool recycled = take_spare(j, j->end);
    int fd = open_segment(j, j->end, !recycled, err, sizeof(err));
    if (fd < 0 && recycled) {
        char path[PATH_MAX];
        segment_path(j, j->end, path, sizeof(path));
        unlink(path);
        recycled = false;
        fd = open_segment(j, j->end, true, err, sizeof(err));
    }
    if (fd < 0)
        return -1;
    if (recycled) {
        j->recycled++;
        if (j->opt.sync)
            fsync(j->dir_fd); /* the new name survives a power loss too */
    }
    if (j->fd >= 0) {
        trim_active(j);
        close(j->fd);
    }
    j->fd = fd;
    j->seg_start = j->end;
    j->active_recycled = recycled;
    if (j->own_from > j->seg_start)
        j->own_from = j->seg_start;
    map_active(j);
    push_segment(j, j->seg_start);
    return 0;
}

/* Opens the last segment of a journal that has some: cuts what follows its records and
 * maps it. One that cannot be written (immutable, read-only) is read, left as it is, and a
 * new segment started after its records; when none can be, the records are held in memory
 * until one can (see spiller_main). */
static int open_last_segment(sp_journal_t *j, char *err, size_t errlen)
{
    j->seg_start = j->segs[j->n_segs - 1];
    char path[PATH_MAX];
    segment_path(j, j->seg_start, path, sizeof(path));
    int fd = open_segment(j, j->seg_start, false, err, errlen);
    int refused = fd < 0 ? errno : 0;
    if (fd < 0 && (EACCES == refused || EPERM == refused || EROFS == refused))
        fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || 0 != fstat(fd, &st)) {
        fail(err, errlen, "cannot open", path);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int64_t valid = scan_segment(j, fd, (int64_t)st.st_size);
    if (valid < 0) {
        close(fd);
        return fail(err, errlen, "cannot read", path);
    }
    j->end = j->seg_start + valid;
    if (!refused) {
        if (st.st_size > valid && 0 != ftruncate(fd, valid)) {
            close(fd);
            return fail(err, errlen, "cannot cut the torn end of", path);
        }
        j->fd = fd;
        map_active(j);
        return 0;
    }
    close(fd);
    sp_log_warn("the journal's last segment cannot be written; a new one follows it",
                "segment=%016" PRIx64 " error=\"%s\"", (uint64_t)j->seg_start, strerror(refused));
    if (0 != rotate(j)) {
        j->write_error = errno ? errno : refused;
        j->error_since = sp_now_ms();
    }
    return 0;
}

sp_journal_t *sp_journal_open(const sp_journal_options_t *opt, char *err, size_t errlen)
{
    sp_journal_t *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->opt = *opt;
    if (!j->opt.segment_bytes)
        j->opt.segment_bytes = SEGMENT_DEFAULT;
    j->lock_fd = j->dir_fd = j->fd = -1;
    j->own_from = INT64_MAX;
    pthread_mutex_init(&j->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->readable, &ca);
    pthread_cond_init(&j->spill_wake, &ca);
    pthread_cond_init(&j->sync_wake, NULL);
    pthread_condattr_destroy(&ca);

    if (strlen(opt->dir) >= sizeof(j->dir)) {
        snprintf(err, errlen, "journal: folder name too long");
        goto fail;
    }
    snprintf(j->dir, sizeof(j->dir), "%s", opt->dir);
    if (0 == mkdir(j->dir, 0700) ? 0 != chmod(j->dir, 0700) : EEXIST != errno) {
        fail(err, errlen, "cannot create", j->dir);
        goto fail;
    }
    j->dir_fd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/lock", j->dir);
    j->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (j->dir_fd < 0 || j->lock_fd < 0) {
        fail(err, errlen, "cannot open", j->dir_fd < 0 ? j->dir : path);
        goto fail;
    }
    /* Two servers appending to one journal would each index the other's opens. */
    if (0 != flock(j->lock_fd, LOCK_EX | LOCK_NB)) {
        snprintf(err, errlen,
                 "journal: %s is in use by another spypixel (one server per data folder)", j->dir);
        goto fail;
    }
    if (0 != load_id(j, err, errlen) || 0 != load_store_id(j, err, errlen) ||
        0 != list_segments(j, err, errlen))
        goto fail;

    if (0 == j->n_segs) {
        push_segment(j, 0);
        if ((j->fd = open_segment(j, 0, true, err, errlen)) < 0)
            goto fail;
        j->own_from = 0;
        map_active(j);
    } else if (0 != open_last_segment(j, err, errlen)) {
        goto fail;
    }
    atomic_store(&j->published, j->end);
    atomic_store(&j->accepted, j->end);

    if (0 != pthread_create(&j->spiller, NULL, spiller_main, j)) {
        snprintf(err, errlen, "journal: cannot start its thread");
        goto fail;
    }
    j->spiller_started = true;
    if (j->opt.sync) {
        if (0 != pthread_create(&j->syncer, NULL, syncer_main, j)) {
            snprintf(err, errlen, "journal: cannot start the syncer thread");
            goto fail;
        }
        j->syncer_started = true;
    }
    return j;
fail:
    sp_journal_close(j);
    return NULL;
}

static size_t drain(sp_journal_t *j, int *error);

void sp_journal_close(sp_journal_t *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->lock);
    j->closing = true;
    pthread_cond_signal(&j->sync_wake);
    pthread_cond_broadcast(&j->spill_wake);
    pthread_mutex_unlock(&j->lock);
    if (j->spiller_started)
        pthread_join(j->spiller, NULL);
    if (j->syncer_started)
        pthread_join(j->syncer, NULL);
    /* A last try for the records held in memory; what the disk refuses now is lost. */
    pthread_mutex_lock(&j->lock);
    int error = 0;
    while (j->held_head && drain(j, &error) && !error)
        ;
    size_t lost = j->held;
    while (j->held_head) {
        held_t *h = j->held_head;
        j->held_head = h->next;
        free(h);
    }
    pthread_mutex_unlock(&j->lock);
    if (lost)
        sp_log_error("opens held in memory are lost: the journal could not be written before it "
                     "was closed",
                     "records=%zu error=\"%s\"", lost, strerror(error));
    if (j->fd >= 0) {
        trim_active(j);
        if (j->opt.sync)
            fdatasync(j->fd);
        close(j->fd);
    }
    drop_spares(j);
    if (j->lock_fd >= 0)
        close(j->lock_fd); /* and with it the lock */
    if (j->dir_fd >= 0)
        close(j->dir_fd);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->readable);
    pthread_cond_destroy(&j->sync_wake);
    pthread_cond_destroy(&j->spill_wake);
    free(j->segs);
    free(j->waiters);
    free(j->spare);
    free(j);
}

const char *sp_journal_id(const sp_journal_t *j)
{
    return j->id;
}

const char *sp_journal_store_id(const sp_journal_t *j)
{
    return j->store_id;
}

int sp_journal_bind(sp_journal_t *j, const char *store_id, char *err, size_t errlen)
{
    if (!store_id_valid(store_id)) {
        snprintf(err, errlen, "journal: not a store ID");
        return -1;
    }
    char path[PATH_MAX], tmp[PATH_MAX];
    snprintf(path, sizeof(path), "%s/store", j->dir);
    snprintf(tmp, sizeof(tmp), "%s/store.tmp", j->dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        return fail(err, errlen, "cannot create", tmp);
    }
    bool ok = fprintf(f, "%s\n", store_id) > 0 && 0 == fflush(f) && 0 == fsync(fileno(f));
    if (0 != fclose(f) || !ok || 0 != rename(tmp, path))
        return fail(err, errlen, "cannot write", path);
    fsync(j->dir_fd);
    pthread_mutex_lock(&j->lock);
    snprintf(j->store_id, sizeof(j->store_id), "%s", store_id);
    pthread_mutex_unlock(&j->lock);
    return 0;
}

/* ---- appending ------------------------------------------------------------------- */

/* IOV (N parts, at most 3) with its last 4 bytes, the checksum of its length and payload,
 * bound to the position POS (position_mix) in *TAIL, into OUT: how many parts. */
static int bind_position(const struct iovec *iov, int n, int64_t pos, struct iovec *out,
                         uint32_t *tail)
{
    memcpy(out, iov, (size_t)n * sizeof(*iov));
    struct iovec *last = &out[n - 1];
    last->iov_len -= TRAILER_BYTES;
    memcpy(tail, (const unsigned char *)last->iov_base + last->iov_len, TRAILER_BYTES);
    *tail ^= position_mix(pos);
    if (!last->iov_len)
        n--;
    out[n++] = (struct iovec){tail, TRAILER_BYTES};
    return n;
}

/* Writes one record at the end: RECORD (N parts), TOTAL bytes ending in the checksum of its
 * length and payload, which the position binds here (a held record is written later than it
 * was made, at a position not known before). Under the lock. 0, or the errno of the refusal
 * (nothing was written). */
static int write_record(sp_journal_t *j, const struct iovec *record, int n, size_t total)
{
    if (j->fd < 0)
        return j->write_error ? j->write_error : EBADF;
    if (j->end > j->seg_start && (size_t)(j->end - j->seg_start) + total > j->opt.segment_bytes)
        rotate(j); /* on failure the active segment just grows */
    size_t off = (size_t)(j->end - j->seg_start);
    struct iovec iov[5];
    uint32_t tail;
    n = bind_position(record, n, j->end, iov, &tail);
    /* In a recycled file an earlier segment's bytes follow the records: zeros after each
     * record say where they end (records_end_at). Other files read as zeros past them. */
    size_t mark = j->active_recycled && off + total + END_MARK_BYTES <= j->opt.segment_bytes
                      ? END_MARK_BYTES
                      : 0;
    if (j->map && off + total <= j->map_len) {
        if (off + total + mark > j->alloc)
            grow(j, off + total + mark);
        if (off + total + mark <= j->alloc && copy_record(j, iov, n, (off_t)off, mark))
            goto written;
    }
    static const uint32_t zeros;
    if (mark)
        iov[n++] = (struct iovec){(void *)&zeros, mark};
    ssize_t w = pwritev(j->fd, iov, n, (off_t)off);
    if (w != (ssize_t)(total + mark)) {
        int e = w < 0 ? errno : ENOSPC;
        /* A record written in part is cut off again; left (the file refusing that too), the
         * next record written overwrites it, or the next open drops it as torn. */
        if (w > 0 && 0 == ftruncate(j->fd, (off_t)off) && j->alloc > off)
            j->alloc = off;
        return e;
    }
    if (off + total > j->alloc)
        j->alloc = off + total;
written:
    j->end += (int64_t)total;
    if (j->map && (size_t)(j->end - j->seg_start) >= j->map_released + RELEASE_CHUNK)
        release_written(j);
    return 0;
}

/* Records written: readers see them. Under the lock. */
static void publish(sp_journal_t *j)
{
    atomic_store_explicit(&j->published, j->end, memory_order_release);
    atomic_store_explicit(&j->accepted, j->end + (int64_t)j->held_bytes, memory_order_release);
    if (j->readers_waiting)
        pthread_cond_broadcast(&j->readable);
}

/* The disk refused a record with errno E. Under the lock. */
static void refused(sp_journal_t *j, int e)
{
    if (ENOSPC == e || EDQUOT == e)
        drop_spares(j); /* the room they hold is the disk's again */
    if (!j->write_error) {
        j->error_since = sp_now_ms();
        j->spilled_then = j->spilled;
        j->dropped_then = j->dropped;
        pthread_cond_signal(&j->spill_wake);
    }
    j->write_error = e;
}

/* Keeps the record in IOV in memory, behind those held already. Under the lock. False when
 * the spill has no room for it (it is counted as dropped). */
static bool hold(sp_journal_t *j, const struct iovec *iov, int n, size_t total)
{
    if (j->held_bytes + total > j->opt.spill_max) {
        j->dropped++;
        return false;
    }
    held_t *h = malloc(sizeof(*h) + total);
    if (!h)
        abort();
    h->next = NULL;
    h->total = total;
    unsigned char *p = h->bytes;
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len)
            memcpy(p, iov[i].iov_base, iov[i].iov_len);
        p += iov[i].iov_len;
    }
    if (j->held_tail)
        j->held_tail->next = h;
    else
        j->held_head = h;
    j->held_tail = h;
    j->held_bytes += total;
    j->held++;
    j->spilled++;
    atomic_store_explicit(&j->accepted, j->end + (int64_t)j->held_bytes, memory_order_release);
    return true;
}

/* Writes held records, oldest first, at most DRAIN_BATCH of them. Under the lock. Returns
 * how many are still held; *ERROR gets the errno of a refusal. Once none is, the disk is
 * taken to accept records again. A file that refuses them for another reason than space
 * (made immutable or read-only, an I/O error) is left for a new segment. */
static size_t drain(sp_journal_t *j, int *error)
{
    *error = 0;
    if (j->fd < 0 && 0 != rotate(j)) {
        *error = errno ? errno : EBADF;
        return j->held;
    }
    size_t written = 0;
    while (j->held_head && written < DRAIN_BATCH) {
        held_t *h = j->held_head;
        struct iovec iov = {h->bytes, h->total};
        int e = write_record(j, &iov, 1, h->total);
        if (e && ENOSPC != e && EDQUOT != e && j->end > j->seg_start && 0 == rotate(j))
            e = write_record(j, &iov, 1, h->total);
        if (e) {
            *error = e;
            j->write_error = e;
            break;
        }
        j->held_head = h->next;
        if (!j->held_head)
            j->held_tail = NULL;
        j->held_bytes -= h->total;
        j->held--;
        free(h);
        written++;
    }
    if (written) {
        if (!j->held_head)
            j->write_error = 0;
        publish(j);
    }
    return j->held;
}

static void push_waiter(sp_journal_t *j, int64_t end, void *waiter)
{
    if (j->n_waiters == j->cap_waiters) {
        j->cap_waiters = j->cap_waiters ? 2 * j->cap_waiters : 256;
        j->waiters = realloc(j->waiters, j->cap_waiters * sizeof(*j->waiters));
        if (!j->waiters)
            abort();
    }
    j->waiters[j->n_waiters++] = (waiter_t){end, waiter};
    if (1 == j->n_waiters)
        pthread_cond_signal(&j->sync_wake);
}

int64_t sp_journal_append(sp_journal_t *j, const void *payload, size_t len, void *waiter)
{
    if (len > SP_JOURNAL_RECORD_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    /* The checksum is bound to the record's position when it is written (write_record). */
    uint32_t head[2] = {MAGIC, (uint32_t)len}, tail = record_crc((uint32_t)len, payload);
    struct iovec iov[3] = {
        {head, sizeof(head)},
        {(void *)payload, len},
        {&tail, sizeof(tail)},
    };
    size_t total = HEADER_BYTES + len + TRAILER_BYTES;

    pthread_mutex_lock(&j->lock);
    int64_t end;
    bool held = false;
    /* While records are held, this one queues behind them: the journal keeps the order of
     * the appends. */
    int e = j->held_head ? EAGAIN : write_record(j, iov, 3, total);
    if (0 == e) {
        j->write_error = 0;
        publish(j);
        end = j->end;
    } else {
        if (EAGAIN != e)
            refused(j, e);
        if (!hold(j, iov, 3, total)) {
            e = j->write_error;
            pthread_mutex_unlock(&j->lock);
            errno = e;
            return -1;
        }
        held = true;
        end = j->end + (int64_t)j->held_bytes;
    }
    atomic_fetch_add_explicit(&j->appended, 1, memory_order_relaxed);
    if (j->opt.sync && waiter && !held)
        push_waiter(j, end, waiter);
    pthread_mutex_unlock(&j->lock);
    if (j->opt.sync && waiter && held)
        j->opt.synced(j->opt.synced_ctx, waiter);
    return end;
}

size_t sp_journal_flush(sp_journal_t *j, int timeout_ms)
{
    int64_t deadline = sp_now_ms() + timeout_ms;
    int pause_ms = RETRY_FIRST_MS, error;
    pthread_mutex_lock(&j->lock);
    for (;;) {
        size_t left;
        while ((left = drain(j, &error)) && !error) {
            pthread_mutex_unlock(&j->lock); /* appends get in between batches */
            pthread_mutex_lock(&j->lock);
        }
        int64_t now = sp_now_ms();
        if (!left || now >= deadline)
            break;
        pthread_mutex_unlock(&j->lock);
        int ms = (int)(deadline - now < pause_ms ? deadline - now : pause_ms);
        struct timespec pause = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&pause, NULL);
        pause_ms = pause_ms * 2 > RETRY_MOST_MS ? RETRY_MOST_MS : pause_ms * 2;
        pthread_mutex_lock(&j->lock);
    }
    size_t left = j->held;
    pthread_mutex_unlock(&j->lock);
    return left;
}

/* The journal's own thread: while the disk refuses records, it writes the held ones back as
 * soon as it takes them again (retrying with back-off), and logs each change of state. */
static void *spiller_main(void *arg)
{
    sp_journal_t *j = arg;
    int pause_ms = RETRY_FIRST_MS;
    bool told = false; /* the refusal was logged */
    uint64_t spilled_then = 0, dropped_then = 0, dropped_told = 0;
    int64_t since = 0;
    /* The counts are those of the episode: from when the disk began refusing records. */
    pthread_mutex_lock(&j->lock);
    while (!j->closing) {
        if (!j->write_error) {
            if (told) {
                uint64_t written = j->spilled - spilled_then, dropped = j->dropped - dropped_then;
                int64_t ms = sp_now_ms() - since;
                pthread_mutex_unlock(&j->lock);
                sp_log_info("the journal takes records again; those held in memory are written",
                            "written=%llu dropped=%llu seconds=%.1f", (unsigned long long)written,
                            (unsigned long long)dropped, (double)ms / 1000);
                pthread_mutex_lock(&j->lock);
                told = false;
            }
            pause_ms = RETRY_FIRST_MS;
            while (!j->write_error && !j->closing)
                pthread_cond_wait(&j->spill_wake, &j->lock);
            continue;
        }
        if (!told) {
            int why = j->write_error;
            size_t held = j->held;
            spilled_then = j->spilled_then;
            dropped_then = dropped_told = j->dropped_then;
            since = j->error_since;
            pthread_mutex_unlock(&j->lock);
            sp_log_error("the journal cannot be written: opens are held in memory until it can",
                         "error=\"%s\" held=%zu spill_max_bytes=%zu", strerror(why), held,
                         j->opt.spill_max);
            told = true;
            pthread_mutex_lock(&j->lock);
        }
        int error;
        size_t left;
        while ((left = drain(j, &error)) && !error && !j->closing) {
            pthread_mutex_unlock(&j->lock); /* appends get in between batches */
            pthread_mutex_lock(&j->lock);
        }
        if (!j->write_error || j->closing)
            continue;
        if (j->dropped > dropped_told) {
            int why = j->write_error;
            size_t held = j->held, held_bytes = j->held_bytes;
            uint64_t dropped = j->dropped;
            pthread_mutex_unlock(&j->lock);
            sp_log_error("opens dropped: the journal cannot be written and its memory spill is "
                         "full",
                         "dropped=%llu dropped_total=%llu held=%zu held_bytes=%zu error=\"%s\"",
                         (unsigned long long)(dropped - dropped_told),
                         (unsigned long long)(dropped - dropped_then), held, held_bytes,
                         strerror(why));
            dropped_told = dropped;
            pthread_mutex_lock(&j->lock);
        }
        struct timespec deadline;
        sp_deadline(&deadline, pause_ms);
        if (!j->closing)
            pthread_cond_timedwait(&j->spill_wake, &j->lock, &deadline);
        pause_ms = pause_ms * 2 > RETRY_MOST_MS ? RETRY_MOST_MS : pause_ms * 2;
    }
    pthread_mutex_unlock(&j->lock);
    return NULL;
}

static void *syncer_main(void *arg)
{
    sp_journal_t *j = arg;
    pthread_mutex_lock(&j->lock);
    for (;;) {
        while (!j->n_waiters && !j->closing)
            pthread_cond_wait(&j->sync_wake, &j->lock);
        if (!j->n_waiters)
            break;
        /* Everyone who appended so far rides on this one sync. */
        waiter_t *batch = j->waiters;
        size_t n = j->n_waiters, cap = j->cap_waiters;
        j->waiters = j->spare;
        j->cap_waiters = j->cap_spare;
        j->n_waiters = 0;
        int fd = dup(j->fd); /* a rotation may close the original meanwhile */
        pthread_mutex_unlock(&j->lock);

        if ((fd < 0 || 0 != fdatasync(fd)) && !j->closing) {
            /* The bytes are in the page cache and no other copy can be made: retry until
             * the disk takes them, as a database would on its commit. */
            struct timespec pause = {0, 100000000L};
            nanosleep(&pause, NULL);
            if (fd >= 0)
                close(fd);
            pthread_mutex_lock(&j->lock);
            for (size_t i = 0; i < n; i++)
                push_waiter(j, batch[i].end, batch[i].waiter);
            j->spare = batch;
            j->cap_spare = cap;
            continue;
        }
        if (fd >= 0)
            close(fd);
        for (size_t i = 0; i < n; i++)
            j->opt.synced(j->opt.synced_ctx, batch[i].waiter);

        pthread_mutex_lock(&j->lock);
        j->spare = batch;
        j->cap_spare = cap;
    }
    pthread_mutex_unlock(&j->lock);
    return NULL;
}

int64_t sp_journal_start(sp_journal_t *j)
{
    pthread_mutex_lock(&j->lock);
    int64_t start = j->segs[0];
    pthread_mutex_unlock(&j->lock);
    return start;
}

int64_t sp_journal_end(sp_journal_t *j)
{
    return atomic_load_explicit(&j->published, memory_order_acquire);
}

int64_t sp_journal_accepted_end(sp_journal_t *j)
{
    return atomic_load_explicit(&j->accepted, memory_order_acquire);
}

void sp_journal_stats(sp_journal_t *j, sp_journal_stats_t *st)
{
    pthread_mutex_lock(&j->lock);
    st->error = j->write_error;
    st->error_since = j->write_error ? j->error_since : 0;
    st->held_bytes = j->held_bytes;
    st->held = j->held;
    st->held_max = j->opt.spill_max;
    st->spilled = j->spilled;
    st->dropped = j->dropped;
    st->recycled = j->recycled;
    pthread_mutex_unlock(&j->lock);
    st->damaged = atomic_load(&j->damaged);
}

uint64_t sp_journal_appended(sp_journal_t *j)
{
    return atomic_load_explicit(&j->appended, memory_order_relaxed);
}

bool sp_journal_wait(sp_journal_t *j, int64_t pos, int timeout_ms)
{
    if (sp_journal_end(j) > pos)
        return true;
    struct timespec deadline;
    sp_deadline(&deadline, timeout_ms);
    pthread_mutex_lock(&j->lock);
    j->readers_waiting++;
    while (j->end <= pos && !j->wake_readers)
        if (ETIMEDOUT == pthread_cond_timedwait(&j->readable, &j->lock, &deadline))
            break;
    j->readers_waiting--;
    bool more = j->end > pos;
    pthread_mutex_unlock(&j->lock);
    return more;
}

void sp_journal_wake(sp_journal_t *j)
{
    pthread_mutex_lock(&j->lock);
    j->wake_readers = true;
    pthread_cond_broadcast(&j->readable);
    pthread_mutex_unlock(&j->lock);
}

/* ---- reading --------------------------------------------------------------------- */

/* Opens the segment that holds POS for C, and learns where the next one starts. */
static int cursor_seek(sp_journal_cursor_t *c, int64_t pos, char *err, size_t errlen)
{
    sp_journal_t *j = c->j;
    pthread_mutex_lock(&j->lock);
    size_t i = j->n_segs;
    while (i > 0 && j->segs[i - 1] > pos)
        i--;
    int64_t start = i > 0 ? j->segs[i - 1] : -1;
    c->seg_next = i < j->n_segs ? j->segs[i] : -1;
    pthread_mutex_unlock(&j->lock);
    if (start < 0) {
        snprintf(err, errlen, "journal: position %" PRId64 " was released", pos);
        return -1;
    }
    if (c->r.fd >= 0 && c->seg_start == start)
        return 0;
    char path[PATH_MAX];
    segment_path(j, start, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(err, errlen, "cannot open", path);
    if (c->r.fd >= 0)
        close(c->r.fd);
    c->r.fd = fd;
    c->r.len = 0;
    c->r.base = start;
    c->seg_start = start;
    return 0;
}

sp_journal_cursor_t *sp_journal_cursor_new(sp_journal_t *j, int64_t pos, char *err, size_t errlen)
{
    if (pos < sp_journal_start(j) || pos > sp_journal_end(j)) {
        snprintf(err, errlen,
                 "journal: position %" PRId64 " is outside the journal [%" PRId64 ", %" PRId64 "]",
                 pos, sp_journal_start(j), sp_journal_end(j));
        return NULL;
    }
    sp_journal_cursor_t *c = calloc(1, sizeof(*c));
    if (!c)
        abort();
    c->j = j;
    c->pos = pos;
    reader_init(&c->r);
    if (0 != cursor_seek(c, pos, err, errlen)) {
        sp_journal_cursor_free(c);
        return NULL;
    }
    return c;
}

void sp_journal_cursor_free(sp_journal_cursor_t *c)
{
    if (!c)
        return;
    if (c->r.fd >= 0)
        close(c->r.fd);
    reader_free(&c->r);
    free(c);
}

int sp_journal_next(sp_journal_cursor_t *c, const void **payload, size_t *len, int64_t *end,
                    char *err, size_t errlen)
{
    sp_journal_t *j = c->j;
    int64_t limit = sp_journal_end(j);
    bool looked = false; /* the segment list was looked at for this position */
    for (;;) {
        if (c->pos >= limit)
            return 0;
        if (c->r.fd < 0 || (c->seg_next >= 0 && c->pos >= c->seg_next)) {
            if (0 != cursor_seek(c, c->pos, err, errlen))
                return -1;
            looked = true;
        }
        /* This segment's positions end where the next one starts, or at the journal's end. */
        int64_t seg_limit = c->seg_next >= 0 && c->seg_next < limit ? c->seg_next : limit;
        int64_t off = c->pos - c->seg_start, off_limit = seg_limit - c->seg_start;
        const unsigned char *p;
        uint32_t rlen;
        int rc = record_at(&c->r, off, off_limit, &p, &rlen);
        if (REC_ERROR == rc)
            return fail(err, errlen, "cannot read", j->dir);
        if (REC_OK == rc) {
            *payload = p;
            *len = rlen;
            c->pos += (int64_t)(HEADER_BYTES + rlen + TRAILER_BYTES);
            *end = c->pos;
            return 1;
        }
        if (!looked) {
            /* A new segment may have started here since (a rotation): look again. */
            int64_t was = c->seg_start;
            if (0 != cursor_seek(c, c->pos, err, errlen))
                return -1;
            looked = true;
            if (c->seg_start != was || (c->seg_next >= 0 && c->seg_next < seg_limit))
                continue;
        }
        /* No whole record here: the bytes were damaged, or, before the last segment, the
         * segment's end was lost (a power loss without --sync-full). Reading goes on at
         * the next whole record. */
        int64_t found = resync(&c->r, off + 1, off_limit);
        if (-2 == found)
            return fail(err, errlen, "cannot read", j->dir);
        int64_t skip_to = found >= 0 ? c->seg_start + found : seg_limit;
        if (found < 0 && seg_limit == c->seg_next && records_end_at(&c->r, off, off_limit))
            sp_log_warn("a journal segment ends early (its end was lost); reading goes on at "
                        "the next segment",
                        "position=%" PRId64 " next=%" PRId64, c->pos, c->seg_next);
        else
            sp_log_warn("damaged bytes in the journal are skipped; the opens they held are lost",
                        "position=%" PRId64 " bytes=%" PRId64, c->pos, skip_to - c->pos);
        atomic_fetch_add(&j->damaged, 1);
        c->pos = skip_to;
        looked = false;
    }
}

void sp_journal_release(sp_journal_t *j, int64_t pos)
{
    /* Unlinking a large file can take a while: not under the lock the appends take. */
    for (;;) {
        int64_t gone[64];
        size_t n = 0;
        pthread_mutex_lock(&j->lock);
        while (j->n_segs > 1 && j->segs[1] <= pos && n < sizeof(gone) / sizeof(gone[0])) {
            gone[n++] = j->segs[0];
            memmove(j->segs, j->segs + 1, (j->n_segs - 1) * sizeof(*j->segs));
            j->n_segs--;
        }
        /* The newest of them, the likeliest to be in the page cache, may become spares. */
        size_t spares_from = n;
        while (spares_from > 0 && gone[spares_from - 1] >= j->own_from &&
               j->n_spares + j->spares_coming + (n - spares_from) < SPARES_MAX)
            spares_from--;
        j->spares_coming += n - spares_from;
        pthread_mutex_unlock(&j->lock);
        for (size_t i = 0; i < n; i++) {
            if (i >= spares_from && keep_as_spare(j, gone[i])) {
                pthread_mutex_lock(&j->lock);
                j->spares[j->n_spares++] = gone[i];
                pthread_mutex_unlock(&j->lock);
                continue;
            }
            char path[PATH_MAX];
            segment_path(j, gone[i], path, sizeof(path));
            unlink(path);
        }
        pthread_mutex_lock(&j->lock);
        j->spares_coming -= n - spares_from;
        pthread_mutex_unlock(&j->lock);
        if (n < sizeof(gone) / sizeof(gone[0]))
            return;
    }
}

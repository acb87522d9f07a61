/* journal: the open log. Request threads append each recorded request to it before they
 * answer; the writer indexes it into the store behind them. */
/* SPDX-License-Identifier: MIT */
#include "journal.h"
#include "event.h" /* sp_deadline */
#include "log.h"

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
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAGIC           0x314a5053u /* "SPJ1" read as a little-endian u32 */
#define HEADER_BYTES    8           /* magic, length */
#define TRAILER_BYTES   4           /* length again: a record cut short does not end in it */
#define SEGMENT_DEFAULT ((size_t)64 << 20)
#define READ_CHUNK      ((size_t)1 << 20)
#define RELEASE_CHUNK   ((size_t)1 << 20) /* written pages leave the mapping by this much */

typedef struct waiter {
    int64_t end;
    void *waiter;
} waiter_t;

struct sp_journal {
    sp_journal_options_t opt;
    char dir[PATH_MAX - 32];
    char id[SP_JOURNAL_ID_LEN + 1];
    int lock_fd, dir_fd;

    pthread_mutex_t lock; /* appends, the segment list, the waiters */
    pthread_cond_t readable, sync_wake;
    int fd;             /* the active (last) segment, opened for appending */
    int64_t seg_start;  /* its first position */
    unsigned char *map; /* the active segment mapped (see map_active), or NULL */
    size_t map_len;
    size_t map_released; /* the pages of the mapping before this are no longer ours */
    int64_t end;         /* past the last complete record */
    int64_t *segs;       /* starts of the segments held, ascending; the last is active */
    size_t n_segs, cap_segs;
    int readers_waiting;
    bool wake_readers;             /* set by sp_journal_wake: waits end at once from then on */
    atomic_int_fast64_t published; /* = end, read without the lock */
    atomic_uint_fast64_t appended;

    /* With sync. */
    pthread_t syncer;
    bool syncer_started, closing;
    waiter_t *waiters, *spare;
    size_t n_waiters, cap_waiters, cap_spare;
};

struct sp_journal_cursor {
    sp_journal_t *j;
    int64_t pos;
    int fd;            /* the segment holding pos, or -1 */
    int64_t seg_start; /* its first position */
    unsigned char *buf;
    size_t cap, len; /* buf holds LEN bytes from position BUF_POS */
    int64_t buf_pos;
};

static void segment_path(const sp_journal_t *j, int64_t start, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%016" PRIx64 ".jnl", j->dir, (uint64_t)start);
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
    f = fopen(tmp, "w");
    if (!f)
        return fail(err, errlen, "cannot create", tmp);
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

/* Finds where the complete records of segment FD end: a record cut short by a crash, or
 * zeros after a power loss, ends the scan there. */
static int64_t valid_length(int fd)
{
    int64_t off = 0;
    for (;;) {
        unsigned char head[HEADER_BYTES];
        if (HEADER_BYTES != pread(fd, head, HEADER_BYTES, off) || MAGIC != get_u32(head))
            break;
        uint32_t len = get_u32(head + 4);
        if (len > SP_JOURNAL_RECORD_MAX)
            break;
        unsigned char tail[TRAILER_BYTES];
        if (TRAILER_BYTES != pread(fd, tail, TRAILER_BYTES, off + HEADER_BYTES + len) ||
            len != get_u32(tail))
            break;
        off += HEADER_BYTES + len + TRAILER_BYTES;
    }
    return off;
}

static void *syncer_main(void *arg);

/* ---- the mapped active segment ----------------------------------------------------- */

/* An append copies its record into a shared mapping of the active segment: the bytes are
 * in the page cache as soon as the copy ends, as with pwrite(2), which a crash of the
 * process cannot take back either, and fdatasync(2) writes them out the same. A pwritev of
 * a 700-byte record cost 2.4 us on the bench machine, the copy 0.45 us.
 *
 * The segment's blocks are allocated first (fallocate(2)), so the disk cannot fill under a
 * copy; the file is as long as a segment from then on, and its end is cut back to its
 * records when the segment is rotated out or closed. A segment that cannot be allocated or
 * mapped (a full disk, a file system without fallocate) is appended to with pwritev, as is
 * a record that does not fit in what is mapped. Should a copy still fault (SIGBUS: an I/O
 * error, the file cut short behind our back), the guard below takes the thread back out
 * of it, and that record and the rest of the segment go through pwritev. */

/* Set while this thread copies a record; volatile, or the compiler, seeing no reader, may
 * drop the store before the copy. */
static _Thread_local sigjmp_buf *volatile copy_guard;
static struct sigaction sigbus_before;

static void on_sigbus(int sig, siginfo_t *info, void *uctx)
{
    if (copy_guard)
        siglongjmp(*copy_guard, 1);
    /* Not ours: the handler there was before takes it when the access faults again. */
    sigaction(SIGBUS, &sigbus_before, NULL);
    (void)sig;
    (void)info;
    (void)uctx;
}

/* Put in place with each mapping, not once: a handler someone installed since (a test
 * framework does, per test) would otherwise be the one to see the fault. */
static void install_sigbus(void)
{
    struct sigaction sa;
    if (0 != sigaction(SIGBUS, NULL, &sa) ||
        ((sa.sa_flags & SA_SIGINFO) && on_sigbus == sa.sa_sigaction))
        return;
    sigbus_before = sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigbus;
    /* NODEFER: the jump out skips the handler's return, which would unblock SIGBUS. */
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}

static void unmap_active(sp_journal_t *j)
{
    if (j->map)
        munmap(j->map, j->map_len);
    j->map = NULL;
    j->map_len = 0;
}

/* Maps the active segment, whose records end at j->end, if its blocks can be allocated. */
static void map_active(sp_journal_t *j)
{
    size_t used = (size_t)(j->end - j->seg_start);
    if (used >= j->opt.segment_bytes)
        return; /* a record larger than a segment fills it */
    if (0 != fallocate(j->fd, 0, 0, (off_t)j->opt.segment_bytes))
        return;
    void *m = mmap(NULL, j->opt.segment_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, j->fd, 0);
    if (MAP_FAILED == m)
        return;
    install_sigbus();
    j->map = m;
    j->map_len = j->opt.segment_bytes;
    j->map_released = 0;
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

/* Copies the record in IOV to OFF of the mapping. False when the copy faulted: the mapping
 * is dropped, and the record is to be written with pwritev. */
static bool copy_record(sp_journal_t *j, const struct iovec *iov, int n, off_t off)
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
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len) /* an empty payload may come as NULL, which memcpy may not get */
            memcpy(p, iov[i].iov_base, iov[i].iov_len);
        p += iov[i].iov_len;
    }
    copy_guard = NULL;
    return true;
}

/* Opens the segment starting at START for appending (creating it with CREATE): its fd, or
 * -1 + ERR. */
static int open_segment(sp_journal_t *j, int64_t start, bool create, char *err, size_t errlen)
{
    char path[PATH_MAX];
    segment_path(j, start, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0), 0600);
    if (fd < 0)
        return fail(err, errlen, "cannot open", path);
    if (create && j->opt.sync)
        fsync(j->dir_fd); /* the new name survives a power loss too */
    return fd;
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
    pthread_mutex_init(&j->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->readable, &ca);
    pthread_cond_init(&j->sync_wake, NULL);
    pthread_condattr_destroy(&ca);

    if (strlen(opt->dir) >= sizeof(j->dir)) {
        snprintf(err, errlen, "journal: folder name too long");
        goto fail;
    }
    snprintf(j->dir, sizeof(j->dir), "%s", opt->dir);
    if (0 != mkdir(j->dir, 0700) && EEXIST != errno) {
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
    if (0 != load_id(j, err, errlen) || 0 != list_segments(j, err, errlen))
        goto fail;

    if (0 == j->n_segs) {
        push_segment(j, 0);
        if ((j->fd = open_segment(j, 0, true, err, errlen)) < 0)
            goto fail;
        map_active(j);
    } else {
        j->seg_start = j->segs[j->n_segs - 1];
        if ((j->fd = open_segment(j, j->seg_start, false, err, errlen)) < 0)
            goto fail;
        int64_t valid = valid_length(j->fd);
        struct stat st;
        if (0 == fstat(j->fd, &st) && st.st_size > valid && 0 != ftruncate(j->fd, valid)) {
            fail(err, errlen, "cannot cut the torn end of", j->dir);
            goto fail;
        }
        j->end = j->seg_start + valid;
        map_active(j);
    }
    atomic_store(&j->published, j->end);

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

void sp_journal_close(sp_journal_t *j)
{
    if (!j)
        return;
    if (j->syncer_started) {
        pthread_mutex_lock(&j->lock);
        j->closing = true;
        pthread_cond_signal(&j->sync_wake);
        pthread_mutex_unlock(&j->lock);
        pthread_join(j->syncer, NULL);
    }
    if (j->fd >= 0) {
        trim_active(j);
        if (j->opt.sync)
            fdatasync(j->fd);
        close(j->fd);
    }
    if (j->lock_fd >= 0)
        close(j->lock_fd); /* and with it the lock */
    if (j->dir_fd >= 0)
        close(j->dir_fd);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->readable);
    pthread_cond_destroy(&j->sync_wake);
    free(j->segs);
    free(j->waiters);
    free(j->spare);
    free(j);
}

const char *sp_journal_id(const sp_journal_t *j)
{
    return j->id;
}

/* Starts a new segment at the end. Under the lock. */
static int rotate(sp_journal_t *j)
{
    /* With sync, the old segment is made durable now: the syncer only syncs the active one. */
    if (j->opt.sync && 0 != fdatasync(j->fd))
        return -1;
    char err[64];
    int fd = open_segment(j, j->end, true, err, sizeof(err));
    if (fd < 0)
        return -1;
    trim_active(j);
    close(j->fd);
    j->fd = fd;
    j->seg_start = j->end;
    map_active(j);
    push_segment(j, j->seg_start);
    return 0;
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
    uint32_t head[2] = {MAGIC, (uint32_t)len}, tail = (uint32_t)len;
    struct iovec iov[3] = {
        {head, sizeof(head)},
        {(void *)payload, len},
        {&tail, sizeof(tail)},
    };
    size_t total = HEADER_BYTES + len + TRAILER_BYTES;

    pthread_mutex_lock(&j->lock);
    if (j->end > j->seg_start && (size_t)(j->end - j->seg_start) + total > j->opt.segment_bytes)
        rotate(j); /* on failure the active segment just grows */
    off_t off = (off_t)(j->end - j->seg_start);
    ssize_t n = (ssize_t)total;
    if (!j->map || (size_t)off + total > j->map_len || !copy_record(j, iov, 3, off))
        n = pwritev(j->fd, iov, 3, off);
    if (n != (ssize_t)total) {
        int saved = n < 0 ? errno : ENOSPC;
        if (n > 0) {
            unmap_active(j); /* the file is cut below it */
            if (0 != ftruncate(j->fd, off)) {
                /* Left in place, the partial record ends the journal at its next open. */
            }
        }
        pthread_mutex_unlock(&j->lock);
        errno = saved;
        return -1;
    }
    j->end += (int64_t)total;
    if (j->map && (size_t)(j->end - j->seg_start) >= j->map_released + RELEASE_CHUNK)
        release_written(j);
    int64_t end = j->end;
    atomic_store_explicit(&j->published, end, memory_order_release);
    atomic_fetch_add_explicit(&j->appended, 1, memory_order_relaxed);
    if (j->opt.sync && waiter)
        push_waiter(j, end, waiter);
    if (j->readers_waiting)
        pthread_cond_broadcast(&j->readable);
    pthread_mutex_unlock(&j->lock);
    return end;
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

/* The start of the segment after the one at START, or -1 when it is the last. */
static int64_t next_segment(sp_journal_t *j, int64_t start)
{
    int64_t next = -1;
    pthread_mutex_lock(&j->lock);
    for (size_t i = 0; i < j->n_segs; i++)
        if (j->segs[i] > start) {
            next = j->segs[i];
            break;
        }
    pthread_mutex_unlock(&j->lock);
    return next;
}

/* Opens the segment that holds POS for C. */
static int cursor_seek(sp_journal_cursor_t *c, int64_t pos, char *err, size_t errlen)
{
    sp_journal_t *j = c->j;
    pthread_mutex_lock(&j->lock);
    size_t i = j->n_segs;
    while (i > 0 && j->segs[i - 1] > pos)
        i--;
    int64_t start = i > 0 ? j->segs[i - 1] : -1;
    pthread_mutex_unlock(&j->lock);
    if (start < 0) {
        snprintf(err, errlen, "journal: position %" PRId64 " was released", pos);
        return -1;
    }
    if (c->fd >= 0 && c->seg_start == start)
        return 0;
    char path[PATH_MAX];
    segment_path(j, start, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(err, errlen, "cannot open", path);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = fd;
    c->seg_start = start;
    c->len = 0;
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
    c->fd = -1;
    c->cap = READ_CHUNK;
    c->buf = malloc(c->cap);
    if (!c->buf)
        abort();
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
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    free(c);
}

/* Makes BUF hold at least NEED bytes from c->pos, short of LIMIT. Returns the bytes it
 * holds from there (fewer than NEED at the end of the segment's file). */
static ssize_t cursor_fill(sp_journal_cursor_t *c, size_t need, int64_t limit)
{
    int64_t have_from = c->pos - c->buf_pos;
    if (c->len > 0 && have_from >= 0 && (size_t)have_from + need <= c->len)
        return (ssize_t)(c->len - (size_t)have_from);
    if (need > c->cap) {
        free(c->buf);
        c->cap = need;
        c->buf = malloc(c->cap);
        if (!c->buf)
            abort();
    }
    size_t want = c->cap;
    if ((int64_t)want > limit - c->pos)
        want = (size_t)(limit - c->pos);
    if (want < need)
        want = need; /* past LIMIT only when a record claims to be: the read says */
    ssize_t n;
    do
        n = pread(c->fd, c->buf, want, c->pos - c->seg_start);
    while (n < 0 && EINTR == errno);
    c->buf_pos = c->pos;
    c->len = n > 0 ? (size_t)n : 0;
    return n;
}

/* The record at c->pos, if this segment's file holds a whole one there: 1, or 0 when not,
 * or -1 on a read error. */
static int read_record(sp_journal_cursor_t *c, int64_t limit, const void **payload, size_t *len)
{
    ssize_t n = cursor_fill(c, HEADER_BYTES, limit);
    if (n < 0)
        return -1;
    const unsigned char *p = c->buf + (c->pos - c->buf_pos);
    if (n < HEADER_BYTES || MAGIC != get_u32(p) || get_u32(p + 4) > SP_JOURNAL_RECORD_MAX)
        return 0;
    uint32_t rlen = get_u32(p + 4);
    size_t total = HEADER_BYTES + rlen + TRAILER_BYTES;
    n = cursor_fill(c, total, limit);
    if (n < 0)
        return -1;
    p = c->buf + (c->pos - c->buf_pos);
    if ((size_t)n < total || rlen != get_u32(p + HEADER_BYTES + rlen))
        return 0;
    *payload = p + HEADER_BYTES;
    *len = rlen;
    return 1;
}

int sp_journal_next(sp_journal_cursor_t *c, const void **payload, size_t *len, int64_t *end,
                    char *err, size_t errlen)
{
    int64_t limit = sp_journal_end(c->j);
    for (;;) {
        if (c->pos >= limit)
            return 0;
        int rc = read_record(c, limit, payload, len);
        if (rc < 0)
            return fail(err, errlen, "cannot read", c->j->dir);
        if (1 == rc) {
            c->pos += (int64_t)(HEADER_BYTES + *len + TRAILER_BYTES);
            *end = c->pos;
            return 1;
        }
        /* No whole record here. At the end of a segment's file: the next segment. */
        int64_t was = c->seg_start;
        if (0 != cursor_seek(c, c->pos, err, errlen))
            return -1;
        if (c->seg_start != was)
            continue;
        /* Inside a segment that is not the last: its end was lost (a power loss without
         * --sync-full) or damaged. What can still be read goes on at the next segment. */
        int64_t next = next_segment(c->j, c->seg_start);
        if (next > c->pos) {
            sp_log_warn("a journal segment ends early or is damaged; the rest of it is skipped",
                        "position=%" PRId64 " next=%" PRId64, c->pos, next);
            c->pos = next;
            if (0 != cursor_seek(c, c->pos, err, errlen))
                return -1;
            continue;
        }
        snprintf(err, errlen, "journal: damaged record at position %" PRId64, c->pos);
        return -1;
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
        pthread_mutex_unlock(&j->lock);
        for (size_t i = 0; i < n; i++) {
            char path[PATH_MAX];
            segment_path(j, gone[i], path, sizeof(path));
            unlink(path);
        }
        if (n < sizeof(gone) / sizeof(gone[0]))
            return;
    }
}

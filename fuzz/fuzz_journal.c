/* fuzz_journal: journal segments read back (sp_journal_open, cursors, sp_journal_next). */
/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "event.h"
#include "fuzz.h"
#include "journal.h"
#include "log.h"

/*
 * The first byte is a layout, the rest a segment file's bytes, written into a scratch
 * journal folder (under $TMPDIR) before it is opened:
 *  - bit 0 clear: the bytes are the last (active) segment: the open cuts it back to its
 *    whole records, and every record left must then read back without an error;
 *  - bit 0 set: a second, empty segment follows them, so the bytes are an older segment,
 *    which the cursor reads as far as it can and skips the rest of with a warning.
 * Every record read is decoded as the writer decodes it. Then one record is appended and
 * must be the last one read.
 */

#define SEGMENT_BYTES ((size_t)1 << 16)
#define RECORDS_MAX   4096

static char dir[4096];

static void clear_dir(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if ('.' != e->d_name[0] && 0 != strcmp(e->d_name, "id")) {
            char path[sizeof(dir) + 300];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
}

static void remove_dir(void)
{
    clear_dir();
    char path[sizeof(dir) + 8];
    snprintf(path, sizeof(path), "%s/id", dir);
    unlink(path);
    rmdir(dir);
}

static void write_segment(int64_t start, const uint8_t *data, size_t size)
{
    char path[sizeof(dir) + 32];
    snprintf(path, sizeof(path), "%s/%016llx.jnl", dir, (unsigned long long)start);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (size && (ssize_t)size != write(fd, data, size)))
        abort();
    close(fd);
}

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/spypixel-fuzz-journal-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        abort();
    atexit(remove_dir);
    sp_log_set_level("error"); /* the skip of a damaged segment is a warning per input */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0])
        setup();
    if (0 == size)
        return 0;
    bool older = (data[0] & 1) && size > 1;
    clear_dir();
    write_segment(0, data + 1, size - 1);
    if (older)
        write_segment((int64_t)size - 1, NULL, 0);

    char err[512];
    sp_journal_options_t opt = {.dir = dir, .segment_bytes = SEGMENT_BYTES};
    sp_journal_t *j = sp_journal_open(&opt, err, sizeof(err));
    FUZZ_CHECK(j);
    int64_t start = sp_journal_start(j), end = sp_journal_end(j);
    FUZZ_CHECK(0 == start && end >= 0 && end <= (int64_t)size - 1);
    FUZZ_CHECK(!older || end == (int64_t)size - 1);

    sp_journal_cursor_t *c = sp_journal_cursor_new(j, start, err, sizeof(err));
    FUZZ_CHECK(c);
    const void *payload;
    size_t len;
    int64_t at = start, rec_end;
    int rc = 0;
    for (int i = 0; i < RECORDS_MAX &&
                    1 == (rc = sp_journal_next(c, &payload, &len, &rec_end, err, sizeof(err)));
         i++) {
        FUZZ_CHECK(rec_end > at && rec_end <= end);
        at = rec_end;
        sp_event_free(sp_event_decode(payload, len));
    }
    /* What the open kept of the last segment is whole; an older one's damage is skipped. */
    FUZZ_CHECK(rc >= 0);

    /* An append after what was read is the next record, whole. */
    static const char record[] = "a record appended after fuzzed bytes";
    int64_t after = sp_journal_append(j, record, sizeof(record), NULL);
    FUZZ_CHECK(after > end);
    if (rc >= 0) {
        while (1 == (rc = sp_journal_next(c, &payload, &len, &rec_end, err, sizeof(err))) &&
               rec_end < after)
            ;
        FUZZ_CHECK(1 == rc && rec_end == after && sizeof(record) == len &&
                   0 == memcmp(payload, record, len));
    }
    sp_journal_cursor_free(c);
    sp_journal_close(j);
    return 0;
}

/* replay: feeds a fuzz target every file of its corpus and regressions, without libFuzzer. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

/*
 * Built as build/tests/test_fuzz_NAME, it replays fuzz/corpus/NAME/ and
 * fuzz/regressions/NAME/ (from the repository's root, where scripts/run-tests runs) as one
 * cmocka test. With arguments it replays those files or folders instead, to look at one
 * input under gdb or valgrind. Each input is copied into a buffer of exactly its size, so
 * that a sanitizer build sees a read past its end.
 */

static const char *target = "";
static char current[4096]; /* the input being replayed, named when the process dies */

static void say_current(void)
{
    if (current[0]) {
        static const char head[] = "fuzz replay: the input was ";
        ssize_t rc = write(STDERR_FILENO, head, sizeof(head) - 1);
        rc = write(STDERR_FILENO, current, strlen(current));
        rc = write(STDERR_FILENO, "\n", 1);
        (void)rc;
    }
}

/* Without a sanitizer, a crash is a signal: name the input, then die of it. */
static void on_signal(int sig)
{
    say_current();
    signal(sig, SIG_DFL);
    raise(sig);
}

static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define N_CRASH_SIGNALS (sizeof(crash_signals) / sizeof(crash_signals[0]))
static struct sigaction at_start[N_CRASH_SIGNALS];

/* cmocka catches a test's signals to report it as failed and go on, which loses both the
 * input's name and a sanitizer's report: inside the test, the handlers the process started
 * with come back (a sanitizer's, which calls say_current as it dies) or ours. */
static void watch_crashes(void)
{
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_set_death_callback(say_current);
    for (size_t i = 0; i < N_CRASH_SIGNALS; i++)
        sigaction(crash_signals[i], &at_start[i], NULL);
#else
    for (size_t i = 0; i < N_CRASH_SIGNALS; i++)
        signal(crash_signals[i], on_signal);
#endif
}

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    unsigned char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (!buf)
        abort();
    unsigned char *exact = malloc(n ? n : 1);
    if (!exact)
        abort();
    memcpy(exact, buf, n);
    free(buf);
    snprintf(current, sizeof(current), "%s", path);
    LLVMFuzzerTestOneInput(exact, n);
    current[0] = '\0';
    free(exact);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays PATH, a file or every file of a folder in name order; the number replayed, or -1
 * when one could not be read. A missing folder holds nothing. */
static long replay_path(const char *path)
{
    struct stat st;
    if (0 != stat(path, &st))
        return ENOENT == errno ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return 0 == replay_file(path) ? 1 : -1;
    struct dirent **names;
    int n = scandir(path, &names, NULL, NULL);
    if (n < 0)
        return -1;
    qsort(names, (size_t)n, sizeof(*names), by_name);
    long done = 0;
    for (int i = 0; i < n; i++) {
        char file[4096];
        snprintf(file, sizeof(file), "%s/%s", path, names[i]->d_name);
        if ('.' != names[i]->d_name[0] && 0 == stat(file, &st) && S_ISREG(st.st_mode))
            done = done < 0 || replay_file(file) < 0 ? -1 : done + 1;
        free(names[i]);
    }
    free(names);
    return done;
}

static void test_replay(void **state)
{
    (void)state;
    watch_crashes();
    char corpus[256], regressions[256];
    snprintf(corpus, sizeof(corpus), "fuzz/corpus/%s", target);
    snprintf(regressions, sizeof(regressions), "fuzz/regressions/%s", target);
    long a = replay_path(corpus), b = replay_path(regressions);
    assert_true(a >= 0 && b >= 0);
    /* A target that was fed nothing proves nothing. */
    assert_true(a > 0);
    print_message("%s: %ld corpus and %ld regression inputs\n", target, a, b);
}

int main(int argc, char **argv)
{
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    target = 0 == strncmp(base, "test_fuzz_", 10) ? base + 10 : base;
    for (size_t i = 0; i < N_CRASH_SIGNALS; i++)
        sigaction(crash_signals[i], NULL, &at_start[i]);
    watch_crashes();
    if (argc > 1) {
        long total = 0;
        for (int i = 1; i < argc; i++) {
            long n = replay_path(argv[i]);
            if (n < 0)
                return 1;
            total += n;
        }
        fprintf(stderr, "fuzz replay: %ld inputs replayed through %s\n", total, target);
        return 0;
    }
    char name[128];
    snprintf(name, sizeof(name), "replay of fuzz/corpus/%s and fuzz/regressions/%s", target,
             target);
    const struct CMUnitTest tests[] = {{name, test_replay, NULL, NULL, NULL}};
    return cmocka_run_group_tests_name(target, tests, NULL, NULL);
}

/* sigbus: the process's one SIGBUS handler, which hands each fault to the module whose
 * mapping it hit. */
/* SPDX-License-Identifier: MIT */
#include "sigbus.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#define WATCHERS_MAX 4

static _Atomic(sp_sigbus_fn) watchers[WATCHERS_MAX];
static struct sigaction before;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void on_sigbus(int sig, siginfo_t *info, void *uctx)
{
    int saved = errno;
    for (int i = 0; i < WATCHERS_MAX; i++) {
        sp_sigbus_fn fn = atomic_load(&watchers[i]);
        if (fn && fn(info->si_addr)) {
            errno = saved;
            return;
        }
    }
    /* Not ours: the handler there was before takes it when the access faults again. */
    sigaction(SIGBUS, &before, NULL);
    errno = saved;
    (void)sig;
    (void)uctx;
}

void sp_sigbus_watch(sp_sigbus_fn fn)
{
    pthread_mutex_lock(&lock);
    bool known = false;
    for (int i = 0; i < WATCHERS_MAX && !known; i++)
        known = atomic_load(&watchers[i]) == fn;
    for (int i = 0; i < WATCHERS_MAX && !known; i++) {
        sp_sigbus_fn none = NULL;
        known = atomic_compare_exchange_strong(&watchers[i], &none, fn);
    }
    struct sigaction sa;
    if (0 == sigaction(SIGBUS, NULL, &sa) &&
        !((sa.sa_flags & SA_SIGINFO) && on_sigbus == sa.sa_sigaction)) {
        before = sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_sigbus;
        /* NODEFER: a watcher that jumps out skips the handler's return, which would unblock
         * SIGBUS; and a fault inside a watcher reaches it again. */
        sa.sa_flags = SA_SIGINFO | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGBUS, &sa, NULL);
    }
    pthread_mutex_unlock(&lock);
}

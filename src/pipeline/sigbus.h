/* sigbus: the process's one SIGBUS handler, which hands each fault to the module whose
 * mapping it hit. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_SIGBUS_H
#define SP_SIGBUS_H

#include <stdbool.h>

/*
 * A file mapped into memory faults (SIGBUS) instead of returning an error when the page
 * under an access cannot be had: the file was cut short, made immutable (ext4 and xfs
 * refuse the first write to a clean page of it), or the disk failed. The journal maps its
 * active segment and SQLite maps its WAL index (the -shm file); each watches for faults in
 * its own mapping and makes the access safe before the handler returns.
 */

/* Called in the signal handler with the faulting address: true when the access may be
 * made again (the mapping there was replaced), false when the address is not the
 * watcher's. It may also not return (a jump out of a guarded copy). Async-signal-safe
 * calls only. */
typedef bool (*sp_sigbus_fn)(void *addr);

/* Adds FN to the watchers (once; at most 4) and puts the handler in place, again if
 * something has replaced it since (a test framework installs its own for each test). A
 * fault no watcher takes goes to the handler that was there before. Thread-safe. */
void sp_sigbus_watch(sp_sigbus_fn fn);

#endif

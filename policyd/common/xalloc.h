/*
 * xalloc: memory allocation that never returns NULL.
 *
 * RelayWatch sizes its tables at start and bounds what it allocates per
 * peer; running out of memory after that is not a condition a request can
 * be answered through, so the process aborts (as Postfix's mymalloc makes a
 * fatal error of it) rather than carry a NULL into the loop.  The results
 * are freed with free().
 */
#ifndef RELAYWATCH_XALLOC_H
#define RELAYWATCH_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
/* realloc, or abort; size 0 is treated as 1 so that NULL always means failure. */
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
/* The first n bytes of s (no NUL needed among them), NUL-terminated. */
char *xstrndup(const char *s, size_t n);

#endif

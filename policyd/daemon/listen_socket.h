/*
 * listen_socket: open the listening sockets of one endpoint, for the policy
 * listeners and the status page alike (connections.c serves them).
 */
#ifndef RELAYWATCH_LISTEN_SOCKET_H
#define RELAYWATCH_LISTEN_SOCKET_H

#include <stddef.h>

struct endpoint;

#define LISTEN_SOCKET_MAX 8 /* addresses one inet: name may stand for */

/*
 * Open ep, non-blocking and close-on-exec, listening: fds[] receives the
 * sockets (one for unix:, one per address of an inet: name, at most
 * LISTEN_SOCKET_MAX).  A unix: socket file gets mode; a stale one (nobody
 * answers on it) is replaced, a live one or a path that is not a socket is
 * an error.  Returns how many were opened, or -1 with "KEY: SPEC: reason"
 * in err and nothing left open.
 */
int listen_socket_open(const struct endpoint *ep, const char *key, unsigned mode, int *fds,
                       char *err, size_t errlen);

/* mode for a unix socket whose mode and group bind gave it (umask, effective gid): nothing is
 * asked of its path afterwards. */
#define LISTEN_SOCKET_MODE_AS_MADE (~0u)

#endif

/*
 * listen_socket: open the listening sockets of one endpoint, for the policy
 * listeners and the status page alike.
 */
#ifndef RELAYWATCH_LISTEN_SOCKET_H
#define RELAYWATCH_LISTEN_SOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

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

/*
 * Accept one connection on a listening socket, non-blocking and
 * close-on-exec.  -1 when there is none to take now; then *exhausted says
 * whether that was for want of descriptors or memory (pause accepting a
 * while rather than spin on a listener that stays readable).
 */
int listen_socket_accept(int fd, struct sockaddr_storage *ss, bool *exhausted);

#endif

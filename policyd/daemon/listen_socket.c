/*
 * listen_socket: see listen_socket.h.
 */
#include "listen_socket.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

static void set_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int open_unix(const struct endpoint *ep, const char *key, unsigned mode, int *fds,
                     char *err, size_t errlen)
{
    struct sockaddr_un sun;
    struct stat st;
    int fd;

    if (strlen(ep->path) >= sizeof(sun.sun_path)) {
        set_error(err, errlen, "%s: %s: path too long", key, ep->spec);
        return -1;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, ep->path, strlen(ep->path));

    if (lstat(ep->path, &st) == 0) {
        int probe;

        if (!S_ISSOCK(st.st_mode)) {
            set_error(err, errlen, "%s: %s: %s exists and is not a socket", key, ep->spec,
                      ep->path);
            return -1;
        }
        /* A socket file nobody answers on is left over from a crash: replace it.
         * Only a refused connection proves that; the probe must not block
         * (a live server with a full backlog) and must not guess (EACCES). */
        probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (probe < 0) {
            set_error(err, errlen, "%s: %s: socket: %s", key, ep->spec, strerror(errno));
            return -1;
        }
        if (connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0 || errno == EAGAIN ||
            errno == EINPROGRESS) {
            close(probe);
            set_error(err, errlen, "%s: %s: socket is in use by a running process", key,
                      ep->spec);
            return -1;
        }
        if (errno != ECONNREFUSED) {
            set_error(err, errlen, "%s: %s: cannot tell whether %s is in use: %s", key, ep->spec,
                      ep->path, strerror(errno));
            close(probe);
            return -1;
        }
        close(probe);
        if (unlink(ep->path) != 0 && errno != ENOENT) {
            set_error(err, errlen, "%s: %s: cannot remove stale socket: %s", key, ep->spec,
                      strerror(errno));
            return -1;
        }
        log_info("%s: %s: replaced a stale socket file", key, ep->spec);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_error(err, errlen, "%s: %s: socket: %s", key, ep->spec, strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        set_error(err, errlen, "%s: %s: %s", key, ep->spec, strerror(errno));
        close(fd);
        return -1;
    }
    if ((mode != LISTEN_SOCKET_MODE_AS_MADE && chmod(ep->path, mode) != 0) ||
        listen(fd, SOMAXCONN) != 0) {
        set_error(err, errlen, "%s: %s: %s", key, ep->spec, strerror(errno));
        close(fd);
        unlink(ep->path);
        return -1;
    }
    fds[0] = fd;
    return 1;
}

static int open_inet(const struct endpoint *ep, const char *key, int *fds, char *err,
                     size_t errlen)
{
    struct addrinfo hints, *res, *ai;
    int rc, opened = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(ep->host, ep->port, &hints, &res);
    if (rc != 0) {
        set_error(err, errlen, "%s: %s: %s", key, ep->spec, gai_strerror(rc));
        return -1;
    }
    /* A name such as localhost may stand for several addresses: serve them
     * all, skipping a family or address this host does not have (::1 with
     * IPv6 off) as long as one of them works. */
    for (ai = res; ai != NULL && opened < LISTEN_SOCKET_MAX; ai = ai->ai_next) {
        int one = 1;
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai->ai_protocol);

        if (fd < 0) {
            set_error(err, errlen, "%s: %s: socket: %s", key, ep->spec, strerror(errno));
            if (errno == EAFNOSUPPORT)
                continue;
            break;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
            int e = errno;

            set_error(err, errlen, "%s: %s: %s", key, ep->spec, strerror(e));
            close(fd);
            if (e == EADDRNOTAVAIL)
                continue;
            break;
        }
        fds[opened++] = fd;
    }
    freeaddrinfo(res);
    if ((ai != NULL && opened < LISTEN_SOCKET_MAX) || opened == 0) {
        /* err says why: the failing address, or the last one skipped. */
        while (opened > 0)
            close(fds[--opened]);
        return -1;
    }
    return opened;
}

int listen_socket_open(const struct endpoint *ep, const char *key, unsigned mode, int *fds,
                       char *err, size_t errlen)
{
    if (ep->kind == ENDPOINT_UNIX)
        return open_unix(ep, key, mode, fds, err, errlen);
    return open_inet(ep, key, fds, err, errlen);
}

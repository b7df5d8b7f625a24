/*
 * daemon_http: see daemon_http.h.
 */
#include "daemon_http.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "xalloc.h"

#define CONNECT_TIMEOUT_MS 5000
#define RESPONSE_TIMEOUT_MS 10000
#define MAX_RESPONSE (64u * 1024 * 1024)
#ifndef RELAYWATCH_VERSION
#define RELAYWATCH_VERSION "unknown"
#endif

static long ms_since(const struct timespec *t0)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t0->tv_sec) * 1000L + (now.tv_nsec - t0->tv_nsec) / 1000000L;
}

/*
 * Start a non-blocking connect and wait for it until the deadline.
 * Returns the connected fd, or -1 with errno set (ETIMEDOUT on timeout).
 */
static int connect_wait(int family, const struct sockaddr *sa, socklen_t salen,
                        const struct timespec *t0)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int e;

    if (fd < 0)
        return -1;
    if (connect(fd, sa, salen) == 0)
        return fd;
    if (errno != EINPROGRESS && errno != EAGAIN) {
        e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        long left = CONNECT_TIMEOUT_MS - ms_since(t0);
        socklen_t elen = sizeof(e);
        int rc;

        if (left <= 0) {
            close(fd);
            errno = ETIMEDOUT;
            return -1;
        }
        rc = poll(&p, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0) {
            e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (rc == 0)
            continue; /* the deadline check above ends it */
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) != 0)
            e = errno;
        if (e != 0) {
            close(fd);
            errno = e;
            return -1;
        }
        return fd;
    }
}

/* Connect to ep within CONNECT_TIMEOUT_MS; -1 with the reason in err. */
static int connect_endpoint(const struct endpoint *ep, char *err, size_t errlen)
{
    struct timespec t0;
    int fd = -1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (ep->kind == ENDPOINT_UNIX) {
        struct sockaddr_un sun;

        if (strlen(ep->path) >= sizeof(sun.sun_path)) {
            snprintf(err, errlen, "socket path too long");
            return -1;
        }
        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        memcpy(sun.sun_path, ep->path, strlen(ep->path));
        fd = connect_wait(AF_UNIX, (struct sockaddr *)&sun, sizeof(sun), &t0);
        if (fd < 0)
            snprintf(err, errlen, "%s", errno == ETIMEDOUT ? "timed out after 5s" : strerror(errno));
        return fd;
    } else {
        struct addrinfo hints, *res, *ai;
        int rc, e = ECONNREFUSED;

        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        rc = getaddrinfo(ep->host, ep->port, &hints, &res);
        if (rc != 0) {
            snprintf(err, errlen, "%s", gai_strerror(rc));
            return -1;
        }
        /* A wildcard listen address means "this host" to a client. */
        for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
            fd = connect_wait(ai->ai_family, ai->ai_addr, ai->ai_addrlen, &t0);
            if (fd < 0)
                e = errno;
            if (e == ETIMEDOUT)
                break;
        }
        freeaddrinfo(res);
        if (fd < 0)
            snprintf(err, errlen, "%s", e == ETIMEDOUT ? "timed out after 5s" : strerror(e));
        return fd;
    }
}

/* Send all of buf; false with errno on failure. */
static bool send_all(int fd, const char *buf, size_t len)
{
    struct timespec t0;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

        if (n < 0) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            long left = RESPONSE_TIMEOUT_MS - ms_since(&t0);

            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return false;
            if (left <= 0 || poll(&p, 1, (int)left) == 0) {
                errno = ETIMEDOUT;
                return false;
            }
            continue;
        }
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* Read until EOF (the server closes after one response); NULL with errno. */
static char *recv_all(int fd, size_t *len)
{
    struct timespec t0;
    size_t cap = 16384, n = 0;
    char *buf = xmalloc(cap + 1);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        ssize_t r;

        if (n == cap) {
            if (cap >= MAX_RESPONSE) {
                free(buf);
                errno = EFBIG;
                return NULL;
            }
            cap *= 2;
            buf = xrealloc(buf, cap + 1);
        }
        r = recv(fd, buf + n, cap - n, 0);
        if (r > 0) {
            n += (size_t)r;
            continue;
        }
        if (r == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            long left = RESPONSE_TIMEOUT_MS - ms_since(&t0);

            if (left <= 0 || poll(&p, 1, (int)left) == 0) {
                free(buf);
                errno = ETIMEDOUT;
                return NULL;
            }
            continue;
        }
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Split a raw HTTP/1.x response; false if it is not one. */
static bool parse_response(char *raw, size_t len, struct daemon_answer *r)
{
    char *head_end = NULL, *p, *eol;
    long content_length = -1;
    size_t skip = 4;

    for (size_t i = 0; i + 1 < len; i++) {
        if (raw[i] == '\n' && raw[i + 1] == '\n') {
            head_end = raw + i;
            skip = 2;
            break;
        }
        if (i + 3 < len && memcmp(raw + i, "\r\n\r\n", 4) == 0) {
            head_end = raw + i;
            break;
        }
    }
    if (head_end == NULL || len < 12 || memcmp(raw, "HTTP/1.", 7) != 0 || raw[8] != ' ')
        return false;
    *head_end = '\0';
    if (sscanf(raw + 9, "%3d", &r->code) != 1)
        return false;
    eol = strpbrk(raw, "\r\n");
    if (eol == NULL)
        eol = head_end;
    snprintf(r->reason, sizeof(r->reason), "%.*s", (int)(eol - raw > 13 ? eol - raw - 13 : 0),
             raw + 13);
    /* Content-Length, when present, marks the end of the body. */
    for (p = eol; p != NULL && p < head_end; p = strchr(p + 1, '\n')) {
        const char *line = p + 1;

        if (strncasecmp(line, "Content-Length:", 15) == 0)
            content_length = strtol(line + 15, NULL, 10);
    }
    r->body = head_end + skip;
    r->body_len = len - (size_t)(r->body - raw);
    if (content_length >= 0 && (size_t)content_length < r->body_len)
        r->body_len = (size_t)content_length;
    return true;
}

/* daemon_request and daemon_control: to ep, which the key names (NULL: off). */
static int request_at(const struct endpoint *ep, const char *key, const char *command,
                      const char *method, const char *target, const char *accept,
                      struct daemon_answer *ans)
{
    char err[256], req[2048];
    size_t raw_len;
    int fd, n;

    memset(ans, 0, sizeof(*ans));
    if (ep == NULL) {
        fprintf(stderr, "relaywatch: %s is off; %s needs it\n", key, command);
        return 2;
    }
    ans->where = ep->spec;
    n = snprintf(req, sizeof(req),
                 "%s %s HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "User-Agent: relaywatch/" RELAYWATCH_VERSION "\r\n"
                 "Accept: %s\r\n"
                 "%s"
                 "Connection: close\r\n"
                 "\r\n",
                 method, target, ep->kind == ENDPOINT_UNIX ? "localhost" : ep->host, accept,
                 strcmp(method, "POST") == 0 ? "Content-Length: 0\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(req)) {
        fprintf(stderr, "relaywatch: request to relaywatchd too long\n");
        return 2;
    }
    fd = connect_endpoint(ep, err, sizeof(err));
    if (fd < 0) {
        /* The control socket's mode keeps out whoever may not change anything. */
        bool denied = errno == EACCES && strcmp(key, "control_socket") == 0;

        fprintf(stderr, "relaywatch: cannot reach relaywatchd at %s: %s%s\n", ep->spec, err,
                denied ? " (changes need root, relaywatchd's user or control_group)" : "");
        return 1;
    }
    if (!send_all(fd, req, (size_t)n) || (ans->raw = recv_all(fd, &raw_len)) == NULL) {
        fprintf(stderr, "relaywatch: cannot reach relaywatchd at %s: %s\n", ep->spec,
                errno == ETIMEDOUT ? "no answer within 10s" : strerror(errno));
        close(fd);
        return 1;
    }
    close(fd);
    if (!parse_response(ans->raw, raw_len, ans)) {
        fprintf(stderr, "relaywatch: relaywatchd at %s sent %s\n", ep->spec,
                raw_len == 0 ? "no answer (connection closed; too many HTTP clients?)"
                             : "something that is not an HTTP response");
        free(ans->raw);
        ans->raw = NULL;
        return 1;
    }
    return 0;
}

int daemon_request(const struct config *cfg, const char *command, const char *method,
                   const char *target, const char *accept, struct daemon_answer *ans)
{
    return request_at(cfg->http_listen, "http_listen", command, method, target, accept, ans);
}

int daemon_control(const struct config *cfg, const char *command, const char *method,
                   const char *target, const char *accept, struct daemon_answer *ans)
{
    return request_at(cfg->control_socket, "control_socket", command, method, target, accept,
                      ans);
}

int daemon_print_body(const struct daemon_answer *ans)
{
    fwrite(ans->body, 1, ans->body_len, stdout);
    if (ans->body_len > 0 && ans->body[ans->body_len - 1] != '\n')
        putchar('\n');
    if (fflush(stdout) == 0 && !ferror(stdout))
        return 0;
    fprintf(stderr, "relaywatch: writing to stdout: %s\n", strerror(errno));
    return 1;
}

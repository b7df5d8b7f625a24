/* minimal_server: the lower bound for a Postfix policy server.
 *
 * Single-threaded libev server that answers "action=DUNNO" to every
 * request without looking at it. The only work done per request is finding
 * the terminating empty line, so its throughput is what the kernel, the
 * event loop and the load generator allow; relaywatchd's figures are
 * compared against it.
 *
 * Usage: minimal_server -s inet:HOST:PORT|unix:PATH
 */
#ifndef _GNU_SOURCE /* the top-level CMakeLists may define it already */
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "endpoint.h"

#define ANSWER "action=DUNNO\n\n"
enum {
    ANSWER_LEN = sizeof ANSWER - 1,
    ANSWERS_PER_BLOCK = 256,
    /* Stop reading from a client that does not read its answers. */
    MAX_PENDING_BYTES = 1 << 20,
};

/* Answers are all identical, so pending output is just a byte count plus
 * the position inside the answer where the next byte starts; writes are
 * served from this block of repeated answers. No per-client output buffer. */
static char answer_block[ANSWER_LEN * (ANSWERS_PER_BLOCK + 1)];

/* Input is scanned and dropped, so one shared read buffer is enough. */
static char read_buf[64 * 1024];

struct client {
    ev_io read_watcher;
    ev_io write_watcher;
    int fd;
    bool line_has_content;      /* current input line has a non-CR byte */
    size_t pending_bytes;       /* answer bytes not yet written */
    size_t answer_pos;          /* offset in ANSWER of the next byte to write */
};

static struct {
    struct ev_loop *loop;
    int listen_fd;
    ev_io accept_watcher;
    ev_timer accept_resume_timer;
    uint64_t requests;
    uint64_t connections;
} server;

static void on_client_readable(struct ev_loop *loop, ev_io *w, int revents);
static void on_client_writable(struct ev_loop *loop, ev_io *w, int revents);

static void client_close(struct client *cl)
{
    ev_io_stop(server.loop, &cl->read_watcher);
    ev_io_stop(server.loop, &cl->write_watcher);
    close(cl->fd);
    free(cl);
}

/* Counts request terminators (empty lines, "\n" or "\r\n") in p[0..n),
 * carrying the "line so far is non-empty" state across reads so that
 * requests split anywhere, even between CR and LF, are handled. */
static size_t count_request_ends(struct client *cl, const char *p, size_t n)
{
    const char *end = p + n;
    size_t ends = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t segment_len = (size_t)((nl != NULL ? nl : end) - p);
        if (segment_len > 1 || (segment_len == 1 && p[0] != '\r'))
            cl->line_has_content = true;
        if (nl == NULL)
            break;
        if (!cl->line_has_content)
            ends++;
        cl->line_has_content = false;
        p = nl + 1;
    }
    return ends;
}

/* Returns false if the client was closed. */
static bool client_flush(struct client *cl)
{
    while (cl->pending_bytes > 0) {
        size_t chunk = sizeof answer_block - cl->answer_pos;
        if (chunk > cl->pending_bytes)
            chunk = cl->pending_bytes;
        ssize_t n = send(cl->fd, answer_block + cl->answer_pos, chunk, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                ev_io_start(server.loop, &cl->write_watcher);
                if (cl->pending_bytes > MAX_PENDING_BYTES)
                    ev_io_stop(server.loop, &cl->read_watcher);
                return true;
            }
            client_close(cl);
            return false;
        }
        cl->pending_bytes -= (size_t)n;
        cl->answer_pos = (cl->answer_pos + (size_t)n) % ANSWER_LEN;
    }
    ev_io_stop(server.loop, &cl->write_watcher);
    ev_io_start(server.loop, &cl->read_watcher);
    return true;
}

static void on_client_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct client *cl = w->data;
    ssize_t n = recv(cl->fd, read_buf, sizeof read_buf, 0);
    if (n == 0) {
        client_close(cl);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            client_close(cl);
        return;
    }
    size_t ends = count_request_ends(cl, read_buf, (size_t)n);
    if (ends == 0)
        return;
    server.requests += ends;
    cl->pending_bytes += ends * ANSWER_LEN;
    client_flush(cl);
}

static void on_client_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    client_flush(w->data);
}

static void on_accept_resume(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_io_start(loop, &server.accept_watcher);
}

static void on_acceptable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    for (;;) {
        int fd = accept4(server.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Level-triggered accept would spin; back off briefly. */
                fprintf(stderr, "minimal_server: accept: %s\n", strerror(errno));
                ev_io_stop(loop, w);
                ev_timer_start(loop, &server.accept_resume_timer);
            }
            return;
        }
        struct client *cl = calloc(1, sizeof *cl);
        if (cl == NULL) {
            close(fd);
            continue;
        }
        cl->fd = fd;
        ev_io_init(&cl->read_watcher, on_client_readable, fd, EV_READ);
        ev_io_init(&cl->write_watcher, on_client_writable, fd, EV_WRITE);
        cl->read_watcher.data = cl;
        cl->write_watcher.data = cl;
        ev_io_start(loop, &cl->read_watcher);
        server.connections++;
    }
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static int open_listener(const struct endpoint *ep)
{
    int fd = socket(ep->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (ep->family == AF_UNIX) {
        /* A stale socket file from an earlier run would make bind fail. */
        const struct sockaddr_un *sun = (const struct sockaddr_un *)&ep->addr;
        unlink(sun->sun_path);
    } else {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    }
    if (bind(fd, (const struct sockaddr *)&ep->addr, ep->addrlen) < 0 ||
        listen(fd, SOMAXCONN) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: minimal_server -s inet:HOST:PORT|unix:PATH\n"
                 "Answers action=DUNNO to every Postfix policy request.\n");
}

int main(int argc, char **argv)
{
    const char *spec = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "s:h")) != -1) {
        switch (opt) {
        case 's':
            spec = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (spec == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }

    struct endpoint ep;
    char err[512];
    if (endpoint_parse(spec, &ep, err, sizeof err) < 0) {
        fprintf(stderr, "minimal_server: %s\n", err);
        return 2;
    }
    for (size_t i = 0; i < sizeof answer_block; i += ANSWER_LEN)
        memcpy(answer_block + i, ANSWER, ANSWER_LEN);

    signal(SIGPIPE, SIG_IGN);
    server.listen_fd = open_listener(&ep);
    if (server.listen_fd < 0) {
        fprintf(stderr, "minimal_server: cannot listen on %s: %s\n", spec, strerror(errno));
        return 1;
    }

    server.loop = EV_DEFAULT;
    ev_io_init(&server.accept_watcher, on_acceptable, server.listen_fd, EV_READ);
    ev_io_start(server.loop, &server.accept_watcher);
    ev_timer_init(&server.accept_resume_timer, on_accept_resume, 0.1, 0.0);
    ev_signal sigint_watcher, sigterm_watcher;
    ev_signal_init(&sigint_watcher, on_stop_signal, SIGINT);
    ev_signal_init(&sigterm_watcher, on_stop_signal, SIGTERM);
    ev_signal_start(server.loop, &sigint_watcher);
    ev_signal_start(server.loop, &sigterm_watcher);

    fprintf(stderr, "minimal_server: listening on %s\n", spec);
    ev_run(server.loop, 0);

    fprintf(stderr, "minimal_server: answered %" PRIu64 " requests on %" PRIu64 " connections\n",
            server.requests, server.connections);
    close(server.listen_fd);
    if (ep.family == AF_UNIX)
        unlink(((const struct sockaddr_un *)&ep.addr)->sun_path);
    return 0;
}

/*
 * http: a small HTTP/1.1 server for operators' views (/status, /metrics,
 * /throttle) and changes (POST /throttle) on the daemon's libev loop.  It
 * must never slow policy answers: bounded connections, bounded request size,
 * a deadline per connection, non-blocking writes, one response per
 * connection.  Two kinds of server: http_listen's, where nobody may change
 * anything, and the control socket's, a unix socket where each peer's
 * credentials (SO_PEERCRED) decide whether it may.
 */
#ifndef RELAYWATCH_HTTP_H
#define RELAYWATCH_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct ev_loop;
struct endpoint;
struct http_server;

/* A growable response body. */
struct http_body {
    char *data;
    size_t len;
    size_t cap;
};

void http_body_append(struct http_body *b, const char *data, size_t len);
void http_body_printf(struct http_body *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Called for each GET, HEAD (as "GET") or POST request with the method, the
 * path and the query split ("/status", "format=text"; query is "" when
 * absent).  POST is for operators' changes: its parameters come in the
 * query.  may_change: the caller was admitted to change state (never on
 * http_listen).  Fills body and *content_type (a text/html one goes out with a
 * Content-Security-Policy allowing inline styles only), returns the HTTP status code
 * (200, 404, ...); 403 for a change refused for want of privilege (the
 * control socket's server logs the caller's uid then).
 */
typedef int http_handler_fn(void *ctx, const char *method, const char *path, const char *query,
                            bool may_change, struct http_body *body, const char **content_type);

/* Listen on ep (inet: or unix:), read-only; NULL with a one-line reason in err. */
struct http_server *http_server_new(struct ev_loop *loop, const struct endpoint *ep,
                                    http_handler_fn *handler, void *ctx, char *err, size_t errlen);

/*
 * Open the control socket ep (unix:) for http_control_new, before root is
 * given up: mode 0660, group gid ((gid_t)-1: left as created).  The
 * listening descriptor, or -1 with "control_socket: SPEC: reason" in err.
 */
int http_control_open(const struct endpoint *ep, gid_t gid, char *err, size_t errlen);

/*
 * Serve fd (from http_control_open).  Each peer's credentials are asked once,
 * at accept: uid 0, this process's effective uid, and a process whose primary
 * or supplementary groups include gid ((gid_t)-1: no group) may change.
 */
struct http_server *http_control_new(struct ev_loop *loop, const struct endpoint *ep, int fd,
                                     gid_t gid, http_handler_fn *handler, void *ctx);

/* Close the listener and every HTTP connection. */
void http_server_free(struct http_server *srv);

#endif

/*
 * http: a small HTTP/1.1 server for operators' views (/status, /metrics,
 * /throttle) on the daemon's libev loop.  It must never slow policy
 * answers: bounded connections, bounded request size, a deadline per
 * connection, non-blocking writes, one response per connection.
 */
#ifndef RELAYWATCH_HTTP_H
#define RELAYWATCH_HTTP_H

#include <stddef.h>

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
 * absent).  POST is for operators' changes and only on loopback-bound
 * endpoints in practice: its parameters come in the query.  Fills body and
 * *content_type, returns the HTTP status code (200, 404, ...).
 */
typedef int http_handler_fn(void *ctx, const char *method, const char *path, const char *query, struct http_body *body,
                            const char **content_type);

/* Listen on ep (inet: or unix:); NULL with a one-line reason in err. */
struct http_server *http_server_new(struct ev_loop *loop, const struct endpoint *ep,
                                    http_handler_fn *handler, void *ctx, char *err, size_t errlen);

/* Close the listener and every HTTP connection. */
void http_server_free(struct http_server *srv);

#endif

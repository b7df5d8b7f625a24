/*
 * server: the policy listeners and their connections on one libev loop.
 */
#ifndef RELAYWATCH_SERVER_H
#define RELAYWATCH_SERVER_H

#include <stddef.h>

struct ev_loop;
struct config;
struct policy_server;

/*
 * Open every listen endpoint of cfg and start serving on loop.  cfg must
 * outlive the server or the next policy_server_reconfigure().  On failure
 * returns NULL with a one-line reason in err.
 */
struct policy_server *policy_server_new(struct ev_loop *loop, const struct config *cfg, char *err,
                                        size_t errlen);

/*
 * Switch to cfg: listeners that stay are kept (connections untouched),
 * new ones are opened, dropped ones closed.  All or nothing: on failure
 * returns -1 with the reason in err and the old configuration stays.
 */
int policy_server_reconfigure(struct policy_server *srv, const struct config *cfg, char *err,
                              size_t errlen);

/*
 * Stop accepting, close idle connections, let those in the middle of a
 * request finish (up to cfg->shutdown_timeout), then call done(arg).
 */
void policy_server_shutdown(struct policy_server *srv, void (*done)(void *arg), void *arg);

/* Close everything at once. */
void policy_server_free(struct policy_server *srv);

unsigned policy_server_connections(const struct policy_server *srv);

#endif

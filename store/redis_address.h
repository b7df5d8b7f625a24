/*
 * redis_address: where Redis is, from a store URL; shared by the daemon's
 * store, the feed's writer and the CLI's rw:throttle client (store/ only).
 */
#ifndef RELAYWATCH_REDIS_ADDRESS_H
#define RELAYWATCH_REDIS_ADDRESS_H

#include <stddef.h>

struct redis_address {
    char *host, *path; /* host: a numeric address (resolved once); path: a unix socket */
    int port, db;
};

/*
 * redis://HOST:PORT[/DB] or redis+unix:///PATH[?db=N] (config.c checked
 * the form); a host name is resolved here, once.  0, or -1 with a one-line
 * reason in err.  The caller frees host and path.
 */
int redis_address_parse(struct redis_address *a, const char *url, char *err, size_t errlen);

#endif

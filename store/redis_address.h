/*
 * redis_address: where Redis is, from a store URL; shared by the daemon's
 * Redis store, the feed's writer and the CLI's rw:throttle client (store/
 * only).  Parsing may block once, resolving a host name; nothing else does.
 */
#ifndef RELAYWATCH_REDIS_ADDRESS_H
#define RELAYWATCH_REDIS_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

struct redis_address {
    char *host, *path; /* host: a numeric address (resolved once); path: a unix socket */
    int port, db;
};

/* Whether url names Redis (redis:// or redis+unix://) rather than memory. */
bool redis_address_is_redis(const char *url);

/*
 * redis://HOST:PORT[/DB] or redis+unix:///PATH[?db=N] (config.c checked
 * the form); a host name is resolved here, once.  0, or -1 with a one-line
 * reason in err.  The caller frees host and path (redis_address_clear).
 */
int redis_address_parse(struct redis_address *a, const char *url, char *err, size_t errlen);

/* Free what redis_address_parse allocated; a stays usable for another parse. */
void redis_address_clear(struct redis_address *a);

#endif

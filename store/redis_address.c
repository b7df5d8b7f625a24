/*
 * redis_address: a store URL taken apart.  See redis_address.h.
 */
#include "redis_address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* hiredis resolves a name inside redisAsyncConnect, blocking the loop on every reconnect:
 * resolve it once, here at start, and connect by address.  A numeric copy, or NULL with the
 * reason in err. */
static char *numeric_host(const char *url, const char *host, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *res;
    char addr[INET6_ADDRSTRLEN];
    int rc;

    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "store: %s: %s", url, gai_strerror(rc));
        return NULL;
    }
    rc = getnameinfo(res->ai_addr, res->ai_addrlen, addr, sizeof(addr), NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(res);
    if (rc != 0) {
        snprintf(err, errlen, "store: %s: %s", url, gai_strerror(rc));
        return NULL;
    }
    return strdup(addr);
}

bool redis_address_is_redis(const char *url)
{
    return strncmp(url, "redis://", 8) == 0 || strncmp(url, "redis+unix://", 13) == 0;
}

int redis_address_parse(struct redis_address *a, const char *url, char *err, size_t errlen)
{
    if (strncmp(url, "redis://", 8) == 0) {
        const char *hp = url + 8, *slash = strchr(hp, '/');
        size_t n = slash ? (size_t)(slash - hp) : strlen(hp);
        char *hostport = strndup(hp, n), *colon = hostport ? strrchr(hostport, ':') : NULL;

        if (colon == NULL) {
            free(hostport);
            snprintf(err, errlen, "store: bad Redis address '%s'", url);
            return -1;
        }
        *colon = '\0';
        a->port = atoi(colon + 1);
        a->db = slash ? atoi(slash + 1) : 0;
        a->host = numeric_host(url, hostport, err, errlen);
        free(hostport);
        return a->host ? 0 : -1;
    }
    if (strncmp(url, "redis+unix://", 13) == 0) {
        const char *p = url + 13, *q = strchr(p, '?');

        a->path = q ? strndup(p, (size_t)(q - p)) : strdup(p);
        a->db = q ? atoi(q + 4) : 0;
        return a->path ? 0 : -1;
    }
    snprintf(err, errlen, "store: '%s' is not a Redis address", url);
    return -1;
}

void redis_address_clear(struct redis_address *a)
{
    free(a->host);
    free(a->path);
    a->host = a->path = NULL;
}

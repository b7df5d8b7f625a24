/* Parsing of Postfix-style endpoint specs ("inet:HOST:PORT", "unix:PATH"),
 * shared by policy_load and minimal_server. */
#ifndef RELAYWATCH_BENCH_ENDPOINT_H
#define RELAYWATCH_BENCH_ENDPOINT_H

#include <stddef.h>
#include <sys/socket.h>

struct endpoint {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int family;                 /* AF_INET, AF_INET6 or AF_UNIX */
};

/* Resolves spec into *out. On failure returns -1 and writes a message
 * into err (size errlen). */
int endpoint_parse(const char *spec, struct endpoint *out, char *err, size_t errlen);

#endif

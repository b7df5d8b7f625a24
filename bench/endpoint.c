/* Endpoint spec parsing, see endpoint.h. */
#ifndef _GNU_SOURCE /* the top-level CMakeLists may define it already */
#define _GNU_SOURCE
#endif
#include "endpoint.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

static int parse_inet(const char *hostport, struct endpoint *out, char *err, size_t errlen)
{
    /* The port follows the last colon so that bracketed IPv6 hosts
     * ("inet:[::1]:10040") work. */
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL || colon[1] == '\0') {
        snprintf(err, errlen, "missing port in \"inet:%s\"", hostport);
        return -1;
    }
    char host[256];
    size_t host_len = (size_t)(colon - hostport);
    if (host_len >= 2 && hostport[0] == '[' && hostport[host_len - 1] == ']') {
        hostport++;
        host_len -= 2;
    }
    if (host_len == 0 || host_len >= sizeof host) {
        snprintf(err, errlen, "bad host in \"inet:%s\"", hostport);
        return -1;
    }
    memcpy(host, hostport, host_len);
    host[host_len] = '\0';

    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve \"%s\" port \"%s\": %s", host, colon + 1,
                 gai_strerror(rc));
        return -1;
    }
    memset(out, 0, sizeof *out);
    memcpy(&out->addr, res->ai_addr, res->ai_addrlen);
    out->addrlen = res->ai_addrlen;
    out->family = res->ai_family;
    freeaddrinfo(res);
    return 0;
}

static int parse_unix(const char *path, struct endpoint *out, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    size_t path_len = strlen(path);
    if (path_len == 0 || path_len >= sizeof sun.sun_path) {
        snprintf(err, errlen, "unix socket path empty or too long: \"%s\"", path);
        return -1;
    }
    memset(out, 0, sizeof *out);
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, path_len + 1);
    memcpy(&out->addr, &sun, sizeof sun);
    out->addrlen = (socklen_t)sizeof sun;
    out->family = AF_UNIX;
    return 0;
}

int endpoint_parse(const char *spec, struct endpoint *out, char *err, size_t errlen)
{
    if (strncmp(spec, "inet:", 5) == 0)
        return parse_inet(spec + 5, out, err, errlen);
    if (strncmp(spec, "unix:", 5) == 0)
        return parse_unix(spec + 5, out, err, errlen);
    snprintf(err, errlen, "endpoint \"%s\" must start with inet: or unix:", spec);
    return -1;
}

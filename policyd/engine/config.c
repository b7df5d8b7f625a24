/*
 * config: main.cf-style configuration parser.  See config.h.
 *
 * Syntax, as Postfix's main.cf: "name = value"; a line whose first
 * non-blank character is '#' is a comment; a line that starts with white
 * space continues the previous logical line; blank lines are ignored.
 * Lists are separated by commas and/or white space.  Durations take an
 * s, m, h or d suffix (seconds without one).  $name expansion is not
 * done: values are taken as written.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_MESSAGE 512

struct reporter {
    config_report_fn *fn;
    void *ctx;
    const char *source;
    unsigned line;
    unsigned count;
};

static void problem(struct reporter *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(struct reporter *r, const char *fmt, ...)
{
    char msg[MAX_MESSAGE];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    r->count++;
    if (r->fn)
        r->fn(r->ctx, r->source, r->line, msg);
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);

    if (d == NULL)
        abort();
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static void endpoint_clear(struct endpoint *e)
{
    free(e->spec);
    free(e->host);
    free(e->port);
    free(e->path);
    memset(e, 0, sizeof(*e));
}

static void endpoints_free(struct endpoint *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        endpoint_clear(&v[i]);
    free(v);
}

static void strings_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Split a list value into items; returns the count, items point into a copy. */
static size_t split_list(const char *value, char ***items_out)
{
    size_t n = 0, cap = 4;
    char **items = malloc(cap * sizeof(*items));
    const char *p = value;

    if (items == NULL)
        abort();
    for (;;) {
        const char *start;

        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        start = p;
        while (*p != '\0' && *p != ',' && !isspace((unsigned char)*p))
            p++;
        if (n == cap) {
            cap *= 2;
            items = realloc(items, cap * sizeof(*items));
            if (items == NULL)
                abort();
        }
        items[n++] = xstrndup(start, (size_t)(p - start));
    }
    *items_out = items;
    return n;
}

static bool parse_port(const char *s)
{
    char *end;
    long v;

    if (*s == '\0' || !isdigit((unsigned char)*s))
        return false;
    errno = 0;
    v = strtol(s, &end, 10);
    return errno == 0 && *end == '\0' && v >= 1 && v <= 65535;
}

static bool is_ip_address(const char *s)
{
    unsigned char buf[16];

    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* "inet:HOST:PORT" (HOST may be [IPv6]) or "unix:/PATH". */
static bool parse_endpoint(const char *spec, struct endpoint *e, struct reporter *r, const char *key)
{
    memset(e, 0, sizeof(*e));
    if (strncmp(spec, "inet:", 5) == 0) {
        const char *hp = spec + 5;
        const char *colon;
        char *host;

        if (*hp == '[') {
            const char *close = strchr(hp, ']');
            if (close == NULL || close[1] != ':') {
                problem(r, "%s: bad endpoint '%s': expected inet:[IPV6]:PORT", key, spec);
                return false;
            }
            host = xstrndup(hp + 1, (size_t)(close - hp - 1));
            colon = close + 1;
            {
                unsigned char a6[16];
                if (inet_pton(AF_INET6, host, a6) != 1) {
                    problem(r, "%s: '%s' is not an IPv6 address in '%s'", key, host, spec);
                    free(host);
                    return false;
                }
            }
        } else {
            colon = strrchr(hp, ':');
            if (colon == NULL || colon == hp) {
                problem(r, "%s: bad endpoint '%s': expected inet:HOST:PORT", key, spec);
                return false;
            }
            host = xstrndup(hp, (size_t)(colon - hp));
            if (strchr(host, ':') != NULL) {
                problem(r, "%s: bad endpoint '%s': write IPv6 addresses as inet:[ADDR]:PORT", key,
                        spec);
                free(host);
                return false;
            }
        }
        if (!parse_port(colon + 1)) {
            problem(r, "%s: bad port in '%s': expected 1-65535", key, spec);
            free(host);
            return false;
        }
        e->kind = ENDPOINT_INET;
        e->host = host;
        e->port = xstrndup(colon + 1, strlen(colon + 1));
    } else if (strncmp(spec, "unix:", 5) == 0) {
        const char *path = spec + 5;

        if (path[0] != '/') {
            problem(r, "%s: unix socket path in '%s' must be absolute", key, spec);
            return false;
        }
        /* sun_path holds 108 bytes on Linux, the terminating NUL included. */
        if (strlen(path) > 107) {
            problem(r, "%s: unix socket path in '%s' is longer than 107 bytes", key, spec);
            return false;
        }
        e->kind = ENDPOINT_UNIX;
        e->path = xstrndup(path, strlen(path));
    } else {
        problem(r, "%s: bad endpoint '%s': expected inet:HOST:PORT or unix:/PATH", key, spec);
        return false;
    }
    e->spec = xstrndup(spec, strlen(spec));
    return true;
}

bool endpoint_equal(const struct endpoint *a, const struct endpoint *b)
{
    if (a->kind != b->kind)
        return false;
    if (a->kind == ENDPOINT_UNIX)
        return strcmp(a->path, b->path) == 0;
    return strcmp(a->host, b->host) == 0 && strcmp(a->port, b->port) == 0;
}

/* Each setter parses value and stores it in c, or reports and leaves c alone. */
typedef bool setter_fn(struct config *c, const char *key, const char *value, struct reporter *r);

static bool set_listen(struct config *c, const char *key, const char *value, struct reporter *r)
{
    char **items;
    size_t n = split_list(value, &items);
    struct endpoint *eps = calloc(n ? n : 1, sizeof(*eps));
    size_t ok = 0;
    bool good = true;

    if (eps == NULL)
        abort();
    if (n == 0) {
        problem(r, "%s: needs at least one endpoint", key);
        good = false;
    }
    for (size_t i = 0; i < n && good; i++) {
        if (!parse_endpoint(items[i], &eps[ok], r, key)) {
            good = false;
            break;
        }
        for (size_t j = 0; j < ok; j++)
            if (endpoint_equal(&eps[j], &eps[ok])) {
                problem(r, "%s: endpoint '%s' is listed twice", key, items[i]);
                good = false;
            }
        ok++;
    }
    strings_free(items, n);
    if (!good) {
        endpoints_free(eps, ok);
        return false;
    }
    endpoints_free(c->listen, c->listen_count);
    c->listen = eps;
    c->listen_count = n;
    return true;
}

static bool set_http_listen(struct config *c, const char *key, const char *value, struct reporter *r)
{
    char **items;
    size_t n = split_list(value, &items);
    struct endpoint *e = NULL;
    bool good = true;

    if (n > 1) {
        problem(r, "%s: takes one endpoint, not %zu", key, n);
        good = false;
    } else if (n == 1) {
        e = calloc(1, sizeof(*e));
        if (e == NULL)
            abort();
        if (!parse_endpoint(items[0], e, r, key)) {
            free(e);
            e = NULL;
            good = false;
        }
    }
    strings_free(items, n);
    if (!good)
        return false;
    if (c->http_listen) {
        endpoint_clear(c->http_listen);
        free(c->http_listen);
    }
    c->http_listen = e;
    return true;
}

static bool parse_unsigned(const char *value, unsigned long max, unsigned long *out, int base)
{
    char *end;
    unsigned long v;

    if (*value == '\0' || !isdigit((unsigned char)*value))
        return false;
    errno = 0;
    v = strtoul(value, &end, base);
    if (errno != 0 || *end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

static bool set_max_connections(struct config *c, const char *key, const char *value,
                                struct reporter *r)
{
    unsigned long v;

    if (!parse_unsigned(value, 1000000, &v, 10) || v < 1) {
        problem(r, "%s: '%s' is not a number from 1 to 1000000", key, value);
        return false;
    }
    c->max_connections = (unsigned)v;
    return true;
}

static bool set_unix_socket_mode(struct config *c, const char *key, const char *value,
                                 struct reporter *r)
{
    unsigned long v;

    if (!parse_unsigned(value, 0777, &v, 8)) {
        problem(r, "%s: '%s' is not an octal file mode such as 0660", key, value);
        return false;
    }
    c->unix_socket_mode = (unsigned)v;
    return true;
}

/* "10", "10s", "5m", "2h", "1d", "300ms"; at least min seconds. */
static bool parse_duration(const char *value, double *out)
{
    char *end;
    double v, unit = 1;

    if (!isdigit((unsigned char)*value))
        return false;
    errno = 0;
    v = strtod(value, &end);
    if (errno != 0)
        return false;
    if (*end != '\0') {
        switch (*end) {
        case 's': unit = 1; break;
        case 'm':
            /* "ms": milliseconds, for the short DNS timeouts and waits. */
            if (end[1] == 's' && end[2] == '\0')
                return (*out = v / 1000.0), true;
            unit = 60;
            break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        default: return false;
        }
        if (end[1] != '\0')
            return false;
    }
    v *= unit;
    if (v > 365.0 * 86400)
        return false;
    *out = v;
    return true;
}

static bool set_duration(double *slot, double min, const char *key, const char *value,
                         struct reporter *r)
{
    double v;

    if (!parse_duration(value, &v)) {
        problem(r, "%s: '%s' is not a duration (a number with ms, s, m, h or d)", key, value);
        return false;
    }
    if (v < min) {
        problem(r, "%s: '%s' is shorter than %gs", key, value, min);
        return false;
    }
    *slot = v;
    return true;
}

static bool set_idle_timeout(struct config *c, const char *key, const char *value,
                             struct reporter *r)
{
    return set_duration(&c->idle_timeout, 1, key, value, r);
}

static bool set_shutdown_timeout(struct config *c, const char *key, const char *value,
                                 struct reporter *r)
{
    return set_duration(&c->shutdown_timeout, 0, key, value, r);
}

static bool set_log_requests(struct config *c, const char *key, const char *value,
                             struct reporter *r)
{
    if (strcasecmp(value, "yes") == 0 || strcasecmp(value, "true") == 0 ||
        strcmp(value, "1") == 0) {
        c->log_requests = true;
    } else if (strcasecmp(value, "no") == 0 || strcasecmp(value, "false") == 0 ||
               strcmp(value, "0") == 0) {
        c->log_requests = false;
    } else {
        problem(r, "%s: '%s' is not yes or no", key, value);
        return false;
    }
    return true;
}

static void replace_string(char **slot, const char *value)
{
    free(*slot);
    *slot = xstrndup(value, strlen(value));
}

/* memory | redis://HOST:PORT[/DB] | redis+unix:///PATH[?db=N] */
static bool set_store(struct config *c, const char *key, const char *value, struct reporter *r)
{
    unsigned long db;

    if (strcmp(value, "memory") == 0) {
        /* fine */
    } else if (strncmp(value, "redis://", 8) == 0) {
        const char *hp = value + 8;
        const char *slash = strchr(hp, '/');
        size_t hplen = slash ? (size_t)(slash - hp) : strlen(hp);
        char *hostport = xstrndup(hp, hplen);
        char *colon = strrchr(hostport, ':');
        bool good = colon != NULL && colon != hostport && parse_port(colon + 1);

        free(hostport);
        if (!good || (slash && !parse_unsigned(slash + 1, 1000000, &db, 10))) {
            problem(r, "%s: bad Redis address '%s': expected redis://HOST:PORT[/DB]", key, value);
            return false;
        }
    } else if (strncmp(value, "redis+unix://", 13) == 0) {
        const char *path = value + 13;
        const char *q = strchr(path, '?');

        if (path[0] != '/' || (q && (strncmp(q, "?db=", 4) != 0 ||
                                     !parse_unsigned(q + 4, 1000000, &db, 10)))) {
            problem(r, "%s: bad Redis socket '%s': expected redis+unix:///PATH[?db=N]", key, value);
            return false;
        }
    } else {
        problem(r, "%s: '%s' is not memory, redis://HOST:PORT[/DB] or redis+unix:///PATH", key,
                value);
        return false;
    }
    replace_string(&c->store, value);
    return true;
}

static bool set_redis_password(struct config *c, const char *key, const char *value,
                               struct reporter *r)
{
    (void)key;
    (void)r;
    replace_string(&c->redis_password, value);
    return true;
}

static bool is_name_char(int ch)
{
    return isalnum(ch) || ch == '.' || ch == '-' || ch == '_';
}

static bool set_host_id(struct config *c, const char *key, const char *value, struct reporter *r)
{
    if (*value == '\0') {
        problem(r, "%s: must not be empty", key);
        return false;
    }
    for (const char *p = value; *p; p++)
        if (!is_name_char((unsigned char)*p)) {
            problem(r, "%s: '%s' may hold only letters, digits, '.', '-' and '_'", key, value);
            return false;
        }
    replace_string(&c->host_id, value);
    return true;
}

static bool set_local_domains(struct config *c, const char *key, const char *value,
                              struct reporter *r)
{
    char **items;
    size_t n = split_list(value, &items);

    for (size_t i = 0; i < n; i++) {
        for (char *p = items[i]; *p; p++) {
            if (!is_name_char((unsigned char)*p)) {
                problem(r, "%s: '%s' is not a domain name", key, items[i]);
                strings_free(items, n);
                return false;
            }
            /* Domains compare case-insensitively; store them folded once. */
            *p = (char)tolower((unsigned char)*p);
        }
    }
    strings_free(c->local_domains, c->local_domain_count);
    c->local_domains = items;
    c->local_domain_count = n;
    return true;
}

/* "IP" or "IP:PORT" or "[IPV6]:PORT" or a bare IPv6 address. */
static bool valid_nameserver(const char *s)
{
    char host[64];
    const char *port = NULL;

    if (is_ip_address(s))
        return true;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || (size_t)(close - s - 1) >= sizeof(host))
            return false;
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        if (close[1] == '\0')
            return is_ip_address(host);
        if (close[1] != ':')
            return false;
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
            return false;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        port = colon + 1;
    }
    return is_ip_address(host) && parse_port(port);
}

static bool set_resolver(struct config *c, const char *key, const char *value, struct reporter *r)
{
    char **items;
    size_t n = split_list(value, &items);
    bool good = n > 0;

    if (n == 1 && strcmp(items[0], "system") == 0) {
        /* resolv.conf */
    } else {
        for (size_t i = 0; i < n; i++)
            if (!valid_nameserver(items[i])) {
                problem(r, "%s: '%s' is not system or a name server IP or IP:PORT", key, items[i]);
                good = false;
                break;
            }
        if (n == 0)
            problem(r, "%s: needs system or a list of name server addresses", key);
    }
    strings_free(items, n);
    if (good)
        replace_string(&c->resolver, value);
    return good;
}

static bool set_tdns_client(struct config *c, const char *key, const char *value,
                            struct reporter *r)
{
    if (*value != '\0' && !is_ip_address(value)) {
        problem(r, "%s: '%s' is not an IP address", key, value);
        return false;
    }
    replace_string(&c->tdns_client, value);
    return true;
}

static bool set_windows(struct config *c, const char *key, const char *value, struct reporter *r)
{
    char **items;
    size_t n = split_list(value, &items);
    double seconds[8];
    bool good = n > 0 && n <= 8;

    if (n == 0)
        problem(r, "%s: needs at least one window such as 1m", key);
    else if (n > 8)
        problem(r, "%s: at most 8 windows, not %zu", key, n);
    for (size_t i = 0; i < n && good; i++) {
        if (!parse_duration(items[i], &seconds[i]) || seconds[i] < 1 || strlen(items[i]) > 15) {
            problem(r, "%s: '%s' is not a duration of at least 1s", key, items[i]);
            good = false;
        }
        for (size_t j = 0; j < i && good; j++)
            if (strcmp(items[i], items[j]) == 0) {
                problem(r, "%s: '%s' is listed twice", key, items[i]);
                good = false;
            }
    }
    if (good) {
        c->window_count = (unsigned)n;
        for (size_t i = 0; i < n; i++) {
            snprintf(c->window_name[i], sizeof(c->window_name[i]), "%s", items[i]);
            c->window_seconds[i] = seconds[i];
        }
    }
    strings_free(items, n);
    return good;
}

static bool set_slots(unsigned *slot, unsigned long min, unsigned long max, const char *key,
                      const char *value, struct reporter *r)
{
    unsigned long v;

    if (!parse_unsigned(value, max, &v, 10) || v < min) {
        problem(r, "%s: '%s' is not a number from %lu to %lu", key, value, min, max);
        return false;
    }
    *slot = (unsigned)v;
    return true;
}

static bool set_culprit_slots(struct config *c, const char *key, const char *value,
                              struct reporter *r)
{
    /* Bounded: a new key scans the scores, and /status reads every slot. */
    return set_slots(&c->culprit_slots, 1, 1000, key, value, r);
}

static bool set_session_slots(struct config *c, const char *key, const char *value,
                              struct reporter *r)
{
    return set_slots(&c->session_slots, 64, 16777216, key, value, r);
}

static bool set_session_timeout(struct config *c, const char *key, const char *value,
                                struct reporter *r)
{
    return set_duration(&c->session_timeout, 1, key, value, r);
}

static bool set_transaction_timeout(struct config *c, const char *key, const char *value,
                                    struct reporter *r)
{
    return set_duration(&c->transaction_timeout, 1, key, value, r);
}

static bool set_count_messages_at(struct config *c, const char *key, const char *value,
                                  struct reporter *r)
{
    if (strcmp(value, "auto") == 0)
        c->count_messages_at = COUNT_AT_AUTO;
    else if (strcmp(value, "rcpt") == 0)
        c->count_messages_at = COUNT_AT_RCPT;
    else if (strcmp(value, "end-of-message") == 0)
        c->count_messages_at = COUNT_AT_END_OF_MESSAGE;
    else {
        problem(r, "%s: '%s' is not auto, rcpt or end-of-message", key, value);
        return false;
    }
    return true;
}

static bool set_store_flush_interval(struct config *c, const char *key, const char *value,
                                     struct reporter *r)
{
    return set_duration(&c->store_flush_interval, 0.1, key, value, r);
}

static bool set_store_timeout(struct config *c, const char *key, const char *value,
                              struct reporter *r)
{
    return set_duration(&c->store_timeout, 0.1, key, value, r);
}

static bool set_store_retention(struct config *c, const char *key, const char *value,
                                struct reporter *r)
{
    return set_duration(&c->store_retention, 3600, key, value, r);
}

static bool set_store_backlog(struct config *c, const char *key, const char *value,
                              struct reporter *r)
{
    if (!set_duration(&c->store_backlog, 120, key, value, r))
        return false;
    if (c->store_backlog > 86400) {
        problem(r, "%s: '%s' is longer than 1d", key, value);
        return false;
    }
    return true;
}

static bool set_dns_lookups(struct config *c, const char *key, const char *value,
                            struct reporter *r)
{
    static const struct {
        const char *name;
        unsigned bit;
    } kinds[] = {{"client_ptr", DNS_LOOKUP_CLIENT_PTR},
                 {"client_a", DNS_LOOKUP_CLIENT_A},
                 {"sender_mx", DNS_LOOKUP_SENDER_MX},
                 {"recipient_mx", DNS_LOOKUP_RECIPIENT_MX}};
    char **items;
    size_t n = split_list(value, &items);
    unsigned mask = 0;
    bool good = true;

    for (size_t i = 0; i < n && good; i++) {
        size_t k = 0;

        while (k < sizeof(kinds) / sizeof(kinds[0]) && strcmp(items[i], kinds[k].name) != 0)
            k++;
        if (k == sizeof(kinds) / sizeof(kinds[0])) {
            problem(r, "%s: '%s' is not client_ptr, client_a, sender_mx or recipient_mx", key,
                    items[i]);
            good = false;
        } else {
            mask |= kinds[k].bit;
        }
    }
    strings_free(items, n);
    if (good && (mask & DNS_LOOKUP_CLIENT_A) && !(mask & DNS_LOOKUP_CLIENT_PTR)) {
        problem(r, "%s: client_a looks up the name client_ptr found: it needs client_ptr", key);
        good = false;
    }
    if (good)
        c->dns_lookups = mask;
    return good;
}

static bool set_dns_timeout(struct config *c, const char *key, const char *value,
                            struct reporter *r)
{
    if (!set_duration(&c->dns_timeout, 0.01, key, value, r))
        return false;
    if (c->dns_timeout > 60) {
        problem(r, "%s: '%s' is longer than 60s", key, value);
        return false;
    }
    return true;
}

static bool set_dns_tries(struct config *c, const char *key, const char *value, struct reporter *r)
{
    return set_slots(&c->dns_tries, 1, 10, key, value, r);
}

static bool set_dns_wait(struct config *c, const char *key, const char *value, struct reporter *r)
{
    if (!set_duration(&c->dns_wait, 0, key, value, r))
        return false;
    if (c->dns_wait > 60) {
        problem(r, "%s: '%s' is longer than 60s (Postfix's policy timeout is 100s)", key, value);
        return false;
    }
    return true;
}

static bool set_dns_max_outstanding(struct config *c, const char *key, const char *value,
                                    struct reporter *r)
{
    return set_slots(&c->dns_max_outstanding, 1, 65536, key, value, r);
}

static bool set_dns_cache_size(struct config *c, const char *key, const char *value,
                               struct reporter *r)
{
    return set_slots(&c->dns_cache_size, 16, 4194304, key, value, r);
}

static bool set_dns_cache_max_ttl(struct config *c, const char *key, const char *value,
                                  struct reporter *r)
{
    return set_duration(&c->dns_cache_max_ttl, 0, key, value, r);
}

/* A list of IP or IP/LEN networks into items_out and count; false (reported) if one is bad. */
static bool set_networks(char ***items_out, size_t *count, const char *key, const char *value,
                         struct reporter *r)
{
    char **items;
    size_t n = split_list(value, &items);

    for (size_t i = 0; i < n; i++) {
        char addr[64];
        const char *slash = strchr(items[i], '/');
        size_t len = slash ? (size_t)(slash - items[i]) : strlen(items[i]);
        unsigned long bits = 0, max = strchr(items[i], ':') ? 128 : 32;
        char *end = NULL;

        if (len < sizeof(addr)) {
            memcpy(addr, items[i], len);
            addr[len] = '\0';
        }
        if (slash)
            bits = strtoul(slash + 1, &end, 10);
        if (len >= sizeof(addr) || !is_ip_address(addr) ||
            (slash && (slash[1] == '\0' || *end != '\0' || bits > max))) {
            problem(r, "%s: '%s' is not an IP address or network (IP/LEN)", key, items[i]);
            strings_free(items, n);
            return false;
        }
    }
    strings_free(*items_out, *count);
    *items_out = items;
    *count = n;
    return true;
}

static bool set_feed_clients(struct config *c, const char *key, const char *value,
                             struct reporter *r)
{
    return set_networks(&c->feed_clients, &c->feed_client_count, key, value, r);
}

static bool set_tdns_stale_after(struct config *c, const char *key, const char *value,
                                 struct reporter *r)
{
    return set_duration(&c->tdns_stale_after, 1, key, value, r);
}


/* ------------------------------------------------------ detector, actions */

/* A decimal number in [min, max]. */
static bool set_number(double *slot, double min, double max, const char *key, const char *value,
                       struct reporter *r)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(value, &end);
    if (*value == '\0' || *end != '\0' || errno != 0 || !(v >= min && v <= max)) {
        problem(r, "%s: '%s' is not a number from %g to %g", key, value, min, max);
        return false;
    }
    *slot = v;
    return true;
}

static bool set_yes_no(bool *slot, const char *key, const char *value, struct reporter *r)
{
    if (strcasecmp(value, "yes") == 0 || strcasecmp(value, "true") == 0 ||
        strcmp(value, "1") == 0) {
        *slot = true;
    } else if (strcasecmp(value, "no") == 0 || strcasecmp(value, "false") == 0 ||
               strcmp(value, "0") == 0) {
        *slot = false;
    } else {
        problem(r, "%s: '%s' is not yes or no", key, value);
        return false;
    }
    return true;
}

static bool set_detect_window(struct config *c, const char *key, const char *value,
                              struct reporter *r)
{
    return set_duration(&c->detect_window, 60, key, value, r);
}

static bool set_detect_loud_after(struct config *c, const char *key, const char *value,
                                  struct reporter *r)
{
    return set_duration(&c->detect_loud_after, 0, key, value, r);
}

static bool set_detect_quiet_after(struct config *c, const char *key, const char *value,
                                   struct reporter *r)
{
    return set_duration(&c->detect_quiet_after, 0, key, value, r);
}

static bool set_detect_mx_factor(struct config *c, const char *key, const char *value,
                                 struct reporter *r)
{
    return set_number(&c->detect_mx_factor, 1, 1e6, key, value, r);
}

static bool set_detect_domains_factor(struct config *c, const char *key, const char *value,
                                      struct reporter *r)
{
    return set_number(&c->detect_domains_factor, 1, 1e6, key, value, r);
}

static bool set_detect_alpha_factor(struct config *c, const char *key, const char *value,
                                    struct reporter *r)
{
    return set_number(&c->detect_alpha_factor, 1, 100, key, value, r);
}

static bool set_detect_min_mx(struct config *c, const char *key, const char *value,
                              struct reporter *r)
{
    return set_slots(&c->detect_min_mx, 1, 100000000, key, value, r);
}

static bool set_detect_min_domains(struct config *c, const char *key, const char *value,
                                   struct reporter *r)
{
    return set_slots(&c->detect_min_domains, 1, 100000000, key, value, r);
}

static bool set_detect_min_messages(struct config *c, const char *key, const char *value,
                                    struct reporter *r)
{
    return set_slots(&c->detect_min_messages, 1, 100000000, key, value, r);
}

/* "" (learned) or "LOW-HIGH", e.g. 0.35-0.70. */
static bool set_detect_alpha_band(struct config *c, const char *key, const char *value,
                                  struct reporter *r)
{
    double low, high;
    char *end;

    if (*value == '\0') {
        c->detect_alpha_low = c->detect_alpha_high = 0;
        return true;
    }
    low = strtod(value, &end);
    if (end == value || *end != '-' || !(low > 0)) {
        problem(r, "%s: '%s' is not empty (learned) or LOW-HIGH, e.g. 0.35-0.70", key, value);
        return false;
    }
    value = end + 1;
    high = strtod(value, &end);
    if (end == value || *end != '\0' || !(high > low) || high > 1000) {
        problem(r, "%s: '%s' is not empty (learned) or LOW-HIGH with 0 < LOW < HIGH", key,
                value);
        return false;
    }
    c->detect_alpha_low = low;
    c->detect_alpha_high = high;
    return true;
}

const char *const config_baseline_names[CONFIG_BASELINE_SIGNALS] = {
    "mx", "a", "ptr", "nc", "nf", "relay_rcpt", "relay_domains", "alpha"};

/* NAME=VALUE items; names not given keep their built-in values. */
static bool set_baseline_start(struct config *c, const char *key, const char *value,
                               struct reporter *r)
{
    static const double builtin[CONFIG_BASELINE_SIGNALS] = {2, 10, 5, 20, 40, 20, 2, 0.5};
    double v[CONFIG_BASELINE_SIGNALS];
    char **items;
    size_t n = split_list(value, &items);
    bool good = true;

    memcpy(v, builtin, sizeof(v));
    for (size_t i = 0; i < n && good; i++) {
        char *eq = strchr(items[i], '=');
        size_t s;

        for (s = 0; eq && s < CONFIG_BASELINE_SIGNALS; s++)
            if (strlen(config_baseline_names[s]) == (size_t)(eq - items[i]) &&
                memcmp(items[i], config_baseline_names[s], (size_t)(eq - items[i])) == 0)
                break;
        if (eq == NULL || s == CONFIG_BASELINE_SIGNALS) {
            problem(r, "%s: '%s' is not NAME=VALUE with NAME one of mx, a, ptr, nc, nf, "
                       "relay_rcpt, relay_domains, alpha", key, items[i]);
            good = false;
        } else if (!set_number(&v[s], s == CONFIG_BASELINE_SIGNALS - 1 ? 0.001 : 0, 1e9, key,
                               eq + 1, r)) {
            good = false;
        }
    }
    strings_free(items, n);
    if (good)
        memcpy(c->baseline_start, v, sizeof(v));
    return good;
}

static bool set_baseline_hour_days(struct config *c, const char *key, const char *value,
                                   struct reporter *r)
{
    return set_slots(&c->baseline_hour_days, 0, 365, key, value, r);
}

/*
 * A Postfix access(5) action RelayWatch may answer: DUNNO, DEFER, DEFER_IF_PERMIT,
 * REJECT, HOLD (each but DUNNO with optional text), or a 4XX/5XX code with text.
 * Text with an enhanced status code keeps it; Postfix adds its own otherwise.
 */
static bool set_action(char **slot, const char *key, const char *value, struct reporter *r)
{
    static const char *const verbs[] = {"DUNNO", "DEFER", "DEFER_IF_PERMIT", "REJECT", "HOLD"};
    size_t wl = strcspn(value, " \t");
    bool known = false;

    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strlen(verbs[i]) == wl && strncasecmp(value, verbs[i], wl) == 0)
            known = true;
    if (!known && wl == 3 && (value[0] == '4' || value[0] == '5') && isdigit((unsigned char)value[1]) &&
        isdigit((unsigned char)value[2]) && value[3] != '\0')
        known = true;
    if (!known || (wl == 5 && strncasecmp(value, "DUNNO", 5) == 0 && value[wl] != '\0')) {
        problem(r, "%s: '%s' is not DUNNO, DEFER [text], DEFER_IF_PERMIT [text], REJECT "
                   "[text], HOLD [text] or 4XX/5XX text", key, value);
        return false;
    }
    for (const char *p = value; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
            problem(r, "%s: the text may hold printable ASCII only", key);
            return false;
        }
    replace_string(slot, value);
    return true;
}

static bool set_culprit_action(struct config *c, const char *key, const char *value,
                               struct reporter *r)
{
    return set_action(&c->culprit_action, key, value, r);
}

static bool set_culprit_escalate_action(struct config *c, const char *key, const char *value,
                                        struct reporter *r)
{
    return set_action(&c->culprit_escalate_action, key, value, r);
}

static bool set_loud_relay_action(struct config *c, const char *key, const char *value,
                                  struct reporter *r)
{
    return set_action(&c->loud_relay_action, key, value, r);
}

static bool set_limit_action(struct config *c, const char *key, const char *value,
                             struct reporter *r)
{
    return set_action(&c->limit_action, key, value, r);
}

static bool set_block_action(struct config *c, const char *key, const char *value,
                             struct reporter *r)
{
    return set_action(&c->block_action, key, value, r);
}

static bool set_escalate_after(struct config *c, const char *key, const char *value,
                               struct reporter *r)
{
    return set_duration(&c->escalate_after, 0, key, value, r);
}

static bool set_throttle_cooldown(struct config *c, const char *key, const char *value,
                                  struct reporter *r)
{
    return set_duration(&c->throttle_cooldown, 1, key, value, r);
}

static bool set_release_grace(struct config *c, const char *key, const char *value,
                              struct reporter *r)
{
    return set_duration(&c->release_grace, 0, key, value, r);
}

static bool set_culprit_min_share(struct config *c, const char *key, const char *value,
                                  struct reporter *r)
{
    return set_number(&c->culprit_min_share, 0, 1, key, value, r);
}

static bool set_culprit_min_domains(struct config *c, const char *key, const char *value,
                                    struct reporter *r)
{
    return set_slots(&c->culprit_min_domains, 1, 100000000, key, value, r);
}

static bool set_throttle_slots(struct config *c, const char *key, const char *value,
                               struct reporter *r)
{
    return set_slots(&c->throttle_slots, 16, 1000000, key, value, r);
}

static bool set_quarantine(struct config *c, const char *key, const char *value,
                           struct reporter *r)
{
    return set_yes_no(&c->quarantine, key, value, r);
}

static bool set_postfix_config_directory(struct config *c, const char *key, const char *value,
                                         struct reporter *r)
{
    /* Handed to a program run as root: an absolute path of plain characters only. */
    if (value[0] != '/' || strlen(value) > 1024 || strspn(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                                 "abcdefghijklmnopqrstuvwxyz"
                                                                 "0123456789/._-+@") !=
                                                         strlen(value)) {
        problem(r, "%s: '%s' must be an absolute path of letters, digits and / . _ - + @", key,
                value);
        return false;
    }
    replace_string(&c->postfix_config_directory, value);
    return true;
}

static bool set_quarantine_lookback(struct config *c, const char *key, const char *value,
                                    struct reporter *r)
{
    return set_duration(&c->quarantine_lookback, 1, key, value, r);
}

static bool set_quarantine_messages(struct config *c, const char *key, const char *value,
                                    struct reporter *r)
{
    return set_slots(&c->quarantine_messages, 1, 100000, key, value, r);
}

static bool set_quarantine_slots(struct config *c, const char *key, const char *value,
                                 struct reporter *r)
{
    return set_slots(&c->quarantine_slots, 16, 65536, key, value, r);
}

static bool set_user(struct config *c, const char *key, const char *value, struct reporter *r)
{
    if (*value == '\0' || strcmp(value, "root") == 0 || strcmp(value, "0") == 0) {
        problem(r, "%s: '%s': the daemon parses what senders send and must not run as root",
                key, value);
        return false;
    }
    replace_string(&c->user, value);
    return true;
}

static bool network_parse(const char *net, struct config_network *out);

static bool set_never_throttle_clients(struct config *c, const char *key, const char *value,
                                       struct reporter *r)
{
    struct config_network *nets;

    if (!set_networks(&c->never_throttle_clients, &c->never_throttle_client_count, key, value, r))
        return false;
    nets = calloc(c->never_throttle_client_count + 1, sizeof(*nets));
    if (nets == NULL)
        abort();
    for (size_t i = 0; i < c->never_throttle_client_count; i++)
        if (!network_parse(c->never_throttle_clients[i], &nets[i]))
            abort(); /* set_networks checked every one */
    free(c->never_throttle_nets);
    c->never_throttle_nets = nets;
    return true;
}

static bool set_never_throttle_sasl_users(struct config *c, const char *key, const char *value,
                                          struct reporter *r)
{
    char **items;
    size_t n = split_list(value, &items);

    strings_free(c->never_throttle_sasl_users, c->never_throttle_sasl_user_count);
    c->never_throttle_sasl_users = items;
    c->never_throttle_sasl_user_count = n;
    (void)key;
    (void)r;
    return true;
}

/* Senders: user@domain (exact, the domain without case) or a domain (every sender in it). */
static bool set_never_throttle_senders(struct config *c, const char *key, const char *value,
                                       struct reporter *r)
{
    char **items;
    size_t n = split_list(value, &items);

    for (size_t i = 0; i < n; i++) {
        char *at = strrchr(items[i], '@');
        char *domain = at ? at + 1 : items[i];

        if (*domain == '\0') {
            problem(r, "%s: '%s' is not user@domain or a domain", key, items[i]);
            strings_free(items, n);
            return false;
        }
        for (char *p = domain; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        if (at == items[i]) /* "@example.com": the domain */
            memmove(items[i], items[i] + 1, strlen(items[i]));
    }
    strings_free(c->never_throttle_senders, c->never_throttle_sender_count);
    c->never_throttle_senders = items;
    c->never_throttle_sender_count = n;
    return true;
}

static bool set_limit_window(struct config *c, const char *key, const char *value,
                             struct reporter *r)
{
    return set_duration(&c->limit_window, 60, key, value, r);
}

static bool set_limit_count(struct config *c, const char *key, const char *value,
                            struct reporter *r)
{
    if (strcasecmp(value, "recipients") == 0) {
        c->limit_count_messages = false;
    } else if (strcasecmp(value, "messages") == 0) {
        c->limit_count_messages = true;
    } else {
        problem(r, "%s: '%s' is not recipients or messages", key, value);
        return false;
    }
    return true;
}

static bool set_limit_sasl_username(struct config *c, const char *key, const char *value,
                                    struct reporter *r)
{
    return set_slots(&c->limit_sasl_username, 0, 1000000000, key, value, r);
}

static bool set_limit_client_address(struct config *c, const char *key, const char *value,
                                     struct reporter *r)
{
    return set_slots(&c->limit_client_address, 0, 1000000000, key, value, r);
}

static bool set_limit_sender_domain(struct config *c, const char *key, const char *value,
                                    struct reporter *r)
{
    return set_slots(&c->limit_sender_domain, 0, 1000000000, key, value, r);
}

static bool set_limit_domains(struct config *c, const char *key, const char *value,
                              struct reporter *r)
{
    return set_slots(&c->limit_domains, 0, 1000000000, key, value, r);
}

static bool set_monitor_only(struct config *c, const char *key, const char *value,
                             struct reporter *r)
{
    return set_yes_no(&c->monitor_only, key, value, r);
}

static bool set_fast_path(struct config *c, const char *key, const char *value,
                          struct reporter *r)
{
    return set_yes_no(&c->fast_path, key, value, r);
}

static bool set_fast_window(struct config *c, const char *key, const char *value,
                            struct reporter *r)
{
    return set_duration(&c->fast_window, 0.1, key, value, r);
}

static bool set_fast_halflife(struct config *c, const char *key, const char *value,
                              struct reporter *r)
{
    return set_duration(&c->fast_halflife, 60, key, value, r);
}

static bool set_fast_min_domains(struct config *c, const char *key, const char *value,
                                 struct reporter *r)
{
    return set_slots(&c->fast_min_domains, 1, 1000000, key, value, r);
}

static bool set_fast_min_mx(struct config *c, const char *key, const char *value,
                            struct reporter *r)
{
    return set_slots(&c->fast_min_mx, 1, 1000000, key, value, r);
}

static bool set_fast_factor(struct config *c, const char *key, const char *value,
                            struct reporter *r)
{
    return set_number(&c->fast_factor, 1, 1000, key, value, r);
}

static bool set_fast_learn_period(struct config *c, const char *key, const char *value,
                                  struct reporter *r)
{
    return set_duration(&c->fast_learn_period, 1, key, value, r);
}

static bool set_fast_site_min_keys(struct config *c, const char *key, const char *value,
                                   struct reporter *r)
{
    return set_slots(&c->fast_site_min_keys, 1, 65536, key, value, r);
}

static bool set_fast_slots(struct config *c, const char *key, const char *value,
                           struct reporter *r)
{
    return set_slots(&c->fast_slots, 16, 65536, key, value, r);
}

static bool set_alert_command(struct config *c, const char *key, const char *value,
                              struct reporter *r)
{
    if (*value != '\0' && *value != '/') {
        problem(r, "%s: '%s' must start with an absolute path", key, value);
        return false;
    }
    replace_string(&c->alert_command, value);
    return true;
}

static bool network_parse(const char *net, struct config_network *out)
{
    char addr[64];
    const char *slash = strchr(net, '/');
    size_t len = slash ? (size_t)(slash - net) : strlen(net);

    if (len >= sizeof(addr))
        return false;
    memcpy(addr, net, len);
    addr[len] = '\0';
    out->family = strchr(addr, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(out->family, addr, out->addr) != 1)
        return false;
    out->bits = slash ? (unsigned)strtoul(slash + 1, NULL, 10)
                      : (out->family == AF_INET ? 32u : 128u);
    return true;
}

bool config_address_in(const char *text, size_t len, const struct config_network *networks,
                       size_t count)
{
    unsigned char a[16];
    char addr[64];
    int family;

    if (count == 0 || len == 0 || len >= sizeof(addr))
        return false;
    memcpy(addr, text, len);
    addr[len] = '\0';
    family = memchr(addr, ':', len) ? AF_INET6 : AF_INET;
    if (inet_pton(family, addr, a) != 1)
        return false;
    for (size_t i = 0; i < count; i++) {
        const struct config_network *n = &networks[i];
        unsigned bits = n->bits, bytes = family == AF_INET ? 4 : 16, k;

        if (n->family != family)
            continue;
        for (k = 0; k < bytes && bits > 0; k++, bits = bits > 8 ? bits - 8 : 0) {
            unsigned char mask = bits >= 8 ? 0xff : (unsigned char)(0xff << (8 - bits));

            if ((a[k] & mask) != (n->addr[k] & mask))
                break;
        }
        if (k == bytes || bits == 0)
            return true;
    }
    return false;
}

static const struct key_entry {
    const char *name;
    setter_fn *set;
    const char *default_value; /* NULL: computed in config_new */
} keys[CK_COUNT] = {
    [CK_LISTEN] = {"listen", set_listen, "inet:127.0.0.1:10040"},
    [CK_UNIX_SOCKET_MODE] = {"unix_socket_mode", set_unix_socket_mode, "0666"},
    [CK_MAX_CONNECTIONS] = {"max_connections", set_max_connections, "2048"},
    [CK_IDLE_TIMEOUT] = {"idle_timeout", set_idle_timeout, "330s"},
    [CK_SHUTDOWN_TIMEOUT] = {"shutdown_timeout", set_shutdown_timeout, "10s"},
    [CK_LOG_REQUESTS] = {"log_requests", set_log_requests, "no"},
    [CK_STORE] = {"store", set_store, "memory"},
    [CK_REDIS_PASSWORD] = {"redis_password", set_redis_password, ""},
    [CK_HOST_ID] = {"host_id", set_host_id, NULL},
    [CK_LOCAL_DOMAINS] = {"local_domains", set_local_domains, ""},
    [CK_RESOLVER] = {"resolver", set_resolver, "system"},
    [CK_TDNS_CLIENT] = {"tdns_client", set_tdns_client, ""},
    [CK_HTTP_LISTEN] = {"http_listen", set_http_listen, "inet:127.0.0.1:10041"},
    [CK_WINDOWS] = {"windows", set_windows, "1m, 10m, 1h"},
    [CK_CULPRIT_SLOTS] = {"culprit_slots", set_culprit_slots, "100"},
    [CK_SESSION_SLOTS] = {"session_slots", set_session_slots, "65536"},
    [CK_SESSION_TIMEOUT] = {"session_timeout", set_session_timeout, "10m"},
    [CK_TRANSACTION_TIMEOUT] = {"transaction_timeout", set_transaction_timeout, "10m"},
    [CK_COUNT_MESSAGES_AT] = {"count_messages_at", set_count_messages_at, "auto"},
    [CK_STORE_FLUSH_INTERVAL] = {"store_flush_interval", set_store_flush_interval, "1s"},
    [CK_STORE_TIMEOUT] = {"store_timeout", set_store_timeout, "2s"},
    [CK_STORE_RETENTION] = {"store_retention", set_store_retention, "8d"},
    [CK_STORE_BACKLOG] = {"store_backlog", set_store_backlog, "1h"},
    [CK_DNS_LOOKUPS] = {"dns_lookups", set_dns_lookups, "client_ptr, client_a, sender_mx, recipient_mx"},
    [CK_DNS_TIMEOUT] = {"dns_timeout", set_dns_timeout, "2s"},
    [CK_DNS_TRIES] = {"dns_tries", set_dns_tries, "2"},
    [CK_DNS_WAIT] = {"dns_wait", set_dns_wait, "0s"},
    [CK_DNS_MAX_OUTSTANDING] = {"dns_max_outstanding", set_dns_max_outstanding, "1000"},
    [CK_DNS_CACHE_SIZE] = {"dns_cache_size", set_dns_cache_size, "10000"},
    [CK_DNS_CACHE_MAX_TTL] = {"dns_cache_max_ttl", set_dns_cache_max_ttl, "1d"},
    [CK_FEED_CLIENTS] = {"feed_clients", set_feed_clients, ""},
    [CK_TDNS_STALE_AFTER] = {"tdns_stale_after", set_tdns_stale_after, "5m"},
    [CK_DETECT_WINDOW] = {"detect_window", set_detect_window, "10m"},
    [CK_DETECT_LOUD_AFTER] = {"detect_loud_after", set_detect_loud_after, "20s"},
    [CK_DETECT_QUIET_AFTER] = {"detect_quiet_after", set_detect_quiet_after, "10m"},
    [CK_DETECT_MX_FACTOR] = {"detect_mx_factor", set_detect_mx_factor, "10"},
    [CK_DETECT_MIN_MX] = {"detect_min_mx", set_detect_min_mx, "20"},
    [CK_DETECT_DOMAINS_FACTOR] = {"detect_domains_factor", set_detect_domains_factor, "10"},
    [CK_DETECT_MIN_DOMAINS] = {"detect_min_domains", set_detect_min_domains, "20"},
    [CK_DETECT_MIN_MESSAGES] = {"detect_min_messages", set_detect_min_messages, "20"},
    [CK_DETECT_ALPHA_BAND] = {"detect_alpha_band", set_detect_alpha_band, ""},
    [CK_DETECT_ALPHA_FACTOR] = {"detect_alpha_factor", set_detect_alpha_factor, "1.5"},
    [CK_BASELINE_START] = {"baseline_start", set_baseline_start, ""},
    [CK_BASELINE_HOUR_DAYS] = {"baseline_hour_days", set_baseline_hour_days, "3"},
    [CK_CULPRIT_ACTION] = {"culprit_action", set_culprit_action,
                           "DEFER 4.7.1 Too much relay mail from you: sending paused, try again later"},
    [CK_CULPRIT_ESCALATE_ACTION] = {"culprit_escalate_action", set_culprit_escalate_action,
                                    "REJECT 5.7.1 Relay refused: this sender is sending spam"},
    [CK_ESCALATE_AFTER] = {"escalate_after", set_escalate_after, "30m"},
    [CK_LOUD_RELAY_ACTION] = {"loud_relay_action", set_loud_relay_action, "DUNNO"},
    [CK_CULPRIT_MIN_SHARE] = {"culprit_min_share", set_culprit_min_share, "0.1"},
    [CK_CULPRIT_MIN_DOMAINS] = {"culprit_min_domains", set_culprit_min_domains, "10"},
    [CK_THROTTLE_COOLDOWN] = {"throttle_cooldown", set_throttle_cooldown, "1h"},
    [CK_THROTTLE_SLOTS] = {"throttle_slots", set_throttle_slots, "10000"},
    [CK_RELEASE_GRACE] = {"release_grace", set_release_grace, "1h"},
    [CK_BLOCK_ACTION] = {"block_action", set_block_action,
                         "REJECT 5.7.1 Sending blocked by the mail administrator"},
    [CK_NEVER_THROTTLE_CLIENTS] = {"never_throttle_clients", set_never_throttle_clients, ""},
    [CK_NEVER_THROTTLE_SASL_USERS] = {"never_throttle_sasl_users", set_never_throttle_sasl_users, ""},
    [CK_NEVER_THROTTLE_SENDERS] = {"never_throttle_senders", set_never_throttle_senders, ""},
    [CK_LIMIT_WINDOW] = {"limit_window", set_limit_window, "1h"},
    [CK_LIMIT_COUNT] = {"limit_count", set_limit_count, "recipients"},
    [CK_LIMIT_SASL_USERNAME] = {"limit_sasl_username", set_limit_sasl_username, "0"},
    [CK_LIMIT_CLIENT_ADDRESS] = {"limit_client_address", set_limit_client_address, "0"},
    [CK_LIMIT_SENDER_DOMAIN] = {"limit_sender_domain", set_limit_sender_domain, "0"},
    [CK_LIMIT_DOMAINS] = {"limit_domains", set_limit_domains, "0"},
    [CK_LIMIT_ACTION] = {"limit_action", set_limit_action,
                         "DEFER 4.7.1 Sending limit reached: try again later"},
    [CK_FAST_PATH] = {"fast_path", set_fast_path, "yes"},
    [CK_FAST_WINDOW] = {"fast_window", set_fast_window, "10s"},
    [CK_FAST_MIN_DOMAINS] = {"fast_min_domains", set_fast_min_domains, "50"},
    [CK_FAST_MIN_MX] = {"fast_min_mx", set_fast_min_mx, "50"},
    [CK_FAST_FACTOR] = {"fast_factor", set_fast_factor, "4"},
    [CK_FAST_HALFLIFE] = {"fast_halflife", set_fast_halflife, "7d"},
    [CK_FAST_SLOTS] = {"fast_slots", set_fast_slots, "1024"},
    [CK_FAST_LEARN_PERIOD] = {"fast_learn_period", set_fast_learn_period, "1m"},
    [CK_FAST_SITE_MIN_KEYS] = {"fast_site_min_keys", set_fast_site_min_keys, "10"},
    [CK_MONITOR_ONLY] = {"monitor_only", set_monitor_only, "no"},
    [CK_ALERT_COMMAND] = {"alert_command", set_alert_command, ""},
    [CK_QUARANTINE] = {"quarantine", set_quarantine, "yes"},
    [CK_POSTFIX_CONFIG_DIRECTORY] = {"postfix_config_directory", set_postfix_config_directory,
                                     "/etc/postfix"},
    [CK_QUARANTINE_LOOKBACK] = {"quarantine_lookback", set_quarantine_lookback, "1h"},
    [CK_QUARANTINE_MESSAGES] = {"quarantine_messages", set_quarantine_messages, "500"},
    [CK_QUARANTINE_SLOTS] = {"quarantine_slots", set_quarantine_slots, "1024"},
    [CK_USER] = {"user", set_user, "relaywatch"},
};

#define KEY_COUNT (sizeof(keys) / sizeof(keys[0]))

const char *const *config_key_names(void)
{
    static const char *names[KEY_COUNT + 1];

    for (size_t i = 0; i < KEY_COUNT; i++)
        names[i] = keys[i].name;
    names[KEY_COUNT] = NULL;
    return names;
}

static const struct key_entry *find_key(const char *name, size_t len)
{
    for (size_t i = 0; i < KEY_COUNT; i++)
        if (strlen(keys[i].name) == len && memcmp(keys[i].name, name, len) == 0)
            return &keys[i];
    return NULL;
}

static void default_host_id(struct config *c)
{
    char name[256];
    struct reporter quiet = {0};

    if (gethostname(name, sizeof(name)) != 0)
        strcpy(name, "localhost");
    name[sizeof(name) - 1] = '\0';
    /* Use the short name, as Postfix's myhostname does not; keys stay readable. */
    if (!set_host_id(c, "host_id", name, &quiet))
        set_host_id(c, "host_id", "localhost", &quiet);
}

struct config *config_new(void)
{
    struct config *c = calloc(1, sizeof(*c));
    struct reporter quiet = {0};

    if (c == NULL)
        abort();
    for (size_t i = 0; i < KEY_COUNT; i++) {
        if (keys[i].default_value == NULL)
            continue;
        if (!keys[i].set(c, keys[i].name, keys[i].default_value, &quiet))
            abort(); /* a default the parser refuses is a bug in this file */
    }
    default_host_id(c);
    return c;
}

void config_free(struct config *c)
{
    if (c == NULL)
        return;
    endpoints_free(c->listen, c->listen_count);
    if (c->http_listen) {
        endpoint_clear(c->http_listen);
        free(c->http_listen);
    }
    free(c->store);
    free(c->redis_password);
    free(c->host_id);
    strings_free(c->local_domains, c->local_domain_count);
    strings_free(c->feed_clients, c->feed_client_count);
    free(c->resolver);
    free(c->tdns_client);
    free(c->culprit_action);
    free(c->culprit_escalate_action);
    free(c->loud_relay_action);
    free(c->limit_action);
    free(c->block_action);
    strings_free(c->never_throttle_clients, c->never_throttle_client_count);
    free(c->never_throttle_nets);
    strings_free(c->never_throttle_sasl_users, c->never_throttle_sasl_user_count);
    strings_free(c->never_throttle_senders, c->never_throttle_sender_count);
    free(c->alert_command);
    free(c->postfix_config_directory);
    free(c->user);
    free(c);
}

static bool is_blank(int ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r';
}

/* One logical "name = value" entry; text is NUL-terminated and writable. */
static void apply_entry(struct config *c, char *text, struct reporter *r)
{
    char *eq = strchr(text, '=');
    char *name_end, *value, *value_end;
    const struct key_entry *k;

    if (eq == NULL) {
        problem(r, "missing '=' after '%.64s'", text);
        return;
    }
    name_end = eq;
    while (name_end > text && is_blank((unsigned char)name_end[-1]))
        name_end--;
    if (name_end == text) {
        problem(r, "missing name before '='");
        return;
    }
    for (char *p = text; p < name_end; p++)
        if (is_blank((unsigned char)*p)) {
            problem(r, "bad name '%.*s'", (int)(name_end - text), text);
            return;
        }
    k = find_key(text, (size_t)(name_end - text));
    if (k == NULL) {
        problem(r, "unknown configuration key '%.*s'", (int)(name_end - text), text);
        return;
    }
    value = eq + 1;
    while (is_blank((unsigned char)*value))
        value++;
    value_end = value + strlen(value);
    while (value_end > value && is_blank((unsigned char)value_end[-1]))
        value_end--;
    *value_end = '\0';
    *name_end = '\0';
    if (k->set(c, k->name, value, r)) {
        struct config_origin *o = &c->origin[k - keys];
        o->source = r->source;
        o->line = r->line;
    }
}

unsigned config_parse_buffer(struct config *c, const char *buf, size_t len, const char *source,
                             config_report_fn *report, void *ctx)
{
    struct reporter r = {report, ctx, source, 0, 0};
    char *entry = NULL;    /* the logical line being collected */
    size_t entry_len = 0, entry_cap = 0;
    unsigned entry_line = 0; /* where it started, for reports */
    size_t pos = 0;
    unsigned lineno = 0;

    for (;;) {
        const char *line, *nl;
        size_t n;
        bool at_end = pos >= len;
        bool continuation = false, skip = false;

        if (!at_end) {
            line = buf + pos;
            nl = memchr(line, '\n', len - pos);
            n = nl ? (size_t)(nl - line) : len - pos;
            pos += n + (nl != NULL);
            lineno++;
            if (memchr(line, '\0', n) != NULL) {
                r.line = lineno;
                problem(&r, "NUL byte in line");
                skip = true;
            } else {
                size_t i = 0;
                while (i < n && is_blank((unsigned char)line[i]))
                    i++;
                if (i == n || line[i] == '#')
                    skip = true; /* blank or comment: does not end an entry */
                else if (i > 0)
                    continuation = true;
            }
            if (skip)
                continue;
            if (continuation) {
                if (entry_len == 0) {
                    r.line = lineno;
                    problem(&r, "continuation line without a preceding setting");
                    continue;
                }
            }
        } else {
            line = NULL;
            n = 0;
        }
        /* A new entry (or the end) completes the one being collected. */
        if (at_end || !continuation) {
            if (entry_len > 0) {
                r.line = entry_line;
                entry[entry_len] = '\0';
                apply_entry(c, entry, &r);
                entry_len = 0;
            }
            if (at_end)
                break;
            entry_line = lineno;
        }
        if (entry_len + n + 2 > entry_cap) {
            entry_cap = (entry_len + n + 2) * 2;
            entry = realloc(entry, entry_cap);
            if (entry == NULL)
                abort();
        }
        if (continuation)
            entry[entry_len++] = ' ';
        memcpy(entry + entry_len, line, n);
        entry_len += n;
    }
    free(entry);
    return r.count;
}

unsigned config_parse_override(struct config *c, const char *assignment, config_report_fn *report,
                               void *ctx)
{
    struct reporter r = {report, ctx, "-o", 0, 0};
    size_t n = strlen(assignment);
    char *copy = xstrndup(assignment, n);

    if (memchr(copy, '\n', n) != NULL)
        problem(&r, "'%s': a value may not hold a newline", assignment);
    else
        apply_entry(c, copy, &r);
    free(copy);
    return r.count;
}

/* Report a problem at the place the key was set. */
static void problem_at(struct reporter *r, const struct config *c, enum config_key k)
{
    r->source = c->origin[k].source ? c->origin[k].source : "(built-in default)";
    r->line = c->origin[k].line;
}

unsigned config_check(const struct config *c, config_report_fn *report, void *ctx)
{
    struct reporter r = {report, ctx, NULL, 0, 0};

    for (size_t i = 0; i < c->listen_count; i++)
        if (c->http_listen && endpoint_equal(&c->listen[i], c->http_listen)) {
            problem_at(&r, c, CK_HTTP_LISTEN);
            problem(&r, "http_listen: '%s' is also a policy listen endpoint",
                    c->http_listen->spec);
        }
    if (c->tdns_client[0] != '\0' && strcmp(c->store, "memory") == 0) {
        problem_at(&r, c, CK_TDNS_CLIENT);
        problem(&r, "tdns_client: the upstream counts come through a shared store: set store = "
                    "redis://... (where relaywatch feed writes them)");
    }
    {
        bool found = false, limit_found = false;

        for (unsigned w = 0; w < c->window_count; w++) {
            found |= c->window_seconds[w] == c->detect_window;
            limit_found |= c->window_seconds[w] == c->limit_window;
        }
        if (!found) {
            problem_at(&r, c, CK_DETECT_WINDOW);
            problem(&r, "detect_window: %gs is not one of the windows", c->detect_window);
        }
        if (!limit_found) {
            problem_at(&r, c, CK_LIMIT_WINDOW);
            problem(&r, "limit_window: %gs is not one of the windows", c->limit_window);
        }
    }
    if (c->dns_max_outstanding >= c->dns_cache_size) {
        problem_at(&r, c, CK_DNS_MAX_OUTSTANDING);
        problem(&r, "dns_max_outstanding: %u must be below dns_cache_size (%u): every query in "
                    "flight holds a cache entry",
                c->dns_max_outstanding, c->dns_cache_size);
    }
    return r.count;
}

#define MAX_CONFIG_BYTES (1024 * 1024)

/* The whole file, or NULL with the reason (without the path) in err. */
static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (f == NULL) {
        snprintf(err, errlen, "cannot read: %s", strerror(errno));
        return NULL;
    }
    buf = malloc(MAX_CONFIG_BYTES + 1);
    if (buf == NULL)
        abort();
    n = fread(buf, 1, MAX_CONFIG_BYTES + 1, f);
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read: %s", strerror(errno));
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    if (n > MAX_CONFIG_BYTES) {
        snprintf(err, errlen, "larger than %d bytes", MAX_CONFIG_BYTES);
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

struct config *config_load(const char *file, const char *const *overrides, unsigned override_count,
                           bool check, config_report_fn *report, void *ctx, unsigned *problems)
{
    struct config *cfg = config_new();
    unsigned n = 0;

    if (file != NULL) {
        char err[512];
        size_t len;
        char *text = read_file(file, &len, err, sizeof(err));

        if (text == NULL) {
            report(ctx, file, 0, err);
            n++;
        } else {
            n += config_parse_buffer(cfg, text, len, file, report, ctx);
            free(text);
        }
    }
    for (unsigned i = 0; i < override_count; i++)
        n += config_parse_override(cfg, overrides[i], report, ctx);
    if (check)
        n += config_check(cfg, report, ctx);
    *problems = n;
    if (n > 0) {
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

void config_report_stderr(void *ctx, const char *source, unsigned line, const char *message)
{
    (void)ctx;
    if (line > 0)
        fprintf(stderr, "%s:%u: %s\n", source, line, message);
    else
        fprintf(stderr, "%s: %s\n", source, message);
}

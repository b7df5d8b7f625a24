/*
 * config: main.cf-style configuration parser.  See config.h.
 *
 * Syntax, as Postfix's main.cf: "name = value"; a line whose first
 * non-blank character is '#' is a comment; a line that starts with white
 * space continues the previous logical line; blank lines are ignored.
 * Lists are separated by commas and/or white space.  Durations take an
 * ms, s, m, h or d suffix (seconds without one; duration.h).  $name
 * expansion is not done: values are taken as written.
 *
 * Every key is one row of the table keys[] below; a setter per type reads
 * the row.  Only the few keys with a syntax of their own have a function
 * of their own (set_* for a whole value, check_* for a string, *_item for
 * a list's items).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "duration.h"
#include "xalloc.h"

#define MAX_MESSAGE 512
#define HOST_ID_MAX 63

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
    char **items = xmalloc(cap * sizeof(*items));
    const char *p = value;

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
            items = xrealloc(items, cap * sizeof(*items));
        }
        items[n++] = xstrndup(start, (size_t)(p - start));
    }
    *items_out = items;
    return n;
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

static bool parse_port(const char *s)
{
    unsigned long v;

    return parse_unsigned(s, 65535, &v, 10) && v >= 1;
}

/* A decimal number in [min, max] into *out, or reported. */
static bool parse_number(double *out, double min, double max, const char *key, const char *value,
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
    *out = v;
    return true;
}

/* ------------------------------------------------------------ endpoints */

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
            if (strchr(host, ':') == NULL || !address_is_ip(host)) {
                problem(r, "%s: '%s' is not an IPv6 address in '%s'", key, host, spec);
                free(host);
                return false;
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
        e->port = xstrdup(colon + 1);
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
        e->path = xstrdup(path);
    } else {
        problem(r, "%s: bad endpoint '%s': expected inet:HOST:PORT or unix:/PATH", key, spec);
        return false;
    }
    e->spec = xstrdup(spec);
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

/* ------------------------------------------- keys with a syntax of their own */

/* A whole value: parse it into c, or report and leave c alone. */
typedef bool key_set_fn(struct config *c, const char *key, const char *value, struct reporter *r);
/* A string key's value: whether it may be stored as written (reported if not). */
typedef bool key_check_fn(const char *key, const char *value, struct reporter *r);
/* One item of a list: check it, and normalize it in place. */
typedef bool list_item_fn(const char *key, char *item, struct reporter *r);
/* Fields worked out from a key's value once it is stored. */
typedef void key_derive_fn(struct config *c);

static bool set_listen(struct config *c, const char *key, const char *value, struct reporter *r)
{
    char **items;
    size_t n = split_list(value, &items);
    struct endpoint *eps = xcalloc(n ? n : 1, sizeof(*eps));
    size_t ok = 0;
    bool good = true;

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

static void http_listen_free(struct config *c)
{
    if (c->http_listen) {
        endpoint_clear(c->http_listen);
        free(c->http_listen);
    }
}

/* At most one endpoint: *out is NULL for an empty value (off); false after a problem. */
static bool one_endpoint(const char *key, const char *value, struct reporter *r,
                         struct endpoint **out)
{
    char **items;
    size_t n = split_list(value, &items);
    bool good = true;

    *out = NULL;
    if (n > 1) {
        problem(r, "%s: takes one endpoint, not %zu", key, n);
        good = false;
    } else if (n == 1) {
        *out = xcalloc(1, sizeof(**out));
        if (!parse_endpoint(items[0], *out, r, key)) {
            free(*out);
            *out = NULL;
            good = false;
        }
    }
    strings_free(items, n);
    return good;
}

static bool set_http_listen(struct config *c, const char *key, const char *value, struct reporter *r)
{
    struct endpoint *e;

    if (!one_endpoint(key, value, r, &e))
        return false;
    http_listen_free(c);
    c->http_listen = e;
    return true;
}

static void control_socket_free(struct config *c)
{
    if (c->control_socket) {
        endpoint_clear(c->control_socket);
        free(c->control_socket);
    }
}

/* One unix: endpoint or empty (off): a TCP peer's credentials cannot be asked. */
static bool set_control_socket(struct config *c, const char *key, const char *value,
                               struct reporter *r)
{
    struct endpoint *e;

    if (!one_endpoint(key, value, r, &e))
        return false;
    if (e != NULL && e->kind != ENDPOINT_UNIX) {
        problem(r, "%s: '%s': must be unix:/PATH (only a unix socket tells who is calling)", key,
                e->spec);
        endpoint_clear(e);
        free(e);
        return false;
    }
    control_socket_free(c);
    c->control_socket = e;
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

/* memory | redis://HOST:PORT[/DB] | redis+unix:///PATH[?db=N] */
static bool check_store(const char *key, const char *value, struct reporter *r)
{
    unsigned long db;

    if (strcmp(value, "memory") == 0)
        return true;
    if (strncmp(value, "redis://", 8) == 0) {
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
        return true;
    }
    if (strncmp(value, "redis+unix://", 13) == 0) {
        const char *path = value + 13;
        const char *q = strchr(path, '?');

        if (path[0] != '/' || (q && (strncmp(q, "?db=", 4) != 0 ||
                                     !parse_unsigned(q + 4, 1000000, &db, 10)))) {
            problem(r, "%s: bad Redis socket '%s': expected redis+unix:///PATH[?db=N]", key, value);
            return false;
        }
        return true;
    }
    problem(r, "%s: '%s' is not memory, redis://HOST:PORT[/DB] or redis+unix:///PATH", key, value);
    return false;
}

static bool is_name_char(int ch)
{
    return isalnum(ch) || ch == '.' || ch == '-' || ch == '_';
}

static bool check_host_id(const char *key, const char *value, struct reporter *r)
{
    if (*value == '\0') {
        problem(r, "%s: must not be empty", key);
        return false;
    }
    /* It names this host in every store key and in the fleet's records (STORE_HOST_MAX). */
    if (strlen(value) > HOST_ID_MAX) {
        problem(r, "%s: longer than %d characters", key, HOST_ID_MAX);
        return false;
    }
    for (const char *p = value; *p; p++)
        if (!is_name_char((unsigned char)*p)) {
            problem(r, "%s: '%s' may hold only letters, digits, '.', '-' and '_'", key, value);
            return false;
        }
    return true;
}

/* Domains compare case-insensitively; they are stored folded once. */
static bool domain_item(const char *key, char *item, struct reporter *r)
{
    for (char *p = item; *p; p++) {
        if (!is_name_char((unsigned char)*p)) {
            problem(r, "%s: '%s' is not a domain name", key, item);
            return false;
        }
        *p = (char)tolower((unsigned char)*p);
    }
    return true;
}

/* "IP" or "IP:PORT" or "[IPV6]:PORT" or a bare IPv6 address. */
static bool valid_nameserver(const char *s)
{
    char host[64];
    const char *port = NULL;

    if (address_is_ip(s))
        return true;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || (size_t)(close - s - 1) >= sizeof(host))
            return false;
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        if (close[1] == '\0')
            return address_is_ip(host);
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
    return address_is_ip(host) && parse_port(port);
}

static bool check_resolver(const char *key, const char *value, struct reporter *r)
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
    return good;
}

static bool check_ip_or_empty(const char *key, const char *value, struct reporter *r)
{
    if (*value != '\0' && !address_is_ip(value)) {
        problem(r, "%s: '%s' is not an IP address", key, value);
        return false;
    }
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
        if (!duration_parse(items[i], &seconds[i]) || seconds[i] < 1 || strlen(items[i]) > 15) {
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

/* IP or IP/LEN, checked here and parsed again into never_throttle_nets. */
static bool network_item(const char *key, char *item, struct reporter *r)
{
    struct ip_network net;

    if (!ip_network_parse(item, &net)) {
        problem(r, "%s: '%s' is not an IP address or network (IP/LEN)", key, item);
        return false;
    }
    return true;
}

static void derive_never_throttle_nets(struct config *c)
{
    struct ip_network *nets = xcalloc(c->never_throttle_client_count + 1, sizeof(*nets));

    for (size_t i = 0; i < c->never_throttle_client_count; i++)
        if (!ip_network_parse(c->never_throttle_clients[i], &nets[i]))
            abort(); /* network_item checked every one */
    free(c->never_throttle_nets);
    c->never_throttle_nets = nets;
}

/* Senders: user@domain (exact, the domain without case) or a domain (every sender in it). */
static bool sender_item(const char *key, char *item, struct reporter *r)
{
    char *at = strrchr(item, '@');
    char *domain = at ? at + 1 : item;

    if (*domain == '\0') {
        problem(r, "%s: '%s' is not user@domain or a domain", key, item);
        return false;
    }
    for (char *p = domain; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (at == item) /* "@example.com": the domain */
        memmove(item, item + 1, strlen(item));
    return true;
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
        } else if (!parse_number(&v[s], s == CONFIG_BASELINE_SIGNALS - 1 ? 0.001 : 0, 1e9, key,
                                 eq + 1, r)) {
            good = false;
        }
    }
    strings_free(items, n);
    if (good)
        memcpy(c->baseline_start, v, sizeof(v));
    return good;
}

/*
 * A Postfix access(5) action RelayWatch may answer: DUNNO, DEFER, DEFER_IF_PERMIT,
 * REJECT, HOLD (each but DUNNO with optional text), or a 4XX/5XX code with text.
 * Text with an enhanced status code keeps it; Postfix adds its own otherwise.
 */
static bool check_action(const char *key, const char *value, struct reporter *r)
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
    return true;
}

/* Handed to a program run as root: an absolute path of plain characters only. */
static bool check_postfix_config_directory(const char *key, const char *value, struct reporter *r)
{
    if (value[0] != '/' || strlen(value) > 1024 || strspn(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                                 "abcdefghijklmnopqrstuvwxyz"
                                                                 "0123456789/._-+@") !=
                                                         strlen(value)) {
        problem(r, "%s: '%s' must be an absolute path of letters, digits and / . _ - + @", key,
                value);
        return false;
    }
    return true;
}

static bool check_user(const char *key, const char *value, struct reporter *r)
{
    if (*value == '\0' || strcmp(value, "root") == 0 || strcmp(value, "0") == 0) {
        problem(r, "%s: '%s': the daemon parses what senders send and must not run as root",
                key, value);
        return false;
    }
    return true;
}

/* A group name as useradd/groupadd allow one, or a number; looked up when the daemon starts. */
static bool check_group(const char *key, const char *value, struct reporter *r)
{
    if (strcmp(value, "root") == 0 || strcmp(value, "0") == 0) {
        problem(r, "%s: '%s': root is admitted anyway; name the group of the operators", key,
                value);
        return false;
    }
    if (strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
            strlen(value) || value[0] == '-' || strlen(value) > 64) {
        problem(r, "%s: '%s' is not a group name or number", key, value);
        return false;
    }
    return true;
}

static bool check_absolute_or_empty(const char *key, const char *value, struct reporter *r)
{
    if (*value != '\0' && *value != '/') {
        problem(r, "%s: '%s' must start with an absolute path", key, value);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ keys */

enum key_type {
    KT_STRING,   /* char *, as written; .check may refuse it */
    KT_YES_NO,   /* bool: yes/true/1 or no/false/0 */
    KT_UNSIGNED, /* unsigned, decimal, in [min, max] */
    KT_DURATION, /* double seconds (duration.h), in [min, max] */
    KT_NUMBER,   /* double, decimal, in [min, max] */
    KT_ENUM,     /* int or bool: the index of one of .choices, any case */
    KT_LIST,     /* char ** and a size_t count; .item checks each item */
    KT_CUSTOM,   /* .set parses the whole value */
};

/* When a changed value needs a restart rather than a SIGHUP. */
enum restart_rule {
    RELOADS,            /* takes effect on SIGHUP */
    RESTART_ON_CHANGE,  /* any change waits for the next restart */
    RESTART_TURNING_ON, /* turning it on waits; turning it off reloads */
    RESTART_ON_OFF,     /* turning it on or off waits; other changes reload */
};

/* The restart-only keys in groups, each with one warning that names them all. */
enum restart_group { GROUP_NONE, GROUP_COUNTING, GROUP_PRIVILEGES, GROUP_STORE, GROUP_LOOKUPS };

static const char *const restart_messages[] = {
    [GROUP_COUNTING] = "windows, culprit_slots, session_slots, throttle_slots and fast_slots take "
                       "effect at the next restart; counting goes on with the running values",
    [GROUP_PRIVILEGES] = "user, postfix_config_directory, quarantine_slots, control_socket, "
                         "control_group and turning quarantine on take effect at the next restart "
                         "(they are fixed when root is given up)",
    [GROUP_STORE] = "store, host_id, redis_password, redis_username and the store_* keys take "
                    "effect at the next restart; the store goes on with the running values",
    [GROUP_LOOKUPS] = "resolver, dns_timeout, dns_tries, dns_max_outstanding, the dns_cache_* "
                      "keys, and turning dns_lookups on or off take effect at the next restart; "
                      "lookups go on with the running values",
};
#define GROUP_COUNT (sizeof(restart_messages) / sizeof(restart_messages[0]))

struct key_def {
    const char *name;
    enum key_type type;
    size_t offset, size;        /* the value in struct config (not KT_CUSTOM) */
    size_t count_offset;        /* KT_LIST: its item count */
    double min, max;            /* KT_UNSIGNED, KT_DURATION, KT_NUMBER */
    const char *const *choices; /* KT_ENUM: NULL-terminated words */
    key_check_fn *check;        /* KT_STRING, optional */
    list_item_fn *item;         /* KT_LIST, optional */
    key_set_fn *set;            /* KT_CUSTOM */
    key_derive_fn *derive;      /* optional, after every value stored */
    const char *default_value;  /* NULL: this host's name (host_id) */
    enum restart_rule restart;
    enum restart_group group;
    bool secret;         /* never printed */
    const char *meaning; /* one line, for the reader of this table */
};

#define FIELD(f) .offset = offsetof(struct config, f), .size = sizeof(((struct config *)0)->f)
#define STRING(f, fn) .type = KT_STRING, FIELD(f), .check = fn
#define ACTION(f) STRING(f, check_action)
#define YES_NO(f) .type = KT_YES_NO, FIELD(f)
#define UNSIGNED(f, lo, hi) .type = KT_UNSIGNED, FIELD(f), .min = lo, .max = hi
#define DURATION(f, lo, hi) .type = KT_DURATION, FIELD(f), .min = lo, .max = hi
#define NUMBER(f, lo, hi) .type = KT_NUMBER, FIELD(f), .min = lo, .max = hi
#define ENUM(f, words) .type = KT_ENUM, FIELD(f), .choices = words
#define LIST(f, n, fn)                                                                           \
    .type = KT_LIST, FIELD(f), .count_offset = offsetof(struct config, n), .item = fn
#define CUSTOM(fn) .type = KT_CUSTOM, .set = fn
#define RESTART(g) .restart = RESTART_ON_CHANGE, .group = g
#define RESTART_ON(g) .restart = RESTART_TURNING_ON, .group = g
#define RESTART_ON_OR_OFF(g) .restart = RESTART_ON_OFF, .group = g
#define KEY(k, n, typed, def, text) [k] = {.name = n, typed, .default_value = def, .meaning = text}
/* A key whose change needs a restart. */
#define KEY_R(k, n, typed, def, when, text)                                                      \
    [k] = {.name = n, typed, .default_value = def, when, .meaning = text}

#define ANY_LENGTH DURATION_MAX_SECONDS

static const char *const count_at_words[] = {"auto", "rcpt", "end-of-message", NULL};
static const char *const limit_count_words[] = {"recipients", "messages", NULL};

static const struct key_def keys[CK_COUNT] = {
    KEY(CK_LISTEN, "listen", CUSTOM(set_listen), "inet:127.0.0.1:10040",
        "where Postfix connects: inet:HOST:PORT and/or unix:/PATH"),
    KEY(CK_UNIX_SOCKET_MODE, "unix_socket_mode", CUSTOM(set_unix_socket_mode), "0666",
        "file mode of unix: sockets (octal)"),
    KEY(CK_MAX_CONNECTIONS, "max_connections", UNSIGNED(max_connections, 1, 1000000), "2048",
        "policy connections served at once"),
    KEY(CK_IDLE_TIMEOUT, "idle_timeout", DURATION(idle_timeout, 1, ANY_LENGTH), "330s",
        "close a connection with no traffic for this long"),
    KEY(CK_REQUEST_TIMEOUT, "request_timeout", DURATION(request_timeout, 1, 60), "3s",
        "close a connection whose request is not whole this long after its first byte"),
    KEY(CK_MAX_CONNECTIONS_PER_PEER, "max_connections_per_peer",
        UNSIGNED(max_connections_per_peer, 1, 1000000), "512",
        "policy connections of one uid (unix:) or non-loopback address (inet:) at once"),
    KEY(CK_SHUTDOWN_TIMEOUT, "shutdown_timeout", DURATION(shutdown_timeout, 0, ANY_LENGTH), "10s",
        "on SIGTERM, how long requests in the middle of arriving get to complete"),
    KEY(CK_LOG_REQUESTS, "log_requests", YES_NO(log_requests), "no",
        "log one line per request and its answer"),
    KEY_R(CK_STORE, "store", STRING(store, check_store), "memory", RESTART(GROUP_STORE),
          "memory, redis://HOST:PORT[/DB] or redis+unix:///PATH[?db=N]"),
    [CK_REDIS_PASSWORD] = {.name = "redis_password", STRING(redis_password, NULL),
                           .default_value = "", RESTART(GROUP_STORE), .secret = true,
                           .meaning = "Redis AUTH password (never logged or printed)"},
    KEY_R(CK_REDIS_USERNAME, "redis_username", STRING(redis_username, NULL), "",
          RESTART(GROUP_STORE), "Redis ACL user for AUTH (with redis_password)"),
    KEY_R(CK_HOST_ID, "host_id", STRING(host_id, check_host_id), NULL, RESTART(GROUP_STORE),
          "this MX host's name in shared counters"),
    KEY(CK_LOCAL_DOMAINS, "local_domains", LIST(local_domains, local_domain_count, domain_item),
        "", "recipient domains that are this site's own"),
    KEY_R(CK_RESOLVER, "resolver", STRING(resolver, check_resolver), "system",
          RESTART(GROUP_LOOKUPS), "system, or name servers IP, IP:PORT, [IPV6]:PORT"),
    KEY(CK_TDNS_CLIENT, "tdns_client", STRING(tdns_client, check_ip_or_empty), "",
        "this MX host's address as the upstream DNS server logs it"),
    KEY(CK_HTTP_LISTEN, "http_listen", CUSTOM(set_http_listen), "inet:127.0.0.1:10041",
        "one endpoint for the read-only views (/status, /metrics, /throttle); empty: off"),
    KEY_R(CK_WINDOWS, "windows", CUSTOM(set_windows), "1m, 10m, 1h", RESTART(GROUP_COUNTING),
          "the counting windows, at most 8 durations"),
    KEY_R(CK_CULPRIT_SLOTS, "culprit_slots", UNSIGNED(culprit_slots, 1, 1000), "100",
          RESTART(GROUP_COUNTING), "keys tracked per culprit table"),
    KEY_R(CK_SESSION_SLOTS, "session_slots", UNSIGNED(session_slots, 64, 16777216), "65536",
          RESTART(GROUP_COUNTING), "size of the tables of sessions and open transactions"),
    KEY(CK_SESSION_TIMEOUT, "session_timeout", DURATION(session_timeout, 1, ANY_LENGTH), "10m",
        "a session quiet for this long is forgotten"),
    KEY(CK_TRANSACTION_TIMEOUT, "transaction_timeout",
        DURATION(transaction_timeout, 1, ANY_LENGTH), "10m",
        "a transaction without END-OF-MESSAGE for this long is settled"),
    KEY(CK_COUNT_MESSAGES_AT, "count_messages_at", ENUM(count_messages_at, count_at_words),
        "auto", "where a message counts in nf"),
    KEY_R(CK_STORE_FLUSH_INTERVAL, "store_flush_interval",
          DURATION(store_flush_interval, 0.1, ANY_LENGTH), "1s", RESTART(GROUP_STORE),
          "how often counts are written to the store and read back"),
    KEY_R(CK_STORE_TIMEOUT, "store_timeout", DURATION(store_timeout, 0.1, ANY_LENGTH), "2s",
          RESTART(GROUP_STORE), "a store round not answered by then fails"),
    KEY_R(CK_STORE_RETENTION, "store_retention", DURATION(store_retention, 3600, ANY_LENGTH),
          "8d", RESTART(GROUP_STORE), "TTL of the keys written"),
    KEY_R(CK_STORE_BACKLOG, "store_backlog", DURATION(store_backlog, 120, 86400), "1h",
          RESTART(GROUP_STORE), "this run's counts kept to write again after a failure"),
    KEY_R(CK_DNS_LOOKUPS, "dns_lookups", CUSTOM(set_dns_lookups),
          "client_ptr, client_a, sender_mx, recipient_mx",
          RESTART_ON_OR_OFF(GROUP_LOOKUPS), "which lookups the daemon makes"),
    KEY_R(CK_DNS_TIMEOUT, "dns_timeout", DURATION(dns_timeout, 0.01, 60), "2s",
          RESTART(GROUP_LOOKUPS), "how long the first try of a query waits"),
    KEY_R(CK_DNS_TRIES, "dns_tries", UNSIGNED(dns_tries, 1, 10), "2", RESTART(GROUP_LOOKUPS),
          "tries per query and name server"),
    KEY(CK_DNS_WAIT, "dns_wait", DURATION(dns_wait, 0, 60), "0s",
        "how long an answer may wait for its lookups (Postfix's policy timeout is 100s)"),
    KEY_R(CK_DNS_MAX_OUTSTANDING, "dns_max_outstanding", UNSIGNED(dns_max_outstanding, 1, 65536),
          "1000", RESTART(GROUP_LOOKUPS), "distinct queries in flight at once"),
    KEY_R(CK_DNS_CACHE_SIZE, "dns_cache_size", UNSIGNED(dns_cache_size, 16, 4194304), "10000",
          RESTART(GROUP_LOOKUPS), "entries in the DNS cache"),
    KEY_R(CK_DNS_CACHE_MAX_TTL, "dns_cache_max_ttl", DURATION(dns_cache_max_ttl, 0, ANY_LENGTH),
          "1d", RESTART(GROUP_LOOKUPS), "the longest an answer is cached"),
    KEY(CK_FEED_CLIENTS, "feed_clients", LIST(feed_clients, feed_client_count, network_item), "",
        "relaywatch feed: the clients whose queries it keeps; empty: all"),
    KEY(CK_TDNS_STALE_AFTER, "tdns_stale_after", DURATION(tdns_stale_after, 1, ANY_LENGTH), "5m",
        "tdns is stale after this long without a feed write"),
    KEY(CK_DETECT_WINDOW, "detect_window", DURATION(detect_window, 60, ANY_LENGTH), "10m",
        "the window the detector judges (one of windows)"),
    KEY(CK_DETECT_LOUD_AFTER, "detect_loud_after", DURATION(detect_loud_after, 0, ANY_LENGTH),
        "20s", "how long the loud condition holds before the host is loud"),
    KEY(CK_DETECT_QUIET_AFTER, "detect_quiet_after", DURATION(detect_quiet_after, 0, ANY_LENGTH),
        "10m", "how long the quiet condition holds before it is quiet again"),
    KEY(CK_DETECT_MX_FACTOR, "detect_mx_factor", NUMBER(detect_mx_factor, 1, 1e6), "10",
        "MX at least this many times its baseline"),
    KEY(CK_DETECT_MIN_MX, "detect_min_mx", UNSIGNED(detect_min_mx, 1, 100000000), "20",
        "and at least this many per detect_window"),
    KEY(CK_DETECT_DOMAINS_FACTOR, "detect_domains_factor", NUMBER(detect_domains_factor, 1, 1e6),
        "10", "relay domains at least this many times their baseline"),
    KEY(CK_DETECT_MIN_DOMAINS, "detect_min_domains", UNSIGNED(detect_min_domains, 1, 100000000),
        "20", "and at least this many per detect_window"),
    KEY(CK_DETECT_MIN_MESSAGES, "detect_min_messages",
        UNSIGNED(detect_min_messages, 1, 100000000), "20",
        "alpha is judged only with this many from= lines"),
    KEY(CK_DETECT_ALPHA_BAND, "detect_alpha_band", CUSTOM(set_detect_alpha_band), "",
        "empty: learned; or fixed, LOW-HIGH"),
    KEY(CK_DETECT_ALPHA_FACTOR, "detect_alpha_factor", NUMBER(detect_alpha_factor, 1, 100), "1.5",
        "width of the learned alpha band"),
    KEY(CK_BASELINE_START, "baseline_start", CUSTOM(set_baseline_start), "",
        "cold-start baselines, NAME=VALUE items"),
    KEY(CK_BASELINE_HOUR_DAYS, "baseline_hour_days", UNSIGNED(baseline_hour_days, 0, 365), "3",
        "days an hour of the day needs before its own baseline is used"),
    KEY(CK_CULPRIT_ACTION, "culprit_action", ACTION(culprit_action),
        "DEFER 4.7.1 Too much relay mail from you: sending paused, try again later",
        "the answer to a culprit's relay RCPTs"),
    KEY(CK_CULPRIT_ESCALATE_ACTION, "culprit_escalate_action", ACTION(culprit_escalate_action),
        "REJECT 5.7.1 Relay refused: this sender is sending spam",
        "the answer once the culprit kept sending for escalate_after"),
    KEY(CK_ESCALATE_AFTER, "escalate_after", DURATION(escalate_after, 0, ANY_LENGTH), "30m",
        "0: never escalate"),
    KEY(CK_LOUD_RELAY_ACTION, "loud_relay_action", ACTION(loud_relay_action), "DUNNO",
        "the answer to other relay RCPTs while loud"),
    KEY(CK_CULPRIT_MIN_SHARE, "culprit_min_share", NUMBER(culprit_min_share, 0, 1), "0.1",
        "a culprit's least share of relay domains or queries"),
    KEY(CK_CULPRIT_MIN_DOMAINS, "culprit_min_domains", UNSIGNED(culprit_min_domains, 1, 100000000),
        "10", "a culprit's least distinct relay domains in detect_window"),
    KEY(CK_THROTTLE_COOLDOWN, "throttle_cooldown", DURATION(throttle_cooldown, 1, ANY_LENGTH),
        "1h", "how long an automatic throttle lasts"),
    KEY_R(CK_THROTTLE_SLOTS, "throttle_slots", UNSIGNED(throttle_slots, 16, 1000000), "10000",
          RESTART(GROUP_COUNTING), "records the throttle table holds"),
    KEY(CK_RELEASE_GRACE, "release_grace", DURATION(release_grace, 0, ANY_LENGTH), "1h",
        "after a release, how long nothing automatic applies to the key"),
    KEY(CK_BLOCK_ACTION, "block_action", ACTION(block_action),
        "REJECT 5.7.1 Sending blocked by the mail administrator",
        "the answer for relaywatch block"),
    [CK_NEVER_THROTTLE_CLIENTS] = {.name = "never_throttle_clients",
                                   LIST(never_throttle_clients, never_throttle_client_count,
                                        network_item),
                                   .derive = derive_never_throttle_nets, .default_value = "",
                                   .meaning = "client addresses or networks never throttled"},
    KEY(CK_NEVER_THROTTLE_SASL_USERS, "never_throttle_sasl_users",
        LIST(never_throttle_sasl_users, never_throttle_sasl_user_count, NULL), "",
        "SASL user names never throttled"),
    KEY(CK_NEVER_THROTTLE_SENDERS, "never_throttle_senders",
        LIST(never_throttle_senders, never_throttle_sender_count, sender_item), "",
        "sender addresses or domains never throttled"),
    KEY(CK_LIMIT_WINDOW, "limit_window", DURATION(limit_window, 60, ANY_LENGTH), "1h",
        "the window of the static limits (one of windows)"),
    KEY(CK_LIMIT_COUNT, "limit_count", ENUM(limit_count_messages, limit_count_words),
        "recipients", "what the limits count: recipients or messages"),
    KEY(CK_LIMIT_SASL_USERNAME, "limit_sasl_username",
        UNSIGNED(limit_sasl_username, 0, 1000000000), "0", "per SASL user; 0: off"),
    KEY(CK_LIMIT_CLIENT_ADDRESS, "limit_client_address",
        UNSIGNED(limit_client_address, 0, 1000000000), "0", "per client address; 0: off"),
    KEY(CK_LIMIT_SENDER_DOMAIN, "limit_sender_domain",
        UNSIGNED(limit_sender_domain, 0, 1000000000), "0", "per sender domain; 0: off"),
    KEY(CK_LIMIT_DOMAINS, "limit_domains", UNSIGNED(limit_domains, 0, 1000000000), "0",
        "distinct relay domains per SASL user or client address; 0: off"),
    KEY(CK_LIMIT_ACTION, "limit_action", ACTION(limit_action),
        "DEFER 4.7.1 Sending limit reached: try again later", "the answer for a key over a limit"),
    KEY(CK_FAST_PATH, "fast_path", YES_NO(fast_path), "yes",
        "judge each key by its own short-window figures"),
    KEY(CK_FAST_WINDOW, "fast_window", DURATION(fast_window, 0.1, ANY_LENGTH), "10s",
        "the fast path's short window"),
    KEY(CK_FAST_MIN_DOMAINS, "fast_min_domains", UNSIGNED(fast_min_domains, 1, 1000000), "50",
        "the fast path's floor of distinct relay domains"),
    KEY(CK_FAST_MIN_MX, "fast_min_mx", UNSIGNED(fast_min_mx, 1, 1000000), "50",
        "the fast path's floor of MX queries sent upstream"),
    KEY(CK_FAST_FACTOR, "fast_factor", NUMBER(fast_factor, 1, 1000), "4",
        "stopped past this many times the usual and the floor"),
    KEY(CK_FAST_HALFLIFE, "fast_halflife", DURATION(fast_halflife, 60, ANY_LENGTH), "7d",
        "how fast a key's learned level fades"),
    KEY_R(CK_FAST_SLOTS, "fast_slots", UNSIGNED(fast_slots, 16, 65536), "1024",
          RESTART(GROUP_COUNTING), "keys the fast path tracks"),
    KEY(CK_FAST_LEARN_PERIOD, "fast_learn_period", DURATION(fast_learn_period, 1, ANY_LENGTH),
        "1m", "how often a key's peak is learned"),
    KEY(CK_FAST_SITE_MIN_KEYS, "fast_site_min_keys", UNSIGNED(fast_site_min_keys, 1, 65536), "10",
        "keys with a level before the site's usual is used"),
    KEY(CK_MONITOR_ONLY, "monitor_only", YES_NO(monitor_only), "no",
        "decide, log and count, but answer DUNNO"),
    KEY(CK_ALERT_COMMAND, "alert_command", STRING(alert_command, check_absolute_or_empty), "",
        "a command run per incident start and end"),
    KEY_R(CK_QUARANTINE, "quarantine", YES_NO(quarantine), "yes",
          RESTART_ON(GROUP_PRIVILEGES),
          "put the queued messages of a stopped key on hold"),
    KEY_R(CK_POSTFIX_CONFIG_DIRECTORY, "postfix_config_directory",
          STRING(postfix_config_directory, check_postfix_config_directory), "/etc/postfix",
          RESTART(GROUP_PRIVILEGES), "the Postfix instance whose queue postsuper -c works on"),
    KEY(CK_QUARANTINE_LOOKBACK, "quarantine_lookback",
        DURATION(quarantine_lookback, 1, ANY_LENGTH), "1h", "how far back a stop reaches"),
    KEY(CK_QUARANTINE_MESSAGES, "quarantine_messages", UNSIGNED(quarantine_messages, 1, 100000),
        "500", "queue IDs remembered per key"),
    KEY_R(CK_QUARANTINE_SLOTS, "quarantine_slots", UNSIGNED(quarantine_slots, 16, 65536), "1024",
          RESTART(GROUP_PRIVILEGES), "keys whose queue IDs are remembered"),
    KEY_R(CK_USER, "user", STRING(user, check_user), "relaywatch", RESTART(GROUP_PRIVILEGES),
          "started as root, the user the daemon runs as"),
    KEY_R(CK_CONTROL_SOCKET, "control_socket", CUSTOM(set_control_socket),
          "unix:/run/relaywatch/control.sock", RESTART(GROUP_PRIVILEGES),
          "unix socket for block and release (POST /throttle); empty: off"),
    KEY_R(CK_CONTROL_GROUP, "control_group", STRING(control_group, check_group), "",
          RESTART(GROUP_PRIVILEGES), "group admitted to the control socket besides root"),
};

#define KEY_COUNT (sizeof(keys) / sizeof(keys[0]))

/* Where a row's value (or its list's count) is in c. */
static void *field(struct config *c, size_t offset)
{
    return (char *)c + offset;
}

static const void *cfield(const struct config *c, size_t offset)
{
    return (const char *)c + offset;
}

static bool set_string(struct config *c, const struct key_def *k, const char *value,
                       struct reporter *r)
{
    char **slot = field(c, k->offset);

    if (k->check && !k->check(k->name, value, r))
        return false;
    free(*slot);
    *slot = xstrdup(value);
    return true;
}

static bool set_yes_no(struct config *c, const struct key_def *k, const char *value,
                       struct reporter *r)
{
    bool *slot = field(c, k->offset);

    if (strcasecmp(value, "yes") == 0 || strcasecmp(value, "true") == 0 ||
        strcmp(value, "1") == 0) {
        *slot = true;
    } else if (strcasecmp(value, "no") == 0 || strcasecmp(value, "false") == 0 ||
               strcmp(value, "0") == 0) {
        *slot = false;
    } else {
        problem(r, "%s: '%s' is not yes or no", k->name, value);
        return false;
    }
    return true;
}

static bool set_unsigned(struct config *c, const struct key_def *k, const char *value,
                         struct reporter *r)
{
    unsigned long v, min = (unsigned long)k->min, max = (unsigned long)k->max;

    if (!parse_unsigned(value, max, &v, 10) || v < min) {
        problem(r, "%s: '%s' is not a number from %lu to %lu", k->name, value, min, max);
        return false;
    }
    *(unsigned *)field(c, k->offset) = (unsigned)v;
    return true;
}

static bool set_duration(struct config *c, const struct key_def *k, const char *value,
                         struct reporter *r)
{
    double v;

    if (!duration_parse(value, &v)) {
        problem(r, "%s: '%s' is not a duration (a number with ms, s, m, h or d)", k->name, value);
        return false;
    }
    if (v < k->min) {
        problem(r, "%s: '%s' is shorter than %gs", k->name, value, k->min);
        return false;
    }
    if (v > k->max) {
        char longest[32];

        problem(r, "%s: '%s' is longer than %s", k->name, value,
                duration_format(k->max, longest, sizeof(longest)));
        return false;
    }
    *(double *)field(c, k->offset) = v;
    return true;
}

static bool set_enum(struct config *c, const struct key_def *k, const char *value,
                     struct reporter *r)
{
    char words[200] = "";
    size_t n = 0, len = 0;

    for (n = 0; k->choices[n] != NULL; n++)
        if (strcasecmp(value, k->choices[n]) == 0) {
            if (k->size == sizeof(bool))
                *(bool *)field(c, k->offset) = n != 0;
            else
                *(int *)field(c, k->offset) = (int)n;
            return true;
        }
    /* "a, b or c" */
    for (size_t i = 0; i < n && len < sizeof(words); i++)
        len += (size_t)snprintf(words + len, sizeof(words) - len, "%s%s",
                                i == 0 ? "" : i + 1 == n ? " or " : ", ", k->choices[i]);
    problem(r, "%s: '%s' is not %s", k->name, value, words);
    return false;
}

static bool set_list(struct config *c, const struct key_def *k, const char *value,
                     struct reporter *r)
{
    char ***slot = field(c, k->offset);
    size_t *count = field(c, k->count_offset);
    char **items;
    size_t n = split_list(value, &items);

    for (size_t i = 0; i < n && k->item; i++)
        if (!k->item(k->name, items[i], r)) {
            strings_free(items, n);
            return false;
        }
    strings_free(*slot, *count);
    *slot = items;
    *count = n;
    return true;
}

/* Parse value for key k into c; false (reported, c unchanged) if it is refused. */
static bool set_key(struct config *c, const struct key_def *k, const char *value,
                    struct reporter *r)
{
    bool ok = false;
    double number;

    switch (k->type) {
    case KT_STRING: ok = set_string(c, k, value, r); break;
    case KT_YES_NO: ok = set_yes_no(c, k, value, r); break;
    case KT_UNSIGNED: ok = set_unsigned(c, k, value, r); break;
    case KT_DURATION: ok = set_duration(c, k, value, r); break;
    case KT_NUMBER:
        ok = parse_number(&number, k->min, k->max, k->name, value, r);
        if (ok)
            *(double *)field(c, k->offset) = number;
        break;
    case KT_ENUM: ok = set_enum(c, k, value, r); break;
    case KT_LIST: ok = set_list(c, k, value, r); break;
    case KT_CUSTOM: ok = k->set(c, k->name, value, r); break;
    }
    if (ok && k->derive)
        k->derive(c);
    return ok;
}

const char *const *config_key_names(void)
{
    static const char *names[KEY_COUNT + 1];

    for (size_t i = 0; i < KEY_COUNT; i++)
        names[i] = keys[i].name;
    names[KEY_COUNT] = NULL;
    return names;
}

static const struct key_def *find_key(const char *name, size_t len)
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
    if (!set_key(c, &keys[CK_HOST_ID], name, &quiet))
        set_key(c, &keys[CK_HOST_ID], "localhost", &quiet);
}

struct config *config_new(void)
{
    struct config *c = xcalloc(1, sizeof(*c));
    struct reporter quiet = {0};

    for (size_t i = 0; i < KEY_COUNT; i++) {
        if (keys[i].default_value == NULL)
            continue;
        if (!set_key(c, &keys[i], keys[i].default_value, &quiet))
            abort(); /* a default the parser refuses is a bug in the table */
    }
    default_host_id(c);
    return c;
}

void config_free(struct config *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < KEY_COUNT; i++) {
        const struct key_def *k = &keys[i];

        if (k->type == KT_STRING)
            free(*(char **)field(c, k->offset));
        else if (k->type == KT_LIST)
            strings_free(*(char ***)field(c, k->offset),
                         *(size_t *)field(c, k->count_offset));
        free(c->origin[i].value);
    }
    /* What the custom setters and derive functions allocate. */
    endpoints_free(c->listen, c->listen_count);
    http_listen_free(c);
    control_socket_free(c);
    free(c->never_throttle_nets);
    free(c);
}

/* ------------------------------------------------------------- parsing */

static bool is_blank(int ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r';
}

/* One logical "name = value" entry; text is NUL-terminated and writable. */
static void apply_entry(struct config *c, char *text, struct reporter *r)
{
    char *eq = strchr(text, '=');
    char *name_end, *value, *value_end;
    const struct key_def *k;

    if (eq == NULL) {
        /* The first word only: the rest may be a password someone forgot the '=' of. */
        size_t word = strcspn(text, " \t\r");

        problem(r, "missing '=' after '%.*s'", (int)(word < 64 ? word : 64), text);
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
    if (set_key(c, k, value, r)) {
        struct config_origin *o = &c->origin[k - keys];

        o->source = r->source;
        o->line = r->line;
        free(o->value);
        o->value = xstrdup(value);
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
            entry = xrealloc(entry, entry_cap);
        }
        /* A continuation line joins with one space, whatever indented it (as postconf
         * shows such a value). */
        if (continuation) {
            entry[entry_len++] = ' ';
            while (n > 0 && is_blank((unsigned char)*line))
                line++, n--;
        }
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
    char *copy = xstrdup(assignment);

    if (strchr(copy, '\n') != NULL)
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
    for (size_t i = 0; c->control_socket && i <= c->listen_count; i++) {
        const struct endpoint *other = i < c->listen_count ? &c->listen[i] : c->http_listen;

        if (other && endpoint_equal(other, c->control_socket)) {
            problem_at(&r, c, CK_CONTROL_SOCKET);
            problem(&r, "control_socket: '%s' is also a %s endpoint", c->control_socket->spec,
                    i < c->listen_count ? "policy listen" : "http_listen");
        }
    }
    if (c->redis_username[0] != '\0' && c->redis_password[0] == '\0') {
        /* AUTH with a user takes its password: without one, Redis would be asked as the
         * default user, which is not what the file says. */
        problem_at(&r, c, CK_REDIS_USERNAME);
        problem(&r, "redis_username: '%s' is set without redis_password (AUTH with a user "
                    "needs its password)",
                c->redis_username);
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
    buf = xmalloc(MAX_CONFIG_BYTES + 1);
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

/* --------------------------------------------------- -p, -n and reloads */

/* main.cf syntax; postconf too writes an empty value as "name =". */
static void write_setting(FILE *out, const char *name, const char *value)
{
    if (*value == '\0')
        fprintf(out, "%s =\n", name);
    else
        fprintf(out, "%s = %s\n", name, value);
}

void config_write_defaults(FILE *out)
{
    struct config *c = config_new();

    for (size_t i = 0; i < KEY_COUNT; i++) {
        const struct key_def *k = &keys[i];

        /* A default worked out at start (the host name) is a string key's value. */
        write_setting(out, k->name,
                      k->default_value ? k->default_value : *(char *const *)cfield(c, k->offset));
    }
    config_free(c);
}

/* The value in effect as text: as written, else the default. */
static const char *value_text(const struct config *c, size_t i)
{
    if (c->origin[i].value != NULL)
        return c->origin[i].value;
    return keys[i].default_value ? keys[i].default_value : "";
}

void config_write_effective(const struct config *c, FILE *out)
{
    for (size_t i = 0; i < KEY_COUNT; i++) {
        const char *value = c->origin[i].value;

        /* Not set: the default.  A key without default text (host_id: the host name
         * config_new found) is a string key whose value is that default. */
        if (value == NULL)
            value = keys[i].default_value         ? keys[i].default_value
                    : keys[i].type == KT_STRING ? *(char *const *)cfield(c, keys[i].offset)
                                                : "";
        write_setting(out, keys[i].name, keys[i].secret && *value != '\0' ? "(set)" : value);
    }
}

void config_write_sample(FILE *out)
{
    fputs("# /etc/relaywatch/relaywatch.conf: relaywatchd's configuration (main.cf syntax).\n"
          "# Every key is here, commented out, with its built-in default and what it is;\n"
          "# uncomment a line to change it.  relaywatchd -t checks this file, -n prints\n"
          "# what it sets.  Keep it root:relaywatch 0640: it may hold redis_password.\n",
          out);
    for (size_t i = 0; i < KEY_COUNT; i++) {
        const struct key_def *k = &keys[i];

        fprintf(out, "\n# %s\n", k->meaning);
        /* The built machine's name is no default of the host the file is installed on. */
        if (k->default_value == NULL)
            fprintf(out, "# default: this host's name (gethostname)\n#%s = NAME\n", k->name);
        else if (*k->default_value == '\0')
            fprintf(out, "#%s =\n", k->name);
        else
            fprintf(out, "#%s = %s\n", k->name, k->default_value);
    }
}

void config_write_set(const struct config *c, FILE *out)
{
    for (size_t i = 0; i < KEY_COUNT; i++) {
        const char *value = c->origin[i].value; /* set with origin[i].source */

        if (value == NULL)
            continue;
        write_setting(out, keys[i].name, keys[i].secret && *value != '\0' ? "(set)" : value);
    }
}

/* Two lists of text items, whatever separates them. */
static bool same_items(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

/* Whether key i's value is the same in a and b: as parsed, or as items of its text. */
static bool same_value(const struct config *a, const struct config *b, size_t i)
{
    const struct key_def *k = &keys[i];
    const void *va = cfield(a, k->offset), *vb = cfield(b, k->offset);

    switch (k->type) {
    case KT_STRING: return strcmp(*(char *const *)va, *(char *const *)vb) == 0;
    case KT_YES_NO: return *(const bool *)va == *(const bool *)vb;
    case KT_UNSIGNED: return *(const unsigned *)va == *(const unsigned *)vb;
    case KT_DURATION:
    case KT_NUMBER: return *(const double *)va == *(const double *)vb;
    case KT_ENUM: return memcmp(va, vb, k->size) == 0;
    case KT_LIST:
        return same_items(*(char **const *)va, *(const size_t *)cfield(a, k->count_offset),
                          *(char **const *)vb, *(const size_t *)cfield(b, k->count_offset));
    case KT_CUSTOM: {
        char **ia, **ib;
        size_t na = split_list(value_text(a, i), &ia), nb = split_list(value_text(b, i), &ib);
        bool same = same_items(ia, na, ib, nb);

        strings_free(ia, na);
        strings_free(ib, nb);
        return same;
    }
    }
    return false;
}

/* Whether key i is off in c: no, 0, empty. */
static bool is_off(const struct config *c, size_t i)
{
    const struct key_def *k = &keys[i];
    const void *v = cfield(c, k->offset);

    switch (k->type) {
    case KT_STRING: return **(char *const *)v == '\0';
    case KT_YES_NO: return !*(const bool *)v;
    case KT_UNSIGNED: return *(const unsigned *)v == 0;
    case KT_DURATION:
    case KT_NUMBER: return *(const double *)v == 0;
    case KT_ENUM: return k->size == sizeof(bool) ? !*(const bool *)v : *(const int *)v == 0;
    case KT_LIST: return *(const size_t *)cfield(c, k->count_offset) == 0;
    case KT_CUSTOM: {
        char **items;
        size_t n = split_list(value_text(c, i), &items);

        strings_free(items, n);
        return n == 0;
    }
    }
    return false;
}

static bool needs_restart(const struct config *running, const struct config *next, size_t i)
{
    switch (keys[i].restart) {
    case RELOADS: return false;
    case RESTART_ON_CHANGE: return !same_value(running, next, i);
    case RESTART_TURNING_ON: return is_off(running, i) && !is_off(next, i);
    case RESTART_ON_OFF: return is_off(running, i) != is_off(next, i);
    }
    return false;
}

unsigned config_restart_changes(const struct config *running, const struct config *next,
                                config_restart_fn *fn, void *ctx)
{
    unsigned warned = 0;

    for (size_t g = 1; g < GROUP_COUNT; g++) {
        char message[1024];
        size_t len = 0;

        for (size_t i = 0; i < KEY_COUNT && len < sizeof(message); i++)
            if (keys[i].group == g && needs_restart(running, next, i))
                len += (size_t)snprintf(message + len, sizeof(message) - len, "%s%s",
                                        len ? ", " : "", keys[i].name);
        if (len == 0)
            continue;
        if (len < sizeof(message))
            snprintf(message + len, sizeof(message) - len, " changed: %s", restart_messages[g]);
        fn(ctx, message);
        warned++;
    }
    return warned;
}

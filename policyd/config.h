/*
 * config: relaywatchd's configuration, in Postfix main.cf syntax.
 *
 * Parsing is a pure function over a buffer: problems are handed to a
 * report callback as (source, line, message) so that `relaywatchd -t`
 * can print every one of them as FILE:LINE: message.  Unknown keys are
 * errors.  Defaults are parsed from text by the same setters as the
 * file, so a default can never be a value the file would refuse.
 */
#ifndef RELAYWATCH_CONFIG_H
#define RELAYWATCH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

enum endpoint_kind { ENDPOINT_INET, ENDPOINT_UNIX };

struct endpoint {
    enum endpoint_kind kind;
    char *spec; /* as written, e.g. "inet:127.0.0.1:10040" */
    char *host; /* inet: address or name, without IPv6 brackets */
    char *port; /* inet: decimal port */
    char *path; /* unix: socket path */
};

/* Where a key got its value, for problems found across keys. */
struct config_origin {
    const char *source; /* file name or "-o"; NULL: built-in default */
    unsigned line;
};

enum config_key {
    CK_LISTEN,
    CK_UNIX_SOCKET_MODE,
    CK_MAX_CONNECTIONS,
    CK_IDLE_TIMEOUT,
    CK_SHUTDOWN_TIMEOUT,
    CK_LOG_REQUESTS,
    CK_STORE,
    CK_REDIS_PASSWORD,
    CK_HOST_ID,
    CK_LOCAL_DOMAINS,
    CK_RESOLVER,
    CK_TDNS_CLIENT,
    CK_HTTP_LISTEN,
    CK_WINDOWS,
    CK_CULPRIT_SLOTS,
    CK_SESSION_SLOTS,
    CK_SESSION_TIMEOUT,
    CK_TRANSACTION_TIMEOUT,
    CK_COUNT_MESSAGES_AT,
    CK_STORE_FLUSH_INTERVAL,
    CK_STORE_TIMEOUT,
    CK_STORE_RETENTION,
    CK_STORE_BACKLOG,
    CK_DNS_LOOKUPS,
    CK_DNS_TIMEOUT,
    CK_DNS_TRIES,
    CK_DNS_WAIT,
    CK_DNS_MAX_OUTSTANDING,
    CK_DNS_CACHE_SIZE,
    CK_DNS_CACHE_MAX_TTL,
    CK_FEED_CLIENTS,
    CK_TDNS_STALE_AFTER,
    CK_COUNT
};

struct config {
    struct config_origin origin[CK_COUNT];
    struct endpoint *listen;
    size_t listen_count;
    struct endpoint *http_listen; /* NULL: off */
    unsigned unix_socket_mode;
    unsigned max_connections;
    double idle_timeout;     /* seconds */
    double shutdown_timeout; /* seconds */
    bool log_requests;
    char *store;
    char *redis_password;
    char *host_id;
    char **local_domains;
    size_t local_domain_count;
    char *resolver;
    char *tdns_client;
    /* Counting windows, as written ("1m") and in seconds. */
    unsigned window_count;
    char window_name[8][16];
    double window_seconds[8];
    unsigned culprit_slots;
    unsigned session_slots;
    double session_timeout;
    double transaction_timeout;
    enum { COUNT_AT_AUTO, COUNT_AT_RCPT, COUNT_AT_END_OF_MESSAGE } count_messages_at;
    double store_flush_interval, store_timeout, store_retention, store_backlog; /* seconds */
    /* The daemon's own lookups: a mask of DNS_LOOKUP_* bits. */
    unsigned dns_lookups;
    double dns_timeout, dns_wait, dns_cache_max_ttl; /* seconds */
    unsigned dns_tries, dns_max_outstanding, dns_cache_size;
    /* relaywatch feed: the clients whose queries it keeps (IP or IP/LEN), none: all. */
    char **feed_clients;
    size_t feed_client_count;
    double tdns_stale_after; /* seconds without a feed write before tdns is marked stale */
};

#define DNS_LOOKUP_CLIENT_PTR 1u
#define DNS_LOOKUP_CLIENT_A 2u /* the A of the name the PTR gave: forward confirmation */
#define DNS_LOOKUP_SENDER_MX 4u
#define DNS_LOOKUP_RECIPIENT_MX 8u /* relay recipients' domains */

/* Called once per problem; line 0 means no line (a -o override, say). */
typedef void config_report_fn(void *ctx, const char *source, unsigned line, const char *message);

/* A configuration holding the built-in defaults; host_id is the host name. */
struct config *config_new(void);
void config_free(struct config *c);

/*
 * Parse main.cf-style text and apply every setting to c.  Returns the
 * number of problems reported (0: valid).  source names the text in
 * reports (the file name); it must outlive c.
 */
unsigned config_parse_buffer(struct config *c, const char *buf, size_t len, const char *source,
                             config_report_fn *report, void *ctx);

/* Apply one NAME=VALUE override as given to -o.  Returns 0 or 1 problem. */
unsigned config_parse_override(struct config *c, const char *assignment, config_report_fn *report,
                               void *ctx);

/*
 * Read file (NULL: none, built-in defaults) and apply the overrides (-o),
 * reporting every problem; with check, config_check too.  NULL if there
 * was any problem; *problems says how many.
 */
struct config *config_load(const char *file, const char *const *overrides, unsigned override_count,
                           bool check, config_report_fn *report, void *ctx, unsigned *problems);

/* A report function printing FILE:LINE: message (FILE: message without a line) on stderr. */
void config_report_stderr(void *ctx, const char *source, unsigned line, const char *message);

/* Checks across keys and for features this version does not have. */
unsigned config_check(const struct config *c, config_report_fn *report, void *ctx);

/* Whether two endpoints name the same socket. */
bool endpoint_equal(const struct endpoint *a, const struct endpoint *b);

/* Names of every key, NULL-terminated, for documentation checks. */
const char *const *config_key_names(void);

#endif

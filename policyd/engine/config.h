/*
 * config: relaywatchd's configuration, in Postfix main.cf syntax.
 *
 * Every key is one row of a table in config.c: its name, type and bounds,
 * default text, where its value lands in struct config, whether a change
 * takes effect on SIGHUP or only at the next restart, and what it means.
 * Parsing, the defaults, relaywatchd -t, -p, -n and the reload's restart
 * warnings all read that table.
 *
 * Parsing is a pure function over a buffer: problems are handed to a
 * report callback as (source, line, message) so that `relaywatchd -t`
 * can print every one of them as FILE:LINE: message.  Unknown keys are
 * errors.  Defaults are parsed from text by the same setters as the
 * file, so a default can never be a value the file would refuse.
 *
 * A struct config owns every string and array it points to; they live
 * until config_free.  Nothing here blocks but config_load (reads a file)
 * and the writers (write to the FILE given).
 */
#ifndef RELAYWATCH_CONFIG_H
#define RELAYWATCH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "address.h"

enum endpoint_kind { ENDPOINT_INET, ENDPOINT_UNIX };

/* Read by relaywatchd and relaywatch without -c, when it exists. */
#define CONFIG_DEFAULT_FILE "/etc/relaywatch/relaywatch.conf"

#define CONFIG_BASELINE_SIGNALS 8

struct endpoint {
    enum endpoint_kind kind;
    char *spec; /* as written, e.g. "inet:127.0.0.1:10040" */
    char *host; /* inet: address or name, without IPv6 brackets */
    char *port; /* inet: decimal port */
    char *path; /* unix: socket path */
};

/* Where a key got its value, for problems found across keys and for relaywatchd -n. */
struct config_origin {
    const char *source; /* file name or "-o"; NULL: built-in default */
    unsigned line;
    char *value; /* the value as written (owned); NULL: built-in default */
};

enum config_key {
    CK_LISTEN,
    CK_UNIX_SOCKET_MODE,
    CK_MAX_CONNECTIONS,
    CK_IDLE_TIMEOUT,
    CK_REQUEST_TIMEOUT,
    CK_MAX_CONNECTIONS_PER_PEER,
    CK_SHUTDOWN_TIMEOUT,
    CK_LOG_REQUESTS,
    CK_STORE,
    CK_REDIS_PASSWORD,
    CK_REDIS_USERNAME,
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
    CK_DETECT_WINDOW,
    CK_DETECT_LOUD_AFTER,
    CK_DETECT_QUIET_AFTER,
    CK_DETECT_MX_FACTOR,
    CK_DETECT_MIN_MX,
    CK_DETECT_DOMAINS_FACTOR,
    CK_DETECT_MIN_DOMAINS,
    CK_DETECT_MIN_MESSAGES,
    CK_DETECT_ALPHA_BAND,
    CK_DETECT_ALPHA_FACTOR,
    CK_BASELINE_START,
    CK_BASELINE_HOUR_DAYS,
    CK_CULPRIT_ACTION,
    CK_CULPRIT_ESCALATE_ACTION,
    CK_ESCALATE_AFTER,
    CK_LOUD_RELAY_ACTION,
    CK_CULPRIT_MIN_SHARE,
    CK_CULPRIT_MIN_DOMAINS,
    CK_THROTTLE_COOLDOWN,
    CK_THROTTLE_SLOTS,
    CK_RELEASE_GRACE,
    CK_BLOCK_ACTION,
    CK_NEVER_THROTTLE_CLIENTS,
    CK_NEVER_THROTTLE_SASL_USERS,
    CK_NEVER_THROTTLE_SENDERS,
    CK_LIMIT_WINDOW,
    CK_LIMIT_COUNT,
    CK_LIMIT_SASL_USERNAME,
    CK_LIMIT_CLIENT_ADDRESS,
    CK_LIMIT_SENDER_DOMAIN,
    CK_LIMIT_DOMAINS,
    CK_LIMIT_ACTION,
    CK_FAST_PATH,
    CK_FAST_WINDOW,
    CK_FAST_MIN_DOMAINS,
    CK_FAST_MIN_MX,
    CK_FAST_FACTOR,
    CK_FAST_HALFLIFE,
    CK_FAST_SLOTS,
    CK_FAST_LEARN_PERIOD,
    CK_FAST_SITE_MIN_KEYS,
    CK_MONITOR_ONLY,
    CK_ALERT_COMMAND,
    CK_QUARANTINE,
    CK_POSTFIX_CONFIG_DIRECTORY,
    CK_QUARANTINE_LOOKBACK,
    CK_QUARANTINE_MESSAGES,
    CK_QUARANTINE_SLOTS,
    CK_USER,
    CK_CONTROL_SOCKET,
    CK_CONTROL_GROUP,
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
    double request_timeout;  /* seconds from a request's first byte to its last */
    unsigned max_connections_per_peer; /* per uid (unix) or address (TCP, not loopback) */
    double shutdown_timeout; /* seconds */
    bool log_requests;
    char *store;
    char *redis_password;
    char *redis_username; /* "": AUTH with the password alone */
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

    /* The detector (see detector.h); detect_window is one of the windows. */
    double detect_window, detect_loud_after, detect_quiet_after; /* seconds */
    double detect_mx_factor, detect_domains_factor, detect_alpha_factor;
    unsigned detect_min_mx, detect_min_domains, detect_min_messages;
    double detect_alpha_low, detect_alpha_high; /* both 0: the band is learned */
    double baseline_start[CONFIG_BASELINE_SIGNALS]; /* in detector_signal order */
    unsigned baseline_hour_days;
    /* Actions: Postfix access(5) actions, checked at parse time. */
    char *culprit_action, *culprit_escalate_action, *loud_relay_action, *limit_action,
        *block_action;
    double escalate_after, throttle_cooldown, release_grace; /* seconds */
    double culprit_min_share;
    unsigned culprit_min_domains, throttle_slots;
    char **never_throttle_clients; /* IP or IP/LEN, as written */
    size_t never_throttle_client_count;
    struct ip_network *never_throttle_nets; /* the same, parsed */
    char **never_throttle_sasl_users;
    size_t never_throttle_sasl_user_count;
    char **never_throttle_senders; /* user@domain, or a domain (with or without '@') */
    size_t never_throttle_sender_count;
    /* Static limits per key over limit_window; 0: off. */
    double limit_window;
    bool limit_count_messages; /* limits count messages, not recipients */
    unsigned limit_sasl_username, limit_client_address, limit_sender_domain, limit_domains;
    /* The per-key fast path (fastpath.h): a key is stopped when its distinct relay domains
     * (or the MX queries it caused) in fast_window pass max(floor, fast_factor x its usual). */
    bool fast_path;
    double fast_window, fast_halflife; /* seconds */
    unsigned fast_min_domains, fast_min_mx, fast_slots;
    double fast_learn_period; /* seconds: how often a key's peak is learned */
    unsigned fast_site_min_keys; /* keys with a level before the site's usual is used */
    double fast_factor;
    bool monitor_only;
    char *alert_command; /* "" none */
    /* Holds (quarantine.h, hold_service.h): the queued messages of a stopped key are put
     * on hold with postsuper -c postfix_config_directory -h. */
    bool quarantine;
    char *postfix_config_directory;
    double quarantine_lookback;   /* seconds: how far back a stop reaches */
    unsigned quarantine_messages; /* queue IDs remembered per key */
    unsigned quarantine_slots;    /* keys remembered */
    char *user; /* started as root: the user the daemon runs as (the postsuper part stays root) */
    /* The one way to change state through the daemon (block, release): a unix socket whose
     * peers' credentials are checked; NULL: off.  Opened as root, before root is given up. */
    struct endpoint *control_socket;
    char *control_group; /* "" none: root and the daemon's user only; else a group name or gid */
};

/* The baseline_start names, in detector_signal order (detector.h). */
extern const char *const config_baseline_names[CONFIG_BASELINE_SIGNALS];

/* Whether an IPv4/IPv6 address (text, not NUL-terminated) is in one of the networks. */
static inline bool config_address_in(const char *addr, size_t len,
                                     const struct ip_network *networks, size_t count)
{
    return address_in_networks(addr, len, networks, count);
}

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

/* Names of every key, NULL-terminated, in table order, for documentation checks. */
const char *const *config_key_names(void);

/*
 * relaywatchd -p: every key with its built-in default, "name = value" lines in
 * table order (main.cf syntax; "name =" for an empty value).  host_id's default
 * is this host's name, as config_new finds it.
 */
void config_write_defaults(FILE *out);

/*
 * The sample configuration file the package installs: every key commented out,
 * "#name = default" after a "# meaning" line, in table order.  host_id, whose
 * default is worked out at start, reads "#host_id = NAME" with a note instead of
 * the name of the machine that wrote the sample.
 */
void config_write_sample(FILE *out);

/*
 * relaywatchd -n: the keys c's file and overrides set, with the value as written
 * (the last one for a key set twice), in table order.  A password is never
 * written: redis_password set to anything but empty is written as "(set)".
 */
void config_write_set(const struct config *c, FILE *out);

/*
 * relaywatchd -a: every key with the value in effect, in table order: as the file
 * or an override wrote it (the last one), else the built-in default (host_id: this
 * host's name), like postconf with no option.  redis_password set is "(set)".
 */
void config_write_effective(const struct config *c, FILE *out);

/* Called once per restart group with a changed key; message has no "reload: " prefix. */
typedef void config_restart_fn(void *ctx, const char *message);

/*
 * For a reload from running to next: the keys that take effect only at the next
 * restart and changed (compared as parsed, or as normalized text for the few
 * keys with their own syntax).  fn gets one message per group of such keys,
 * naming the changed ones.  Returns the number of messages.
 */
unsigned config_restart_changes(const struct config *running, const struct config *next,
                                config_restart_fn *fn, void *ctx);

#endif

/*
 * relaywatchd: the RelayWatch policy daemon.
 *
 *   relaywatchd [-c FILE] [-e] [-t] [-o NAME=VALUE]...
 *
 * Stays in the foreground.  SIGTERM/SIGINT: stop accepting, answer what is
 * in flight, exit 0.  SIGHUP: reload the configuration; a broken one is
 * logged and the running one kept.  Exit 2 for a bad command line or an
 * unusable configuration, with the reason on stderr.
 */
#include <ctype.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "decision.h"
#include "defense.h"
#include "hold_service.h"
#include "postsuper_runner.h"
#include "privsep.h"
#include "fastpath.h"
#include "http.h"
#include "log.h"
#include "lookups.h"
#include "resolver.h"
#include "server.h"
#include "status.h"
#include "store.h"
#include "traffic.h"

#define DEFAULT_CONFIG_FILE "/etc/relaywatch/relaywatch.conf"
#define MAX_OVERRIDES 256

struct options {
    const char *config_file; /* NULL: none (defaults only) */
    bool explicit_file;      /* -c given: the file must exist */
    const char *overrides[MAX_OVERRIDES];
    int override_count;
};

struct daemon_state {
    struct ev_loop *loop;
    struct options *opts;
    struct config *cfg;
    struct policy_server *server;
    struct http_server *http;
    struct traffic *traffic;
    struct store *store;
    struct resolver *resolver; /* NULL: dns_lookups is empty */
    struct defense *defense;
    struct hold_service *holds; /* the quarantine (hold_service.h) */
    uint64_t holds_saved_version; /* quarantine_held_version when last saved */
    uint64_t holds_saved_ids;
    double holds_saved_at;
    struct held_answer *held;  /* answers waiting for lookups (dns_wait) */
    uint64_t requests[STATUS_STATES][AK_COUNT];
    double started;           /* wall clock at start */
    double started_monotonic; /* CLOCK_MONOTONIC at start */
    double request_now;       /* the counting time of the request being handled, 0 between */
    struct dns_counts request_dns; /* its DNS events so far (lookups answered at once, ...) */
    struct resolver_tag request_tag;
    ev_timer tick;
    unsigned ticks;
    double wall_offset; /* wall clock minus counting clock, as of the last tick */
    uint64_t baseline_saved_learned; /* minutes_learned when the baselines were last saved */
    uint64_t fast_saved_learned;     /* the fast path's periods learned then */
    double baseline_saved_at;        /* when (ev_time) */
    bool history_seen; /* the store gave back counts of earlier runs: the windows are full */
    bool baseline_read; /* the store's baselines were read (or there were none) */
    uint64_t alerts_run, alerts_failed;
    bool stopping;
    /* The postsuper runner (postsuper_runner.h): forked before root is given up. */
    int runner_fd;
    pid_t runner_pid;
    char runner_unavailable[256]; /* why there is none */
    char runs_as[128];            /* "NAME (uid N, gid N)" when root was given up */
};

extern char **environ;

/*
 * The counting clock: wall-clock time at start plus monotonic time since.
 * It never steps (an NTP step or a VM restore would otherwise empty the
 * windows or make every open session look expired), and buckets still line
 * up with wall-clock minutes as far as the clocks agree.
 */
static double counting_now(const struct daemon_state *d)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return d->started + ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9 - d->started_monotonic);
}

/*
 * An answer held back for up to dns_wait while the request's lookups run.
 * It lives until the lookups have ended (ready), since they refer to it;
 * the answer goes out at the first of ready and the timer.
 */
struct held_answer {
    struct daemon_state *d;
    struct held_answer *prev, *next; /* in d->held while hold is set */
    struct policy_hold *hold; /* NULL once answered or the connection is gone */
    struct decision decision;
    ev_timer timer;
    bool lookups_done;
};

/* The answer no longer waits: off the list of held ones, timer stopped. */
static void held_answer_release(struct held_answer *h)
{
    ev_timer_stop(h->d->loop, &h->timer);
    if (h->hold == NULL)
        return;
    h->hold = NULL;
    if (h->prev)
        h->prev->next = h->next;
    else
        h->d->held = h->next;
    if (h->next)
        h->next->prev = h->prev;
    h->prev = h->next = NULL;
}

static void held_answer_send(struct held_answer *h)
{
    struct policy_hold *hold = h->hold;

    held_answer_release(h);
    if (hold != NULL)
        policy_server_answer(hold, &h->decision);
}

static void held_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct held_answer *h = w->data;

    (void)loop;
    (void)revents;
    held_answer_send(h);
}

static void held_lookups_ready(void *arg)
{
    struct held_answer *h = arg;

    h->lookups_done = true;
    held_answer_send(h);
    free(h);
}

static void held_connection_gone(void *arg)
{
    held_answer_release(arg);
}

static void start_lookups(struct daemon_state *d, const struct policy_request *req,
                          const struct traffic_news *news, const struct decision *out)
{
    struct held_answer *h;

    if (d->cfg->dns_wait <= 0 || d->stopping) {
        lookups_start(d->resolver, d->cfg->dns_lookups, req, news, NULL, NULL);
        return;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        lookups_start(d->resolver, d->cfg->dns_lookups, req, news, NULL, NULL);
        return;
    }
    h->d = d;
    h->decision = *out;
    if (!lookups_start(d->resolver, d->cfg->dns_lookups, req, news, held_lookups_ready, h)) {
        free(h); /* answered from the cache, or nothing to look up */
        return;
    }
    h->hold = policy_server_hold(d->server, held_connection_gone, h);
    ev_timer_init(&h->timer, held_timer_cb, d->cfg->dns_wait, 0.);
    h->timer.data = h;
    if (h->hold != NULL) {
        h->next = d->held;
        if (d->held)
            d->held->prev = h;
        d->held = h;
        ev_timer_start(d->loop, &h->timer);
    }
}

/* The hot path: count, decide, start lookups; nothing that can block. */
static void handle_request(void *ctx, const struct policy_request *req, struct decision *out)
{
    struct daemon_state *d = ctx;
    struct traffic_news news = {0};
    bool want_news = d->resolver != NULL || defense_wants_news(d->defense);

    /* Lookups answered at once (from the cache) count at the request's time. */
    d->request_now = counting_now(d);
    /* What the request started matters only to the lookups and to throttling. */
    traffic_request(d->traffic, req, d->request_now, want_news ? &news : NULL);
    defense_decide(d->defense, req, &news, d->request_now + d->wall_offset, out);
    if (req->state == PS_END_OF_MESSAGE) {
        if (news.relay_message)
            /* The never_throttle lists are looked at only when the quarantine needs them. */
            hold_service_message(d->holds, req, &news, out->kind == AK_HOLD,
                                 d->cfg->quarantine && defense_request_exempt(d->defense, req),
                                 defense_throttles_const(d->defense),
                                 d->request_now + d->wall_offset);
        else
            hold_service_saw_end_of_message(d->holds);
    }
    /* A refused or held recipient costs Postfix no MX lookup, and the daemon's own would keep
     * the MX signal up while a throttled culprit's queue retries. */
    if (out->kind != AK_DUNNO)
        news.relay_recipient = false;
    d->requests[req->state][out->kind]++;
    if (d->resolver != NULL && (news.new_session || news.new_transaction || news.relay_recipient)) {
        start_lookups(d, req, &news, out);
        /* The fast path's MX figure: queries this request's lookups sent upstream. */
        defense_dns(d->defense, d->request_tag.who, d->request_dns.n[DNS_MX][DNS_UPSTREAM],
                    d->request_now + d->wall_offset);
        traffic_dns(d->traffic, &d->request_dns, d->request_tag, d->request_now);
    }
    d->request_now = 0;
}

static void count_dns(void *ctx, enum dns_type type, enum dns_outcome outcome,
                      struct resolver_tag tag)
{
    struct daemon_state *d = ctx;
    struct dns_counts one = {{{0}}, 0};

    /* During a request: gathered, and counted once when it is answered (handle_request). */
    if (d->request_now != 0) {
        dns_counts_add(&d->request_dns, type, outcome);
        d->request_tag = tag;
        return;
    }
    dns_counts_add(&one, type, outcome);
    if (type == DNS_MX && outcome == DNS_UPSTREAM)
        defense_dns(d->defense, tag.who, 1, counting_now(d) + d->wall_offset);
    traffic_dns(d->traffic, &one, tag, counting_now(d));
}

static struct resolver *open_resolver(struct daemon_state *d, char *err, size_t errlen)
{
    const struct config *c = d->cfg;
    char servers[1024];
    size_t n = 0;
    struct resolver_settings set = {servers,           c->dns_timeout,       c->dns_tries,
                                    c->dns_max_outstanding, c->dns_cache_size, c->dns_cache_max_ttl};

    if (c->dns_lookups == 0)
        return NULL;
    /* c-ares wants "IP[:PORT],IP[:PORT]"; the key is a Postfix-style list. */
    for (const char *p = c->resolver; *p && n + 1 < sizeof(servers); p++)
        if (*p == ' ' || *p == '\t' || *p == ',') {
            if (n > 0 && servers[n - 1] != ',')
                servers[n++] = ',';
        } else {
            servers[n++] = *p;
        }
    while (n > 0 && servers[n - 1] == ',')
        n--;
    servers[n] = '\0';
    return resolver_new(d->loop, &set, count_dns, d, err, errlen);
}

/* One query parameter's value, %-decoded, into out; false if absent or too long. */
static bool query_param(const char *query, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);

    for (const char *p = query; *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);

        if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            size_t n = 0;

            for (size_t i = nlen + 1; i < len; i++) {
                int ch = (unsigned char)p[i];

                if (ch == '%') {
                    char hex[3];

                    if (i + 2 >= len || !isxdigit((unsigned char)p[i + 1]) ||
                        !isxdigit((unsigned char)p[i + 2]))
                        return false;
                    hex[0] = p[i + 1];
                    hex[1] = p[i + 2];
                    hex[2] = '\0';
                    ch = (int)strtoul(hex, NULL, 16);
                    i += 2;
                } else if (ch == '+') {
                    ch = ' ';
                }
                if (n + 1 >= outlen || ch == 0)
                    return false;
                out[n++] = (char)ch;
            }
            out[n] = '\0';
            return true;
        }
        p += len + (amp != NULL);
    }
    return false;
}

/* GET /throttle: the throttled keys; POST /throttle?block=KIND:KEY[&duration=S] or
 * ?release=KIND:KEY: relaywatch block/release for a daemon without a shared store. */
static int handle_throttle(struct daemon_state *d, const char *method, const char *query,
                           struct http_body *body, const char **content_type)
{
    char member[512], duration[32], err[300];
    double now = ev_time(); /* throttle records go by the wall clock */

    if (strcmp(method, "GET") == 0) {
        defense_throttled_json(d->defense, body, now);
        /* {"throttled":[...],"held":[...]} */
        if (body->len > 0 && body->data[body->len - 1] == '}')
            body->len--;
        http_body_printf(body, ",\"held\":");
        status_held_json(body, d->holds, now);
        http_body_printf(body, "}\n");
        *content_type = "application/json";
        return 200;
    }
    *content_type = "text/plain; charset=utf-8";
    if (query_param(query, "block", member, sizeof(member))) {
        double seconds = 0;

        if (query_param(query, "duration", duration, sizeof(duration))) {
            char *end;

            seconds = strtod(duration, &end);
            if (end == duration || *end != '\0' || !(seconds >= 0)) {
                http_body_printf(body, "duration: '%s' is not a number of seconds\n", duration);
                return 400;
            }
        }
        if (!defense_block(d->defense, member, seconds, now, err, sizeof(err))) {
            http_body_printf(body, "%s\n", err);
            return 400;
        }
        http_body_printf(body, "blocked %s\n", member);
        return 200;
    }
    if (query_param(query, "release", member, sizeof(member))) {
        if (!defense_release(d->defense, member, now, err, sizeof(err))) {
            http_body_printf(body, "%s\n", err);
            return 400;
        }
        http_body_printf(body, "released %s\n", member);
        return 200;
    }
    http_body_printf(body, "POST /throttle?block=KIND:KEY[&duration=SECONDS] or "
                           "POST /throttle?release=KIND:KEY\n");
    return 400;
}

static int handle_http(void *ctx, const char *method, const char *path, const char *query, struct http_body *body,
                       const char **content_type)
{
    struct daemon_state *d = ctx;
    struct store_state store;
    struct resolver_stats dns;
    struct status_sources src = {d->cfg, d->traffic, policy_server_stats(d->server),
                                 (const uint64_t(*)[AK_COUNT])d->requests, d->started, &store,
                                 d->resolver ? &dns : NULL, ev_time(), d->defense, d->holds};
    double now = counting_now(d);

    store_get_state(d->store, &store);
    if (d->resolver)
        resolver_get_stats(d->resolver, &dns);
    if (strcmp(path, "/throttle") == 0)
        return handle_throttle(d, method, query, body, content_type);
    if (strcmp(method, "GET") != 0) {
        http_body_printf(body, "only GET here; POST is for /throttle\n");
        *content_type = "text/plain; charset=utf-8";
        return 405;
    }
    if (strcmp(path, "/status") == 0) {
        if (strcmp(query, "format=text") == 0) {
            status_text(body, &src, now);
            *content_type = "text/plain; charset=utf-8";
        } else {
            status_json(body, &src, now);
            *content_type = "application/json";
        }
        return 200;
    }
    if (strcmp(path, "/held") == 0) {
        status_held_text(body, d->holds, ev_time());
        *content_type = "text/plain; charset=utf-8";
        return 200;
    }
    if (strcmp(path, "/metrics") == 0) {
        status_metrics(body, &src, now);
        *content_type = "text/plain; version=0.0.4; charset=utf-8";
        return 200;
    }
    http_body_printf(body, "not found; try /status, /status?format=text or /metrics\n");
    *content_type = "text/plain; charset=utf-8";
    return 404;
}

static void alert_child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    struct daemon_state *d = w->data;

    (void)revents;
    ev_child_stop(loop, w);
    if (!WIFEXITED(w->rstatus) || WEXITSTATUS(w->rstatus) != 0) {
        d->alerts_failed++;
        log_error("alert_command (pid %d) failed: %s %d", w->rpid,
                  WIFEXITED(w->rstatus) ? "exit status" : "signal",
                  WIFEXITED(w->rstatus) ? WEXITSTATUS(w->rstatus) : WTERMSIG(w->rstatus));
    }
    free(w);
}

/*
 * Hand an incident to alert_command (sh -c) with its JSON on standard input.  The
 * JSON (a few kB) fits a pipe's buffer, so writing it never blocks; the child is
 * reaped on the loop.
 */
static void run_alert(struct daemon_state *d, const char *json)
{
    const char *cmd = d->cfg->alert_command;
    char sh[] = "/bin/sh", dash_c[] = "-c";
    char *argv[] = {sh, dash_c, NULL, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t sigs;
    int fds[2];
    pid_t pid;
    int rc;
    ev_child *child;

    if (cmd[0] == '\0')
        return;
    if (pipe2(fds, O_CLOEXEC) != 0) {
        d->alerts_failed++;
        log_error("alert_command: cannot make a pipe: %s", strerror(errno));
        return;
    }
    argv[2] = strdup(cmd);
    if (argv[2] == NULL)
        abort();
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
    /* The command starts with default signal handling (the daemon ignores SIGPIPE) and
     * nothing blocked. */
    posix_spawnattr_init(&attr);
    sigemptyset(&sigs);
    posix_spawnattr_setsigmask(&attr, &sigs);
    sigaddset(&sigs, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &sigs);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    free(argv[2]);
    close(fds[0]);
    if (rc != 0) {
        close(fds[1]);
        d->alerts_failed++;
        log_error("alert_command: cannot run %s: %s", cmd, strerror(rc));
        return;
    }
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    {
        ssize_t n = write(fds[1], json, strlen(json));

        if (n < 0 && errno == EPIPE)
            log_warning("alert_command: the command did not read the incident (it exited)");
        else if (n != (ssize_t)strlen(json))
            log_error("alert_command: the incident did not fit the pipe; the command gets "
                      "part of it");
    }
    close(fds[1]);
    d->alerts_run++;
    child = calloc(1, sizeof(*child));
    if (child == NULL)
        abort();
    ev_child_init(child, alert_child_cb, pid, 0);
    child->data = d;
    ev_child_start(d->loop, child);
}

/* Once a second: the detector's sample, with what is missing said. */
static void defend(struct daemon_state *d, double now)
{
    struct defense_inputs in = {0};
    struct store_state st;
    char missing[200] = "";
    time_t wall = (time_t)ev_time();
    struct tm tm;
    const char *alert;

    localtime_r(&wall, &tm);
    in.now = now;
    in.wall = ev_time();
    d->wall_offset = in.wall - now;
    in.hour = tm.tm_hour;
    in.own_dns = d->resolver != NULL;
    store_get_state(d->store, &st);
    /* Until one detect_window has passed (or the store gave the earlier runs' counts back)
     * the windows are not full, and before the stored baselines are read they would be
     * overwritten: nothing is learned. */
    in.warming_up = (!d->history_seen && now - d->started < d->cfg->detect_window) ||
                    (st.shared && !d->baseline_read);
    if (d->cfg->tdns_client[0] != '\0') {
        bool fresh = st.tdns_read && st.tdns_updated > 0 &&
                     ev_time() - st.tdns_updated <= d->cfg->tdns_stale_after;
        unsigned w = 0;

        for (unsigned i = 0; i < d->cfg->window_count; i++)
            if (d->cfg->window_seconds[i] == d->cfg->detect_window)
                w = i;
        if (fresh && w < STORE_MAX_WINDOWS) {
            in.tdns = true;
            in.tdns_mx = st.tdns[w][TDNS_MX];
            in.tdns_a = st.tdns[w][TDNS_A] + st.tdns[w][TDNS_AAAA];
            in.tdns_ptr = st.tdns[w][TDNS_PTR];
        } else {
            snprintf(missing, sizeof(missing), "tdns %s; ",
                     !st.connected ? "unread (store down)" : "stale (is relaywatch feed running?)");
        }
    }
    if (st.shared && !st.connected)
        snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing),
                 "store down (throttles not shared); ");
    in.missing = missing;
    defense_tick(d->defense, &in);
    hold_service_tick(d->holds, defense_throttles_const(d->defense), in.wall);
    alert = defense_pending_alert(d->defense);
    if (alert != NULL) {
        run_alert(d, alert);
        defense_alert_taken(d->defense);
    }
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct daemon_state *d = w->data;
    double now = counting_now(d);

    (void)revents;
    (void)loop;
    traffic_tick(d->traffic, now);
    if (d->ticks++ % 4 == 0)
        defend(d, now);
}

/* Open the HTTP endpoint of cfg (none if off); false with the reason in err. */
static bool open_http(struct daemon_state *d, const struct config *cfg, struct http_server **out,
                      char *err, size_t errlen)
{
    *out = NULL;
    if (cfg->http_listen == NULL)
        return true;
    *out = http_server_new(d->loop, cfg->http_listen, handle_http, d, err, errlen);
    return *out != NULL;
}

/* Counting keys that size tables at start cannot change while running. */
static void warn_restart_keys(const struct config *old, const struct config *cfg)
{
    bool windows_same = old->window_count == cfg->window_count;

    for (unsigned w = 0; windows_same && w < cfg->window_count; w++)
        windows_same = strcmp(old->window_name[w], cfg->window_name[w]) == 0;
    if (!windows_same || old->culprit_slots != cfg->culprit_slots ||
        old->session_slots != cfg->session_slots || old->throttle_slots != cfg->throttle_slots ||
        old->fast_slots != cfg->fast_slots)
        log_warning("reload: windows, culprit_slots, session_slots, throttle_slots and fast_slots "
                    "take effect at the next restart; counting goes on with the running values");
    if (strcmp(old->postfix_config_directory, cfg->postfix_config_directory) != 0 ||
        strcmp(old->user, cfg->user) != 0 || old->quarantine_slots != cfg->quarantine_slots ||
        (cfg->quarantine && !old->quarantine))
        log_warning("reload: user, postfix_config_directory, quarantine_slots and turning "
                    "quarantine on take effect at the next restart (they are fixed when root is "
                    "given up)");
    if (strcmp(old->store, cfg->store) != 0 || strcmp(old->host_id, cfg->host_id) != 0 ||
        strcmp(old->redis_password, cfg->redis_password) != 0 ||
        old->store_flush_interval != cfg->store_flush_interval ||
        old->store_timeout != cfg->store_timeout || old->store_retention != cfg->store_retention ||
        old->store_backlog != cfg->store_backlog)
        log_warning("reload: store, host_id and the store_* keys take effect at the next "
                    "restart; the store goes on with the running values");
    if (strcmp(old->resolver, cfg->resolver) != 0 || old->dns_timeout != cfg->dns_timeout ||
        old->dns_tries != cfg->dns_tries || old->dns_max_outstanding != cfg->dns_max_outstanding ||
        old->dns_cache_size != cfg->dns_cache_size ||
        old->dns_cache_max_ttl != cfg->dns_cache_max_ttl ||
        (old->dns_lookups == 0) != (cfg->dns_lookups == 0))
        log_warning("reload: resolver, dns_timeout, dns_tries, dns_max_outstanding, the "
                    "dns_cache_* keys, and turning dns_lookups on or off take effect at the next "
                    "restart; lookups go on with the running values");
}

static void usage(void)
{
    fprintf(stderr, "usage: relaywatchd [-c FILE] [-e] [-t] [-o NAME=VALUE]...\n");
}

/* Problems while loading go to stderr at start and for -t (config_report_stderr), to the log
 * on reload. */
static void report_log(void *ctx, const char *source, unsigned line, const char *message)
{
    (void)ctx;
    if (line > 0)
        log_error("%s:%u: %s", source, line, message);
    else
        log_error("%s: %s", source, message);
}

/* Build a configuration from the file and -o overrides; NULL if it has problems. */
static struct config *load_config(const struct options *o, config_report_fn *report,
                                  unsigned *problems)
{
    return config_load(o->config_file, o->overrides, (unsigned)o->override_count, true, report,
                       NULL, problems);
}

static void on_flushed(void *arg)
{
    struct daemon_state *d = arg;

    ev_break(d->loop, EVBREAK_ALL);
}

/* Every request answered: write the last counts, then leave. */
static void on_drained(void *arg)
{
    struct daemon_state *d = arg;

    store_flush_final(d->store, on_flushed, d);
}

static void store_rewrite_all(void *ctx)
{
    struct daemon_state *d = ctx;

    traffic_store_rewrite_all(d->traffic);
    throttle_rewrite_all(defense_throttles(d->defense));
    d->baseline_saved_learned = UINT64_MAX; /* save again */
    d->baseline_saved_at = 0;
}

static void store_history(void *ctx, int64_t minute, const uint64_t *counts)
{
    struct daemon_state *d = ctx;

    /* Earlier runs' minutes (this run's own fields are left out by the store). */
    for (int c = 0; c < TC_COUNT && !d->history_seen; c++)
        d->history_seen = counts[c] != 0;
    traffic_add_history(d->traffic, minute, counts);
}

static void store_baseline(void *ctx, const char *text, size_t len)
{
    struct daemon_state *d = ctx;
    struct quarantine_stats qs;

    d->baseline_read = true;
    if (text != NULL) {
        log_info("baselines: %u learned values read back from the store",
                 detector_load(defense_detector_mut(d->defense), text, len));
        log_info("fast path: %u keys' usual levels read back from the store",
                 defense_fast_load(d->defense, text, len, ev_time()));
        log_info("quarantine: %u queue IDs of earlier runs read back from the store",
                 hold_service_load(d->holds, text, len, ev_time()));
        quarantine_get_stats(hold_service_ledger(d->holds), &qs);
        d->holds_saved_version = quarantine_held_version(hold_service_ledger(d->holds));
        d->holds_saved_ids = qs.ids;
    } else
        log_info("baselines: none in the store yet; starting from baseline_start");
}

static void throttle_to_store(void *ctx, bool set, const struct throttle_record *r)
{
    struct store_batch *b = ctx;
    char field[CULPRIT_KEY_MAX + 32], value[THROTTLE_ACTION_MAX + THROTTLE_REASON_MAX + 200];

    snprintf(field, sizeof(field), "%s:%s", culprit_kind_name(r->kind), r->key);
    if (set)
        throttle_record_format(r, value, sizeof(value));
    store_batch_throttle(b, field, set ? value : NULL, r->changed);
}

static void store_collect_all(void *ctx, struct store_batch *b)
{
    struct daemon_state *d = ctx;
    struct detector_view view;
    struct fast_stats fs;
    struct quarantine_stats qs;
    bool changed;
    double now = ev_time();

    detector_get_view(defense_detector(d->defense), &view);
    defense_fast_stats(d->defense, &fs);

    traffic_store_collect(d->traffic, b);
    throttle_collect(defense_throttles(d->defense), throttle_to_store, b);
    store_batch_state(b, detector_state_name(detector_state(defense_detector(d->defense))));
    /* Saved when the detector learned something (once a minute at most), or the fast path
     * did (keys' periods end at any second: once a minute at most, and when stopping); not
     * before the stored ones were read, or this run would overwrite what earlier runs
     * learned. */
    quarantine_get_stats(hold_service_ledger(d->holds), &qs);
    /* The quarantine's held IDs soon (a release after a crash needs them: within 5 s), the
     * others once a minute at most. */
    changed = view.samples_learned != d->baseline_saved_learned ||
              (quarantine_held_version(hold_service_ledger(d->holds)) != d->holds_saved_version &&
               (d->stopping || now - d->baseline_saved_at >= 5)) ||
              ((fs.learned != d->fast_saved_learned || qs.ids != d->holds_saved_ids) &&
               (d->stopping || now - d->baseline_saved_at >= 60));
    if (d->baseline_read && changed) {
        /* The detector's baselines, then the fast path's levels (the busiest keys first, as
         * many as fit): one text, one key. */
        enum { DETECTOR_TEXT = 16384, FAST_TEXT = 256 * 1024, HOLDS_TEXT = 1024 * 1024 };
        char *text = malloc(DETECTOR_TEXT + FAST_TEXT + HOLDS_TEXT);
        size_t n;

        if (text != NULL) {
            d->baseline_saved_learned = view.samples_learned;
            d->fast_saved_learned = fs.learned;
            d->baseline_saved_at = now;
            n = detector_save(defense_detector(d->defense), text, DETECTOR_TEXT);
            if (n >= DETECTOR_TEXT)
                n = strlen(text);
            n += defense_fast_save(d->defense, now, text + n, FAST_TEXT);
            n += hold_service_save(d->holds, text + n, HOLDS_TEXT);
            d->holds_saved_version = quarantine_held_version(hold_service_ledger(d->holds));
            d->holds_saved_ids = qs.ids;
            if (n > 0)
                store_batch_baseline(b, text);
            free(text);
        }
    }
}

static void store_throttles(void *ctx, bool begin, bool end, const char *field, size_t flen,
                            const char *value, size_t vlen)
{
    struct daemon_state *d = ctx;
    struct throttle_table *t = defense_throttles(d->defense);
    struct throttle_record r;

    if (begin) {
        throttle_sync_begin(t);
    } else if (end) {
        unsigned gone = throttle_sync_end(t);

        if (gone > 0)
            log_info("throttle: %u key(s) deleted from the store by someone else: dropped", gone);
    } else if (throttle_record_parse(field, flen, value, vlen, &r)) {
        const struct throttle_record *had = throttle_find(
            t, r.kind, culprit_key_hash(r.kind, r.key, strlen(r.key)));

        if (had == NULL || had->changed < r.changed)
            log_info("throttle %s:%s from the store (%s by %s): %s", culprit_kind_name(r.kind),
                     r.key, throttle_source_name(r.source), r.host, r.reason);
        throttle_sync_record(t, &r);
    } else {
        log_warning("store: rw:throttle field '%.*s' has a value this version cannot read; "
                    "ignored",
                    (int)(flen < 200 ? flen : 200), field);
    }
}

_Static_assert(TC_COUNT <= STORE_MAX_COUNTERS, "the store holds every traffic counter");

/* The counters the store writes, in traffic's order (enum traffic_counter); the DNS ones,
 * "dns_<type>_<outcome>", are filled in at start. */
static char dns_counter_names[DNS_TYPES * DNS_OUTCOMES][32];
static const char *store_counter_names[TC_COUNT] = {
    [TC_SESSIONS] = "nc",
    [TC_MESSAGES] = "nf",
    [TC_MESSAGES_LOGGED] = "nf_log",
    [TC_RECIPIENTS] = "nr",
    [TC_MESSAGES_RELAY] = "nf_relay",
    [TC_MESSAGES_INBOUND] = "nf_inbound",
    [TC_RECIPIENTS_RELAY] = "nr_relay",
    [TC_RECIPIENTS_INBOUND] = "nr_inbound",
    [TC_REFUSED] = "refused",
};

static struct store *open_store(struct daemon_state *d, char *err, size_t errlen)
{
    const struct config *c = d->cfg;
    struct store_settings set = {c->store,
                                 c->redis_password,
                                 c->host_id,
                                 c->store_flush_interval,
                                 c->store_timeout,
                                 c->store_retention,
                                 TC_COUNT,
                                 store_counter_names,
                                 c->window_count,
                                 c->window_seconds,
                                 c->tdns_client};
    struct store_source src = {store_collect_all, store_rewrite_all, store_history,
                               store_baseline, store_throttles, d};

    for (int t = 0; t < DNS_TYPES; t++)
        for (int o = 0; o < DNS_OUTCOMES; o++) {
            char *name = dns_counter_names[t * DNS_OUTCOMES + o];

            snprintf(name, sizeof(dns_counter_names[0]), "dns_%s_%s", dns_type_name(t),
                     dns_outcome_name(o));
            store_counter_names[TC_DNS(t, o)] = name;
        }

    if (strcmp(c->store, "memory") != 0)
        traffic_store_enable(d->traffic, (unsigned)(c->store_backlog / 60.0));
    return store_new(d->loop, &set, &src, err, errlen);
}

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct daemon_state *d = w->data;

    (void)loop;
    (void)revents;
    if (d->stopping)
        return;
    d->stopping = true;
    log_info("received %s: stopping", w->signum == SIGTERM ? "SIGTERM" : "SIGINT");
    /* The status page goes with the listeners: the daemon is on its way out. */
    http_server_free(d->http);
    d->http = NULL;
    ev_timer_stop(d->loop, &d->tick);
    /* What the fast path saw so far is learned now, so the last flush saves it. */
    defense_learn_now(d->defense, ev_time());
    /* Leaving: answers waiting for DNS go out now, not after dns_wait. */
    while (d->held != NULL)
        held_answer_send(d->held);
    policy_server_shutdown(d->server, on_drained, d);
}

/*
 * Started as root: fork the postsuper runner (the only part that keeps root) when the
 * quarantine is on, then become cfg->user for good.  Not root: nothing to give up, and
 * nothing can be held.  false (the reason on stderr and in the log): do not start.
 */
static bool give_up_root(struct daemon_state *d, const char *config_file, bool to_stderr)
{
    const struct config *c = d->cfg;
    char err[512], main_cf[1200];
    const char *fallback;

    d->runner_fd = -1;
    if (!c->quarantine) {
        snprintf(d->runner_unavailable, sizeof(d->runner_unavailable), "quarantine = no");
    } else if (geteuid() != 0) {
        snprintf(d->runner_unavailable, sizeof(d->runner_unavailable),
                 "relaywatchd was not started as root: postsuper cannot be run");
    }
    if (geteuid() != 0)
        return true;
    /* What root reads must be root's alone: a file the daemon's user could write would hand
     * it root's choices (the user to become, the Postfix instance postsuper reads) at the
     * next start. */
    if (config_file != NULL && !privsep_root_only(config_file, false, err, sizeof(err))) {
        fprintf(stderr, "relaywatchd: %s\n", err);
        if (!to_stderr)
            log_error("%s", err);
        return false;
    }
    snprintf(main_cf, sizeof(main_cf), "%s/main.cf", c->postfix_config_directory);
    if (c->quarantine && (!privsep_root_only(c->postfix_config_directory, true, err, sizeof(err)) ||
                          !privsep_root_only(main_cf, false, err, sizeof(err)))) {
        snprintf(d->runner_unavailable, sizeof(d->runner_unavailable),
                 "postfix_config_directory: %.200s", err);
    } else if (c->quarantine) {
        d->runner_pid = postsuper_runner_start(POSTSUPER_PATH, c->postfix_config_directory,
                                               &d->runner_fd, err, sizeof(err));
        if (d->runner_pid < 0) {
            log_error("quarantine: %s: nothing can be held", err);
            snprintf(d->runner_unavailable, sizeof(d->runner_unavailable), "%.200s", err);
            d->runner_fd = -1;
        }
    }
    /* The built-in user may not exist on a fresh machine: nobody then, said in the log. */
    fallback = c->origin[CK_USER].source == NULL ? "nobody" : NULL;
    if (!privsep_become(c->user, fallback, d->runs_as, sizeof(d->runs_as), err, sizeof(err))) {
        fprintf(stderr, "relaywatchd: %s\n", err);
        if (!to_stderr)
            log_error("%s", err);
        return false;
    }
    /* Said once started (log_privileges): a start that fails says one line only. */
    return true;
}

static void log_privileges(const struct daemon_state *d)
{
    const struct config *c = d->cfg;

    if (d->runs_as[0] == '\0') {
        if (c->quarantine)
            log_warning("quarantine: %s: nothing can be held", d->runner_unavailable);
        return;
    }
    if (strncmp(d->runs_as, c->user, strlen(c->user)) != 0 || d->runs_as[strlen(c->user)] != ' ')
        log_warning("user %s does not exist: running as %s (create it: useradd --system "
                    "--no-create-home --shell /usr/sbin/nologin %s)",
                    c->user, d->runs_as, c->user);
    if (d->runner_fd >= 0)
        log_info("gave up root: running as %s; the postsuper runner (pid %d) keeps root for "
                 "postsuper -h/-H only",
                 d->runs_as, (int)d->runner_pid);
    else
        log_warning("gave up root: running as %s; no postsuper runner, so nothing queued before a "
                    "stop can be held: %s",
                    d->runs_as, d->runner_unavailable);
}

/* Each connection is a descriptor: make room for max_connections of them. */
static void raise_fd_limit(unsigned max_connections)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)max_connections + 64;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
        log_warning("open file limit is %lu, below max_connections + 64 = %lu: connections "
                    "past it will be refused",
                    (unsigned long)rl.rlim_cur, (unsigned long)want);
}

static void reload_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct daemon_state *d = w->data;
    unsigned problems;
    struct config *cfg;
    char err[512];

    (void)loop;
    (void)revents;
    if (d->stopping)
        return;
    cfg = load_config(d->opts, report_log, &problems);
    if (cfg == NULL) {
        log_error("reload: %u problem(s) in the configuration; keeping the running one", problems);
        return;
    }
    if (policy_server_reconfigure(d->server, cfg, err, sizeof(err)) != 0) {
        log_error("reload: %s; keeping the running configuration", err);
        config_free(cfg);
        return;
    }
    {
        const struct endpoint *a = d->cfg->http_listen, *b = cfg->http_listen;
        bool same = (a == NULL && b == NULL) || (a && b && endpoint_equal(a, b));
        struct http_server *http;

        if (!same) {
            /* Close first: the new endpoint may be the old one spelt another way. */
            http_server_free(d->http);
            d->http = NULL;
            if (open_http(d, cfg, &http, err, sizeof(err)))
                d->http = http;
            else
                log_error("reload: http_listen: %s; the status page is off until fixed", err);
        }
    }
    warn_restart_keys(d->cfg, cfg);
    traffic_reconfigure(d->traffic, cfg);
    defense_reconfigure(d->defense, cfg);
    hold_service_reconfigure(d->holds, cfg);
    config_free(d->cfg);
    d->cfg = cfg;
    raise_fd_limit(cfg->max_connections);
    log_info("reload: configuration %s applied", d->opts->config_file ? d->opts->config_file
                                                                      : "(built-in defaults)");
}

int main(int argc, char **argv)
{
    struct options opts = {0};
    struct daemon_state d = {0};
    bool to_stderr = false, check_only = false;
    unsigned problems;
    char err[512];
    ev_signal sigterm, sigint, sighup;
    sigset_t stop_and_reload, old_mask;
    int ch;

    /* Until the loop's signal watchers run, a SIGHUP (systemctl reload) or
     * SIGTERM must wait rather than kill the process with its default action. */
    sigemptyset(&stop_and_reload);
    sigaddset(&stop_and_reload, SIGHUP);
    sigaddset(&stop_and_reload, SIGTERM);
    sigaddset(&stop_and_reload, SIGINT);
    sigprocmask(SIG_BLOCK, &stop_and_reload, &old_mask);
    /* Descriptors 0-2 open before anything else is (Postfix does the same): what is opened
     * next never becomes a standard stream by accident (the runner's postsuper inherits
     * them). */
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
            return 2;

    while ((ch = getopt(argc, argv, "c:eto:")) != -1) {
        switch (ch) {
        case 'c':
            opts.config_file = optarg;
            opts.explicit_file = true;
            break;
        case 'e':
            to_stderr = true;
            break;
        case 't':
            check_only = true;
            break;
        case 'o':
            if (opts.override_count == MAX_OVERRIDES) {
                fprintf(stderr, "relaywatchd: more than %d -o options\n", MAX_OVERRIDES);
                return 2;
            }
            opts.overrides[opts.override_count++] = optarg;
            break;
        default:
            usage();
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "relaywatchd: unexpected argument '%s'\n", argv[optind]);
        usage();
        return 2;
    }
    if (!opts.explicit_file && access(DEFAULT_CONFIG_FILE, F_OK) == 0)
        opts.config_file = DEFAULT_CONFIG_FILE;

    d.cfg = load_config(&opts, config_report_stderr, &problems);
    if (check_only)
        return d.cfg == NULL ? 1 : (config_free(d.cfg), 0);
    if (d.cfg == NULL)
        return 2;

    log_open(to_stderr);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(d.cfg->max_connections);
    if (!give_up_root(&d, opts.config_file, to_stderr))
        return 2;

    d.loop = ev_default_loop(EVFLAG_AUTO);
    if (d.loop == NULL) {
        fprintf(stderr, "relaywatchd: cannot initialise the event loop\n");
        return 2;
    }
    d.opts = &opts;
    {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        d.started_monotonic = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
        d.started = ev_time();
    }
    d.traffic = traffic_new(d.cfg);
    d.defense = defense_new(d.cfg, d.traffic);
    d.holds = hold_service_new(d.loop, d.cfg, d.runner_fd, d.runner_pid, d.runner_unavailable);
    defense_set_quarantine(d.defense, hold_service_ledger(d.holds));
    err[0] = '\0';
    d.resolver = open_resolver(&d, err, sizeof(err));
    d.store = err[0] == '\0' ? open_store(&d, err, sizeof(err)) : NULL;
    d.server = d.store ? policy_server_new(d.loop, d.cfg, handle_request, &d, err, sizeof(err))
                       : NULL;
    if (d.server == NULL || !open_http(&d, d.cfg, &d.http, err, sizeof(err))) {
        fprintf(stderr, "relaywatchd: %s\n", err);
        if (!to_stderr)
            log_error("%s", err);
        policy_server_free(d.server);
        resolver_free(d.resolver);
        store_free(d.store);
        hold_service_free(d.holds);
        defense_free(d.defense);
        traffic_free(d.traffic);
        config_free(d.cfg);
        return 2;
    }
    /* traffic_tick does a quarter of its work per call (see traffic.c). */
    ev_timer_init(&d.tick, tick_cb, 0.25, 0.25);
    d.tick.data = &d;
    ev_timer_start(d.loop, &d.tick);
    ev_signal_init(&sigterm, stop_cb, SIGTERM);
    ev_signal_init(&sigint, stop_cb, SIGINT);
    ev_signal_init(&sighup, reload_cb, SIGHUP);
    sigterm.data = sigint.data = sighup.data = &d;
    ev_signal_start(d.loop, &sigterm);
    ev_signal_start(d.loop, &sigint);
    ev_signal_start(d.loop, &sighup);
    sigprocmask(SIG_SETMASK, &old_mask, NULL);

    {
        char where[1024] = "";
        size_t n = 0;

        for (size_t i = 0; i < d.cfg->listen_count && n < sizeof(where); i++)
            n += (size_t)snprintf(where + n, sizeof(where) - n, "%s%s", i ? ", " : "",
                                  d.cfg->listen[i].spec);
        log_info("relaywatchd started: listening on %s; status on %s; store %s; host_id %s; "
                 "max_connections %u; resolver %s%s",
                 where, d.cfg->http_listen ? d.cfg->http_listen->spec : "(off)", d.cfg->store,
                 d.cfg->host_id, d.cfg->max_connections, d.cfg->resolver,
                 d.resolver ? "" : " (dns_lookups empty: no lookups)");
        log_privileges(&d);
    }
    ev_run(d.loop, 0);

    policy_server_free(d.server);
    /* After the server: answers held for lookups are gone with their connections. */
    resolver_free(d.resolver);
    http_server_free(d.http);
    store_free(d.store);
    hold_service_free(d.holds);
    defense_free(d.defense);
    traffic_free(d.traffic);
    config_free(d.cfg);
    log_info("relaywatchd stopped");
    log_close();
    ev_loop_destroy(d.loop);
    return 0;
}

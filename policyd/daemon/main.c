/*
 * relaywatchd: the RelayWatch policy daemon.
 *
 *   relaywatchd [-c FILE] [-e] [-t | -p | -n | -a] [-o NAME=VALUE]...
 *
 * -t checks the configuration (file and -o overrides); -p prints every key with
 * its default, -n the keys the file and -o set (as postconf -d and -n do), as
 * "name = value" lines on stdout.  All three print problems on stderr and exit 1
 * if there are any, 0 if not, and start nothing.
 *
 * Stays in the foreground.  SIGTERM/SIGINT: stop accepting, answer what is
 * in flight, exit 0.  SIGHUP: reload the configuration; a broken one is
 * logged and the running one kept.  Exit 2 for a bad command line or an
 * unusable configuration, with the reason on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>


#include "daemon.h"
#include "config.h"
#include "defense.h"
#include "hold_service.h"
#include "http.h"
#include "log.h"
#include "resolver.h"
#include "server.h"
#include "store.h"
#include "window_counter.h"

static void defend(struct daemon_state *d, double now)
{
    struct defense_inputs in = {0};
    struct store_state st;
    char missing[200] = "";
    time_t wall = (time_t)ev_time();
    struct tm tm;
    const struct defense_alert *alert;

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
    {
        struct detector_view v;

        detector_get_view(defense_detector(d->defense), &v);
        signal_history_note(&d->history, now, &v);
    }
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

/* The log's queue is written when its descriptor takes more (log.h).  The watcher does not
 * keep the loop alive (ev_unref), so a stuck log sink cannot hold up a stop. */
static ev_io log_watcher;

static void log_writable_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    if (!log_flush()) {
        ev_ref(loop);
        ev_io_stop(loop, w);
    }
}

static void log_wakeup(void *ctx, int fd)
{
    struct ev_loop *loop = ctx;

    if (ev_is_active(&log_watcher)) {
        if (log_watcher.fd == fd)
            return;
        /* The /dev/log socket closes (the syslog daemon restarted), or a new one comes. */
        ev_ref(loop);
        ev_io_stop(loop, &log_watcher);
    }
    if (fd < 0)
        return;
    ev_io_set(&log_watcher, fd, EV_WRITE);
    ev_io_start(loop, &log_watcher);
    ev_unref(loop);
}

/* Keys that size tables or are fixed when root is given up wait for the next restart
 * (config.c's table says which); one warning per group of them that changed. */
static void warn_restart(void *ctx, const char *message)
{
    (void)ctx;
    log_warning("reload: %s", message);
}

static void usage(void)
{
    fprintf(stderr, "usage: relaywatchd [-c FILE] [-e] [-t | -p | -n | -a] [-o NAME=VALUE]...\n");
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
    http_server_free(d->control);
    d->control = NULL;
    ev_timer_stop(d->loop, &d->tick);
    /* What the fast path saw so far is learned now, so the last flush saves it. */
    defense_learn_now(d->defense, ev_time());
    /* Leaving: answers waiting for DNS go out now, not after dns_wait. */
    send_held_answers(d);
    policy_server_shutdown(d->server, on_drained, d);
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
    config_restart_changes(d->cfg, cfg, warn_restart, NULL);
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
    bool to_stderr = false;
    int only = 0; /* 't', 'p', 'n' or 'a': check or print the configuration, start nothing */
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

    while ((ch = getopt(argc, argv, "c:etpnao:")) != -1) {
        switch (ch) {
        case 'c':
            opts.config_file = optarg;
            opts.explicit_file = true;
            break;
        case 'e':
            to_stderr = true;
            break;
        case 't':
        case 'p':
        case 'n':
        case 'a':
            if (only != 0 && only != ch) {
                fprintf(stderr, "relaywatchd: -%c and -%c do not go together\n", only, ch);
                usage();
                return 2;
            }
            only = ch;
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
    if (!opts.explicit_file && access(CONFIG_DEFAULT_FILE, F_OK) == 0)
        opts.config_file = CONFIG_DEFAULT_FILE;
    /* The engine's hash key, secret and new each start, before any table is made: senders
     * cannot pick names that share a slot (window_counter.h).  Nothing keyed by it is kept
     * past the process. */
    if (!hash_set_random_key()) {
        fprintf(stderr, "relaywatchd: cannot initialise libsodium\n");
        return 2;
    }

    d.cfg = load_config(&opts, config_report_stderr, &problems);
    if (only != 0) {
        if (d.cfg == NULL)
            return 1;
        if (only == 'p')
            config_write_defaults(stdout);
        else if (only == 'n')
            config_write_set(d.cfg, stdout);
        else if (only == 'a')
            config_write_effective(d.cfg, stdout);
        config_free(d.cfg);
        if (fflush(stdout) != 0 || ferror(stdout)) {
            fprintf(stderr, "relaywatchd: cannot write to stdout: %s\n", strerror(errno));
            return 1;
        }
        return 0;
    }
    if (d.cfg == NULL)
        return 2;

    log_open(to_stderr);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(d.cfg->max_connections);
    /* The control socket is opened in there, as root (its group is control_group, and its
     * directory, /run/relaywatch under the unit, need not be writable by the daemon's user). */
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
    signal_history_init(&d.history);
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
    open_control(&d, d.cfg, &d.control);
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
    /* From here on no line waits for the log sink: answers must not. */
    ev_init(&log_watcher, log_writable_cb);
    log_queue_start(log_wakeup, d.loop);

    {
        char where[1024] = "";
        size_t n = 0;

        for (size_t i = 0; i < d.cfg->listen_count && n < sizeof(where); i++)
            n += (size_t)snprintf(where + n, sizeof(where) - n, "%s%s", i ? ", " : "",
                                  d.cfg->listen[i].spec);
        log_info("relaywatchd started: listening on %s; status on %s; control on %s; store %s; "
                 "host_id %s; max_connections %u; resolver %s%s",
                 where, d.cfg->http_listen ? d.cfg->http_listen->spec : "(off)",
                 d.control ? d.cfg->control_socket->spec : "(off)", d.cfg->store,
                 d.cfg->host_id, d.cfg->max_connections, d.cfg->resolver,
                 d.resolver ? "" : " (dns_lookups empty: no lookups)");
        log_privileges(&d);
    }
    ev_run(d.loop, 0);

    policy_server_free(d.server);
    /* After the server: answers held for lookups are gone with their connections. */
    resolver_free(d.resolver);
    http_server_free(d.http);
    http_server_free(d.control);
    store_free(d.store);
    hold_service_free(d.holds);
    defense_free(d.defense);
    traffic_free(d.traffic);
    config_free(d.cfg);
    log_info("relaywatchd stopped");
    /* What is still queued gets up to a second: a normal stop loses no line. */
    log_close();
    if (ev_is_active(&log_watcher)) {
        ev_ref(d.loop);
        ev_io_stop(d.loop, &log_watcher);
    }
    ev_loop_destroy(d.loop);
    return 0;
}


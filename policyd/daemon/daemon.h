/*
 * daemon: relaywatchd's state and the jobs of its parts, one file each.
 *
 *   main.c          options, start, the tick, reload and stop: the wiring
 *   requests.c      the hot path: one policy request counted, decided, its lookups started;
 *                   answers held back for up to dns_wait while those run
 *   http_routes.c   what GET /status, /metrics, /held and GET/POST /throttle answer
 *   status_page.c   GET /: the HTML status page
 *   alerts.c        alert_command run with an incident's JSON on its standard input
 *   store_wiring.c  what the store writes and reads back, handed to and from the engine
 *   privileges.c    giving up root at start (the postsuper runner keeps it)
 *
 * Everything here runs on the one libev loop; nothing blocks.  The state lives from start
 * to exit, in main's frame.
 */
#ifndef RELAYWATCH_DAEMON_H
#define RELAYWATCH_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include "decision.h"
#include "policy_request.h"
#include "signal_history.h"
#include "status.h"
#include "traffic.h"

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
    struct http_server *control; /* the control socket's server; NULL: off */
    int control_fd;              /* opened as root, until open_control takes it; -1: none */
    gid_t control_gid;           /* control_group's; (gid_t)-1: none */
    char control_unavailable[320]; /* why the default control socket could not be made */
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
    struct signal_history history; /* the last hour's signals, a sample a minute (GET /) */
    bool stopping;
    /* The postsuper runner (postsuper_runner.h): forked before root is given up. */
    int runner_fd;
    pid_t runner_pid;
    char runner_unavailable[256]; /* why there is none */
    char runs_as[128];            /* "NAME (uid N, gid N)" when root was given up */
};

/* requests.c */
double counting_now(const struct daemon_state *d);
void handle_request(void *ctx, const struct policy_request *req, struct decision *out);
struct resolver *open_resolver(struct daemon_state *d, char *err, size_t errlen);
/* Answers waiting for lookups go out now (stopping). */
void send_held_answers(struct daemon_state *d);

/* http_routes.c: open the HTTP endpoint of cfg (none if off); false with the reason in err. */
bool open_http(struct daemon_state *d, const struct config *cfg, struct http_server **out,
               char *err, size_t errlen);

/* http_routes.c: serve the control socket privileges.c opened (d->control_fd); *out is NULL
 * when there is none. */
void open_control(struct daemon_state *d, const struct config *cfg, struct http_server **out);

/* alerts.c: hand an incident's alert, as JSON (views.h), to alert_command (none if it is
 * empty). */
struct defense_alert;
void run_alert(struct daemon_state *d, const struct defense_alert *alert);

/* store_wiring.c */
struct store *open_store(struct daemon_state *d, char *err, size_t errlen);
/* Every request answered: write the last counts, then leave the loop. */
void on_drained(void *arg);

/* privileges.c: fork the postsuper runner, open the control socket, give root up. */
bool give_up_root(struct daemon_state *d, const char *config_file, bool to_stderr);
/* Open control_socket with control_group's gid (called by give_up_root, after the runner is
 * forked and before root is given up).  false: do not start (the reason on stderr and in the log).  The default path
 * whose directory is missing (no systemd unit made /run/relaywatch): a warning, and none. */
bool open_control_socket(struct daemon_state *d, bool to_stderr);
void log_privileges(const struct daemon_state *d);

#endif

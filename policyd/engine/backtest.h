/*
 * backtest: the daemon's own defence replayed over a maillog.  Pure: the
 * caller hands it the Postfix lines (analysis_take's AL_MAILLOG lines) in
 * time order; it owns a traffic and a defense made from the caller's
 * configuration, exactly as relaywatchd makes them, and a clock that is the
 * logs' own time.
 *
 * Each line becomes the policy request Postfix would have sent, so the
 * counts, the culprits, the detector and the fast path are the daemon's
 * code, not a second implementation:
 *  - smtpd "connect from NAME[ADDR]" is a CONNECT (its session is the
 *    smtpd process's current one);
 *  - smtpd "QUEUEID: client=..., sasl_username=U" remembers who sent the
 *    message; qmgr's "from=<S>" its sender;
 *  - each recipient's first delivery line ("QUEUEID: to=<R>", in the
 *    message's first pass through the active queue) is a RCPT of that
 *    message, as the client, user and sender above: delivered by smtp it is
 *    relay unless local_domains says otherwise, delivered by anything else
 *    (local, virtual, lmtp, pipe) it is this site's own;
 *  - smtpd's "NOQUEUE: reject: RCPT from NAME[ADDR]: ...; from=<S> to=<R>"
 *    is a RCPT of its session that was refused.
 * Between lines the clock ticks once a second as the daemon's does (through a gap of more
 * than a day and twice the longest window, only the gap's last such stretch)
 * (traffic_tick, defense_tick with the mail host's upstream DNS counts of
 * the detection window, from the query log, when there is one).  Incidents
 * come from the defence's alerts; everything the engine logs is captured
 * with its time.  Memory is fixed at backtest_new (the tables of sessions
 * and messages in flight, the engine's own), apart from the incident list.
 */
#ifndef RELAYWATCH_BACKTEST_H
#define RELAYWATCH_BACKTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "analysis.h"
#include "decision.h"
#include "defense.h"

struct config;

/* Times are analysis_seconds as the lines wrote them, with the lines' offset then. */
struct backtest_incident {
    int64_t start, end; /* end 0: still loud when the logs ended */
    bool has_offset, end_has_offset;
    int offset_minutes, end_offset_minutes;
    char reason[512];   /* why it started, as the daemon words it */
    char end_reason[512];
    unsigned culprit_count;
    char culprits[DEFENSE_ALERT_CULPRITS][CULPRIT_KEY_MAX + 20]; /* "KIND:KEY" */
};

/* The engine's log lines, at the logs' time. */
struct backtest_log_line {
    int64_t time;
    bool has_offset;
    int offset_minutes;
    char level[8];
    char text[600];
};

struct backtest;

/* dns: the counts of the mail host's upstream DNS queries per minute (analysis_minute_dns), or
 * NULL without a query log. */
struct backtest *backtest_new(const struct config *cfg, const struct analysis *dns);
void backtest_free(struct backtest *b);

/* The DNS clients whose queries are the mail host's (copied; may change until the first line). */
void backtest_set_dns_clients(struct backtest *b, const char *const *clients, size_t n);

/* One AL_MAILLOG line (older lines than the clock are taken at the clock's time). */
void backtest_line(struct backtest *b, const struct analysis_line *l);

/* The logs are over: the engine's log lines go to the log again. */
void backtest_finish(struct backtest *b);

const struct backtest_incident *backtest_incidents(const struct backtest *b, size_t *count);
const struct backtest_log_line *backtest_log(const struct backtest *b, size_t *count,
                                             uint64_t *dropped);

/* Whether the host was loud at any tick in [from, to) (times as written). */
bool backtest_loud(const struct backtest *b, int64_t from, int64_t to);

struct backtest_stats {
    uint64_t requests, rcpts, relay_rcpts;
    uint64_t answers[AK_COUNT]; /* to RCPTs, by kind */
    int64_t first_stop;         /* time of the first answer that was not DUNNO; 0: none */
    bool first_stop_has_offset;
    int first_stop_offset_minutes;
    uint64_t fast_stops;
    uint64_t ticks;
};
void backtest_get_stats(const struct backtest *b, struct backtest_stats *out);

#endif

/*
 * hold_service: the daemon's side of the quarantine.  It keeps the ledger
 * of queued messages per key (quarantine.h, fed from END-OF-MESSAGE
 * requests), compares it about once a second with the throttle table, and
 * asks the postsuper runner (postsuper_runner.h) to hold the queued
 * messages of a stopped key and to release those of a key released by
 * hand.  One request to the runner at a time, on the event loop; nothing
 * here blocks, and a runner that is slow or gone delays no policy answer.
 *
 * Without a runner (not started as root, quarantine = no, the runner gone)
 * or in monitor_only, nothing is held: what would have been is logged.
 * Without END-OF-MESSAGE requests (no check_policy_service in
 * smtpd_end_of_data_restrictions) no queue ID is known: a stop says so in
 * the log, once an hour at most.
 */
#ifndef RELAYWATCH_HOLD_SERVICE_H
#define RELAYWATCH_HOLD_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "quarantine.h"

struct ev_loop;
struct config;
struct policy_request;
struct throttle_table;

struct hold_service;

/* runner_fd: the daemon's end of the runner's socket (-1: no runner, unavailable says
 * why). */
struct hold_service *hold_service_new(struct ev_loop *loop, const struct config *cfg,
                                      int runner_fd, pid_t runner_pid, const char *unavailable);
void hold_service_free(struct hold_service *hs);
void hold_service_reconfigure(struct hold_service *hs, const struct config *cfg);

/* An END-OF-MESSAGE request of relay mail: its queue ID, under each of its keys.  held: the
 * answer was HOLD (Postfix holds it itself): counted as held under the first key t stops.
 * exempt: the request is on a never_throttle_* list (not remembered unless held). */
struct traffic_news;
void hold_service_message(struct hold_service *hs, const struct policy_request *req,
                          const struct traffic_news *news, bool held, bool exempt,
                          const struct throttle_table *t, double now);
/* Any END-OF-MESSAGE request: the hook is there. */
void hold_service_saw_end_of_message(struct hold_service *hs);

/* About once a second; now is the wall clock (the throttle records' times). */
void hold_service_tick(struct hold_service *hs, const struct throttle_table *t, double now);

struct hold_service_stats {
    bool enabled;           /* quarantine = yes */
    bool runner;            /* the postsuper runner is there */
    const char *unavailable; /* why not ("" when it is) */
    bool end_of_message_seen;
    uint64_t runs, failures; /* postsuper runs asked for, and those that failed */
    struct quarantine_stats q;
};
void hold_service_get_stats(const struct hold_service *hs, struct hold_service_stats *out);

const struct quarantine *hold_service_ledger(const struct hold_service *hs);

/* Save and load the ledger with the baselines (quarantine_save/load). */
size_t hold_service_save(const struct hold_service *hs, char *out, size_t outlen);
unsigned hold_service_load(struct hold_service *hs, const char *text, size_t len, double now);

#endif

/*
 * hold_service: hold a stopped key's queued mail, release it with the key.
 * See the header.
 */
#include "hold_service.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "postsuper_runner.h"
#include "queue_id.h"
#include "throttle.h"
#include "traffic.h"
#include "xalloc.h"

#define NO_HOOK_LOG_EVERY 3600.0
/* The runner always answers (it kills a postsuper that hangs after POSTSUPER_TIMEOUT): an
 * answer later than this is only said in the log. */
#define SLOW_ANSWER (POSTSUPER_TIMEOUT + 30.0)
#define IDS_LOGGED 20 /* queue IDs named in one log line */

struct hold_service {
    struct ev_loop *loop;
    const struct config *cfg;
    struct quarantine *q;
    int fd;
    pid_t pid;
    ev_io reader;
    char unavailable[256];
    bool eom_seen;
    double no_hook_logged;
    /* The request in flight (one at a time). */
    bool busy;
    bool slow_logged;
    enum quarantine_op op;
    enum culprit_kind kind;
    char key[CULPRIT_KEY_MAX + 1];
    uint64_t hash;
    unsigned asked;
    double sent_at;
    const struct throttle_table *throttles; /* of the last tick */
    double now;                             /* of the last tick */
    uint64_t runs, failures;
    double pause_until; /* after a failed run: the next one not before */
    uint64_t notes_failed;  /* queue IDs not noted: every key holds something */
    double notes_failed_logged;
    char request[POSTSUPER_REQUEST_MAX];
};

static void settings_of(const struct config *c, struct quarantine_settings *s)
{
    s->slots = c->quarantine_slots;
    s->per_key = c->quarantine_messages;
    s->lookback = c->quarantine_lookback;
}

static void sweep(struct hold_service *hs);

/* "ID ID ID" -> the first IDS_LOGGED of them, and how many more. */
static void ids_for_log(const char *ids, char *out, size_t outlen)
{
    unsigned words = 0;
    size_t i = 0, n = 0;

    out[0] = '\0';
    for (; ids[i] != '\0'; i++) {
        if (ids[i] == ' ' && ++words == IDS_LOGGED)
            break;
        if (n + 1 < outlen)
            out[n++] = ids[i];
    }
    out[n] = '\0';
    if (ids[i] == ' ') {
        unsigned more = 1;

        for (i++; ids[i] != '\0'; i++)
            more += ids[i] == ' ';
        snprintf(out + n, outlen - n, " and %u more", more);
    }
}

static void give_up_runner(struct hold_service *hs, const char *why)
{
    log_error("quarantine: the postsuper runner (pid %d) %s: nothing more can be held or "
              "released until relaywatchd is restarted as root",
              (int)hs->pid, why);
    snprintf(hs->unavailable, sizeof(hs->unavailable), "the postsuper runner %s", why);
    ev_io_stop(hs->loop, &hs->reader);
    close(hs->fd);
    hs->fd = -1;
}

/*
 * The runner's answer: "ok [ID...]" (postsuper ran; the IDs it did, even if it then failed),
 * "failed: WHY" (it did not run: asked again later) or "refused: WHY" (never expected: the
 * IDs are checked here first; taken as "none done", so they are not asked for ever).
 */
static void finish(struct hold_service *hs, const char *answer, size_t len)
{
    bool ok = len >= 2 && memcmp(answer, "ok", 2) == 0 && (len == 2 || answer[2] == ' ');
    bool failed = !ok && !(len >= 8 && memcmp(answer, "refused:", 8) == 0);
    const char *done = len > 3 && ok ? answer + 3 : "";
    size_t done_len = len > 3 && ok ? len - 3 : 0;
    const char *name = culprit_kind_name(hs->kind);
    unsigned n;
    char listed[IDS_LOGGED * (QUEUE_ID_MAX + 1) + 32];

    hs->busy = false;
    n = quarantine_done(hs->q, hs->kind, hs->key, strlen(hs->key), hs->hash, hs->op, done,
                        done_len, failed, hs->now);
    if (!ok) {
        hs->failures++;
        hs->pause_until = hs->now + 10;
        log_error("quarantine: postsuper %s for %s:%s: %.*s%s",
                  hs->op == QUARANTINE_HOLD ? "-h" : "-H", name, hs->key, (int)len, answer,
                  failed ? "; asked again in 10s" : "");
        return;
    }
    {
        char ids[POSTSUPER_ANSWER_MAX];

        snprintf(ids, sizeof(ids), "%.*s", (int)done_len, done);
        ids_for_log(ids, listed, sizeof(listed));
    }
    if (hs->op == QUARANTINE_HOLD)
        log_warning("quarantine: held %u of %u queued messages of %s:%s (postsuper -h)%s%s%s",
                    n, hs->asked, name, hs->key, n < hs->asked ? "; the others were not in the "
                                                               "queue (delivered, or not yet "
                                                               "ready: asked once more)"
                                                             : "",
                    n > 0 ? ": " : "", listed);
    else
        log_warning("quarantine: released %u held messages of %s:%s (postsuper -H)%s%s", n,
                    name, hs->key, n > 0 ? ": " : "", listed);
}

static void readable(struct ev_loop *loop, ev_io *w, int revents)
{
    struct hold_service *hs = w->data;
    char answer[POSTSUPER_ANSWER_MAX];
    ssize_t got;

    (void)loop;
    (void)revents;
    got = recv(hs->fd, answer, sizeof(answer), MSG_DONTWAIT);
    if (got < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (got <= 0) {
        if (hs->busy)
            finish(hs, "failed: the runner is gone", 26);
        give_up_runner(hs, got == 0 ? "exited" : strerror(errno));
        return;
    }
    if (!hs->busy)
        return; /* nothing asked: not an answer */
    finish(hs, answer, (size_t)got);
    sweep(hs); /* the next key's turn at once */
}

struct hold_service *hold_service_new(struct ev_loop *loop, const struct config *cfg,
                                      int runner_fd, pid_t runner_pid, const char *unavailable)
{
    struct hold_service *hs = xcalloc(1, sizeof(*hs));
    struct quarantine_settings s;

    hs->loop = loop;
    hs->cfg = cfg;
    settings_of(cfg, &s);
    hs->q = quarantine_new(&s);
    hs->fd = runner_fd;
    hs->pid = runner_pid;
    snprintf(hs->unavailable, sizeof(hs->unavailable), "%s", unavailable ? unavailable : "");
    if (hs->fd >= 0) {
        fcntl(hs->fd, F_SETFL, fcntl(hs->fd, F_GETFL) | O_NONBLOCK);
        ev_io_init(&hs->reader, readable, hs->fd, EV_READ);
        hs->reader.data = hs;
        ev_io_start(loop, &hs->reader);
    }
    return hs;
}

void hold_service_free(struct hold_service *hs)
{
    if (hs == NULL)
        return;
    if (hs->fd >= 0) {
        ev_io_stop(hs->loop, &hs->reader);
        close(hs->fd); /* the runner reads the end and exits */
    }
    quarantine_free(hs->q);
    free(hs);
}

void hold_service_reconfigure(struct hold_service *hs, const struct config *cfg)
{
    struct quarantine_settings s;

    hs->cfg = cfg;
    settings_of(cfg, &s);
    quarantine_reconfigure(hs->q, &s);
}

void hold_service_saw_end_of_message(struct hold_service *hs)
{
    hs->eom_seen = true;
}

void hold_service_message(struct hold_service *hs, const struct policy_request *req,
                          const struct traffic_news *news, bool held, bool exempt,
                          const struct throttle_table *t, double now)
{
    struct request_key keys[3];
    struct policy_slice id = req->attr[PA_QUEUE_ID];
    unsigned n;
    bool counted = false;

    hs->eom_seen = true;
    /* never_throttle_*: kept out of the ledger, so no stop reaches back to their mail. */
    if (!hs->cfg->quarantine || id.len == 0 || (exempt && !held))
        return;
    n = traffic_request_keys(req, news, keys);
    for (unsigned i = 0; i < n; i++) {
        /* Held (HOLD answered) under the first of its keys that is stopped, queued under
         * the others: each held message is counted once. */
        const struct throttle_record *r =
            held && !counted
                ? throttle_find(t, keys[i].kind, keys[i].key, keys[i].len, keys[i].hash)
                : NULL;
        bool stopped = r != NULL && throttle_in_force(r, now);

        counted |= stopped;
        if (!quarantine_note(hs->q, keys[i].kind, keys[i].key, keys[i].len, keys[i].hash, id.ptr,
                             id.len, now, stopped) &&
            queue_id_valid(id.ptr, id.len)) {
            hs->notes_failed++;
            if (hs->notes_failed_logged == 0 || now - hs->notes_failed_logged >= 60) {
                hs->notes_failed_logged = now;
                log_error("quarantine: queue ID %.*s of %s:%.*s not remembered: every one of the "
                          "%u keys (quarantine_slots) holds messages or has some with postsuper "
                          "(%llu IDs left out so far); release or raise quarantine_slots",
                          (int)id.len, id.ptr, culprit_kind_name(keys[i].kind),
                          (int)keys[i].len, keys[i].key, hs->cfg->quarantine_slots,
                          (unsigned long long)hs->notes_failed);
            }
        }
    }
}

/* Hand one batch to the runner. */
static void ask(struct hold_service *hs, const struct quarantine_key_info *k, enum quarantine_op op)
{
    size_t n;

    hs->request[0] = op == QUARANTINE_HOLD ? 'h' : 'r';
    hs->request[1] = ' ';
    hs->asked = quarantine_take(hs->q, k->kind, k->key, strlen(k->key), k->hash, op, hs->now,
                                hs->request + 2, sizeof(hs->request) - 2);
    if (hs->asked == 0)
        return;
    hs->op = op;
    hs->kind = k->kind;
    snprintf(hs->key, sizeof(hs->key), "%s", k->key);
    hs->hash = k->hash;
    hs->sent_at = hs->now;
    hs->busy = true;
    hs->slow_logged = false;
    hs->runs++;
    n = 2 + strlen(hs->request + 2);
    if (send(hs->fd, hs->request, n, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)n) {
        char why[128];

        snprintf(why, sizeof(why), "failed: cannot send to the runner: %s", strerror(errno));
        finish(hs, why, strlen(why));
    }
}

/* Without a runner, or in monitor_only: say what would have been held, once per message. */
static void would_hold(struct hold_service *hs, const struct quarantine_key_info *k)
{
    char ids[QUARANTINE_BATCH * (QUEUE_ID_MAX + 1)], listed[IDS_LOGGED * (QUEUE_ID_MAX + 1) + 32];
    unsigned n = quarantine_would(hs->q, k->kind, k->key, strlen(k->key), k->hash, hs->now, ids,
                                  sizeof(ids));

    if (n == 0)
        return;
    ids_for_log(ids, listed, sizeof(listed));
    if (hs->cfg->monitor_only)
        log_warning("monitor_only: would hold %u queued messages of %s:%s: %s", n,
                    culprit_kind_name(k->kind), k->key, listed);
    else
        log_warning("quarantine: cannot hold %u queued messages of %s:%s (%s): %s", n,
                    culprit_kind_name(k->kind), k->key,
                    !hs->cfg->quarantine ? "quarantine = no" : hs->unavailable, listed);
}

struct pick {
    struct hold_service *hs;
    struct quarantine_key_info k;
    enum quarantine_op op;
    bool found, would;
};

/* A key with work: a stopped one with messages due for a hold, a released one holding some.
 * Keys without a throttle record cost a lookup; only the others' IDs are looked at. */
static bool pick_key(void *arg, const struct quarantine_key_info *brief)
{
    struct pick *p = arg;
    const struct throttle_record *r = throttle_find(p->hs->throttles, brief->kind, brief->key,
                                                    strlen(brief->key), brief->hash);
    struct quarantine_key_info k;

    if (r == NULL)
        return true;
    if (throttle_in_force(r, p->hs->now)) {
        if (!quarantine_info(p->hs->q, brief->kind, brief->key, strlen(brief->key), brief->hash,
                             p->hs->now, &k) ||
            k.due == 0)
            return true;
        p->op = QUARANTINE_HOLD;
        p->would = p->hs->cfg->monitor_only || r->local || p->hs->fd < 0 ||
                   !p->hs->cfg->quarantine;
    } else if (brief->held > 0 && r->source == THROTTLE_RELEASED) {
        if (!quarantine_info(p->hs->q, brief->kind, brief->key, strlen(brief->key), brief->hash,
                             p->hs->now, &k))
            return true;
        p->op = QUARANTINE_RELEASE;
        p->would = false;
    } else {
        return true;
    }
    p->k = k;
    p->found = true;
    return false;
}

/* The next key with work to do. */
static void sweep(struct hold_service *hs)
{
    if (hs->now < hs->pause_until)
        return;
    for (int rounds = 0; rounds < 64 && !hs->busy && hs->throttles != NULL; rounds++) {
        struct pick p = {hs, {0}, QUARANTINE_HOLD, false, false};

        if (throttle_count(hs->throttles) == 0)
            return;
        quarantine_each(hs->q, hs->now, false, pick_key, &p);
        if (!p.found)
            return;
        if (p.would) {
            would_hold(hs, &p.k);
        } else if (hs->fd < 0) {
            /* A release without a runner: nothing can be done; say so once. */
            char ids[QUARANTINE_BATCH * (QUEUE_ID_MAX + 1)];

            quarantine_take(hs->q, p.k.kind, p.k.key, strlen(p.k.key), p.k.hash, p.op, hs->now,
                            ids, sizeof(ids));
            quarantine_done(hs->q, p.k.kind, p.k.key, strlen(p.k.key), p.k.hash, p.op, "", 0,
                            false, hs->now);
            log_error("quarantine: cannot release the held messages of %s:%s (%s): release "
                      "them with postsuper -H: %s",
                      culprit_kind_name(p.k.kind), p.k.key, hs->unavailable, ids);
        } else {
            ask(hs, &p.k, p.op);
        }
    }
}

struct no_hook {
    struct hold_service *hs;
    const struct throttle_record *r;
};

static bool stopped_key(void *arg, const struct throttle_record *r)
{
    struct no_hook *h = arg;

    if (!throttle_in_force(r, h->hs->now))
        return true;
    h->r = r;
    return false;
}

void hold_service_tick(struct hold_service *hs, const struct throttle_table *t, double now)
{
    hs->throttles = t;
    hs->now = now;
    quarantine_tick(hs->q, now);
    if (hs->busy && !hs->slow_logged && now - hs->sent_at > SLOW_ANSWER) {
        hs->slow_logged = true;
        log_error("quarantine: the postsuper runner (pid %d) has not answered for %.0fs",
                  (int)hs->pid, now - hs->sent_at);
    }
    /* quarantine = no (after a reload): nothing new is held, releases go on. */
    if (hs->cfg->quarantine && !hs->eom_seen && throttle_count(t) > 0 &&
        (hs->no_hook_logged == 0 || now - hs->no_hook_logged >= NO_HOOK_LOG_EVERY)) {
        struct no_hook h = {hs, NULL};

        throttle_each(t, stopped_key, &h);
        if (h.r != NULL) {
            hs->no_hook_logged = now;
            log_warning("quarantine: %s:%s is stopped, but no END-OF-MESSAGE request has come "
                        "since start: no queue ID is known and nothing can be held (add "
                        "check_policy_service to smtpd_end_of_data_restrictions; see "
                        "postfix-conf/main.cf.snippet)",
                        culprit_kind_name(h.r->kind), h.r->key);
        }
    }
    sweep(hs);
}

void hold_service_get_stats(const struct hold_service *hs, struct hold_service_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->enabled = hs->cfg->quarantine;
    out->runner = hs->fd >= 0;
    out->unavailable = hs->unavailable;
    out->end_of_message_seen = hs->eom_seen;
    out->runs = hs->runs;
    out->failures = hs->failures;
    quarantine_get_stats(hs->q, &out->q);
}

const struct quarantine *hold_service_ledger(const struct hold_service *hs)
{
    return hs->q;
}

size_t hold_service_save(const struct hold_service *hs, char *out, size_t outlen)
{
    return quarantine_save(hs->q, out, outlen);
}

unsigned hold_service_load(struct hold_service *hs, const char *text, size_t len, double now)
{
    return quarantine_load(hs->q, text, len, now);
}

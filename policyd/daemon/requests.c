/*
 * requests: the hot path (one policy request counted, decided, its lookups started) and
 * the answers held back for up to dns_wait while those lookups run.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "config.h"
#include "defense.h"
#include "hold_service.h"
#include "lookups.h"
#include "resolver.h"
#include "server.h"

/*
 * The counting clock: wall-clock time at start plus monotonic time since.
 * It never steps (an NTP step or a VM restore would otherwise empty the
 * windows or make every open session look expired), and buckets still line
 * up with wall-clock minutes as far as the clocks agree.
 */
double counting_now(const struct daemon_state *d)
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
void handle_request(void *ctx, const struct policy_request *req, struct decision *out)
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

struct resolver *open_resolver(struct daemon_state *d, char *err, size_t errlen)
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


void send_held_answers(struct daemon_state *d)
{
    while (d->held != NULL)
        held_answer_send(d->held);
}

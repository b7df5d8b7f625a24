/*
 * lookups: a request's DNS lookups.  See the header.
 */
#include "lookups.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "policy_request.h"
#include "resolver.h"
#include "traffic.h"

/* One request's lookups being waited for (dns_wait). */
struct wait {
    struct resolver *r;
    unsigned mask;
    enum dns_type forward; /* A for an IPv4 client, AAAA for an IPv6 one */
    unsigned pending;
    lookups_ready_fn *ready;
    void *arg;
};

static void wait_release(struct wait *w)
{
    if (--w->pending == 0) {
        lookups_ready_fn *ready = w->ready;
        void *arg = w->arg;

        free(w);
        ready(arg);
    }
}

/* The forward confirmation of a client's PTR name, when it gave one. */
static bool want_forward(unsigned mask, enum dns_type type, enum dns_outcome outcome,
                         const char *target)
{
    return type == DNS_PTR && (mask & DNS_LOOKUP_CLIENT_A) && outcome == DNS_ANSWERED &&
           target[0] != '\0';
}

static void wait_done(void *arg, enum dns_type type, enum dns_outcome outcome, const char *target,
                      struct resolver_tag tag)
{
    struct wait *w = arg;

    if (want_forward(w->mask, type, outcome, target)) {
        w->pending++;
        resolver_lookup(w->r, w->forward, target, strlen(target), tag, wait_done, w);
    }
    wait_release(w);
}

/* Without a wait: the context is the resolver itself, and the family is in the function. */
static void forward_a(void *arg, enum dns_type type, enum dns_outcome outcome, const char *target,
                      struct resolver_tag tag)
{
    if (want_forward(DNS_LOOKUP_CLIENT_A, type, outcome, target))
        resolver_lookup(arg, DNS_A, target, strlen(target), tag, NULL, NULL);
}

static void forward_aaaa(void *arg, enum dns_type type, enum dns_outcome outcome,
                         const char *target, struct resolver_tag tag)
{
    if (want_forward(DNS_LOOKUP_CLIENT_A, type, outcome, target))
        resolver_lookup(arg, DNS_AAAA, target, strlen(target), tag, NULL, NULL);
}

bool lookups_start(struct resolver *r, unsigned mask, const struct policy_request *req,
                   const struct traffic_news *news, lookups_ready_fn *ready, void *arg)
{
    struct resolver_tag tag = {news->who, news->sender_domain};
    struct wait *w = NULL;
    struct policy_slice v;
    resolver_done_fn *done = NULL;
    void *done_arg = NULL;

    if (r == NULL || mask == 0)
        return false;
    if (ready != NULL) {
        w = malloc(sizeof(*w));
        if (w != NULL) {
            /* One for ourselves, so that lookups ending at once do not end the wait early. */
            *w = (struct wait){r, mask, DNS_A, 1, ready, arg};
            done = wait_done;
            done_arg = w;
        }
    }
    if (news->new_session && (mask & DNS_LOOKUP_CLIENT_PTR)) {
        /* Forward confirmation in the client's family, as Postfix's smtpd does it. */
        bool v6;

        v = req->attr[PA_CLIENT_ADDRESS];
        /* An absent client_address is {NULL, 0}: memchr must not see NULL. */
        v6 = v.len > 0 && memchr(v.ptr, ':', v.len) != NULL;
        if (w) {
            w->forward = v6 ? DNS_AAAA : DNS_A;
            w->pending++;
            resolver_lookup(r, DNS_PTR, v.ptr, v.len, tag, done, done_arg);
        } else {
            resolver_lookup(r, DNS_PTR, v.ptr, v.len, tag,
                            !(mask & DNS_LOOKUP_CLIENT_A) ? NULL
                            : v6                          ? forward_aaaa
                                                          : forward_a,
                            r);
        }
    }
    if (news->new_transaction && (mask & DNS_LOOKUP_SENDER_MX)) {
        v = policy_address_domain(req->attr[PA_SENDER]);
        if (v.len > 0) {
            if (w)
                w->pending++;
            resolver_lookup(r, DNS_MX, v.ptr, v.len, tag, done, done_arg);
        }
    }
    if (news->relay_recipient && (mask & DNS_LOOKUP_RECIPIENT_MX)) {
        v = policy_address_domain(req->attr[PA_RECIPIENT]);
        if (w)
            w->pending++;
        resolver_lookup(r, DNS_MX, v.ptr, v.len, tag, done, done_arg);
    }
    if (w == NULL)
        return false;
    if (w->pending == 1) {
        free(w); /* everything ended at once */
        return false;
    }
    w->pending--;
    return true;
}

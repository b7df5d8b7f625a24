/*
 * lookups: which DNS lookups a policy request causes (dns_lookups), as
 * the study's mail server made them: the PTR of a new session's client,
 * the A of the name it gives (forward confirmation), the MX of a new
 * transaction's sender domain, the MX of each relay recipient's domain.
 * The resolver does them; this decides and chains them.
 */
#ifndef RELAYWATCH_LOOKUPS_H
#define RELAYWATCH_LOOKUPS_H

#include <stdbool.h>

struct policy_request;
struct resolver;
struct traffic_news;

/* Every lookup a request started has ended (answered, failed, or given up). */
typedef void lookups_ready_fn(void *arg);

/*
 * Start the lookups req causes (mask: DNS_LOOKUP_* bits of the config).
 * With ready, returns true if some lookup is still running, and then
 * calls ready(arg) exactly once when all have ended (the chained A
 * included); false if there is nothing to wait for (ready is not called).
 */
bool lookups_start(struct resolver *r, unsigned mask, const struct policy_request *req,
                   const struct traffic_news *news, lookups_ready_fn *ready, void *arg);

#endif

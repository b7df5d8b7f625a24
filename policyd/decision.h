/*
 * decision: what RelayWatch answers to one policy request.  The one place
 * later issues (counters, detector, throttling) hook their verdicts in.
 */
#ifndef RELAYWATCH_DECISION_H
#define RELAYWATCH_DECISION_H

#include <stddef.h>

#include "policy_request.h"

struct decision {
    const char *action; /* e.g. "DUNNO", for logs */
    const char *answer; /* the complete reply: "action=...\n\n" */
    size_t answer_len;
};

void decide(const struct policy_request *req, struct decision *out);

#endif

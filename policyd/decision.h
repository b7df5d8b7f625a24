/*
 * decision: what RelayWatch answers to one policy request.  The one place
 * later issues (counters, detector, throttling) hook their verdicts in.
 */
#ifndef RELAYWATCH_DECISION_H
#define RELAYWATCH_DECISION_H

#include <stddef.h>

#include "policy_request.h"

/* What kind of answer, for metrics. */
enum action_kind { AK_DUNNO, AK_OK, AK_DEFER, AK_REJECT, AK_HOLD, AK_OTHER, AK_COUNT };

struct decision {
    enum action_kind kind;
    const char *action; /* e.g. "DUNNO", for logs */
    const char *answer; /* the complete reply: "action=...\n\n" */
    size_t answer_len;
};

void decide(const struct policy_request *req, struct decision *out);

const char *action_kind_name(enum action_kind k);

#endif

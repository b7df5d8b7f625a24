/*
 * decision: what RelayWatch answers to one policy request (defense.c
 * decides).  Answers are complete, constant strings, so the hot path formats
 * nothing.
 */
#ifndef RELAYWATCH_DECISION_H
#define RELAYWATCH_DECISION_H

#include <stddef.h>

#include "policy_request.h"

/* The longest answer, "action=" and the blank line included (defense.c checks
 * it fits every action text); a connection that must keep one copies this much. */
#define DECISION_ANSWER_MAX 272

/* What kind of answer, for metrics. */
enum action_kind { AK_DUNNO, AK_OK, AK_DEFER, AK_REJECT, AK_HOLD, AK_OTHER, AK_COUNT };

struct decision {
    enum action_kind kind;
    const char *action; /* e.g. "DUNNO", for logs */
    const char *answer; /* the complete reply: "action=...\n\n" */
    size_t answer_len;
};

const char *action_kind_name(enum action_kind k);

#endif

/*
 * decision: for now RelayWatch has no objection to any transaction.
 * Answers are constant strings, so the hot path formats nothing.
 */
#include "decision.h"

static const char dunno_answer[] = "action=DUNNO\n\n";

void decide(const struct policy_request *req, struct decision *out)
{
    (void)req;
    out->kind = AK_DUNNO;
    out->action = "DUNNO";
    out->answer = dunno_answer;
    out->answer_len = sizeof(dunno_answer) - 1;
}

const char *action_kind_name(enum action_kind k)
{
    static const char *const names[AK_COUNT] = {"DUNNO", "OK", "DEFER", "REJECT", "HOLD", "OTHER"};

    return (unsigned)k < AK_COUNT ? names[k] : "OTHER";
}

/*
 * decision: the names of answer kinds, for logs and metrics.  The answers
 * themselves come from defense.c.
 */
#include "decision.h"

const char *action_kind_name(enum action_kind k)
{
    static const char *const names[AK_COUNT] = {"DUNNO", "OK", "DEFER", "REJECT", "HOLD", "OTHER"};

    return (unsigned)k < AK_COUNT ? names[k] : "OTHER";
}

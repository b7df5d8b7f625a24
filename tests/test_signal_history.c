/*
 * signal_history: one sample a minute of the counting clock, the first at once, the ring
 * keeping the last SIGNAL_HISTORY_MINUTES oldest first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "signal_history.h"

static struct detector_view view_of(double mx, bool loud)
{
    struct detector_view v = {0};

    v.state = loud ? DETECTOR_LOUD : DETECTOR_QUIET;
    for (int s = 0; s < DS_COUNT; s++) {
        v.value[s] = s == DS_MX ? mx : -1;
        v.baseline[s] = 2;
    }
    return v;
}

static void first_tick_then_one_a_minute(void **state)
{
    struct signal_history h;
    struct detector_view v = view_of(5, false);
    double t0 = 1800000000.0 + 30; /* half a minute in */

    (void)state;
    signal_history_init(&h);
    assert_int_equal(h.count, 0);
    signal_history_note(&h, t0, &v);
    assert_int_equal(h.count, 1);
    /* The rest of that minute: nothing more. */
    for (double t = t0 + 1; t < t0 + 30; t += 1)
        signal_history_note(&h, t, &v);
    assert_int_equal(h.count, 1);
    v = view_of(7, true);
    signal_history_note(&h, t0 + 30, &v); /* the next minute's first tick */
    assert_int_equal(h.count, 2);
    assert_true(signal_history_at(&h, 0)->value[DS_MX] == 5);
    assert_false(signal_history_at(&h, 0)->loud);
    assert_true(signal_history_at(&h, 1)->value[DS_MX] == 7);
    assert_true(signal_history_at(&h, 1)->loud);
    assert_true(signal_history_at(&h, 1)->value[DS_A] < 0);
    assert_true(signal_history_at(&h, 1)->baseline[DS_A] == 2);
    assert_true(signal_history_at(&h, 1)->at == t0 + 30);
}

static void keeps_the_last_hour(void **state)
{
    struct signal_history h;
    double t0 = 1800000000.0;

    (void)state;
    signal_history_init(&h);
    for (int m = 0; m < 150; m++) {
        struct detector_view v = view_of(m, false);

        signal_history_note(&h, t0 + 60.0 * m + 0.25, &v);
    }
    assert_int_equal(h.count, SIGNAL_HISTORY_MINUTES);
    for (unsigned i = 0; i < SIGNAL_HISTORY_MINUTES; i++)
        assert_true(signal_history_at(&h, i)->value[DS_MX] ==
                    150 - SIGNAL_HISTORY_MINUTES + i);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_tick_then_one_a_minute),
        cmocka_unit_test(keeps_the_last_hour),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

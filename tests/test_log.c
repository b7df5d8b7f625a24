/*
 * log: the queue in front of a sink that falls behind.  stderr is a pipe the test reads (or
 * not): lines past the queue are dropped and counted, nothing blocks, the loop is asked to
 * watch the descriptor, and once the pipe is read the queue comes out in order, followed by
 * one line with the count.  log_close waits a bounded time.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

enum { LINES = 3000 };

static int wakeups, woken_fd = -1;

static void wake(void *ctx, int fd)
{
    (void)ctx;
    wakeups++;
    woken_fd = fd;
}

/* log_open on a pipe as stderr; fd 2 is given back at once (the log opens the pipe again on
 * a descriptor of its own), so cmocka's messages never sit behind a full pipe. */
static int open_on_pipe(void)
{
    int p[2], saved = dup(2);

    assert_int_equal(pipe(p), 0);
    assert_true(saved >= 0);
    assert_int_equal(dup2(p[1], 2), 2);
    log_open(true);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    close(p[1]);
    return p[0];
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Many lines into a pipe nobody reads: none waits; what does not fit is dropped. */
static unsigned long long fill(int *first_dropped)
{
    unsigned long long before = log_dropped_total();
    double began = now();

    *first_dropped = -1;
    for (int i = 0; i < LINES; i++) {
        log_info("line %d %0100d", i, 0);
        if (*first_dropped < 0 && log_dropped_total() > before)
            *first_dropped = i;
    }
    assert_true(now() - began < 0.5);
    return log_dropped_total() - before;
}

static void test_drop_count_and_recovery(void **state)
{
    int r = open_on_pipe(), first_dropped;
    unsigned long long dropped;
    size_t cap = 1 << 20, len = 0;
    char *out = malloc(cap), *p, *summary;
    char want[100];
    bool pending = true;
    ssize_t n_after;

    (void)state;
    log_queue_start(wake, NULL);
    dropped = fill(&first_dropped);
    assert_true(dropped > 0);
    assert_int_equal((unsigned long long)(LINES - first_dropped), dropped);
    assert_true(wakeups > 0);
    assert_true(woken_fd > 2);

    /* The reader is back: what the loop's watcher would do on each writable event. */
    while (pending) {
        ssize_t n = read(r, out + len, cap - 1 - len);

        assert_true(n > 0);
        len += (size_t)n;
        pending = log_flush();
    }
    while (len < cap - 1) {
        /* The last flush's writes may still be in the pipe: read to the summary line. */
        out[len] = '\0';
        if (strstr(out, "lines dropped") && out[len - 1] == '\n')
            break;
        len += (size_t)read(r, out + len, cap - 1 - len);
    }
    out[len] = '\0';

    /* Kept lines come out whole and in order, then the count of the others. */
    p = out;
    for (int i = 0; i < first_dropped; i++) {
        char line[200];
        char *nl = strchr(p, '\n');

        assert_non_null(nl);
        snprintf(line, sizeof(line), ": info: line %d %0100d", i, 0);
        assert_non_null(strstr(p, line));
        assert_true(strstr(p, line) < nl);
        p = nl + 1;
    }
    snprintf(want, sizeof(want), "warning: log: %llu lines dropped: the log sink fell behind\n",
             dropped);
    summary = strstr(p, want);
    assert_non_null(summary);
    assert_string_equal(summary, want);

    /* Caught up: a line goes out at once (in the pipe with no log_flush), nothing dropped. */
    dropped = log_dropped_total();
    log_info("after");
    assert_int_equal(fcntl(r, F_SETFL, O_NONBLOCK), 0);
    n_after = read(r, out, cap - 1);
    assert_true(n_after > 0);
    out[n_after] = '\0';
    assert_false(log_flush());
    assert_non_null(strstr(out, ": info: after\n"));
    assert_int_equal(log_dropped_total(), dropped);
    log_close();
    close(r);
    free(out);
}

static void test_close_waits_a_bounded_time(void **state)
{
    int r = open_on_pipe(), first_dropped;
    unsigned long long before;
    double began;

    (void)state;
    log_queue_start(wake, NULL);
    assert_true(fill(&first_dropped) > 0);
    before = log_dropped_total();
    began = now();
    log_close();
    /* A second for the sink, then what it did not take counts as lost. */
    assert_true(now() - began >= 0.9);
    assert_true(now() - began < 3);
    assert_true(log_dropped_total() > before);
    close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drop_count_and_recovery),
        cmocka_unit_test(test_close_waits_a_bounded_time),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

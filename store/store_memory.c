/*
 * store_memory: the `memory` backend.  Nothing leaves the process: the
 * daemon's own windows are the only copy, there is no fleet to read, no
 * round ever runs (so collect is never called) and nothing can fail.
 */
#include "store_backend.h"

static int memory_open(struct store_backend **out, struct ev_loop *loop,
                       const struct store_settings *settings, const struct store_source *source,
                       char *err, size_t errlen)
{
    (void)loop;
    (void)settings;
    (void)source;
    (void)err;
    (void)errlen;
    *out = NULL;
    return 0;
}

/* Nothing is pending: done at once. */
static void memory_flush_final(struct store_backend *b, void (*done)(void *arg), void *arg)
{
    (void)b;
    done(arg);
}

static void memory_close(struct store_backend *b)
{
    (void)b;
}

static void memory_get_state(const struct store_backend *b, struct store_state *out)
{
    (void)b;
    out->connected = true; /* nothing to reach */
}

const struct store_backend_ops store_memory_backend = {
    .name = "memory",
    .shared = false,
    .open = memory_open,
    .flush_final = memory_flush_final,
    .close = memory_close,
    .get_state = memory_get_state,
};

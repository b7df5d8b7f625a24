/*
 * store_backend: what store.c asks of a backend (private to store/).
 * One file per backend defines its `struct store_backend` and its ops:
 * store_memory.c (nothing leaves the process) and store_redis.c.  store.c
 * picks one by the `store` setting and forwards the calls of store.h.
 */
#ifndef RELAYWATCH_STORE_BACKEND_H
#define RELAYWATCH_STORE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h"

struct store_backend; /* one backend's state, opaque outside its file */

struct store_backend_ops {
    const char *name; /* store_state.backend */
    bool shared;      /* other hosts can see what it holds (store_state.shared) */
    /* 0 with the backend's state in *out (NULL: it has none), or -1 with a one-line reason in
     * err.  No callback of source runs before it returns. */
    int (*open)(struct store_backend **out, struct ev_loop *loop,
                const struct store_settings *settings, const struct store_source *source,
                char *err, size_t errlen);
    void (*flush_final)(struct store_backend *b, void (*done)(void *arg), void *arg);
    void (*close)(struct store_backend *b);
    /* Fill in what it knows; out comes zeroed, with name and shared set. */
    void (*get_state)(const struct store_backend *b, struct store_state *out);
};

extern const struct store_backend_ops store_memory_backend, store_redis_backend;

#endif

/*
 * store: the backend named by the `store` setting, behind store.h.  See
 * store_backend.h for what a backend provides.
 */
#include "store.h"

#include <stdlib.h>
#include <string.h>

#include "store_backend.h"
#include "xalloc.h"

struct store {
    const struct store_backend_ops *ops;
    struct store_backend *backend; /* the ops' own state */
};

struct store *store_new(struct ev_loop *loop, const struct store_settings *settings,
                        const struct store_source *source, char *err, size_t errlen)
{
    struct store *s = xcalloc(1, sizeof(*s));

    /* Anything else is a Redis address; the Redis backend says if it is not a usable one. */
    s->ops = strcmp(settings->url, "memory") == 0 ? &store_memory_backend : &store_redis_backend;
    if (s->ops->open(&s->backend, loop, settings, source, err, errlen) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

void store_flush_final(struct store *s, void (*done)(void *arg), void *arg)
{
    s->ops->flush_final(s->backend, done, arg);
}

void store_free(struct store *s)
{
    if (s == NULL)
        return;
    s->ops->close(s->backend);
    free(s);
}

void store_get_state(const struct store *s, struct store_state *out)
{
    memset(out, 0, sizeof(*out));
    out->backend = s->ops->name;
    out->shared = s->ops->shared;
    s->ops->get_state(s->backend, out);
}

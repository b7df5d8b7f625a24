/*
 * query_writer: the feed's query counts written to Redis with blocking
 * hiredis calls, pipelined per flush.  See query_writer.h.
 */
#include "query_writer.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "redis_address.h"
#include "xalloc.h"

struct store_query_writer {
    struct redis_address addr;
    char *username, *password; /* NULL: none */
    double timeout, retention;
    char run[40];
    redisContext *c;
    bool failed;           /* this batch cannot reach Redis */
    char error[256];
    unsigned pending;      /* replies owed by the queued commands */
    char (*clients)[64];   /* clients written in this batch, for their :updated keys */
    unsigned client_count, client_cap;
};

struct store_query_writer *store_query_writer_new(const char *url, const char *username,
                                                  const char *password,
                                                  double timeout, double retention, char *err,
                                                  size_t errlen)
{
    struct store_query_writer *w;

    if (!redis_address_is_redis(url)) {
        snprintf(err, errlen, "store is '%s': the feed needs a shared store (store = "
                              "redis://HOST:PORT or redis+unix:///PATH)", url);
        return NULL;
    }
    if (username != NULL && *username != '\0' && (password == NULL || *password == '\0')) {
        snprintf(err, errlen, "redis_username '%s' is set without redis_password", username);
        return NULL;
    }
    w = xcalloc(1, sizeof(*w));
    if (redis_address_parse(&w->addr, url, err, errlen) != 0) {
        free(w);
        return NULL;
    }
    w->password = password && *password ? strdup(password) : NULL;
    w->username = username && *username ? strdup(username) : NULL;
    w->timeout = timeout;
    w->retention = retention;
    snprintf(w->run, sizeof(w->run), "%lx.%x", (unsigned long)time(NULL), (unsigned)getpid());
    return w;
}

void store_query_writer_free(struct store_query_writer *w)
{
    if (w == NULL)
        return;
    if (w->c)
        redisFree(w->c);
    redis_address_clear(&w->addr);
    free(w->password);
    free(w->username);
    free(w->clients);
    free(w);
}

const char *store_query_writer_run(const struct store_query_writer *w)
{
    return w->run;
}

static void writer_fail(struct store_query_writer *w, const char *what)
{
    if (!w->failed)
        snprintf(w->error, sizeof(w->error), "%s", what);
    w->failed = true;
}

/* One command's reply; false (and the batch failed) on an error. */
static bool writer_reply_ok(struct store_query_writer *w)
{
    redisReply *r = NULL;
    bool ok;

    if (redisGetReply(w->c, (void **)&r) != REDIS_OK || r == NULL) {
        writer_fail(w, w->c->errstr[0] ? w->c->errstr : "no reply");
        return false;
    }
    ok = r->type != REDIS_REPLY_ERROR;
    if (!ok)
        writer_fail(w, r->str);
    freeReplyObject(r);
    return ok;
}

static void writer_connect(struct store_query_writer *w)
{
    struct timeval tv = {(time_t)w->timeout,
                         (suseconds_t)((w->timeout - (double)(time_t)w->timeout) * 1e6)};

    w->c = w->addr.path ? redisConnectUnixWithTimeout(w->addr.path, tv)
                        : redisConnectWithTimeout(w->addr.host, w->addr.port, tv);
    if (w->c == NULL || w->c->err) {
        writer_fail(w, w->c ? w->c->errstr : "cannot connect");
        if (w->c)
            redisFree(w->c);
        w->c = NULL;
        return;
    }
    redisSetTimeout(w->c, tv);
    if (w->password) {
        if (w->username)
            redisAppendCommand(w->c, "AUTH %s %s", w->username, w->password);
        else
            redisAppendCommand(w->c, "AUTH %s", w->password);
        if (!writer_reply_ok(w))
            return;
    }
    if (w->addr.db != 0) {
        redisAppendCommand(w->c, "SELECT %d", w->addr.db);
        writer_reply_ok(w);
    }
}

void store_query_writer_set(struct store_query_writer *w, const char *client, int64_t minute,
                            const char *type, uint64_t count)
{
    char key[160], field[80], value[24], ttl[24];

    if (w->failed)
        return;
    if (w->c == NULL) {
        writer_connect(w);
        if (w->failed)
            return;
    }
    snprintf(key, sizeof(key), "rw:{%s}:q:%" PRId64, client, minute);
    snprintf(field, sizeof(field), "%s@%s", type, w->run);
    snprintf(value, sizeof(value), "%" PRIu64, count);
    snprintf(ttl, sizeof(ttl), "%.0f", w->retention);
    redisAppendCommand(w->c, "HSET %s %s %s", key, field, value);
    redisAppendCommand(w->c, "EXPIRE %s %s", key, ttl);
    w->pending += 2;
    if (w->client_count == 0 || strcmp(w->clients[w->client_count - 1], client) != 0) {
        if (w->client_count == w->client_cap) {
            unsigned cap = w->client_cap ? w->client_cap * 2 : 64;
            w->clients = xrealloc(w->clients, cap * sizeof(*w->clients));
            w->client_cap = cap;
        }
        snprintf(w->clients[w->client_count++], sizeof(w->clients[0]), "%s", client);
    }
}

bool store_query_writer_flush(struct store_query_writer *w, char *err, size_t errlen)
{
    char now[24], ttl[24], key[160];

    if (!w->failed && w->c != NULL && w->client_count > 0) {
        snprintf(now, sizeof(now), "%ld", (long)time(NULL));
        snprintf(ttl, sizeof(ttl), "%.0f", w->retention);
        for (unsigned i = 0; i < w->client_count; i++) {
            /* The same client may come back in a batch: one SET each time is harmless. */
            snprintf(key, sizeof(key), "rw:{%s}:q:updated", w->clients[i]);
            redisAppendCommand(w->c, "SET %s %s EX %s", key, now, ttl);
            w->pending++;
        }
    }
    while (!w->failed && w->pending > 0) {
        w->pending--;
        writer_reply_ok(w);
    }
    w->pending = 0;
    w->client_count = 0;
    if (!w->failed)
        return true;
    snprintf(err, errlen, "%s", w->error);
    if (w->c)
        redisFree(w->c);
    w->c = NULL;
    w->failed = false;
    return false;
}

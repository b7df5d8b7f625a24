/*
 * throttle_store: rw:throttle read and written with blocking hiredis
 * calls, for relaywatch list / block / release.  See throttle_store.h.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "redis_address.h"
#include "throttle_store.h"

struct store_throttle_client {
    redisContext *c;
    char *url;
    double timeout;
};

/* One command; its reply (the caller frees it), or NULL with the reason in err. */
static redisReply *command(struct store_throttle_client *t, int argc, const char **argv,
                           char *err, size_t errlen)
{
    redisReply *r = redisCommandArgv(t->c, argc, argv, NULL);

    if (r == NULL && t->c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        snprintf(err, errlen, "store: %s: did not answer within %gs", t->url, t->timeout);
        return NULL;
    }
    if (r == NULL) {
        snprintf(err, errlen, "store: %s: %s", t->url,
                 t->c->errstr[0] ? t->c->errstr : "no answer");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "store: %s: %s: %s", t->url, argv[0], r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* A command whose reply only has to be no error. */
static bool command_ok(struct store_throttle_client *t, int argc, const char **argv, char *err,
                       size_t errlen)
{
    redisReply *r = command(t, argc, argv, err, errlen);

    freeReplyObject(r);
    return r != NULL;
}

struct store_throttle_client *store_throttle_client_new(const char *url, const char *username,
                                                        const char *password, double timeout,
                                                        char *err, size_t errlen)
{
    struct store_throttle_client *t;
    struct redis_address a = {0};
    struct timeval tv = {(time_t)timeout,
                         (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6)};
    bool ok = true;

    if (!redis_address_is_redis(url)) {
        snprintf(err, errlen, "store: '%s' is not Redis", url);
        return NULL;
    }
    if (username != NULL && username[0] != '\0' && (password == NULL || password[0] == '\0')) {
        snprintf(err, errlen, "store: redis_username '%s' is set without redis_password",
                 username);
        return NULL;
    }
    if (redis_address_parse(&a, url, err, errlen) != 0)
        return NULL;
    t = calloc(1, sizeof(*t));
    if (t == NULL || (t->url = strdup(url)) == NULL)
        abort();
    t->timeout = timeout;
    t->c = a.path ? redisConnectUnixWithTimeout(a.path, tv)
                  : redisConnectWithTimeout(a.host, a.port, tv);
    if (t->c == NULL || t->c->err) {
        snprintf(err, errlen, "store: %s: %s", url, t->c ? t->c->errstr : "cannot connect");
        ok = false;
    }
    if (ok)
        redisSetTimeout(t->c, tv);
    if (ok && password != NULL && password[0] != '\0') {
        bool as_user = username != NULL && username[0] != '\0';
        const char *auth[3] = {"AUTH", as_user ? username : password, password};

        ok = command_ok(t, as_user ? 3 : 2, auth, err, errlen);
    }
    if (ok) {
        char db[16];
        const char *select[2] = {"SELECT", db};
        const char *ping[1] = {"PING"};

        /* SELECT (or PING) shows whether a password is needed. */
        snprintf(db, sizeof(db), "%d", a.db);
        ok = a.db != 0 ? command_ok(t, 2, select, err, errlen)
                       : command_ok(t, 1, ping, err, errlen);
    }
    redis_address_clear(&a);
    if (!ok) {
        store_throttle_client_free(t);
        return NULL;
    }
    return t;
}

void store_throttle_client_free(struct store_throttle_client *t)
{
    if (t == NULL)
        return;
    if (t->c != NULL)
        redisFree(t->c);
    free(t->url);
    free(t);
}

bool store_throttle_read(struct store_throttle_client *t,
                         void (*fn)(void *ctx, const char *field, size_t flen, const char *value,
                                    size_t vlen),
                         void *ctx, char *err, size_t errlen)
{
    const char *argv[2] = {"HGETALL", STORE_THROTTLE_KEY};
    redisReply *r = command(t, 2, argv, err, errlen);

    if (r == NULL)
        return false;
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0) {
        snprintf(err, errlen, "store: %s: %s is not a hash", t->url, STORE_THROTTLE_KEY);
        freeReplyObject(r);
        return false;
    }
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];

        if (f->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING)
            fn(ctx, f->str, f->len, v->str, v->len);
    }
    freeReplyObject(r);
    return true;
}

bool store_throttle_write(struct store_throttle_client *t, const char *field, const char *value,
                          char *err, size_t errlen)
{
    const char *argv[4] = {"HSET", STORE_THROTTLE_KEY, field, value};

    return command_ok(t, 4, argv, err, errlen);
}

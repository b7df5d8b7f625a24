/*
 * throttle_store: rw:throttle for relaywatch list / block / release
 * (store/throttle_store.c).
 *
 * A Redis hash: field "KIND:KEY", value one throttle_record line (see
 * policyd/engine/throttle.h).  Plain blocking calls, for the CLI, which works with
 * every daemon down; the daemons sharing the store read the hash on their
 * flush rhythm.
 */
#ifndef RELAYWATCH_THROTTLE_STORE_H
#define RELAYWATCH_THROTTLE_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h" /* STORE_THROTTLE_KEY */

struct store_throttle_client;

/* Connected (AUTH and SELECT done) within timeout seconds; NULL with a one-line reason for
 * a url that is not Redis (memory), a username without a password, or a Redis that cannot
 * be reached or refuses us.  username NULL or "": AUTH with the password alone. */
struct store_throttle_client *store_throttle_client_new(const char *url, const char *username,
                                                        const char *password,
                                                        double timeout, char *err,
                                                        size_t errlen);
void store_throttle_client_free(struct store_throttle_client *c);

/* HGETALL rw:throttle: each field and value (not NUL-terminated) handed to fn; false with
 * the reason if Redis did not answer with the hash. */
bool store_throttle_read(struct store_throttle_client *c,
                         void (*fn)(void *ctx, const char *field, size_t flen, const char *value,
                                    size_t vlen),
                         void *ctx, char *err, size_t errlen);

/* HSET rw:throttle field value; false with the reason. */
bool store_throttle_write(struct store_throttle_client *c, const char *field, const char *value,
                          char *err, size_t errlen);

#endif

/*
 * name_set: a fixed set of names from the configuration (never_throttle_sasl_users,
 * never_throttle_senders, local_domains), asked on the request path whether it holds a name
 * from the wire.  Sorted by keyed hash (hash64) for a binary search; the name itself decides,
 * so a name that shares a hash with a listed one is not taken for it.  Built once per
 * configuration (copies the names); lookups allocate nothing.
 */
#ifndef RELAYWATCH_NAME_SET_H
#define RELAYWATCH_NAME_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct name_set;

/* fold_case: names compare with A-Z as a-z (domains), and hash so (hash64's fold_case). */
struct name_set *name_set_new(char *const *names, size_t n, int fold_case);
void name_set_free(struct name_set *s);

size_t name_set_count(const struct name_set *s);

bool name_set_has(const struct name_set *s, const char *name, size_t len);

/* The same for a caller that has hash64(name, len, fold_case) already. */
bool name_set_has_hashed(const struct name_set *s, uint64_t hash, const char *name, size_t len);

#endif

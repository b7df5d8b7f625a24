/*
 * throttle_commands: relaywatch list / block / release, the operator's view
 * and hand on rw:throttle (see policyd/throttle.h).  With a Redis store
 * they read and write the hash directly (no daemon needed); with store =
 * memory they ask the running daemon over http_listen (GET and POST
 * /throttle).  Each returns the exit status: 0 done, 1 store or daemon
 * unreachable or refusing, 2 bad command line or configuration.
 */
#ifndef RELAYWATCH_THROTTLE_COMMANDS_H
#define RELAYWATCH_THROTTLE_COMMANDS_H

#include <stdbool.h>

struct config;

int throttle_list(const struct config *cfg, bool json);

/* member: "KIND:KEY"; duration: as in the configuration ("30m", "2h", "1d", seconds), or
 * NULL for until released by hand. */
int throttle_block(const struct config *cfg, const char *member, const char *duration);

int throttle_release(const struct config *cfg, const char *member);

#endif

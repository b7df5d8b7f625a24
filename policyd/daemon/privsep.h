/*
 * privsep: how relaywatchd started as root gives root up.
 *
 * The daemon parses what senders send, so it runs as an unprivileged user:
 * started as root (the systemd unit, the README's run command), it forks
 * the postsuper runner (postsuper_runner.h, the only part that keeps root)
 * and then becomes `user` with that user's groups, for good (real, effective
 * and saved IDs).  Blocking; called once, before the event loop exists.
 */
#ifndef RELAYWATCH_PRIVSEP_H
#define RELAYWATCH_PRIVSEP_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Become user.  fallback: a user to take when user does not exist (NULL: none; the
 * configured default falls back to "nobody" so that a fresh machine runs).  On success
 * who holds "NAME (uid N, gid N)"; false with the reason in err.
 */
bool privsep_become(const char *user, const char *fallback, char *who, size_t wholen, char *err,
                    size_t errlen);

/*
 * Whether path (a file, or a directory) is root's and writable by root only: what root
 * reads at start (the configuration file, Postfix's configuration directory and main.cf,
 * which postsuper reads as root) must not be something the unprivileged user, or anyone
 * else, could have written.  false with the reason in err.
 */
bool privsep_root_only(const char *path, bool directory, char *err, size_t errlen);

#endif

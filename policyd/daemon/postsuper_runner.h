/*
 * postsuper_runner: the privileged part of relaywatchd, and the only one.
 *
 * postsuper(1) must run as root; the process that parses policy requests
 * must never.  So relaywatchd, started as root, forks this runner first and
 * then drops to its unprivileged user (privsep.h).  The runner keeps root
 * and does one thing: on a request from the daemon over a SOCK_SEQPACKET
 * socket pair, it runs
 *     postsuper -c POSTFIX_CONFIG_DIRECTORY -h -     (hold)
 *     postsuper -c POSTFIX_CONFIG_DIRECTORY -H -     (release)
 * with the request's queue IDs on standard input, and answers with the IDs
 * postsuper reported done.  The program and the configuration directory
 * are fixed when the runner starts (from the configuration read as root);
 * the daemon cannot change them.  A request is refused whole, and postsuper
 * not run, unless it is exactly "h" or "r", then one or more Postfix queue
 * IDs (queue_id.h), each after one space, at most QUARANTINE_BATCH of
 * them, nothing else: no names, paths, options, NUL bytes, empty or
 * overlong requests.
 *
 * Requests and answers (one datagram each):
 *     "h ID ID ..."  "r ID ID ..."
 *     "ok [ID ...]" | "refused: WHY" | "failed: WHY"
 *
 * The runner blocks (it is its own process); the daemon's side
 * (hold_service.h) never does.
 */
#ifndef RELAYWATCH_POSTSUPER_RUNNER_H
#define RELAYWATCH_POSTSUPER_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define POSTSUPER_PATH "/usr/sbin/postsuper"
/* The largest request: "h" and QUARANTINE_BATCH IDs of QUEUE_ID_MAX with their spaces. */
#define POSTSUPER_REQUEST_MAX 16384
#define POSTSUPER_ANSWER_MAX 16384
#define POSTSUPER_TIMEOUT 60 /* seconds a postsuper run may take before it is killed */

/*
 * Whether buf[0..len) is a request the runner takes: *op is 'h' or 'r' and *count the
 * number of IDs.  false with the reason in why (a constant string).  Pure.
 */
bool postsuper_request_check(const char *buf, size_t len, char *op, unsigned *count,
                             const char **why);

/*
 * The IDs postsuper reported done in its output (lines "postsuper: ID: placed on hold" or
 * "... released from hold", as op asks), restricted to the request's IDs, space-separated
 * into out.  Returns how many.  Pure.
 */
unsigned postsuper_output_done(const char *output, size_t len, char op, const char *request,
                               size_t request_len, char *out, size_t outlen);

/*
 * Fork the runner (the caller is root): *fd is the daemon's end of the socket pair
 * (close-on-exec).  postsuper: the program to run (POSTSUPER_PATH outside tests).  Returns
 * the runner's pid, or -1 with the reason in err.
 */
pid_t postsuper_runner_start(const char *postsuper, const char *config_directory, int *fd,
                             char *err, size_t errlen);

#endif

/*
 * daemon_http: one HTTP request to the running relaywatchd over its
 * http_listen endpoint (relaywatch status and list with store = memory) or
 * its control socket (block and release with store = memory).  It blocks, with a deadline: 5 s to connect, 10 s for the
 * answer.  relaywatch.c and throttle.c call it; it calls neither.
 */
#ifndef RELAYWATCH_DAEMON_HTTP_H
#define RELAYWATCH_DAEMON_HTTP_H

#include <stddef.h>

struct config;

struct daemon_answer {
    int code;          /* HTTP status */
    char reason[64];   /* its reason phrase */
    const char *body;  /* inside raw; not NUL-terminated at body_len in general */
    size_t body_len;
    char *raw;         /* the whole response, NUL-terminated: free() it */
    const char *where; /* the endpoint as written, for messages */
};

/*
 * Send METHOD TARGET (path and query, already URL-encoded) with Accept:
 * accept to the daemon cfg points at.  0 with the answer, whatever its
 * status code; 1 when the daemon cannot be reached or does not answer HTTP,
 * 2 when http_listen is off (both said on stderr; command names what needs
 * the daemon, e.g. "relaywatch status").
 */
int daemon_request(const struct config *cfg, const char *command, const char *method,
                   const char *target, const char *accept, struct daemon_answer *ans);

/* The same over control_socket, where the daemon asks who is calling before a change
 * (exit status 2 when it is off). */
int daemon_control(const struct config *cfg, const char *command, const char *method,
                   const char *target, const char *accept, struct daemon_answer *ans);

/* Print the answer's body on stdout with a final newline; 0, or 1 if stdout fails. */
int daemon_print_body(const struct daemon_answer *ans);

#endif

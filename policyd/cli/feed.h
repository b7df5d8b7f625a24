/*
 * feed: `relaywatch feed`, the upstream DNS server's query log into the
 * shared store as per-client, per-type counts per minute.
 */
#ifndef RELAYWATCH_FEED_H
#define RELAYWATCH_FEED_H

#include <stdbool.h>

struct config;

struct feed_options {
    const char *path;       /* a file, "-" for standard input; NULL with syslog_udp */
    bool follow;            /* keep reading a growing file across rotation */
    const char *syslog_udp; /* HOST:PORT to receive syslog datagrams on, or NULL */
};

/* Run the feed; returns the exit status (0 done, 1 trouble with the store or input, 2 usage). */
int feed_run(const struct config *cfg, const struct feed_options *o);

#endif

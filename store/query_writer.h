/*
 * query_writer: the feed's side of the store (relaywatch feed): the
 * upstream DNS server's query counts per client, written with plain
 * blocking calls (the feed is a batch program with no loop), each bounded
 * by the timeout given.  Keys rw:{CLIENT}:q:MINUTE, fields TYPE@RUN: this
 * feed run's count so far, absolute, so writing it again is harmless; and
 * rw:{CLIENT}:q:updated, the Unix time of the last write for that client.
 * The daemon's Redis store reads them back (store.h, tdns_client).
 * hiredis types stay inside store/.
 */
#ifndef RELAYWATCH_QUERY_WRITER_H
#define RELAYWATCH_QUERY_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store_query_writer;

/* NULL with a one-line reason for an unusable url (memory, or not Redis), or a username
 * without a password.  Connects at the first set, not here.  username NULL or "": AUTH with
 * the password alone (none without a password). */
struct store_query_writer *store_query_writer_new(const char *url, const char *username,
                                                  const char *password,
                                                  double timeout, double retention, char *err,
                                                  size_t errlen);
void store_query_writer_free(struct store_query_writer *w);

/* This run's identity in field names ("<start time>.<pid>" in hex); lives as long as w. */
const char *store_query_writer_run(const struct store_query_writer *w);

/* Queue this run's count of TYPE queries from CLIENT in MINUTE. */
void store_query_writer_set(struct store_query_writer *w, const char *client, int64_t minute,
                            const char *type, uint64_t count);

/*
 * Send what was queued in one pipeline.  False with the reason if it did
 * not all reach Redis: the connection is dropped (made again at the next
 * set) and the caller queues the same counts again for the next try.
 */
bool store_query_writer_flush(struct store_query_writer *w, char *err, size_t errlen);

#endif

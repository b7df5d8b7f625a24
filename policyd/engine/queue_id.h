/*
 * queue_id: whether a string is a Postfix queue ID, so that nothing else ever reaches
 * postsuper(1) (issue 13's holds: `postsuper -h ALL` would hold the whole queue, `-d ...`
 * is an option, a path is not an ID).
 *
 * Stricter than Postfix, which takes any alphanumeric file name: only the two forms Postfix
 * writes are accepted (see ../shared/notes/real-servers.md for the samples):
 * - short (the default): upper-case hex, 5 characters of microseconds and the queue file's
 *   inode (1 to 16 hex digits): 6 to 21 characters, e.g. 14E9AA766D1;
 * - long (enable_long_queue_ids = yes): 10 characters of seconds and microseconds in the
 *   52-character alphabet (digits, consonants of both cases), 'z', then the inode in that
 *   alphabet without 'z' (1 to 13 characters), e.g. 4jjlNN6lMqz1bhJ7.
 *
 * Pure: no I/O, no allocation; the bytes are read, never kept.
 */
#ifndef RELAYWATCH_QUEUE_ID_H
#define RELAYWATCH_QUEUE_ID_H

#include <stdbool.h>
#include <stddef.h>

#define QUEUE_ID_MAX 24 /* the longest form accepted, 10 + 1 + 13 */

/* Whether s[0..len) is a Postfix queue ID (len counts bytes; a NUL inside is not). */
bool queue_id_valid(const char *s, size_t len);

/* Whether id[0..idlen) is one of the words of list[0..len), a list of IDs each after the
 * other with one space between (the postsuper runner's requests and answers). */
bool queue_id_listed(const char *list, size_t len, const char *id, size_t idlen);

#endif

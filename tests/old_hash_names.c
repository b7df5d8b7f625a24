/*
 * old_hash_names: COUNT names under SUFFIX that all fall into one bucket of the DNS cache as
 * it was before keyed hashing (resolver.c's unkeyed name_hash for an MX lookup, bucket =
 * hash & (2^BITS - 1)): what anyone could compute from the public source.  One per line.
 * tests/hash_flood_test.py sends them as sender domains and shows they no longer pile up.
 *
 * Usage: old_hash_names COUNT BITS SUFFIX
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OLD_TYPE_MX 2 /* enum dns_type's DNS_MX */

/* A copy of the former name_hash, kept here so the probe does not depend on the code it tests. */
static uint64_t old_name_hash(unsigned type, const char *name, size_t len)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL * ((uint64_t)type + 1) ^ len;

    while (len > 0) {
        uint64_t w = 0;
        size_t n = len < 8 ? len : 8;

        memcpy(&w, name, n);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        name += n;
        len -= n;
    }
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 29;
    return h;
}

int main(int argc, char **argv)
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    unsigned long count, bits, found = 0;
    uint64_t mask, target = 0;
    char name[256], next[256] = {0};
    size_t len;

    if (argc != 4 || (count = strtoul(argv[1], NULL, 10)) == 0 ||
        (bits = strtoul(argv[2], NULL, 10)) == 0 || bits > 32 || strlen(argv[3]) > 200) {
        fprintf(stderr, "usage: old_hash_names COUNT BITS SUFFIX\n");
        return 2;
    }
    mask = ((uint64_t)1 << bits) - 1;
    for (int i = 0; i + 1 < 36; i++)
        next[(unsigned char)digits[i]] = digits[i + 1]; /* '0' after 'z': the digit carries */
    next['z'] = '0';
    /* "f" and seven base-36 digits, then the suffix: one 8-byte word varies, counted up in
     * place (no formatting per candidate: about 2^BITS candidates per name found). */
    len = (size_t)snprintf(name, sizeof(name), "f0000000.%s", argv[3]);
    target = old_name_hash(OLD_TYPE_MX, name, len) & mask;
    while (found < count) {
        if ((old_name_hash(OLD_TYPE_MX, name, len) & mask) == target) {
            printf("%s\n", name);
            found++;
        }
        /* The next label; 36^7 names are far more than asked. */
        for (int d = 7; d >= 1 && (name[d] = next[(unsigned char)name[d]]) == '0'; d--)
            ;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

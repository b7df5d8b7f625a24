/*
 * write_sample_config FILE: writes the sample relaywatch.conf (config_write_sample: every
 * key commented out with its default and meaning) to FILE.  A build-time tool only: the
 * package installs its output as /etc/relaywatch/relaywatch.conf, so the key table in
 * config.c stays the one place keys, defaults and meanings are written.
 */
#include <stdio.h>

#include "config.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fputs("usage: write_sample_config FILE\n", stderr);
        return 2;
    }
    FILE *out = fopen(argv[1], "w");
    if (out == NULL) {
        perror(argv[1]);
        return 1;
    }
    config_write_sample(out);
    if (fclose(out) != 0) {
        perror(argv[1]);
        return 1;
    }
    return 0;
}

/* Fuzz target for the configuration parser: any text, no crash, no leak; and what is
 * parsed goes through -n's writer and the reload's restart comparison. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ignore(void *ctx, const char *source, unsigned line, const char *message)
{
    (void)ctx;
    (void)source;
    (void)line;
    (void)message;
}

static void ignore_warning(void *ctx, const char *message)
{
    (void)ctx;
    (void)message;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config *c = config_new(), *defaults = config_new();
    char *buf = malloc(size ? size : 1);
    char *written = NULL;
    size_t written_len = 0;
    FILE *out;

    memcpy(buf, data, size);
    config_parse_buffer(c, buf, size, "fuzz", ignore, NULL);
    config_check(c, ignore, NULL);
    config_restart_changes(defaults, c, ignore_warning, NULL);
    config_restart_changes(c, defaults, ignore_warning, NULL);
    out = open_memstream(&written, &written_len);
    if (out != NULL) {
        config_write_set(c, out);
        fclose(out);
    }
    free(written);
    free(buf);
    config_free(c);
    config_free(defaults);
    return 0;
}

/* Fuzz target for the configuration parser: any text, no crash, no leak. */
#include <stdint.h>
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config *c = config_new();
    char *buf = malloc(size ? size : 1);

    memcpy(buf, data, size);
    config_parse_buffer(c, buf, size, "fuzz", ignore, NULL);
    config_check(c, ignore, NULL);
    free(buf);
    config_free(c);
    return 0;
}

/*
 * queue_id: the two forms of Postfix queue IDs.  See the header.
 */
#include "queue_id.h"

#include <string.h>

static bool is_hex_upper(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* Postfix's 52 characters for long IDs: digits and the letters that are not vowels. */
static bool is_base52(char c)
{
    if (c >= '0' && c <= '9')
        return true;
    if (c >= 'a' && c <= 'z')
        c = (char)(c - 'a' + 'A');
    else if (c < 'A' || c > 'Z')
        return false;
    return c != 'A' && c != 'E' && c != 'I' && c != 'O' && c != 'U';
}

static bool short_form(const char *s, size_t len)
{
    if (len < 6 || len > 21)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_hex_upper(s[i]))
            return false;
    return true;
}

static bool long_form(const char *s, size_t len)
{
    if (len < 12 || len > QUEUE_ID_MAX || s[10] != 'z')
        return false;
    for (size_t i = 0; i < len; i++) {
        if (i == 10)
            continue;
        if (!is_base52(s[i]) || (i > 10 && s[i] == 'z'))
            return false;
    }
    return true;
}

bool queue_id_valid(const char *s, size_t len)
{
    return s != NULL && (short_form(s, len) || long_form(s, len));
}

bool queue_id_listed(const char *list, size_t len, const char *id, size_t idlen)
{
    for (size_t i = 0; i < len;) {
        size_t w = 0;

        while (i + w < len && list[i + w] != ' ')
            w++;
        if (w == idlen && memcmp(list + i, id, idlen) == 0)
            return true;
        i += w + 1;
    }
    return false;
}

/*
 * log: syslog or stderr.  Lines are formatted once into a stack buffer
 * and written with one write(2), so that lines from a busy daemon never
 * interleave on stderr.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

static bool use_stderr = true;

void log_open(bool to_stderr)
{
    use_stderr = to_stderr;
    if (!use_stderr)
        openlog("relaywatchd", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_close(void)
{
    if (!use_stderr)
        closelog();
}

static void log_line(int priority, const char *level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void log_line(int priority, const char *level, const char *fmt, va_list ap)
{
    char line[2048];
    int n;

    if (!use_stderr) {
        char msg[2000];
        vsnprintf(msg, sizeof(msg), fmt, ap);
        /* Postfix style: warnings carry their level in the text too. */
        if (priority == LOG_INFO)
            syslog(priority, "%s", msg);
        else
            syslog(priority, "%s: %s", level, msg);
        return;
    }
    n = snprintf(line, sizeof(line), "relaywatchd[%ld]: %s: ", (long)getpid(), level);
    if (n < 0)
        return;
    n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    if (n >= (int)sizeof(line))
        n = (int)sizeof(line) - 1;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* Nowhere left to report it. */
    }
}

#define LOG_FN(fn, prio, level)                                                                    \
    void fn(const char *fmt, ...)                                                                  \
    {                                                                                              \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        log_line(prio, level, fmt, ap);                                                            \
        va_end(ap);                                                                                \
    }

LOG_FN(log_info, LOG_INFO, "info")
LOG_FN(log_warning, LOG_WARNING, "warning")
LOG_FN(log_error, LOG_ERR, "error")

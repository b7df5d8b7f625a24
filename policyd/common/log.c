/*
 * log: each line is formatted once into its sink's form (a stderr line, or a
 * syslog datagram) and queued as one record; a record goes out with one
 * write(2) or send(2), so lines of the daemon and of its postsuper runner,
 * which share stderr, do not interleave (records are shorter than PIPE_BUF).
 *
 * Writing to stderr without blocking, and without touching the descriptor
 * the shell or systemd gave us: O_NONBLOCK belongs to the open file
 * description, which fd 2 shares with them (a dup() would share it too), so
 * setting it on fd 2 would change their stderr as well.  Instead:
 *  - a socket (journald's stream): send(MSG_DONTWAIT) on fd 2, a per-call flag;
 *  - a pipe, FIFO or terminal: /proc/self/fd/2 opened again, which is a new
 *    open file description of the same pipe or device, with O_NONBLOCK of its
 *    own.  Opened in log_open, before root is given up (the pipe may be root's,
 *    mode 0600).  Without /proc: fd 2 behind a poll() of zero timeout (a pipe
 *    that polls writable takes a write of up to PIPE_BUF bytes whole);
 *  - a regular file: fd 2 as is (O_NONBLOCK means nothing to regular files,
 *    and a description of its own would have its own offset and overwrite).
 * syslog(3) sends on a blocking socket, so /dev/log is spoken to directly on
 * a non-blocking datagram socket, in syslog(3)'s own RFC 3164 form.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

enum {
    RECORD_MAX = 2048,        /* below PIPE_BUF (4096), so a pipe takes a record whole */
    QUEUE_BYTES = 64 * 1024,  /* records of 2 length bytes plus text */
    WAIT_MS = 1000,           /* the longest a write may wait outside the loop */
};

enum how { HOW_WRITE, HOW_POLL_WRITE, HOW_SEND };
enum outcome { WRITTEN, BLOCKED, FAILED };

static bool use_syslog;
static enum how how = HOW_WRITE;
static int out_fd = STDERR_FILENO;
static bool own_fd;           /* out_fd is ours to close */
static time_t syslog_retry;   /* no new /dev/log connection attempt before */
static log_wakeup_fn *wakeup; /* set: the loop runs, never wait */
static void *wakeup_ctx;

static unsigned char queue[QUEUE_BYTES];
static size_t q_start, q_end; /* records in queue[q_start, q_end) */
static size_t front_done;     /* bytes of the first record a stream took already */
static unsigned long long dropped, unreported;

static void syslog_connect(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;

    /* Once a second at most: with no syslog daemon, not two system calls per line. */
    syslog_retry = time(NULL) + 1;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", "/dev/log");
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return;
    }
    out_fd = fd;
    own_fd = true;
}

static void close_sink(void)
{
    if (own_fd) {
        /* The loop stops watching first: the new socket often gets the same number, and a
         * watcher left on the closed one would never fire again. */
        if (wakeup != NULL)
            wakeup(wakeup_ctx, -1);
        close(out_fd);
    }
    own_fd = false;
    out_fd = use_syslog ? -1 : STDERR_FILENO;
}

void log_open(bool to_stderr)
{
    struct stat st;
    int fd;

    close_sink();
    use_syslog = !to_stderr;
    if (use_syslog) {
        how = HOW_SEND;
        syslog_connect();
        return;
    }
    how = HOW_WRITE;
    if (fstat(STDERR_FILENO, &st) != 0 || S_ISREG(st.st_mode))
        return;
    if (S_ISSOCK(st.st_mode)) {
        how = HOW_SEND;
        return;
    }
    fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd >= 0) {
        out_fd = fd;
        own_fd = true;
    } else {
        how = HOW_POLL_WRITE;
    }
}

static size_t format_record(char *rec, size_t cap, int priority, const char *level,
                            const char *msg)
{
    int n;

    if (use_syslog) {
        char stamp[32];
        time_t now = time(NULL);
        struct tm tm;

        localtime_r(&now, &tm);
        strftime(stamp, sizeof(stamp), "%h %e %T", &tm);
        /* Postfix style: warnings carry their level in the text too. */
        n = snprintf(rec, cap, "<%d>%s relaywatchd[%ld]: %s%s%s", LOG_MAIL | priority, stamp,
                     (long)getpid(), priority == LOG_INFO ? "" : level,
                     priority == LOG_INFO ? "" : ": ", msg);
    } else {
        n = snprintf(rec, cap, "relaywatchd[%ld]: %s: %s\n", (long)getpid(), level, msg);
    }
    if (n < 0)
        return 0;
    if ((size_t)n >= cap) {
        n = (int)cap - 1;
        if (!use_syslog)
            rec[n - 1] = '\n';
    }
    return (size_t)n;
}

static size_t queue_room(void)
{
    return QUEUE_BYTES - (q_end - q_start);
}

static bool push(const char *rec, size_t len)
{
    uint16_t n = (uint16_t)len;

    if (2 + len > queue_room())
        return false;
    if (q_end + 2 + len > QUEUE_BYTES) {
        /* Only while the sink lags: an empty queue starts again at 0. */
        memmove(queue, queue + q_start, q_end - q_start);
        q_end -= q_start;
        q_start = 0;
    }
    memcpy(queue + q_end, &n, 2);
    memcpy(queue + q_end + 2, rec, len);
    q_end += 2 + len;
    return true;
}

static void pop(void)
{
    uint16_t n;

    memcpy(&n, queue + q_start, 2);
    q_start += 2 + (size_t)n;
    front_done = 0;
    if (q_start == q_end)
        q_start = q_end = 0;
}

/* The count of lines a full queue dropped, queued if it fits with `also` bytes more. */
static bool push_drop_summary(size_t also)
{
    char msg[120], rec[256];
    size_t len;

    snprintf(msg, sizeof(msg), "log: %llu lines dropped: the log sink fell behind", unreported);
    len = format_record(rec, sizeof(rec), LOG_WARNING, "warning", msg);
    if (2 + len + also > queue_room())
        return false;
    push(rec, len);
    unreported = 0;
    return true;
}

static enum outcome write_front(void)
{
    uint16_t n;
    bool reconnected = false;

    memcpy(&n, queue + q_start, 2);
    while (front_done < n) {
        const unsigned char *p = queue + q_start + 2 + front_done;
        size_t left = n - front_done;
        ssize_t w;

        if (how == HOW_POLL_WRITE) {
            struct pollfd pfd = {.fd = out_fd, .events = POLLOUT};

            if (poll(&pfd, 1, 0) == 0)
                return BLOCKED;
        }
        do
            w = how == HOW_SEND ? send(out_fd, p, left, MSG_DONTWAIT | MSG_NOSIGNAL)
                                : write(out_fd, p, left);
        while (w < 0 && errno == EINTR);
        if (w > 0) {
            front_done += (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return BLOCKED;
        /* The syslog daemon restarted: its socket is a new one. */
        if (w < 0 && use_syslog && !reconnected &&
            (errno == ECONNREFUSED || errno == ENOTCONN || errno == ECONNRESET)) {
            reconnected = true;
            close_sink();
            syslog_connect();
            continue;
        }
        return FAILED;
    }
    return WRITTEN;
}

bool log_flush(void)
{
    if (use_syslog && out_fd < 0 && time(NULL) >= syslog_retry)
        syslog_connect();
    for (;;) {
        /* The sink took everything: it has caught up, say what it missed. */
        if (q_start == q_end && (unreported == 0 || !push_drop_summary(0)))
            return false;
        switch (write_front()) {
        case BLOCKED:
            if (wakeup != NULL)
                wakeup(wakeup_ctx, out_fd);
            return true;
        case FAILED:
            dropped++;
            break;
        case WRITTEN:
            break;
        }
        pop();
    }
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Write the queue, waiting up to ms for the sink; what it did not take stays queued. */
static bool flush_waiting(int ms)
{
    double deadline = now_ms() + ms;

    while (log_flush()) {
        struct pollfd pfd = {.fd = out_fd, .events = POLLOUT};
        double left = deadline - now_ms();

        if (left <= 0 || (poll(&pfd, 1, (int)left + 1) < 0 && errno != EINTR))
            return true;
    }
    return false;
}

void log_queue_start(log_wakeup_fn *fn, void *ctx)
{
    wakeup = fn;
    wakeup_ctx = ctx;
    log_flush();
}

void log_close(void)
{
    wakeup = NULL;
    if (flush_waiting(WAIT_MS)) {
        while (q_start != q_end) {
            dropped++;
            pop();
        }
    }
    close_sink();
    /* As before log_open (the CLI's way): straight to stderr. */
    use_syslog = false;
    how = HOW_WRITE;
    out_fd = STDERR_FILENO;
}

unsigned long long log_dropped_total(void)
{
    return dropped;
}

static void log_line(int priority, const char *level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static log_capture_fn *capture;
static void *capture_ctx;

void log_capture(log_capture_fn *fn, void *ctx)
{
    capture = fn;
    capture_ctx = ctx;
}

static void log_line(int priority, const char *level, const char *fmt, va_list ap)
{
    char msg[2000], rec[RECORD_MAX];
    size_t len;
    bool was_empty = q_start == q_end;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (capture != NULL) {
        capture(capture_ctx, level, msg);
        return;
    }
    len = format_record(rec, sizeof(rec), priority, level, msg);
    if ((unreported > 0 && !push_drop_summary(2 + len)) || !push(rec, len)) {
        dropped++;
        unreported++;
        return;
    }
    if (wakeup == NULL)
        flush_waiting(WAIT_MS);
    else if (was_empty)
        log_flush(); /* else the loop's watcher writes it when the sink takes more */
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

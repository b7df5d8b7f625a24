/*
 * log_input: log files in, lines out.  See log_input.h.
 *
 * One reader per file: a raw buffer read(2) fills, an inflated buffer when
 * the file is gzip, and the line being assembled when a line straddles two
 * buffers.  A line found whole inside a buffer is handed out in place, so
 * most lines are not copied.
 */
#include "log_input.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "xalloc.h"

#define RAW_SIZE 65536
#define OUT_SIZE 65536
/* A line found whole in a buffer is within the cap: no cutting in place. */
_Static_assert(RAW_SIZE <= LOG_INPUT_LINE_MAX && OUT_SIZE <= LOG_INPUT_LINE_MAX, "buffers above the cap");
/* Enough bytes to tell every format below apart. */
#define MAGIC_BYTES 10

enum format { PLAIN, GZIP, REFUSED };

struct reader {
    const struct log_file *file;
    int fd;
    log_input_line_fn *fn;
    void *arg;
    unsigned long max_lines; /* stop after this many (0: no limit) */
    unsigned long number;
    bool stop;
    bool cut;                /* the line being assembled has lost bytes (it is full) */
    size_t line_len;
    size_t raw_len;
    char *err;
    size_t errlen;
    unsigned char raw[RAW_SIZE];
    unsigned char out[OUT_SIZE];
    char line[LOG_INPUT_LINE_MAX];
};

static const char *shown_name(const struct log_file *f)
{
    return strcmp(f->path, "-") == 0 ? "standard input" : f->path;
}

__attribute__((format(printf, 2, 3)))
static int fail(struct reader *r, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(r->err, r->errlen, "%s: %s", shown_name(r->file), what);
    return -1;
}

/* Up to room bytes into buf: the count, 0 at the end, -1 on an error. */
static ssize_t read_some(int fd, void *buf, size_t room)
{
    for (;;) {
        ssize_t n = read(fd, buf, room);
        if (n >= 0 || errno != EINTR)
            return n;
    }
}

static void deliver(struct reader *r, const char *text, size_t len, bool cut)
{
    /* CRLF files: the CR belongs to the line end, not the line. */
    if (!cut && len > 0 && text[len - 1] == '\r')
        len--;
    struct log_input_line line = {r->file, ++r->number, text, len, cut};
    if (r->fn(&line, r->arg) != 0 || (r->max_lines && r->number >= r->max_lines))
        r->stop = true;
}

/* Keep what fits of a line's piece; the rest of an overlong line is dropped. */
static void append(struct reader *r, const unsigned char *p, size_t n)
{
    size_t room = LOG_INPUT_LINE_MAX - r->line_len;
    if (n > room) {
        n = room;
        r->cut = true;
    }
    memcpy(r->line + r->line_len, p, n);
    r->line_len += n;
}

/* Split bytes into lines; a piece without its newline waits in r->line. */
static void feed(struct reader *r, const unsigned char *p, size_t n)
{
    while (n > 0 && !r->stop) {
        const unsigned char *nl = memchr(p, '\n', n);
        if (!nl) {
            append(r, p, n);
            return;
        }
        size_t len = (size_t)(nl - p);
        if (r->line_len == 0) { /* a cut line is never empty */
            deliver(r, (const char *)p, len, false);
        } else {
            append(r, p, len);
            deliver(r, r->line, r->line_len, r->cut);
            r->line_len = 0;
            r->cut = false;
        }
        p = nl + 1;
        n -= len + 1;
    }
}

/* The last line, when the file does not end with a newline. */
static void finish(struct reader *r)
{
    if (!r->stop && r->line_len > 0)
        deliver(r, r->line, r->line_len, r->cut);
}

static enum format sniff(struct reader *r, const char **name)
{
    const unsigned char *m = r->raw;
    size_t n = r->raw_len;
    static const unsigned char xz[] = {0xfd, '7', 'z', 'X', 'Z', 0x00};
    static const unsigned char zstd[] = {0x28, 0xb5, 0x2f, 0xfd};
    /* bzip2: "BZh", a block size, then a block's or the end's own magic,
     * so that a text line that starts "BZh9" stays text. */
    static const unsigned char bz_block[] = {0x31, 0x41, 0x59, 0x26, 0x53, 0x59};
    static const unsigned char bz_end[] = {0x17, 0x72, 0x45, 0x38, 0x50, 0x90};
    if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b)
        return GZIP;
    *name = NULL;
    if (n >= sizeof xz && memcmp(m, xz, sizeof xz) == 0)
        *name = "xz";
    else if (n >= sizeof zstd && memcmp(m, zstd, sizeof zstd) == 0)
        *name = "zstd";
    else if (n >= 10 && m[0] == 'B' && m[1] == 'Z' && m[2] == 'h' && m[3] >= '1' && m[3] <= '9'
             && (memcmp(m + 4, bz_block, 6) == 0 || memcmp(m + 4, bz_end, 6) == 0))
        *name = "bzip2";
    return *name ? REFUSED : PLAIN;
}

static int read_plain(struct reader *r)
{
    feed(r, r->raw, r->raw_len);
    while (!r->stop) {
        ssize_t got = read_some(r->fd, r->raw, RAW_SIZE);
        if (got < 0)
            return fail(r, "%s", strerror(errno));
        if (got == 0)
            break;
        feed(r, r->raw, (size_t)got);
    }
    finish(r);
    return 0;
}

/* Every member in turn (logrotate's output put together with cat has
 * several); the input ending inside one is a truncated file. */
static int read_gzip(struct reader *r)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK) /* 16: gzip wrapping only */
        return fail(r, "cannot start zlib");
    z.next_in = r->raw;
    z.avail_in = (uInt)r->raw_len;
    bool in_member = true;
    unsigned long member = 1;
    int status = 0;
    while (!r->stop) {
        if (z.avail_in == 0) {
            ssize_t got = read_some(r->fd, r->raw, RAW_SIZE);
            if (got < 0) {
                status = fail(r, "%s", strerror(errno));
                break;
            }
            if (got == 0) {
                if (in_member)
                    status = fail(r, "truncated gzip data (member %lu has no end)", member);
                break;
            }
            z.next_in = r->raw;
            z.avail_in = (uInt)got;
        }
        if (!in_member) {
            /* Bytes after a member's end: the next member, or an error
             * (zlib's "incorrect header check") if they are not one. */
            inflateReset(&z);
            in_member = true;
            member++;
        }
        z.next_out = r->out;
        z.avail_out = OUT_SIZE;
        int ret = inflate(&z, Z_NO_FLUSH);
        feed(r, r->out, OUT_SIZE - z.avail_out);
        if (ret == Z_STREAM_END) {
            in_member = false;
        } else if (ret != Z_OK && ret != Z_BUF_ERROR) {
            status = fail(r, "corrupt gzip data in member %lu: %s", member,
                          z.msg ? z.msg : "zlib error");
            break;
        }
    }
    inflateEnd(&z);
    if (status == 0)
        finish(r);
    return status;
}

/* Open the file, stat it into *mtime_out if asked, and read its lines. */
static int read_file(const struct log_file *file, log_input_line_fn *fn, void *arg,
                     unsigned long max_lines, time_t *mtime_out, char *err, size_t errlen)
{
    struct reader *r = xmalloc(sizeof *r);
    r->file = file;
    r->fn = fn;
    r->arg = arg;
    r->max_lines = max_lines;
    r->number = 0;
    r->stop = false;
    r->cut = false;
    r->line_len = 0;
    r->raw_len = 0;
    r->err = err;
    r->errlen = errlen;
    bool is_stdin = strcmp(file->path, "-") == 0;
    r->fd = is_stdin ? STDIN_FILENO : open(file->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    int status = 0;
    if (r->fd < 0) {
        status = fail(r, "%s", strerror(errno));
        goto out;
    }
    if (mtime_out) {
        struct stat st;
        if (fstat(r->fd, &st) == 0 && (!is_stdin || S_ISREG(st.st_mode)))
            *mtime_out = st.st_mtime;
        else
            *mtime_out = time(NULL);
    }
    /* The magic bytes may come in several reads from a pipe. */
    while (r->raw_len < MAGIC_BYTES) {
        ssize_t got = read_some(r->fd, r->raw + r->raw_len, MAGIC_BYTES - r->raw_len);
        if (got < 0) {
            status = fail(r, "%s", strerror(errno));
            goto out;
        }
        if (got == 0)
            break;
        r->raw_len += (size_t)got;
    }
    const char *refused = NULL;
    switch (sniff(r, &refused)) {
    case GZIP:
        status = read_gzip(r);
        break;
    case REFUSED:
        status = fail(r, "%s-compressed: not read; decompress it into standard input "
                         "(for example: %s -dc FILE | relaywatch analyze -)", refused,
                      refused);
        break;
    case PLAIN:
        status = read_plain(r);
        break;
    }
out:
    if (r->fd >= 0 && !is_stdin)
        close(r->fd);
    free(r);
    return status;
}

int log_input_read(const struct log_file *file, log_input_line_fn *fn, void *arg,
                   char *err, size_t errlen)
{
    return read_file(file, fn, arg, 0, NULL, err, errlen);
}

struct first_scan {
    log_time_fn *first_time;
    void *arg;
    struct log_file *file;
};

static int scan_line(const struct log_input_line *line, void *arg)
{
    struct first_scan *s = arg;
    int64_t t;
    if (s->first_time(line, s->arg, &t) != 1)
        return 0;
    s->file->timed = true;
    s->file->first_time = t;
    return 1;
}

struct ordered {
    struct log_file file;
    size_t index; /* command-line position, for ties and untimed files */
};

/* Standard input, then timed files by time, then untimed ones. */
static int group(const struct log_file *f)
{
    return f->once ? 0 : f->timed ? 1 : 2;
}

static int compare_ordered(const void *a, const void *b)
{
    const struct ordered *x = a, *y = b;
    int gx = group(&x->file), gy = group(&y->file);
    if (gx != gy)
        return gx < gy ? -1 : 1;
    if (gx == 1 && x->file.first_time != y->file.first_time)
        return x->file.first_time < y->file.first_time ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index ? 1 : 0;
}

int log_input_order(const char *const *paths, size_t n, log_time_fn *first_time, void *arg,
                    struct log_file *files, char *err, size_t errlen)
{
    struct ordered *o = xcalloc(n ? n : 1, sizeof *o);
    bool seen_stdin = false;
    int status = 0;
    for (size_t i = 0; i < n && status == 0; i++) {
        struct log_file *f = &o[i].file;
        o[i].index = i;
        f->path = paths[i];
        if (strcmp(paths[i], "-") == 0) {
            if (seen_stdin) {
                snprintf(err, errlen, "standard input (-) named twice: it can be read once");
                status = -1;
                break;
            }
            seen_stdin = true;
            struct stat st;
            f->once = true;
            f->mtime = fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode) ? st.st_mtime
                                                                            : time(NULL);
            continue;
        }
        struct stat st;
        if (stat(paths[i], &st) == 0 && !S_ISREG(st.st_mode)) {
            /* What a scan read of a pipe or a FIFO would be gone when it is read for real. */
            f->once = true;
            f->mtime = time(NULL);
            continue;
        }
        struct first_scan s = {first_time, arg, f};
        status = read_file(f, scan_line, &s, LOG_ORDER_SCAN_LINES, &f->mtime, err, errlen);
    }
    if (status == 0) {
        qsort(o, n, sizeof *o, compare_ordered);
        for (size_t i = 0; i < n; i++)
            files[i] = o[i].file;
    }
    free(o);
    return status;
}

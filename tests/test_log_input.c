/*
 * log_input: files written to a temporary directory, plain and gzip (made here with zlib),
 * read back line by line: concatenated members, truncated and corrupt members named by file,
 * the content deciding the format whatever the name, refused bzip2/xz/zstd, CRLF, NUL bytes,
 * a 1 MiB line cut to the cap, empty files, standard input from a pipe, and the order by first
 * time under a fake time function ("T=<n>" at a line's start).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "log_input.h"

static char dir[64];

struct got {
    unsigned long lines, cut;
    char text[16][80]; /* the first lines, NUL-terminated copies (cut to fit) */
    size_t len[16];
    unsigned long number[16];
    size_t longest;
    unsigned long stop_after; /* 0: never stop */
};

static int collect(const struct log_input_line *line, void *arg)
{
    struct got *g = arg;
    if (g->lines < 16) {
        size_t n = line->len < 79 ? line->len : 79;
        memcpy(g->text[g->lines], line->text, n);
        g->text[g->lines][n] = '\0';
        g->len[g->lines] = line->len;
        g->number[g->lines] = line->number;
    }
    g->lines++;
    g->cut += line->cut;
    if (line->len > g->longest)
        g->longest = line->len;
    return g->stop_after && g->lines >= g->stop_after;
}

/* A file of a string literal's bytes, NUL bytes inside included. */
#define PUT(name, literal) put(name, literal, sizeof literal - 1)

static const char *put(const char *name, const void *data, size_t len)
{
    static char path[8][128];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, 128, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return p;
}

/* One gzip member holding data; *out_len its size; free() it. */
static unsigned char *gz(const void *data, size_t len, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, (uLong)len);
    unsigned char *out = malloc(cap);
    assert_non_null(out);
    z.next_in = (unsigned char *)(uintptr_t)data;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

static int read_path(const char *path, struct got *g, char *err, size_t errlen)
{
    struct log_file f = {.path = path};
    err[0] = '\0';
    return log_input_read(&f, collect, g, err, errlen);
}

static void expect_lines(const char *path, const char *const *want, size_t n)
{
    struct got g = {0};
    char err[512];
    assert_int_equal(read_path(path, &g, err, sizeof err), 0);
    assert_int_equal(g.lines, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(g.text[i], want[i]);
        assert_int_equal(g.number[i], i + 1);
    }
}

static void expect_error(const char *path, const char *what)
{
    struct got g = {0};
    char err[512];
    assert_int_equal(read_path(path, &g, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, what));
}

static const char *const abc[] = {"a", "bb", "", "ccc"};

static void plain_lines(void **state)
{
    (void)state;
    expect_lines(PUT("plain", "a\nbb\n\nccc"), abc, 4);
    expect_lines(PUT("plain2", "a\nbb\n\nccc\n"), abc, 4);
}

static void gzip_lines_magic_not_name(void **state)
{
    (void)state;
    size_t n;
    unsigned char *z = gz("a\nbb\n\nccc\n", 10, &n);
    expect_lines(put("messages", z, n), abc, 4);  /* gzip without .gz */
    expect_lines(PUT("mail.log.1.gz", "a\nbb\n\nccc\n"), abc, 4); /* .gz, plain */
    free(z);
}

static void concatenated_members(void **state)
{
    (void)state;
    size_t n1, n2, n3;
    unsigned char *z1 = gz("a\nb", 3, &n1), *z2 = gz("b2\nc\n", 5, &n2), *z3 = gz("", 0, &n3);
    unsigned char both[256];
    memcpy(both, z1, n1);
    memcpy(both + n1, z2, n2);
    memcpy(both + n1 + n2, z3, n3);
    const char *const want[] = {"a", "bb2", "c"};
    expect_lines(put("cat.gz", both, n1 + n2 + n3), want, 3);
    /* After a member, anything but another member is corruption, not the end. */
    memcpy(both + n1 + n2, "junk\n", 5);
    expect_error(put("junk.gz", both, n1 + n2 + 5), "member 3");
    free(z1);
    free(z2);
    free(z3);
}

/* Enough lines that the compressed data spans several reads. */
static char *many_lines(size_t *len)
{
    size_t cap = 1000000;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t at = 0;
    unsigned seed = 1;
    while (at + 64 < cap) {
        seed = seed * 1103515245u + 12345u;
        at += (size_t)sprintf(text + at, "Oct 12 05:30:%02u host postfix/smtpd[%u]: x\n",
                              seed % 60, seed >> 16);
    }
    *len = at;
    return text;
}

static void truncated_gzip(void **state)
{
    (void)state;
    size_t len, n;
    char *text = many_lines(&len);
    unsigned char *z = gz(text, len, &n);
    assert_true(n > 70000);
    expect_error(put("half.gz", z, n / 2), "truncated");
    expect_error(put("notrailer.gz", z, n - 4), "truncated");
    expect_error(put("header.gz", z, 5), "truncated");
    /* Truncated after a whole first member: still truncated, not a short result. */
    unsigned char *two = malloc(2 * n);
    assert_non_null(two);
    memcpy(two, z, n);
    memcpy(two + n, z, n);
    expect_error(put("second.gz", two, n + n / 3), "member 2");
    free(two);
    free(z);
    free(text);
}

static void corrupt_gzip(void **state)
{
    (void)state;
    size_t len, n;
    char *text = many_lines(&len);
    unsigned char *z = gz(text, len, &n);
    z[n - 6] ^= 0x55; /* the CRC-32 in the trailer */
    expect_error(put("crc.gz", z, n), "corrupt");
    z[n - 6] ^= 0x55;
    z[n / 2] ^= 0xff; /* the deflate data: a bad code or, at worst, the CRC */
    expect_error(put("middle.gz", z, n), "corrupt");
    free(z);
    free(text);
}

static void other_compressions_refused(void **state)
{
    (void)state;
    static const unsigned char xz[] = {0xfd, '7', 'z', 'X', 'Z', 0, 0, 4, 0xe6, 0xd6, 0xb4};
    static const unsigned char zst[] = {0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x05, 0x29, 0, 0, 'x'};
    expect_error(put("a.xz", xz, sizeof xz), "xz-compressed");
    expect_error(put("a.zst", zst, sizeof zst), "zstd-compressed");
    expect_error(PUT("a.bz2", "BZh91AY&SY\x12\x34"), "bzip2-compressed");
    /* Text that merely starts like bzip2 stays text. */
    const char *const want[] = {"BZh9 is not a header", "BZh91AY&Sx"};
    expect_lines(PUT("bzh", "BZh9 is not a header\n"), want, 1);
    expect_lines(PUT("bzh2", "BZh91AY&Sx\n"), want + 1, 1);
}

static void crlf_and_nul(void **state)
{
    (void)state;
    const char *const want[] = {"a", "b", "x\ry", "last"};
    expect_lines(PUT("crlf", "a\r\nb\r\nx\ry\r\nlast\r"), want, 4);
    struct got g = {0};
    char err[256];
    assert_int_equal(read_path(PUT("nul", "a\0b\n\0\n"), &g, err, sizeof err), 0);
    assert_int_equal(g.lines, 2);
    assert_int_equal(g.len[0], 3);
    assert_memory_equal(g.text[0], "a\0b", 3);
    assert_int_equal(g.len[1], 1);
}

static void long_lines(void **state)
{
    (void)state;
    size_t big = 1u << 20, at = 0;
    char *text = malloc(big + 3 * LOG_INPUT_LINE_MAX + 64);
    assert_non_null(text);
    at += (size_t)sprintf(text, "short\n");
    memset(text + at, 'x', big);
    at += big;
    text[at++] = '\n';
    memset(text + at, 'y', LOG_INPUT_LINE_MAX); /* exactly the cap: whole */
    at += LOG_INPUT_LINE_MAX;
    text[at++] = '\n';
    memset(text + at, 'z', LOG_INPUT_LINE_MAX + 1); /* one more: cut */
    at += LOG_INPUT_LINE_MAX + 1;
    at += (size_t)sprintf(text + at, "\nafter\n");
    size_t n;
    unsigned char *z = gz(text, at, &n);
    const char *paths[] = {put("long", text, at), put("long.gz", z, n)};
    for (int i = 0; i < 2; i++) {
        struct got g = {0};
        char err[256];
        assert_int_equal(read_path(paths[i], &g, err, sizeof err), 0);
        assert_int_equal(g.lines, 5);
        assert_int_equal(g.cut, 2);
        assert_string_equal(g.text[0], "short");
        assert_int_equal(g.len[1], LOG_INPUT_LINE_MAX);
        assert_int_equal(g.len[2], LOG_INPUT_LINE_MAX);
        assert_int_equal(g.len[3], LOG_INPUT_LINE_MAX);
        assert_string_equal(g.text[4], "after");
        assert_int_equal(g.number[4], 5);
    }
    /* A cut line at the very end, without its newline. */
    struct got g = {0};
    char err[256];
    assert_int_equal(read_path(put("longend", text + 6, big), &g, err, sizeof err), 0);
    assert_int_equal(g.lines, 1);
    assert_int_equal(g.cut, 1);
    free(z);
    free(text);
}

static void empty_and_missing(void **state)
{
    (void)state;
    size_t n;
    unsigned char *z = gz("", 0, &n);
    expect_lines(PUT("empty", ""), NULL, 0);
    expect_lines(put("empty.gz", z, n), NULL, 0);
    free(z);
    char missing[128];
    snprintf(missing, sizeof missing, "%s/no-such-file", dir);
    expect_error(missing, "No such file");
}

static void callback_stops(void **state)
{
    (void)state;
    struct got g = {.stop_after = 2};
    char err[256];
    assert_int_equal(read_path(PUT("stop", "1\n2\n3\n4\n"), &g, err, sizeof err), 0);
    assert_int_equal(g.lines, 2);
}

/* Standard input from a pipe, gzip: read once; its mtime is now. */
static void standard_input(void **state)
{
    (void)state;
    size_t n;
    unsigned char *z = gz("one\ntwo\n", 8, &n);
    int p[2], saved = dup(0);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], z, n), (ssize_t)n);
    close(p[1]);
    assert_int_equal(dup2(p[0], 0), 0);
    close(p[0]);

    const char *paths[] = {"-"};
    struct log_file files[1];
    char err[256];
    time_t before = time(NULL);
    assert_int_equal(log_input_order(paths, 1, NULL, NULL, files, err, sizeof err), 0);
    assert_true(files[0].mtime >= before && files[0].mtime <= time(NULL));
    struct got g = {0};
    assert_int_equal(log_input_read(&files[0], collect, &g, err, sizeof err), 0);
    assert_int_equal(g.lines, 2);
    assert_string_equal(g.text[1], "two");

    const char *twice[] = {"-", "-"};
    struct log_file two[2];
    assert_int_equal(log_input_order(twice, 2, NULL, NULL, two, err, sizeof err), -1);
    assert_non_null(strstr(err, "twice"));
    assert_int_equal(dup2(saved, 0), 0);
    close(saved);
    free(z);
}

/* "T=<n>" at the start of a line is a time; nothing else is. */
static int fake_time(const struct log_input_line *line, void *arg, int64_t *t)
{
    (*(int *)arg)++;
    if (line->len < 3 || memcmp(line->text, "T=", 2) != 0)
        return 0;
    char digits[24];
    size_t n = line->len - 2 < 23 ? line->len - 2 : 23;
    memcpy(digits, line->text + 2, n);
    digits[n] = '\0';
    *t = strtoll(digits, NULL, 10);
    return 1;
}

/* A FIFO named as a path (what `<(zcat mail.log.2.gz)` hands over as /dev/fd/N) is read
 * once: not looked into when ordering (those bytes would be gone), first, and every line of it
 * delivered when read. */
static void order_fifo_read_once(void **state)
{
    (void)state;
    char fifo[128];
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    pid_t writer = fork();
    assert_true(writer >= 0);
    if (writer == 0) {
        /* Blocks in open until the reader comes: ordering must not open it. */
        FILE *f = fopen(fifo, "w");
        if (f == NULL)
            _exit(1);
        fputs("T=500 one\nT=501 two\nT=502 three\n", f);
        _exit(fclose(f) == 0 ? 0 : 1);
    }
    const char *paths[] = {PUT("early", "T=1 early\n"), fifo};
    struct log_file files[2];
    char err[256];
    int calls = 0;
    assert_int_equal(log_input_order(paths, 2, fake_time, &calls, files, err, sizeof err), 0);
    assert_string_equal(files[0].path, fifo);
    assert_true(files[0].once);
    assert_false(files[0].timed);
    assert_int_equal(calls, 1); /* only the regular file was looked into */
    struct got g = {0};
    assert_int_equal(log_input_read(&files[0], collect, &g, err, sizeof err), 0);
    assert_int_equal(g.lines, 3);
    assert_string_equal(g.text[0], "T=500 one");
    int status;
    assert_int_equal(waitpid(writer, &status, 0), writer);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    unlink(fifo);
}

static void order_by_first_time(void **state)
{
    (void)state;
    size_t n;
    unsigned char *z = gz("T=200 d\n", 8, &n);
    const char *paths[] = {
        PUT("a", "T=300 a\nT=1 later\n"),
        PUT("b", "no time\nnone here\n"),
        PUT("c", "no time\nT=100 c\n"),
        put("d.gz", z, n),
        PUT("e", "T=100 e\n"),
        PUT("f", ""),
        "-",
        PUT("g", "T=-5 g\n"),
    };
    /* A known mtime, for the year of year-less lines. */
    struct timeval tv[2] = {{1065916800, 0}, {1065916800, 0}};
    assert_int_equal(utimes(paths[0], tv), 0);

    struct log_file files[8];
    char err[256];
    int calls = 0;
    assert_int_equal(log_input_order(paths, 8, fake_time, &calls, files, err, sizeof err), 0);
    const char *want[] = {"-", paths[7], paths[2], paths[4], paths[3], paths[0], paths[1],
                          paths[5]};
    for (int i = 0; i < 8; i++)
        assert_string_equal(files[i].path, want[i]);
    assert_int_equal(files[5].mtime, 1065916800);
    assert_true(files[1].timed && files[1].first_time == -5);
    assert_false(files[6].timed);
    /* The first timed line decides: a's second line was never asked about. */
    assert_int_equal(calls, 1 + 2 + 2 + 1 + 1 + 0 + 1);
    free(z);

    /* A corrupt file is named while ordering, before anything is counted. */
    const char *bad[] = {paths[0], PUT("bad.gz", "\x1f\x8b\x08\x00")};
    assert_int_equal(log_input_order(bad, 2, fake_time, &calls, files, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad.gz"));
}

/* Only the first LOG_ORDER_SCAN_LINES lines are looked at for a time. */
static void order_scan_is_bounded(void **state)
{
    (void)state;
    size_t cap = (LOG_ORDER_SCAN_LINES + 1) * 2 + 16, at = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    for (int i = 0; i < LOG_ORDER_SCAN_LINES - 1; i++) {
        text[at++] = '-';
        text[at++] = '\n';
    }
    memcpy(text + at, "T=7\n", 4);
    const char *paths[] = {NULL, put("last-scanned", text, at + 4)};
    text[at] = '-';
    text[at + 1] = '\n';
    memcpy(text + at + 2, "T=7\n", 4);
    paths[0] = put("beyond", text, at + 6);
    struct log_file files[2];
    char err[256];
    int calls = 0;
    assert_int_equal(log_input_order(paths, 2, fake_time, &calls, files, err, sizeof err), 0);
    assert_string_equal(files[0].path, paths[1]);
    assert_true(files[0].timed);
    assert_false(files[1].timed);
    assert_int_equal(calls, 2 * LOG_ORDER_SCAN_LINES);
    free(text);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/log_input.XXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_lines),
        cmocka_unit_test(gzip_lines_magic_not_name),
        cmocka_unit_test(concatenated_members),
        cmocka_unit_test(truncated_gzip),
        cmocka_unit_test(corrupt_gzip),
        cmocka_unit_test(other_compressions_refused),
        cmocka_unit_test(crlf_and_nul),
        cmocka_unit_test(long_lines),
        cmocka_unit_test(empty_and_missing),
        cmocka_unit_test(callback_stops),
        cmocka_unit_test(standard_input),
        cmocka_unit_test(order_by_first_time),
        cmocka_unit_test(order_fifo_read_once),
        cmocka_unit_test(order_scan_is_bounded),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return failed;
}

/*
 * postsuper_runner: the privileged part refuses whatever is not "h" or "r" and Postfix queue
 * IDs, and what it refuses never reaches postsuper.
 *
 * The request check and the reading of postsuper's output are pure and tested as such
 * (postsuper's output lines as Postfix 3.7 prints them: see ../shared/notes/real-servers.md).
 * Then the runner itself, forked as relaywatchd forks it, is given requests over its socket;
 * to see what reaches "postsuper" it runs a recording script in its place (the real
 * postsuper is run by tests/e2e/quarantine_e2e.py against a real Postfix queue).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "postsuper_runner.h"
#include "quarantine.h"

static bool check(const char *s)
{
    char op;
    unsigned n;
    const char *why = NULL;
    bool ok = postsuper_request_check(s, strlen(s), &op, &n, &why);

    assert_true(ok || why != NULL);
    return ok;
}

static void test_request_check(void **state)
{
    char op = 0;
    unsigned n = 0;
    const char *why;
    static const char *const refused[] = {
        "",                       /* empty */
        "h",                      /* no ID */
        "h ",                     /* empty ID */
        "x 14E9AA766D1",          /* not hold or release */
        "d 14E9AA766D1",          /* delete is not the runner's */
        "H 14E9AA766D1",          /* postsuper's letter, not ours */
        "h  14E9AA766D1",         /* two spaces */
        "h 14E9AA766D1 ",         /* a space at the end */
        "h 14E9AA766D1\n",        /* a line end */
        "h ALL",                  /* the whole queue */
        "r ALL",
        "h -d",                   /* options */
        "h -c",
        "h --",
        "h -",                    /* postsuper's "read standard input" */
        "h /etc/passwd",          /* paths */
        "h ../../../etc/shadow",
        "h deferred/1/14E9AA766D1",
        "h alice@example.com",    /* names */
        "h zombie",
        "h mail.example.com",
        "h 14e9aa766d1",          /* lower-case hex: not a short ID */
        "h 14E9AA766D1 ALL",      /* one bad ID refuses the whole request */
        "h 14E9AA766D1,31558A766D1",
        "h\t14E9AA766D1",
        "hh 14E9AA766D1",
    };

    (void)state;
    assert_true(postsuper_request_check("h 14E9AA766D1", 13, &op, &n, &why));
    assert_int_equal(op, 'h');
    assert_int_equal(n, 1);
    assert_true(postsuper_request_check("r 14E9AA766D1 4jjlNN6lMqz1bhJ7 31558A766D1", 42, &op, &n,
                                        &why));
    assert_int_equal(op, 'r');
    assert_int_equal(n, 3);
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        if (check(refused[i]))
            fail_msg("accepted '%s'", refused[i]);
    /* A NUL inside (two literals: "\0" then "766D1", not the octal escape "\076"). */
    assert_false(postsuper_request_check("h 14E9AA\0" "766D1", 14, &op, &n, &why));
    /* Overlong: QUARANTINE_BATCH IDs pass, one more does not; nor does a request over the
     * size limit. */
    {
        char *big = malloc(POSTSUPER_REQUEST_MAX * 2);
        size_t len = 1;

        assert_non_null(big);
        big[0] = 'h';
        for (unsigned i = 0; i < QUARANTINE_BATCH; i++)
            len += (size_t)sprintf(big + len, " %05XA766D1", 0x10000 + i);
        assert_true(postsuper_request_check(big, len, &op, &n, &why));
        assert_int_equal(n, QUARANTINE_BATCH);
        len += (size_t)sprintf(big + len, " 14E9AA766D1");
        assert_false(postsuper_request_check(big, len, &op, &n, &why));
        memset(big, 'A', POSTSUPER_REQUEST_MAX + 1);
        big[0] = 'h';
        big[1] = ' ';
        assert_false(postsuper_request_check(big, POSTSUPER_REQUEST_MAX + 1, &op, &n, &why));
        assert_string_equal(why, "request too long");
        free(big);
    }
}

static void test_output_done(void **state)
{
    /* postsuper's stderr as it prints it (msg_vstream "postsuper: ..."). */
    static const char output[] = "postsuper: 14E9AA766D1: placed on hold\n"
                                 "postsuper: 31558A766D1: placed on hold\n"
                                 "postsuper: warning: invalid mail queue id: foo\n"
                                 "postsuper: 99999A766D1: placed on hold\n" /* not asked */
                                 "postsuper: Placed on hold: 3 messages\n";
    static const char released[] = "postsuper: 14E9AA766D1: released from hold\n"
                                   "postsuper: Released from hold: 1 message\n";
    static const char request[] = "h 14E9AA766D1 31558A766D1 48483A766D1";
    char out[256];

    (void)state;
    assert_int_equal(postsuper_output_done(output, strlen(output), 'h', request, strlen(request),
                                           out, sizeof(out)),
                     2);
    assert_string_equal(out, "14E9AA766D1 31558A766D1");
    /* A release's lines are not a hold's, and the other way round. */
    assert_int_equal(postsuper_output_done(released, strlen(released), 'h', request,
                                           strlen(request), out, sizeof(out)),
                     0);
    assert_int_equal(postsuper_output_done(released, strlen(released), 'r', request,
                                           strlen(request), out, sizeof(out)),
                     1);
    assert_string_equal(out, "14E9AA766D1");
    /* No room: nothing half written. */
    assert_int_equal(postsuper_output_done(output, strlen(output), 'h', request, strlen(request),
                                           out, 5),
                     0);
    assert_string_equal(out, "");
}

/* ------------------------------------------------------- the runner itself */

static char dir[] = "/tmp/test_postsuper_runner-XXXXXX";
static char script[256], record[256];

/* A stand-in for postsuper that records its arguments and input, and answers as postsuper
 * does for every ID it is given. */
static void write_script(void)
{
    FILE *f;

    snprintf(script, sizeof(script), "%s/postsuper", dir);
    snprintf(record, sizeof(record), "%s/record", dir);
    f = fopen(script, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\n"
               "echo \"args: $*\" >> %s\n"
               "while read id; do echo \"id: $id\" >> %s;"
               " if [ \"$3\" = -h ]; then echo \"postsuper: $id: placed on hold\" >&2;"
               " else echo \"postsuper: $id: released from hold\" >&2; fi; done\n"
               "exit 0\n",
            record, record);
    fclose(f);
    chmod(script, 0755);
}

static void ask(int fd, const char *req, size_t len, char *answer, size_t alen)
{
    ssize_t got;

    assert_int_equal(send(fd, req, len, 0), (ssize_t)len);
    got = recv(fd, answer, alen - 1, 0);
    assert_true(got > 0);
    answer[got] = '\0';
}

static bool recorded(void)
{
    struct stat st;

    return stat(record, &st) == 0;
}

static void test_runner(void **state)
{
    int fd = -1, status;
    char err[256], answer[POSTSUPER_ANSWER_MAX], text[4096];
    pid_t pid;
    FILE *f;
    size_t n;
    static const char *const refused[] = {"h ALL", "h -d", "h /etc/passwd", "h alice", "h ",
                                          "",      "x 14E9AA766D1", "h 14E9AA766D1 -c /tmp"};

    (void)state;
    assert_non_null(mkdtemp(dir));
    write_script();
    pid = postsuper_runner_start(script, "/etc/postfix-second", &fd, err, sizeof(err));
    assert_true(pid > 0);

    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        /* An empty datagram is a valid SEQPACKET message: refused like the others. */
        ask(fd, refused[i], strlen(refused[i]), answer, sizeof(answer));
        if (strncmp(answer, "refused: ", 9) != 0)
            fail_msg("'%s' answered '%s'", refused[i], answer);
    }
    ask(fd, "h 14E9AA\0" "766D1", 14, answer, sizeof(answer));
    assert_string_equal(answer, "refused: NUL byte in the request");
    {
        char *big = malloc(POSTSUPER_REQUEST_MAX + 100);

        assert_non_null(big);
        memset(big, 'A', POSTSUPER_REQUEST_MAX + 100);
        big[0] = 'h';
        big[1] = ' ';
        ask(fd, big, POSTSUPER_REQUEST_MAX + 100, answer, sizeof(answer));
        assert_string_equal(answer, "refused: request too long");
        free(big);
    }
    /* Nothing refused reached the program. */
    assert_false(recorded());

    ask(fd, "h 14E9AA766D1 4jjlNN6lMqz1bhJ7", 30, answer, sizeof(answer));
    assert_string_equal(answer, "ok 14E9AA766D1 4jjlNN6lMqz1bhJ7");
    ask(fd, "r 14E9AA766D1", 13, answer, sizeof(answer));
    assert_string_equal(answer, "ok 14E9AA766D1");
    f = fopen(record, "r");
    assert_non_null(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    /* Its configuration directory fixed at start, the IDs on standard input, one a line. */
    assert_string_equal(text, "args: -c /etc/postfix-second -h -\n"
                              "id: 14E9AA766D1\n"
                              "id: 4jjlNN6lMqz1bhJ7\n"
                              "args: -c /etc/postfix-second -H -\n"
                              "id: 14E9AA766D1\n");

    /* A program that fails is reported, not taken for success. */
    {
        FILE *s = fopen(script, "w");

        assert_non_null(s);
        fprintf(s, "#!/bin/sh\necho 'postsuper: fatal: no such directory' >&2\nexit 1\n");
        fclose(s);
    }
    ask(fd, "h 14E9AA766D1", 13, answer, sizeof(answer));
    assert_true(strncmp(answer, "failed: ", 8) == 0);
    assert_non_null(strstr(answer, "no such directory"));
    /* One that held one message and then failed: what it did is said, not lost. */
    {
        FILE *s = fopen(script, "w");

        assert_non_null(s);
        fprintf(s, "#!/bin/sh\nread id\necho \"postsuper: $id: placed on hold\" >&2\n"
                   "echo 'postsuper: fatal: out of memory' >&2\nexit 1\n");
        fclose(s);
    }
    ask(fd, "h 14E9AA766D1 31558A766D1", 25, answer, sizeof(answer));
    assert_string_equal(answer, "ok 14E9AA766D1");

    /* The runner goes when the daemon's end shuts down for writing (no busy loop on the
     * zero-length reads that follow), or closes. */
    shutdown(fd, SHUT_WR);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(fd);
    pid = postsuper_runner_start(script, "/etc/postfix-second", &fd, err, sizeof(err));
    assert_true(pid > 0);
    close(fd);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    unlink(script);
    unlink(record);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_check),
        cmocka_unit_test(test_output_done),
        cmocka_unit_test(test_runner),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

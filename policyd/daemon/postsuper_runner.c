/*
 * postsuper_runner: the privileged part that runs postsuper on checked
 * queue IDs.  See the header.
 */
#include "postsuper_runner.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "quarantine.h"
#include "queue_id.h"

#define OUTPUT_MAX (1024 * 1024) /* postsuper's output read; the rest is drained unread */

bool postsuper_request_check(const char *buf, size_t len, char *op, unsigned *count,
                             const char **why)
{
    unsigned n = 0;

    if (len == 0) {
        *why = "empty request";
        return false;
    }
    if (len > POSTSUPER_REQUEST_MAX) {
        *why = "request too long";
        return false;
    }
    if ((buf[0] != 'h' && buf[0] != 'r') || len < 2 || buf[1] != ' ') {
        *why = "not a hold (h) or release (r) request";
        return false;
    }
    for (size_t i = 2; i <= len;) {
        size_t w = 0;

        while (i + w < len && buf[i + w] != ' ')
            w++;
        /* An empty word: a space at the end, two in a row, nothing after the op. */
        if (!queue_id_valid(buf + i, w)) {
            *why = "not a Postfix queue ID";
            return false;
        }
        if (++n > QUARANTINE_BATCH) {
            *why = "too many queue IDs";
            return false;
        }
        i += w + 1;
    }
    *op = buf[0];
    *count = n;
    return true;
}

unsigned postsuper_output_done(const char *output, size_t len, char op, const char *request,
                               size_t request_len, char *out, size_t outlen)
{
    const char *tail = op == 'h' ? ": placed on hold" : ": released from hold";
    size_t tl = strlen(tail), n = 0;
    unsigned done = 0;

    if (outlen > 0)
        out[0] = '\0';
    for (size_t i = 0; i < len;) {
        const char *line = output + i;
        const char *nl = memchr(line, '\n', len - i);
        size_t l = nl ? (size_t)(nl - line) : len - i;
        const char *id;
        size_t idl;

        i += l + 1;
        /* "postsuper: ID: placed on hold" (the program name as invoked, then ": "). */
        if (l < tl || memcmp(line + l - tl, tail, tl) != 0)
            continue;
        l -= tl;
        id = memchr(line, ' ', l);
        if (id == NULL || id == line || id[-1] != ':')
            continue;
        id++;
        idl = (size_t)(line + l - id);
        if (!queue_id_valid(id, idl) || request_len < 2 ||
            !queue_id_listed(request + 2, request_len - 2, id, idl) ||
            n + idl + 2 > outlen)
            continue;
        if (n > 0)
            out[n++] = ' ';
        memcpy(out + n, id, idl);
        n += idl;
        out[n] = '\0';
        done++;
    }
    return done;
}

/* ---------------------------------------------------------- the runner */

static void answer(int fd, const char *text)
{
    if (send(fd, text, strlen(text), MSG_NOSIGNAL) < 0)
        log_error("postsuper runner: cannot answer the daemon: %s", strerror(errno));
}

/*
 * Run postsuper on the request's IDs; its output (stdout and stderr) into output.  false
 * when it did not run, or failed (why says how); its output is there either way, so that
 * what it did before failing is known.
 */
static bool run_postsuper(const char *postsuper, const char *config_directory, char op,
                          const char *ids, size_t ids_len, char *output, size_t *output_len,
                          char *why, size_t whylen)
{
    int in[2], outp[2], status = 0;
    pid_t waited;
    pid_t pid;
    size_t n = 0;
    char dir[1100];
    char *const argv[] = {"postsuper", "-c", dir, op == 'h' ? "-h" : "-H", "-", NULL};
    char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};

    snprintf(dir, sizeof(dir), "%s", config_directory);
    if (pipe2(in, O_CLOEXEC) < 0) {
        snprintf(why, whylen, "pipe: %s", strerror(errno));
        return false;
    }
    if (pipe2(outp, O_CLOEXEC) < 0) {
        snprintf(why, whylen, "pipe: %s", strerror(errno));
        close(in[0]);
        close(in[1]);
        return false;
    }
    pid = fork();
    if (pid < 0) {
        snprintf(why, whylen, "fork: %s", strerror(errno));
        close(in[0]);
        close(in[1]);
        close(outp[0]);
        close(outp[1]);
        return false;
    }
    if (pid == 0) {
        sigset_t none;

        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        dup2(in[0], 0);
        dup2(outp[1], 1);
        dup2(outp[1], 2);
        /* A pending alarm survives execve: a postsuper that hangs is killed. */
        alarm(POSTSUPER_TIMEOUT);
        execve(postsuper, argv, envp);
        _exit(127);
    }
    close(in[0]);
    close(outp[1]);
    {
        /* One ID a line, written at once: a request (16 KiB at most) fits the pipe of a root
         * process (64 KiB), so this does not wait for postsuper's output to be read. */
        char lines[POSTSUPER_REQUEST_MAX + 1];
        size_t off = 0;

        for (size_t i = 0; i < ids_len && i < POSTSUPER_REQUEST_MAX; i++)
            lines[i] = ids[i] == ' ' ? '\n' : ids[i];
        lines[ids_len < POSTSUPER_REQUEST_MAX ? ids_len : POSTSUPER_REQUEST_MAX] = '\n';
        while (off < ids_len + 1) {
            ssize_t w = write(in[1], lines + off, ids_len + 1 - off);

            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break; /* postsuper exited early: its status says why */
            off += (size_t)w;
        }
    }
    close(in[1]);
    for (;;) {
        char buf[4096];
        ssize_t r = read(outp[0], buf, sizeof(buf));

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r && n + 1 < OUTPUT_MAX; i++)
            output[n++] = buf[i];
    }
    close(outp[0]);
    output[n] = '\0';
    *output_len = n;
    while ((waited = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    if (waited != pid) {
        snprintf(why, whylen, "waitpid: %s", strerror(errno));
        return false;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        snprintf(why, whylen, "cannot run %s", postsuper);
        return false;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        const char *last = n > 0 ? output : "no output";

        snprintf(why, whylen, "%s %s: %s%d: %.300s", postsuper, op == 'h' ? "-h" : "-H",
                 WIFEXITED(status) ? "exit " : "signal ",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), last);
        return false;
    }
    return true;
}

/* recv gave 0: the end of the daemon's side (closed, or shut down for writing), or an
 * empty datagram. */
static bool peer_gone(int fd)
{
    struct pollfd p = {fd, POLLIN | POLLRDHUP, 0};

    return poll(&p, 1, 0) != 0 && (p.revents & (POLLHUP | POLLERR | POLLRDHUP)) != 0;
}

static void serve(int fd, const char *postsuper, const char *config_directory)
{
    char *request = malloc(POSTSUPER_REQUEST_MAX + 1);
    char *output = malloc(OUTPUT_MAX);
    char *reply = malloc(POSTSUPER_ANSWER_MAX);

    if (request == NULL || output == NULL || reply == NULL)
        _exit(1);
    for (;;) {
        ssize_t got = recv(fd, request, POSTSUPER_REQUEST_MAX + 1, 0);
        const char *why = NULL;
        char op = 0, fail[512];
        unsigned count = 0, done;
        size_t out_len = 0, n;
        bool ran;

        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 || (got == 0 && peer_gone(fd)))
            _exit(0); /* the daemon is gone */
        if (got == 0) {
            why = "empty request"; /* a datagram of no bytes, not the end */
        } else if (memchr(request, '\0', (size_t)got) != NULL) {
            why = "NUL byte in the request";
        } else if (!postsuper_request_check(request, (size_t)got, &op, &count, &why)) {
            /* why is set */
        }
        if (why != NULL) {
            log_error("postsuper runner: refused a request of %zd bytes from the daemon: %s",
                      got, why);
            snprintf(reply, POSTSUPER_ANSWER_MAX, "refused: %s", why);
            answer(fd, reply);
            continue;
        }
        out_len = 0;
        output[0] = '\0';
        ran = run_postsuper(postsuper, config_directory, op, request + 2, (size_t)got - 2,
                            output, &out_len, fail, sizeof(fail));
        n = (size_t)snprintf(reply, POSTSUPER_ANSWER_MAX, "ok");
        done = postsuper_output_done(output, out_len, op, request, (size_t)got, reply + n + 1,
                                     POSTSUPER_ANSWER_MAX - n - 1);
        if (!ran) {
            log_error("postsuper runner: %s (%u of its %u queue IDs done before)", fail, done,
                      count);
            /* What it did before failing is said, so that no hold goes unrecorded. */
            if (done == 0) {
                snprintf(reply, POSTSUPER_ANSWER_MAX, "failed: %s", fail);
                answer(fd, reply);
                continue;
            }
        }
        if (done > 0)
            reply[n] = ' ';
        answer(fd, reply);
    }
}

pid_t postsuper_runner_start(const char *postsuper, const char *config_directory, int *fd,
                             char *err, size_t errlen)
{
    int sv[2];
    pid_t pid, parent = getpid();

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(err, errlen, "postsuper runner: socketpair: %s", strerror(errno));
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "postsuper runner: fork: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        close(sv[0]);
        /* Gone with the daemon, whatever way it ends. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        signal(SIGPIPE, SIG_IGN);
        signal(SIGCHLD, SIG_DFL); /* inherited SIG_IGN would make waitpid fail */
        serve(sv[1], postsuper, config_directory);
        _exit(0);
    }
    close(sv[1]);
    *fd = sv[0];
    return pid;
}

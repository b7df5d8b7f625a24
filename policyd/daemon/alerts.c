/*
 * alerts: alert_command run with an incident's JSON (views.h) on its standard input.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "config.h"
#include "log.h"
#include "views.h"
#include "xalloc.h"

extern char **environ;

static void alert_child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    struct daemon_state *d = w->data;

    (void)revents;
    ev_child_stop(loop, w);
    if (!WIFEXITED(w->rstatus) || WEXITSTATUS(w->rstatus) != 0) {
        d->alerts_failed++;
        log_error("alert_command (pid %d) failed: %s %d", w->rpid,
                  WIFEXITED(w->rstatus) ? "exit status" : "signal",
                  WIFEXITED(w->rstatus) ? WEXITSTATUS(w->rstatus) : WTERMSIG(w->rstatus));
    }
    free(w);
}

/*
 * Hand an incident to alert_command (sh -c) with its JSON on standard input.  The
 * JSON (a few kB; some 30 kB with 16 culprits of escaped 255-byte names) fits a pipe's
 * buffer, so writing it never blocks; the child is
 * reaped on the loop.
 */
void run_alert(struct daemon_state *d, const struct defense_alert *alert)
{
    const char *cmd = d->cfg->alert_command;
    char sh[] = "/bin/sh", dash_c[] = "-c";
    char *argv[] = {sh, dash_c, NULL, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t sigs;
    int fds[2];
    pid_t pid;
    int rc;
    ev_child *child;
    char *json;

    if (cmd[0] == '\0')
        return;
    if (pipe2(fds, O_CLOEXEC) != 0) {
        d->alerts_failed++;
        log_error("alert_command: cannot make a pipe: %s", strerror(errno));
        return;
    }
    argv[2] = xstrdup(cmd);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
    /* The command starts with default signal handling (the daemon ignores SIGPIPE) and
     * nothing blocked. */
    posix_spawnattr_init(&attr);
    sigemptyset(&sigs);
    posix_spawnattr_setsigmask(&attr, &sigs);
    sigaddset(&sigs, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &sigs);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    free(argv[2]);
    close(fds[0]);
    if (rc != 0) {
        close(fds[1]);
        d->alerts_failed++;
        log_error("alert_command: cannot run %s: %s", cmd, strerror(rc));
        return;
    }
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    json = view_alert(alert);
    {
        ssize_t n = write(fds[1], json, strlen(json));

        if (n < 0 && errno == EPIPE)
            log_warning("alert_command: the command did not read the incident (it exited)");
        else if (n != (ssize_t)strlen(json))
            log_error("alert_command: the incident did not fit the pipe; the command gets "
                      "part of it");
    }
    free(json);
    close(fds[1]);
    d->alerts_run++;
    child = xcalloc(1, sizeof(*child));
    ev_child_init(child, alert_child_cb, pid, 0);
    child->data = d;
    ev_child_start(d->loop, child);
}


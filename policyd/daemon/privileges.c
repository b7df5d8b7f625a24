/*
 * privileges: giving up root at start; the postsuper runner, forked first, keeps it.
 */
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "postsuper_runner.h"
#include "privsep.h"

/* The start is refused: say why on stderr and in the log. */
static bool refuse_start(const char *err, bool to_stderr)
{
    fprintf(stderr, "relaywatchd: %s\n", err);
    if (!to_stderr)
        log_error("%s", err);
    return false;
}

/*
 * Started as root: fork the postsuper runner (the only part that keeps root) when the
 * quarantine is on, open the control socket, then become cfg->user for good.  Not root:
 * nothing to give up, nothing can be held, and the control socket is opened as we are.  false (the reason on stderr and in the log): do not start.
 */
bool give_up_root(struct daemon_state *d, const char *config_file, bool to_stderr)
{
    const struct config *c = d->cfg;
    char err[512], main_cf[1200];
    const char *fallback;

    d->runner_fd = -1;
    if (!c->quarantine) {
        snprintf(d->runner_unavailable, sizeof(d->runner_unavailable), "quarantine = no");
    } else if (geteuid() != 0) {
        snprintf(d->runner_unavailable, sizeof(d->runner_unavailable),
                 "relaywatchd was not started as root: postsuper cannot be run");
    }
    if (geteuid() != 0)
        return open_control_socket(d, to_stderr);
    /* What root reads must be root's alone: a file the daemon's user could write would hand
     * it root's choices (the user to become, the Postfix instance postsuper reads) at the
     * next start. */
    if (config_file != NULL && !privsep_root_only(config_file, false, err, sizeof(err)))
        return refuse_start(err, to_stderr);
    snprintf(main_cf, sizeof(main_cf), "%s/main.cf", c->postfix_config_directory);
    if (c->quarantine && (!privsep_root_only(c->postfix_config_directory, true, err, sizeof(err)) ||
                          !privsep_root_only(main_cf, false, err, sizeof(err)))) {
        snprintf(d->runner_unavailable, sizeof(d->runner_unavailable),
                 "postfix_config_directory: %.200s", err);
    } else if (c->quarantine) {
        d->runner_pid = postsuper_runner_start(POSTSUPER_PATH, c->postfix_config_directory,
                                               &d->runner_fd, err, sizeof(err));
        if (d->runner_pid < 0) {
            log_error("quarantine: %s: nothing can be held", err);
            snprintf(d->runner_unavailable, sizeof(d->runner_unavailable), "%.200s", err);
            d->runner_fd = -1;
        }
    }
    /* After the runner is forked (it must not hold the listening control socket as root),
     * before root is given up (root makes the socket, with control_group). */
    if (!open_control_socket(d, to_stderr))
        return false;
    /* The built-in user may not exist on a fresh machine: nobody then, said in the log. */
    fallback = c->origin[CK_USER].source == NULL ? "nobody" : NULL;
    if (!privsep_become(c->user, fallback, d->runs_as, sizeof(d->runs_as), err, sizeof(err)))
        return refuse_start(err, to_stderr);
    /* Said once started (log_privileges): a start that fails says one line only. */
    return true;
}

void log_privileges(const struct daemon_state *d)
{
    const struct config *c = d->cfg;

    /* Said once started, like the rest: a start that fails says one line only. */
    if (d->control_unavailable[0] != '\0')
        log_warning("%s: relaywatch block and release with store = memory are off until "
                    "control_socket is set where it can be made", d->control_unavailable);

    if (d->runs_as[0] == '\0') {
        if (c->quarantine)
            log_warning("quarantine: %s: nothing can be held", d->runner_unavailable);
        return;
    }
    if (strncmp(d->runs_as, c->user, strlen(c->user)) != 0 || d->runs_as[strlen(c->user)] != ' ')
        log_warning("user %s does not exist: running as %s (create it: useradd --system "
                    "--no-create-home --shell /usr/sbin/nologin %s)",
                    c->user, d->runs_as, c->user);
    if (d->runner_fd >= 0)
        log_info("gave up root: running as %s; the postsuper runner (pid %d) keeps root for "
                 "postsuper -h/-H only",
                 d->runs_as, (int)d->runner_pid);
    else
        log_warning("gave up root: running as %s; no postsuper runner, so nothing queued before a "
                    "stop can be held: %s",
                    d->runs_as, d->runner_unavailable);
}


bool open_control_socket(struct daemon_state *d, bool to_stderr)
{
    const struct config *c = d->cfg;
    const struct endpoint *ep = c->control_socket;
    char err[512];

    d->control_fd = -1;
    d->control_gid = (gid_t)-1;
    if (ep == NULL)
        return true;
    if (c->control_group[0] != '\0') {
        const char *g = c->control_group;
        char *end;
        unsigned long n = strtoul(g, &end, 10);
        struct group *gr;

        if (*end == '\0' && end != g) {
            d->control_gid = (gid_t)n;
        } else if ((gr = getgrnam(g)) != NULL) {
            d->control_gid = gr->gr_gid;
        } else {
            snprintf(err, sizeof(err), "control_group: no group '%s'", g);
            return refuse_start(err, to_stderr);
        }
    }
    d->control_fd = http_control_open(ep, d->control_gid, err, sizeof(err));
    if (d->control_fd >= 0)
        return true;
    /* The default must not stop a daemon started without the unit's /run/relaywatch. */
    if (c->origin[CK_CONTROL_SOCKET].source == NULL) {
        snprintf(d->control_unavailable, sizeof(d->control_unavailable), "%.300s", err);
        return true;
    }
    return refuse_start(err, to_stderr);
}

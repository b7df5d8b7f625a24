/*
 * relaywatch: the operator's program.
 *
 *   relaywatch status [-c FILE] [-o NAME=VALUE]... [--json]
 *   relaywatch feed [-c FILE] [-o NAME=VALUE]... [--follow] FILE|-
 *   relaywatch feed [-c FILE] [-o NAME=VALUE]... --syslog-udp HOST:PORT
 *   relaywatch list [-c FILE] [-o NAME=VALUE]... [--json]
 *   relaywatch block [-c FILE] [-o NAME=VALUE]... KIND:KEY [DURATION]
 *   relaywatch release [-c FILE] [-o NAME=VALUE]... KIND:KEY
 *   relaywatch analyze [-c FILE] [-o NAME=VALUE]... [--maillog FILE]... [--querylog FILE]...
 *                      [--mx-client IP]... [--by day|hour|minute] [--from TIME] [--to TIME]
 *                      [--year YYYY] [--backtest] [--json | --csv] [--svg FILE]
 *   relaywatch --help
 *
 * status asks the running relaywatchd over its http_listen endpoint
 * (GET /status, or GET /status?format=text for the person view) and
 * prints the answer.  The configuration is read as relaywatchd reads it,
 * so both agree on where the daemon listens.
 *
 * Exit status: 0 when the daemon answered 200; 1 when it cannot be
 * reached or answered something else (one line on stderr); 2 for a bad
 * command line or configuration.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyze.h"
#include "config.h"
#include "daemon_http.h"
#include "feed.h"
#include "throttle_commands.h"

#define MAX_OVERRIDES 256

static const char usage_text[] =
    "usage: relaywatch status [-c FILE] [-o NAME=VALUE]... [--json]\n"
    "       relaywatch feed [-c FILE] [-o NAME=VALUE]... [--follow] FILE|-\n"
    "       relaywatch feed [-c FILE] [-o NAME=VALUE]... --syslog-udp HOST:PORT\n"
    "       relaywatch list [-c FILE] [-o NAME=VALUE]... [--json]\n"
    "       relaywatch block [-c FILE] [-o NAME=VALUE]... KIND:KEY [DURATION]\n"
    "       relaywatch release [-c FILE] [-o NAME=VALUE]... KIND:KEY\n"
    "       relaywatch analyze [-c FILE] [-o NAME=VALUE]... [--maillog FILE]...\n"
    "                          [--querylog FILE]... [--mx-client IP]... [--by day|hour|minute]\n"
    "                          [--from TIME] [--to TIME] [--year YYYY] [--backtest]\n"
    "                          [--json | --csv] [--svg FILE]\n"
    "       relaywatch --help\n"
    "\n"
    "commands:\n"
    "  status   show relaywatchd's current view per MX host (asks the daemon over\n"
    "           http_listen; --json prints the same object as GET /status)\n"
    "  feed     read a BIND query log (a file, - for standard input, --follow to\n"
    "           keep reading it across rotation, or syslog datagrams) and add\n"
    "           per-client, per-type query counts to the shared store (store =\n"
    "           redis://...); SIGUSR1 prints the figures so far\n"
    "  list     show the keys whose relay mail is throttled (--json: the same object\n"
    "           as GET /throttle)\n"
    "  block    throttle KIND:KEY by hand with block_action, for DURATION (30m, 2h,\n"
    "           1d, seconds) or until released; KIND is sasl_username,\n"
    "           client_address or sender_domain\n"
    "  release  lift the throttle of KIND:KEY; automatic throttling leaves the key\n"
    "           alone for release_grace\n"
    "           (list/block/release use the store directly when it is Redis, so every\n"
    "           daemon sharing it obeys; with store = memory they ask relaywatchd)\n"
    "  analyze  the study's statistics from log files: per day (hour, minute) the SMTP\n"
    "           connections nc, queued messages nf, from= lines nf_log, refusals,\n"
    "           alpha = nc/nf_log and the mail host's DNS queries by type (MX, A,\n"
    "           AAAA, PTR) from the upstream server's query log; --backtest replays\n"
    "           the maillog through relaywatchd's own detector and fast path (same\n"
    "           keys from -c) and prints each incident; files may be gzip, - is\n"
    "           standard input, year-less lines take --year or the file's mtime\n"
    "\n"
    "options:\n"
    "  -c FILE         configuration file (default " CONFIG_DEFAULT_FILE " if it\n"
    "                  exists, else the built-in defaults)\n"
    "  -o NAME=VALUE   override one configuration key (repeatable)\n"
    "  --json          print JSON instead of the text view (status, list)\n"
    "  --follow        keep reading FILE as it grows and is rotated (feed)\n"
    "  --syslog-udp HOST:PORT  receive syslog datagrams instead of reading a file (feed)\n"
    "  --maillog FILE, --querylog FILE  the logs to analyze (repeatable; a combined\n"
    "                  syslog may be named by both)\n"
    "  --mx-client IP  the mail host as the query log names it (default tdns_client,\n"
    "                  else the client with the most MX queries)\n"
    "  --from TIME, --to TIME  only periods from TIME, before TIME (YYYY-MM-DD[THH:MM])\n"
    "  --csv, --svg FILE  one CSV row per period; an SVG chart of the rates (analyze)\n"
    "\n"
    "exit status: 0 success, 1 daemon or store unreachable or error answer (analyze: a\n"
    "file unreadable or truncated), 2 usage or configuration error\n";

struct options {
    const char *config_file; /* NULL: built-in defaults only */
    bool explicit_file;
    const char *overrides[MAX_OVERRIDES];
    int override_count;
    bool json;
    struct feed_options feed;
    struct analyze_options analyze;
    const char *args[2]; /* block, release: KIND:KEY [DURATION] */
    int arg_count;
};

/*
 * The configuration as relaywatchd would read it (file, then -o), or NULL
 * after printing every problem.  Cross-key checks are left to the daemon:
 * a status query needs only http_listen.
 */
static struct config *load_config(const struct options *o)
{
    unsigned problems;

    return config_load(o->config_file, o->overrides, (unsigned)o->override_count, false,
                       config_report_stderr, NULL, &problems);
}

static int cmd_status(const struct options *o)
{
    struct config *cfg = load_config(o);
    struct daemon_answer ans;
    int rc;

    if (cfg == NULL)
        return 2;
    rc = daemon_request(cfg, "relaywatch status", "GET",
                        o->json ? "/status" : "/status?format=text",
                        o->json ? "application/json" : "text/plain", &ans);
    if (rc == 0 && ans.code != 200) {
        fprintf(stderr, "relaywatch: relaywatchd at %s answered %d %s\n", ans.where, ans.code,
                ans.reason);
        rc = 1;
    } else if (rc == 0) {
        rc = daemon_print_body(&ans);
    }
    free(ans.raw);
    config_free(cfg);
    return rc;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line saying what is wrong, then the usage; exit status 2. */
static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "relaywatch: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage_text);
    return 2;
}

int main(int argc, char **argv)
{
    struct options o = {0};
    const char *cmd;

    if (argc < 2)
        return usage_error("missing command");
    cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(cmd, "status") != 0 && strcmp(cmd, "feed") != 0 && strcmp(cmd, "list") != 0 &&
        strcmp(cmd, "block") != 0 && strcmp(cmd, "release") != 0 && strcmp(cmd, "analyze") != 0)
        return usage_error("unknown command '%s'", cmd);

    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        bool feed = cmd[0] == 'f';
        int max_args = strcmp(cmd, "block") == 0 ? 2 : strcmp(cmd, "release") == 0 ? 1 : 0;

        int taken = cmd[0] == 'a' ? analyze_option(&o.analyze, argc, argv, &i) : 0;

        if (taken < 0) {
            return 2;
        } else if (taken > 0) {
            continue;
        } else if ((cmd[0] == 's' || cmd[0] == 'l') && strcmp(a, "--json") == 0) {
            o.json = true;
        } else if (feed && strcmp(a, "--follow") == 0) {
            o.feed.follow = true;
        } else if (feed && strcmp(a, "--syslog-udp") == 0) {
            if (i + 1 == argc)
                return usage_error("option %s needs an argument", a);
            o.feed.syslog_udp = argv[++i];
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else if (strcmp(a, "-c") == 0 || strcmp(a, "-o") == 0) {
            if (i + 1 == argc)
                return usage_error("option %s needs an argument", a);
            if (a[1] == 'c') {
                o.config_file = argv[++i];
                o.explicit_file = true;
            } else if (o.override_count == MAX_OVERRIDES) {
                return usage_error("more than %d -o options", MAX_OVERRIDES);
            } else {
                o.overrides[o.override_count++] = argv[++i];
            }
        } else if (strncmp(a, "-c", 2) == 0 && a[2] != '\0') {
            o.config_file = a + 2;
            o.explicit_file = true;
        } else if (strncmp(a, "-o", 2) == 0 && a[2] != '\0') {
            if (o.override_count == MAX_OVERRIDES)
                return usage_error("more than %d -o options", MAX_OVERRIDES);
            o.overrides[o.override_count++] = a + 2;
        } else if (strcmp(a, "--") == 0 && i + 1 == argc) {
            break;
        } else if (a[0] == '-' && !(feed && strcmp(a, "-") == 0)) {
            return usage_error("unknown option '%s'", a);
        } else if (feed && o.feed.path == NULL) {
            o.feed.path = a;
        } else if (o.arg_count < max_args) {
            o.args[o.arg_count++] = a;
        } else {
            return usage_error("unexpected argument '%s'", a);
        }
    }
    if (!o.explicit_file && access(CONFIG_DEFAULT_FILE, F_OK) == 0)
        o.config_file = CONFIG_DEFAULT_FILE;
    if (cmd[0] == 's')
        return cmd_status(&o);
    if ((cmd[0] == 'b' || cmd[0] == 'r') && o.arg_count == 0)
        return usage_error("%s wants KIND:KEY", cmd);
    if (cmd[0] == 'f' && (o.feed.path == NULL) == (o.feed.syslog_udp == NULL))
        return usage_error("feed wants a FILE (or - for standard input) or --syslog-udp "
                           "HOST:PORT, one of them");
    if (cmd[0] == 'f' && o.feed.follow && (o.feed.path == NULL || strcmp(o.feed.path, "-") == 0))
        return usage_error("--follow wants a FILE");
    {
        struct config *cfg = load_config(&o);
        int rc;

        if (cfg == NULL)
            return 2;
        if (cmd[0] == 'a')
            rc = analyze_run(cfg, &o.analyze);
        else if (cmd[0] == 'f')
            rc = feed_run(cfg, &o.feed);
        else if (cmd[0] == 'l')
            rc = throttle_list(cfg, o.json);
        else if (cmd[0] == 'b')
            rc = throttle_block(cfg, o.args[0], o.args[1]);
        else
            rc = throttle_release(cfg, o.args[0]);
        config_free(cfg);
        return rc;
    }
}

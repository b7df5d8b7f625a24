/*
 * http_routes: what the daemon's HTTP endpoints answer: GET / (the HTML status page), GET
 * /status (JSON or text),
 * /metrics, /held and /throttle on both http_listen and the control socket; POST
 * /throttle (block, release) only to a caller the control socket admitted.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "config.h"
#include "defense.h"
#include "hold_service.h"
#include "http.h"
#include "resolver.h"
#include "server.h"
#include "status_page.h"
#include "store.h"
#include "views.h"

/* One query parameter's value, %-decoded, into out; false if absent or too long. */
static bool query_param(const char *query, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);

    for (const char *p = query; *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);

        if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            size_t n = 0;

            for (size_t i = nlen + 1; i < len; i++) {
                int ch = (unsigned char)p[i];

                if (ch == '%') {
                    char hex[3];

                    if (i + 2 >= len || !isxdigit((unsigned char)p[i + 1]) ||
                        !isxdigit((unsigned char)p[i + 2]))
                        return false;
                    hex[0] = p[i + 1];
                    hex[1] = p[i + 2];
                    hex[2] = '\0';
                    ch = (int)strtoul(hex, NULL, 16);
                    i += 2;
                } else if (ch == '+') {
                    ch = ' ';
                }
                if (n + 1 >= outlen || ch == 0)
                    return false;
                out[n++] = (char)ch;
            }
            out[n] = '\0';
            return true;
        }
        p += len + (amp != NULL);
    }
    return false;
}

/* GET /throttle: the throttled keys; POST /throttle?block=KIND:KEY[&duration=S] or
 * ?release=KIND:KEY: relaywatch block/release for a daemon without a shared store. */
static int handle_throttle(struct daemon_state *d, const char *method, const char *query,
                           bool may_change, struct http_body *body, const char **content_type)
{
    char member[512], duration[32], err[300];
    double now = ev_time(); /* throttle records go by the wall clock */

    if (strcmp(method, "GET") == 0) {
        view_throttle(body, d->defense, d->holds ? hold_service_ledger(d->holds) : NULL, now);
        *content_type = "application/json";
        return 200;
    }
    *content_type = "text/plain; charset=utf-8";
    if (!may_change) {
        http_body_printf(body, "changes need privilege: they go through control_socket (%s), "
                               "for root, relaywatchd's user and control_group\n",
                         d->cfg->control_socket ? d->cfg->control_socket->spec : "off");
        return 403;
    }
    if (query_param(query, "block", member, sizeof(member))) {
        double seconds = 0;

        if (query_param(query, "duration", duration, sizeof(duration))) {
            char *end;

            seconds = strtod(duration, &end);
            if (end == duration || *end != '\0' || !(seconds >= 0)) {
                http_body_printf(body, "duration: '%s' is not a number of seconds\n", duration);
                return 400;
            }
        }
        if (!defense_block(d->defense, member, seconds, now, err, sizeof(err))) {
            http_body_printf(body, "%s\n", err);
            return 400;
        }
        http_body_printf(body, "blocked %s\n", member);
        return 200;
    }
    if (query_param(query, "release", member, sizeof(member))) {
        if (!defense_release(d->defense, member, now, err, sizeof(err))) {
            http_body_printf(body, "%s\n", err);
            return 400;
        }
        http_body_printf(body, "released %s\n", member);
        return 200;
    }
    http_body_printf(body, "POST /throttle?block=KIND:KEY[&duration=SECONDS] or "
                           "POST /throttle?release=KIND:KEY\n");
    return 400;
}

static int handle_http(void *ctx, const char *method, const char *path, const char *query,
                       bool may_change, struct http_body *body, const char **content_type)
{
    struct daemon_state *d = ctx;
    struct store_state store;
    struct resolver_stats dns;
    struct status_sources src = {d->cfg, d->traffic, policy_server_stats(d->server),
                                 (const uint64_t(*)[AK_COUNT])d->requests, d->started, &store,
                                 d->resolver ? &dns : NULL, ev_time(), d->defense, d->holds};
    double now = counting_now(d);

    store_get_state(d->store, &store);
    if (d->resolver)
        resolver_get_stats(d->resolver, &dns);
    if (strcmp(path, "/throttle") == 0)
        return handle_throttle(d, method, query, may_change, body, content_type);
    if (strcmp(method, "GET") != 0) {
        http_body_printf(body, "only GET here; POST is for /throttle\n");
        *content_type = "text/plain; charset=utf-8";
        return 405;
    }
    if (strcmp(path, "/") == 0) {
        status_page(body, &src, &d->history, now);
        *content_type = "text/html; charset=utf-8";
        return 200;
    }
    if (strcmp(path, "/status") == 0) {
        if (strcmp(query, "format=text") == 0) {
            status_text(body, &src, now);
            *content_type = "text/plain; charset=utf-8";
        } else {
            status_json(body, &src, now);
            *content_type = "application/json";
        }
        return 200;
    }
    if (strcmp(path, "/held") == 0) {
        status_held_text(body, d->holds, ev_time());
        *content_type = "text/plain; charset=utf-8";
        return 200;
    }
    if (strcmp(path, "/metrics") == 0) {
        status_metrics(body, &src, now);
        *content_type = "text/plain; version=0.0.4; charset=utf-8";
        return 200;
    }
    http_body_printf(body, "not found; try /, /status, /status?format=text or /metrics\n");
    *content_type = "text/plain; charset=utf-8";
    return 404;
}

/* Open the HTTP endpoint of cfg (none if off); false with the reason in err. */
bool open_http(struct daemon_state *d, const struct config *cfg, struct http_server **out,
                      char *err, size_t errlen)
{
    *out = NULL;
    if (cfg->http_listen == NULL)
        return true;
    *out = http_server_new(d->loop, cfg->http_listen, handle_http, d, err, errlen);
    return *out != NULL;
}


void open_control(struct daemon_state *d, const struct config *cfg, struct http_server **out)
{
    *out = NULL;
    if (d->control_fd >= 0)
        *out = http_control_new(d->loop, cfg->control_socket, d->control_fd, d->control_gid,
                                handle_http, d);
    d->control_fd = -1; /* the server owns it now */
}

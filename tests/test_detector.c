/*
 * The detector replayed with a simulated clock (no sleeping): per-minute
 * series of the signals, turned into sliding 10-minute sums and handed to
 * the real detector every 10 simulated seconds, as the daemon does once a
 * second.  The main scenario is the study's four days: two quiet days at
 * Table 1's quiet counts, the relay from 05:30 on day three to 11:30 on
 * day four at Table 1's loud counts, and a short new peak at 17:00.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "detector.h"

#define DAYS 4
#define DAY_MIN 1440
#define MINUTES (DAYS * DAY_MIN)
#define STEPS_PER_MIN 6 /* one sample every 10 simulated seconds */
#define SAMPLES (MINUTES * STEPS_PER_MIN)
#define T0 1699920000.0 /* simulated local midnight starting day one (a multiple of 86400) */

/* Minute of the simulation: day d (0-based), hh:mm. */
#define AT(d, hh, mm) ((d) * DAY_MIN + (hh) * 60 + (mm))
#define T_AT(d, hh, mm) (T0 + 60.0 * AT(d, hh, mm))

static struct detector_settings default_settings(void)
{
    struct detector_settings s;

    memset(&s, 0, sizeof(s));
    s.window = 600;
    s.loud_after = 20;
    s.quiet_after = 600;
    s.mx_factor = 10;
    s.min_mx = 20;
    s.domains_factor = 10;
    s.min_domains = 20;
    s.min_messages = 20;
    s.alpha_low = 0; /* both 0: the band is learned */
    s.alpha_high = 0;
    s.alpha_factor = 1.5;
    s.start[DS_MX] = 2;
    s.start[DS_A] = 10;
    s.start[DS_PTR] = 5;
    s.start[DS_NC] = 20;
    s.start[DS_NF] = 40;
    s.start[DS_RELAY_RCPT] = 20;
    s.start[DS_RELAY_DOMAINS] = 2;
    s.start[DS_ALPHA] = 0.5;
    s.hour_days = 3;
    snprintf(s.window_name, sizeof(s.window_name), "%s", "10m");
    return s;
}

/* ---- a fixed-seed PRNG (xorshift64*) ---- */

struct rng {
    uint64_t s;
};

static void rng_seed(struct rng *r, uint64_t seed)
{
    r->s = seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;
    if (r->s == 0)
        r->s = 1;
}

static uint64_t rng_next(struct rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 2685821657736338717ULL;
}

static double rng_unit(struct rng *r) /* [0, 1) */
{
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static uint64_t rng_range(struct rng *r, uint64_t lo, uint64_t hi) /* [lo, hi] */
{
    return lo + rng_next(r) % (hi - lo + 1);
}

static unsigned binomial(struct rng *r, unsigned n, double p)
{
    unsigned k = 0;
    for (unsigned i = 0; i < n; i++)
        if (rng_unit(r) < p)
            k++;
    return k;
}

/* ---- the per-minute series ---- */

/* Additive per-minute counts; S_DOM are relay domains seen only once (the
 * spam's new domains), the recurring ones are in mask (bit per domain). */
enum { S_MX, S_A, S_PTR, S_NC, S_NF, S_RCPT, S_DOM, S_N };

struct series {
    double x[S_N][MINUTES];
    double cum[S_N][MINUTES + 1]; /* cum[k]: sum of the minutes before k */
    uint64_t mask[MINUTES];       /* recurring relay domains seen in the minute */
};

#define NEWSLETTER_DOMAINS (0x1FULL << 58) /* five domains, outside the quiet pool (ids < 48) */

static struct series *series_new(void)
{
    struct series *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    return s;
}

static void series_finish(struct series *s)
{
    for (int k = 0; k < S_N; k++) {
        s->cum[k][0] = 0;
        for (int m = 0; m < MINUTES; m++)
            s->cum[k][m + 1] = s->cum[k][m] + s->x[k][m];
    }
}

/* A day-time-heavy profile: 0.15 at night, up to 1.15 around 14:00. */
static double diurnal(double hour)
{
    double w = 0.15;
    if (hour >= 6 && hour < 22)
        w += sin(M_PI * (hour - 6) / 16);
    return w;
}

struct day_profile {
    double cum[DAY_MIN + 1];
};

static void day_profile_make(struct day_profile *p, struct rng *r)
{
    double hour_noise[24];
    for (int h = 0; h < 24; h++)
        hour_noise[h] = 0.75 + 0.5 * rng_unit(r);
    p->cum[0] = 0;
    for (int m = 0; m < DAY_MIN; m++)
        p->cum[m + 1] = p->cum[m] + diurnal((m + 0.5) / 60.0) * hour_noise[m / 60];
}

static int day_profile_pick(const struct day_profile *p, struct rng *r)
{
    double u = rng_unit(r) * p->cum[DAY_MIN];
    int lo = 0, hi = DAY_MIN - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (p->cum[mid + 1] <= u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct quiet_day {
    unsigned mx, a, ptr, nc, nf, rcpt, domains;
    double alpha;
};

/* One quiet day at Table 1's quiet counts, spread with the diurnal profile. */
static struct quiet_day quiet_day(struct series *s, struct rng *r, int day)
{
    struct day_profile p;
    struct quiet_day q;
    int base = day * DAY_MIN;

    day_profile_make(&p, r);
    q.mx = (unsigned)rng_range(r, 27, 36);
    q.a = (unsigned)rng_range(r, 58, 114);
    q.ptr = (unsigned)rng_range(r, 16, 36);
    q.nc = (unsigned)rng_range(r, 1000, 3000);
    q.alpha = 0.35 + 0.35 * rng_unit(r);
    q.nf = (unsigned)lround(q.nc / q.alpha);
    q.rcpt = q.nf / 5; /* 20% of the messages are relayed */
    q.domains = (unsigned)rng_range(r, 24, 48);

    for (unsigned i = 0; i < q.mx; i++)
        s->x[S_MX][base + day_profile_pick(&p, r)] += 1;
    for (unsigned i = 0; i < q.a; i++)
        s->x[S_A][base + day_profile_pick(&p, r)] += 1;
    for (unsigned i = 0; i < q.ptr; i++)
        s->x[S_PTR][base + day_profile_pick(&p, r)] += 1;
    for (unsigned i = 0; i < q.nc; i++)
        s->x[S_NC][base + day_profile_pick(&p, r)] += 1;
    for (unsigned i = 0; i < q.nf; i++)
        s->x[S_NF][base + day_profile_pick(&p, r)] += 1;
    for (unsigned i = 0; i < q.rcpt; i++) {
        int m = base + day_profile_pick(&p, r);
        double u = rng_unit(r);
        unsigned id = (unsigned)(q.domains * u * u); /* a few popular domains, a long tail */
        s->x[S_RCPT][m] += 1;
        s->mask[m] |= 1ULL << id;
    }
    print_message("day %d quiet: MX %u A %u PTR %u N_c %u N_f %u (alpha %.2f) relay rcpt %u to %u domains\n",
                  day + 1, q.mx, q.a, q.ptr, q.nc, q.nf, q.alpha, q.rcpt, q.domains);
    return q;
}

/* The relay on top of the quiet mail, minutes [from, to): mx_total MX
 * queries spread evenly with noise, each to a new relay domain, a few
 * spam messages per MX on few sessions, A tenfold the quiet rate. */
static void relay(struct series *s, struct rng *r, int from, int to, unsigned mx_total, double quiet_a_per_day)
{
    int n = to - from;
    unsigned *smx = calloc((size_t)n, sizeof(*smx));
    unsigned a_extra = (unsigned)lround(9 * quiet_a_per_day * n / DAY_MIN);

    assert_non_null(smx);
    for (unsigned i = 0; i < mx_total; i++)
        smx[rng_next(r) % (uint64_t)n]++;
    for (unsigned i = 0; i < a_extra; i++)
        s->x[S_A][from + (int)(rng_next(r) % (uint64_t)n)] += 1;
    for (int i = 0; i < n; i++) {
        unsigned c = smx[i];
        unsigned dom = binomial(r, c, 0.97);
        unsigned nf = 3 * c;
        s->x[S_MX][from + i] += c;
        s->x[S_DOM][from + i] += dom;
        s->x[S_RCPT][from + i] += dom + binomial(r, c, 0.2);
        s->x[S_NF][from + i] += nf;
        s->x[S_NC][from + i] += binomial(r, nf, 0.1);
    }
    free(smx);
}

/* The study's four days; quiet_a: the quiet A per day, for the relay's tenfold. */
static struct series *study_scenario(uint64_t seed)
{
    struct series *s = series_new();
    struct rng r;
    double a = 0;

    rng_seed(&r, seed);
    for (int d = 0; d < DAYS; d++)
        a += quiet_day(s, &r, d).a;
    a /= DAYS;
    /* Table 1's loud days: 35,801 MX on day three (from 05:30), 17,244 on day four (until 11:30). */
    relay(s, &r, AT(2, 5, 30), AT(3, 0, 0), 35801, a);
    relay(s, &r, AT(3, 0, 0), AT(3, 11, 30), 17244, a);
    /* The short new peak: 30 minutes at the loud rate (25 MX a minute). */
    relay(s, &r, AT(3, 17, 0), AT(3, 17, 30), 750, a);
    series_finish(s);
    return s;
}

static struct series *quiet_scenario(uint64_t seed)
{
    struct series *s = series_new();
    struct rng r;

    rng_seed(&r, seed);
    for (int d = 0; d < DAYS; d++)
        quiet_day(s, &r, d);
    return s; /* the caller adds its extras and calls series_finish */
}

/* ---- the samples, as the daemon would make them ---- */

enum variant { V_OWN_DNS, V_TDNS, V_NO_DNS };

static const char *variant_name(enum variant v)
{
    return v == V_OWN_DNS ? "own_dns" : v == V_TDNS ? "tdns" : "no dns";
}

/* The count over the 600 s ending f of the way into minute m. */
static double window_sum(const struct series *s, int k, int m, double f)
{
    int lo = m - 9 < 0 ? 0 : m - 9;
    double v = s->cum[k][m] - s->cum[k][lo]; /* whole minutes m-9 .. m-1 */
    if (m - 10 >= 0)
        v += (1 - f) * s->x[k][m - 10];
    v += f * s->x[k][m];
    return v;
}

static uint64_t window_count(const struct series *s, int k, int m, double f)
{
    double v = window_sum(s, k, m, f);
    return v <= 0 ? 0 : (uint64_t)llround(v);
}

static uint64_t window_domains(const struct series *s, int m, double f)
{
    uint64_t mask = 0;
    for (int i = m - 10; i < m; i++)
        if (i >= 0)
            mask |= s->mask[i];
    if (f > 0)
        mask |= s->mask[m];
    return window_count(s, S_DOM, m, f) + (uint64_t)__builtin_popcountll(mask);
}

static double sample_time(int i)
{
    return T0 + 10.0 * i;
}

static void make_sample(const struct series *s, int i, enum variant v, struct detector_sample *out)
{
    int m = i / STEPS_PER_MIN;
    double f = (double)(i % STEPS_PER_MIN) / STEPS_PER_MIN;
    uint64_t mx = window_count(s, S_MX, m, f);
    uint64_t a = window_count(s, S_A, m, f);
    uint64_t ptr = window_count(s, S_PTR, m, f);

    memset(out, 0, sizeof(*out));
    out->now = sample_time(i);
    out->hour = (m % DAY_MIN) / 60;
    out->own_dns = v == V_OWN_DNS;
    out->tdns = v == V_TDNS;
    if (v == V_OWN_DNS) {
        out->own_mx = mx;
        out->own_a = a;
        out->own_ptr = ptr;
    } else if (v == V_TDNS) {
        out->tdns_mx = mx;
        out->tdns_a = a;
        out->tdns_ptr = ptr;
    }
    out->nc = window_count(s, S_NC, m, f);
    out->nf = window_count(s, S_NF, m, f);
    out->relay_rcpt = window_count(s, S_RCPT, m, f);
    out->relay_domains = window_domains(s, m, f);
}

/* ---- the replay ---- */

struct transition {
    double t;
    enum detector_event ev;
    char reason[512];
    struct detector_view view;
};

struct run_log {
    struct transition tr[32];
    unsigned n;
    unsigned lost;
};

static void format_time(double t, char *buf, size_t len)
{
    long sec = lround(t - T0);
    snprintf(buf, len, "day %ld %02ld:%02ld:%02ld", sec / 86400 + 1, sec % 86400 / 3600, sec % 3600 / 60,
             sec % 60);
}

static void print_view(const char *what, const struct detector_view *v)
{
    char buf[1024];
    size_t o = 0;

    for (int k = 0; k < DS_COUNT && o < sizeof(buf); k++)
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, " %s=%.4g/%.4g%s", detector_signal_name(k), v->value[k],
                              v->baseline[k], v->hourly[k] ? "(h)" : "");
    print_message("  %s: state %s, dns %s, loud_cond %d quiet_cond %d, learned %llu, missing \"%s\"\n   %s\n",
                  what, detector_state_name(v->state), detector_dns_source_name(v->dns_source),
                  v->loud_condition, v->quiet_condition, (unsigned long long)v->samples_learned, v->missing,
                  buf);
}

/* Samples [from, to) through d; transitions logged and printed. */
static void replay(struct detector *d, const struct series *s, int from, int to, enum variant v,
                   struct run_log *log)
{
    struct detector_sample smp;

    for (int i = from; i < to; i++) {
        enum detector_event ev;

        make_sample(s, i, v, &smp);
        ev = detector_observe(d, &smp);
        if (ev == DETECTOR_WENT_LOUD)
            assert_int_equal(detector_state(d), DETECTOR_LOUD);
        else if (ev == DETECTOR_WENT_QUIET)
            assert_int_equal(detector_state(d), DETECTOR_QUIET);
        if (ev != DETECTOR_NO_CHANGE) {
            char when[48];
            const char *reason = detector_reason(d);
            double since = detector_since(d);

            assert_non_null(reason);
            assert_true(since > 0 && since <= smp.now);
            format_time(smp.now, when, sizeof(when));
            print_message("[%s] %s: %s (since %.0f s before): %s\n", variant_name(v), when,
                          ev == DETECTOR_WENT_LOUD ? "WENT_LOUD" : "WENT_QUIET", smp.now - since, reason);
            if (log->n < sizeof(log->tr) / sizeof(log->tr[0])) {
                struct transition *t = &log->tr[log->n++];
                t->t = smp.now;
                t->ev = ev;
                snprintf(t->reason, sizeof(t->reason), "%s", reason);
                detector_get_view(d, &t->view);
                print_view("view", &t->view);
            } else {
                log->lost++;
            }
        }
    }
}

static int sample_at(int minute)
{
    return minute * STEPS_PER_MIN;
}

static bool has_digit(const char *s)
{
    for (; *s; s++)
        if (*s >= '0' && *s <= '9')
            return true;
    return false;
}

static void assert_between(double t, double lo, double hi, const char *what)
{
    char a[48], b[48], c[48];
    format_time(t, a, sizeof(a));
    format_time(lo, b, sizeof(b));
    format_time(hi, c, sizeof(c));
    if (!(t >= lo && t <= hi))
        fail_msg("%s at %s, expected between %s and %s", what, a, b, c);
}

static void check_loud_reason(const struct transition *t, enum variant v)
{
    if (v != V_NO_DNS && strstr(t->reason, "MX") == NULL)
        fail_msg("the loud reason does not mention MX: %s", t->reason);
    if (strstr(t->reason, "10m") == NULL)
        fail_msg("the loud reason does not name the window 10m: %s", t->reason);
    if (!has_digit(t->reason))
        fail_msg("the loud reason has no figures: %s", t->reason);
}

static enum detector_dns_source expected_source(enum variant v)
{
    return v == V_OWN_DNS ? DNS_FROM_OWN : v == V_TDNS ? DNS_FROM_TDNS : DNS_FROM_RELAY_DOMAINS;
}

/* The expectations for the study's four days. */
static void run_study(uint64_t seed, enum variant v)
{
    struct detector_settings set = default_settings();
    struct series *s;
    struct detector *d;
    struct detector_view view;
    struct run_log log;

    print_message("--- the study's four days, seed %llu, %s ---\n", (unsigned long long)seed, variant_name(v));
    s = study_scenario(seed);
    d = detector_new(&set);
    assert_non_null(d);
    assert_int_equal(detector_state(d), DETECTOR_QUIET);
    memset(&log, 0, sizeof(log));

    /* Quiet days one and two, and day three until 05:30: no alarm. */
    replay(d, s, 0, sample_at(AT(2, 5, 30)), v, &log);
    detector_get_view(d, &view);
    print_view("05:29:50 day 3", &view);
    assert_int_equal(view.dns_source, expected_source(v));
    assert_true(view.samples_learned > 0);
    if (log.n > 0)
        fail_msg("%u transition(s) before the relay, the first: %s", log.n, log.tr[0].reason);
    assert_int_equal(detector_state(d), DETECTOR_QUIET);

    /* The rest: the relay, its end, the new peak. */
    replay(d, s, sample_at(AT(2, 5, 30)), SAMPLES, v, &log);
    assert_int_equal(log.lost, 0);

    assert_true(log.n >= 1);
    assert_int_equal(log.tr[0].ev, DETECTOR_WENT_LOUD);
    assert_between(log.tr[0].t, T_AT(2, 5, 30), T_AT(2, 5, 35), "loud on the relay");
    check_loud_reason(&log.tr[0], v);
    assert_int_equal(log.tr[0].view.dns_source, expected_source(v));

    /* Loud through the whole relay; quiet within 30 minutes of its end. */
    assert_true(log.n >= 2);
    assert_int_equal(log.tr[1].ev, DETECTOR_WENT_QUIET);
    assert_between(log.tr[1].t, T_AT(3, 11, 30), T_AT(3, 12, 0), "quiet after the relay");

    /* The 17:00 peak caught again, and quiet again afterwards. */
    assert_true(log.n >= 3);
    assert_int_equal(log.tr[2].ev, DETECTOR_WENT_LOUD);
    assert_between(log.tr[2].t, T_AT(3, 17, 0), T_AT(3, 17, 5), "loud on the 17:00 peak");
    check_loud_reason(&log.tr[2], v);
    assert_true(log.n >= 4);
    assert_int_equal(log.tr[3].ev, DETECTOR_WENT_QUIET);
    assert_between(log.tr[3].t, T_AT(3, 17, 30), T_AT(3, 18, 0), "quiet after the peak");

    assert_int_equal(log.n, 4);
    assert_int_equal(detector_state(d), DETECTOR_QUIET);

    detector_free(d);
    free(s);
}

static void test_study_four_days_own_dns(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 3; seed++)
        run_study(seed, V_OWN_DNS);
}

static void test_study_four_days_tdns(void **state)
{
    (void)state;
    run_study(1, V_TDNS);
}

/* Missing signals: neither own nor tdns figures; relay domains stand in for MX. */
static void test_missing_dns_relay_domains_alone(void **state)
{
    struct detector_settings set = default_settings();
    struct series *s = study_scenario(4);
    struct detector *d = detector_new(&set);
    struct detector_view view;
    struct run_log log;

    (void)state;
    assert_non_null(d);
    memset(&log, 0, sizeof(log));
    replay(d, s, 0, sample_at(AT(2, 5, 30)), V_NO_DNS, &log);
    assert_int_equal(log.n, 0);
    replay(d, s, sample_at(AT(2, 5, 30)), sample_at(AT(2, 6, 0)), V_NO_DNS, &log);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.tr[0].ev, DETECTOR_WENT_LOUD);
    assert_between(log.tr[0].t, T_AT(2, 5, 30), T_AT(2, 5, 35), "loud on relay domains alone");
    check_loud_reason(&log.tr[0], V_NO_DNS);
    detector_get_view(d, &view);
    assert_int_equal(view.dns_source, DNS_FROM_RELAY_DOMAINS);
    assert_int_equal(log.tr[0].view.dns_source, DNS_FROM_RELAY_DOMAINS);
    /* It says that it decided without DNS figures. */
    if (view.missing[0] == '\0' && strstr(log.tr[0].reason, "relay domain") == NULL &&
        strstr(log.tr[0].reason, "dns") == NULL && strstr(log.tr[0].reason, "DNS") == NULL)
        fail_msg("neither view.missing nor the reason say the DNS figures were missing: \"%s\"",
                 log.tr[0].reason);
    print_message("missing: \"%s\"\n", view.missing);
    detector_free(d);
    free(s);
}

/* A legitimate newsletter: 20,000 messages to 5 domains, 10:00-12:00 on day three. */
static void test_newsletter_burst_is_not_relay(void **state)
{
    struct detector_settings set = default_settings();
    struct series *s = quiet_scenario(11);
    struct rng r;
    struct detector *d;
    struct detector_sample smp;
    struct run_log log;
    int from = AT(2, 10, 0), to = AT(2, 12, 0), n = to - from;
    uint64_t max_mx = 0, max_domains = 0, max_rcpt = 0;

    unsigned per_minute[120] = {0};

    (void)state;
    rng_seed(&r, 12);
    assert_int_equal(n, 120);
    for (int i = 0; i < 20000; i++)
        per_minute[rng_next(&r) % (uint64_t)n]++;
    for (int i = 0; i < n; i++) {
        s->x[S_RCPT][from + i] += per_minute[i];
        s->x[S_NF][from + i] += per_minute[i];
        s->x[S_NC][from + i] += binomial(&r, per_minute[i], 0.5); /* two messages a session: alpha 0.5 */
        s->mask[from + i] |= NEWSLETTER_DOMAINS;
    }
    /* Five MX (and A) lookups when it starts, five more when the cache expires an hour later. */
    s->x[S_MX][from] += 5;
    s->x[S_A][from] += 5;
    s->x[S_MX][from + 60] += 5;
    s->x[S_A][from + 60] += 5;
    series_finish(s);

    /* The scenario is what it claims: huge relay volume, few domains, MX at quiet levels. */
    for (int i = sample_at(from); i < sample_at(to + 10); i++) {
        make_sample(s, i, V_OWN_DNS, &smp);
        if (smp.own_mx > max_mx)
            max_mx = smp.own_mx;
        if (smp.relay_domains > max_domains)
            max_domains = smp.relay_domains;
        if (smp.relay_rcpt > max_rcpt)
            max_rcpt = smp.relay_rcpt;
    }
    print_message("newsletter: max per 10m: MX %llu, relay domains %llu, relay rcpt %llu\n",
                  (unsigned long long)max_mx, (unsigned long long)max_domains, (unsigned long long)max_rcpt);
    assert_true(max_rcpt > 1500);
    assert_true(max_mx < set.min_mx);

    d = detector_new(&set);
    assert_non_null(d);
    memset(&log, 0, sizeof(log));
    replay(d, s, 0, sample_at(AT(2, 11, 0)), V_OWN_DNS, &log);
    {
        struct detector_view view;
        detector_get_view(d, &view);
        print_view("11:00 day 3, newsletter running", &view);
        assert_true(view.value[DS_RELAY_RCPT] > 1000);
    }
    replay(d, s, sample_at(AT(2, 11, 0)), SAMPLES, V_OWN_DNS, &log);
    if (log.n > 0)
        fail_msg("the newsletter tripped the detector: %s", log.tr[0].reason);
    assert_int_equal(detector_state(d), DETECTOR_QUIET);
    detector_free(d);
    free(s);
}

/* One odd minute below the minimum volume (MX 15, 15 new relay domains) amid quiet days. */
static void test_odd_minute_below_minimum(void **state)
{
    struct detector_settings set = default_settings();
    struct series *s = quiet_scenario(21);
    struct detector *d;
    struct detector_sample smp;
    struct run_log log;
    int odd = AT(2, 14, 0);
    uint64_t bg_mx = 0, max_mx = 0, max_domains = 0;
    double odd_mx;

    (void)state;
    series_finish(s);
    for (int i = sample_at(odd); i < sample_at(odd + 11); i++) {
        make_sample(s, i, V_OWN_DNS, &smp);
        if (smp.own_mx > bg_mx)
            bg_mx = smp.own_mx;
    }
    /* MX 15 in the minute, less if the quiet background would lift the window to min_mx. */
    odd_mx = bg_mx + 15 < set.min_mx ? 15 : (double)(set.min_mx - 1 - bg_mx);
    assert_true(odd_mx >= 10);
    s->x[S_MX][odd] += odd_mx;
    s->x[S_DOM][odd] += 15;
    series_finish(s);
    for (int i = sample_at(odd); i < sample_at(odd + 11); i++) {
        make_sample(s, i, V_OWN_DNS, &smp);
        if (smp.own_mx > max_mx)
            max_mx = smp.own_mx;
        if (smp.relay_domains > max_domains)
            max_domains = smp.relay_domains;
    }
    print_message("odd minute: MX %.0f in the minute; max per 10m: MX %llu, relay domains %llu\n", odd_mx,
                  (unsigned long long)max_mx, (unsigned long long)max_domains);
    assert_true(max_mx >= 10 && max_mx < set.min_mx);

    d = detector_new(&set);
    assert_non_null(d);
    memset(&log, 0, sizeof(log));
    replay(d, s, 0, SAMPLES, V_OWN_DNS, &log);
    if (log.n > 0)
        fail_msg("one odd minute tripped the detector: %s", log.tr[0].reason);
    assert_int_equal(detector_state(d), DETECTOR_QUIET);
    detector_free(d);
    free(s);
}

/* Baselines saved after two quiet days come back in a new detector. */
static void test_baselines_survive_restart(void **state)
{
    struct detector_settings set = default_settings();
    struct series *s = study_scenario(31);
    struct detector *a, *b, *c;
    struct detector_view va, vb, vc;
    struct detector_sample smp;
    struct run_log log;
    static char text[1 << 16], again[1 << 16];
    size_t len, len2;
    unsigned taken;
    int probe = sample_at(AT(2, 0, 0));
    int moved = 0;

    (void)state;
    a = detector_new(&set);
    assert_non_null(a);
    memset(&log, 0, sizeof(log));
    replay(a, s, 0, probe, V_OWN_DNS, &log);
    assert_int_equal(log.n, 0);
    detector_get_view(a, &va);
    assert_true(va.samples_learned > 0);

    len = detector_save(a, text, sizeof(text));
    assert_true(len > 0 && len < sizeof(text));
    print_message("saved %zu bytes, from: %.300s%s\n", len, text, len > 300 ? "..." : "");

    b = detector_new(&set);
    assert_non_null(b);
    taken = detector_load(b, text, len);
    print_message("loaded %u values\n", taken);
    assert_true(taken > 0);

    /* What comes back saves as it was saved. */
    len2 = detector_save(b, again, sizeof(again));
    assert_int_equal(len2, len);
    assert_memory_equal(again, text, len);

    /* The same sample through the old, the restored and a fresh detector: the restored one
     * judges with the old one's baselines, not the cold-start ones. */
    c = detector_new(&set);
    assert_non_null(c);
    make_sample(s, probe, V_OWN_DNS, &smp);
    detector_observe(a, &smp);
    detector_observe(b, &smp);
    detector_observe(c, &smp);
    detector_get_view(a, &va);
    detector_get_view(b, &vb);
    detector_get_view(c, &vc);
    print_view("old", &va);
    print_view("restored", &vb);
    print_view("fresh", &vc);
    for (int k = 0; k < DS_COUNT; k++) {
        double tol = 0.10 * fabs(va.baseline[k]) + 1e-3;
        if (fabs(vb.baseline[k] - va.baseline[k]) > tol)
            fail_msg("restored baseline of %s is %g, the old detector's %g", detector_signal_name(k),
                     vb.baseline[k], va.baseline[k]);
        if (fabs(vc.baseline[k] - va.baseline[k]) > 0.2 * fabs(va.baseline[k]) + 1e-3)
            moved++;
    }
    assert_true(moved > 0); /* two days of learning moved some baseline away from the start */
    detector_free(a);
    detector_free(c);

    /* The restored detector: quiet until 05:30, loud within 5 minutes of the relay. */
    replay(b, s, probe + 1, sample_at(AT(2, 5, 30)), V_OWN_DNS, &log);
    assert_int_equal(log.n, 0);
    replay(b, s, sample_at(AT(2, 5, 30)), sample_at(AT(2, 6, 0)), V_OWN_DNS, &log);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.tr[0].ev, DETECTOR_WENT_LOUD);
    assert_between(log.tr[0].t, T_AT(2, 5, 30), T_AT(2, 5, 35), "loud after the restart");
    check_loud_reason(&log.tr[0], V_OWN_DNS);
    detector_free(b);
    free(s);
}

/* ---- each rule at its threshold: hand-made samples, one a second ---- */

#define TR0 (T0 + 43200.0) /* noon of day one */

/* Figures over the window: MX (own lookups), relay domains, sessions and from= lines.  The
 * samples are marked warming_up (nothing learned), so the baselines stay at baseline_start
 * and every threshold is known exactly. */
struct figures {
    uint64_t mx, domains, nc, nf;
};

static struct detector_sample sample_of(double now, struct figures f, bool learn)
{
    struct detector_sample smp;

    memset(&smp, 0, sizeof(smp));
    smp.now = now;
    smp.hour = 12;
    smp.warming_up = !learn;
    smp.own_dns = true;
    smp.own_mx = f.mx;
    smp.nc = f.nc;
    smp.nf = f.nf;
    smp.relay_rcpt = f.domains;
    smp.relay_domains = f.domains;
    return smp;
}

/* The same figures once a second for [from, to): returns the time of the first transition
 * (its kind in *ev), or 0 if none; *next: the time after the last sample. */
static double hold_figures(struct detector *d, double from, double to, struct figures f,
                           enum detector_event *ev)
{
    for (double t = from; t < to; t += 1) {
        struct detector_sample smp = sample_of(t, f, false);
        enum detector_event e = detector_observe(d, &smp);

        if (e != DETECTOR_NO_CHANGE) {
            *ev = e;
            return t;
        }
    }
    *ev = DETECTOR_NO_CHANGE;
    return 0;
}

/* Two minutes of the figures through a fresh detector: it must stay quiet (loud false), or go
 * loud exactly detect_loud_after after they start. */
static void expect_loud(const struct detector_settings *set, struct figures f, bool loud,
                        const char *what)
{
    struct detector *d = detector_new(set);
    enum detector_event ev;
    double t;

    assert_non_null(d);
    t = hold_figures(d, TR0, TR0 + 120, f, &ev);
    if (loud ? t != TR0 + set->loud_after : t != 0)
        fail_msg("%s: MX %llu, relay domains %llu, nc %llu, nf %llu: %s after %.0fs, expected %s: %s",
                 what, (unsigned long long)f.mx, (unsigned long long)f.domains,
                 (unsigned long long)f.nc, (unsigned long long)f.nf,
                 t != 0 ? "loud" : "quiet", t != 0 ? t - TR0 : 120.0,
                 loud ? "loud after detect_loud_after" : "quiet", detector_reason(d));
    assert_int_equal(detector_state(d), loud ? DETECTOR_LOUD : DETECTOR_QUIET);
    detector_free(d);
}

static void assert_stays_quiet(const struct detector_settings *set, struct figures f, const char *what)
{
    expect_loud(set, f, false, what);
}

static void assert_goes_loud(const struct detector_settings *set, struct figures f, const char *what)
{
    expect_loud(set, f, true, what);
}

/* One below a threshold stays quiet, at it goes loud; signal s's baseline set to base. */
static void check_threshold(enum detector_signal s, double base, struct figures below,
                            struct figures at, const char *what)
{
    struct detector_settings set = default_settings();

    set.start[s] = base;
    print_message("  %s: %s one below stays quiet, at it loud\n", what, detector_signal_name(s));
    assert_stays_quiet(&set, below, what);
    assert_goes_loud(&set, at, what);
}

/* MX and relay domains, each at its floor (20, while 10 x a baseline of 1 is 10) and at 10 x
 * its baseline (5: 50, above the floor); the other signal well over its threshold, alpha in
 * band. */
static void test_threshold_mx_and_domains(void **state)
{
    (void)state;
    check_threshold(DS_MX, 1, (struct figures){19, 100, 50, 100},
                    (struct figures){20, 100, 50, 100}, "MX at detect_min_mx");
    check_threshold(DS_MX, 5, (struct figures){49, 100, 50, 100},
                    (struct figures){50, 100, 50, 100}, "MX at 10 x baseline");
    check_threshold(DS_RELAY_DOMAINS, 1, (struct figures){100, 19, 50, 100},
                    (struct figures){100, 20, 50, 100}, "relay domains at detect_min_domains");
    check_threshold(DS_RELAY_DOMAINS, 5, (struct figures){100, 49, 50, 100},
                    (struct figures){100, 50, 50, 100}, "relay domains at 10 x baseline");
}

/* With MX over its threshold and few relay domains, alpha out of its band alone makes the host
 * loud: the learned band 0.5 / 1.5 .. 0.5 x 1.5 = 0.333-0.75, and a fixed band 0.35-0.70, each
 * edge inside the band. */
static void test_threshold_alpha_band(void **state)
{
    struct detector_settings set = default_settings();

    (void)state;
    /* Learned band. */
    assert_stays_quiet(&set, (struct figures){40, 5, 34, 100}, "alpha 0.34, in the learned band");
    assert_goes_loud(&set, (struct figures){40, 5, 33, 100}, "alpha 0.33, below the learned band");
    assert_stays_quiet(&set, (struct figures){40, 5, 75, 100}, "alpha 0.75, the band's top");
    assert_goes_loud(&set, (struct figures){40, 5, 76, 100}, "alpha 0.76, above the learned band");
    /* MX one below its threshold: alpha out of band is not enough. */
    assert_stays_quiet(&set, (struct figures){19, 5, 10, 100}, "alpha out of band, MX low");
    /* A fixed band. */
    set.alpha_low = 0.35;
    set.alpha_high = 0.70;
    assert_stays_quiet(&set, (struct figures){40, 5, 35, 100}, "alpha 0.35, the fixed band's bottom");
    assert_goes_loud(&set, (struct figures){40, 5, 34, 100}, "alpha 0.34, below the fixed band");
    assert_stays_quiet(&set, (struct figures){40, 5, 70, 100}, "alpha 0.70, the fixed band's top");
    assert_goes_loud(&set, (struct figures){40, 5, 71, 100}, "alpha 0.71, above the fixed band");
}

/* Alpha is judged from detect_min_messages (20) from= lines on. */
static void test_threshold_alpha_min_messages(void **state)
{
    struct detector_settings set = default_settings();
    struct detector *d = detector_new(&set);
    struct detector_sample smp = sample_of(TR0, (struct figures){40, 5, 1, 19}, false);
    struct detector_view v;

    (void)state;
    assert_non_null(d);
    detector_observe(d, &smp);
    detector_get_view(d, &v);
    assert_true(v.value[DS_ALPHA] < 0);
    assert_non_null(strstr(v.missing, "alpha not judged"));
    detector_free(d);
    assert_stays_quiet(&set, (struct figures){40, 5, 1, 19}, "alpha 0.05 from 19 from= lines");
    assert_goes_loud(&set, (struct figures){40, 5, 1, 20}, "alpha 0.05 from 20 from= lines");
}

/* The loud condition must hold detect_loud_after without a break: loud at exactly 20 s, and a
 * break starts the count again. */
static void test_threshold_loud_after(void **state)
{
    struct detector_settings set = default_settings();
    struct figures burst = {40, 40, 50, 100}, calm = {5, 5, 50, 100};
    struct detector *d = detector_new(&set);
    struct detector_view v;
    enum detector_event ev;
    double t;

    (void)state;
    assert_non_null(d);
    /* 19 s of the condition, a break, 19 s again: never loud. */
    assert_true(hold_figures(d, TR0, TR0 + 19, burst, &ev) == 0);
    detector_get_view(d, &v);
    assert_true(v.loud_condition);
    assert_true(v.condition_since == TR0);
    assert_true(hold_figures(d, TR0 + 19, TR0 + 20, calm, &ev) == 0);
    detector_get_view(d, &v);
    assert_true(v.condition_since == 0);
    assert_true(hold_figures(d, TR0 + 20, TR0 + 39, burst, &ev) == 0);
    assert_int_equal(detector_state(d), DETECTOR_QUIET);
    /* Held on: loud when it has held 20 s (since TR0 + 20). */
    t = hold_figures(d, TR0 + 39, TR0 + 100, burst, &ev);
    assert_int_equal(ev, DETECTOR_WENT_LOUD);
    assert_true(t == TR0 + 40);
    assert_true(detector_since(d) == TR0 + 40);
    assert_non_null(strstr(detector_reason(d), "held for 20s"));
    detector_free(d);
    /* Another detect_loud_after: the same rule. */
    set.loud_after = 45;
    assert_goes_loud(&set, burst, "detect_loud_after 45s");
}

/* Loud, then the given figures: returns when it went quiet (0: not within `within`). */
static double quiet_after_loud(const struct detector_settings *set, struct figures after,
                               double within)
{
    struct detector *d = detector_new(set);
    enum detector_event ev;
    double t;

    assert_non_null(d);
    t = hold_figures(d, TR0, TR0 + 60, (struct figures){40, 40, 50, 100}, &ev);
    assert_int_equal(ev, DETECTOR_WENT_LOUD);
    t = hold_figures(d, t + 1, t + 1 + within, after, &ev);
    if (t != 0) {
        assert_int_equal(ev, DETECTOR_WENT_QUIET);
        print_message("  quiet with MX %llu, relay domains %llu, alpha %.2f: %s\n",
                      (unsigned long long)after.mx, (unsigned long long)after.domains,
                      (double)after.nc / (double)after.nf, detector_reason(d));
    }
    detector_free(d);
    return t;
}

/* Hysteresis: loud at MX and relay domains 20, quiet only when MX falls below half (10), or
 * relay domains below half with alpha in band, for detect_quiet_after (600 s) exactly. */
static void test_threshold_quiet_hysteresis(void **state)
{
    struct detector_settings set = default_settings();
    double start = TR0 + 20 + 1; /* the first sample after going loud (at TR0 + 20) */

    (void)state;
    /* At half the thresholds: loud for good (an hour). */
    assert_true(quiet_after_loud(&set, (struct figures){10, 40, 50, 100}, 3600) == 0);
    assert_true(quiet_after_loud(&set, (struct figures){40, 10, 50, 100}, 3600) == 0);
    assert_true(quiet_after_loud(&set, (struct figures){19, 19, 50, 100}, 3600) == 0);
    /* One below half: quiet after exactly detect_quiet_after. */
    assert_true(quiet_after_loud(&set, (struct figures){9, 40, 50, 100}, 3600) == start + 600);
    assert_true(quiet_after_loud(&set, (struct figures){40, 9, 50, 100}, 3600) == start + 600);
    /* Relay domains below half but alpha out of band: still loud. */
    assert_true(quiet_after_loud(&set, (struct figures){40, 9, 10, 100}, 3600) == 0);
    /* Another detect_quiet_after: the same rule. */
    set.quiet_after = 120;
    assert_true(quiet_after_loud(&set, (struct figures){9, 9, 50, 100}, 3600) == start + 120);
}

/* A break in the quiet condition starts detect_quiet_after again. */
static void test_threshold_quiet_after_break(void **state)
{
    struct detector_settings set = default_settings();
    struct detector *d = detector_new(&set);
    struct figures low = {5, 5, 50, 100}, high = {15, 15, 50, 100};
    enum detector_event ev;
    double t;

    (void)state;
    assert_non_null(d);
    t = hold_figures(d, TR0, TR0 + 60, (struct figures){40, 40, 50, 100}, &ev);
    assert_true(t == TR0 + 20);
    assert_true(hold_figures(d, TR0 + 21, TR0 + 620, low, &ev) == 0); /* 599 s of quiet */
    assert_true(hold_figures(d, TR0 + 620, TR0 + 621, high, &ev) == 0);
    assert_true(hold_figures(d, TR0 + 621, TR0 + 1220, low, &ev) == 0);
    assert_int_equal(detector_state(d), DETECTOR_LOUD);
    assert_true(hold_figures(d, TR0 + 1220, TR0 + 1300, low, &ev) == TR0 + 1221);
    assert_int_equal(ev, DETECTOR_WENT_QUIET);
    detector_free(d);
}

/* The MX figure is the larger of the upstream server's and our own; with neither, relay
 * domains stand in. */
static void test_threshold_dns_sources(void **state)
{
    struct detector_settings set = default_settings();
    struct detector *d = detector_new(&set);
    struct detector_sample smp = sample_of(TR0, (struct figures){20, 40, 50, 100}, false);
    struct detector_view v;
    enum detector_event ev = DETECTOR_NO_CHANGE;

    (void)state;
    assert_non_null(d);
    smp.tdns = true;
    smp.tdns_mx = 19;
    for (int i = 0; i <= 20; i++, smp.now += 1)
        ev = detector_observe(d, &smp);
    detector_get_view(d, &v);
    assert_int_equal(v.dns_source, DNS_FROM_TDNS);
    assert_true(v.value[DS_MX] == 20);
    assert_int_equal(ev, DETECTOR_WENT_LOUD);
    detector_free(d);

    d = detector_new(&set);
    assert_non_null(d);
    smp = sample_of(TR0, (struct figures){0, 40, 50, 100}, false);
    smp.tdns = true;
    smp.tdns_mx = 20;
    for (int i = 0; i <= 20; i++, smp.now += 1)
        ev = detector_observe(d, &smp);
    assert_int_equal(ev, DETECTOR_WENT_LOUD);
    detector_free(d);

    /* Neither: relay domains (19, then 20) are MX too. */
    smp = sample_of(TR0, (struct figures){0, 19, 50, 100}, false);
    smp.own_dns = false;
    d = detector_new(&set);
    assert_non_null(d);
    for (int i = 0; i <= 60; i++, smp.now += 1)
        assert_int_equal(detector_observe(d, &smp), DETECTOR_NO_CHANGE);
    detector_get_view(d, &v);
    assert_int_equal(v.dns_source, DNS_FROM_RELAY_DOMAINS);
    assert_true(v.value[DS_MX] == 19);
    smp.relay_domains = 20;
    for (int i = 0; i <= 20; i++, smp.now += 1)
        ev = detector_observe(d, &smp);
    assert_int_equal(ev, DETECTOR_WENT_LOUD);
    detector_free(d);
}

/* Learning: a quiet minute's value is clipped at 3 x baseline + the signal's floor, and joins
 * the mean with the cold-start value counting as one minute. */
static void test_threshold_learning_clip(void **state)
{
    struct detector_settings set = default_settings();
    struct detector *d = detector_new(&set);
    struct figures huge_mx = {1000, 5, 50, 100}; /* MX alone: not loud */
    struct detector_sample smp;
    struct detector_view v;

    (void)state;
    assert_non_null(d);
    smp = sample_of(TR0, huge_mx, true);
    assert_int_equal(detector_observe(d, &smp), DETECTOR_NO_CHANGE);
    smp = sample_of(TR0 + 60, huge_mx, true);
    assert_int_equal(detector_observe(d, &smp), DETECTOR_NO_CHANGE);
    detector_get_view(d, &v);
    /* 1000 clipped at 3 x 2 + 20 = 26: the mean of 2 and 26. */
    print_message("  MX baseline after one minute of MX 1000: %g\n", v.baseline[DS_MX]);
    assert_true(v.baseline[DS_MX] == 14);
    assert_int_equal(v.samples_learned, 2);
    smp = sample_of(TR0 + 120, huge_mx, true);
    detector_observe(d, &smp);
    detector_get_view(d, &v);
    /* The second minute clipped at 3 x 14 + 20 = 62: 14 + (62 - 14) / 3. */
    assert_true(v.baseline[DS_MX] == 30);
    detector_free(d);
}

/* Learning happens once a minute, only while quiet with nothing pending and not warming up. */
static void test_threshold_learning_only_quiet(void **state)
{
    struct detector_settings set = default_settings();
    struct detector *d = detector_new(&set);
    struct figures calm = {5, 5, 50, 100}, burst = {40, 40, 50, 100};
    struct detector_sample smp;
    struct detector_view v;
    double t = TR0;

    (void)state;
    assert_non_null(d);
    /* Warming up: judged, not learned. */
    for (; t < TR0 + 120; t += 1) {
        smp = sample_of(t, calm, false);
        detector_observe(d, &smp);
    }
    detector_get_view(d, &v);
    assert_int_equal(v.samples_learned, 0);
    /* Quiet minutes: one learned each (the first sample of the minute). */
    for (; t < TR0 + 240; t += 1) {
        smp = sample_of(t, calm, true);
        detector_observe(d, &smp);
    }
    detector_get_view(d, &v);
    assert_int_equal(v.samples_learned, 2);
    /* A minute that starts with the loud condition pending: not learned; nor loud minutes. */
    for (; t < TR0 + 600; t += 1) {
        smp = sample_of(t, burst, true);
        detector_observe(d, &smp);
    }
    assert_int_equal(detector_state(d), DETECTOR_LOUD);
    detector_get_view(d, &v);
    assert_int_equal(v.samples_learned, 2);
    assert_true(v.baseline[DS_MX] < 5);
    detector_free(d);
}

/* An hour's own baseline is used once it has baseline_hour_days x 60 minutes. */
static void test_threshold_hour_days(void **state)
{
    struct detector_settings set = default_settings();
    struct detector *d;
    struct detector_sample smp;
    struct detector_view v;

    (void)state;
    set.hour_days = 1;
    d = detector_new(&set);
    assert_non_null(d);
    for (int m = 0; m < 60; m++) {
        smp = sample_of(TR0 + 60.0 * m, (struct figures){5, 5, 50, 100}, true);
        smp.hour = 5;
        detector_observe(d, &smp);
        detector_get_view(d, &v);
        assert_false(v.hourly[DS_MX]); /* judged with m minutes learned */
    }
    smp = sample_of(TR0 + 3600, (struct figures){5, 5, 50, 100}, true);
    smp.hour = 5;
    detector_observe(d, &smp);
    detector_get_view(d, &v);
    assert_true(v.hourly[DS_MX]);
    smp.now += 60;
    smp.hour = 6;
    detector_observe(d, &smp);
    detector_get_view(d, &v);
    assert_false(v.hourly[DS_MX]);
    detector_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_study_four_days_own_dns),
        cmocka_unit_test(test_study_four_days_tdns),
        cmocka_unit_test(test_newsletter_burst_is_not_relay),
        cmocka_unit_test(test_odd_minute_below_minimum),
        cmocka_unit_test(test_missing_dns_relay_domains_alone),
        cmocka_unit_test(test_baselines_survive_restart),
        cmocka_unit_test(test_threshold_mx_and_domains),
        cmocka_unit_test(test_threshold_alpha_band),
        cmocka_unit_test(test_threshold_alpha_min_messages),
        cmocka_unit_test(test_threshold_loud_after),
        cmocka_unit_test(test_threshold_quiet_hysteresis),
        cmocka_unit_test(test_threshold_quiet_after_break),
        cmocka_unit_test(test_threshold_dns_sources),
        cmocka_unit_test(test_threshold_learning_clip),
        cmocka_unit_test(test_threshold_learning_only_quiet),
        cmocka_unit_test(test_threshold_hour_days),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

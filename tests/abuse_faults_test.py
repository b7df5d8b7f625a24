#!/usr/bin/env python3
"""Abuse probes: the store and the name server failing under load, and held answers across
reloads.

A daemon with store = redis on a private redis-server and its own lookups to a private BIND
named (both loopback, stopped by PID), while a well-behaved client, one connection used as
smtpd uses it (CONNECT, RCPTs, END-OF-MESSAGE, about 80 requests/s), keeps an exact model of
what the daemon must count:
  - Redis SIGSTOPped for 10 s, then SIGCONT;
  - Redis killed (-9), down 10 s, started again on the same socket, empty;
  - named SIGSTOPped (receives, never answers) for 10 s, with dns_wait 0 and with dns_wait 300ms.
Each asserts every answer came, none later than SLOWEST (or dns_wait + margin), VmRSS grew by
less than RSS_GROWTH, /metrics' request counter and /status' totals equal what the client sent,
and, for Redis, that the store's totals and minute hashes equal them after recovery with no
minute dropped from the backlog (relaywatch.conf(5): store_backlog).

Answer ownership: an answer held for dns_wait (named paused) while the daemon is reloaded 60
times with new answer texts (more than the engine's table of interned texts holds, so it is
reset under the held answer) comes out as decided, byte for byte.
Usage: abuse_faults_test.py --relaywatchd PATH --relaywatch PATH [-k NAME]
"""
import os
import re
import signal
import socket
import sys
import threading
import time

import dns_servers
import store_test
import testlib
from dns_servers import Named, Zone
from store_test import Daemon, Redis, Smtpd, check_convergence, pick, store_of
from testlib import policy_request, recv_answer, wait_for

RELAYWATCHD = None
RELAYWATCH = None
TMP = None

SLOWEST = 1.0             # seconds; Postfix waits 100 s, the point is "never stuck"
RATE = 80                 # requests/s of the good client
OUTAGE = 10.0             # seconds
RSS_GROWTH = 8 << 20      # bytes the daemon may grow by from the fault on
DNS_WAIT = 0.3            # seconds, for the probe with dns_wait
ZONES = ("example", "example.org")


def use_store_helpers():
    """store_test's helpers read their module's globals: the same programs and temp dir."""
    store_test.RELAYWATCHD, store_test.RELAYWATCH, store_test.TMP = RELAYWATCHD, RELAYWATCH, TMP


def rss(d):
    with open("/proc/%d/status" % d.proc.pid) as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1)) * 1024


def requests_metric(d):
    """Sum of relaywatch_requests_total over its labels."""
    return sum(int(float(m)) for m in
               re.findall(r"^relaywatch_requests_total\{[^}]*\} (\S+)$", d.get("/metrics"), re.M))


class GoodClient:
    """One Smtpd connection paced at RATE requests/s in a thread, until stop()."""

    def __init__(self, d, seed, domain_space=200):
        self.smtpd = Smtpd(d, seed, domain_space)
        self.stopping = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        began = time.monotonic()
        try:
            while not self.stopping.is_set():
                self.smtpd.session()
                ahead = began + self.smtpd.requests / RATE - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        except Exception as exc:  # reported by stop()
            self.error = repr(exc)

    def stop(self):
        self.stopping.set()
        self.thread.join(30)
        self.smtpd.close()
        assert self.error is None, "good client: " + self.error
        return self.smtpd


def start_named():
    zones = {}
    for name in ZONES:
        z = Zone(name, ttl=2, soa_ttl=2, negative_ttl=2)
        z.mx("@", "mx." + name)
        z.a("mx", "127.0.0.25")
        zones[name] = z.data()
    named = Named(TMP, zones)
    named.start()
    testlib.STARTED.append(named.proc)
    return named


def lookups_ended(d, nc, mx_lookups):
    """Every lookup the requests started has ended: a PTR per session, an MX per transaction
    and per relay RCPT (all answered DUNNO), each in exactly one outcome."""
    dns = d.status()["hosts"][0]["totals"]["dns_detail"]

    def ended(t):
        return sum(v for o, v in dns.get(t, {}).items() if o != "upstream")
    return ended("ptr") == nc and ended("mx") == mx_lookups


def probe(fault, heal, down, dns_wait=0.0, domain_space=200, slowest=SLOWEST, align=False):
    """The good client runs 2 s, `fault()`, OUTAGE s, `heal()`, 2 s; then the checks.
    `down(d)` asserts, just before `heal()`, that the daemon noticed the fault.  align: the
    client starts between seconds 48 and 56 of a minute, so that the fault comes near its end
    and the minute gets no counts once the store is back (only the backlog can write it
    again)."""
    use_store_helpers()
    store_test.MAX_LATENCY = slowest  # Smtpd prints each answer slower than this
    r = Redis()
    named = start_named()
    host = "mx-faults"
    d = Daemon(host, "redis+unix://" + r.sock, "-o", "resolver=" + named.address,
               "-o", "dns_lookups=client_ptr, sender_mx, recipient_mx",
               "-o", "dns_wait=%gs" % dns_wait)
    try:
        wait_for(lambda: store_of(d.status()).get("connected") is True, 5, "store connected")
        rss_start = rss(d)
        if align and not 48 <= time.time() % 60 <= 56:
            time.sleep((48 - time.time()) % 60)
        good = GoodClient(d, seed=7, domain_space=domain_space)
        time.sleep(2)
        # Measured from here: the first requests touch the tables the daemon allocated at start.
        rss_before = rss(d)
        fault(r, named)
        time.sleep(OUTAGE)
        down(d)
        heal(r, named)
        time.sleep(2)
        s = good.stop()
        rss_after = rss(d)
        d.assert_alive()
        print("  %d requests, slowest answer %.1f ms, VmRSS %.1f at start, %.1f at the fault, "
              "%.1f after (MiB)" % (s.requests, s.max_latency * 1e3, rss_start / 2**20,
                                    rss_before / 2**20, rss_after / 2**20),
              flush=True)
        assert s.max_latency < slowest, "an answer took %.0f ms" % (s.max_latency * 1e3)
        assert s.requests >= RATE * (OUTAGE + 4) * 0.8, "the client was slowed: %d" % s.requests
        # ASan keeps freed memory in quarantine (256 MiB at most) rather than reusing it.
        sanitized = b"__asan_" in open(RELAYWATCHD, "rb").read()
        assert rss_after - rss_before < RSS_GROWTH * (4 if sanitized else 1), \
            (rss_before, rss_after)
        # The daemon counted exactly what it was sent.
        assert requests_metric(d) == s.requests, (requests_metric(d), s.requests)
        totals = d.status()["hosts"][0]["totals"]
        assert pick(totals) == s.expected, (pick(totals), s.expected)
        # Lookups still running end (in a timeout at worst) and are counted.
        wait_for(lambda: lookups_ended(d, s.expected["nc"], s.expected["nf"] +
                                       s.expected["nr_relay"]),
                 timeout=15, what="every lookup to end and be counted")
        # The store has all of it once it is back; nothing fell out of the backlog.
        check_convergence(r, host, s.expected, 20, "after the fault")
        st = store_of(d.status())
        assert st["connected"] is True and st["dropped_minutes"] == 0, st
    finally:
        try:
            d.stop()
        finally:
            named.stop()
            r.stop()


def store_down(d):
    st = store_of(d.status())
    print("  store during the outage: %s" % st, flush=True)
    assert st["connected"] is False and st["last_error"], st


def lookups_timed_out(d):
    dns = d.status()["hosts"][0]["totals"]["dns_detail"]
    print("  lookups so far: %s" % dns, flush=True)
    assert sum(outcomes.get("timeout", 0) for outcomes in dns.values()) > 0, dns


def test_redis_stopped():
    probe(lambda r, n: r.proc.send_signal(signal.SIGSTOP),
          lambda r, n: r.proc.send_signal(signal.SIGCONT), store_down)


def kill_after_a_write(r, named):
    """Redis -9 once this minute's counts are in it: it loses them."""
    key = "rw:{mx-faults}:m:%d" % (time.time() // 60)
    wait_for(lambda: r.cli("exists", key).strip() == "1", 2, key + " written")
    r.kill()


def test_redis_killed():
    # Empty when it comes back: the minute written before (no counts since) only comes back
    # from the daemon's backlog.
    probe(kill_after_a_write, lambda r, n: r.start(), store_down, align=True)


def test_name_server_dead():
    # Many names, so that most lookups miss the cache and go to the silent server.
    probe(lambda r, n: n.pause(), lambda r, n: n.resume(), lookups_timed_out,
          domain_space=100000)


def test_name_server_dead_dns_wait():
    # Held answers go out within dns_wait, the server's silence notwithstanding.
    probe(lambda r, n: n.pause(), lambda r, n: n.resume(), lookups_timed_out,
          dns_wait=DNS_WAIT, domain_space=100000, slowest=DNS_WAIT + 0.5)


# ------------------------------------------------------------ answers across reloads

RELOADS = 60  # 5 new texts each: past the engine's 256 interned texts, so the table resets
HELD_CLIENT = "203.0.113.9"


def write_texts(path, n):
    """A configuration whose five answer texts all name reload n (same length every time)."""
    with open(path, "w") as f:
        for key, verb in (("limit_action", "DEFER 4.7.1"), ("culprit_action", "DEFER 4.7.1"),
                          ("culprit_escalate_action", "REJECT 5.7.1"),
                          ("loud_relay_action", "DEFER_IF_PERMIT"),
                          ("block_action", "REJECT 5.7.1")):
            f.write("%s = %s %s text of reload %03d\n" % (key, verb, key, n))


def rcpt(sender_domain, n):
    """A relay RCPT from HELD_CLIENT opening transaction n."""
    return policy_request("RCPT", client_address=HELD_CLIENT, client_name="h.example.net",
                          sender="a@%s" % sender_domain, recipient="b@dom%d.example" % n,
                          instance="77.%x.0.%d" % (int(time.time()), n))


def test_held_answer_across_reloads():
    use_store_helpers()
    conf = os.path.join(TMP, "reload-texts.cf")
    write_texts(conf, 0)
    decided = b"action=DEFER 4.7.1 limit_action text of reload 000\n\n"
    named = Named(TMP, {"example.org": Zone("example.org").mx("@", "mx.example.org")})
    named.start()
    testlib.STARTED.append(named.proc)
    d = Daemon("mx-reload", "memory", "-c", conf, "-o", "resolver=" + named.address,
               "-o", "dns_lookups=sender_mx", "-o", "dns_wait=40s", "-o", "dns_timeout=40s",
               "-o", "dns_tries=1", "-o", "limit_client_address=1")
    try:
        s = d.connect()
        s.settimeout(5)
        # Over the limit of one recipient: once the tick has seen it, the client is answered
        # limit_action (its sender domain cached: nothing held).
        n = 0
        while True:
            n += 1
            assert n < 100, "the client was never limited"
            s.sendall(rcpt("example.org", n))
            got = recv_answer(s)
            if got != testlib.DUNNO:
                break
            time.sleep(0.1)
        assert got == decided, got
        # A transaction whose sender domain is not cached, the name server silent: held.
        named.pause()
        s.sendall(rcpt("held.example.org", n + 1))
        s.settimeout(0.5)
        try:
            early = s.recv(4096)
        except socket.timeout:
            early = None
        assert early is None, "answered while its lookup ran: %r" % early
        # Reload with new texts, each applied before the next: the 50th resets the interned
        # table and writes its own limit_action where the held answer's text was.
        for i in range(1, RELOADS + 1):
            write_texts(conf, i)
            d.signal(signal.SIGHUP)
            wait_for(lambda: d.text().count("reload: configuration") >= i, 5,
                     "reload %d applied" % i)
        # The daemon answers meanwhile.
        c2 = d.connect()
        c2.sendall(policy_request("CONNECT", client_address="203.0.113.10"))
        assert recv_answer(c2) == testlib.DUNNO
        c2.close()
        named.resume()
        got = recv_answer(s, timeout=10)
        print("  held answer after %d reloads: %r" % (RELOADS, got), flush=True)
        assert got == decided, "held answer changed under reloads: %r" % got
        # The connection goes on as before.
        s.settimeout(5)
        s.sendall(rcpt("example.org", n + 2))
        assert recv_answer(s).startswith(b"action=DEFER 4.7.1 limit_action text of reload ")
        s.close()
        assert "reload: configuration" in d.text() and "problem" not in d.text()
    finally:
        try:
            d.stop()
        finally:
            named.stop()


TESTS = [
    test_redis_stopped,
    test_redis_killed,
    test_name_server_dead,
    test_name_server_dead_dns_wait,
    test_held_answer_across_reloads,
]


if __name__ == "__main__":
    sys.exit(testlib.main(sys.modules[__name__], TESTS, "rw-abuse-faults-", with_cli=True,
                          requires=("redis-server", "redis-cli", dns_servers.NAMED,
                                    dns_servers.RNDC, dns_servers.TSIG_KEYGEN)))

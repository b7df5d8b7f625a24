#!/usr/bin/env python3
"""Integration test of `relaywatch feed`: a real private BIND named writes a real query log
(queries sent with dig from several loopback addresses), the feed turns it into per-client,
per-type counts in a real private Redis, and the counts equal the log's lines as grep counts
them. Also: garbage lines mixed in, following a file across rotation and truncation, a syslog
UDP stream sent with logger(1), and a store that is not Redis.

Usage: feed_test.py --relaywatchd PATH --relaywatch PATH [-k NAME]
Exit 77 (skip) when not root or BIND named, dig or redis-server are missing.
"""
import collections
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import dns_servers
import store_test
import testlib
from dns_servers import Zone
from testlib import free_port, wait_for

RELAYWATCHD = None
RELAYWATCH = None
TMP = None
TYPES = ["MX", "A", "AAAA", "PTR"]


def setup():
    # store_test's Redis and Daemon helpers make their directories there.
    store_test.TMP = TMP
    store_test.RELAYWATCHD = RELAYWATCHD
    store_test.RELAYWATCH = RELAYWATCH


@contextlib.contextmanager
def named_and_redis(queries):
    """A private named that has answered query_mix(named, queries) and written its whole query
    log, and a private Redis: yields (named, the Redis, query_mix's sources), stops both at the
    end (a feed start_feed started is in testlib.STARTED: the test runner kills it if it runs)."""
    setup()
    named = start_named()
    r = store_test.Redis()
    try:
        sources = query_mix(named, n=queries)
        named.wait_log_stable()
        yield named, r, sources
    finally:
        r.stop()
        named.stop()


def start_named():
    z = Zone("test", ttl=300, soa_ttl=3600, negative_ttl=60)
    for i in range(5):
        z.mx("d%d" % i, "mx.d%d.test" % i).a("mx.d%d" % i, "127.0.0.25")
    rev = Zone("127.in-addr.arpa").ptr("127.0.0.5", "h5.test")
    d = os.path.join(TMP, "named-%d" % time.monotonic_ns())
    os.makedirs(d)
    named = dns_servers.Named(d, {"test": z, "127.in-addr.arpa": rev}).start()
    testlib.STARTED.append(named.proc)
    return named


def dig(named, source, name, qtype):
    subprocess.run(["dig", "-b", source, "-p", str(named.port), "@127.0.0.1", name, qtype,
                    "+tries=1", "+time=2", "+short"], capture_output=True, timeout=10)


def query_mix(named, n=30):
    """Queries from three sources, every type, existing and absent names."""
    sources = ["127.0.0.1", "127.0.3.1", "127.0.3.2"]
    for k in range(n):
        src = sources[k % 3]
        dig(named, src, "d%d.test" % (k % 7), "MX")
        if k % 2 == 0:
            dig(named, src, "mx.d%d.test" % (k % 5), "A")
        if k % 5 == 0:
            dig(named, src, "5.0.0.127.in-addr.arpa", "PTR")
        if k % 10 == 0:
            dig(named, src, "d1.test", "AAAA")
    return sources


def grep_counts(path, client):
    """Lines of the query log from client, per type, counted the way an operator would."""
    out = {}
    for t in TYPES:
        r = subprocess.run(["grep", "-cE", r"client (@0x[0-9a-f]+ )?%s#[0-9]+ .* IN %s " % (
            re.escape(client), t), path], capture_output=True, text=True)
        out[t] = int(r.stdout.strip() or 0)
    return out


def redis_counts(r, client):
    """Sum over rw:{client}:q:* (minute keys) of the TYPE@RUN fields, per type."""
    out = collections.Counter()
    prefix = "rw:{%s}:q:" % client
    for key in r.keys(prefix.replace("{", "\\{").replace("}", "\\}") + "*"):
        if not key[len(prefix):].isdigit():
            continue
        for field, value in r.hgetall(key).items():
            out[field.partition("@")[0]] += int(value)
    return {t: out.get(t, 0) for t in TYPES}


def feed_argv(r, *args):
    return [RELAYWATCH, "feed", "-o", "store=redis+unix://" + r.sock,
            "-o", "store_flush_interval=200ms"] + list(args)


def start_feed(r, *args):
    """A feed that runs until stop_feed (--follow, --syslog-udp)."""
    proc = subprocess.Popen(feed_argv(r, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    testlib.STARTED.append(proc)
    return proc


def stop_feed(proc, *signals):
    """Send signals (then SIGTERM); the feed must exit 0. Returns (stdout, stderr)."""
    for sig in signals + (signal.SIGTERM,):
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, (proc.returncode, out, err)
    return out, err


def wait_counts(r, want, timeout, what):
    """Until Redis holds want[client] (redis_counts) for every client in want."""
    wait_for(lambda: all(redis_counts(r, s) == want[s] for s in want), timeout=timeout,
             what=what)


def feed(r, *args, inp=None, check=True):
    argv = feed_argv(r, *args)
    p = subprocess.run(argv, input=inp, capture_output=True, text=True, timeout=60)
    if check:
        assert p.returncode == 0, (argv, p.returncode, p.stdout, p.stderr)
    return p


def test_named_log_to_redis():
    with named_and_redis(30) as (named, r, sources):
        p = feed(r, named.query_log)
        print("  " + p.stdout.strip(), flush=True)
        for src in sources:
            want = grep_counts(named.query_log, src)
            got = redis_counts(r, src)
            print("  %s: log %s, Redis %s" % (src, want, got), flush=True)
            assert sum(want.values()) > 0, want
            assert got == want, (src, got, want)
        total = sum(sum(grep_counts(named.query_log, s).values()) for s in sources)
        assert re.search(r"\b%d queries\b" % total, p.stdout), p.stdout
        assert re.search(r"\b0 errors\b", p.stdout), p.stdout
        # Fed again from standard input: a new run, so Redis holds the counts twice.
        with open(named.query_log) as f:
            feed(r, "-", inp=f.read())
        for src in sources:
            want = grep_counts(named.query_log, src)
            assert redis_counts(r, src) == {t: 2 * want[t] for t in TYPES}


def test_garbage_and_other_lines():
    with named_and_redis(10) as (named, r, sources):
        mixed = os.path.join(TMP, "mixed.log")
        garbage = ["", "not a log line at all", "\x00\x01binary\xff",
                   "24-Nov-2026 22:41:21.962 client @0x1 127.0.0.1: query: x.test IN MX +",
                   "24-Nov-2026 22:41:21.962 client 127.0.0.1#1 (x.test): query: x.test",
                   "x" * 100000]
        with open(named.query_log, errors="replace") as f, open(mixed, "w") as out:
            for k, line in enumerate(f):
                out.write(line)
                out.write(garbage[k % len(garbage)] + "\n")
        p = feed(r, mixed)
        print("  " + p.stdout.strip(), flush=True)
        m = re.search(r"\b(\d+) errors\b", p.stdout)
        assert m and int(m.group(1)) > 0, p.stdout
        for src in sources:
            assert redis_counts(r, src) == grep_counts(named.query_log, src)


def test_follow_across_rotation():
    with named_and_redis(12) as (named, r, _):
        with open(named.query_log) as f:
            lines = f.readlines()
        assert len(lines) > 20
        path = os.path.join(TMP, "follow.log")
        proc = start_feed(r, "--follow", path)
        third = len(lines) // 3
        with open(path, "w") as f:                      # created after the feed started
            f.writelines(lines[:third])
        time.sleep(0.6)
        os.rename(path, path + ".1")                    # rotation by rename, then more lines
        with open(path + ".1", "a") as f:               # late lines to the old file
            f.writelines(lines[third:third + 2])
        with open(path, "w") as f:
            f.writelines(lines[third + 2:2 * third])
        time.sleep(0.8)
        open(path, "w").close()                         # truncated in place (copytruncate),
        time.sleep(0.6)                                 # then written again
        with open(path, "a") as f:
            f.writelines(lines[2 * third:])
        want = collections.Counter()
        for src in ("127.0.0.1", "127.0.3.1", "127.0.3.2"):
            want[src] = grep_counts(named.query_log, src)

        def converged():
            return all(redis_counts(r, s) == want[s] for s in want)

        try:
            wait_for(converged, timeout=10, what="followed counts in Redis")
        except AssertionError:
            raise AssertionError("followed: Redis %s, log %s" % (
                {s: redis_counts(r, s) for s in want}, dict(want)))
        out, err = stop_feed(proc)
        print("  " + out.strip(), flush=True)


def test_syslog_udp():
    with named_and_redis(9) as (named, r, _):
        with open(named.query_log) as f:
            # The message part, as named hands it to syslog (no time of its own there).
            msgs = [line.split(" ", 2)[2].rstrip("\n") for line in f if " query: " in line]
        port = free_port()
        proc = start_feed(r, "--syslog-udp", "127.0.0.1:%d" % port)
        wait_for(lambda: subprocess.run(["ss", "-Hlun", "sport = :%d" % port],
                                        capture_output=True, text=True).stdout.strip() != "",
                 what="the feed to listen")
        half = len(msgs) // 2
        for k, m in enumerate(msgs):
            # Both header forms: RFC 5424 (logger's default) and RFC 3164.
            fmt = [] if k < half else ["--rfc3164"]
            subprocess.run(["logger", "-n", "127.0.0.1", "-P", str(port), "-d", "-p",
                            "local1.info", "-t", "named"] + fmt + ["--", m], check=True)
        want = {s: grep_counts(named.query_log, s) for s in ("127.0.0.1", "127.0.3.1")}
        wait_counts(r, want, 10, "syslog counts in Redis")
        out, err = stop_feed(proc, signal.SIGUSR1)
        print("  " + out.strip().splitlines()[-1], flush=True)


def test_daemon_shows_tdns():
    """relaywatchd with tdns_client reads the feed's counts for it back: /status windows show
    them beside its own lookups, equal to the log's lines; stale once the feed stops."""
    with named_and_redis(12) as (named, r, _):
        d = None
        try:
            d = store_test.Daemon("mx-tdns", "redis+unix://" + r.sock,
                                  "-o", "tdns_client=127.0.3.1", "-o", "tdns_stale_after=2s",
                                  "-o", "store_flush_interval=200ms")
            h = d.status()["hosts"][0]
            assert h["tdns"]["client"] == "127.0.3.1" and h["tdns"]["stale"] is True, h["tdns"]
            feed(r, named.query_log)
            want = grep_counts(named.query_log, "127.0.3.1")

            def shown():
                w = d.status()["hosts"][0]["windows"]["1h"]["tdns"]
                return {"MX": w["mx"], "A": w["a"], "AAAA": w["aaaa"], "PTR": w["ptr"]} == want \
                    and w["stale"] is False

            wait_for(shown, timeout=10, what="/status tdns equal to the log")
            h = d.status()["hosts"][0]
            print("  tdns 1h %s; %s" % (h["windows"]["1h"]["tdns"], h["tdns"]), flush=True)
            assert h["windows"]["1h"]["dns"] is not None
            wait_for(lambda: d.status()["hosts"][0]["tdns"]["stale"] is True, timeout=10,
                     what="tdns marked stale after tdns_stale_after")
            metrics = d.get("/metrics")
            assert 'relaywatch_window_tdns_queries{window="1h",type="mx"} %d' % want["MX"] in \
                metrics, metrics
            assert "relaywatch_tdns_stale 1" in metrics
            # Without a shared store tdns_client is refused at start.
            p = subprocess.run([RELAYWATCHD, "-t", "-o", "tdns_client=127.0.3.1"],
                               capture_output=True, text=True, timeout=10)
            assert p.returncode == 1 and "tdns_client" in p.stderr, p
        finally:
            if d is not None:
                d.stop()


def test_redis_outage_while_following():
    """Redis killed while the feed follows a growing log: the counts wait in memory, the failed
    flushes are counted, and all of them reach the restarted (empty) Redis."""
    with named_and_redis(12) as (named, r, _):
        with open(named.query_log) as f:
            lines = f.readlines()
        path = os.path.join(TMP, "outage.log")
        with open(path, "w") as f:
            f.writelines(lines[:len(lines) // 2])
        proc = start_feed(r, "-o", "store_timeout=500ms", "--follow", path)
        want = {s: grep_counts(path, s) for s in ("127.0.0.1", "127.0.3.1")}
        wait_counts(r, want, 10, "the first half in Redis")
        r.kill()
        with open(path, "a") as f:
            f.writelines(lines[len(lines) // 2:])
        time.sleep(1.5)                                 # flushes fail meanwhile
        r.start()                                       # empty: no persistence
        want = {s: grep_counts(named.query_log, s) for s in want}
        wait_counts(r, want, 15, "every count in the restarted Redis")
        out, err = stop_feed(proc)
        m = re.search(r"(\d+) failed flushes", out)
        print("  " + out.strip(), flush=True)
        assert m and int(m.group(1)) > 0, out
        assert "counts are kept" in err and "answers again" in err, err


def test_feed_clients():
    """feed_clients keeps only the clients in its networks (127.0.3.0/31 holds 127.0.3.1 of the
    three sources, not 127.0.3.2 just past it)."""
    with named_and_redis(10) as (named, r, sources):
        p = feed(r, "-o", "feed_clients=127.0.3.0/31, 2001:db8::/32", named.query_log)
        print("  " + p.stdout.strip(), flush=True)
        for src in sources:
            want = grep_counts(named.query_log, src) if src == "127.0.3.1" else \
                {t: 0 for t in TYPES}
            assert redis_counts(r, src) == want, (src, redis_counts(r, src), want)
        assert sum(grep_counts(named.query_log, "127.0.3.1").values()) > 0


def test_unbound_and_dnsmasq_lines():
    """unbound's and dnsmasq's query logs: queries counted at their own time (unbound's Unix
    time gives the minute key), unbound's replies counted as other lines, not twice."""
    setup()
    r = store_test.Redis()
    try:
        log = os.path.join(TMP, "resolvers.log")
        with open(log, "w") as f:
            f.write("[1700000000] unbound[1234:0] info: 127.0.5.1 example.com. MX IN\n"
                    "[1700000000] unbound[1234:0] info: 127.0.5.1 example.com. MX IN NOERROR "
                    "0.000123 0 55\n"
                    "[1700000061] unbound[1234:0] query: 127.0.5.1 example.com. A IN\n"
                    "[1700000061] unbound[1234:0] reply: 127.0.5.1 example.com. A IN NOERROR "
                    "0.000000 1 64\n"
                    "[1700000061] unbound[1234:0] notice: init module 0: validator\n"
                    "Nov 24 22:41:21 dnsmasq[123]: query[MX] example.com from 127.0.5.2\n"
                    "Nov 24 22:41:21 dnsmasq[123]: 1 127.0.5.2/41234 query[PTR] "
                    "1.0.0.127.in-addr.arpa from 127.0.5.2\n"
                    "Nov 24 22:41:21 dnsmasq[123]: forwarded example.com to 192.0.2.53\n")
        p = feed(r, log)
        print("  " + p.stdout.strip(), flush=True)
        assert re.search(r"\b8 lines, 4 queries, 4 other lines, 0 errors\b", p.stdout), p.stdout
        assert redis_counts(r, "127.0.5.1") == {"MX": 1, "A": 1, "AAAA": 0, "PTR": 0}
        assert redis_counts(r, "127.0.5.2") == {"MX": 1, "A": 0, "AAAA": 0, "PTR": 1}
        # The minutes are unbound's own: 1700000000 // 60 and 1700000061 // 60.
        keys = sorted(k for k in r.keys("rw:\\{127.0.5.1\\}:q:*") if k[-1].isdigit())
        assert keys == ["rw:{127.0.5.1}:q:28333333", "rw:{127.0.5.1}:q:28333334"], keys
    finally:
        r.stop()


def test_needs_a_shared_store():
    p = subprocess.run([RELAYWATCH, "feed", "-o", "store=memory", "/dev/null"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2, p
    assert "feed needs a shared store" in p.stderr, p.stderr


TESTS = [
    test_needs_a_shared_store,
    test_named_log_to_redis,
    test_unbound_and_dnsmasq_lines,
    test_garbage_and_other_lines,
    test_feed_clients,
    test_follow_across_rotation,
    test_syslog_udp,
    test_daemon_shows_tdns,
    test_redis_outage_while_following,
]

if __name__ == "__main__":
    if os.geteuid() != 0 or not dns_servers.named_available() or shutil.which("dig") is None:
        print("needs root, BIND named, rndc, tsig-keygen and dig")
        sys.exit(77)
    sys.exit(testlib.main(sys.modules[__name__], TESTS, "rw-feed-", with_cli=True,
                          requires=("redis-server", "redis-cli", "logger", "ss")))

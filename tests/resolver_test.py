#!/usr/bin/env python3
"""Integration test of relaywatchd's own DNS lookups against a real, private BIND named.

Each test starts its own named (tests/dns_servers.py: authoritative for zones generated here,
query log on, 127.0.0.1 and a free port) and its own relaywatchd with `resolver` pointing at it,
sends policy requests as Postfix 3.7 would, keeps an exact model of the lookups the daemon must
make (per session a PTR of the client address and an A of the name it gives, per transaction an
MX of the sender's domain, per relay recipient an MX of its domain; each distinct name asked
upstream once while its answer is cached), and checks /status against the model and against
named's query log (lines from 127.0.0.1, the daemon's source address). Everything is stopped by
PID.

Usage: resolver_test.py --relaywatchd PATH --relaywatch PATH [-k NAME]
Exit 77 (skip) when not root or BIND named, rndc or tsig-keygen are missing.
"""
import collections
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import dns_servers
import testlib
from dns_servers import Named, Zone, reverse_name
from testlib import (DUNNO, DaemonProcess, free_port, listening_tcp, policy_request,
                     recv_answer, wait_for)

RELAYWATCHD = None
RELAYWATCH = None
TMP = None

LOCAL_DOMAIN = "local.test"
DAEMON_SOURCE = "127.0.0.1"      # the address named logs for the daemon's queries
WINDOW = "1h"
TYPES = ["mx", "a", "aaaa", "ptr"]
ENDINGS = ["answered", "nxdomain", "nodata", "servfail", "timeout"]
FAST = 0.100                     # a policy answer that does not wait for DNS


# ---------------------------------------------------------------- zones as the model sees them

class ZoneModel:
    """What named answers for the zones it was given: (outcome, rdata list, ttl)."""

    def __init__(self, zones):
        self.rrs = collections.defaultdict(list)   # (name, TYPE) -> [(ttl, rdata)]
        self.names = set()                        # owner names and empty non-terminals
        self.apex = {}                            # zone name -> negative TTL
        for zname, zone in zones.items():
            data = zone.data() if isinstance(zone, Zone) else zone
            origin = zname.rstrip(".").lower()
            soa = data.get("soa", {})
            self.apex[origin] = min(soa.get("ttl", 3600), soa.get("minimum", 60))
            default_ttl = data.get("ttl", 300)
            records = list(data.get("records", []))
            records.append(("ns", "A", soa.get("ttl", 3600), "127.0.0.1"))
            records.append(("@", "NS", soa.get("ttl", 3600), "ns.%s." % origin))
            for owner, rtype, ttl, rdata in records:
                if owner == "@":
                    name = origin
                elif owner.endswith("."):
                    name = owner[:-1].lower()
                else:
                    name = "%s.%s" % (owner.lower(), origin)
                self.rrs[(name, rtype.upper())].append(
                    (default_ttl if ttl is None else ttl, rdata))
                labels = name.split(".")
                for i in range(len(labels)):
                    anc = ".".join(labels[i:])
                    self.names.add(anc)
                    if anc == origin:
                        break

    def zone_of(self, name):
        labels = name.split(".")
        for i in range(len(labels)):
            if ".".join(labels[i:]) in self.apex:
                return ".".join(labels[i:])
        raise AssertionError("no zone for %s in the test data" % name)

    def resolve(self, name, qtype):
        name = name.lower().rstrip(".")
        qtype = qtype.upper()
        zone = self.zone_of(name)
        neg = self.apex[zone]
        if name not in self.names:
            # wildcard at the closest encloser
            labels = name.split(".")
            for i in range(1, len(labels)):
                encloser = ".".join(labels[i:])
                if encloser in self.names:
                    wild = "*." + encloser
                    if wild not in self.names:
                        return "nxdomain", [], neg
                    name = wild
                    break
                if encloser == zone:
                    return "nxdomain", [], neg
        rrs = self.rrs.get((name, qtype))
        if rrs:
            return "answered", [r[1] for r in rrs], min(r[0] for r in rrs)
        return "nodata", [], neg


# ---------------------------------------------------------------- traffic

class Session:
    """One SMTP session: client address, whether the CONNECT hook sees it, and transactions
    (sender, [recipients]). Each send() uses a new client port and new instances, so the
    daemon sees a new session and new transactions every time."""

    _port = [20000]
    _instance = [0]

    def __init__(self, client, transactions, connect=True):
        self.client = client
        self.transactions = transactions
        self.connect = connect

    def requests(self):
        Session._port[0] = 20000 + (Session._port[0] - 20000 + 1) % 40000
        client = dict(client_address=self.client, client_port=str(Session._port[0]))
        out = []
        if self.connect:
            out.append(("CONNECT", policy_request("CONNECT", **client)))
        for sender, rcpts in self.transactions:
            Session._instance[0] += 1
            instance = "%x.%x.%x.0" % (os.getpid(), int(time.time()), Session._instance[0])
            for i, rcpt in enumerate(rcpts):
                out.append(("RCPT", policy_request("RCPT", sender=sender, recipient=rcpt,
                                                   recipient_count=str(i), instance=instance,
                                                   **client)))
            out.append(("END-OF-MESSAGE", policy_request(
                "END-OF-MESSAGE", sender=sender, recipient_count=str(len(rcpts)),
                instance=instance, queue_id="%X" % (0xA0000 + Session._instance[0]),
                size="2048", **client)))
        return out


def domain_of(addr):
    return addr.rpartition("@")[2].lower() if "@" in addr else ""


class Model:
    """The lookups a list of sessions must cause, in order: (type, name) pairs."""

    def __init__(self, zones, local_domains=(LOCAL_DOMAIN,), lookups=None):
        self.z = ZoneModel(zones)
        self.local = {d.lower() for d in local_domains}
        self.kinds = set(lookups if lookups is not None
                         else ("client_ptr", "client_a", "sender_mx", "recipient_mx"))

    def ptr_target(self, client):
        outcome, rdata, _ = self.z.resolve(reverse_name(client), "PTR")
        return rdata[0].rstrip(".").lower() if outcome == "answered" else None

    def lookups(self, sessions):
        out = []
        for s in sessions:
            if "client_ptr" in self.kinds:
                out.append(("ptr", reverse_name(s.client)))
                target = self.ptr_target(s.client)
                if target is not None and "client_a" in self.kinds:
                    out.append(("a", target))
            for sender, rcpts in s.transactions:
                if sender and "sender_mx" in self.kinds:
                    out.append(("mx", domain_of(sender)))
                for r in rcpts:
                    d = domain_of(r)
                    if d and d not in self.local and "recipient_mx" in self.kinds:
                        out.append(("mx", d))
        return out

    def outcome(self, key):
        return self.z.resolve(key[1], key[0])[0]


def by_type(keys):
    c = collections.Counter(t for t, _ in keys)
    return {t: c.get(t, 0) for t in TYPES}


# ---------------------------------------------------------------- daemon

class Daemon(DaemonProcess):
    """relaywatchd with a policy port, a status port and `resolver` set to named."""

    def __init__(self, resolver, *args, name="d"):
        self.port = free_port()
        self.http_port = free_port()
        argv = [RELAYWATCHD, "-e", "-o", "listen=inet:127.0.0.1:%d" % self.port,
                "-o", "http_listen=inet:127.0.0.1:%d" % self.http_port,
                "-o", "host_id=mx-resolvertest", "-o", "local_domains=" + LOCAL_DOMAIN,
                "-o", "resolver=" + resolver] + list(args)
        super().__init__(argv, TMP, name)
        wait_for(lambda: self.proc.poll() is not None or
                 (listening_tcp(self.port) and listening_tcp(self.http_port)),
                 what="relaywatchd to listen")
        self.assert_alive()
        self.latencies = []

    def assert_alive(self):
        rc = self.proc.poll()
        if rc is not None:
            raise AssertionError("relaywatchd is gone (%s); its log:\n%s" % (
                "signal %d" % -rc if rc < 0 else "exit %d" % rc, self.text()))

    def connect(self):
        self.assert_alive()
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def status(self):
        self.assert_alive()
        with urllib.request.urlopen("http://127.0.0.1:%d/status" % self.http_port,
                                    timeout=5) as r:
            return json.loads(r.read().decode())

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS for %d" % self.proc.pid)


class Conn:
    """One policy connection, as one smtpd process uses it; records each answer's latency."""

    def __init__(self, daemon):
        self.d = daemon
        self.sock = daemon.connect()
        self.latencies = []

    def ask(self, data, timeout=10):
        start = time.monotonic()
        self.sock.sendall(data)
        got = recv_answer(self.sock, timeout=timeout)
        took = time.monotonic() - start
        assert got == DUNNO, "answered %r" % got
        self.latencies.append(took)
        return took

    def send_sessions(self, sessions):
        for s in sessions:
            for _state, data in s.requests():
                self.ask(data)

    def close(self):
        self.sock.close()


def send(daemon, sessions):
    """Send sessions one request at a time over one connection; return the latencies."""
    c = Conn(daemon)
    try:
        c.send_sessions(sessions)
    finally:
        c.close()
    return c.latencies


# ---------------------------------------------------------------- reading /status

def dns_of(status):
    """(packets by type, detail by type and field, resolver object) from hosts[0]."""
    h = status["hosts"][0]
    w = h["windows"][WINDOW]
    for key in ("dns", "dns_detail"):
        assert key in w, "windows.%s has no %r: %s" % (WINDOW, key, json.dumps(w)[:1500])
    assert "resolver" in h, "hosts[0] has no resolver object: %s" % json.dumps(h)[:1500]
    for t in ("mx", "a", "ptr"):
        assert t in w["dns"], "windows.%s.dns lacks %r: %s" % (WINDOW, t, w["dns"])
        assert t in w["dns_detail"], "windows.%s.dns_detail lacks %r" % (WINDOW, t)
    packets = {t: w["dns"].get(t, 0) for t in TYPES}
    fields = ["hit", "merged", "upstream"] + ENDINGS + ["skipped"]
    detail = {}
    for t in TYPES:
        got = w["dns_detail"].get(t, {})
        for f in fields:
            assert t not in w["dns_detail"] or f in got, \
                "windows.%s.dns_detail.%s lacks %r: %s" % (WINDOW, t, f, got)
        detail[t] = {f: got.get(f, 0) for f in fields}
    return packets, detail, h["resolver"]


def lookups_ended(d):
    """Lookups of one type that have ended: hit + merged + skipped + upstream ones ended."""
    return d["hit"] + d["merged"] + d["skipped"] + sum(d[e] for e in ENDINGS)


def settle(daemon, totals, timeout=10.0, accounting=True):
    """Wait until nothing is in flight and, for each type, every lookup the model expects has
    ended (hit + merged + skipped + answered..timeout == total). Then, unless accounting is
    False, check_accounting(). Returns (packets, detail, resolver)."""
    deadline = time.monotonic() + timeout
    while True:
        packets, detail, resolver = dns_of(daemon.status())
        ok = resolver.get("outstanding") == 0 and all(
            lookups_ended(detail[t]) == totals.get(t, 0) for t in TYPES)
        if ok:
            if accounting:
                check_accounting(detail, totals)
            return packets, detail, resolver
        if time.monotonic() > deadline:
            raise AssertionError(
                "lookups did not settle in %.0fs: expected totals %s\n  dns %s\n  detail %s\n"
                "  resolver %s" % (timeout, totals, packets, json.dumps(detail),
                                   json.dumps(resolver)))
        time.sleep(0.05)


def check_accounting(detail, totals):
    """relaywatchd(8)'s identities, once nothing is in flight: every lookup ended in exactly one of
    hit, merged, skipped, answered, nxdomain, nodata, servfail, timeout (their sum is the
    lookups made), and "upstream" counts query packets, not lookups: at least one per lookup
    that ended upstream unless its send failed, more with retries (checked against named's
    log by the tests that can)."""
    bad = []
    for t in TYPES:
        d = detail[t]
        if lookups_ended(d) != totals.get(t, 0):
            bad.append("%s: hit %d + merged %d + skipped %d + ended upstream %d = %d, lookups %d"
                       % (t, d["hit"], d["merged"], d["skipped"],
                          sum(d[e] for e in ENDINGS), lookups_ended(d), totals.get(t, 0)))
    assert not bad, "dns_detail accounting broken:\n  %s\n  detail %s" % (
        "\n  ".join(bad), json.dumps(detail))


def check_skipped_total(detail, want):
    """The skipped lookups of all types, as dns_detail tells them."""
    got = sum(detail[t]["skipped"] for t in TYPES)
    assert got == want, "skipped lookups %d, expected %d" % (got, want)


def diff(after, before):
    return {t: {f: after[t][f] - before[t][f] for f in after[t]} for t in after}


def check_against_named(named, packets, what):
    """windows.1h.dns (query packets sent) == named's query-log lines from the daemon."""
    named.wait_log_stable()
    logged = named.query_counts(DAEMON_SOURCE)
    want = {t: logged.get(t.upper(), 0) for t in TYPES}
    others = {k: v for k, v in logged.items() if k.lower() not in TYPES}
    assert not others, "%s: named logged other query types from the daemon: %s" % (what, others)
    assert packets == want, ("%s: /status windows.%s.dns %s != named's query log from %s %s"
                             % (what, WINDOW, packets, DAEMON_SOURCE, want))
    return want


def expect_detail(detail, want, what):
    """Compare detail fields named in want ({type: {field: n}}), all others must be 0."""
    bad = []
    for t in TYPES:
        for f, got in detail[t].items():
            exp = want.get(t, {}).get(f, 0)
            if got != exp:
                bad.append("%s.%s: expected %d, got %d" % (t, f, exp, got))
    assert not bad, "%s: windows.%s.dns_detail differs from the model:\n  %s\n  detail %s" % (
        what, WINDOW, "\n  ".join(bad), json.dumps(detail))


def endings_of(model, keys):
    """{type: {ending: n}} for lookups that went upstream, from the zone model."""
    out = collections.defaultdict(collections.Counter)
    for k in keys:
        out[k[0]][model.outcome(k)] += 1
    return out


def stop_all(*things):
    """Stop daemons and servers in order; raise the first failure after trying all."""
    first = None
    for t in things:
        if t is None:
            continue
        try:
            t.stop()
        except Exception as exc:  # keep stopping the others
            first = first or exc
    if first is not None:
        raise first


def start_named(zones):
    """A private named for zones; registered so that run_tests kills it if a test breaks."""
    named = Named(new_dir("named"), zones).start()
    testlib.STARTED.append(named.proc)
    return named


def new_dir(name):
    d = os.path.join(TMP, "%s-%d" % (name, time.monotonic_ns()))
    os.makedirs(d)
    os.chmod(d, 0o755)
    return d


# ---------------------------------------------------------------- zone data for the tests

def mixed_zones():
    """test.: senders' and relay recipients' domains (MX, A-only: NODATA, absent: NXDOMAIN),
    forward names of clients; 127.in-addr.arpa.: PTR for some 127.0.1.x clients, none for
    127.0.2.x; ip6.arpa.: nothing (an IPv6 client gets NXDOMAIN)."""
    z = Zone("test", ttl=300, soa_ttl=3600, negative_ttl=300)
    z.mx("local", "mx.local.test")
    z.a("mx.local", "127.0.0.25")
    for i in range(1, 7):
        z.mx("s%d" % i, "mx.s%d.test" % i)
    z.a("s7", "127.0.0.26")                               # sender domain without MX: NODATA
    for i in range(50):
        if i < 40:
            z.mx("r%02d" % i, "mx.r%02d.test" % i, pref=10 + i % 3)
            if i % 4 == 0:
                z.mx("r%02d" % i, "mx2.r%02d.test" % i, pref=20)
        elif i < 45:
            z.a("r%02d" % i, "127.0.0.27")                # NODATA for MX
        # r45..r49: NXDOMAIN
    rev = Zone("127.in-addr.arpa", ttl=300, soa_ttl=3600, negative_ttl=300)
    for i in range(1, 9):
        ip = "127.0.1.%d" % i
        if i == 3:
            rev.ptr(ip, "C%d.Host.test" % i)              # upper case in the PTR answer
        else:
            rev.ptr(ip, "c%d.host.test" % i)
        if i <= 5:
            z.a("c%d.host" % i, ip)                       # forward-confirmed
        elif i == 6:
            z.mx("c6.host", "mx.s1.test")                 # name exists, no A: NODATA
        # c7, c8: the A lookup gets NXDOMAIN
    ip6 = Zone("ip6.arpa", ttl=300, soa_ttl=3600, negative_ttl=300)
    return {"test": z, "127.in-addr.arpa": rev, "ip6.arpa": ip6}


def mixed_sessions(seed, n):
    """n sessions from 13 clients: senders in existing, A-only, absent and local domains and
    the null sender; relay recipients over 50 domains (some upper case), local recipients."""
    rng = random.Random(seed)
    clients = ["127.0.1.%d" % i for i in range(1, 9)] + \
              ["127.0.2.%d" % i for i in range(1, 5)] + ["2001:db8::25"]
    senders = ["a@s%d.test" % i for i in range(1, 8)] + ["b@nosuch%d.test" % i for i in range(3)] \
        + ["c@" + LOCAL_DOMAIN, "d@S2.Test", ""]
    out = []
    for k in range(n):
        txns = []
        for _ in range(rng.choice([1, 1, 1, 2])):
            rcpts = []
            for j in range(rng.choice([1, 1, 2, 3, 4])):
                if rng.random() < 0.25:
                    rcpts.append("u%d@%s" % (j, LOCAL_DOMAIN))
                else:
                    dom = "r%02d.test" % rng.randrange(50)
                    if rng.random() < 0.1:
                        dom = dom.upper()
                    rcpts.append("v%d@%s" % (j, dom))
            # every sender and every client at least once, then at random
            txns.append((senders[k] if k < len(senders) and not txns else rng.choice(senders),
                         rcpts))
        client = clients[k] if k < len(clients) else rng.choice(clients)
        out.append(Session(client, txns, connect=rng.random() < 0.8))
    return out


# ---------------------------------------------------------------- tests

def test_named_harness():
    """The harness itself: named answers as the zone model says, query_counts() counts per
    client address, and starting named wrote no query line."""
    if shutil.which("dig") is None:
        print("  dig missing: harness self-check skipped")
        return
    zones = mixed_zones()
    zones["wild.test"] = Zone("wild.test", ttl=60, soa_ttl=5, negative_ttl=3600) \
        .mx("*", "mx.wild.test").a("mx", "127.0.0.25")
    model = ZoneModel(zones)
    named = start_named(zones)
    try:
        assert named.query_counts(DAEMON_SOURCE) == collections.Counter(), \
            "start-up wrote query lines"
        asks = [("r01.test", "MX"), ("r41.test", "MX"), ("r47.test", "MX"),
                (reverse_name("127.0.1.3"), "PTR"), (reverse_name("127.0.2.1"), "PTR"),
                ("c3.host.test", "A"), ("c6.host.test", "A"), ("c7.host.test", "A"),
                ("host.test", "A"), ("x.wild.test", "MX"), (reverse_name("2001:db8::25"), "PTR")]
        for name, qtype in asks:
            r = subprocess.run(["dig", "-b", "127.0.0.9", "-p", str(named.port), "@127.0.0.1",
                                name, qtype, "+norecurse", "+noall", "+comments", "+answer",
                                "+authority", "+tries=1", "+time=2"],
                               capture_output=True, text=True, timeout=10)
            out = r.stdout
            outcome, rdata, ttl = model.resolve(name, qtype)
            status = "NXDOMAIN" if outcome == "nxdomain" else "NOERROR"
            assert "status: %s" % status in out, (name, qtype, outcome, out)
            answer = [l.split() for l in out.split(";; ANSWER SECTION:\n")[1].split("\n\n")[0]
                      .splitlines()] if ";; ANSWER SECTION:" in out else []
            assert (len(answer) > 0) == (outcome == "answered"), (name, qtype, outcome, out)
            if answer:
                assert int(answer[0][1]) == ttl, (name, qtype, ttl, out)
            else:
                soa = [l.split() for l in out.splitlines() if "\tSOA\t" in l or " SOA " in l]
                assert soa and int(soa[0][1]) == ttl, ("negative TTL", name, ttl, out)
        named.wait_log_stable()
        got = named.query_counts("127.0.0.9")
        want = collections.Counter(q for _, q in asks)
        assert got == want, (got, want)
        assert named.query_counts(DAEMON_SOURCE) == collections.Counter()
        assert named.queries("127.0.0.9") == [(n.lower(), q) for n, q in asks], \
            named.queries("127.0.0.9")
    finally:
        named.stop()


def test_upstream_counts_match_named():
    """(a) A realistic mix: every distinct name is asked upstream once; /status's packet counts
    equal named's query-log lines from 127.0.0.1, type by type; endings match the zones."""
    zones = mixed_zones()
    model = Model(zones)
    named = start_named(zones)
    d = None
    try:
        d = Daemon(named.address)
        sessions = mixed_sessions(seed=7, n=60)
        latencies = send(d, sessions)
        keys = model.lookups(sessions)
        distinct = set(keys)
        totals = by_type(keys)
        upstream = by_type(distinct)
        packets, detail, resolver = settle(d, totals)
        print("  %d requests (slowest %.1f ms); lookups %s; distinct %s"
              % (len(latencies), 1000 * max(latencies), totals, upstream), flush=True)
        assert max(latencies) < FAST, "slowest answer %.0f ms" % (1000 * max(latencies))
        logged = check_against_named(named, packets, "after the mix")
        assert logged == upstream, "named's log %s, the model's distinct names %s" % (
            logged, upstream)
        pairs = collections.Counter(named.queries(DAEMON_SOURCE))
        want_pairs = collections.Counter((n, t.upper()) for t, n in distinct)
        assert pairs == want_pairs, "queries named saw vs the model:\n  extra %s\n  missing %s" % (
            sorted((pairs - want_pairs).items()), sorted((want_pairs - pairs).items()))
        ends = endings_of(model, distinct)
        for t in TYPES:
            dt = detail[t]
            assert dt["upstream"] == upstream[t], (t, dt, upstream[t])
            assert dt["hit"] + dt["merged"] == totals[t] - upstream[t], (t, dt, totals[t])
            for e in ENDINGS:
                assert dt[e] == ends[t][e], "%s %s: expected %d, got %d (%s)" % (
                    t, e, ends[t][e], dt[e], json.dumps(detail))
            assert dt["skipped"] == 0, (t, dt)
        assert ends["ptr"]["nxdomain"] > 0 and ends["mx"]["nxdomain"] > 0 and \
            ends["mx"]["nodata"] > 0 and ends["a"]["nodata"] > 0, ends  # the mix is a mix
        assert resolver["outstanding"] == 0, resolver
        assert resolver["cache_entries"] == len(distinct), \
            "resolver.cache_entries %s, distinct lookups %d" % (resolver["cache_entries"],
                                                               len(distinct))
        h = d.status()["hosts"][0]
        for c in h["culprits"]:
            for k in ("dns_lookups", "dns_upstream"):
                assert isinstance(c.get(k), int) and c[k] >= 0, "culprit lacks %s: %s" % (k, c)
            assert c["dns_upstream"] <= c["dns_lookups"], c
        check_skipped_total(detail, 0)
    finally:
        stop_all(d, named)


def test_cache_and_ttl():
    """(b) Repeats within the TTL are cache hits; names with a 3 s TTL (positive, and negative
    through an SOA TTL or an SOA MINIMUM of 3 s) are asked again once each after it ran out."""
    SHORT = 3
    z = Zone("test", ttl=300, soa_ttl=3600, negative_ttl=300)
    for i in range(6):
        z.mx("long%d" % i, "mx.long%d.test" % i)
        z.mx("short%d" % i, "mx.short%d.test" % i, ttl=SHORT)
    z.a("alonly", "127.0.0.27")                          # NODATA, negative TTL 300
    z.a("fwd-long", "127.0.1.1")
    z.a("fwd-short", "127.0.1.2", ttl=SHORT)
    neg1 = Zone("neg1.test", soa_ttl=SHORT, negative_ttl=3600)    # min(SOA TTL, MINIMUM) = 3
    neg2 = Zone("neg2.test", soa_ttl=3600, negative_ttl=SHORT)    # = 3
    rev = Zone("127.in-addr.arpa", ttl=300, soa_ttl=3600, negative_ttl=300)
    rev.ptr("127.0.1.1", "fwd-long.test")
    rev.ptr("127.0.1.2", "fwd-short.test")
    rev.ptr("127.0.1.3", "fwd-long.test", ttl=SHORT)
    zones = {"test": z, "neg1.test": neg1, "neg2.test": neg2, "127.in-addr.arpa": rev}
    model = Model(zones)
    short = {("mx", "short%d.test" % i) for i in range(6)} | {
        ("a", "fwd-short.test"), ("ptr", reverse_name("127.0.1.3")),
        ("mx", "x.neg1.test"), ("mx", "y.neg1.test"), ("mx", "x.neg2.test")}
    rcpts = ["u@long%d.test" % i for i in range(6)] + ["u@short%d.test" % i for i in range(6)] + \
        ["u@alonly.test", "u@nx.test", "u@x.neg1.test", "u@Y.neg1.test", "u@x.neg2.test"]
    sessions = [
        Session("127.0.1.1", [("a@long0.test", rcpts[0:5])]),
        Session("127.0.1.2", [("b@short0.test", rcpts[5:10]), ("", rcpts[10:13])]),
        Session("127.0.1.3", [("c@x.neg1.test", rcpts[13:])], connect=False),
        Session("127.0.2.1", [("d@nx.test", rcpts[3:8])]),
        Session("127.0.1.1", [("a@long1.test", ["u@" + LOCAL_DOMAIN] + rcpts[::3])]),
    ]
    named = start_named(zones)
    d = None
    try:
        d = Daemon(named.address)
        keys = model.lookups(sessions)
        distinct = set(keys)
        assert short <= distinct, short - distinct
        totals = by_type(keys)

        # Phase 1: everything new.
        t1 = time.monotonic()
        send(d, sessions)
        p1, d1, r1 = settle(d, totals)
        settled1 = time.monotonic()
        logged1 = check_against_named(named, p1, "phase 1")
        assert logged1 == by_type(distinct), (logged1, by_type(distinct))
        assert r1["cache_entries"] == len(distinct), (r1, len(distinct))
        for t in TYPES:
            assert d1[t]["upstream"] == by_type(distinct)[t], (t, d1[t])
            assert d1[t]["hit"] + d1[t]["merged"] == totals[t] - by_type(distinct)[t], (t, d1[t])

        # Phase 2, within every TTL: all hits, nothing upstream.
        send(d, sessions)
        p2, d2, r2 = settle(d, {t: 2 * totals[t] for t in TYPES})
        took = time.monotonic() - t1
        assert took < SHORT - 0.5, "phases 1 and 2 took %.1fs: too slow for a %ds TTL" % (
            took, SHORT)
        assert p2 == p1, "packets grew within the TTL: %s -> %s" % (p1, p2)
        delta = diff(d2, d1)
        expect_detail(delta, {t: {"hit": totals[t]} for t in TYPES}, "phase 2 (cache hits)")
        check_against_named(named, p2, "phase 2")

        # Phase 3, after the short TTLs ran out: those names once more, the others hits.
        # (1.2 s past the TTL: a cache that keeps whole seconds may keep an entry a second more)
        time.sleep(max(0.0, settled1 + SHORT + 1.2 - time.monotonic()))
        send(d, sessions)
        p3, d3, r3 = settle(d, {t: 3 * totals[t] for t in TYPES})
        delta = diff(d3, d2)
        again = by_type(short)
        ends = endings_of(model, short)
        for t in TYPES:
            assert delta[t]["upstream"] == again[t], \
                "phase 3 %s: %d upstream, expected %d (expired names)\n  %s" % (
                    t, delta[t]["upstream"], again[t], json.dumps(delta))
            assert delta[t]["hit"] + delta[t]["merged"] == totals[t] - again[t], (t, delta[t])
            for e in ENDINGS:
                assert delta[t][e] == ends[t][e], (t, e, delta[t], ends[t])
        logged3 = check_against_named(named, p3, "phase 3")
        pairs = collections.Counter(named.queries(DAEMON_SOURCE))
        want = collections.Counter({(n, t.upper()): 2 if (t, n) in short else 1
                                    for t, n in distinct})
        assert pairs == want, "named saw:\n  extra %s\n  missing %s" % (
            sorted((pairs - want).items()), sorted((want - pairs).items()))
        print("  phase 1 upstream %s; phase 3 again %s; named %s" % (
            by_type(distinct), again, logged3), flush=True)
    finally:
        stop_all(d, named)


def outage_sessions(tag, n):
    """n sessions whose every name is new (so none is cached), in tag."""
    out = []
    for i in range(n):
        out.append(Session("127.0.%d.%d" % (10 + tag, i + 1), [
            ("s@snd%d.%s.test" % (i, tag_name(tag)),
             ["r@rc%d-%d.%s.test" % (i, j, tag_name(tag)) for j in range(3)] +
             ["l@" + LOCAL_DOMAIN]),
            ("s@snd%d.%s.test" % (i, tag_name(tag)), ["r@rc%d-0.%s.test" % (i, tag_name(tag))])]))
    return out


def tag_name(tag):
    return "t%d" % tag


def outage_zones():
    z = Zone("test", ttl=300, soa_ttl=3600, negative_ttl=300)
    z.mx("*", "mx.test").a("mx", "127.0.0.25")
    rev = Zone("127.in-addr.arpa", ttl=300, soa_ttl=3600, negative_ttl=300)
    return {"test": z, "127.in-addr.arpa": rev}


def failed_lookups(model, sessions):
    """Lookups when nothing answers: no A lookups (no PTR name arrives)."""
    keys = [k for k in model.lookups(sessions) if k[0] != "a"]
    return keys, set(keys)


@contextlib.contextmanager
def outage(*daemon_args):
    """For the outage tests: named serving outage_zones() and relaywatchd using it with
    daemon_args; yields (the zones' Model, named, the daemon) and stops both at the end."""
    zones = outage_zones()
    model = Model(zones)
    named = start_named(zones)
    d = None
    try:
        d = Daemon(named.address, *daemon_args)
        yield model, named, d
    finally:
        stop_all(d, named)


def send_unanswered(d, model, sessions):
    """Sends sessions that named will not answer; returns (their lookups, the distinct ones,
    when the sending began, the policy answers' latencies)."""
    keys, distinct = failed_lookups(model, sessions)
    t0 = time.monotonic()
    return keys, distinct, t0, send(d, sessions)


def test_named_killed():
    """(c) named killed: every lookup fails and is counted as a timeout, failures are cached,
    and every policy answer still comes back fast (dns_wait=0)."""
    with outage("-o", "dns_timeout=300ms", "-o", "dns_tries=1") as (model, named, d):
        named.kill()
        sessions = outage_sessions(1, 8)
        keys, distinct, t0, latencies = send_unanswered(d, model, sessions)
        packets, detail, resolver = settle(d, by_type(keys), accounting=False)
        print("  %d requests, slowest %.1f ms; settled after %.2fs; dns %s; detail %s" % (
            len(latencies), 1000 * max(latencies), time.monotonic() - t0, packets,
            {t: {f: v for f, v in detail[t].items() if v} for t in TYPES}), flush=True)
        assert max(latencies) < FAST, "slowest answer %.0f ms with named killed" % (
            1000 * max(latencies))
        n = by_type(distinct)
        total = by_type(keys)
        for t in TYPES:
            dt = detail[t]
            assert dt["timeout"] == n[t], "%s: %d timeouts, %d distinct names failed: %s" % (
                t, dt["timeout"], n[t], dt)
            assert dt["hit"] + dt["merged"] == total[t] - n[t], (t, dt)
            assert all(dt[f] == 0 for f in ("answered", "nxdomain", "nodata", "servfail",
                                            "skipped")), (t, dt)
            # A datagram whose send() fails (ECONNREFUSED left by an earlier ICMP port
            # unreachable) is no packet: at most one per distinct name (dns_tries=1).
            assert packets[t] <= n[t], (t, packets, n)
        assert named.query_counts(DAEMON_SOURCE) == collections.Counter(), \
            "named logged queries before it was killed"
        # Failures stay cached (30 s): the same sessions again send nothing.
        latencies = send(d, sessions)
        p2, d2, _ = settle(d, {t: 2 * total[t] for t in TYPES}, accounting=False)
        assert max(latencies) < FAST, max(latencies)
        assert p2 == packets, "failures not cached: %s -> %s" % (packets, p2)
        expect_detail(diff(d2, detail), {t: {"hit": total[t]} for t in TYPES},
                      "repeats of failed lookups")
        check_accounting(detail, total)


def test_named_paused():
    """(c) named paused (SIGSTOP): lookups time out after dns_timeout, answers stay fast; once
    resumed, named logs exactly the packets the daemon sent, and new names are answered."""
    with outage("-o", "dns_timeout=300ms", "-o", "dns_tries=1") as (model, named, d):
        before = outage_sessions(1, 2)                   # named answering
        kb = model.lookups(before)
        send(d, before)
        p0, d0, _ = settle(d, by_type(kb))
        check_against_named(named, p0, "before the pause")

        named.pause()
        during = outage_sessions(2, 8)
        keys, distinct, t0, latencies = send_unanswered(d, model, during)
        totals = {t: by_type(kb)[t] + by_type(keys)[t] for t in TYPES}
        p1, d1, _ = settle(d, totals, timeout=5)
        waited = time.monotonic() - t0
        print("  paused: %d requests, slowest %.1f ms; lookups ended after %.2fs" % (
            len(latencies), 1000 * max(latencies), waited), flush=True)
        assert max(latencies) < FAST, "slowest answer %.0f ms with named paused" % (
            1000 * max(latencies))
        assert waited >= 0.25, "lookups ended after %.2fs, before dns_timeout=300ms" % waited
        n = by_type(distinct)
        delta = diff(d1, d0)
        for t in TYPES:
            assert delta[t]["upstream"] == n[t] and delta[t]["timeout"] == n[t], (t, delta[t])
            assert delta[t]["hit"] + delta[t]["merged"] == by_type(keys)[t] - n[t], (t, delta[t])
            assert all(delta[t][e] == 0 for e in ENDINGS if e != "timeout"), (t, delta[t])
        assert {t: p1[t] - p0[t] for t in TYPES} == n, (p0, p1, n)

        named.resume()
        check_against_named(named, p1, "after the resume (queued queries logged late)")
        # A failed name stays cached; a new one is answered.
        again = [during[0]]
        fresh = outage_sessions(3, 1)
        ka, kf = model.lookups(again), model.lookups(fresh)
        send(d, again + fresh)
        assert not [k for k in ka if k[0] == "a"], ka     # its client has no PTR
        totals2 = {t: totals[t] + by_type(ka)[t] + by_type(kf)[t] for t in TYPES}
        p2, d2, _ = settle(d, totals2)
        delta = diff(d2, d1)
        nf = by_type(set(kf))
        for t in TYPES:
            assert delta[t]["upstream"] == nf[t] and delta[t]["answered"] + \
                delta[t]["nxdomain"] == nf[t], (t, delta[t], nf)
        check_against_named(named, p2, "after the resume")


def test_retries_are_packets():
    """dns_tries=2 with named paused: each lookup sends two query packets (c-ares doubles the
    timeout: 200 ms, then 400 ms) and ends once, as a timeout; /status's packet counts equal
    named's log once it is resumed and has read the queued queries."""
    with outage("-o", "dns_timeout=200ms", "-o", "dns_tries=2") as (model, named, d):
        named.pause()
        sessions = outage_sessions(4, 4)
        keys, distinct, t0, latencies = send_unanswered(d, model, sessions)
        packets, detail, _ = settle(d, by_type(keys), accounting=False)
        waited = time.monotonic() - t0
        named.resume()
        n = by_type(distinct)
        print("  lookups ended after %.2fs; dns %s; distinct %s; detail %s" % (
            waited, packets, n, {t: {f: v for f, v in detail[t].items() if v} for t in TYPES}),
            flush=True)
        assert max(latencies) < FAST, max(latencies)
        assert 0.5 <= waited < 2.0, "2 tries of 200 ms + 400 ms ended after %.2fs" % waited
        assert packets == {t: 2 * n[t] for t in TYPES}, (packets, n)
        check_against_named(named, packets, "retries, after the resume")
        for t in TYPES:
            assert detail[t]["timeout"] == n[t], (t, detail[t], n)
        check_accounting(detail, by_type(keys))


def test_burst_outstanding_bound():
    """(d) 10,000 new relay domains as fast as four pipelining connections can send them with
    dns_max_outstanding=50: outstanding never seen above 50, every lookup accounted for
    (skipped + upstream + merged + hit), named's log equals the packets, RSS stays bounded."""
    N, CONNS, PER_TXN, LIMIT = 10000, 4, 100, 50
    zones = {"burst.test": Zone("burst.test", ttl=60, soa_ttl=60, negative_ttl=60)
             .mx("*", "mx.burst.test").a("mx", "127.0.0.25"),
             "127.in-addr.arpa": Zone("127.in-addr.arpa")}
    named = start_named(zones)
    d = None
    sanitized = b"__asan_" in open(RELAYWATCHD, "rb").read()
    rss_bound_kb = (512 if sanitized else 64) * 1024
    try:
        # fast_path=no: four clients each sending to 2,500 new domains is what the fast path
        # stops, and this test needs every RCPT to reach the resolver.
        d = Daemon(named.address, "-o", "dns_max_outstanding=%d" % LIMIT, "-o", "fast_path=no")
        rss_start = d.rss_kb()
        samples = {"outstanding": [], "rss": []}
        stop = threading.Event()

        def sampler():
            while not stop.is_set():
                try:
                    _, _, r = dns_of(d.status())
                    samples["outstanding"].append(r["outstanding"])
                    samples["rss"].append(d.rss_kb())
                except Exception as exc:
                    samples.setdefault("errors", []).append(repr(exc))
                time.sleep(0.01)

        errors = []

        def sender(k):
            try:
                s = d.connect()
                client = dict(client_address="127.0.3.%d" % (k + 1), client_port=str(30000 + k))
                s.sendall(policy_request("CONNECT", **client))
                assert recv_answer(s) == DUNNO
                per = N // CONNS
                for t in range(per // PER_TXN):
                    instance = "b%x.%x.%x.0" % (k, t, os.getpid())
                    batch = []
                    for j in range(PER_TXN):
                        i = k * per + t * PER_TXN + j
                        batch.append(policy_request(
                            "RCPT", sender="", recipient="x@d%05d.burst.test" % i,
                            recipient_count=str(j), instance=instance, **client))
                    batch.append(policy_request("END-OF-MESSAGE", sender="",
                                                recipient_count=str(PER_TXN),
                                                instance=instance, **client))
                    s.sendall(b"".join(batch))
                    got = b""
                    s.settimeout(10)
                    while got.count(b"\n\n") < len(batch):
                        chunk = s.recv(65536)
                        assert chunk, "daemon closed the connection"
                        got += chunk
                    assert got == DUNNO * len(batch), got[:200]
                s.close()
            except Exception as exc:
                errors.append(repr(exc))

        st = threading.Thread(target=sampler, daemon=True)
        st.start()
        t0 = time.monotonic()
        senders = [threading.Thread(target=sender, args=(k,)) for k in range(CONNS)]
        for t in senders:
            t.start()
        for t in senders:
            t.join(60)
        sent_in = time.monotonic() - t0
        assert not errors, errors
        packets, detail, resolver = settle(d, {"mx": N, "ptr": CONNS}, timeout=30)
        stop.set()
        st.join(5)
        rss_end = d.rss_kb()
        mx = detail["mx"]
        print("  %d RCPTs in %.2fs; mx %s; max outstanding seen %d in %d samples; "
              "RSS %d -> max %d -> %d kB (bound %d kB)" % (
                  N, sent_in, mx, max(samples["outstanding"] or [0]),
                  len(samples["outstanding"]), rss_start, max(samples["rss"] or [0]), rss_end,
                  rss_bound_kb), flush=True)
        assert not samples.get("errors"), samples["errors"][:3]
        assert len(samples["outstanding"]) >= 5, "too few samples: %d" % len(
            samples["outstanding"])
        assert max(samples["outstanding"]) <= LIMIT, "outstanding %d > %d" % (
            max(samples["outstanding"]), LIMIT)
        assert resolver["max_outstanding"] == LIMIT, resolver
        assert mx["hit"] == 0 and mx["merged"] == 0, mx       # every domain is new
        ended_upstream = sum(mx[e] for e in ENDINGS)
        assert mx["skipped"] + ended_upstream == N, mx
        assert mx["skipped"] > 0, mx                          # the cap did bite
        assert mx["answered"] == ended_upstream, mx           # the wildcard answers all
        assert mx["upstream"] == ended_upstream, mx           # one packet each: no retries
        if "outstanding_peak" in resolver:                   # not in the spec; used if there
            assert resolver["outstanding_peak"] <= LIMIT, resolver
        check_against_named(named, packets, "after the burst")
        assert packets["mx"] == mx["upstream"], (packets, mx)
        assert max(samples["rss"] + [rss_end]) < rss_bound_kb, "RSS %d kB over %d kB" % (
            max(samples["rss"] + [rss_end]), rss_bound_kb)
    finally:
        stop_all(d, named)


def test_dns_wait():
    """(e) dns_wait=500ms: with named answering, answers come back fast (the lookups end
    first); with named paused, a RCPT answer waits about 500 ms, no more."""
    zones = outage_zones()
    rev = zones["127.in-addr.arpa"]
    for i in range(1, 4):
        rev.ptr("127.0.20.%d" % i, "h%d.fwd.test" % i)
    named = start_named(zones)
    d = None
    try:
        d = Daemon(named.address, "-o", "dns_wait=500ms", "-o", "dns_timeout=2s",
                   "-o", "dns_tries=1")
        c = Conn(d)
        fast = []
        for i in range(1, 4):                           # RCPT first: PTR, A, sender MX, MX
            s = Session("127.0.20.%d" % i, [("s@w%d.test" % i, ["r@wr%d.test" % i])],
                        connect=False)
            reqs = s.requests()
            fast.append(c.ask(reqs[0][1]))
            c.ask(reqs[1][1])
        print("  named answering: RCPT answers in %s ms" % (
            ", ".join("%.1f" % (1000 * x) for x in fast)), flush=True)
        assert max(fast) < FAST, "RCPT answers took %s s with named answering" % fast
        named.pause()
        slow = []
        for i in range(1, 4):
            s = Session("127.0.21.%d" % i, [("s@p%d.test" % i, ["r@pr%d.test" % i])],
                        connect=False)
            slow.append(c.ask(s.requests()[0][1], timeout=5))
        print("  named paused: RCPT answers in %s ms" % (
            ", ".join("%.0f" % (1000 * x) for x in slow)), flush=True)
        for x in slow:
            assert 0.4 <= x < 1.5, "RCPT answer after %.3fs with dns_wait=500ms" % x
        c.close()
        named.resume()
    finally:
        stop_all(d, named)


def test_refused_is_servfail():
    """named answers REFUSED for names outside its zones (recursion off). c-ares retries such an
    answer and ends the query as if the server were unreachable: the daemon still counts it as
    servfail, not timeout, every try as a query, and caches the failure."""
    zones = outage_zones()
    named = start_named(zones)
    d = None
    try:
        d = Daemon(named.address, "-o", "dns_lookups=sender_mx, recipient_mx",
                   "-o", "dns_tries=2", "-o", "dns_timeout=1s")
        doms = ["out%d.example" % i for i in range(5)]
        sessions = [Session("127.0.30.%d" % (i + 1), [("s@" + dom, ["r@" + dom])])
                    for i, dom in enumerate(doms)]
        latencies = send(d, sessions)
        assert max(latencies) < FAST, max(latencies)
        # Each domain: the sender MX goes upstream, the recipient MX merges or hits.
        packets, detail, _ = settle(d, {"mx": 2 * len(doms)})
        print("  dns %s; mx %s" % (packets, detail["mx"]), flush=True)
        mx = detail["mx"]
        assert mx["servfail"] == len(doms) and mx["timeout"] == 0, mx
        assert mx["hit"] + mx["merged"] == len(doms), mx
        assert packets["mx"] == 2 * len(doms), packets   # dns_tries = 2
        check_against_named(named, packets, "REFUSED answers")
        send(d, sessions)                                 # cached failures: nothing sent
        p2, d2, _ = settle(d, {"mx": 4 * len(doms)})
        assert p2 == packets and d2["mx"]["hit"] - mx["hit"] == 2 * len(doms), (p2, d2["mx"])
    finally:
        stop_all(d, named)


def test_held_answers_idle_and_sigterm():
    """An answer held for dns_wait outlives idle_timeout (waiting for our own lookups is not
    idleness), and SIGTERM sends every held answer at once and exits 0."""
    zones = outage_zones()
    named = start_named(zones)
    d = None
    try:
        d = Daemon(named.address, "-o", "dns_wait=2500ms", "-o", "idle_timeout=1s",
                   "-o", "dns_timeout=5s", "-o", "dns_tries=1")
        named.pause()
        c = Conn(d)
        s = Session("127.0.40.1", [("s@h1.test", ["r@hr1.test"])], connect=False)
        took = c.ask(s.requests()[0][1], timeout=6)
        print("  held over idle_timeout=1s: answered after %.2fs" % took, flush=True)
        assert 2.3 <= took < 3.5, took
        conns = [Conn(d) for _ in range(5)]
        for i, cc in enumerate(conns):
            s = Session("127.0.41.%d" % (i + 1), [("s@t%d.test" % i, ["r@tr%d.test" % i])],
                        connect=False)
            cc.sock.sendall(s.requests()[0][1])
        time.sleep(0.3)                                   # all five held now
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        for cc in conns:
            assert recv_answer(cc.sock, timeout=5) == DUNNO
        took = time.monotonic() - t0
        print("  SIGTERM with 5 held answers: all answered in %.3fs" % took, flush=True)
        assert took < 1.0, took
        rc = d.proc.wait(10)
        assert rc == 0, (rc, d.text())
        for cc in conns + [c]:
            cc.close()
    finally:
        named.resume()
        stop_all(d, named)


def test_dns_lookups_subset():
    """dns_lookups picks the kinds of lookup: client_ptr and recipient_mx alone send no A and
    no sender MX; an empty value sends nothing."""
    zones = mixed_zones()
    named = start_named(zones)
    d = d2 = None
    try:
        kinds = ("client_ptr", "recipient_mx")
        model = Model(zones, lookups=kinds)
        d = Daemon(named.address, "-o", "dns_lookups=" + ", ".join(kinds))
        sessions = mixed_sessions(seed=3, n=20)
        keys = model.lookups(sessions)
        send(d, sessions)
        packets, detail, _ = settle(d, by_type(keys))
        assert packets == by_type(set(keys)), (packets, by_type(set(keys)))
        check_against_named(named, packets, "dns_lookups=client_ptr, recipient_mx")
        stop_all(d)
        d = None
        named.wait_log_stable()
        before = len(named.queries())
        d2 = Daemon(named.address, "-o", "dns_lookups=")
        send(d2, mixed_sessions(seed=4, n=10))
        time.sleep(0.3)
        packets, detail, resolver = dns_of(d2.status())
        named.wait_log_stable()
        assert packets == {t: 0 for t in TYPES}, packets
        assert all(lookups_ended(detail[t]) == 0 for t in TYPES), detail
        assert len(named.queries()) == before, named.queries()[before:]
    finally:
        stop_all(d, d2, named)


def test_tcp_retry_and_ipv6_forward():
    """An MX answer too large for UDP comes back truncated and c-ares asks again over TCP:
    both queries are counted (named logs both), the lookup once. An IPv6 client's PTR name is
    confirmed with AAAA, as Postfix's smtpd does it in the client's family."""
    big = Zone("big.test")
    # 90 records (named refuses more than 100 per name) of about 45 bytes: 4 KB, well over
    # the 1232 bytes c-ares announces.
    for i in range(90):
        host = "mx%03d-a-rather-long-mail-exchanger-name" % i
        big.mx("many", host + ".big.test", pref=i)
        big.a(host, "127.0.0.25")  # named refuses MX targets in the zone without an address
    v6 = Zone("v6.test").aaaa("host6", "2001:db8::25")
    rev6 = Zone("ip6.arpa").ptr("2001:db8::25", "host6.v6.test")
    zones = {"big.test": big, "v6.test": v6, "ip6.arpa": rev6}
    named = start_named(zones)
    d = None
    try:
        d = Daemon(named.address)
        sessions = [Session("2001:db8::25", [("bulk@many.big.test", ["u@" + LOCAL_DOMAIN])])]
        latencies = send(d, sessions)
        assert max(latencies) < FAST, max(latencies)
        packets, detail, _ = settle(d, {"mx": 1, "aaaa": 1, "ptr": 1})
        print("  dns %s; detail %s" % (packets, {t: {f: v for f, v in detail[t].items() if v}
                                                 for t in TYPES}), flush=True)
        expect_detail(detail, {"mx": {"upstream": 2, "answered": 1},
                               "aaaa": {"upstream": 1, "answered": 1},
                               "ptr": {"upstream": 1, "answered": 1}}, "TCP retry, IPv6 client")
        check_against_named(named, packets, "TCP retry, IPv6 client")
        # named says which of the two came over TCP ("T" among the flags).
        with open(named.query_log, errors="replace") as f:
            mx = [m.group("flags") or "" for m in map(dns_servers.QUERY_RE.search, f)
                  if m and m.group("qtype") == "MX"]
        assert sorted("T" in fl for fl in mx) == [False, True], "MX query flags %s" % mx
    finally:
        stop_all(d, named)


def test_through_unbound():
    """The study's topology: relaywatchd -> a local caching unbound -> named. What the daemon
    counts as sent upstream is what unbound logs for the daemon's address, type by type; named
    behind the cache sees each distinct name at most once."""
    if not dns_servers.unbound_available():
        print("  unbound missing: skipped")
        return
    zones = mixed_zones()
    named = start_named(zones)
    unbound = d = None
    try:
        unbound = dns_servers.Unbound(new_dir("unbound"), "127.0.0.1@%d" % named.port,
                                      address="127.0.0.35", log_queries=True).start()
        testlib.STARTED.append(unbound.proc)
        d = Daemon("127.0.0.35:%d" % unbound.port)
        model = Model(zones)
        sessions = mixed_sessions(seed=5, n=40)
        keys = model.lookups(sessions)
        send(d, sessions)
        packets, detail, _ = settle(d, by_type(keys))
        seen = unbound.query_counts(DAEMON_SOURCE)
        want = {t: seen.get(t.upper(), 0) for t in TYPES}
        print("  daemon sent %s; unbound logged %s" % (packets, want), flush=True)
        assert packets == want, (packets, want)
        assert packets == by_type(set(keys)), (packets, by_type(set(keys)))
        named.wait_log_stable()
        behind = named.query_counts(DAEMON_SOURCE)   # unbound's outgoing address
        for t in TYPES:
            assert behind.get(t.upper(), 0) <= packets[t], (t, behind, packets)
    finally:
        stop_all(d, unbound, named)


def test_query_ids_and_odd_requests():
    """Each query goes out with its own ID (c-ares 1.18's ares_send() keeps the ID it is given:
    a fixed one would leave only the source port against forged answers), a request without
    client_address is answered (sanitized builds once aborted on it), and a name with two
    trailing dots is not looked up. A bare UDP socket stands in for the name server and
    never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(0.2)
    d = None
    try:
        d = Daemon("127.0.0.1:%d" % listener.getsockname()[1], "-o", "dns_lookups=recipient_mx",
                   "-o", "dns_timeout=5s")
        c = Conn(d)
        for i in range(8):
            c.ask(policy_request("RCPT", client_address="192.0.2.1", client_port="1",
                                 recipient="u%d@id%d.test" % (i, i), instance="I1",
                                 recipient_count=str(i)))
        c.ask(b"request=smtpd_access_policy\nprotocol_state=RCPT\n"
              b"recipient=x@noclient.test\ninstance=I2\n\n")
        c.ask(policy_request("RCPT", client_address="192.0.2.1", client_port="1",
                             recipient="y@twodots.test..", instance="I1", recipient_count="9"))
        c.close()
        ids, names = [], []
        deadline = time.monotonic() + 5
        while len(ids) < 9 and time.monotonic() < deadline:
            try:
                data = listener.recv(2048)
            except socket.timeout:
                continue
            ids.append(data[:2])
            names.append(data[12:60])
        assert len(ids) == 9, "%d queries reached the server" % len(ids)
        assert len(set(ids)) >= 7, "query IDs %s" % [i.hex() for i in ids]
        assert not any(b"twodots" in n for n in names), names
        _packets, _detail, resolver = dns_of(d.status())
        assert resolver["invalid_names"] == 1, resolver
    finally:
        listener.close()
        stop_all(d)


TESTS = [
    test_named_harness,
    test_upstream_counts_match_named,
    test_cache_and_ttl,
    test_named_killed,
    test_named_paused,
    test_retries_are_packets,
    test_burst_outstanding_bound,
    test_dns_wait,
    test_dns_lookups_subset,
    test_tcp_retry_and_ipv6_forward,
    test_through_unbound,
    test_query_ids_and_odd_requests,
    test_refused_is_servfail,
    test_held_answers_idle_and_sigterm,
]


if __name__ == "__main__":
    if os.geteuid() != 0 or not dns_servers.named_available():
        print("needs root and BIND named, rndc, tsig-keygen (bind9, bind9-utils)")
        sys.exit(77)
    sys.exit(testlib.main(sys.modules[__name__], TESTS, "rw-resolver-", with_cli=True))

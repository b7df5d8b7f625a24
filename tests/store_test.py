#!/usr/bin/env python3
"""Integration test of relaywatchd's Redis store: a fleet of daemons sharing one Redis, Redis
killed, hung and restarted under load, a wrong password, a Redis ACL user (daemon and
relaywatch list/block), history across a daemon restart, and a
Redis that is not there at start.

Each test starts its own private redis-server (no persistence, on a unix socket under a temp
dir, or a free loopback port) and its own daemons on free loopback ports, sends realistic policy
request sequences (CONNECT, RCPT x k, END-OF-MESSAGE with recipient_count) while keeping an exact
model of what the daemon must count, then checks Redis (redis-cli) and /status against the model.
Everything is stopped by PID.
Usage: store_test.py --relaywatchd PATH --relaywatch PATH [-k NAME]
"""
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import testlib
from testlib import (DUNNO, STARTED, DaemonProcess, free_port, listening_tcp, listening_unix,
                     policy_request, recv_answer, wait_for)

RELAYWATCHD = None
RELAYWATCH = None
TMP = None

COUNTERS = ["nc", "nf", "nf_log", "nr", "nf_relay", "nf_inbound", "nr_relay", "nr_inbound",
            "refused"]
LOCAL_DOMAIN = "example.com"
MAX_LATENCY = 0.200  # a policy answer never waits for Redis


def new_dir(name):
    d = tempfile.mkdtemp(prefix=name + "-", dir=TMP)
    os.chmod(d, 0o755)
    return d


# ---------------------------------------------------------------- Redis

class Redis:
    """A private redis-server without persistence: on DIR/redis.sock, and on a TCP port if asked."""

    def __init__(self, requirepass=None, tcp=False, sock=None, acl_user=None):
        """acl_user (NAME, PASSWORD): the default user is off and NAME may use rw:* only."""
        self.dir = new_dir("redis")
        self.sock = sock or os.path.join(self.dir, "redis.sock")
        self.port = free_port() if tcp else 0
        self.password = requirepass
        self.user = None
        if acl_user is not None:
            self.user, self.password = acl_user
        self.start()

    def start(self):
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--unixsocket", self.sock, "--unixsocketperm", "777",  # relaywatchd runs as nobody
                "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--dir", self.dir]
        if self.user is not None:
            # Redis 7.0: each --user is a redis.conf "user" line.
            argv += ["--user", "default", "off",
                     "--user", self.user, "on", ">" + self.password, "~rw:*", "+@all"]
        elif self.password is not None:
            argv += ["--requirepass", self.password]
        self.log = open(os.path.join(self.dir, "redis-%d.log" % time.monotonic_ns()), "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        STARTED.append(self.proc)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited: %s" % open(self.log.name).read())
            if not (os.path.exists(self.sock) and listening_unix(self.sock)):
                return False
            if self.port and not listening_tcp(self.port):
                return False
            return self.cli("ping", check=False).strip() == "PONG"

        wait_for(ready, what="redis-server to answer PING")

    def cli(self, *args, db=0, check=True):
        argv = ["redis-cli", "-s", self.sock, "-n", str(db)]
        if self.user is not None:
            argv += ["--user", self.user]
        if self.password is not None:
            argv += ["--no-auth-warning", "-a", self.password]
        r = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=10)
        if check:
            assert r.returncode == 0 and not r.stdout.startswith("ERR"), (args, r)
        return r.stdout

    def kill(self):
        """SIGKILL: everything in it is lost (no persistence), the socket file stays."""
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    # What the daemon wrote, read back as the spec says to read it.
    def hgetall(self, key, db=0):
        out = self.cli("hgetall", key, db=db).rstrip("\n")
        if out == "":
            return {}  # no such key (redis-cli prints an empty line for an empty array)
        lines = out.split("\n")
        assert len(lines) % 2 == 0, (key, lines)
        return dict(zip(lines[0::2], lines[1::2]))

    def keys(self, pattern, db=0):
        return [k for k in self.cli("--scan", "--pattern", pattern, db=db).split("\n") if k]

    def host_totals(self, host, db=0):
        """Sum over the fields `counter@run` of rw:{host}:t, by counter."""
        return sum_fields(self.hgetall("rw:{%s}:t" % host, db=db))

    def host_minutes(self, host, db=0):
        """{minute: sums by counter} over the keys rw:{host}:m:<minute>."""
        out = {}
        prefix = "rw:{%s}:m:" % host
        for key in self.keys(prefix.replace("{", "\\{").replace("}", "\\}") + "*", db=db):
            out[int(key[len(prefix):])] = sum_fields(self.hgetall(key, db=db))
        return out


def sum_fields(fields):
    out = {c: 0 for c in COUNTERS}
    for field, value in fields.items():
        name, at, run = field.partition("@")
        assert at and run, "field %r is not counter@run" % field
        assert re.fullmatch(r"[0-9]+", value), "field %r has value %r" % (field, value)
        out[name] = out.get(name, 0) + int(value)
    return out


def sum_minutes(minutes):
    out = {c: 0 for c in COUNTERS}
    for counts in minutes.values():
        for c, v in counts.items():
            out[c] = out.get(c, 0) + v
    return out


def pick(counts):
    return {c: counts.get(c, 0) for c in COUNTERS}


# ---------------------------------------------------------------- daemon

class Daemon(DaemonProcess):
    """relaywatchd with a policy port, a status port, a host_id and a store."""

    def __init__(self, host, store, *args, name=None, wait=True):
        self.host = host
        self.port = free_port()
        self.http_port = free_port()
        self.http = "inet:127.0.0.1:%d" % self.http_port
        argv = [RELAYWATCHD, "-e", "-o", "listen=inet:127.0.0.1:%d" % self.port,
                "-o", "http_listen=" + self.http, "-o", "host_id=" + host,
                "-o", "local_domains=" + LOCAL_DOMAIN, "-o", "store=" + store,
                # The END-OF-MESSAGE hook is there: a message is relay mail if any of its
                # recipients is (with `auto` the first one before any END-OF-MESSAGE decides).
                "-o", "count_messages_at=end-of-message",
                # No lookups of their own unless a test asks: nothing may leave loopback.
                "-o", "dns_lookups=",
                # The loads here are relay mail to many domains from a few clients: the fast
                # path would stop them, and these tests are about the store, not about that.
                "-o", "fast_path=no"] + list(args)
        super().__init__(argv, TMP, name or host)
        if wait:
            self.wait_ready()

    def wait_ready(self):
        wait_for(lambda: self.proc.poll() is not None or
                 (listening_tcp(self.port) and listening_tcp(self.http_port)),
                 what="relaywatchd to listen")
        if self.proc.poll() is not None:
            raise AssertionError("relaywatchd exited %d at start:\n%s"
                                 % (self.proc.returncode, self.text()))

    def connect(self):
        self.assert_alive()
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def assert_alive(self):
        rc = self.proc.poll()
        if rc is not None:
            raise AssertionError("relaywatchd %s is gone (%s); its log:\n%s" % (
                self.host, "signal %d" % -rc if rc < 0 else "exit %d" % rc, self.text()))

    def get(self, path):
        self.assert_alive()
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.http_port, path),
                                    timeout=5) as r:
            return r.read().decode()

    def status(self):
        return json.loads(self.get("/status"))

    def cli_status(self):
        r = subprocess.run([RELAYWATCH, "status", "--json", "-o", "http_listen=" + self.http],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, "relaywatch status --json: %r" % r
        return json.loads(r.stdout)

    def store_lines(self, since=0):
        return [l for l in self.text()[since:].splitlines() if "store:" in l]


def store_of(status):
    h = status["hosts"][0]
    assert "store" in h, "hosts[0] has no store object: %s" % json.dumps(h)[:2000]
    return h["store"]


def went_away(line):
    return any(w in line for w in ("unreachable", "did not answer", "went away", "lost",
                                   "disconnected", "closed"))


def came_back(line):
    return re.search(r"\bconnected\b", line) is not None and not went_away(line) \
        and "not connected" not in line


# ---------------------------------------------------------------- traffic

class Smtpd:
    """One policy connection as one smtpd process uses it: sessions one after another, each
    CONNECT, then per message RCPT x k and END-OF-MESSAGE with the accepted recipient_count.
    Keeps `expected`, the counts the daemon must arrive at, and the answer latencies."""

    _next_pid = [0x1000]
    _lock = threading.Lock()

    def __init__(self, daemon, seed, domain_space=200):
        self.d = daemon
        self.domain_space = domain_space
        self.relay_domains = set()
        self.rng = random.Random(seed)
        with Smtpd._lock:
            Smtpd._next_pid[0] += 1
            self.pid = Smtpd._next_pid[0]
        self.sock = daemon.connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.expected = {c: 0 for c in COUNTERS}
        self.requests = 0
        self.max_latency = 0.0
        self.txn = 0
        self.client_port = 1024 + self.rng.randrange(60000)

    def ask(self, state, **attrs):
        data = policy_request(state, **attrs)
        start = time.monotonic()
        self.sock.sendall(data)
        got = recv_answer(self.sock, timeout=10)
        took = time.monotonic() - start
        assert got == DUNNO, "%s request answered %r" % (state, got)
        self.requests += 1
        self.max_latency = max(self.max_latency, took)
        if took > MAX_LATENCY:
            print("  slow answer: %s request took %.0f ms" % (state, took * 1000), flush=True)

    def session(self):
        rng, e = self.rng, self.expected
        self.client_port = 1024 + (self.client_port - 1024 + 1 + rng.randrange(50)) % 64000
        client = dict(client_address="198.51.100.%d" % rng.randrange(1, 255),
                      client_port=str(self.client_port),
                      client_name="host%d.example.net" % rng.randrange(1000),
                      helo_name="host.example.net")
        self.ask("CONNECT", **client)
        e["nc"] += 1
        for _ in range(1 if rng.random() < 0.8 else 2):
            self.txn += 1
            instance = "%x.%x.%x.%x" % (self.pid, int(time.time()), rng.randrange(1 << 20),
                                        self.txn)
            user = "user%d" % rng.randrange(50) if rng.random() < 0.5 else ""
            sender = "s%d@sender%d.example.org" % (rng.randrange(100), rng.randrange(20))
            k = rng.choice([1, 1, 1, 2, 3, 5])
            relay_any = False
            for i in range(k):
                if rng.random() < 0.3:
                    rcpt = "local%d@%s" % (i, LOCAL_DOMAIN)
                    e["nr_inbound"] += 1
                else:
                    domain = "dom%d.example" % rng.randrange(self.domain_space)
                    self.relay_domains.add(domain)
                    rcpt = "r%d@%s" % (i, domain)
                    e["nr_relay"] += 1
                    relay_any = True
                e["nr"] += 1
                self.ask("RCPT", sender=sender, recipient=rcpt, recipient_count=str(i),
                         instance=instance, sasl_username=user,
                         sasl_method="PLAIN" if user else "", **client)
            accepted = k - 1 if k > 1 and rng.random() < 0.2 else k
            self.ask("END-OF-MESSAGE", sender=sender, recipient="", recipient_count=str(accepted),
                     instance=instance, queue_id="%X" % rng.randrange(1 << 40),
                     size=str(rng.randrange(1000, 100000)), sasl_username=user,
                     sasl_method="PLAIN" if user else "", **client)
            e["nf"] += 1
            e["nf_relay" if relay_any else "nf_inbound"] += 1
            e["refused"] += k - accepted
            e["nf_log"] += 1 + k - accepted

    def close(self):
        self.sock.close()


def send_sessions(daemon, n, seed, domain_space=200, smtpd=None):
    """n sessions over one connection; returns (expected counts, requests, max latency)."""
    s = Smtpd(daemon, seed, domain_space)
    try:
        for _ in range(n):
            s.session()
    finally:
        s.close()
    if smtpd is not None:
        smtpd.append(s)
    return s.expected, s.requests, s.max_latency


class Load:
    """Closed-loop load from `conns` smtpd-like connections, each in its own thread, until
    stop(); then `expected` (sum of the connections' models), `requests`, `max_latency`."""

    def __init__(self, daemon, conns=4, seed=1):
        self.stopping = threading.Event()
        self.smtpds = [Smtpd(daemon, seed * 100 + i) for i in range(conns)]
        self.errors = []
        self.threads = [threading.Thread(target=self._run, args=(s,), daemon=True)
                        for s in self.smtpds]
        for t in self.threads:
            t.start()

    def _run(self, s):
        try:
            while not self.stopping.is_set():
                s.session()
        except Exception as exc:  # reported by stop()
            self.errors.append("%r" % exc)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(30)
        for s in self.smtpds:
            s.close()
        assert not self.errors, "load errors: %s" % self.errors
        self.expected = {c: sum(s.expected[c] for s in self.smtpds) for c in COUNTERS}
        self.requests = sum(s.requests for s in self.smtpds)
        self.max_latency = max(s.max_latency for s in self.smtpds)
        return self


def add(a, b):
    return {c: a.get(c, 0) + b.get(c, 0) for c in COUNTERS}


def wait_equal(get, want, timeout, what):
    """Poll get() until it equals want; fail with expected vs got."""
    deadline = time.time() + timeout
    got = None
    while True:
        got = get()
        if got == want:
            return got
        if time.time() > deadline:
            raise AssertionError("%s after %.0fs:\n  expected %s\n  got      %s"
                                 % (what, timeout, want, got))
        time.sleep(0.2)


def check_convergence(r, host, want, timeout, what, db=0):
    """Redis's totals and minute hashes for `host` both equal `want`."""
    wait_equal(lambda: pick(r.host_totals(host, db)), want, timeout, what + ": rw:{%s}:t" % host)
    wait_equal(lambda: pick(sum_minutes(r.host_minutes(host, db))), want, timeout,
               what + ": sum of rw:{%s}:m:*" % host)


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


# ---------------------------------------------------------------- tests

def test_fleet():
    r = Redis()
    store = "redis+unix://%s?db=2" % r.sock
    d1 = Daemon("mx1", store)
    d2 = Daemon("mx2", store)
    try:
        e1, n1, _ = send_sessions(d1, 40, seed=11)
        e2, n2, _ = send_sessions(d2, 25, seed=22)
        assert e1["refused"] > 0 and e1["nf_inbound"] > 0 and e1["nf_relay"] > 0, e1
        time.sleep(2.5)  # more than 2 flush intervals
        # Totals and minutes in Redis (db 2), each host's own.
        check_convergence(r, "mx1", e1, 5, "mx1", db=2)
        check_convergence(r, "mx2", e2, 5, "mx2", db=2)
        assert r.keys("rw:*", db=0) == [], "the daemon wrote outside db 2: %s" % r.keys("rw:*")
        hosts = r.cli("zrange", "rw:hosts", "0", "-1", "withscores", db=2).split()
        assert sorted(hosts[0::2]) == ["mx1", "mx2"], hosts
        for score in hosts[1::2]:
            assert abs(float(score) - time.time()) < 30, "rw:hosts score %s is not now" % score
        # Minute keys: named by unix minute, near now, with a TTL within store_retention (8d).
        now_minute = int(time.time()) // 60
        minutes = r.host_minutes("mx1", db=2)
        assert minutes and all(now_minute - 5 <= m <= now_minute for m in minutes), minutes
        for m in minutes:
            ttl = int(r.cli("ttl", "rw:{mx1}:m:%d" % m, db=2))
            assert 0 < ttl <= 8 * 86400 + 120, "rw:{mx1}:m:%d ttl %d" % (m, ttl)
        dkeys = r.keys("rw:\\{mx1\\}:d:*", db=2)
        assert dkeys, "no relay-domain HyperLogLog keys for mx1"
        union = int(r.cli("pfcount", *dkeys, db=2))
        assert 0 < union <= 200, "PFCOUNT of mx1's relay domains %d" % union

        # relaywatch status --json of mx1: both hosts, fleet totals = sums.
        want_fleet = add(e1, e2)

        def fleet_view():
            st = d1.cli_status()
            names = sorted(h.get("host") for h in st["hosts"])
            fleet = st.get("fleet") or {}
            return {"hosts": names, "fleet.hosts": fleet.get("hosts"),
                    "fleet.totals": pick(fleet.get("totals") or {})}

        want = {"hosts": ["mx1", "mx2"], "fleet.hosts": 2, "fleet.totals": want_fleet}
        wait_equal(fleet_view, want, 5, "mx1's status --json")
        st = d1.cli_status()
        assert st["hosts"][0]["host"] == "mx1", st["hosts"][0]["host"]
        assert pick(st["hosts"][0]["totals"]) == e1, (st["hosts"][0]["totals"], e1)
        other = [h for h in st["hosts"] if h["host"] == "mx2"][0]
        assert pick(other.get("totals") or {}) == e2, ("mx2 as mx1 sees it", other, e2)
        assert "windows" in other, other
        # mx2's busiest relay senders, as Redis holds them for the fleet.
        zs = r.cli("zrevrange", "rw:{mx2}:culprits", "0", "-1", "withscores", db=2).split()
        assert zs and all(":" in m for m in zs[0::2]), zs
        kinds = {c["kind"] for c in other.get("culprits", [])}
        assert kinds and kinds <= {"sasl_username", "client_address", "sender_domain"}, other
        top = max(other["culprits"], key=lambda c: c["recipients"])
        assert top["recipients"] == max(int(float(x)) for x in zs[1::2]), (top, zs)
        s = store_of(st)
        for key in ("backend", "connected", "flushes", "failures", "dropped_minutes",
                    "last_error"):
            assert key in s, "store lacks %r: %s" % (key, s)
        assert s["backend"] == "redis" and s["connected"] is True, s
        assert s["flushes"] >= 2 and s["failures"] == 0 and s["last_error"] is None, s
        m = d1.get("/metrics")
        assert metric(m, "relaywatch_store_up") == 1, m
        assert metric(m, "relaywatch_store_flushes_total") >= 2, m
        assert metric(m, "relaywatch_store_failures_total") == 0, m
        # Quiet store: no log line per flush.
        assert len(d1.store_lines()) <= 1, d1.store_lines()
    finally:
        try:
            d1.stop()
            d2.stop()
        finally:
            r.stop()


def test_relay_domain_burst():
    """A spam run: hundreds of new relay domains within one flush interval."""
    r = Redis()
    d = Daemon("mx-burst", "redis+unix://" + r.sock)
    try:
        seen = []
        e, n, worst = send_sessions(d, 600, seed=12, domain_space=10 ** 9, smtpd=seen)
        domains = len(seen[0].relay_domains)
        assert domains > 600, domains
        assert worst < MAX_LATENCY, worst
        time.sleep(1.5)
        d.assert_alive()
        check_convergence(r, "mx-burst", e, 5, "after the burst")
        dkeys = r.keys("rw:\\{mx-burst\\}:d:*")
        est = int(r.cli("pfcount", *dkeys)) if dkeys else 0
        print("  %d distinct relay domains sent, PFCOUNT %d" % (domains, est), flush=True)
        assert abs(est - domains) <= 0.05 * domains, "PFCOUNT %d for %d domains" % (est, domains)
    finally:
        try:
            d.stop()
        finally:
            r.stop()


def outage_under_load(how):
    """Redis killed (how='kill') or hung (how='stop') for ~3 s during closed-loop load."""
    r = Redis()
    d = Daemon("mx-out", "redis+unix://" + r.sock)
    try:
        # Connected before the outage.
        wait_for(lambda: store_of(d.status()).get("connected") is True, 5, "store connected")
        mark = len(d.text())
        load = Load(d, conns=4, seed=3 if how == "kill" else 4)
        time.sleep(1.2)
        t_out = time.time()
        if how == "kill":
            r.kill()
        else:
            r.proc.send_signal(signal.SIGSTOP)
        # The outage is noticed while it lasts: a flush fails (killed) or does not answer
        # within store_timeout, 2 s (hung).
        wait_for(lambda: store_of(d.status()).get("connected") is False, 4,
                 "store.connected false during the outage")
        down = store_of(d.status())
        up_metric = metric(d.get("/metrics"), "relaywatch_store_up")
        time.sleep(max(0.0, t_out + 3.5 - time.time()))
        load.stop()
        t_back = time.time()
        if how == "kill":
            r.start()  # same socket path, empty
        else:
            r.proc.send_signal(signal.SIGCONT)
        print("  %s: %d requests in %.1fs of load, max answer latency %.1f ms"
              % (how, load.requests, t_back - t_out + 1.2, load.max_latency * 1000), flush=True)
        assert load.max_latency < MAX_LATENCY, "an answer took %.0f ms" % (load.max_latency * 1e3)
        assert down["last_error"], "during the outage: %s" % down
        if how == "stop":
            # A flush whose replies are not back within store_timeout counts as a failure.
            assert down["failures"] >= 1, "during the outage: %s" % down
        assert up_metric == 0, "relaywatch_store_up during the outage: %s" % up_metric
        d.assert_alive()
        # Converges: backoff 1 s doubling, so within ~1+2+4+8 s of the outage's end.
        check_convergence(r, "mx-out", load.expected, 20, "after Redis came back")
        took = time.time() - t_back
        wait_for(lambda: store_of(d.status()).get("connected") is True, 5, "store connected")
        print("  %s: Redis totals equal what was sent %.1fs after it came back" % (how, took),
              flush=True)
        st = d.status()
        assert pick(st["hosts"][0]["totals"]) == load.expected, (st["hosts"][0]["totals"],
                                                                load.expected)
        lines = d.store_lines(mark)
        gone = [l for l in lines if went_away(l)]
        back = [l for l in lines if came_back(l)]
        assert len(gone) == 1 and len(back) == 1 and len(lines) == 2, \
            "expected one went-away and one connected line, got:\n" + "\n".join(lines)
        if how == "stop":
            assert "did not answer" in gone[0], gone[0]
        m = d.get("/metrics")
        assert metric(m, "relaywatch_store_up") == 1, m
        if how == "stop":
            assert metric(m, "relaywatch_store_failures_total") >= 1, m
        # Nothing further is written to Redis: the totals stay equal.
        time.sleep(1.5)
        assert pick(r.host_totals("mx-out")) == load.expected
    finally:
        try:
            d.stop()
        finally:
            r.stop()


def test_redis_killed_under_load():
    outage_under_load("kill")


def test_redis_hung_under_load():
    outage_under_load("stop")


def test_wrong_password():
    right, wrong = "right-pw-4b1d8e", "wrong-pw-93c7aa"
    r = Redis(requirepass=right)
    d = Daemon("mx-auth", "redis+unix://" + r.sock, "-o", "redis_password=" + wrong)
    try:
        e, n, worst = send_sessions(d, 20, seed=5)
        assert worst < MAX_LATENCY, worst
        time.sleep(4)  # several connection attempts (backoff 1 s, 2 s)
        e2, n2, worst = send_sessions(d, 5, seed=6)
        assert worst < MAX_LATENCY, worst
        log = d.text()
        auth = [l for l in log.splitlines() if "AUTH" in l]
        assert auth, "no log line mentions AUTH:\n" + log
        assert len(auth) == 1, "AUTH failure logged on every retry:\n" + "\n".join(auth)
        st = d.status()
        s = store_of(st)
        assert s["connected"] is False, s
        assert s["last_error"] and "AUTH" in s["last_error"], s
        assert wrong not in log and right not in log, "a password is in the log:\n" + log
        assert wrong not in json.dumps(st), "the password is in /status"
        assert wrong not in d.get("/metrics")
        assert metric(d.get("/metrics"), "relaywatch_store_up") == 0
        got, want = pick(st["hosts"][0]["totals"]), add(e, e2)
        assert got == want, "live totals:\n  expected %s\n  got      %s" % (want, got)
        assert r.keys("rw:*") == [], "something was written without AUTH"
        d.stop()
        assert wrong not in d.text()
    finally:
        try:
            d.stop()
        finally:
            r.stop()


def relaywatch_cli(store, *args, user=None, password=None, inp=None):
    """relaywatch CMD ARGS with the store and no daemon to ask; (exit status, stdout, stderr)."""
    conf = os.path.join(TMP, "empty.conf")
    open(conf, "w").close()
    argv = [RELAYWATCH, args[0], "-c", conf, "-o", "store=" + store, "-o", "http_listen="]
    for key, value in (("redis_username", user), ("redis_password", password)):
        if value is not None:
            argv += ["-o", "%s=%s" % (key, value)]
    p = subprocess.run(argv + list(args[1:]), input=inp, capture_output=True, text=True,
                       timeout=30)
    return p.returncode, p.stdout, p.stderr


def test_acl_user():
    """A Redis whose default user is off: the daemon and relaywatch AUTH as redis_username."""
    pw, wrong = "acl-pw-6d2f91", "acl-wrong-0b7e4c"
    r = Redis(acl_user=("rw", pw))
    store = "redis+unix://" + r.sock
    d = Daemon("mx-acl", store, "-o", "redis_username=rw", "-o", "redis_password=" + pw)
    bad = None
    try:
        e, n, worst = send_sessions(d, 10, seed=31)
        assert worst < MAX_LATENCY, worst
        check_convergence(r, "mx-acl", e, 10, "as the ACL user")
        assert store_of(d.status())["connected"] is True
        # The CLI as the same user; with the password alone it is the default user: refused.
        rc, out, err = relaywatch_cli(store, "block", "sasl_username:mallory", "1d", user="rw",
                                      password=pw)
        assert rc == 0, (rc, out, err)
        assert "sasl_username:mallory" in r.hgetall("rw:throttle"), r.hgetall("rw:throttle")
        rc, out, err = relaywatch_cli(store, "list", "--json", user="rw", password=pw)
        assert rc == 0 and "mallory" in out, (rc, out, err)
        rc, out, err = relaywatch_cli(store, "list", "--json", password=pw)
        assert rc == 1 and "WRONGPASS" in err and pw not in err, (rc, out, err)
        rc, out, err = relaywatch_cli(store, "list", user="rw")
        assert rc == 1 and "without redis_password" in err, (rc, out, err)
        # The feed too: one unbound query line of this minute.
        now = int(time.time())
        rc, out, err = relaywatch_cli(store, "feed", "-", user="rw", password=pw,
                                      inp="[%d] unbound[1:0] query: 127.0.5.9 example.com. MX IN\n"
                                      % now)
        assert rc == 0 and "0 errors" in out, (rc, out, err)
        fields = r.hgetall("rw:{127.0.5.9}:q:%d" % (now // 60))
        assert [f.partition("@")[0] for f in fields] == ["MX"], fields
        # A wrong password: one line naming the user, never a password; answers go on.
        bad = Daemon("mx-acl-bad", store, "-o", "redis_username=rw",
                     "-o", "redis_password=" + wrong, name="wrong-password")
        e2, n2, worst = send_sessions(bad, 10, seed=32)
        assert worst < MAX_LATENCY, worst
        time.sleep(3.5)  # retries at 1 s, 2 s
        log = bad.text()
        auth = [l for l in log.splitlines() if "AUTH" in l]
        assert len(auth) == 1 and "'rw'" in auth[0] and "WRONGPASS" in auth[0], log
        print("  %s" % auth[0].strip(), flush=True)
        assert wrong not in log and pw not in log, log
        s = store_of(bad.status())
        assert s["connected"] is False and "AUTH" in (s["last_error"] or ""), s
        assert r.keys("rw:{mx-acl-bad}*") == []
        assert pw not in d.text()
    finally:
        try:
            d.stop()
            if bad is not None:
                bad.stop()
        finally:
            r.stop()
    # A user without a password is a mistake in the file, reported at its line.
    conf = os.path.join(TMP, "acl-nopass.conf")
    with open(conf, "w") as f:
        f.write("# store\nstore = %s\nredis_username = rw\n" % store)
    p = subprocess.run([RELAYWATCHD, "-t", "-c", conf, "-o", "dns_lookups="],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and p.stdout == "", p
    assert p.stderr.startswith(conf + ":3: redis_username:") and \
        "without redis_password" in p.stderr, p.stderr
    # The user is no secret: -n prints it as set (the password as "(set)").
    p = subprocess.run([RELAYWATCHD, "-n", "-c", conf, "-o", "redis_password=" + pw],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "\nredis_username = rw\n" in p.stdout and \
        "\nredis_password = (set)\n" in p.stdout and pw not in p.stdout, p


def test_password_on_a_server_without_one():
    """AUTH refused on every connection: no "connected" flapping, one log line."""
    r = Redis()
    d = Daemon("mx-nopass", "redis+unix://" + r.sock, "-o", "redis_password=unneeded")
    try:
        time.sleep(4)
        log = d.text()
        assert "connected" not in log, "the store claimed a connection AUTH refused:\n" + log
        lines = [l for l in log.splitlines() if "store:" in l]
        assert len(lines) == 1 and "AUTH" in lines[0], "\n".join(lines)
        s = store_of(d.status())
        assert s["connected"] is False and "AUTH" in (s["last_error"] or ""), s
    finally:
        try:
            d.stop()
        finally:
            r.stop()


def test_error_replies_and_a_bad_host():
    """Redis answering errors is logged once and recovered from; another host's bad keys
    neither stop this host's writes nor add its history twice."""
    r = Redis()
    # A poisoned host in the fleet: its culprits key has the wrong type.
    r.cli("zadd", "rw:hosts", "%.0f" % time.time(), "bad")
    r.cli("set", "rw:{bad}:culprits", "x")
    d1 = Daemon("mx-err", "redis+unix://" + r.sock)
    try:
        e1, n1, worst = send_sessions(d1, 10, seed=11)
        check_convergence(r, "mx-err", e1, 10, "first run")
    finally:
        d1.stop()
    d2 = Daemon("mx-err", "redis+unix://" + r.sock)
    try:
        time.sleep(4)  # several read rounds, each failing on rw:{bad}:culprits
        host = d2.status()["hosts"][0]
        assert host["windows"]["10m"]["nc"] == e1["nc"], (
            "history added more than once: 10m nc %d, run 1 had %d"
            % (host["windows"]["10m"]["nc"], e1["nc"]))
        # Writes refused for a while: one line, then recovery.
        r.cli("config", "set", "maxmemory", "1")
        e2, n2, worst = send_sessions(d2, 5, seed=12)
        time.sleep(3)
        st = store_of(d2.status())
        assert st["connected"] is False and "OOM" in (st["last_error"] or ""), st
        r.cli("config", "set", "maxmemory", "0")
        check_convergence(r, "mx-err", add(e1, e2), 10, "after the errors")
        time.sleep(1.5)
        st = store_of(d2.status())
        assert st["last_error"] is None, st
        log = d2.text()
        assert log.count("answers errors") == 1 and "accepts writes again" in log, log
    finally:
        try:
            d2.stop()
        finally:
            r.stop()


def test_restart_keeps_history():
    r = Redis(tcp=True)
    store = "redis://127.0.0.1:%d/1" % r.port
    d1 = Daemon("mx-re", store, "-o", "store_flush_interval=30s", name="first")
    d2 = None
    try:
        e1, n1, _ = send_sessions(d1, 30, seed=7)
        # Long flush interval: what is in Redis right after exit was written at shutdown.
        d1.stop()
        got = pick(r.host_totals("mx-re", db=1))
        assert got == e1, "right after SIGTERM:\n  expected %s\n  got      %s" % (e1, got)
        runs1 = {f.partition("@")[2] for f in r.hgetall("rw:{mx-re}:t", db=1)}
        assert len(runs1) == 1, runs1
        d2 = Daemon("mx-re", store, name="second")
        e2, n2, _ = send_sessions(d2, 12, seed=8)
        want = add(e1, e2)
        check_convergence(r, "mx-re", want, 5, "after the second run", db=1)
        runs = {f.partition("@")[2] for f in r.hgetall("rw:{mx-re}:t", db=1)}
        assert len(runs) == 2 and runs1 < runs, "a new run id per start: %s" % runs

        def seen():
            st = d2.status()
            views = [pick(h.get("totals") or {}) for h in st["hosts"] if h.get("host") == "mx-re"]
            views.append(pick((st.get("fleet") or {}).get("totals") or {}))
            return want if want in views else views

        wait_equal(seen, want, 5, "N+M for mx-re in /status of the second daemon")
        d2.stop()
    finally:
        try:
            if d1.proc.poll() is None:
                d1.stop()
            if d2 is not None:
                d2.stop()
        finally:
            r.stop()


def test_redis_absent_at_start():
    d = Daemon("mx-absent", "redis://127.0.0.1:1", wait=False)
    try:
        d.wait_ready()
        assert d.proc.poll() is None, "exited %s" % d.proc.returncode
        e, n, worst = send_sessions(d, 10, seed=9)
        assert worst < MAX_LATENCY, worst
        time.sleep(4)  # retries at 1 s, 2 s
        send_sessions(d, 2, seed=10)
        lines = d.store_lines()
        assert len(lines) == 1 and "unreachable" in lines[0], \
            "expected one 'store: ... unreachable' line:\n" + d.text()
        s = store_of(d.status())
        assert s["connected"] is False and s["last_error"], s
        print("  store while Redis is absent: %s" % json.dumps(s), flush=True)
        assert metric(d.get("/metrics"), "relaywatch_store_up") == 0
        d.stop()
    finally:
        if d.proc.poll() is None:
            d.stop()


def test_dns_counts_in_store():
    """The daemon's own DNS counts go to the minute hashes as dns_TYPE_OUTCOME fields, equal
    to /status; here against a loopback port where no name server listens (every lookup ends
    at once, as a timeout: the port is unreachable), so nothing leaves the machine."""
    r = Redis()
    dead = free_port()
    d = Daemon("mx-dns", "redis+unix://" + r.sock, "-o", "dns_lookups=client_ptr, sender_mx, "
               "recipient_mx", "-o", "resolver=127.0.0.1:%d" % dead, "-o", "dns_timeout=100ms",
               "-o", "dns_tries=1")
    try:
        e, n, worst = send_sessions(d, 40, seed=21)
        assert worst < MAX_LATENCY, worst
        want = {}

        def stored_equals_status():
            nonlocal want
            totals = d.status()["hosts"][0]["totals"]["dns_detail"]
            want = {"dns_%s_%s" % (t, o): v for t, outs in totals.items()
                    for o, v in outs.items() if v}
            got = sum_minutes(r.host_minutes("mx-dns"))
            got = {k: v for k, v in got.items() if k.startswith("dns_") and v}
            return want and got == want

        wait_for(stored_equals_status, timeout=10, what="DNS counts in Redis equal /status")
        print("  stored %s" % want, flush=True)
        # Every session's PTR, every transaction's sender MX, every relay RCPT's MX: ended.
        assert want.get("dns_ptr_timeout", 0) + want.get("dns_ptr_hit", 0) + \
            want.get("dns_ptr_merged", 0) == e["nc"], (want, e)
        # A send the kernel refuses (the ICMP error of an earlier one) is no packet upstream.
        assert 0 < want.get("dns_mx_upstream", 0) <= want.get("dns_mx_timeout", 0), want
    finally:
        try:
            d.stop()
        finally:
            r.stop()


TESTS = [
    test_fleet,
    test_dns_counts_in_store,
    test_relay_domain_burst,
    test_redis_killed_under_load,
    test_redis_hung_under_load,
    test_wrong_password,
    test_restart_keeps_history,
    test_redis_absent_at_start,
    test_password_on_a_server_without_one,
    test_acl_user,
    test_error_replies_and_a_bad_host,
]


if __name__ == "__main__":
    sys.exit(testlib.main(sys.modules[__name__], TESTS, "rw-store-", with_cli=True,
                          requires=("redis-server", "redis-cli")))

#!/usr/bin/env python3
"""With store = redis, the daemon's counts equal its answers, exactly, at a high request rate,
across a minute boundary, with and without a Redis outage (issue 18: "the daemon's own counts
fall short of what it answered").

Two daemons, each on its own private redis-server (unix socket, no persistence), take the same
kind of load at once: several connections each sending RCPT requests in pipelined batches (each
request a new transaction, as bench/policy_load sends them), from second 52 of a minute to
second 5 of the next.  The second Redis is killed -9 at second 1.5 of the new minute, once the
old minute's last counts are in it, and started again, empty, at second 3.5: the old minute
comes back only from the daemon's backlog, and what was counted meanwhile is written late.
Then, once the store has caught up, for each daemon:

  answers the clients read = relaywatch_requests_total{state="RCPT"} = /status totals.nr
  = windows.1h.nr = fleet totals.nr = fleet windows.1h.nr = rw:{HOST}:t nr
  = the sum of nr over rw:{HOST}:m:*  (two minutes at least)

Usage: store_exact_test.py --relaywatchd PATH --relaywatch PATH [-k NAME]
"""
import re
import socket
import sys
import threading
import time

import store_test
import testlib
from store_test import Daemon, Redis, store_of
from testlib import policy_request, wait_for

RELAYWATCHD = None
RELAYWATCH = None
TMP = None

CONNS = 4   # connections per daemon
BATCH = 64  # requests written at once on a connection before reading their answers


class RcptLoad:
    """CONNS connections to one daemon, each a thread sending batches of RCPT requests until
    stop(); `answers` counts every answer read (one "action=" line each)."""

    def __init__(self, daemon, tag):
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.answers = 0
        self.errors = []
        self.threads = [threading.Thread(target=self._run, args=(daemon, "%s%d" % (tag, i)),
                                         daemon=True) for i in range(CONNS)]
        for t in self.threads:
            t.start()

    def _run(self, daemon, tag):
        try:
            sock = daemon.connect()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(10)
            n = 0
            while not self.stopping.is_set():
                batch = []
                for _ in range(BATCH):
                    n += 1
                    batch.append(policy_request(
                        "RCPT", client_address="198.51.100.%d" % (n % 250 + 1),
                        client_port=str(1024 + n % 60000), sender="s@sender.example.org",
                        recipient="r%d@dom%d.example" % (n, n % 300),
                        instance="%s.%x.0" % (tag, n), sasl_username="u%d" % (n % 40),
                        sasl_method="PLAIN"))
                sock.sendall(b"".join(batch))
                got = b""
                while got.count(b"\n\n") < BATCH:
                    chunk = sock.recv(65536)
                    assert chunk, "the daemon closed the connection"
                    got += chunk
                answers = len(re.findall(rb"^action=", got, re.M))
                assert answers == BATCH, "%d answers to %d requests" % (answers, BATCH)
                with self.lock:
                    self.answers += answers
            sock.close()
        except Exception as exc:  # reported by stop()
            self.errors.append("%r" % exc)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(30)
        assert not self.errors, "load errors: %s" % self.errors
        return self.answers


def rcpt_answers_metric(d):
    """Sum of relaywatch_requests_total{state="RCPT",...}."""
    return sum(int(float(v)) for v in re.findall(
        r'^relaywatch_requests_total\{state="RCPT"[^}]*\} (\S+)$', d.get("/metrics"), re.M))


def figures(d, r):
    """Every count of RCPT requests the daemon and its Redis hold for d's host."""
    st = d.status()
    own, fleet = st["hosts"][0], st["fleet"]
    minutes = r.host_minutes(d.host)
    return {
        "requests_total": rcpt_answers_metric(d),
        "totals.nr": own["totals"]["nr"],
        "windows.1h.nr": own["windows"]["1h"]["nr"],
        "fleet.totals.nr": fleet["totals"]["nr"],
        "fleet.windows.1h.nr": fleet["windows"]["1h"]["nr"],
        "redis t nr": r.host_totals(d.host)["nr"],
        "redis m:* nr": sum(m["nr"] for m in minutes.values()),
    }, len(minutes)


def test_counts_equal_answers():
    store_test.RELAYWATCHD, store_test.RELAYWATCH, store_test.TMP = RELAYWATCHD, RELAYWATCH, TMP
    r_steady, r_outage = Redis(), Redis()
    d_steady = Daemon("mx-steady", "redis+unix://" + r_steady.sock)
    d_outage = Daemon("mx-outage", "redis+unix://" + r_outage.sock)
    try:
        for d in (d_steady, d_outage):
            wait_for(lambda: store_of(d.status()).get("connected") is True, 5, "store connected")
        # Second 52 of a minute, to second 5 of the next (at most 60 s of waiting).
        time.sleep((52 - time.time()) % 60)
        minute_start = time.time() - time.time() % 60
        steady, outage = RcptLoad(d_steady, "a"), RcptLoad(d_outage, "b")
        time.sleep(max(0.0, minute_start + 61.5 - time.time()))
        r_outage.kill()
        wait_for(lambda: store_of(d_outage.status()).get("connected") is False, 2,
                 "store.connected false during the outage")
        time.sleep(max(0.0, minute_start + 63.5 - time.time()))
        r_outage.start()  # same socket path, empty: the backlog writes everything again
        time.sleep(max(0.0, minute_start + 65 - time.time()))
        answered = {d_steady.host: steady.stop(), d_outage.host: outage.stop()}
        for d, r in ((d_steady, r_steady), (d_outage, r_outage)):
            want = answered[d.host]
            got = {}

            def all_equal():
                got.update(figures(d, r)[0])
                return set(got.values()) == {want}
            ok = True
            try:
                wait_for(all_equal, 15, "%s's counts to equal its answers" % d.host)
            except AssertionError:
                ok = False
            got, minutes = figures(d, r)
            print("  %s: %d RCPT answers read by the clients; %s; %d minute hashes"
                  % (d.host, want, ", ".join("%s %d" % kv for kv in got.items()), minutes),
                  flush=True)
            assert ok and set(got.values()) == {want}, \
                "%s: answered %d, counted %s" % (d.host, want, got)
            assert minutes >= 2, "the load crossed a minute boundary: %d minute hashes" % minutes
        dropped = store_of(d_outage.status()).get("dropped_minutes")
        assert dropped == 0, "minutes dropped from the backlog: %s" % dropped
    finally:
        for p in (d_steady, d_outage, r_steady, r_outage):
            p.stop()


TESTS = [test_counts_equal_answers]


if __name__ == "__main__":
    sys.exit(testlib.main(sys.modules[__name__], TESTS, "rw-store-exact-", with_cli=True,
                          requires=("redis-server", "redis-cli")))

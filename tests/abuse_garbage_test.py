#!/usr/bin/env python3
"""Abuse probes with a Postfix-like client served beside each: 10,000 idle connections against
the default max_connections, and the garbage set (a 1 MiB line without a newline, NUL bytes in
a request, 100,000 attributes, 64 KiB values, 1 MiB of random bytes), each on its own
connection.  Asserted: every good request answered in time and counted exactly, each bad
connection closed without an answer (relaywatchd(8): a request that breaks the framing closes
the connection), memory bounded, the daemon alive.

Loopback and a temp dir only; the daemon stopped by PID; about 10 s in all.
Usage: abuse_garbage_test.py --relaywatchd PATH --relaywatch PATH
"""
import random
import socket
import sys
import time

import testlib
from testlib import (RCPT, DaemonProcess, GoodClient, closed_by_peer, free_port, listening_tcp,
                     metrics, raise_nofile, rss_kib, wait_for)

RELAYWATCHD = None
RELAYWATCH = None
TMP = None

IDLE = 10000
SLOWEST = 1.0  # far below Postfix's timeout (the snippet's 10 s): nothing may come near it


def start(*args):
    """A daemon with its defaults (max_connections 2048) on free loopback ports, and args:
    (daemon, policy port, http port), listening."""
    port, http_port = free_port(), free_port()
    d = DaemonProcess([RELAYWATCHD, "-e", "-o", "dns_lookups=",
                       "-o", "listen=inet:127.0.0.1:%d" % port,
                       "-o", "http_listen=inet:127.0.0.1:%d" % http_port] + list(args), TMP, "d")
    wait_for(lambda: listening_tcp(port) and listening_tcp(http_port),
             what="relaywatchd to listen")
    return d, port, http_port


def requests_answered(m):
    return sum(v for k, v in m.items() if k.startswith("relaywatch_requests_total{"))


def check_good(good, m):
    """Every good request answered in time, none lost, and counted once."""
    assert good.reconnects == 0, "the good client's connection was closed %d times" % (
        good.reconnects)
    assert max(good.latencies) < SLOWEST, max(good.latencies)
    assert requests_answered(m) == len(good.latencies), (requests_answered(m),
                                                         len(good.latencies))


def test_idle_connections():
    """10,000 connections that send nothing, opened while a good client asks every 50: at the
    limit the idle ones are closed oldest first, none refused; every connection is accounted
    for, and memory past the limit does not grow. request_timeout is long, so that the counts
    are exact however slow the machine."""
    room = raise_nofile(IDLE + 200)
    count = min(IDLE, room - 200)
    if count < IDLE:
        print("RLIMIT_NOFILE hard limit %d: %d idle connections, not %d" % (room, count, IDLE))
    d, port, http_port = start("-o", "request_timeout=60s")
    with d:
        good = GoodClient(port)
        idle = []
        rss_start, rss_at_limit = rss_kib(d.proc.pid), None
        began = time.monotonic()
        for i in range(count):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            if i % 50 == 0:
                good.ask()
            if i == 3000:
                wait_for(lambda: metrics(http_port)["relaywatch_connections_accepted_total"]
                         > 3000, what="3,000 connections to be accepted")
                rss_at_limit = rss_kib(d.proc.pid)
        opened = time.monotonic() - began
        good.ask()
        wait_for(lambda: metrics(http_port)["relaywatch_connections_accepted_total"] == count + 1,
                 what="every connection to be accepted")
        m = metrics(http_port)
        rss_end = rss_kib(d.proc.pid)
        check_good(good, m)
        counts = {k: v for k, v in m.items() if "connection" in k or "timeouts" in k}
        assert m["relaywatch_connections_refused_total"] == 0, counts
        assert m["relaywatch_connections"] == 2048, counts
        # Every connection: open, or closed for a newer one (the good client's is never idle
        # long: it asks every 50).
        assert m["relaywatch_request_timeouts_total"] == 0, counts
        assert m["relaywatch_connections_evicted_idle_total"] == count + 1 - 2048, counts
        # Past the limit a connection costs nothing more: the new take the closed ones' memory;
        # up to it, well under 16 KiB each.
        testlib.assert_grew_less(rss_at_limit, rss_end, 4096, "memory past the limit")
        testlib.assert_grew_less(rss_start, rss_end, 2048 * 16, "memory")
        print("idle: %d connections in %.1fs, %d evicted, %d timed out; good client %d answers, "
              "max %.2f ms; RSS %d KiB at start, %d KiB at 3,000, %d KiB at %d" % (
                  count, opened, m["relaywatch_connections_evicted_idle_total"],
                  m["relaywatch_request_timeouts_total"], len(good.latencies),
                  max(good.latencies) * 1e3, rss_start, rss_at_limit, rss_end, count))
        good.close()
        for s in idle:
            s.close()


def nul_request():
    return RCPT.replace(b"sender=alice", b"sender=al\0ice")


GARBAGE = [
    ("1 MiB line without a newline", lambda: b"x" * (1 << 20)),
    ("NUL bytes in a request", nul_request),
    ("100,000 attributes", lambda: b"request=smtpd_access_policy\n" + b"a=b\n" * 100000 + b"\n"),
    ("64 KiB values", lambda: b"request=smtpd_access_policy\nsender=" + b"v" * 65536 +
     b"\nrecipient=" + b"w" * 65536 + b"\n\n"),
    ("1 MiB of random bytes", lambda: random.Random(15).randbytes(1 << 20)),
]


def send_garbage(port, data, good):
    """data on a connection of its own, the good client asking between chunks: whether the
    daemon closed it without a byte of answer within a few seconds."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 5
    try:
        while sent < len(data) and time.monotonic() < deadline:
            try:
                sent += s.send(data[sent:sent + 65536])
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                break  # closed by the daemon
            good.ask()
        while time.monotonic() < deadline and not closed_by_peer(s):
            good.ask()
            time.sleep(0.01)
        try:
            answer = s.recv(4096)
        except (ConnectionResetError, BlockingIOError):
            answer = b"" if closed_by_peer(s) else None
        for _ in range(10):  # and after
            good.ask()
        return answer == b""
    finally:
        s.close()


def test_garbage():
    """Each piece of garbage on its own connection: closed without an answer and counted as a
    protocol error; the good client served throughout and counted exactly; memory bounded."""
    d, port, http_port = start()
    with d:
        good = GoodClient(port)
        good.ask()
        rss_before = rss_kib(d.proc.pid)
        for n, (name, make) in enumerate(GARBAGE, 1):
            assert send_garbage(port, make(), good), "%s: not closed without an answer" % name
            assert d.proc.poll() is None, "relaywatchd died on " + name
            m = metrics(http_port)
            assert m["relaywatch_protocol_errors_total"] == n, (
                name, m["relaywatch_protocol_errors_total"])
            check_good(good, m)
            rss = rss_kib(d.proc.pid)
            testlib.assert_grew_less(rss_before, rss, 4096, "memory after " + name)
            print("%s: closed without an answer; good client %d answers so far, max %.2f ms; "
                  "RSS %d KiB" % (name, len(good.latencies), max(good.latencies) * 1e3, rss))
        good.close()
    log = d.text()
    assert log.count("closing connection without answer") == len(GARBAGE), log[-3000:]


TESTS = [test_idle_connections, test_garbage]

if __name__ == "__main__":
    sys.exit(testlib.main(sys.modules[__name__], TESTS, "rw-abuse-garbage-", with_cli=True))

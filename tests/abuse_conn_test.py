#!/usr/bin/env python3
"""Abuse probes of the connection layer, each with a well-behaved client beside it:
slowloris (1,000 connections dribbling a byte a second), connections that send nothing, and
one peer taking more than
its share of connections (max_connections_per_peer).

Loopback and a temp dir only; every daemon stopped by PID; about 15 s in all.
Usage: abuse_conn_test.py --relaywatchd PATH --relaywatch PATH
"""
import os
import selectors
import signal
import socket
import sys
import time

import testlib
from testlib import (DUNNO, RCPT, DaemonProcess, GoodClient, ask, closed_by_peer, free_port,
                     listening_tcp, listening_unix, metrics, raise_nofile, rss_kib, wait_for)

RELAYWATCHD = None
RELAYWATCH = None
TMP = None

SLOW = 1000
REQUEST_TIMEOUT = 2.0
SLACK = 1.5  # the timer's own lateness plus this test's one-second dribble period


def start(*args):
    argv = [RELAYWATCHD, "-e", "-o", "dns_lookups=", "-o", "http_listen="] + list(args)
    return DaemonProcess(argv, TMP, "d")


def start_tcp(files, *args):
    """A daemon on a free loopback port with request_timeout = REQUEST_TIMEOUT (and args), and
    room for files descriptors here: (daemon, port); the caller waits for it to listen."""
    raise_nofile(files)
    port = free_port()
    return start("-o", "listen=inet:127.0.0.1:%d" % port,
                 "-o", "request_timeout=%gs" % REQUEST_TIMEOUT, *args), port


def reap_closed(sel, since, closed_after):
    """The abusive connections the daemon closed by now (never with an answer): out of since
    (socket: when its clock started) and sel, how long each lived appended to closed_after."""
    for key, _ in sel.select(timeout=0.05):
        s = key.fileobj
        try:
            data = s.recv(64)
        except ConnectionResetError:
            data = b""
        assert data == b"", "an abusive connection got an answer: %r" % data
        closed_after.append(time.monotonic() - since.pop(s))
        sel.unregister(s)
        s.close()


def test_slowloris():
    """1,000 connections dribbling one byte a second: each is closed request_timeout after
    its first byte (plus slack), a good client beside them gets every answer at once, and
    the log says so in one line, not one per connection."""
    d, port = start_tcp(SLOW + 200)
    with d:
        wait_for(lambda: listening_tcp(port), what="relaywatchd to listen")
        good = socket.create_connection(("127.0.0.1", port), timeout=5)
        sel = selectors.DefaultSelector()
        first_byte = {}
        for _ in range(SLOW):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.setblocking(False)
            s.send(RCPT[:1])
            first_byte[s] = time.monotonic()
            sel.register(s, selectors.EVENT_READ)
        sent = {s: 1 for s in first_byte}
        closed_after = []
        latencies = []
        deadline = time.monotonic() + REQUEST_TIMEOUT + SLACK + 3
        next_dribble = time.monotonic() + 1
        while first_byte and time.monotonic() < deadline:
            reap_closed(sel, first_byte, closed_after)
            if time.monotonic() >= next_dribble:
                next_dribble += 1
                for s in list(first_byte):
                    try:
                        s.send(RCPT[sent[s]:sent[s] + 1])
                        sent[s] += 1
                    except (BrokenPipeError, ConnectionResetError, BlockingIOError):
                        pass  # closed: select reports it
            answer, took = ask(good)
            assert answer == DUNNO, answer
            latencies.append(took)
        assert not first_byte, "%d slow connections still open after %.1fs" % (
            len(first_byte), REQUEST_TIMEOUT + SLACK + 3)
        assert max(closed_after) <= REQUEST_TIMEOUT + SLACK, max(closed_after)
        assert min(closed_after) >= REQUEST_TIMEOUT - 0.1, min(closed_after)
        latencies.sort()
        # Postfix waits 10 s (the snippet's timeout=10s); an answer must never come near it.
        assert latencies[-1] < 0.5, latencies[-1]
        # The good connection is still served after the timeout has closed the others.
        assert ask(good)[0] == DUNNO
        good.close()
        print("slowloris: %d closed %.2f-%.2fs after their first byte; good client %d answers, "
              "p50 %.2f ms, max %.2f ms" % (
                  len(closed_after), min(closed_after), max(closed_after), len(latencies),
                  latencies[len(latencies) // 2] * 1e3, latencies[-1] * 1e3))
    lines = [l for l in d.text().splitlines() if "request not whole" in l]
    # All came from 127.0.0.1: once a minute per peer, with the count so far.
    assert len(lines) == 1, lines


def test_silent_connections():
    """Connections that send nothing at all (Postfix connects only to send a request) are
    closed request_timeout after the accept, while a good client beside them is served."""
    silent_count = 300
    d, port = start_tcp(silent_count + 200)
    with d:
        wait_for(lambda: listening_tcp(port), what="relaywatchd to listen")
        sel = selectors.DefaultSelector()
        opened = {}
        for _ in range(silent_count):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.setblocking(False)
            opened[s] = time.monotonic()
            sel.register(s, selectors.EVENT_READ)
        closed_after = []
        deadline = time.monotonic() + REQUEST_TIMEOUT + SLACK + 3
        while opened and time.monotonic() < deadline:
            good = socket.create_connection(("127.0.0.1", port), timeout=5)
            answer, took = ask(good)
            good.close()
            assert answer == DUNNO and took < 0.5, (answer, took)
            reap_closed(sel, opened, closed_after)
        assert not opened, "%d silent connections still open" % len(opened)
        assert max(closed_after) <= REQUEST_TIMEOUT + SLACK, max(closed_after)
        assert min(closed_after) >= REQUEST_TIMEOUT - 0.1, min(closed_after)
        print("silent: %d closed %.2f-%.2fs after the accept" % (
            len(closed_after), min(closed_after), max(closed_after)))


def connect_unix(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    return s


def refused(s):
    """The daemon closed s at once, without an answer."""
    try:
        s.sendall(RCPT)
        return s.recv(4096) == b""
    except (BrokenPipeError, ConnectionResetError):
        return True


def answered_as(uid, path):
    """Whether a process running as uid gets DUNNO for one request on path."""
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            os.setuid(uid)
            ok = ask(connect_unix(path))[0] == DUNNO
        finally:
            os._exit(0 if ok else 1)
    return os.waitpid(pid, 0)[1] == 0


def test_per_peer_limit():
    """One uid at max_connections_per_peer is refused while another uid still connects; TCP
    from loopback is never limited per address (Postfix calls from there)."""
    path = os.path.join(TMP, "policy.sock")
    port = free_port()
    d = start("-o", "listen=unix:%s, inet:127.0.0.1:%d" % (path, port),
              "-o", "max_connections=50", "-o", "max_connections_per_peer=5")
    with d:
        wait_for(lambda: listening_unix(path) and listening_tcp(port),
                 what="relaywatchd to listen")
        mine = [connect_unix(path) for _ in range(5)]
        for s in mine:
            assert ask(s)[0] == DUNNO
        for _ in range(3):
            assert refused(connect_unix(path)), "a sixth connection of one uid was served"
        # Loopback TCP: all ten served, though the same process opened them.
        tcp = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(10)]
        for s in tcp:
            assert ask(s)[0] == DUNNO
        if os.geteuid() == 0:
            assert answered_as(65534, path), "another uid was refused"
        else:
            print("not root: the other uid's connection is not tried")
        # A closed connection gives its place back.
        mine.pop().close()
        time.sleep(0.2)
        assert ask(connect_unix(path))[0] == DUNNO
        for s in mine + tcp:
            s.close()
    lines = [l for l in d.text().splitlines() if "connection limit per peer reached" in l]
    assert len(lines) == 1 and "uid %d:" % os.geteuid() in lines[0], lines


def connection_counts(m):
    """From /metrics: policy connections (open, evicted when idle, refused)."""
    return tuple(m["relaywatch_connections" + k] for k in ("", "_evicted_idle_total",
                                                            "_refused_total"))


def hog(port, i):
    """Connection i of a local process holding connections: from 127.0.0.(2 + i % 50) (loopback
    is never limited per peer), one real request answered, then silence."""
    s = socket.socket()
    s.settimeout(5)
    s.bind(("127.0.0.%d" % (2 + i % 50), 0))
    s.connect(("127.0.0.1", port))
    assert ask(s)[0] == DUNNO
    return s


def test_idle_hogs():
    """A local process that sends one request per connection and then waits, on more connections
    than max_connections, cannot lock Postfix out: each new connection at the limit closes the
    one idle longest (exactly the oldest hogs go), a Postfix-like client beside it is served at
    once without losing its own connection, evictions are counted and memory stays put."""
    limit, hogs_count, asks = 100, 150, 200
    http_port = free_port()
    d, port = start_tcp(hogs_count + asks + 100, "-o", "max_connections=%d" % limit,
                        "-o", "http_listen=inet:127.0.0.1:%d" % http_port)
    with d:
        wait_for(lambda: listening_tcp(port) and listening_tcp(http_port),
                 what="relaywatchd to listen")
        rss_before = rss_kib(d.proc.pid)
        hogs = [hog(port, i) for i in range(hogs_count)]
        first_kept = hogs_count - limit
        wait_for(lambda: all(closed_by_peer(s) for s in hogs[:first_kept]), timeout=5,
                 what="the oldest idle connections to be closed")
        still = [i for i, s in enumerate(hogs) if closed_by_peer(s)]
        assert still == list(range(first_kept)), "closed: %s" % still
        # Postfix's connection among them, the process still opening one after each request:
        # more than the limit, so a connection that kept its first place in the idle order
        # (not moved back by its requests) would be closed.
        good = GoodClient(port)
        for i in range(asks):
            good.ask()
            hogs.append(hog(port, hogs_count + i))
            time.sleep(0.005)
        good.ask()
        assert good.reconnects == 0, "the good client's connection was closed %d times" % (
            good.reconnects)
        good.latencies.sort()
        assert good.latencies[-1] < 1.0, good.latencies[-1]
        m = metrics(http_port)
        evicted = hogs_count + asks + 1 - limit
        assert connection_counts(m) == (limit, evicted, 0), connection_counts(m)
        rss_after = rss_kib(d.proc.pid)
        testlib.assert_grew_less(rss_before, rss_after, 8 * 1024, "memory")
        print("idle hogs: %d connections at max_connections = %d, %d evicted (oldest first); good "
              "client %d answers, p50 %.2f ms, max %.2f ms, 0 reconnects; RSS %d -> %d KiB" % (
                  len(hogs) + 1, limit, evicted, len(good.latencies),
                  good.latencies[len(good.latencies) // 2] * 1e3, good.latencies[-1] * 1e3,
                  rss_before, rss_after))
        good.close()
        for s in hogs:
            s.close()
    lines = [l for l in d.text().splitlines() if "connection limit reached" in l]
    assert len(lines) == 1, lines


def start_at_limit(limit):
    """A daemon with max_connections = limit, its /metrics on TCP, and a request_timeout long
    enough for half-sent requests to outlast a test on a slow machine: (daemon, port,
    http_port), listening."""
    http_port = free_port()
    d, port = start_tcp(limit + 50, "-o", "max_connections=%d" % limit,
                        "-o", "http_listen=inet:127.0.0.1:%d" % http_port,
                        "-o", "request_timeout=60s")
    try:
        wait_for(lambda: listening_tcp(port) and listening_tcp(http_port),
                 what="relaywatchd to listen")
    except BaseException:
        d.stop()
        raise
    return d, port, http_port


def test_busy_not_evicted():
    """At the limit with every connection in the middle of a request, none is closed for a new
    one: the new one is refused at once and counted."""
    limit = 20
    d, port, http_port = start_at_limit(limit)
    with d:
        busy = []
        for _ in range(limit):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(RCPT[:10])
            busy.append(s)
        wait_for(lambda: metrics(http_port)["relaywatch_connections"] == limit,
                 what="the half-sent requests to be accepted")
        time.sleep(0.2)  # and read: a connection with nothing read yet would be idle
        late = socket.create_connection(("127.0.0.1", port), timeout=5)
        assert testlib.recv_answer(late) == b"", "a connection past the limit was served"
        assert not any(closed_by_peer(s) for s in busy), "a busy connection was closed"
        m = metrics(http_port)
        assert connection_counts(m) == (limit, 0, 1), connection_counts(m)
        for s in busy + [late]:
            s.close()


def test_unread_request_not_evicted():
    """At the limit, a request Postfix has written on an idle connection but the daemon has not
    read yet (the accept of a new connection runs first) is answered, not lost to an eviction:
    the daemon looks in the socket before it closes. The daemon is stopped while the requests
    and the new connections arrive, so both wait for it at once."""
    limit, written = 20, 10
    d, port, http_port = start_at_limit(limit)
    with d:
        idle = [hog(port, i) for i in range(limit)]
        wait_for(lambda: metrics(http_port)["relaywatch_connections"] == limit,
                 what="the idle connections to be counted")
        d.signal(signal.SIGSTOP)
        try:
            for s in idle[:written]:
                s.sendall(RCPT)
            new = [socket.create_connection(("127.0.0.1", port), timeout=5)
                   for _ in range(written)]
        finally:
            d.signal(signal.SIGCONT)
        for i, s in enumerate(idle[:written]):
            assert testlib.recv_answer(s) == DUNNO, "request %d, waiting unread, was lost" % i
        for s in new:
            assert ask(s)[0] == DUNNO, "a new connection was not served"
        # The ones closed were idle with nothing waiting: the ten that had written nothing.
        assert all(closed_by_peer(s) for s in idle[written:]), "an idle connection was kept"
        m = metrics(http_port)
        assert connection_counts(m) == (limit, written, 0), connection_counts(m)
        for s in idle + new:
            s.close()


TESTS = [test_slowloris, test_silent_connections, test_per_peer_limit, test_idle_hogs,
         test_busy_not_evicted, test_unread_request_not_evicted]

if __name__ == "__main__":
    sys.exit(testlib.main(sys.modules[__name__], TESTS, "rw-abuse-conn-", with_cli=True))

#!/usr/bin/env python3
"""Abuse probe: a log sink that falls behind never delays answers.

relaywatchd -e with log_requests = yes (a line per request) and stderr a pipe
nobody reads: thousands of policy requests and /status calls meanwhile must all
be answered promptly; lines that do not fit are dropped and counted
(relaywatch_log_dropped_total, /status "log"), and once the pipe is read again
one line says how many.  With a reader attached, nothing is lost.
Usage: abuse_log_test.py --relaywatchd PATH --relaywatch PATH [-k NAME]
"""
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import testlib
from testlib import DUNNO, RCPT, free_port, listening_tcp, recv_answer, wait_for

RELAYWATCHD = None
RELAYWATCH = None
TMP = None

SLOWEST_ANSWER = 1.0  # seconds; Postfix waits 100 s, the point is "never stuck"
DROPPED = re.compile(rb"warning: log: (\d+) lines dropped: the log sink fell behind")


def start(stderr):
    """relaywatchd -e logging every request, stderr the given descriptor."""
    port, http_port = free_port(), free_port()
    argv = [RELAYWATCHD, "-e", "-o", "dns_lookups=", "-o", "log_requests=yes",
            "-o", "listen=inet:127.0.0.1:%d" % port,
            "-o", "http_listen=inet:127.0.0.1:%d" % http_port]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr)
    testlib.STARTED.append(proc)
    wait_for(lambda: proc.poll() is not None or (listening_tcp(port) and listening_tcp(http_port)),
             what="relaywatchd to listen")
    assert proc.poll() is None, "relaywatchd exited early"
    return proc, port, http_port


def start_on_unread_pipe():
    """relaywatchd with stderr a pipe whose read end the test holds and does not read."""
    r, w = os.pipe()
    try:
        proc, port, http_port = start(w)
    except Exception:
        os.close(r)
        raise
    finally:
        os.close(w)
    return r, proc, port, http_port


def http_get(http_port, target):
    """Body of a GET answered 200 within SLOWEST_ANSWER seconds."""
    began = time.monotonic()
    s = socket.create_connection(("127.0.0.1", http_port), timeout=5)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % target).encode())
        data = testlib.recv_all(s)
    finally:
        s.close()
    took = time.monotonic() - began
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    assert took < SLOWEST_ANSWER, "GET %s took %.2fs" % (target, took)
    return data.partition(b"\r\n\r\n")[2]


def dropped_metric(http_port):
    m = re.search(rb"^relaywatch_log_dropped_total (\d+)$", http_get(http_port, "/metrics"), re.M)
    assert m, "no relaywatch_log_dropped_total in /metrics"
    return int(m.group(1))


def send_requests(port, connections, per_connection):
    """Requests over a few connections at once, each answered DUNNO; the slowest answer."""
    slowest = [0.0] * connections
    errors = []

    def client(i):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            for _ in range(per_connection):
                began = time.monotonic()
                s.sendall(RCPT)
                got = recv_answer(s, timeout=5)
                slowest[i] = max(slowest[i], time.monotonic() - began)
                assert got == DUNNO, got
            s.close()
        except Exception as e:  # reported by the caller
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    return threads, slowest, errors


def test_sink_that_never_reads():
    r, proc, port, http_port = start_on_unread_pipe()
    try:
        threads, slowest, errors = send_requests(port, 4, 1250)
        status_calls = 0
        while any(t.is_alive() for t in threads):
            http_get(http_port, "/status")
            status_calls += 1
            time.sleep(0.05)
        for t in threads:
            t.join()
        assert not errors, errors
        assert max(slowest) < SLOWEST_ANSWER, "slowest answer %.2fs" % max(slowest)
        assert status_calls > 0
        dropped = dropped_metric(http_port)
        assert dropped > 0, "5000 request lines into a pipe nobody reads, none dropped?"
        host = json.loads(http_get(http_port, "/status"))["hosts"][0]
        assert host["log"]["dropped"] == dropped, host["log"]
        print("  5000 requests, slowest answer %.3fs, %d /status calls, %d lines dropped"
              % (max(slowest), status_calls, dropped))

        # Reading the pipe again: the queue comes out, then the count of what was lost.
        out = b""
        deadline = time.monotonic() + 10
        while not DROPPED.search(out) and time.monotonic() < deadline:
            ready, _, _ = select.select([r], [], [], 0.5)
            if ready:
                out += os.read(r, 65536)
        m = DROPPED.search(out)
        assert m, "no 'lines dropped' line once the pipe was read: %r" % out[-500:]
        assert int(m.group(1)) == dropped, (m.group(1), dropped)
        # Whole lines only: each starts with the ident.
        for line in out[:m.end()].splitlines():
            assert line.startswith(b"relaywatchd["), line[:200]
        # A normal stop with a reader loses nothing.
        proc.send_signal(signal.SIGTERM)
        while True:
            ready, _, _ = select.select([r], [], [], 10)
            assert ready, "relaywatchd's stderr still open 10 s after SIGTERM"
            chunk = os.read(r, 65536)
            if not chunk:
                break
            out += chunk
        assert proc.wait(10) == 0
        assert b"info: relaywatchd stopped" in out, out[-500:]
    finally:
        os.close(r)


def test_stop_with_a_stuck_sink():
    """SIGTERM while the pipe is full: exit 0 after about a second for the queue, not never."""
    r, proc, port, http_port = start_on_unread_pipe()
    try:
        threads, slowest, errors = send_requests(port, 2, 1000)
        for t in threads:
            t.join()
        assert not errors, errors
        assert dropped_metric(http_port) > 0
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        took = time.monotonic() - began
        assert took < 3, "stop took %.2fs" % took
    finally:
        os.close(r)


def test_reader_attached_loses_nothing():
    log_path = os.path.join(TMP, "reader.log")
    r, w = os.pipe()
    with open(log_path, "wb") as f:
        reader = subprocess.Popen(["cat"], stdin=r, stdout=f)
    os.close(r)
    proc, port, http_port = start(w)
    os.close(w)
    threads, slowest, errors = send_requests(port, 2, 500)
    for t in threads:
        t.join()
    assert not errors, errors
    assert dropped_metric(http_port) == 0
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert reader.wait(10) == 0
    with open(log_path, "rb") as f:
        out = f.read()
    assert out.count(b"info: request peer=") == 1000, out.count(b"info: request peer=")
    assert not DROPPED.search(out)
    assert out.rstrip().endswith(b"info: relaywatchd stopped"), out[-300:]


TESTS = [
    test_sink_that_never_reads,
    test_stop_with_a_stuck_sink,
    test_reader_attached_loses_nothing,
]


if __name__ == "__main__":
    sys.exit(testlib.main(sys.modules[__name__], TESTS, "rw-abuse-log-", with_cli=True))

#!/usr/bin/env python3
"""Integration test of relaywatchd's HTTP endpoint (http_listen) and of
`relaywatch status`: /status (JSON and text), /metrics (Prometheus text
format 0.0.4), HEAD, error answers (400, 404, 405, 431), the bounds that
keep HTTP from slowing policy answers (idle and slow connections, clients
that never read, the connection cap), and the CLI's output and exit codes.

Starts the daemon on free loopback ports (and a unix socket under a temp
dir), talks HTTP over raw sockets, and stops it by PID.
Usage: http_test.py --relaywatchd PATH --relaywatch PATH [-k NAME]
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import testlib
from testlib import (DUNNO, RCPT, DaemonProcess, free_port, listening_tcp, listening_unix,
                     recv_answer, wait_for)

RELAYWATCHD = None
RELAYWATCH = None
TMP = None
HOST_ID = "mx-httptest"

HTTP_MAX_CONNECTIONS = 64  # policyd/daemon/http.c
HTTP_DEADLINE = 10.0       # policyd/daemon/http.c: accept to last byte written


class Daemon(DaemonProcess):
    """One relaywatchd with a policy port and an HTTP endpoint; stderr to a file."""

    def __init__(self, *args, http=None, name="d"):
        self.port = free_port()
        self.http_port = None
        self.http_path = None
        if http is None:
            self.http_port = free_port()
            http = "inet:127.0.0.1:%d" % self.http_port
        elif http.startswith("unix:"):
            self.http_path = http[5:]
        self.http = http
        # No lookups of its own: nothing may leave loopback (resolver_test covers DNS).
        argv = [RELAYWATCHD, "-e", "-o", "dns_lookups=", "-o", "listen=inet:127.0.0.1:%d" % self.port,
                "-o", "http_listen=" + http, "-o", "host_id=" + HOST_ID] + list(args)
        super().__init__(argv, TMP, name)

        def ready():
            if self.proc.poll() is not None:
                return True
            if not listening_tcp(self.port):
                return False
            if self.http_port is not None:
                return listening_tcp(self.http_port)
            return listening_unix(self.http_path)

        wait_for(ready, what="relaywatchd to listen")
        if self.proc.poll() is not None:
            raise AssertionError("relaywatchd exited early: " + self.text())

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def http_connect(self, timeout=5):
        if self.http_path is not None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(self.http_path)
            return s
        return socket.create_connection(("127.0.0.1", self.http_port), timeout=timeout)



class Response:
    def __init__(self, raw):
        self.raw = raw
        head, sep, self.body = raw.partition(b"\r\n\r\n")
        assert sep, "no end of head in %r" % raw[:300]
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.1 (\d{3}) (.*)$", lines[0])
        assert m, "bad status line %r" % lines[0]
        self.status = int(m.group(1))
        self.reason = m.group(2)
        self.headers = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            assert colon, "bad header line %r" % line
            self.headers[name.strip().lower()] = value.strip()

    def header(self, name):
        return self.headers.get(name.lower())


def read_to_eof(sock, timeout=5):
    sock.settimeout(timeout)
    return testlib.recv_all(sock)


def http_raw(d, data, timeout=5):
    """Send bytes, read until the server closes, parse the response."""
    s = d.http_connect(timeout)
    try:
        s.sendall(data)
        return Response(read_to_eof(s, timeout))
    finally:
        s.close()


def http_get(d, target, method="GET"):
    r = http_raw(d, ("%s %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: http_test\r\n\r\n"
                     % (method, target)).encode())
    assert r.header("connection") == "close", r.headers
    assert r.header("cache-control") == "no-store", r.headers
    length = r.header("content-length")
    assert length is not None and length.isdigit(), r.headers
    if method != "HEAD":
        assert int(length) == len(r.body), (length, len(r.body))
    return r


def policy_round_trip(d, within=2.0):
    """One policy request answered DUNNO within `within` seconds."""
    start = time.monotonic()
    s = d.connect()
    try:
        s.sendall(RCPT)
        got = recv_answer(s, timeout=within)
    finally:
        s.close()
    took = time.monotonic() - start
    assert got == DUNNO, got
    assert took < within, "policy answer took %.2fs" % took
    return took


def check_status_object(obj):
    assert isinstance(obj, dict) and isinstance(obj.get("hosts"), list) and obj["hosts"], obj
    h = obj["hosts"][0]
    for key in ("host", "state", "totals", "windows", "culprits"):
        assert key in h, "hosts[0] lacks %r: %r" % (key, h)
    assert h["host"] == HOST_ID, h["host"]
    assert h["state"] in ("quiet", "loud"), h["state"]
    assert isinstance(h["totals"], dict) and isinstance(h["windows"], dict), h
    assert isinstance(h["culprits"], list), h


def run_cli(*args, timeout=30):
    return subprocess.run([RELAYWATCH] + list(args), capture_output=True, text=True,
                          timeout=timeout)


# Prometheus text exposition format 0.0.4: a sample is
#   metric_name [ "{" label_name "=" '"' label_value '"' { "," ... } [ "," ] "}" ] value [ timestamp ]
METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
VALUE = r"(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?Inf|NaN)"
SAMPLE_RE = re.compile(r"^(%s)(?:\{(?:%s(?:,%s)*,?)?\})? %s(?: -?[0-9]+)?$"
                       % (METRIC_NAME, LABEL, LABEL, VALUE))
HELP_RE = re.compile(r"^# HELP (%s) .*$" % METRIC_NAME)
TYPE_RE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % METRIC_NAME)


# Fields that change with time alone; left out when two views are compared.
TIME_KEYS = {"uptime", "uptime_seconds", "now", "time", "timestamp", "generated", "generated_at",
             "started", "started_at", "since", "until", "age", "age_seconds"}


def differences(a, b, path="$"):
    """Paths where a and b differ, descending into objects and lists."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in set(a) | set(b):
            if k in TIME_KEYS:
                continue
            if k not in a or k not in b:
                out.append("%s.%s (only in one)" % (path, k))
            else:
                out += differences(a[k], b[k], "%s.%s" % (path, k))
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return ["%s (length %d vs %d)" % (path, len(a), len(b))]
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += differences(x, y, "%s[%d]" % (path, i))
        return out
    return [] if a == b else [path]


# ---------------------------------------------------------------- tests

def test_status_json():
    d = Daemon()
    policy_round_trip(d)
    r = http_get(d, "/status")
    assert r.status == 200, r.raw[:300]
    assert r.header("content-type").startswith("application/json"), r.headers
    check_status_object(json.loads(r.body))
    d.stop()


def test_status_text():
    d = Daemon()
    r = http_get(d, "/status?format=text")
    assert r.status == 200, r.raw[:300]
    assert r.header("content-type").startswith("text/plain"), r.headers
    assert HOST_ID in r.body.decode(), r.body
    d.stop()


def test_metrics_format():
    d = Daemon()
    policy_round_trip(d)
    r = http_get(d, "/metrics")
    assert r.status == 200, r.raw[:300]
    ctype = r.header("content-type").replace(" ", "")
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype
    text = r.body.decode()
    assert text.endswith("\n"), "exposition must end with a line feed"
    samples = 0
    typed = {}
    for line in text.split("\n")[:-1]:
        if line == "":
            continue
        if line.startswith("#"):
            m = TYPE_RE.match(line)
            if m:
                assert m.group(1) not in typed, "TYPE given twice: " + line
                typed[m.group(1)] = m.group(2)
            elif line.startswith("# HELP") or line.startswith("# TYPE"):
                assert HELP_RE.match(line), "bad HELP/TYPE line: %r" % line
            continue
        assert SAMPLE_RE.match(line), "not a sample in format 0.0.4: %r" % line
        samples += 1
    assert samples > 0, "no samples:\n" + text
    d.stop()


def test_head_and_errors():
    d = Daemon()
    get = http_get(d, "/status")
    head = http_get(d, "/status", method="HEAD")
    assert head.status == 200, head.raw[:300]
    assert head.body == b"", "HEAD answered with a body: %r" % head.body[:100]
    assert head.header("content-type") == get.header("content-type"), head.headers
    assert int(head.header("content-length")) > 0, head.headers
    head = http_get(d, "/metrics", method="HEAD")
    assert head.status == 200 and head.body == b"", head.raw[:300]

    r = http_raw(d, b"POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    assert r.status == 405, r.raw[:300]
    allow = [m.strip() for m in (r.header("allow") or "").split(",")]
    assert sorted(allow) == ["GET", "HEAD"], r.headers
    for method in ("PUT", "DELETE", "OPTIONS"):
        assert http_get(d, "/status", method=method).status == 405
    # Changes go through the control socket only: http_listen is read-only for everyone.
    for query in ("block=sasl_username:x", "release=sasl_username:x", ""):
        r = http_raw(d, b"POST /throttle?%s HTTP/1.1\r\nHost: x\r\n\r\n" % query.encode())
        assert r.status == 403 and b"control_socket" in r.body, r.raw[:300]
    assert b'"throttled":[]' in http_get(d, "/throttle").body

    for target in ("/nope", "//", "/index.html", "/status/x", "/metricsx"):
        r = http_get(d, target)
        assert r.status == 404, (target, r.raw[:300])
    # / is the HTML status page (status_page_test.py checks what is on it); POST is not for it.
    r = http_get(d, "/")
    assert r.status == 200 and r.header("content-type") == "text/html; charset=utf-8", r.headers
    assert "default-src 'none'" in (r.header("content-security-policy") or ""), r.headers
    assert http_raw(d, b"POST / HTTP/1.1\r\nHost: x\r\n\r\n").status == 405

    # A head over 8 KiB is refused, and the answer still arrives although
    # the daemon never read the rest of it.
    big = b"GET /status HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * 9216 + b"\r\n\r\n"
    r = http_raw(d, big)
    assert r.status == 431, r.raw[:300]
    many = b"GET /status HTTP/1.1\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 90)
                                               for i in range(100)) + b"\r\n"
    assert http_raw(d, many).status == 431

    for garbage in (b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET /status\r\n\r\n",
                    b"GET /status HTTP/1.1 extra\r\n\r\n", b"GET status HTTP/1.1\r\n\r\n",
                    b"GET /status FTP/1.0\r\n\r\n", b"\x00\x01\x02 / HTTP/1.1\r\n\r\n",
                    b"GET /status HTTP/1.1\r\nno colon here\r\n\r\n",
                    b"GET /status HTTP/1.1\r\nBad Name: x\r\n\r\n"):
        r = http_raw(d, garbage)
        assert r.status == 400, (garbage, r.raw[:300])

    # Bare LF line ends and HTTP/1.0 are still understood.
    r = http_raw(d, b"GET /status HTTP/1.0\nHost: x\n\n")
    assert r.status == 200 and json.loads(r.body), r.raw[:300]

    # The daemon still answers policy requests and HTTP after all that.
    policy_round_trip(d)
    assert http_get(d, "/status").status == 200
    # Oddities are logged by category, not once per request.
    log = d.text()
    assert log.count("answered 400") <= 1, log
    assert log.count("answered 405") <= 1, log
    d.stop()


def count_closed(socks, wait=0.5):
    """How many of socks the server has closed (EOF or reset) within `wait`."""
    time.sleep(wait)
    closed = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except (ConnectionResetError, ConnectionAbortedError):
            closed += 1
        s.setblocking(True)
    return closed


def status_ok(d, attempts=50):
    """GET /status answers 200, retrying while the daemon frees connections."""
    last = None
    for _ in range(attempts):
        try:
            r = http_get(d, "/status")
            if r.status == 200:
                json.loads(r.body)
                return
            last = r.status
        except (OSError, AssertionError) as e:
            last = e
        time.sleep(0.1)
    raise AssertionError("GET /status did not answer 200: %r" % (last,))


def test_idle_connections_do_not_block_policy():
    d = Daemon()
    # 100 connections that send nothing: past the cap of 64 the daemon
    # closes the oldest of them for new ones, and policy answers stay prompt.
    idle = [d.http_connect() for _ in range(100)]
    policy_round_trip(d, within=1.0)
    closed = count_closed(idle)
    assert closed >= 100 - HTTP_MAX_CONNECTIONS, "only %d of 100 closed" % closed
    # Nor do they keep the views from a client that asks.
    status_ok(d, attempts=1)
    policy_round_trip(d, within=1.0)
    for s in idle:
        s.close()
    status_ok(d)

    # Left open, idle connections and a slow sender (one byte a second)
    # are closed at the deadline, and /status works again.
    idle = [d.http_connect() for _ in range(HTTP_MAX_CONNECTIONS)]
    start = time.monotonic()
    time.sleep(0.2)
    # The cap is reached: a new client is served, the connection idle longest closed for it.
    status_ok(d, attempts=1)
    assert count_closed(idle[:1], wait=0.3) == 1, "the oldest idle connection was kept open"
    slow = idle[1]
    request = b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n"
    sent = 0
    while time.monotonic() - start < HTTP_DEADLINE + 3 and sent < len(request):
        try:
            slow.send(request[sent:sent + 1])
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += 1
        time.sleep(1)
        policy_round_trip(d, within=1.0)
    wait_for(lambda: count_closed(idle, wait=0) == len(idle), timeout=HTTP_DEADLINE + 5,
             what="idle HTTP connections to be closed at the deadline")
    assert time.monotonic() - start < HTTP_DEADLINE + 5
    for s in idle:
        s.close()
    status_ok(d)
    policy_round_trip(d)
    d.stop()


def test_client_that_never_reads():
    d = Daemon()
    # Clients with the smallest receive buffer that ask and never read.
    stuck = []
    for i in range(40):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        s.connect(("127.0.0.1", d.http_port))
        s.sendall(b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % (b"metrics" if i % 2 else b"status"))
        stuck.append(s)
    time.sleep(0.3)
    policy_round_trip(d, within=1.0)
    start = time.monotonic()
    status_ok(d, attempts=1)
    assert time.monotonic() - start < 1.0
    for s in stuck:
        s.close()
    policy_round_trip(d)
    status_ok(d)
    d.stop()


def test_cli_status():
    d = Daemon()
    policy_round_trip(d)
    where = "http_listen=" + d.http
    before = json.loads(http_get(d, "/status").body)
    r = run_cli("status", "--json", "-o", where)
    after = json.loads(http_get(d, "/status").body)
    assert r.returncode == 0, r
    assert r.stderr == "", r.stderr
    cli = json.loads(r.stdout)
    check_status_object(cli)
    # Equal to GET /status, apart from what changes with time alone.
    diff = [p for p in differences(cli, before) if p in differences(cli, after)]
    assert not diff, "relaywatch status --json differs from GET /status at %s\n%s\n%s" % (
        diff, json.dumps(cli), json.dumps(before))

    r = run_cli("status", "-o", where)
    assert r.returncode == 0, r
    assert HOST_ID in r.stdout, r.stdout

    r = run_cli("status", "-o", "http_listen=")
    assert r.returncode == 2, r
    assert "http_listen is off; relaywatch status needs it" in r.stderr, r.stderr

    d.stop()
    r = run_cli("status", "-o", where)
    assert r.returncode == 1, r
    assert r.stdout == "", r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0] == "relaywatch: cannot reach relaywatchd at %s: Connection refused" % d.http, \
        lines[0]


def test_cli_command_line_and_config():
    r = run_cli("--help")
    assert r.returncode == 0 and "relaywatch status" in r.stdout, r
    for args in ([], ["bogus"], ["status", "--frob"], ["status", "extra"], ["status", "-c"],
                 ["status", "-o"]):
        r = run_cli(*args)
        assert r.returncode == 2, (args, r)
        assert r.stderr.startswith("relaywatch: "), (args, r.stderr)
    r = run_cli("status", "-c", os.path.join(TMP, "missing.conf"))
    assert r.returncode == 2 and "missing.conf" in r.stderr, r
    r = run_cli("status", "-o", "no_such_key=1")
    assert r.returncode == 2 and "no_such_key" in r.stderr, r

    # The endpoint comes from the file as relaywatchd reads it; -o wins over it.
    d = Daemon()
    conf = os.path.join(TMP, "cli.conf")
    with open(conf, "w") as f:
        f.write("# test\nhttp_listen =\n    %s\n" % d.http)
    r = run_cli("status", "--json", "-c", conf)
    assert r.returncode == 0, r
    check_status_object(json.loads(r.stdout))
    r = run_cli("status", "-c", conf, "-o", "http_listen=")
    assert r.returncode == 2, r
    with open(conf, "w") as f:
        f.write("http_listen = %s\nbogus_key = 1\n" % d.http)
    r = run_cli("status", "-c", conf)
    assert r.returncode == 2 and "%s:2:" % conf in r.stderr, r
    d.stop()


def test_unix_socket():
    path = os.path.join(TMP, "http.sock")
    d = Daemon(http="unix:" + path)
    r = http_get(d, "/status")
    assert r.status == 200, r.raw[:300]
    check_status_object(json.loads(r.body))
    r = run_cli("status", "--json", "-o", "http_listen=unix:" + path)
    assert r.returncode == 0, r
    check_status_object(json.loads(r.stdout))
    d.stop()
    assert not os.path.exists(path), "unix socket file left behind"
    r = run_cli("status", "-o", "http_listen=unix:" + path)
    assert r.returncode == 1 and "cannot reach relaywatchd at unix:%s" % path in r.stderr, r


TESTS = [
    test_status_json,
    test_status_text,
    test_metrics_format,
    test_head_and_errors,
    test_idle_connections_do_not_block_policy,
    test_client_that_never_reads,
    test_cli_status,
    test_cli_command_line_and_config,
    test_unix_socket,
]


if __name__ == "__main__":
    sys.exit(testlib.main(sys.modules[__name__], TESTS, "rw-http-", with_cli=True))

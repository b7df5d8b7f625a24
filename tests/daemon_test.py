#!/usr/bin/env python3
"""Integration test of relaywatchd as a process: command line, configuration,
framing, limits, bad input, many connections, SIGHUP and SIGTERM.

Starts the daemon on free loopback ports and unix sockets under a temp dir,
talks the policy protocol to it over real sockets, and stops it by PID.
Usage: daemon_test.py --relaywatchd PATH
"""
import os
import pwd
import resource
import signal
import socket
import stat
import subprocess
import sys
import time

import testlib
from testlib import (DUNNO, RCPT, DaemonProcess, free_port, listening_tcp, listening_unix,
                     recv_answer, wait_for)

RELAYWATCHD = None
TMP = None


class Daemon(DaemonProcess):
    """relaywatchd on a free policy port, the status page off unless asked for."""

    def __init__(self, *args, port=None, wait=True, name="d", preexec_fn=None):
        self.port = port if port is not None else free_port()
        # No lookups of its own: nothing may leave loopback (resolver_test covers DNS).
        argv = [RELAYWATCHD, "-e", "-o", "dns_lookups="]
        if not any(a.startswith("listen=") for a in args) and "-c" not in args:
            argv += ["-o", "listen=inet:127.0.0.1:%d" % self.port]
        # The status page has a fixed default port; tests here leave it off (http_test covers it).
        if not any(a.startswith("http_listen=") for a in args):
            argv += ["-o", "http_listen="]
        argv += list(args)
        super().__init__(argv, TMP, name, preexec_fn)
        if wait:
            wait_for(lambda: listening_tcp(self.port) or self.proc.poll() is not None,
                     what="relaywatchd to listen")
            if self.proc.poll() is not None:
                raise AssertionError("relaywatchd exited early: " + self.text())

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)


def assert_closed_without_answer(sock):
    sock.settimeout(5)
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    assert data == b"", "expected no answer, got %r" % data


def answered_connections(d, n):
    """n open connections, each with one request answered."""
    socks = [d.connect() for _ in range(n)]
    for s in socks:
        s.sendall(RCPT)
    for s in socks:
        assert recv_answer(s) == DUNNO
    return socks


def busy_connections(d, n):
    """n open connections, each in the middle of a request (not idle: never closed for a new
    one)."""
    socks = [d.connect() for _ in range(n)]
    for s in socks:
        s.sendall(RCPT[:10])
    time.sleep(0.2)  # read by the daemon: a connection it has read nothing from counts as idle
    return socks


def assert_refused(d):
    """A new connection is closed without an answer."""
    extra = d.connect()
    try:
        extra.sendall(RCPT)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert_closed_without_answer(extra)
    extra.close()


def request(**attrs):
    lines = ["request=smtpd_access_policy"] + ["%s=%s" % (k, v) for k, v in attrs.items()]
    return ("\n".join(lines) + "\n\n").encode()


# ---------------------------------------------------------------- tests

def test_answers_and_framing():
    with Daemon() as d:
        s = d.connect()
        s.sendall(RCPT)
        assert recv_answer(s) == DUNNO
        # Several requests in one write: one answer each, in order.
        s.sendall(RCPT * 5)
        got = b""
        while got.count(b"\n\n") < 5:
            chunk = s.recv(4096)
            assert chunk, "closed early"
            got += chunk
        assert got == DUNNO * 5, got
        # CRLF line ends.
        s.sendall(RCPT.replace(b"\n", b"\r\n"))
        assert recv_answer(s) == DUNNO
        # Every protocol_state Postfix sends, plus unknown attributes and empty values.
        for st in ["CONNECT", "EHLO", "HELO", "MAIL", "RCPT", "DATA", "END-OF-MESSAGE", "VRFY",
                   "ETRN", "BDAT", ""]:
            s.sendall(request(protocol_state=st, tls_sni="x", some_future_attribute="1",
                              sender=""))
            assert recv_answer(s) == DUNNO, st
        # Split at every byte, each byte its own segment.
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(RCPT)):
            s.send(RCPT[i:i + 1])
            if i % 50 == 0:
                time.sleep(0.001)
        assert recv_answer(s) == DUNNO
        # The connection stays open for more.
        s.sendall(RCPT)
        assert recv_answer(s) == DUNNO
        s.close()


def test_limits_and_bad_input():
    with Daemon() as d:
        bystander = d.connect()
        bystander.sendall(RCPT)
        assert recv_answer(bystander) == DUNNO

        ok_value = request(sender="a" * 8192)
        s = d.connect()
        s.sendall(ok_value)
        assert recv_answer(s) == DUNNO, "an 8192-byte value is within Postfix's limit"
        s.sendall(request(**{"n" * 8192: "1"}))
        assert recv_answer(s) == DUNNO, "an 8192-byte name is within Postfix's limit"
        s.close()

        bad = {
            "no equals": b"request=smtpd_access_policy\nno equals here\n\n",
            "NUL byte": b"request=smtpd_access_policy\nsender=a\x00b\n\n",
            "value too long": request(sender="a" * 8193),
            "name too long": request(**{"n" * 8193: "1"}),
            "too many attributes": request(**{"x%d" % i: "1" for i in range(300)}),
            "request too large": request(**{"x%d" % i: "v" * 8000 for i in range(10)}),
            "no request attribute": b"protocol_state=RCPT\n\n",
            "empty request": b"\n",
            "http": b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n",
        }
        for name, payload in bad.items():
            s = d.connect()
            try:
                s.sendall(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed while we were still sending: also right
            assert_closed_without_answer(s)
            s.close()
        # The other connection is untouched.
        bystander.sendall(RCPT)
        assert recv_answer(bystander) == DUNNO
        bystander.close()
        time.sleep(0.1)
        log = d.text()
        for text in ["attribute line without '='", "NUL byte", "value longer than 8192",
                     "name longer than 8192", "more than 256 attributes",
                     "request larger than 65536", "without request=smtpd_access_policy"]:
            assert text in log, "log lacks %r:\n%s" % (text, log)
        # Each warning names the peer's address.
        warnings = [l for l in log.splitlines() if "closing connection without answer" in l]
        assert len(warnings) == len(bad), "%d warnings for %d bad requests:\n%s" % (
            len(warnings), len(bad), log)
        assert all("127.0.0.1:" in l for l in warnings), warnings


def test_many_connections():
    with Daemon() as d:
        socks = answered_connections(d, 500)
        # A second round on the same connections: they were kept open.
        for s in socks:
            s.sendall(RCPT)
        for s in socks:
            assert recv_answer(s) == DUNNO
        for s in socks:
            s.close()


def test_connection_limit():
    """At max_connections a new connection closes the one idle longest; with every connection
    in the middle of a request it is refused at once."""
    with Daemon("-o", "max_connections=5", "-o", "request_timeout=30s") as d:
        # One at a time: they go idle in this order.
        held = [answered_connections(d, 1)[0] for _ in range(5)]
        for i in range(3):
            held += answered_connections(d, 1)
            assert_closed_without_answer(held[i])
        for s in held[3:]:
            s.sendall(RCPT[:10])
        time.sleep(0.2)
        for _ in range(3):
            assert_refused(d)
        log = d.text()
        assert log.count("connection limit reached") == 1, log
        held.pop().close()
        time.sleep(0.2)
        s = d.connect()
        s.sendall(RCPT)
        assert recv_answer(s) == DUNNO, "a slot freed up"
        assert "3 connections were refused and 3 idle ones closed" in d.text(), d.text()
        s.close()
        for s in held:
            s.close()


def test_connection_limit_churn():
    """Turning connections over at the limit is one episode, not a log line each."""
    with Daemon("-o", "max_connections=20", "-o", "request_timeout=30s") as d:
        held = busy_connections(d, 20)
        for _ in range(10):
            assert_refused(d)
            held.pop().close()
            time.sleep(0.05)
            held += busy_connections(d, 1)
        log = d.text()
        assert log.count("connection limit reached") == 1, log
        assert "below the connection limit again" not in log, log
        # At 90 % of the limit (18 of 20), not before, the episode ends, with the count of
        # refusals.
        held.pop().close()
        time.sleep(0.3)
        assert "connections were refused" not in d.text(), d.text()
        held.pop().close()
        wait_for(lambda: "10 connections were refused" in d.text(), what="episode summary")
        for s in held:
            s.close()


def test_idle_timeout():
    with Daemon("-o", "idle_timeout=1s") as d:
        s = d.connect()
        s.sendall(RCPT)
        assert recv_answer(s) == DUNNO
        start = time.time()
        s.settimeout(5)
        assert s.recv(10) == b""
        waited = time.time() - start
        assert 0.8 < waited < 3, waited


def test_unix_sockets():
    path = os.path.join(TMP, "policy.sock")
    # A stale socket file (nobody listening) is replaced.
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()
    # relaywatchd started as root runs as nobody: a socket an earlier run left is nobody's.
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    d = Daemon("-o", "listen=inet:127.0.0.1:%d unix:%s" % (free_port(), path),
               "-o", "unix_socket_mode=0660", wait=False)
    try:
        wait_for(lambda: listening_unix(path), what="unix socket")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        s.sendall(RCPT)
        assert recv_answer(s) == DUNNO
        s.sendall(b"bogus\n\n")
        assert_closed_without_answer(s)
        time.sleep(0.1)
        assert "unix:%s(pid %d)" % (path, os.getpid()) in d.text(), d.text()
        assert "replaced a stale socket" in d.text()
        # A live socket is not taken over by a second daemon.
        r = subprocess.run([RELAYWATCHD, "-e", "-o", "listen=unix:" + path],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 2, r
        assert "in use" in r.stderr, r.stderr
    finally:
        assert d.stop() == 0
    assert not os.path.exists(path), "socket file removed on exit"
    # A live server whose backlog is full: "in use" at once, not a hang.
    busy = socket.socket(socket.AF_UNIX)
    busy.bind(path)
    os.chmod(path, 0o777)
    busy.listen(0)
    fillers = []
    while True:
        c = socket.socket(socket.AF_UNIX)
        c.setblocking(False)
        try:
            c.connect(path)
        except BlockingIOError:
            c.close()
            break
        fillers.append(c)
    r = subprocess.run([RELAYWATCHD, "-e", "-o", "listen=unix:" + path],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "in use" in r.stderr, r
    for c in fillers:
        c.close()
    busy.close()
    os.unlink(path)
    # A path that is not a socket is never removed.
    with open(path, "w") as f:
        f.write("precious")
    r = subprocess.run([RELAYWATCHD, "-e", "-o", "listen=unix:" + path],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "not a socket" in r.stderr, r
    assert open(path).read() == "precious"
    os.unlink(path)


def test_sighup_reload():
    conf = os.path.join(TMP, "reload.conf")
    port1, port2 = free_port(), free_port()
    with open(conf, "w") as f:
        f.write("listen = inet:127.0.0.1:%d\n" % port1)
    d = Daemon("-c", conf, port=port1)
    try:
        s = d.connect()
        s.sendall(RCPT)
        assert recv_answer(s) == DUNNO
        # Add a second listener and turn on request logging.
        with open(conf, "w") as f:
            f.write("listen = inet:127.0.0.1:%d,\n  inet:127.0.0.1:%d\nlog_requests = yes\n"
                    % (port1, port2))
        d.signal(signal.SIGHUP)
        wait_for(lambda: listening_tcp(port2), what="second listener after SIGHUP")
        s.sendall(RCPT)
        assert recv_answer(s) == DUNNO, "connection kept across reload"
        s2 = socket.create_connection(("127.0.0.1", port2), timeout=5)
        s2.sendall(RCPT)
        assert recv_answer(s2) == DUNNO
        wait_for(lambda: "request peer=" in d.text(), what="request logging after reload")
        # A broken file is logged and the running configuration kept.
        with open(conf, "w") as f:
            f.write("listen = inet:127.0.0.1:%d\nmax_conections = 5\n" % port1)
        d.signal(signal.SIGHUP)
        wait_for(lambda: "keeping the running one" in d.text(), what="reload failure log")
        assert "%s:2: unknown configuration key 'max_conections'" % conf in d.text(), d.text()
        assert listening_tcp(port2), "old configuration kept"
        s2.sendall(RCPT)
        assert recv_answer(s2) == DUNNO
        # Dropping the second listener closes it; its open connection stays.
        with open(conf, "w") as f:
            f.write("listen = inet:127.0.0.1:%d\n" % port1)
        d.signal(signal.SIGHUP)
        wait_for(lambda: not listening_tcp(port2), what="second listener to close")
        s2.sendall(RCPT)
        assert recv_answer(s2) == DUNNO
        s.close()
        s2.close()
        assert d.proc.poll() is None
    finally:
        assert d.stop() == 0


def test_sigterm_finishes_in_flight():
    d = Daemon()
    idle = d.connect()
    idle.sendall(RCPT)
    assert recv_answer(idle) == DUNNO
    busy = d.connect()
    busy.sendall(RCPT[:40])  # a request in the middle of arriving
    time.sleep(0.1)
    d.signal(signal.SIGTERM)
    wait_for(lambda: not listening_tcp(d.port), what="listener to close on SIGTERM")
    assert d.proc.poll() is None, "must wait for the request in flight"
    assert idle.recv(10) == b"", "idle connection closed at shutdown"
    busy.sendall(RCPT[40:])
    assert recv_answer(busy) == DUNNO, "request in flight is answered"
    busy.settimeout(5)
    assert busy.recv(10) == b""
    assert d.stop() == 0
    assert "received SIGTERM" in d.text()


def test_sigterm_answers_request_waiting_in_socket():
    """A request that reached the socket but not the daemon when SIGTERM came is answered."""
    d = Daemon()
    s = d.connect()
    s.sendall(RCPT)
    assert recv_answer(s) == DUNNO
    d.signal(signal.SIGSTOP)
    try:
        s.sendall(RCPT)
        time.sleep(0.1)
        d.signal(signal.SIGTERM)
        time.sleep(0.1)
    finally:
        d.signal(signal.SIGCONT)
    assert recv_answer(s) == DUNNO, "request in the socket at SIGTERM is answered"
    s.settimeout(5)
    assert s.recv(10) == b""
    assert d.stop() == 0


def test_signals_before_start_are_not_fatal():
    """SIGHUP while the configuration is still being read waits for the loop."""
    fifo = os.path.join(TMP, "slow.conf")
    os.mkfifo(fifo)
    port = free_port()
    d = Daemon("-c", fifo, port=port, wait=False)
    time.sleep(0.2)  # blocked opening the FIFO
    d.signal(signal.SIGHUP)
    time.sleep(0.1)
    assert d.proc.poll() is None, "SIGHUP killed the daemon while it was starting"
    text = "listen = inet:127.0.0.1:%d\n" % port
    with open(fifo, "w") as f:
        f.write(text)
    wait_for(lambda: listening_tcp(port), what="daemon to listen")
    # The early SIGHUP now reloads, which reads the FIFO again.
    with open(fifo, "w") as f:
        f.write(text + "log_requests = yes\n")
    wait_for(lambda: "reload: configuration" in d.text(), what="the early SIGHUP's reload")
    s = d.connect()
    s.sendall(RCPT)
    assert recv_answer(s) == DUNNO
    s.close()
    assert d.stop() == 0


def test_reload_raises_open_file_limit():
    conf = os.path.join(TMP, "limits.conf")
    port = free_port()
    with open(conf, "w") as f:
        f.write("listen = inet:127.0.0.1:%d\nmax_connections = 100\n" % port)
    old = resource.getrlimit(resource.RLIMIT_NOFILE)

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (150, old[1]))

    d = Daemon("-c", conf, port=port, preexec_fn=low_limit)

    def soft_limit():
        with open("/proc/%d/limits" % d.proc.pid) as f:
            for line in f:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
        raise AssertionError("no open-file limit in /proc")

    assert soft_limit() == 164, soft_limit()  # raised at start to max_connections + 64
    with open(conf, "w") as f:
        f.write("listen = inet:127.0.0.1:%d\nmax_connections = 1000\n" % port)
    d.signal(signal.SIGHUP)
    wait_for(lambda: "reload: configuration" in d.text(), what="reload")
    assert soft_limit() >= 1064, soft_limit()
    for s in answered_connections(d, 300):
        s.close()
    assert "Too many open files" not in d.text(), d.text()
    assert d.stop() == 0


def test_sigterm_gives_up_after_shutdown_timeout():
    d = Daemon("-o", "shutdown_timeout=1s")
    busy = d.connect()
    busy.sendall(RCPT[:40])
    time.sleep(0.1)
    start = time.time()
    d.signal(signal.SIGINT)
    assert d.stop() == 0
    assert 0.8 < time.time() - start < 5
    assert "still in the middle of a request" in d.text(), d.text()


def test_command_line_and_config_errors():
    good = os.path.join(TMP, "good.conf")
    with open(good, "w") as f:
        f.write("# valid\nlisten = inet:127.0.0.1:%d\nidle_timeout = 6m\n" % free_port())
    bad = os.path.join(TMP, "bad.conf")
    with open(bad, "w") as f:
        f.write("listen = inet:127.0.0.1:10040\nlisen = x\nmax_connections = -1\n"
                "http_listen = inet:127.0.0.1:10040\n")

    def run(*args):
        return subprocess.run([RELAYWATCHD] + list(args), capture_output=True, text=True,
                              timeout=10)

    r = run("-t", "-c", good)
    assert r.returncode == 0, r
    r = run("-t", "-c", bad)
    assert r.returncode == 1, r
    assert "%s:2: unknown configuration key 'lisen'" % bad in r.stderr, r.stderr
    assert "%s:3: max_connections" % bad in r.stderr, r.stderr
    assert "%s:4: http_listen" % bad in r.stderr, r.stderr
    r = run("-t", "-c", good, "-o", "idle_timeout=soon")
    assert r.returncode == 1 and "idle_timeout" in r.stderr, r
    r = run("-t", "-c", os.path.join(TMP, "missing.conf"))
    assert r.returncode == 1 and "cannot read" in r.stderr, r
    r = run("-e", "-c", bad)
    assert r.returncode == 2 and "unknown configuration key" in r.stderr, r
    r = run("-e", "-c", os.path.join(TMP, "missing.conf"))
    assert r.returncode == 2 and "missing.conf: cannot read" in r.stderr, r
    r = run("-x")
    assert r.returncode == 2 and "usage" in r.stderr, r
    r = run("-e", "extra-argument")
    assert r.returncode == 2, r
    r = run("-t", "-o", "store=redis://127.0.0.1:6379")
    assert r.returncode == 0, r
    r = run("-t", "-o", "store=redis://127.0.0.1")
    assert r.returncode == 1 and "store" in r.stderr, r
    # Port in use: exit 2 with one clear line.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run("-e", "-o", "listen=inet:127.0.0.1:%d" % port)
        assert r.returncode == 2, r
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "Address already in use" in lines[0], r.stderr


TESTS = [
    test_answers_and_framing,
    test_limits_and_bad_input,
    test_many_connections,
    test_connection_limit,
    test_connection_limit_churn,
    test_idle_timeout,
    test_unix_sockets,
    test_sighup_reload,
    test_sigterm_finishes_in_flight,
    test_sigterm_answers_request_waiting_in_socket,
    test_signals_before_start_are_not_fatal,
    test_reload_raises_open_file_limit,
    test_sigterm_gives_up_after_shutdown_timeout,
    test_command_line_and_config_errors,
]


if __name__ == "__main__":
    sys.exit(testlib.main(sys.modules[__name__], TESTS, "rw-daemon-"))

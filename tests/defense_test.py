#!/usr/bin/env python3
"""Integration test of relaywatchd's defense: the detector (quiet/loud) on a relay burst, the
throttling of its culprit, GET/POST /throttle, alert_command, monitor_only, static limits,
throttles shared by a fleet through a real Redis (with relaywatch block / release), baselines
kept in Redis across a restart (and read again after a failed read), a SIGHUP that changes
culprit_action, a reconnect that must not undo a newer release, and relaywatch list's text view.

Real processes only: relaywatchd (every one with -e and dns_lookups empty, so that nothing
leaves loopback) on free loopback ports, a private redis-server (store_test.Redis: no
persistence, a unix socket under a temp dir) where a store is shared.  The daemons are driven
with RCPT policy requests as Postfix sends them, one message per request (distinct
client_port and instance): a relay burst is one client_address sending to a new domain per
request, a few per second; ordinary clients send to two or three domains.  Without DNS lookups
of its own and without tdns, the detector takes MX from relay domains, so 20 new relay domains
in the detection window (detect_min_mx / detect_min_domains) make the loud condition.

The tests wait for windows and for detect_loud_after, so they run side by side (each in a
thread, each with its own daemons, ports and Redis); the file takes about 80 s.
Usage: defense_test.py --relaywatchd PATH --relaywatch PATH [-k NAME]
"""
import argparse
import http.client
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import store_test
from testlib import (STARTED, DaemonProcess, free_port, listening_tcp, policy_request, recv_answer,
                     unix_http)

RELAYWATCHD = None
RELAYWATCH = None
TMP = None

LOCAL_DOMAIN = "example.com"
CULPRIT_ACTION = "DEFER 4.7.1 Too much relay mail from you: sending paused, try again later"
LIMIT_ACTION = "DEFER 4.7.1 Sending limit reached: try again later"
BLOCK_ACTION = "REJECT 5.7.1 Sending blocked by the mail administrator"
DUNNO = "action=DUNNO"

SEQ = itertools.count(1)  # makes every message's client_port and instance unique


def say(fmt, *args):
    print("  [%s] %s" % (threading.current_thread().name, fmt % args), flush=True)


def wait_until(cond, timeout, what, interval=0.1):
    """Poll cond until it returns something true; return that, or fail after timeout."""
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.time() >= deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def empty_config():
    path = os.path.join(TMP, "empty.conf")
    if not os.path.exists(path):
        open(path, "w").close()
    return path


# ---------------------------------------------------------------- daemon

class Daemon(DaemonProcess):
    """relaywatchd on free loopback ports: policy, status; no DNS of its own."""

    def __init__(self, host, *opts, conf=None, store="memory"):
        self.host = host
        self.port = free_port()
        self.http_port = free_port()
        self.control_path = os.path.join(TMP, "%s-%d.control" % (host, self.port))
        argv = [RELAYWATCHD, "-e", "-c", conf or empty_config(),
                "-o", "listen=inet:127.0.0.1:%d" % self.port,
                "-o", "http_listen=inet:127.0.0.1:%d" % self.http_port,
                "-o", "control_socket=unix:" + self.control_path,
                "-o", "host_id=" + host, "-o", "store=" + store,
                "-o", "local_domains=" + LOCAL_DOMAIN,
                "-o", "dns_lookups="] + list(opts)
        super().__init__(argv, TMP, host)
        self.sock = None
        self.lock = threading.Lock()
        wait_until(lambda: self.proc.poll() is not None or
                   (listening_tcp(self.port) and listening_tcp(self.http_port)), 10,
                   "relaywatchd %s to listen" % host, interval=0.02)
        self.assert_alive()

    def assert_alive(self):
        rc = self.proc.poll()
        if rc is not None:
            raise AssertionError("relaywatchd %s is gone (%s); its log:\n%s" % (
                self.host, "signal %d" % -rc if rc < 0 else "exit %d" % rc, self.text()))

    def rcpt(self, client, recipient, sender="", sasl=""):
        """One message with one recipient, as Postfix asks at RCPT; the answer's first line."""
        n = next(SEQ)
        req = policy_request(
            "RCPT", client_address=client, client_port=str(1024 + n % 60000),
            helo_name="h%d.example.net" % n, sender=sender or "user@%s" % client_domain(client),
            recipient=recipient, instance="%x.%08x.%05x.0" % (0x4000 + n % 50, n, n),
            sasl_method="PLAIN" if sasl else "", sasl_username=sasl)
        with self.lock:
            for attempt in (1, 2):
                if self.sock is None:
                    self.assert_alive()
                    self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                try:
                    self.sock.sendall(req)
                    answer = recv_answer(self.sock)
                except OSError:
                    answer = b""
                if answer.endswith(b"\n\n"):
                    return answer.decode().split("\n")[0]
                self.sock.close()
                self.sock = None
            self.assert_alive()
            raise AssertionError("%s: no answer to a RCPT request" % self.host)

    def http(self, method, target):
        """(status, body text)."""
        self.assert_alive()
        c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=5)
        try:
            c.request(method, target)
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    def control(self, method, target):
        """(status, body text) over the control socket (the tests run as root: admitted)."""
        self.assert_alive()
        return unix_http(self.control_path, method, target)

    def get_json(self, target):
        status, body = self.http("GET", target)
        assert status == 200, (target, status, body)
        return json.loads(body)

    def me(self):
        """This daemon's own entry of /status."""
        st = self.get_json("/status")
        return next(h for h in st["hosts"] if h["host"] == self.host)

    def metrics(self):
        status, body = self.http("GET", "/metrics")
        assert status == 200, (status, body)
        out = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def throttled(self):
        return {"%s:%s" % (e["kind"], e["key"]): e
                for e in self.get_json("/throttle")["throttled"]}

    def log_has(self, pattern):
        return re.search(pattern, self.text())

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def stop(self, timeout=15):
        self.close()
        return super().stop(timeout)


def client_domain(client):
    return "c" + client.replace(".", "-").replace(":", "-") + ".example.net"


def burst_domain(tag, i):
    return "user@d%04d.%s.example" % (i, tag)


class Ordinary:
    """Clients sending to the same two or three partner domains (and some inbound mail)."""
    CLIENTS = ["198.51.100.10", "198.51.100.11", "198.51.100.12"]
    PARTNERS = ["partner-a.example", "partner-b.example", "partner-c.example"]

    def __init__(self):
        self.n = 0

    def send(self, d):
        """One message from one of the clients; the answer must be DUNNO."""
        self.n += 1
        client = self.CLIENTS[self.n % len(self.CLIENTS)]
        if self.n % 4 == 0:
            rcpt = "staff%d@%s" % (self.n, LOCAL_DOMAIN)
        else:
            rcpt = "someone%d@%s" % (self.n, self.PARTNERS[self.n % len(self.PARTNERS)])
        a = d.rcpt(client, rcpt)
        assert a == DUNNO, "ordinary client %s -> %s answered %r on %s" % (client, rcpt, a, d.host)
        return a


def burst_until(daemons, culprit, tag, done, timeout, rate=4.0, ordinary=None, start_at=0):
    """Send the culprit's relay mail (a new domain per message) to every daemon, `rate` a
    second, with ordinary mail in between, until done(answers) or timeout.  Returns
    (seconds from the start to when done held, answers [(t, daemon, answer)], next index)."""
    start = time.time()
    answers = []
    i = start_at
    while True:
        t = time.time()
        for d in daemons:
            answers.append((t - start, d, d.rcpt(culprit, burst_domain(tag, i))))
        i += 1
        if ordinary is not None and i % 2 == 0:
            for d in daemons:
                ordinary.send(d)
        if done(answers):
            return t - start, answers, i
        if t - start > timeout:
            tail = "\n".join("%.1fs %s %s" % (a[0], a[1].host, a[2]) for a in answers[-5:])
            raise AssertionError("burst from %s: nothing after %.0fs; last answers:\n%s\n%s "
                                 "log:\n%s" % (culprit, timeout, tail, daemons[0].host,
                                               daemons[0].text()[-3000:]))
        time.sleep(max(0.0, 1.0 / rate - (time.time() - t)))


def first_refusal(answers):
    return any(a != DUNNO for _, _, a in answers)


# ---------------------------------------------------------------- tests

def test_burst_throttles_culprit():
    """Default detector settings, memory store: the culprit of a relay burst is deferred,
    everyone else is not; /throttle, /status and /metrics show it; a release by hand holds."""
    d = Daemon("mx-burst")
    culprit = "203.0.113.66"
    ordinary = Ordinary()
    seconds, answers, i = burst_until([d], culprit, "burst", first_refusal, 60,
                                      ordinary=ordinary)
    refusal = next(a for _, _, a in answers if a != DUNNO)
    say("first refusal of the culprit %.1fs after the burst started (%d relay messages): %s",
        seconds, len(answers), refusal)
    assert refusal == "action=" + CULPRIT_ACTION, refusal
    assert seconds <= 60, seconds
    # Not before the detector could have held its condition for detect_loud_after (20s).
    assert seconds >= 20, "refused after %.1fs, before detect_loud_after 20s" % seconds
    log = d.text()
    assert "incident 1 started: loud: MX" in log, log[-3000:]
    assert re.search(r"throttle client_address:%s with '%s' until 3600s from now: culprit of "
                     r"the relay burst" % (re.escape(culprit), re.escape(CULPRIT_ACTION)),
                     log), log[-3000:]
    # Still refused; the others and the culprit's inbound mail are not.
    for k in range(3):
        assert d.rcpt(culprit, burst_domain("burst", i + k)) == "action=" + CULPRIT_ACTION
        ordinary.send(d)
    assert d.rcpt(culprit, "staff@" + LOCAL_DOMAIN) == DUNNO, "inbound mail is never touched"
    i += 3

    listed = d.throttled()
    key = "client_address:" + culprit
    assert list(listed) == [key], listed
    e = listed[key]
    assert e["action"] == CULPRIT_ACTION and e["source"] == "detector", e
    assert e["host"] == "mx-burst" and e["answers"] >= 4, e
    me = d.me()
    assert me["state"] == "loud", me["state"]
    assert me["detector"]["state"] == "loud", me["detector"]
    assert me["incidents"]["started"] == 1 and me["incidents"]["open_since"], me["incidents"]
    assert [(t["kind"], t["key"]) for t in me["throttled"]] == [("client_address", culprit)], \
        me["throttled"]
    assert me["relay_answers"]["DEFER"] >= 4, me["relay_answers"]
    assert me["monitor_only"] is False and me["would_answer"]["DEFER"] == 0, me["would_answer"]
    m = d.metrics()
    assert m["relaywatch_loud"] == 1, m.get("relaywatch_loud")
    assert m["relaywatch_incidents_total"] == 1, m
    assert m["relaywatch_throttles_total"] == 1 and m["relaywatch_throttled_keys"] == 1, m
    assert m['relaywatch_relay_answers_total{action="DEFER"}'] >= 4, m
    assert m['relaywatch_detector_signal{signal="relay_domains"}'] >= 20, m
    assert 'relaywatch_detector_baseline{signal="mx"}' in m, m

    # Released by hand: DUNNO although still loud, and the detector leaves it alone.
    status, body = d.control("POST", "/throttle?release=client_address:" + culprit)
    assert status == 200 and body == "released client_address:%s\n" % culprit, (status, body)
    assert d.rcpt(culprit, burst_domain("burst", i)) == DUNNO
    for k in range(1, 9):  # over two detector ticks, to new domains
        assert d.rcpt(culprit, burst_domain("burst", i + k)) == DUNNO, k
        time.sleep(0.3)
    assert d.me()["state"] == "loud", "still loud after the release"
    assert d.throttled() == {}, d.throttled()
    assert "release client_address:%s by hand" % culprit in d.text()

    for bad in ("nosuch:" + culprit, "client_address:", "client_address", ""):
        status, body = d.control("POST", "/throttle?release=" + bad)
        assert status == 400, (bad, status, body)
        status, body = d.control("POST", "/throttle?block=" + bad)
        assert status == 400, (bad, status, body)
    status, body = d.control("POST", "/throttle")
    assert status == 400, (status, body)
    status, body = d.http("POST", "/status")
    assert status == 405, (status, body)
    d.stop()


ALERT_SCRIPT = """#!/bin/sh
# Copy the incident (stdin) to a file of its own.
cat > "%s/alert.$$.json.tmp" && mv "%s/alert.$$.json.tmp" "%s/alert.$$.json"
"""


def read_alerts(directory):
    out = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".json"):
            with open(os.path.join(directory, name)) as f:
                out.append(json.loads(f.read()))
    return out


def test_alert_command():
    """alert_command gets the incident as JSON at its start and at its end; a failing one is
    logged."""
    alerts = tempfile.mkdtemp(prefix="alerts-", dir=TMP)
    os.chmod(alerts, 0o1777)  # the alert command runs as the daemon's user (nobody)
    script = os.path.join(alerts, "alert.sh")
    with open(script, "w") as f:
        f.write(ALERT_SCRIPT % (alerts, alerts, alerts))
    os.chmod(script, 0o755)
    fast = ["-o", "detect_window=1m", "-o", "detect_loud_after=2s",
            "-o", "detect_quiet_after=5s"]
    d = Daemon("mx-alert", *fast, "-o", "alert_command=" + script)
    failing = os.path.join(alerts, "fails.sh")
    with open(failing, "w") as f:
        f.write("#!/bin/sh\ncat >/dev/null\nexit 3\n")
    os.chmod(failing, 0o755)
    bad = Daemon("mx-alert-fails", *fast, "-o", "alert_command=" + failing)
    culprit = "203.0.113.77"

    def both_refused(answers):
        return {dd.host for _, dd, a in answers if a != DUNNO} == {d.host, bad.host}

    seconds, answers, _ = burst_until([d, bad], culprit, "alert", both_refused, 40, rate=5,
                                      ordinary=Ordinary())
    burst_end = time.time()
    say("refused on both after %.1fs; burst stopped", seconds)
    start = wait_until(lambda: [a for a in read_alerts(alerts) if a.get("event") == "start"],
                       5, "the start alert")[0]
    assert start["host"] == "mx-alert", start
    assert start["end"] is None and start["duration_seconds"] is None, start
    assert start["reason"].startswith("loud: MX"), start
    assert start["window"] == "1m", start
    assert "client_address:" + culprit in start["culprits"], start
    assert start["monitor_only"] is False, start
    wait_until(lambda: bad.log_has(r"alert_command \(pid \d+\) failed: exit status 3"), 5,
               "the failed alert_command in the log")

    end = wait_until(lambda: [a for a in read_alerts(alerts) if a.get("event") == "end"],
                     100, "the end alert (the 1m window must empty)", interval=0.5)[0]
    say("end alert %.1fs after the burst stopped: duration_seconds %s, answers %s",
        time.time() - burst_end, end["duration_seconds"], end["answers"])
    assert isinstance(end["duration_seconds"], (int, float)) and end["duration_seconds"] > 0, end
    assert end["start"] == start["start"] and end["end"] is not None, end
    assert end["reason"].startswith("quiet:"), end
    assert "client_address:" + culprit in end["culprits"], end
    assert end["answers"]["deferred"] >= 1, end
    assert end["peak"]["relay_domains"] >= 20, end
    assert len(read_alerts(alerts)) == 2, read_alerts(alerts)
    assert d.log_has(r"incident 1 ended after \d+s: quiet:"), d.text()[-3000:]
    assert d.me()["state"] == "quiet"
    assert d.metrics()["relaywatch_loud"] == 0
    # The throttle outlives the incident (throttle_cooldown 1h).
    assert d.rcpt(culprit, burst_domain("alert", 9999)) == "action=" + CULPRIT_ACTION
    d.stop()
    bad.stop()


def test_monitor_only():
    """monitor_only: the burst is detected and its culprit picked, but every answer is DUNNO;
    what would have been answered is counted."""
    d = Daemon("mx-monitor", "-o", "monitor_only=yes", "-o", "detect_loud_after=2s")
    culprit = "203.0.113.88"
    seconds, answers, i = burst_until(
        [d], culprit, "monitor",
        lambda a: d.log_has(r"monitor_only: would throttle client_address:" + re.escape(culprit)),
        40, rate=5, ordinary=Ordinary())
    for k in range(6):
        answers.append((0, d, d.rcpt(culprit, burst_domain("monitor", i + k))))
        time.sleep(0.1)
    refused = [a for _, _, a in answers if a != DUNNO]
    assert refused == [], refused
    say("would throttle after %.1fs; %d answers, all DUNNO", seconds, len(answers))
    assert "incident 1 started: loud: MX" in d.text()
    assert d.log_has(r"monitor_only: would answer DEFER 4\.7\.1 .* to client_address:" +
                     re.escape(culprit)), d.text()[-3000:]
    me = d.me()
    assert me["state"] == "loud" and me["monitor_only"] is True, me
    assert me["would_answer"]["DEFER"] >= 6, me["would_answer"]
    assert me["relay_answers"]["DEFER"] == 0, me["relay_answers"]
    m = d.metrics()
    assert m['relaywatch_monitor_would_answer_total{action="DEFER"}'] >= 6, m
    assert m.get('relaywatch_relay_answers_total{action="DEFER"}', 0) == 0, m
    d.stop()


def test_static_limit():
    """limit_client_address 30 (recipients per limit_window 1h): the 31st and later relay
    recipients of that client get limit_action (within a tick); others do not."""
    d = Daemon("mx-limit", "-o", "limit_client_address=30")
    heavy = "192.0.2.31"
    partners = ["p1.example", "p2.example", "p3.example"]  # too few domains for the detector
    for k in range(30):
        assert d.rcpt(heavy, "r%d@%s" % (k, partners[k % 3])) == DUNNO, k
    time.sleep(2.5)  # more than two ticks: 30 recipients are not over the limit
    assert d.throttled() == {}, d.throttled()
    assert d.rcpt(heavy, "r30@p1.example") in (DUNNO, "action=" + LIMIT_ACTION)
    later = []
    for k in range(31, 40):
        time.sleep(0.3)
        later.append(d.rcpt(heavy, "r%d@%s" % (k, partners[k % 3])))
    say("answers to recipients 32-40: %s", ", ".join("D" if a == DUNNO else "L" for a in later))
    assert later[-1] == "action=" + LIMIT_ACTION, later
    assert all(a in (DUNNO, "action=" + LIMIT_ACTION) for a in later), later
    assert later.count(DUNNO) <= 4, "more than a second before the limit applied: %s" % later
    for k in range(40):
        if k % 8 == 0:
            assert d.rcpt("192.0.2.32", "x%d@p%d.example" % (k, k % 3)) == DUNNO
    assert d.rcpt(heavy, "staff@" + LOCAL_DOMAIN) == DUNNO, "inbound mail is never touched"
    assert re.search(r"throttle client_address:192\.0\.2\.31 with '%s' until 3600s from now: "
                     r"over limit_client_address: 3\d recipients in 1h > 30"
                     % re.escape(LIMIT_ACTION), d.text()), d.text()[-3000:]
    e = d.throttled()["client_address:" + heavy]
    assert e["source"] == "limit" and e["action"] == LIMIT_ACTION, e
    me = d.me()
    assert me["state"] == "quiet" and me["incidents"]["started"] == 0, me["detector"]
    d.stop()


def parse_record(value):
    """A rw:throttle value: "v1 CHANGED SINCE UNTIL SOURCE ESCALATED HOST\\tACTION\\tREASON"."""
    head, action, reason = value.split("\t")
    v, changed, since, until, source, escalated, host = head.split(" ")
    assert v == "v1", value
    return {"changed": float(changed), "since": float(since), "until": float(until),
            "source": source, "escalated": escalated, "host": host, "action": action,
            "reason": reason}


def cli(store, *args):
    p = subprocess.run([RELAYWATCH, args[0], "-c", empty_config(), "-o", "store=" + store]
                       + list(args[1:]), capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
    return p.stdout


def test_fleet_shares_throttles():
    """Two daemons on one Redis: mx1 throttles the culprit of a burst it sees, mx2 obeys
    within a few seconds; relaywatch release and block reach both."""
    r = store_test.Redis()
    store = "redis+unix://" + r.sock
    common = ["-o", "store_flush_interval=1s"]
    mx1 = Daemon("mx1", *common, "-o", "detect_loud_after=2s", store=store)
    mx2 = Daemon("mx2", *common, store=store)
    culprit = "203.0.113.99"
    refused = "action=" + CULPRIT_ACTION
    seconds, answers, i = burst_until([mx1], culprit, "fleet", first_refusal, 40, rate=5,
                                      ordinary=Ordinary())
    t1 = time.time()
    assert answers[-1][2] == refused, answers[-1]
    say("mx1 refused the culprit %.1fs after the burst started", seconds)

    def mx2_refuses():
        return mx2.rcpt(culprit, "someone@partner-a.example") == refused

    wait_until(mx2_refuses, 3.5, "mx2 to refuse the culprit mx1 throttled", interval=0.2)
    say("mx2 refused it %.2fs after mx1 did", time.time() - t1)
    assert mx2.me()["state"] == "quiet", "mx2 saw no burst"

    def mx2_sees_mx1_loud():
        st = mx2.get_json("/status")
        return any(h["host"] == "mx1" and h["state"] == "loud" for h in st["hosts"])

    # The fleet view: mx1's state as it wrote it (rw:{mx1}:state).
    wait_until(mx2_sees_mx1_loud, 3.5, "mx2's /status to show mx1 loud", interval=0.2)
    assert r.cli("get", "rw:{mx2}:state").strip() == "quiet"
    assert mx2.log_has(r"throttle client_address:%s from the store \(detector by mx1\)"
                       % re.escape(culprit)), mx2.text()[-2000:]
    e = mx2.throttled()["client_address:" + culprit]
    assert e["host"] == "mx1" and e["source"] == "detector", e
    rec = parse_record(r.hgetall("rw:throttle")["client_address:" + culprit])
    assert rec["source"] == "detector" and rec["host"] == "mx1", rec
    assert rec["action"] == CULPRIT_ACTION, rec

    out = cli(store, "release", "client_address:" + culprit)
    t2 = time.time()
    say("relaywatch release: %s", out.strip())

    def both_dunno():
        return all(d.rcpt(culprit, "someone@partner-b.example") == DUNNO for d in (mx1, mx2))

    try:
        wait_until(both_dunno, 3.5, "both daemons to answer the released culprit DUNNO",
                   interval=0.2)
    except AssertionError as e:
        raise AssertionError("%s: mx1 answers %r, mx2 %r; rw:throttle %r\nmx1 log:\n%s\nmx2 "
                             "log:\n%s" % (e, mx1.rcpt(culprit, "someone@partner-b.example"),
                                          mx2.rcpt(culprit, "someone@partner-b.example"),
                                          r.hgetall("rw:throttle"), mx1.text()[-2500:],
                                          mx2.text()[-2500:]))
    say("both answered DUNNO %.2fs after the release", time.time() - t2)
    assert mx1.me()["state"] == "loud", "mx1 still loud: the release, not the quiet, did it"
    for k in range(8):  # the detector leaves the released key alone
        assert mx1.rcpt(culprit, burst_domain("fleet", i + k)) == DUNNO
        time.sleep(0.3)

    out = cli(store, "block", "sasl_username:bob")
    t3 = time.time()
    say("relaywatch block: %s", out.strip())

    def both_block_bob():
        return all(d.rcpt("192.0.2.50", "x@partner-c.example", sasl="bob") ==
                   "action=" + BLOCK_ACTION for d in (mx1, mx2))

    wait_until(both_block_bob, 3.5, "both daemons to refuse bob", interval=0.2)
    say("both refused bob %.2fs after the block", time.time() - t3)
    for d in (mx1, mx2):
        assert d.rcpt("192.0.2.50", "x@" + LOCAL_DOMAIN, sasl="bob") == DUNNO
        assert d.rcpt("192.0.2.50", "x@partner-c.example", sasl="alice") == DUNNO
    stored = r.hgetall("rw:throttle")
    assert set(stored) == {"client_address:" + culprit, "sasl_username:bob"}, stored
    rel = parse_record(stored["client_address:" + culprit])
    assert rel["source"] == "released" and rel["host"] == "cli" and rel["action"] == "DUNNO", rel
    assert rel["changed"] > rec["changed"] and rel["until"] > time.time() + 3000, rel
    blk = parse_record(stored["sasl_username:bob"])
    assert blk["source"] == "manual" and blk["until"] == 0 and blk["action"] == BLOCK_ACTION, blk
    for d in (mx1, mx2):
        assert set(d.throttled()) == {"sasl_username:bob"}, (d.host, d.throttled())
    mx1.stop()
    mx2.stop()
    r.stop()


def baseline_lines(r, host):
    text = r.cli("get", "rw:{%s}:baseline" % host)
    lines = [l for l in text.split("\n") if l.strip()]
    out = {}
    for line in lines:
        if line.startswith("fast "):
            # The fast path's per-key levels share the text (relaywatchd(8), "The fast path").
            assert re.fullmatch(r"fast [0-9.e+-]+ [0-9.e+-]+ [0-9.]+ \w+:\S+", line), line
            continue
        m = re.fullmatch(r"(\w+) (global|h\d\d) (\d+) ([0-9.e+-]+)", line)
        assert m, "baseline line %r" % line
        out[(m.group(1), m.group(2))] = (int(m.group(3)), float(m.group(4)))
    return out


def test_baselines_persist():
    """Baselines learned from a first run's traffic are in rw:{HOST}:baseline and are read
    back by the next run of the same host.  A first run (no history in the store) learns
    nothing until one detect_window has passed (1m here), then once a minute."""
    r = store_test.Redis()
    store = "redis+unix://" + r.sock
    window = ("-o", "detect_window=1m")
    d = Daemon("mx-base", *window, store=store)
    ordinary = Ordinary()
    start = time.time()
    before = {}
    while time.time() - start < 150 and ("nc", "global") not in before:
        ordinary.send(d)
        time.sleep(0.7)
        before = baseline_lines(r, "mx-base")
    took = time.time() - start
    learned = d.me()["detector"]["minutes_learned"]
    say("after %.0fs: %d baseline lines, nc global %s (n, value); /status minutes_learned %d",
        took, len(before), before.get(("nc", "global")), learned)
    assert ("nc", "global") in before and ("relay_domains", "global") in before, before
    # Nothing is learned while the window is filling for the first time.
    assert took >= 60, took
    assert learned >= 1, learned
    # Saved as soon as something was learned.
    assert before[("nc", "global")][0] >= learned - 1, (before, learned)
    d.stop()
    stored = baseline_lines(r, "mx-base")
    assert stored[("nc", "global")][0] >= before[("nc", "global")][0], stored
    say("after SIGTERM Redis holds nc global %s", stored[("nc", "global")])

    # Restart away from a minute boundary, so that the new run learns nothing of its own
    # before it is looked at.
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)
    d = Daemon("mx-base", *window, store=store)
    m = wait_until(lambda: d.log_has(r"baselines: (\d+) learned values read back"), 5,
                   "the baselines read back")
    n = int(m.group(1))
    time.sleep(1.5)  # /status shows the detector as of its last sample (once a second)
    det = d.me()["detector"]
    say("restart: %s; stored before the restart: %d lines, nc global %s; now minutes_learned "
        "%d, baselines %s", m.group(0), len(stored), stored[("nc", "global")],
        det["minutes_learned"], {k: v["baseline"] for k, v in det["signals"].items()})
    assert n == len(stored), ("read back %d values, the previous run stored %d: %s"
                              % (n, len(stored), r.cli("get", "rw:{mx-base}:baseline")))
    # What the previous run learned is what this one goes on from (the global baselines:
    # baseline_hour_days 3 keeps the hourly ones unused).
    now_redis = r.cli("get", "rw:{mx-base}:baseline")
    wrong = ["%s: %s (n=%d stored before the restart, %s in use after it)"
             % (name, value, count, det["signals"][name]["baseline"])
             for (name, slot), (count, value) in sorted(stored.items())
             if slot == "global" and
             abs(det["signals"][name]["baseline"] - value) > 1e-5 * max(1, value)]
    assert not wrong and det["minutes_learned"] == stored[("nc", "global")][0], (
        "the restarted daemon does not go on from the stored baselines: minutes_learned %d "
        "(stored nc n=%d); %s; Redis now holds:\n%s"
        % (det["minutes_learned"], stored[("nc", "global")][0], "; ".join(wrong), now_redis))
    after = baseline_lines(r, "mx-base")
    assert after[("nc", "global")] == stored[("nc", "global")], (after, stored)
    d.stop()
    r.stop()


def test_sighup_changes_culprit_action():
    """A reload with another culprit_action: new throttles take it, the old one keeps its."""
    conf = os.path.join(TMP, "sighup.conf")
    first = "DEFER 4.7.1 first text"
    second = "DEFER 4.7.1 second text"
    with open(conf, "w") as f:
        f.write("detect_loud_after = 2s\nculprit_action = %s\n" % first)
    d = Daemon("mx-reload", conf=conf)
    x, y = "203.0.113.101", "203.0.113.102"
    _, answers, _ = burst_until([d], x, "reload-x", first_refusal, 40, rate=5,
                                ordinary=Ordinary())
    assert answers[-1][2] == "action=" + first, answers[-1]
    with open(conf, "w") as f:
        f.write("detect_loud_after = 2s\nculprit_action = %s\n" % second)
    d.signal(signal.SIGHUP)
    wait_until(lambda: d.log_has(r"reload: configuration .*sighup\.conf applied"), 5,
               "the reload")
    _, answers, _ = burst_until([d], y, "reload-y", first_refusal, 20, rate=5)
    assert answers[-1][2] == "action=" + second, answers[-1]
    assert d.rcpt(x, burst_domain("reload-x", 9999)) == "action=" + first
    listed = d.throttled()
    assert listed["client_address:" + x]["action"] == first, listed
    assert listed["client_address:" + y]["action"] == second, listed
    d.stop()


def test_reconnect_keeps_release():
    """A daemon that writes its throttles again after a reconnect does not undo a release
    made meanwhile with relaywatch release (rw:throttle keeps the newer record)."""
    r = store_test.Redis()
    store = "redis+unix://" + r.sock
    d = Daemon("mx-reconnect", store=store)
    client, key = "10.6.6.6", "client_address:10.6.6.6"
    status, body = d.control("POST", "/throttle?block=" + key)
    assert status == 200, (status, body)
    wait_until(lambda: key in r.hgetall("rw:throttle"), 5, "the block in rw:throttle")
    assert parse_record(r.hgetall("rw:throttle")[key])["source"] == "manual"
    assert d.rcpt(client, "x@partner-a.example") == "action=" + BLOCK_ACTION
    # Stopped, the daemon cannot read the release before its connection is killed: after
    # the reconnect it writes its own (older) block record again.
    d.signal(signal.SIGSTOP)
    try:
        cli(store, "release", key)
        killed = r.cli("client", "kill", "type", "normal").strip()  # SKIPME yes: not itself
    finally:
        d.signal(signal.SIGCONT)
    assert killed == "1", killed
    wait_until(lambda: len(re.findall(r"store: \S+ connected", d.text())) >= 2, 10,
               "the daemon to reconnect")
    time.sleep(3)
    rec = parse_record(r.hgetall("rw:throttle")[key])
    answer = d.rcpt(client, "x@partner-a.example")
    assert rec["source"] == "released" and rec["host"] == "cli", (rec, d.text()[-2000:])
    assert answer == DUNNO, answer
    d.stop()
    r.stop()


def test_list_text_view():
    """relaywatch list (text view, asking a daemon on the memory store) while a key is
    throttled: the daemon's JSON carries a number ("answers") the view does not show."""
    d = Daemon("mx-list")
    status, body = d.control("POST", "/throttle?block=client_address:10.4.4.4")
    assert status == 200, (status, body)
    assert d.rcpt("10.4.4.4", "x@partner-a.example") == "action=" + BLOCK_ACTION
    p = subprocess.run([RELAYWATCH, "list", "-c", empty_config(),
                        "-o", "http_listen=inet:127.0.0.1:%d" % d.http_port],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert "10.4.4.4" in p.stdout and BLOCK_ACTION in p.stdout, p.stdout
    d.stop()


def test_baseline_read_retried():
    """rw:{HOST}:baseline cannot be read (a key of the wrong type): the daemon says so, learns
    from baseline_start after detect_window, and its first save replaces the key."""
    r = store_test.Redis()
    store = "redis+unix://" + r.sock
    r.cli("hset", "rw:{mx-bad}:baseline", "x", "1")
    d = Daemon("mx-bad", "-o", "detect_window=1m", store=store)
    start = time.time()
    ordinary = Ordinary()
    wait_until(lambda: d.log_has(r"rw:\{mx-bad\}:baseline cannot be read"), 5,
               "the unreadable baselines reported")
    learned = 0
    while time.time() - start < 150 and learned < 1:
        ordinary.send(d)
        time.sleep(0.7)
        learned = d.me()["detector"]["minutes_learned"]
    say("minutes_learned %d after %.0fs", learned, time.time() - start)
    assert learned >= 1, d.text()[-2000:]
    wait_until(lambda: r.cli("type", "rw:{mx-bad}:baseline").strip() == "string" and
               ("nc", "global") in baseline_lines(r, "mx-bad"), 5,
               "the learned baselines in rw:{mx-bad}:baseline")
    d.stop()
    r.stop()


TESTS = [test_burst_throttles_culprit, test_alert_command, test_monitor_only,
         test_static_limit, test_fleet_shares_throttles, test_baselines_persist,
         test_sighup_changes_culprit_action, test_reconnect_keeps_release, test_list_text_view,
         test_baseline_read_retried]


def run_side_by_side(tests):
    """Each test in a thread of its own (they mostly wait); PASS/FAIL lines in order."""
    results = {}

    def run(t):
        start = time.time()
        try:
            t()
            results[t] = (True, time.time() - start, "")
        except Exception:
            results[t] = (False, time.time() - start, traceback.format_exc())

    threads = [threading.Thread(target=run, args=(t,), name=t.__name__) for t in tests]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    while STARTED:  # whatever a failed test left running
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    passed = failed = 0
    for t in tests:
        ok, seconds, trace = results[t]
        if ok:
            passed += 1
            print("PASS %s (%.1fs)" % (t.__name__, seconds))
        else:
            failed += 1
            print("FAIL %s (%.1fs)\n%s" % (t.__name__, seconds, trace))
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed or not passed else 0


def main():
    global RELAYWATCHD, RELAYWATCH, TMP
    ap = argparse.ArgumentParser()
    ap.add_argument("--relaywatchd", required=True)
    ap.add_argument("--relaywatch", required=True)
    ap.add_argument("-k", help="run only tests whose name contains this")
    args = ap.parse_args()
    RELAYWATCHD = os.path.abspath(args.relaywatchd)
    RELAYWATCH = os.path.abspath(args.relaywatch)
    missing = [p for p in ("redis-server", "redis-cli", "ss") if shutil.which(p) is None]
    if missing:
        print("needed and missing: %s" % " ".join(missing))
        return 77
    TMP = tempfile.mkdtemp(prefix="defense-test-")
    os.chmod(TMP, 0o1777)  # relaywatchd runs as nobody: its sockets and alerts go here
    store_test.TMP = TMP
    try:
        return run_side_by_side([t for t in TESTS if not args.k or args.k in t.__name__])
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

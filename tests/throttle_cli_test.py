#!/usr/bin/env python3
"""Integration test of relaywatch list / block / release on a real Redis (store = redis...).

Each test starts its own private redis-server (store_test.Redis: no persistence, a unix socket
under a temp dir, a free loopback port when asked), runs the relaywatch CLI against it with no
daemon at all, and checks what it printed and what the hash rw:throttle holds (read back with
redis-cli).  Everything is stopped by PID.

Not covered here: store = memory, where the CLI asks the daemon (GET /throttle over
http_listen, POST over control_socket): abuse_control_test.py and defense_test.py cover it.
Usage: throttle_cli_test.py --relaywatchd PATH --relaywatch PATH [-k NAME]
"""
import contextlib
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time

import store_test
import testlib
from testlib import free_port

RELAYWATCHD = None
RELAYWATCH = None
TMP = None

BLOCK_ACTION = "REJECT 5.7.1 Sending blocked by the mail administrator"  # the default
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
KINDS_MESSAGE = "sasl_username, client_address, sender_domain"


@contextlib.contextmanager
def private_redis(**kw):
    """A private redis-server and the store URL of its unix socket; stopped afterwards."""
    store_test.TMP = TMP  # store_test's Redis makes its directory there
    r = store_test.Redis(**kw)
    try:
        yield r, "redis+unix://" + r.sock
    finally:
        r.stop()


def empty_config():
    path = os.path.join(TMP, "empty.conf")
    open(path, "w").close()
    return path


def rw(store, *args, password=None, extra=()):
    """Run relaywatch CMD with the store; (exit status, stdout, stderr)."""
    # No daemon's HTTP endpoint: whatever another test runs on the default port is not asked
    # for held messages (they are unknown: "held": null).
    argv = [RELAYWATCH, args[0], "-c", empty_config(), "-o", "store=" + store,
            "-o", "http_listen="]
    if password is not None:
        argv += ["-o", "redis_password=" + password]
    argv += list(extra) + list(args[1:])
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert marker not in p.stderr, "sanitizer report:\n" + p.stderr
    return p.returncode, p.stdout, p.stderr


def ok(store, *args, **kw):
    rc, out, err = rw(store, *args, **kw)
    assert rc == 0, (args, rc, out, err)
    return out


def listed(store, **kw):
    return json.loads(ok(store, "list", "--json", **kw))["throttled"]


def unix_time(text):
    assert RFC3339.match(text), text
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def stored(r, field, db=0):
    """rw:throttle's value for field, split: (head words, action, reason)."""
    value = r.hgetall("rw:throttle", db=db)[field]
    head, action, reason = value.split("\t")
    words = head.split(" ")
    assert len(words) == 7 and words[0] == "v1", value
    return words, action, reason


def test_block_until_released():
    with private_redis() as (r, store):
        t0 = time.time()
        out = ok(store, "block", "sasl_username:Alice")
        t1 = time.time()
        assert "sasl_username:Alice" in out and "until released" in out, out
        entries = listed(store)
        assert len(entries) == 1, entries
        e = entries[0]
        assert e["kind"] == "sasl_username" and e["key"] == "Alice", e  # user names keep case
        assert e["action"] == BLOCK_ACTION, e
        assert e["reason"] == "blocked by hand with relaywatch block", e
        assert e["source"] == "manual" and e["host"] == "cli", e
        assert e["until"] is None, e
        assert int(t0) <= unix_time(e["since"]) <= t1, (t0, e, t1)
        assert set(e) == {"kind", "key", "action", "reason", "since", "until", "source", "host"}
        words, action, reason = stored(r, "sasl_username:Alice")
        changed, since, until, source, escalated, host = words[1:]
        assert t0 - 0.01 <= float(since) <= t1 + 0.01 and changed == since, words
        assert until == "0.000" and source == "manual" and escalated == "0" and host == "cli"
        assert action == BLOCK_ACTION and reason == e["reason"], (action, reason)
        # The table view says the same.
        table = ok(store, "list")
        lines = table.splitlines()
        assert lines[0].split()[:3] == ["KIND:KEY", "ACTION", "SOURCE"], table
        assert len(lines) == 2 and lines[1].startswith("sasl_username:Alice "), table
        assert "until released" in lines[1] and "manual" in lines[1], table
        # block_action from the configuration.
        ok(store, "block", "sasl_username:bob", extra=("-o", "block_action=HOLD",))
        assert stored(r, "sasl_username:bob")[1] == "HOLD"


def test_block_with_duration():
    with private_redis() as (r, store):
        out = ok(store, "block", "sender_domain:Example.COM", "2h")
        assert "sender_domain:example.com" in out, out  # sender domains are folded
        ok(store, "block", "client_address:2001:DB8::1", "90")
        entries = {e["key"]: e for e in listed(store)}
        assert set(entries) == {"example.com", "2001:db8::1"}, entries
        d = entries["example.com"]
        assert d["kind"] == "sender_domain" and d["until"] is not None, d
        span = unix_time(d["until"]) - unix_time(d["since"])
        assert 7199 <= span <= 7201, d
        assert d["reason"] == "blocked by hand with relaywatch block for 2h", d
        assert d["until"] in out, (d, out)
        c = entries["2001:db8::1"]
        assert c["kind"] == "client_address" and 89 <= unix_time(c["until"]) - \
            unix_time(c["since"]) <= 91, c
        words = stored(r, "sender_domain:example.com")[0]
        assert abs(float(words[3]) - float(words[2]) - 7200) < 0.01, words
        # Durations the configuration takes: fractions and every suffix.
        ok(store, "block", "sasl_username:carol", "1.5m")
        words = stored(r, "sasl_username:carol")[0]
        assert abs(float(words[3]) - float(words[2]) - 90) < 0.01, words
        for bad in ("0", "2x", "1e3", "h", "366d", "0x10", "1.5.2m"):
            rc, out, err = rw(store, "block", "sasl_username:dave", bad)
            assert rc == 2 and "is not a duration" in err, (bad, rc, out, err)
        rc, out, err = rw(store, "block", "sasl_username:dave", "-5m")
        assert rc == 2 and "unknown option '-5m'" in err, (rc, out, err)
        assert "sasl_username:dave" not in r.hgetall("rw:throttle")


def test_list_reads_daemon_records_sorted():
    """Records written by daemons: shown sorted by since; expired, released and unreadable ones
    left out (the last with a word on stderr)."""
    with private_redis() as (r, store):
        now = time.time()
        recs = {
            "sasl_username:late": "v1 %.3f %.3f 0.000 detector 1 mx1\tDEFER 4.7.1 Try later\t"
                                  "culprit of a loud incident" % (now, now - 100),
            "client_address:192.0.2.9": "v1 %.3f %.3f %.3f limit 0 mx2\tHOLD\tover the limit"
                                        % (now, now - 300, now + 600),
            "sender_domain:gone.example": "v1 %.3f %.3f %.3f limit 0 mx2\tHOLD\tran out"
                                          % (now, now - 900, now - 10),
            "sender_domain:freed.example": "v1 %.3f %.3f %.3f released 0 cli\tDUNNO\tfreed"
                                           % (now, now - 50, now + 3600),
            "sasl_username:broken": "v9 whatever",
        }
        for field, value in recs.items():
            r.cli("hset", "rw:throttle", field, value)
        rc, out, err = rw(store, "list", "--json")
        assert rc == 0, (rc, out, err)
        entries = json.loads(out)["throttled"]
        assert [e["key"] for e in entries] == ["192.0.2.9", "late"], entries
        late = entries[1]
        assert late["source"] == "detector" and late["host"] == "mx1", late
        assert late["action"] == "DEFER 4.7.1 Try later" and late["until"] is None, late
        assert abs(unix_time(late["since"]) - (now - 100)) <= 1, late
        assert entries[0]["source"] == "limit" and entries[0]["host"] == "mx2", entries
        assert "1 record(s)" in err and "could not be read" in err, err
        # An empty list.
        r.cli("del", "rw:throttle")
        # No daemon on this host to ask: the held messages are unknown (null).
        assert json.loads(ok(store, "list", "--json")) == {"throttled": [], "held": None}
        assert ok(store, "list").strip() == "nothing is throttled"


def test_release():
    with private_redis() as (r, store):
        ok(store, "block", "client_address:203.0.113.7")
        assert [e["key"] for e in listed(store)] == ["203.0.113.7"]
        t0 = time.time()
        out = ok(store, "release", "client_address:203.0.113.7")
        assert "released client_address:203.0.113.7" in out and "was throttled" in out, out
        assert "was not" not in out, out
        assert listed(store) == []
        words, action, reason = stored(r, "client_address:203.0.113.7")
        changed, since, until, source, escalated, host = words[1:]
        assert source == "released" and action == "DUNNO" and host == "cli", words
        assert reason == "released by hand with relaywatch release", reason
        assert float(since) >= t0 - 0.01 and changed == since, words
        assert abs(float(until) - float(since) - 3600) < 0.01, words  # release_grace 1h
        # A key that was not throttled: not an error, and said so; release_grace is read.
        out = ok(store, "release", "sasl_username:nobody", extra=("-o", "release_grace=10m"))
        assert "was not throttled" in out, out
        words = stored(r, "sasl_username:nobody")[0]
        assert words[4] == "released" and abs(float(words[3]) - float(words[2]) - 600) < 0.01
        # A released key can be blocked again by hand (the newer record wins).
        ok(store, "block", "client_address:203.0.113.7", "1h")
        assert [e["source"] for e in listed(store)] == ["manual"]


def test_bad_member():
    with private_redis() as (r, store):
        for cmd in (["block"], ["release"]):
            for member in ("recipient:bob@example.org", "sasl_username:", "alice", ":alice",
                           "SASL_USERNAME:alice", "sasl_username:" + "x" * 256):
                rc, out, err = rw(store, *(cmd + [member]))
                assert rc == 2, (cmd, member, rc, out, err)
                assert KINDS_MESSAGE in err and len(err.strip().splitlines()) == 1, err
            rc, out, err = rw(store, *cmd)
            assert rc == 2 and "wants KIND:KEY" in err, (cmd, rc, err)
        rc, out, err = rw(store, "release", "sasl_username:a", "extra")
        assert rc == 2 and "unexpected argument" in err, (rc, err)
        rc, out, err = rw(store, "block", "--json", "sasl_username:a")
        assert rc == 2 and "unknown option" in err, (rc, err)
        assert r.hgetall("rw:throttle") == {}


def test_redis_down():
    port = free_port()  # nothing listens there
    store = "redis://127.0.0.1:%d" % port
    for args in (["list"], ["list", "--json"], ["block", "sasl_username:a"],
                 ["release", "sasl_username:a"]):
        rc, out, err = rw(store, *args)
        assert rc == 1, (args, rc, out, err)
        assert out == "", out
        assert len(err.strip().splitlines()) == 1, err
        assert store in err and "Connection refused" in err, err
    # A Redis that does not answer: store_timeout applies.
    with private_redis() as (r, store):
        ok(store, "block", "sasl_username:a")
        r.proc.send_signal(signal.SIGSTOP)
        start = time.time()
        rc, out, err = rw(store, "block", "sasl_username:b", extra=("-o", "store_timeout=0.5s"))
        assert rc == 1 and "did not answer within 0.5s" in err, (rc, out, err)
        assert time.time() - start < 5, "store_timeout was not applied"
        r.proc.send_signal(signal.SIGCONT)
        assert "sasl_username:b" not in r.hgetall("rw:throttle")
        # A Redis that is gone after it was used.
        r.kill()
        rc, out, err = rw(store, "list")
        assert rc == 1 and r.sock in err and out == "", (rc, out, err)


def test_redis_password():
    with private_redis(requirepass="s3cret-pass", tcp=True) as (r, _):
        store = "redis://127.0.0.1:%d/3" % r.port  # TCP and a database of its own
        ok(store, "block", "sasl_username:mallory", "1d", password="s3cret-pass")
        entries = listed(store, password="s3cret-pass")
        assert [(e["key"], e["source"]) for e in entries] == [("mallory", "manual")], entries
        assert "sasl_username:mallory" in r.hgetall("rw:throttle", db=3)
        assert r.hgetall("rw:throttle", db=0) == {}
        for password in (None, "wrong"):
            rc, out, err = rw(store, "list", password=password)
            assert rc == 1 and out == "", (password, rc, out, err)
            assert "NOAUTH" in err or "WRONGPASS" in err or "invalid password" in err, err
            assert "s3cret" not in err, err
        out = ok(store, "release", "sasl_username:mallory", password="s3cret-pass")
        assert "was throttled" in out, out
        assert listed(store, password="s3cret-pass") == []


TESTS = [
    test_block_until_released,
    test_block_with_duration,
    test_list_reads_daemon_records_sorted,
    test_release,
    test_bad_member,
    test_redis_down,
    test_redis_password,
]

if __name__ == "__main__":
    sys.exit(testlib.main(sys.modules[__name__], TESTS, "rw-throttle-", with_cli=True,
                          requires=("redis-server", "redis-cli", "ss")))

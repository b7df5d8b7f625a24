#!/usr/bin/env python3
"""relaywatchd -p, -a and -n.

-p prints every key with its default, -a every key with the value in effect, -n the
keys the file and -o set, one `name = value` line each (main.cf syntax, `name =` for an
empty value).  host_id's default is this host's name (socket.gethostname(), or
localhost if the name is not a valid host_id).  man_pages_test.py checks the keys and
defaults of relaywatch.conf(5) against -p.
Starts nothing: only -p, -a, -n and -t runs of the binary.
Usage: config_table_test.py --relaywatchd PATH
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile

def run(relaywatchd, *args):
    # No -c: the built-in defaults, unless /etc/relaywatch/relaywatch.conf exists.
    return subprocess.run([relaywatchd] + list(args), capture_output=True, text=True, timeout=10)


def settings(text):
    """`name = value` lines in order, as (name, value) pairs; any other line fails."""
    pairs = []
    for line in text.splitlines():
        m = re.fullmatch(r"([a-z0-9_]+) =(?: (.*))?", line)
        assert m, "not a name = value line: %r" % line
        assert m.group(2) is None or m.group(2) != "", "empty value not as 'name =': %r" % line
        pairs.append((m.group(1), m.group(2) or ""))
    return pairs


def test_print_defaults(relaywatchd, tmp):
    conf = os.path.join(tmp, "empty.conf")
    open(conf, "w").close()
    r = run(relaywatchd, "-p", "-c", conf)
    assert r.returncode == 0 and r.stderr == "", r
    pairs = settings(r.stdout)
    names = [n for n, _ in pairs]
    assert len(names) == len(set(names)) and len(names) > 70, names
    defaults = dict(pairs)
    assert defaults["listen"] == "inet:127.0.0.1:10040", defaults
    assert defaults["redis_password"] == "" and defaults["quarantine"] == "yes", defaults
    host = socket.gethostname()
    want_host = host if re.fullmatch(r"[A-Za-z0-9._-]+", host) else "localhost"
    assert defaults["host_id"] == want_host, (defaults["host_id"], want_host)

    # What -p prints is a valid configuration, and -n of it gives it back.
    full = os.path.join(tmp, "defaults.conf")
    with open(full, "w") as f:
        f.write(r.stdout)
    r2 = run(relaywatchd, "-t", "-c", full)
    assert r2.returncode == 0 and r2.stderr == "", r2
    r3 = run(relaywatchd, "-n", "-c", full)
    assert r3.returncode == 0 and r3.stdout == r.stdout, (r3.stdout, r.stdout)


def test_print_set(relaywatchd, tmp):
    conf = os.path.join(tmp, "set.conf")
    with open(conf, "w") as f:
        f.write("# a comment\nmax_connections = 5\nredis_password = s3cret\n"
                "windows = 1m, 10m\n  1h\nmax_connections = 7\nculprit_action = HOLD held\n")
    r = run(relaywatchd, "-n", "-c", conf, "-o", "host_id=mx-test", "-o", "dns_lookups=")
    assert r.returncode == 0 and r.stderr == "", r
    # Table order, the last value of a key set twice, continuation lines joined, the
    # password never shown.
    assert r.stdout == ("max_connections = 7\n"
                        "redis_password = (set)\n"
                        "host_id = mx-test\n"
                        "windows = 1m, 10m 1h\n"
                        "dns_lookups =\n"
                        "culprit_action = HOLD held\n"), r.stdout
    assert "s3cret" not in r.stdout + r.stderr
    r = run(relaywatchd, "-n", "-c", conf, "-o", "redis_password=")
    assert "redis_password =\n" in r.stdout, r.stdout
    empty = os.path.join(tmp, "empty.conf")
    r = run(relaywatchd, "-n", "-c", empty)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r


def test_broken_configuration(relaywatchd, tmp):
    bad = os.path.join(tmp, "bad.conf")
    with open(bad, "w") as f:
        f.write("max_connections = 5\nlisen = x\n")
    for flag in ("-p", "-n", "-a"):
        r = run(relaywatchd, flag, "-c", bad)
        assert r.returncode == 1 and r.stdout == "", (flag, r)
        assert "%s:2: unknown configuration key 'lisen'" % bad in r.stderr, (flag, r.stderr)
        r = run(relaywatchd, flag, "-o", "idle_timeout=soon")
        assert r.returncode == 1 and "-o: idle_timeout" in r.stderr, (flag, r)
        r = run(relaywatchd, flag, "-c", os.path.join(tmp, "missing.conf"))
        assert r.returncode == 1 and "cannot read" in r.stderr, (flag, r)
    r = run(relaywatchd, "-p", "-n")
    assert r.returncode == 2 and "usage" in r.stderr, r
    r = run(relaywatchd, "-a", "-n")
    assert r.returncode == 2 and "usage" in r.stderr, r


def test_print_effective(relaywatchd, tmp):
    """-a: every key, in -p's order, with the file's or -o's value where set, else -p's."""
    empty = os.path.join(tmp, "empty.conf")
    open(empty, "w").close()
    defaults = settings(run(relaywatchd, "-p", "-c", empty).stdout)
    r = run(relaywatchd, "-a", "-c", empty)
    assert r.returncode == 0 and r.stderr == "", r
    assert settings(r.stdout) == defaults, r.stdout
    conf = os.path.join(tmp, "effective.conf")
    with open(conf, "w") as f:
        f.write("max_connections = 5\nredis_password = s3cret\nwindows = 1m, 10m\n  1h\n"
                "max_connections = 7\n")
    r = run(relaywatchd, "-a", "-c", conf, "-o", "host_id=mx-test", "-o", "dns_lookups=")
    assert r.returncode == 0 and r.stderr == "", r
    want = dict(defaults)
    want.update({"max_connections": "7", "redis_password": "(set)", "windows": "1m, 10m 1h",
                 "host_id": "mx-test", "dns_lookups": ""})
    got = settings(r.stdout)
    assert [n for n, _ in got] == [n for n, _ in defaults], r.stdout
    assert dict(got) == want, set(dict(got).items()) ^ set(want.items())
    assert "s3cret" not in r.stdout + r.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--relaywatchd", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for test in (lambda: test_print_defaults(a.relaywatchd, tmp),
                     lambda: test_print_set(a.relaywatchd, tmp),
                     lambda: test_broken_configuration(a.relaywatchd, tmp),
                     lambda: test_print_effective(a.relaywatchd, tmp)):
            test()
    print("config_table_test: ok")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The man pages in man/: clean for groff and mandoc, and in step with the programs.

- groff -ww -z -man and mandoc -Tlint print nothing for any page (mandoc's STYLE
  messages included);
- relaywatch.conf.5 has one key entry per key relaywatchd -p prints, with -p's default,
  and none for a key -p does not print.  An entry is a .TP line, then
      \\fBkey\\fR (default: \\fBvalue\\fR)
  or (default: empty) for an empty value, or (default: the host name) for host_id; a
  line ending in a backslash continues on the next;
- relaywatch.1 has a `.SS NAME` section for every command `relaywatch --help` lists, and
  names every option the help text names;
- relaywatchd.8 names every flag of relaywatchd's usage line;
- relaywatchd.8's Metrics entries (.TP tags in `.SS Metrics`) name exactly the metrics
  live daemons export (the `# TYPE` names of /metrics): one as started with
  dns_lookups empty, one with a store on a private redis-server, tdns_client and its own
  lookups pointed at a loopback port where nothing listens (no policy request is sent,
  so it sends no query); and no other relaywatch_* name appears anywhere in the page.
Usage: man_pages_test.py --relaywatchd PATH --relaywatch PATH --man-dir DIR [-k NAME]
"""
import os
import re
import socket
import subprocess
import sys

import store_test
import testlib
from testlib import DaemonProcess, free_port, listening_tcp, wait_for

RELAYWATCHD = None
RELAYWATCH = None
TMP = None
MAN_DIR = None
PAGES = ("relaywatchd.8", "relaywatch.1", "relaywatch.conf.5")


def page(name):
    with open(os.path.join(MAN_DIR, name), encoding="utf-8") as f:
        return f.read()


def joined_lines(text):
    """The page's input lines, a line ending in a single backslash joined to the next."""
    return re.sub(r"(?<!\\)\\\n", "", text).split("\n")


def plain(roff):
    """roff text as read: font escapes dropped, \\- as -, \\e as a backslash."""
    text = re.sub(r"\\f[BIRP]", "", roff)
    return text.replace("\\-", "-").replace("\\e", "\\").replace("\\&", "")


def test_lint():
    for name in PAGES:
        path = os.path.join(MAN_DIR, name)
        for argv in (["groff", "-ww", "-z", "-man", path], ["mandoc", "-Tlint", path]):
            r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            assert r.stdout == "" and r.stderr == "" and r.returncode == 0, (argv, r)


ENTRY = re.compile(r"\\fB([a-z0-9_]+)\\fR \(default: (?:\\fB(.*)\\fR|(empty)|(the host name))\)$")


def test_config_keys():
    r = subprocess.run([RELAYWATCHD, "-p", "-c", os.devnull], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0 and r.stderr == "", r
    defaults = {}
    for line in r.stdout.splitlines():
        name, _, value = line.partition(" =")
        defaults[name] = value[1:] if value.startswith(" ") else value
    assert len(defaults) > 70, defaults

    lines = joined_lines(page("relaywatch.conf.5"))
    documented = {}
    problems = []
    for i, line in enumerate(lines[:-1]):
        if line != ".TP" or not lines[i + 1].startswith("\\fB"):
            continue
        m = ENTRY.match(lines[i + 1])
        if not m:
            problems.append("not a key entry after .TP: %r" % lines[i + 1])
            continue
        name = m.group(1)
        if name in documented:
            problems.append("%s has two entries" % name)
        if m.group(4):
            documented[name] = None  # the host name
        elif m.group(3):
            documented[name] = ""
        else:
            documented[name] = plain(m.group(2))
    for name, value in defaults.items():
        if name not in documented:
            problems.append("relaywatch.conf.5 has no entry for %s" % name)
        elif documented[name] is None:
            if name != "host_id":
                problems.append("%s: only host_id's default is the host name" % name)
        elif documented[name] != value:
            problems.append("relaywatch.conf.5: %s default %r, relaywatchd -p says %r"
                            % (name, documented[name], value))
    for name in documented:
        if name not in defaults:
            problems.append("relaywatch.conf.5 has an entry for %s, which -p does not print"
                            % name)
    assert not problems, "\n".join(problems)


def help_text():
    r = subprocess.run([RELAYWATCH, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r
    return r.stdout + r.stderr


def test_cli_commands():
    text = help_text()
    commands_part = text.split("\ncommands:\n", 1)[1].split("\noptions:\n", 1)[0]
    commands = re.findall(r"^  ([a-z]+)  ", commands_part, flags=re.M)
    assert set(commands) >= {"status", "feed", "list", "block", "release", "analyze"}, commands
    options = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", text))
    assert {"-c", "-o", "--json", "--svg", "--help"} <= options, options
    roff = page("relaywatch.1")
    sections = set(re.findall(r"^\.SS (\S+)$", roff, flags=re.M))
    read = plain(roff)
    problems = ["relaywatch.1 has no .SS section for %s" % c for c in commands
                if c not in sections]
    problems += ["relaywatch.1 does not name %s" % o for o in sorted(options)
                 if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(o), read)]
    assert not problems, "\n".join(problems)


def test_daemon_flags():
    r = subprocess.run([RELAYWATCHD, "-x"], capture_output=True, text=True, timeout=10)
    usage = [l for l in r.stderr.splitlines() if l.startswith("usage:")]
    assert r.returncode == 2 and usage, r
    flags = set(re.findall(r"(?<![\w-])(-[a-z])\b", usage[0]))
    assert {"-c", "-e", "-t", "-p", "-n", "-o"} <= flags, usage
    read = plain(page("relaywatchd.8"))
    missing = [f for f in sorted(flags)
               if not re.search(r"^\.(?:B|BI) %s\b" % re.escape(f), read, re.M)]
    assert not missing, "relaywatchd.8 has no OPTIONS entry for %s" % missing


def exported_metrics(*args):
    """The `# TYPE` names of /metrics of a relaywatchd started with args."""
    port, http_port = free_port(), free_port()
    argv = [RELAYWATCHD, "-e", "-o", "listen=inet:127.0.0.1:%d" % port,
            "-o", "http_listen=inet:127.0.0.1:%d" % http_port, "-o", "control_socket=",
            "-o", "host_id=man-test"] + list(args)
    with DaemonProcess(argv, TMP, "man") as d:
        wait_for(lambda: d.proc.poll() is not None or listening_tcp(http_port),
                 what="relaywatchd to listen")
        assert d.proc.poll() is None, d.text()
        with socket.create_connection(("127.0.0.1", http_port), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            data = testlib.recv_all(s)
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    return set(re.findall(r"^# TYPE (\S+) ", data.decode(), flags=re.M))


def test_metrics():
    exported = exported_metrics("-o", "dns_lookups=")
    store_test.TMP = TMP
    redis = store_test.Redis()
    try:
        # Lookups on, to a loopback port where nothing answers: the resolver's gauges
        # exist, and without a policy request not one query is sent.
        exported |= exported_metrics("-o", "store=redis+unix://" + redis.sock,
                                     "-o", "tdns_client=192.0.2.25",
                                     "-o", "dns_lookups=client_ptr",
                                     "-o", "resolver=127.0.0.1:%d" % free_port())
    finally:
        redis.stop()
    assert len(exported) > 45, exported
    roff = page("relaywatchd.8")
    section = roff.split("\n.SS Metrics\n", 1)[1]
    section = re.split(r"^\.S[HS] ", section, flags=re.M)[0]
    lines = joined_lines(section)
    documented = set()
    for i, line in enumerate(lines[:-1]):
        if line == ".TP":
            documented |= set(re.findall(r"\\fB(relaywatch_[a-z0-9_]+)\\fR", lines[i + 1]))
    anywhere = set(re.findall(r"relaywatch_[a-z0-9_]+", roff))
    problems = ["relaywatchd.8 has no Metrics entry for %s" % m
                for m in sorted(exported - documented)]
    problems += ["relaywatchd.8 documents %s, which /metrics does not export" % m
                 for m in sorted(documented - exported)]
    problems += ["relaywatchd.8 names %s, which /metrics does not export" % m
                 for m in sorted(anywhere - exported)]
    assert not problems, "\n".join(problems)


TESTS = [test_lint, test_config_keys, test_cli_commands, test_daemon_flags, test_metrics]


if __name__ == "__main__":
    # --man-dir is this test's own; the rest is the process tests' command line.
    if "--man-dir" not in sys.argv:
        sys.exit("usage: man_pages_test.py --relaywatchd PATH --relaywatch PATH --man-dir DIR")
    i = sys.argv.index("--man-dir")
    MAN_DIR = os.path.abspath(sys.argv[i + 1])
    del sys.argv[i:i + 2]
    sys.exit(testlib.main(sys.modules[__name__], TESTS, "rw-man-", with_cli=True,
                          requires=("groff", "mandoc", "redis-server", "redis-cli", "ss")))

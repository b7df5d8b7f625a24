#!/usr/bin/env python3
"""Abuse probe: an unprivileged local user tries every write on every listener.

relaywatchd runs as root's `daemon` user (not nobody, so that nobody is an ordinary local
user here) with a policy listener on TCP and on a unix socket (unix_socket_mode 0666), the
read-only http_listen on TCP and the control socket under a temp dir.  Root blocks a key
through the control socket first; then nobody, in a forked child (setgroups, setgid,
setuid), tries POST /throttle?block= and ?release= on http_listen, on the control socket
(refused by the file's mode; then, with the file opened up to everyone, by the peer
credentials) and, as HTTP, on both policy listeners.  GET /throttle must show exactly root's
block afterwards, and the log name nobody's uid.  Then a member of control_group (a group
made with groupadd for the test, as supplementary group and as primary group) may change,
and `relaywatch block` run as nobody fails with a message that says why.  Loopback and unix
sockets only; about 5 s.

Usage: abuse_control_test.py --relaywatchd PATH --relaywatch PATH [-k NAME]
"""
import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import urllib.parse

import testlib
from testlib import DaemonProcess, free_port, listening_tcp, listening_unix, unix_http, wait_for

RELAYWATCHD = None
RELAYWATCH = None
TMP = None

NOBODY = 65534
VICTIM = "sasl_username:victim"  # blocked by root: nobody tries to release it
EVE = "sasl_username:eve"        # nobody tries to block it


class Daemon(DaemonProcess):
    def __init__(self, name, *opts):
        self.port = free_port()
        self.http_port = free_port()
        self.policy_path = os.path.join(TMP, name + "-policy.sock")
        self.control_path = os.path.join(TMP, name + "-control.sock")
        self.conf = os.path.join(TMP, name + ".conf")
        with open(self.conf, "w") as f:
            f.write("# empty\n")
        os.chmod(self.conf, 0o644)
        argv = [RELAYWATCHD, "-e", "-c", self.conf, "-o", "dns_lookups=", "-o", "quarantine=no",
                "-o", "user=daemon",
                "-o", "listen=inet:127.0.0.1:%d, unix:%s" % (self.port, self.policy_path),
                "-o", "unix_socket_mode=0666",
                "-o", "http_listen=inet:127.0.0.1:%d" % self.http_port,
                "-o", "control_socket=unix:" + self.control_path] + list(opts)
        super().__init__(argv, TMP, name)
        wait_for(lambda: self.proc.poll() is not None or (
            listening_tcp(self.port) and listening_tcp(self.http_port) and
            listening_unix(self.policy_path) and listening_unix(self.control_path)),
            what="relaywatchd to listen")
        assert self.proc.poll() is None, "relaywatchd exited early:\n" + self.text()

    def throttled(self):
        """The throttled members, as GET /throttle on http_listen shows them (as root)."""
        status, body = tcp_http(self.http_port, "GET", "/throttle")
        assert status == 200, (status, body)
        return sorted("%s:%s" % (e["kind"], e["key"]) for e in json.loads(body)["throttled"])


def tcp_http(port, method, target):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        return http_over(s, method, target)


def http_over(s, method, target):
    """One request on the connected socket s: (status, body), or (None, what came back) when
    the answer is not HTTP."""
    s.sendall(("%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
               "Content-Length: 0\r\n\r\n" % (method, target)).encode())
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    if not data.startswith(b"HTTP/1."):
        return None, data.decode(errors="replace")
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body.decode()


def as_user(uid, gid, groups, fn):
    """fn() run in a child with these credentials; its JSON-able result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            result = {"ok": fn()}
        except BaseException as e:  # everything goes back to the parent
            result = {"error": repr(e)}
        os.write(w, json.dumps(result).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    result = json.loads(data)
    assert "ok" in result, result
    return result["ok"]


def post(member, what):
    return "/throttle?%s=%s" % (what, urllib.parse.quote(member))


def every_write(d):
    """Every write on every listener, from whoever runs it: {attempt: outcome}."""
    out = {}
    for what, member in (("block", EVE), ("release", VICTIM)):
        target = post(member, what)
        out["http_listen " + what] = tcp_http(d.http_port, "POST", target)[0]
        try:
            out["control " + what] = unix_http(d.control_path, "POST", target)[0]
        except PermissionError:
            out["control " + what] = "EACCES"
        with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:
            out["policy tcp " + what] = http_over(s, "POST", target)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(d.policy_path)
            out["policy unix " + what] = http_over(s, "POST", target)
    return out


def test_unprivileged_changes_nothing():
    """nobody tries every write on every listener: nothing changes, each try refused."""
    with Daemon("ctl") as d:
        status, body = unix_http(d.control_path, "POST", post(VICTIM, "block"))
        assert status == 200, (status, body)  # root: admitted
        assert d.throttled() == [VICTIM]
        st = os.stat(d.control_path)
        assert st.st_mode & 0o777 == 0o660 and st.st_gid == 0, oct(st.st_mode)

        tries = as_user(NOBODY, NOBODY, [], lambda: every_write(d))
        for what in ("block", "release"):
            assert tries["http_listen " + what] == 403, tries
            assert tries["control " + what] == "EACCES", tries  # the file's mode
            for listener in ("policy tcp ", "policy unix "):
                status, text = tries[listener + what]
                assert status is None and "action=" not in text, tries
        assert d.throttled() == [VICTIM], d.throttled()

        # The file opened to everyone: the peer credentials still refuse.
        os.chmod(d.control_path, 0o666)
        tries = as_user(NOBODY, NOBODY, [], lambda: every_write(d))
        os.chmod(d.control_path, 0o660)
        for what in ("block", "release"):
            assert tries["control " + what] == 403, tries
        assert d.throttled() == [VICTIM], d.throttled()
        wait_for(lambda: "uid %d is not root" % NOBODY in d.text(), 5, "the refusal logged")

        # Reading stays open to everyone on http_listen.
        got = as_user(NOBODY, NOBODY, [], lambda: tcp_http(d.http_port, "GET", "/throttle"))
        assert got[0] == 200 and "victim" in got[1], got


@contextlib.contextmanager
def temporary_group():
    """A group made with groupadd for the test (removed after): (name, gid)."""
    name = "rwctl%d" % os.getpid()
    subprocess.run(["groupadd", name], check=True, timeout=30)
    try:
        import grp
        yield name, grp.getgrnam(name).gr_gid
    finally:
        subprocess.run(["groupdel", name], timeout=30)


def test_control_group_member():
    """A member of control_group changes state, by a supplementary or its primary group; a
    user outside it cannot."""
    with temporary_group() as (group, gid), Daemon("grp", "-o", "control_group=" + group) as d:
        assert os.stat(d.control_path).st_gid == gid
        member = as_user(NOBODY, NOBODY, [gid],
                         lambda: unix_http(d.control_path, "POST", post(EVE, "block")))
        assert member[0] == 200, member
        assert d.throttled() == [EVE]
        primary = as_user(NOBODY, gid, [],
                          lambda: unix_http(d.control_path, "POST", post(EVE, "release")))
        assert primary[0] == 200, primary
        assert d.throttled() == []
        os.chmod(d.control_path, 0o666)
        other = as_user(NOBODY, NOBODY, [],
                        lambda: unix_http(d.control_path, "POST", post(EVE, "block")))
        assert other[0] == 403, other
        assert d.throttled() == []


def cli(d, user, *args):
    def creds():
        if user:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
    return subprocess.run([RELAYWATCH, args[0], "-c", d.conf,
                           "-o", "http_listen=inet:127.0.0.1:%d" % d.http_port,
                           "-o", "control_socket=unix:" + d.control_path] + list(args[1:]),
                          capture_output=True, text=True, timeout=30, preexec_fn=creds)


def test_cli_block_as_nobody():
    """relaywatch block with store = memory: root's goes through the control socket,
    nobody's fails and says why (the socket's mode; the daemon's refusal past it)."""
    with Daemon("cli") as d:
        p = cli(d, "nobody", "block", EVE)
        assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
        assert "Permission denied (changes need root, relaywatchd's user or control_group)" \
            in p.stderr, p.stderr
        os.chmod(d.control_path, 0o666)
        p = cli(d, "nobody", "release", VICTIM)
        assert p.returncode == 1 and "refused: changes need privilege" in p.stderr, p.stderr
        assert d.throttled() == []
        p = cli(d, None, "block", EVE)
        assert p.returncode == 0 and "blocked " + EVE in p.stdout, (p.stdout, p.stderr)
        p = cli(d, "nobody", "list")  # reading needs no privilege
        assert p.returncode == 0 and "eve" in p.stdout, (p.stdout, p.stderr)
        assert d.throttled() == [EVE]


TESTS = [test_unprivileged_changes_nothing, test_control_group_member, test_cli_block_as_nobody]

if __name__ == "__main__":
    if os.geteuid() != 0 or shutil.which("groupadd") is None:
        print("needs root and groupadd (it changes credentials and makes a group)")
        sys.exit(77)
    try:
        pwd.getpwnam("daemon")
    except KeyError:
        print("needs the user daemon to run relaywatchd as")
        sys.exit(77)
    sys.exit(testlib.main(sys.modules[__name__], TESTS, "rw-control-", with_cli=True))

"""Helpers shared by the Python tests that run relaywatchd as a process."""
import argparse
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import traceback

import ports

# A request as Postfix 3.7 sends it at RCPT time.
RCPT = (
    "request=smtpd_access_policy\n"
    "protocol_state=RCPT\n"
    "protocol_name=ESMTP\n"
    "client_address=203.0.113.7\n"
    "client_name=mail.example.net\n"
    "reverse_client_name=mail.example.net\n"
    "client_port=40001\n"
    "server_address=127.0.0.1\n"
    "server_port=25\n"
    "helo_name=mail.example.net\n"
    "sender=alice@example.net\n"
    "recipient=bob@example.org\n"
    "recipient_count=0\n"
    "queue_id=\n"
    "instance=1a2b.6361e6c2.8b1f0.0\n"
    "size=0\n"
    "sasl_method=\n"
    "sasl_username=\n"
    "policy_context=\n"
    "compatibility_level=3.6\n"
    "mail_version=3.7.11\n"
    "\n"
).encode()

DUNNO = b"action=DUNNO\n\n"


def policy_request(state, **attrs):
    """A request with the attributes Postfix 3.7 sends."""
    base = [
        ("request", "smtpd_access_policy"), ("protocol_state", state),
        ("protocol_name", "ESMTP"), ("client_address", ""), ("client_name", "unknown"),
        ("reverse_client_name", "unknown"), ("client_port", ""), ("server_address", "127.0.0.1"),
        ("server_port", "25"), ("helo_name", ""), ("sender", ""), ("recipient", ""),
        ("recipient_count", "0"), ("queue_id", ""), ("instance", ""), ("size", "0"),
        ("etrn_domain", ""), ("stress", ""), ("sasl_method", ""), ("sasl_username", ""),
        ("sasl_sender", ""), ("ccert_subject", ""), ("ccert_issuer", ""),
        ("ccert_fingerprint", ""), ("ccert_pubkey_fingerprint", ""), ("encryption_protocol", ""),
        ("encryption_cipher", ""), ("encryption_keysize", "0"), ("policy_context", ""),
        ("compatibility_level", "3.6"), ("mail_version", "3.7.11"),
    ]
    out = []
    for k, v in base:
        out.append("%s=%s" % (k, attrs.pop(k, v)))
    for k, v in attrs.items():
        out.append("%s=%s" % (k, v))
    return ("\n".join(out) + "\n\n").encode()

STARTED = []  # every daemon a test started, so that none outlives a failed test


def free_port():
    """A loopback TCP port no other test holds (ports.py says why not the kernel's choice)."""
    return ports.reserve_port()


def listening_tcp(port):
    out = subprocess.run(["ss", "-ltnH", "sport = :%d" % port], capture_output=True, text=True).stdout
    return out.strip() != ""


def listening_unix(path):
    out = subprocess.run(["ss", "-lxH"], capture_output=True, text=True).stdout
    return any(path in line for line in out.splitlines())


def wait_for(cond, timeout=10.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def recv_answer(sock, timeout=5):
    """Read one policy answer (up to the empty line); b'' if the server closed."""
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(b"\n\n"):
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    return data


def recv_all(sock):
    """Everything sock sends until it closes."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def ask(sock):
    """One request, its answer and how long it took."""
    t0 = time.monotonic()
    sock.sendall(RCPT)
    data = b""
    while not data.endswith(b"\n\n"):
        chunk = sock.recv(4096)
        assert chunk, "connection closed without an answer"
        data += chunk
    return data, time.monotonic() - t0


def cpu_seconds(pid):
    """CPU time (user + system) process pid has used, in seconds, from /proc (10 ms ticks)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_nofile(n):
    """Room for n descriptors in this process (up to the hard limit); the room there is."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def closed_by_peer(sock):
    """Whether the other end has closed sock (EOF or reset waiting), without waiting."""
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except ConnectionResetError:
        return True
    except BlockingIOError:
        return False


class GoodClient:
    """A policy client as Postfix's is: one connection kept across requests; a connection the
    daemon closed between requests is noticed before writing (it is readable) and replaced, as
    Postfix's attr_clnt does, and counted in reconnects.  Every answer must be DUNNO; latencies
    holds how long each took, reconnecting included."""

    def __init__(self, port, host="127.0.0.1"):
        self.addr = (host, port)
        self.sock = None
        self.reconnects = 0
        self.latencies = []

    def ask(self):
        t0 = time.monotonic()
        if self.sock is not None and closed_by_peer(self.sock):
            self.close()
            self.reconnects += 1
        if self.sock is None:
            self.sock = socket.create_connection(self.addr, timeout=5)
        answer = ask(self.sock)[0]
        assert answer == DUNNO, answer
        self.latencies.append(time.monotonic() - t0)

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def metrics(http_port):
    """GET /metrics on a TCP http_listen: {name with its labels: value}."""
    with socket.create_connection(("127.0.0.1", http_port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data = recv_all(s)
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    out = {}
    for line in data.partition(b"\r\n\r\n")[2].decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


# AddressSanitizer keeps freed memory in quarantine (256 MiB by default): under it a daemon's
# resident memory says nothing about what it keeps.
SANITIZED = os.environ.get("RELAYWATCH_SANITIZED") == "1"


def assert_grew_less(before, after, kib, what):
    """Resident memory grew by less than kib KiB from before to after (not checked under the
    sanitizers)."""
    if SANITIZED:
        print("sanitizer build: %s not checked (%d -> %d KiB)" % (what, before, after))
        return
    assert after - before < kib, "%s: %d -> %d KiB, not within %d KiB" % (what, before, after, kib)


def rss_kib(pid):
    """The resident memory of process pid (VmRSS), in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def unix_http(path, method, target, timeout=5):
    """One HTTP request over the unix socket at path (the control socket): (status, body
    text)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(("%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                   "Content-Length: 0\r\n\r\n" % (method, target)).encode())
        data = recv_all(s)
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body.decode()


class DaemonProcess:
    """One relaywatchd process with stderr captured to a file under tmp."""

    def __init__(self, argv, tmp, name, preexec_fn=None):
        self.log_path = os.path.join(tmp, "%s-%d.log" % (name, time.monotonic_ns()))
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.log,
                                     preexec_fn=preexec_fn)
        STARTED.append(self.proc)

    def text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def signal(self, sig):
        self.proc.send_signal(sig)

    # "with": stop() at the end, as a try/finally would.
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self, timeout=15):
        """SIGTERM, then insist on exit 0 and no sanitizer report in the log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("relaywatchd did not stop on SIGTERM")
        self.log.close()
        text = self.text()
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            assert marker not in text, "sanitizer report:\n" + text
        assert rc == 0, "relaywatchd exited %d on SIGTERM:\n%s" % (rc, text)
        return rc


def run_tests(tests, only):
    """Run each test function (those whose name contains `only`, if given), killing any daemon
    a test left running; print PASS/FAIL lines and 'N passed, M failed'; return the exit code."""
    passed = failed = 0
    for t in tests:
        if only and only not in t.__name__:
            continue
        start = time.time()
        try:
            t()
            passed += 1
            print("PASS %s (%.1fs)" % (t.__name__, time.time() - start), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s" % t.__name__, flush=True)
            traceback.print_exc()
        finally:
            while STARTED:
                proc = STARTED.pop()
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


def main(module, tests, prefix, with_cli=False, requires=()):
    """The command line every process test takes: --relaywatchd PATH [--relaywatch PATH]
    [-k NAME].  Sets module.RELAYWATCHD, module.RELAYWATCH and module.TMP (a temp dir,
    removed afterwards), then runs the tests.  Exit 77 when a program in `requires` is
    missing."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--relaywatchd", required=True)
    if with_cli:
        ap.add_argument("--relaywatch", required=True)
    ap.add_argument("-k", help="run only tests whose name contains this")
    args = ap.parse_args()
    module.RELAYWATCHD = os.path.abspath(args.relaywatchd)
    if with_cli:
        module.RELAYWATCH = os.path.abspath(args.relaywatch)
    missing = [p for p in requires if shutil.which(p) is None]
    if missing:
        print("needed and missing: %s" % " ".join(missing))
        return 77
    module.TMP = tempfile.mkdtemp(prefix=prefix)
    # relaywatchd started as root runs as nobody (its unix sockets go here), and users such as
    # postfix traverse it.
    os.chmod(module.TMP, 0o1777)
    try:
        return run_tests(tests, args.k)
    finally:
        shutil.rmtree(module.TMP, ignore_errors=True)

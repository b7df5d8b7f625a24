"""Shared harness for the end-to-end tests in tests/e2e/ (standard library only).

A throw-away, private Postfix instance below /tmp (own config, queue and data
directories, maillog_file in the temp dir, smtpd on a free port of 127.0.0.1,
smtpd and smtp chrooted as in Debian's master.cf), smtp-sink as the only next
hop, helpers to start and stop processes by PID, and the parser for
relaywatchd's request log (log_requests = yes).

Used by every test in this folder (postfix_e2e.py, counting_e2e.py, relay_e2e.py and
the tests built on it).

DNS: the instances need none, and make sure nothing asks a real resolver.
  - smtpd_peername_lookup = no: smtpd does no PTR/A lookups of clients.
  - Mail for the test domains goes through transport_maps to the numeric
    next hop [127.0.0.25]:PORT (brackets: no MX lookup; a numeric address
    needs no A lookup), so smtp(8) never calls the resolver.
  - smtp_dns_support_level = disabled as a safety net: should smtp(8) ever
    look a name up, it uses the chroot's nsswitch.conf ("hosts: files") and
    hosts file, never DNS.  The chroot's resolv.conf names an unused
    loopback address, so a stray query fails fast instead of leaving the
    machine.
"""

import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import ports  # noqa: E402  (tests/ports.py, after the path set-up)

SKIP = 77

SINK_ADDR = "127.0.0.25"    # not inet_interfaces, or Postfix reports a mail loop
SMTPD_ADDR = "127.0.0.1"
DAEMON_ADDR = "127.0.0.1"

# smtp(8)'s line for a delivered recipient: the queue ID and the recipient.
SENT_RE = re.compile(r"postfix/smtp\[\d+\]: ([0-9A-Za-z]+): to=<([^>]*)>.*\bstatus=sent\b")


# ---------------------------------------------------------------------------
# Time budget: every wait is capped so that a run never exceeds it.

_budget = {"start": time.monotonic(), "total": 60.0}


def set_budget(seconds):
    """Start a new budget of 'seconds' from now."""
    _budget["start"] = time.monotonic()
    _budget["total"] = float(seconds)


def remaining():
    return _budget["total"] - (time.monotonic() - _budget["start"])


def budget(limit):
    """A timeout of at most 'limit' seconds that never exceeds the budget."""
    return max(0.5, min(limit, remaining()))


class SetupError(Exception):
    """The harness could not be built; the message says what went wrong."""


class Interrupted(Exception):
    pass


def on_signal(signum, frame):
    raise Interrupted("signal %d" % signum)


# ---------------------------------------------------------------------------
# Small helpers

def run(cmd, timeout=20, check=True, **kw):
    """Run a command, return CompletedProcess; SetupError on failure."""
    try:
        cp = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, timeout=budget(timeout), **kw)
    except subprocess.TimeoutExpired:
        raise SetupError("timed out: %s" % " ".join(cmd))
    except OSError as e:
        raise SetupError("cannot run %s: %s" % (cmd[0], e))
    if check and cp.returncode != 0:
        raise SetupError("%s exited %d:\n%s" % (" ".join(cmd), cp.returncode,
                                                cp.stdout.strip()))
    return cp


def free_port(addr):
    """A TCP port free on addr and held for this test process alone (tests/ports.py)."""
    return ports.reserve_port(addr)


def listening(addr, port):
    """True if the socket table shows a TCP listener on addr:port.

    Uses ss instead of a probe connection: a probe would show up as an
    extra "connect from" line (smtpd) or an extra client (daemon)."""
    cp = subprocess.run(["ss", "-Hltn", "src", "%s:%d" % (addr, port)],
                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                        universal_newlines=True, timeout=5)
    want = "%s:%d" % (addr, port)
    for line in cp.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[3] == want:
            return True
    return False


def wait_listening(addr, port, what, timeout, proc=None, log=None):
    deadline = time.monotonic() + budget(timeout)
    while time.monotonic() < deadline:
        if listening(addr, port):
            return
        if proc is not None and proc.poll() is not None:
            raise SetupError("%s exited with status %s before listening on %s:%d%s"
                             % (what, proc.returncode, addr, port, tail_text(log)))
        time.sleep(0.05)
    raise SetupError("%s does not listen on %s:%d after %.0f s%s"
                     % (what, addr, port, timeout, tail_text(log)))


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def tail_text(path, n=40):
    if not path:
        return ""
    lines = read_text(path).splitlines()
    return "\n--- last %d lines of %s ---\n%s" % (min(n, len(lines)), path,
                                                 "\n".join(lines[-n:]))


def stop_pid(proc, name, timeout=5.0):
    """SIGTERM one process we started (by PID), SIGKILL if it lingers.
    Returns its exit status, or None if it had to be killed."""
    if proc is None:
        return None
    if proc.poll() is not None:
        return proc.returncode
    try:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        print("# %s (pid %d) ignored SIGTERM for %.0f s, killing it"
              % (name, proc.pid, timeout))
        proc.kill()
        proc.wait(timeout=5)
        return None


def start_logged(cmd, log_path):
    """Popen cmd with stdout and stderr to log_path (truncated)."""
    log = open(log_path, "w")
    try:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    finally:
        log.close()


# ---------------------------------------------------------------------------
# relaywatchd's request log line

# relaywatchd[PID]: info: request peer=127.0.0.1:54321 state=RCPT
#   client_address=127.0.2.1 client_port=40000 helo=<x> sender=<a@b>
#   recipient=<c@d> ...
# A value is either <...> (may be empty or contain spaces; it ends at the
# ">" followed by the next " key=" or the end of the line) or a bare word.
REQUEST_RE = re.compile(r"\binfo: request (.*)$")
TOKEN_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)="
                      r"(?:<(.*?)>(?=\s+[A-Za-z_][A-Za-z0-9_]*=|\s*$)|(\S*))")


def parse_request_line(line):
    m = REQUEST_RE.search(line.rstrip("\n"))
    if not m:
        return None
    attrs = {}
    for t in TOKEN_RE.finditer(m.group(1)):
        value = t.group(2) if t.group(2) is not None else t.group(3)
        attrs.setdefault(t.group(1), value)
    # Tolerate the attribute's protocol name where the brief's short name
    # is not used.
    state = attrs.get("state", attrs.get("protocol_state", ""))
    client = attrs.get("client", attrs.get("client_address", ""))
    port = attrs.get("client_port", "")
    m = re.fullmatch(r"\[?([0-9.]+)\]?(?::(\d+))?", client)
    if m:
        client = m.group(1)
        port = port or (m.group(2) or "")
    try:
        rcount = int(attrs.get("recipient_count", "0") or "0")
    except ValueError:
        rcount = -1
    return {"state": state, "client": client, "client_port": port,
            "helo": attrs.get("helo", attrs.get("helo_name", "")),
            "sender": attrs.get("sender", ""),
            "recipient": attrs.get("recipient", ""),
            "recipient_count": rcount,
            "instance": attrs.get("instance", ""),
            "action": attrs.get("action", ""),
            "attrs": attrs,
            "raw": line.rstrip("\n")}


def daemon_requests(path):
    out = []
    for line in read_text(path).splitlines():
        r = parse_request_line(line)
        if r is not None:
            out.append(r)
    return out


# ---------------------------------------------------------------------------
# Checks

class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, cond, what, detail=""):
        if cond:
            self.passed += 1
            print("ok %d - %s" % (self.passed + self.failed, what))
        else:
            self.failed += 1
            print("not ok %d - %s" % (self.passed + self.failed, what))
            for line in str(detail).splitlines():
                print("#   " + line)
        sys.stdout.flush()
        return cond

    def check_equal(self, got, want, what):
        return self.check(got == want, what,
                          "want: %r\ngot:  %r" % (want, got))


# ---------------------------------------------------------------------------
# A private Postfix instance with smtp-sink as its next hop

class PostfixInstance(Checks):
    """Directories, main.cf/master.cf, smtp-sink and Postfix start/stop.

    Call make_dirs(), pick ports (smtpd_port, sink_port), write_config(...),
    start_sink(), start_postfix(); stop_postfix() and stop_sink() at the end.
    """

    def __init__(self, prefix="relaywatch-e2e-"):
        Checks.__init__(self)
        self.prefix = prefix
        self.dir = None
        self.conf = self.queue = self.data = self.sink_dir = None
        self.maillog = self.sink_log = None
        self.sink = None
        self.postfix_started = False
        self.smtpd_port = self.sink_port = None
        self.master_cf_source = None

    def make_dirs(self):
        self.dir = tempfile.mkdtemp(prefix=self.prefix, dir="/tmp")
        # postfix (and nobody, for smtp-sink) must traverse every parent.
        os.chmod(self.dir, 0o755)
        if not os.stat("/tmp").st_mode & 0o001:
            raise SetupError("/tmp is not world-searchable")
        self.conf = os.path.join(self.dir, "etc")
        self.queue = os.path.join(self.dir, "queue")
        self.data = os.path.join(self.dir, "data")
        self.sink_dir = os.path.join(self.dir, "sink")
        self.maillog = os.path.join(self.dir, "maillog")
        self.sink_log = os.path.join(self.dir, "smtp-sink.log")
        pf = pwd.getpwnam("postfix")
        nobody = pwd.getpwnam("nobody")
        for d in (self.conf, self.queue):
            os.mkdir(d, 0o755)
        os.mkdir(self.data, 0o700)
        os.chown(self.data, pf.pw_uid, pf.pw_gid)
        os.mkdir(self.sink_dir, 0o755)
        os.chown(self.sink_dir, nobody.pw_uid, nobody.pw_gid)
        # Files the chrooted smtpd/smtp read below the queue directory.
        # See the DNS note at the top: no DNS, no host lookups that matter.
        # "postfix start" warns that they differ from /etc's: intended.
        chroot_etc = os.path.join(self.queue, "etc")
        os.mkdir(chroot_etc, 0o755)
        files = {
            "hosts": "127.0.0.1\tlocalhost\n",
            "nsswitch.conf": "hosts: files\nservices: files\n",
            "resolv.conf": "# relaywatch e2e: nothing listens here\n"
                           "nameserver 127.255.255.254\n"
                           "options timeout:1 attempts:1\n",
        }
        for name, text in files.items():
            with open(os.path.join(chroot_etc, name), "w") as f:
                f.write(text)
        for name in ("services", "localtime"):
            src = os.path.join("/etc", name)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(chroot_etc, name))

    def pick_ports(self):
        self.smtpd_port = free_port(SMTPD_ADDR)
        self.sink_port = free_port(SINK_ADDR)

    @staticmethod
    def policy_hook(port, addr=DAEMON_ADDR):
        return ("check_policy_service { inet:%s:%d, timeout=10s, "
                "default_action=DUNNO }" % (addr, port))

    def write_config(self, generator, transport_domains, specific):
        """main.cf: the common part (directories, logging, no DNS, every
        domain in transport_domains to smtp-sink, or every domain at all
        when transport_domains is None) plus 'specific' (relay domains,
        mynetworks, restrictions); master.cf: the system's, with the smtp
        service moved to SMTPD_ADDR:smtpd_port."""
        nexthop = "smtp:[%s]:%d" % (SINK_ADDR, self.sink_port)
        if transport_domains is None:
            transport = "static:" + nexthop
        else:
            transport = "inline:{ %s }" % ", ".join("%s=%s" % (d, nexthop)
                                                    for d in transport_domains)
        main_cf = """\
# Generated by tests/e2e/{generator} for one test run.
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
maillog_file = {maillog}
maillog_file_prefixes = /var, /dev/stdout, {dir}
myhostname = mx.e2e.relaywatch.test
mydomain = e2e.relaywatch.test
myorigin = $myhostname
mydestination = $myhostname, localhost
alias_maps =
alias_database =
inet_interfaces = {smtpd_addr}
inet_protocols = ipv4
relayhost =
# All test domains go to smtp-sink at a numeric next hop: no DNS (see the
# note at the top of postfix_harness.py).
transport_maps = {transport}
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
smtpd_banner = $myhostname ESMTP relaywatch-e2e
biff = no

""".format(generator=generator, queue=self.queue, data=self.data,
           maillog=self.maillog, dir=self.dir, smtpd_addr=SMTPD_ADDR,
           transport=transport)
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(main_cf + specific)

        # Debian's master.cf (smtpd, smtp chrooted) or Postfix's own.
        for src in ("/etc/postfix/master.cf", "/usr/share/postfix/master.cf.dist"):
            if os.path.exists(src):
                break
        else:
            raise SetupError("no master.cf template: neither /etc/postfix/master.cf "
                             "nor /usr/share/postfix/master.cf.dist exists")
        out, found = [], False
        for line in read_text(src).splitlines(True):
            if re.match(r"smtp\s+inet\s", line) and not found:
                line = re.sub(r"^smtp", "%s:%d" % (SMTPD_ADDR, self.smtpd_port), line)
                found = True
            out.append(line)
        if not found:
            raise SetupError("%s has no 'smtp inet' line to edit" % src)
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.writelines(out)
        self.master_cf_source = src

    def start_sink(self, dump=True):
        cmd = ["smtp-sink", "-u", "nobody"]
        if dump:
            cmd += ["-d", os.path.join(self.sink_dir, "%Y%m%d%H%M%S.")]
        cmd += ["%s:%d" % (SINK_ADDR, self.sink_port), "100"]
        self.sink = start_logged(cmd, self.sink_log)
        wait_listening(SINK_ADDR, self.sink_port, "smtp-sink", 10,
                       self.sink, self.sink_log)

    def stop_sink(self):
        stop_pid(self.sink, "smtp-sink")
        self.sink = None

    def start_postfix(self):
        run(["postfix", "-c", self.conf, "start"], timeout=30)
        self.postfix_started = True
        wait_listening(SMTPD_ADDR, self.smtpd_port, "Postfix smtpd", 10,
                       None, self.maillog)

    def stop_postfix(self):
        if not self.postfix_started:
            return
        self.postfix_started = False
        try:
            run(["postfix", "-c", self.conf, "stop"], timeout=15, check=False)
        except SetupError as e:
            print("# %s" % e)
        # "postfix stop" returns once master has released its lock; the
        # process may need a moment more to exit.  If it survives, kill it
        # by the PID it wrote (after checking that PID is still a master).
        pid_file = os.path.join(self.queue, "pid", "master.pid")
        try:
            pid = int(read_text(pid_file).split()[0])
        except (IndexError, ValueError):
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if read_text("/proc/%d/comm" % pid).strip() != "master":
                return
            time.sleep(0.1)
        print("# Postfix master %d still running, killing it" % pid)
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def start_relaywatchd(self, cmd):
        """Start relaywatchd as cmd, its output to self.daemon_log, and wait until it listens
        on self.daemon_port (SetupError if it exits first or does not)."""
        print("# starting: %s" % " ".join(cmd))
        self.daemon = start_logged(cmd, self.daemon_log)
        wait_listening(DAEMON_ADDR, self.daemon_port, "relaywatchd", 10, self.daemon,
                       self.daemon_log)

    def rejected_option(self, name):
        """True if relaywatchd exited with status 2 naming 'name': a daemon older than the
        key, refusing it at start."""
        return self.daemon.poll() == 2 and name in read_text(self.daemon_log)

    def stop_processes(self, check_daemon_exit):
        """Stop Postfix, relaywatchd and the sink; with check_daemon_exit, check that
        relaywatchd exits 0 on SIGTERM (CONTRACT.md: answer what is in flight, exit 0)."""
        self.stop_postfix()
        if self.daemon is not None:
            status = stop_pid(self.daemon, "relaywatchd")
            if check_daemon_exit:
                self.check(status == 0, "relaywatchd exits 0 on SIGTERM",
                           "exit status %s%s" % (status, tail_text(self.daemon_log, 10)))
        self.stop_sink()

    def get_page(self, path, save_as):
        """GET path from relaywatchd's HTTP port (self.http_port); the body, or "error: ..."
        when the request failed, is also saved as save_as in the run's directory.
        Returns (HTTP status or None, that text)."""
        url = "http://%s:%d%s" % (DAEMON_ADDR, self.http_port, path)
        try:
            with urllib.request.urlopen(url, timeout=budget(5)) as resp:
                status, text = resp.status, resp.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as e:
            status, text = None, "error: %s" % e
        with open(os.path.join(self.dir, save_as), "w") as f:
            f.write(text)
        return status, text

    def queue_listing(self):
        cp = run(["postqueue", "-c", self.conf, "-j"], timeout=10, check=False)
        return cp.stdout.strip()

    def sink_messages(self):
        """smtp-sink's dumps (-d): X-Mail-Args, X-Rcpt-Args, X-E2E-Session."""
        msgs = []
        for root, _, files in os.walk(self.sink_dir):
            for name in sorted(files):
                text = read_text(os.path.join(root, name))
                hdr = {"mail": None, "rcpts": [], "session": None}
                for line in text.splitlines():
                    if line.startswith("X-Mail-Args: "):
                        hdr["mail"] = line[len("X-Mail-Args: "):]
                    elif line.startswith("X-Rcpt-Args: "):
                        hdr["rcpts"].append(line[len("X-Rcpt-Args: "):])
                    elif line.startswith("X-E2E-Session: "):
                        hdr["session"] = line[len("X-E2E-Session: "):].strip()
                    elif line == "":
                        break
                msgs.append(hdr)
        return msgs

    def sent_lines(self):
        return [rcpt for _, rcpt in SENT_RE.findall(read_text(self.maillog))]


def execute_run(r):
    """Run r.execute() and then r.teardown(), whatever happens in between (signals held off
    while tearing down, so that no process is left behind); every failure becomes a failed
    check of r.  Returns True if the run was interrupted by a signal."""
    ran = interrupted = False
    try:
        r.execute()
        ran = True
    except SetupError as e:
        r.check(False, "harness setup and run", str(e))
    except Interrupted as e:
        r.check(False, "test was not interrupted", str(e))
        interrupted = True
    except Exception:
        r.check(False, "harness ran without a Python error", traceback.format_exc())
    finally:
        old = (signal.signal(signal.SIGINT, signal.SIG_IGN),
               signal.signal(signal.SIGTERM, signal.SIG_IGN))
        try:
            r.teardown(check_daemon_exit=ran)
        except Exception as e:   # never leave processes behind silently
            r.check(False, "teardown", repr(e))
        signal.signal(signal.SIGINT, old[0])
        signal.signal(signal.SIGTERM, old[1])
    return interrupted


def summary(checks, start):
    """A test's last lines, the time since start and "N passed, M failed"; returns its exit
    status: 0 when something passed and nothing failed."""
    print("# elapsed %.1f s" % (time.monotonic() - start))
    print("%d passed, %d failed" % (checks.passed, checks.failed))
    return 0 if checks.failed == 0 and checks.passed > 0 else 1


def print_tails(title, logs):
    """The diagnostics of a failed run: a title line, then the last n lines of each
    (path, n) in logs that exists."""
    print("# ---- diagnostics%s ----" % title)
    for path, n in logs:
        if path and os.path.exists(path):
            for line in tail_text(path, n).strip("\n").splitlines():
                print("# " + line)


def keep_or_remove(directory, keep):
    """A run's temp dir: kept (and its path printed) or removed."""
    if not directory:
        return
    if keep:
        print("# temp dir kept: %s" % directory)
    else:
        shutil.rmtree(directory, ignore_errors=True)


def executable_relaywatchd(path):
    """The daemon under test's absolute path, or None once the failed check and the
    summary line are printed (the test then exits 1)."""
    path = os.path.abspath(path)
    if os.access(path, os.X_OK):
        return path
    print("not ok 1 - relaywatchd is executable\n#   %s does not exist or is "
          "not executable (build it first)" % path)
    print("0 passed, 1 failed")
    return None


def ready(programs=None):
    """prepare_environment() and prerequisites(programs): True to go on, or False once the
    SKIP line and the summary line are printed (the test then exits SKIP)."""
    prepare_environment()
    reason = prerequisites() if programs is None else prerequisites(programs)
    if reason:
        print("SKIP: %s" % reason)
        print("0 passed, 0 failed")
        return False
    return True


def prerequisites(programs=("postfix", "postconf", "postqueue", "smtp-sink",
                            "swaks", "ss")):
    """Return a reason to skip, or None."""
    if os.geteuid() != 0:
        return "must run as root (private Postfix instance)"
    for prog in programs:
        if shutil.which(prog) is None and not os.path.exists("/usr/sbin/" + prog):
            return ("%s not found (apt-get install postfix swaks iproute2; "
                    "preseed postfix 'No configuration')" % prog)
    for user in ("postfix", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return "user %s does not exist" % user
    try:
        grp.getgrnam("postdrop")
    except KeyError:
        return "group postdrop does not exist (postfix not installed properly)"
    return None


def prepare_environment():
    """Postfix commands are found in /usr/sbin even if PATH lacks it."""
    os.environ["PATH"] = os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    os.environ.pop("MAIL_CONFIG", None)

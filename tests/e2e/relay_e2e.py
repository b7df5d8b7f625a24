#!/usr/bin/env python3
"""End-to-end test of detection and throttling: a real private Postfix, Redis
and a name server; ordinary clients send mail while one culprit relays mail
to many distinct domains.

    python3 tests/e2e/relay_e2e.py --relaywatchd build/relaywatchd \\
        --relaywatch build/relaywatch [--runs client,sasl,hold] [--keep]
        [--daemon-opt NAME=VALUE]...

The issue's words: "ordinary clients send mail while one client (and, in a
second run, one SASL-authenticated user) relays mail to many distinct
domains.  The culprit's messages are deferred, held or refused within 60
seconds of the start of its burst, the other clients' messages are all
delivered to smtp-sink, `relaywatch list` names the culprit, and
`relaywatch release` lets it send again."

Each run has its own temp dir below /tmp with:
  - a private Postfix (postfix_harness.py): smtpd on 127.0.0.1:free port,
    smtpd and smtp chrooted as in Debian's master.cf, mynetworks
    127.0.0.0/24 (the plain clients), relay_domains local.test; relay
    permission in smtpd_relay_restrictions (permit_mynetworks,
    permit_sasl_authenticated, reject_unauth_destination), which Postfix
    evaluates first, then the hook
        check_policy_service { inet:127.0.0.1:P, timeout=10s, default_action=DUNNO }
    in smtpd_recipient_restrictions (so its answer decides) and in
    smtpd_end_of_data_restrictions.  Every recipient domain goes to
    smtp-sink through `transport_maps = static:smtp:[127.0.0.25]:PORT`
    (one numeric next hop for any number of domains: no DNS at all for
    Postfix); smtp-sink dumps every message (-d), and each message carries
    an X-E2E-Session header naming it;
  - a private redis-server on 127.0.0.1:free port (store=redis://...);
  - a private BIND named on 127.0.0.1:free port (tests/dns_servers.py),
    authoritative for `example` (a wildcard MX under relaytest.example, MX
    for the partner domains): the daemon's resolver; its query log shows
    the MX burst the daemon sends upstream;
  - relaywatchd -c RUN/relaywatch.conf -e, with store_flush_interval=1s,
    host_id=mx-e2e, local_domains=local.test and fast_path=no (these runs
    test the host-level detector, which the per-key fast path would pre-empt;
    fast_e2e.py tests that) (stderr captured);
    `relaywatch list/release -c RUN/relaywatch.conf` use the same file.

Runs (--runs, default all three):
  client  the culprit is a client address (127.0.0.66, in mynetworks); the
          daemon makes its own DNS lookups (MX burst through named);
          default culprit_action (DEFER): its relay RCPTs must get 4xx/5xx.
  sasl    alice and mallory authenticate (Cyrus SASL, sasldb made with
          saslpasswd2; mech PLAIN) from the SAME client address 127.0.1.5
          (outside mynetworks: relay only through permit_sasl_authenticated),
          with the same sender domain; mallory relays to many domains.  Only
          sasl_username tells them apart: mallory deferred, alice delivered,
          `relaywatch list` names sasl_username:mallory and neither the
          shared client address nor the sender domain.
  hold    like client, with -o culprit_action=HOLD and -o dns_lookups=
          (empty: no lookups; the distinct relay domains stand in for the MX
          count); the culprit's messages are accepted but must land in the
          hold queue (maillog "hold:" line, postqueue -j queue_name hold);
          relaywatch release releases them with the key (the quarantine's
          postsuper -H) and they reach smtp-sink.

Timeline of a run: the plain clients (127.0.0.11-13; in the sasl run alice
too) each send a message about every second (three partner domains and
local.test), from the start to the end.  After WARMUP seconds the culprit
starts its burst: CULPRIT_RATE messages a second, each over its own SMTP
session, each to a new domain rN.relaytest.example.  The first culprit
message throttled (RCPT answered 4xx/5xx, or held) must come within 60 s
of the burst's first message.  The burst goes on CONFIRM seconds more (every
later relay message must be throttled too; one culprit message to
local.test must be accepted and delivered untouched); then `relaywatch list
--json` must name the culprit, `relaywatch release KIND:KEY` must exit 0,
and a culprit relay message must be accepted (and, hold run: delivered)
again within RELEASE_LIMIT seconds.  The plain clients stop, Postfix
drains, and every plain message must have been accepted and found in
smtp-sink's dumps.

Figures (seconds from burst start to the first throttled message, counts,
MX queries named saw, time to the release taking effect) are printed as
"# figure ..." lines; the daemon's loud/quiet/throttle lines are printed
too.  Output: "ok"/"not ok" lines, last "N passed, M failed".  Exit 0 when
all pass, 1 on a failure, 77 when a prerequisite is missing (not root, no
postfix, smtp-sink, redis-server, named, saslpasswd2), 2 for a bad command
line.  On failure the temp dir is kept (path printed) with maillog,
relaywatchd.log, status-*.json, list-*.json, messages.tsv (every message:
seconds from the burst's start, client, recipient, RCPT and DATA replies,
queue ID), named's query log.
"""

import argparse
import collections
import json
import os
import pwd
import random
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from postfix_harness import (  # noqa: E402  (after the path set-up)
    DAEMON_ADDR, SENT_RE, SINK_ADDR, SKIP, SMTPD_ADDR, Checks, PostfixInstance, execute_run,
    SetupError, budget, free_port, keep_or_remove, listening, on_signal, print_tails,
    read_text, ready, remaining, run, set_budget, start_logged, stop_pid, summary,
    tail_text, wait_listening)
import dns_servers  # noqa: E402

RUN_BUDGET = 200.0        # seconds per run (a passing run takes 45-50 s, a failing one up to ~110 s)
WARMUP = 8.0              # plain traffic only, before the burst
CULPRIT_RATE = 3.0        # culprit messages per second during the burst
DETECT_LIMIT = 60.0       # the issue: throttled within 60 s of the burst's start
CONFIRM = 5.0             # burst goes on this long after the first throttled message
RELEASE_LIMIT = 6.0       # a released culprit sends again within this (flush 1 s)
PLAIN_PERIOD = (0.7, 1.3) # seconds between a plain client's messages

HOST_ID = "mx-e2e"
LOCAL_DOMAIN = "local.test"
PARTNERS = ("partner1.example", "partner2.example", "partner3.example")
PLAIN_CLIENTS = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
MYNETWORKS = "127.0.0.0/24"
CULPRIT_ADDR = "127.0.0.66"
SASL_ADDR = "127.0.1.5"          # outside mynetworks
SASL_REALM = "mx.e2e.relaywatch.test"   # = myhostname (Cyrus's default realm)
SASL_USERS = {"alice": "alice-secret-1", "mallory": "mallory-secret-2"}
SASL_SENDER_DOMAIN = "users.example"   # alice and mallory share it

RUNS = {
    "client": {"culprit": "client", "action": "defer", "lookups": True},
    "sasl": {"culprit": "sasl", "action": "defer", "lookups": True},
    "hold": {"culprit": "client", "action": "hold", "lookups": False},
}

QUEUED_RE = re.compile(r"queued as ([0-9A-Za-z]+)")
# smtpd's line for a HOLD answer; the queue ID is often NOQUEUE (the first RCPT
# comes before the queue file is opened), so held messages are known by
# their recipient (each culprit message has its own).
HOLD_LINE_RE = re.compile(r"postfix/smtpd\[\d+\]: \w+: hold: RCPT from .*; from=<[^>]*> "
                          r"to=<([^>]*)>")
POLICY_TROUBLE_RE = re.compile(r"(warning|fatal|panic|error): .*(policy|problem "
                               r"talking to server)")
DAEMON_EVENT_RE = re.compile(r"\b(loud|quiet):|\bthrottl|\brelease", re.I)


def now():
    return time.monotonic()


# ---------------------------------------------------------------------------
# One SMTP message, over its own session, recorded.

class Msg:
    """What happened to one message: who sent it, when, the RCPT and DATA
    replies, the queue ID."""

    def __init__(self, role, client, rcpt, session):
        self.role = role            # "plain", "alice", "culprit"
        self.client = client        # source address
        self.rcpt = rcpt
        self.session = session      # X-E2E-Session value
        self.t0 = None              # monotonic time the session started
        self.t_rcpt = None          # time the RCPT reply came
        self.rcpt_code = None
        self.rcpt_text = ""
        self.data_code = None
        self.queue_id = None
        self.error = None

    @property
    def accepted(self):
        return self.error is None and self.rcpt_code == 250 and self.data_code == 250

    @property
    def refused(self):
        return self.rcpt_code is not None and self.rcpt_code // 100 in (4, 5)

    def describe(self):
        return ("%s %s -> %s: rcpt %s %s, data %s, queue id %s%s"
                % (self.session, self.client, self.rcpt, self.rcpt_code,
                   self.rcpt_text[:80], self.data_code, self.queue_id,
                   ", error %s" % self.error if self.error else ""))


def send_one(port, msg, sender, helo, login=None, timeout=15):
    msg.t0 = now()
    try:
        s = smtplib.SMTP(SMTPD_ADDR, port, local_hostname=helo, timeout=timeout,
                         source_address=(msg.client, 0))
    except (OSError, smtplib.SMTPException) as e:
        msg.error = "connect: %s" % e
        return msg
    try:
        s.ehlo(helo)
        if login:
            s.login(login[0], login[1])
        code, text = s.mail(sender)
        if code != 250:
            msg.error = "MAIL answered %d %s" % (code, text.decode("utf-8", "replace"))
            return msg
        code, text = s.rcpt(msg.rcpt)
        msg.t_rcpt = now()
        msg.rcpt_code = code
        msg.rcpt_text = text.decode("utf-8", "replace")
        if code == 250:
            body = ("From: <%s>\r\nTo: <%s>\r\nSubject: relaywatch relay e2e %s\r\n"
                    "X-E2E-Session: %s\r\n\r\nrelay e2e test message %s\r\n"
                    % (sender, msg.rcpt, msg.session, msg.session, msg.session))
            code, text = s.data(body.encode("ascii"))
            msg.data_code = code
            m = QUEUED_RE.search(text.decode("utf-8", "replace"))
            if m:
                msg.queue_id = m.group(1)
        try:
            s.quit()
        except (OSError, smtplib.SMTPException):
            pass
    except (OSError, smtplib.SMTPException) as e:
        msg.error = "%s: %s" % (type(e).__name__, e)
    finally:
        try:
            s.close()
        except OSError:
            pass
    return msg


def status_summary(body):
    """The parts of a /status answer that tell why a host is (not) loud:
    everything of hosts[0] but the per-type DNS details, the 10m window
    compact, the first culprits.  The whole answer is kept in the temp dir."""
    try:
        host = json.loads(body)["hosts"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return body[:3000]
    out = []
    for k, v in host.items():
        if k in ("totals", "windows", "culprits", "fleet"):
            continue
        out.append("%s: %s" % (k, json.dumps(v)[:1500]))
    w = (host.get("windows") or {}).get("10m") or {}
    out.append("windows.10m: %s" % json.dumps({k: v for k, v in w.items()
                                               if k != "dns_detail"}))
    for c in (host.get("culprits") or [])[:6]:
        out.append("culprit: %s" % json.dumps(c))
    return "\n".join(out)


# ---------------------------------------------------------------------------
# Redis

class Redis:
    def __init__(self, base_dir):
        self.dir = os.path.join(base_dir, "redis")
        os.mkdir(self.dir)
        self.port = free_port("127.0.0.1")
        self.log = os.path.join(self.dir, "redis.log")
        self.proc = None

    def start(self):
        self.proc = start_logged(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--daemonize", "no",
                                  "--dir", self.dir], self.log)
        wait_listening("127.0.0.1", self.port, "redis-server", 10, self.proc, self.log)

    def cli(self, *args):
        cp = run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port)] + list(args),
                 timeout=10, check=False)
        return cp.stdout

    def stop(self):
        stop_pid(self.proc, "redis-server")


# ---------------------------------------------------------------------------
# One run

class Run(PostfixInstance):
    def __init__(self, args, name, results):
        PostfixInstance.__init__(self, prefix="relaywatch-relay-%s-" % name)
        self.args = args
        self.name = name
        self.spec = RUNS[name]
        self.results = results
        self.daemon = self.redis = self.named = None
        self.daemon_log = self.daemon_conf = None
        self.daemon_port = self.http_port = None
        self.run_failed = False
        self.lock = threading.Lock()
        self.msgs = []
        self.stop_plain = threading.Event()
        self.stop_culprit = threading.Event()
        self.threads = []
        self.seq = 0
        self.burst_start = None
        self.domain_no = 0
        self.figures = collections.OrderedDict()
        self.local_msg = None

    def check(self, cond, what, detail=""):
        return self.results.check(cond, "[%s] %s" % (self.name, what), detail)

    def check_equal(self, got, want, what):
        return self.check(got == want, what, "want: %r\ngot:  %r" % (want, got))

    def figure(self, name, value):
        self.figures[name] = value
        print("# figure [%s] %s = %s" % (self.name, name, value))
        sys.stdout.flush()

    # -- culprit identity ------------------------------------------------------

    @property
    def sasl(self):
        return self.spec["culprit"] == "sasl"

    @property
    def hold(self):
        return self.spec["action"] == "hold"

    def culprit_member(self):
        if self.sasl:
            return ("sasl_username", "mallory")
        return ("client_address", CULPRIT_ADDR)

    def culprit_client(self):
        return SASL_ADDR if self.sasl else CULPRIT_ADDR

    # -- setup -----------------------------------------------------------------

    def write_postfix(self):
        hook = self.policy_hook(self.daemon_port)
        sasl = ""
        if self.sasl:
            sasl = """
# Cyrus SASL with a sasldb (sasl2-bin's saslpasswd2).  smtpd reads
# smtpd.conf before chroot (Debian's Postfix looks in $config_directory/sasl
# whatever cyrus_sasl_config_path says); the db is opened after chroot, so
# it is also copied to the same path below the queue directory (the chroot
# root).  smtpd_sasl_local_domain stays empty: sasl_username is the name
# the client gave ("alice"), looked up in the realm $myhostname.
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = {sasl_dir}
smtpd_sasl_security_options = noanonymous
smtpd_tls_auth_only = no
""".format(sasl_dir=self.sasl_dir)
        specific = """\
# Every recipient domain, however many, goes to smtp-sink (transport_maps
# above).  The sink accepts at once; keep Postfix's own delivery brisk.
default_destination_concurrency_limit = 20
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 10s

mynetworks = {mynetworks}
relay_domains = {local}
smtpd_policy_service_try_limit = 1
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated,
    reject_unauth_destination
# The hook under test: its answer decides (nothing permits before it).
smtpd_recipient_restrictions = {hook}
smtpd_end_of_data_restrictions = {hook}
{sasl}""".format(mynetworks=MYNETWORKS, local=LOCAL_DOMAIN, hook=hook, sasl=sasl)
        self.write_config("relay_e2e.py (%s)" % self.name, None, specific)

    def setup_sasl(self, users=None):
        """smtpd.conf and a sasldb with 'users' (name: password; default alice
        and mallory), at DIR/sasl and at the same path below the chroot (the
        queue directory)."""
        self.sasl_dir = os.path.join(self.conf, "sasl")
        os.mkdir(self.sasl_dir, 0o755)
        db = os.path.join(self.sasl_dir, "sasldb2")
        for user, password in (users or SASL_USERS).items():
            cp = subprocess.run(["saslpasswd2", "-p", "-c", "-f", db, "-u", SASL_REALM, user],
                                input=password, universal_newlines=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
            if cp.returncode != 0:
                raise SetupError("saslpasswd2 %s exited %d: %s" % (user, cp.returncode,
                                                                    cp.stdout))
        with open(os.path.join(self.sasl_dir, "smtpd.conf"), "w") as f:
            f.write("pwcheck_method: auxprop\nauxprop_plugin: sasldb\n"
                    "mech_list: PLAIN LOGIN\nsasldb_path: %s\n" % db)
        pf = pwd.getpwnam("postfix")
        jail_dir = self.queue + self.sasl_dir
        os.makedirs(jail_dir, 0o755)
        d = jail_dir
        while d != self.queue:        # every new directory traversable
            os.chmod(d, 0o755)
            d = os.path.dirname(d)
        for name in os.listdir(self.sasl_dir):
            for where in (self.sasl_dir, jail_dir):
                path = os.path.join(where, name)
                if where == jail_dir:
                    shutil.copy(os.path.join(self.sasl_dir, name), path)
                os.chown(path, pf.pw_uid, pf.pw_gid)
                os.chmod(path, 0o640 if name.startswith("sasldb") else 0o644)
        cp = run(["sasldblistusers2", "-f", db], timeout=10, check=False)
        print("# sasldb users: %s" % " ".join(cp.stdout.split()))

    def zones(self):
        z = dns_servers.Zone("example", ttl=300, negative_ttl=60)
        z.mx("*.relaytest", "mx.relaytest.example.")
        z.a("mx.relaytest", SINK_ADDR)
        for p in PARTNERS:
            label = p[:-len(".example")]
            z.mx(label, "mx.%s" % p)
            z.a("mx.%s" % label, SINK_ADDR)
        return {"example": z}

    def daemon_conf_lines(self):
        """The keys relaywatchd and relaywatch share (-c for both): listeners,
        store, host, local domains, resolver."""
        lines = [
            "# %s run %s" % (os.path.basename(sys.argv[0]), self.name),
            "listen = inet:%s:%d" % (DAEMON_ADDR, self.daemon_port),
            "http_listen = inet:%s:%d" % (DAEMON_ADDR, self.http_port),
            "store = redis://127.0.0.1:%d" % self.redis.port,
            "store_flush_interval = 1s",
            "host_id = %s" % HOST_ID,
            "local_domains = %s" % LOCAL_DOMAIN,
            # The quarantine's postsuper works on this run's private Postfix.
            "postfix_config_directory = %s" % self.conf,
        ]
        if self.named is not None:
            lines.append("resolver = %s" % self.named.address)
        if not self.spec["lookups"]:
            lines.append("dns_lookups =")
        return lines

    def write_daemon_conf(self):
        """relaywatch.conf.  The fast path is off: these runs test the host-level
        detector (a burst seen for detect_loud_after, culprits named from its window),
        which the fast path would pre-empt by stopping the culprit within seconds
        (fast_e2e.py tests the fast path)."""
        self.daemon_conf = os.path.join(self.dir, "relaywatch.conf")
        lines = self.daemon_conf_lines() + ["fast_path = no"]
        with open(self.daemon_conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def daemon_cmd(self):
        cmd = [self.args.relaywatchd, "-c", self.daemon_conf, "-e"]
        if self.hold:
            cmd += ["-o", "culprit_action=HOLD"]
        for o in self.args.daemon_opt:
            cmd += ["-o", o]
        return cmd

    def start_daemon(self):
        self.start_relaywatchd(self.daemon_cmd())
        deadline = now() + budget(3)
        while now() < deadline and not listening(DAEMON_ADDR, self.http_port):
            time.sleep(0.05)

    def setup(self):
        t = now()
        self.make_dirs()
        self.daemon_log = os.path.join(self.dir, "relaywatchd.log")
        self.pick_ports()
        self.daemon_port = free_port(DAEMON_ADDR)
        self.http_port = free_port(DAEMON_ADDR)  # never the same one (tests/ports.py)
        self.redis = Redis(self.dir)
        self.redis.start()
        if self.spec["lookups"]:
            try:
                self.named = dns_servers.Named(self.dir, self.zones()).start()
            except (AssertionError, OSError, subprocess.SubprocessError) as e:
                raise SetupError("named: %s" % e)
        if self.sasl:
            self.setup_sasl()
        self.write_postfix()
        self.write_daemon_conf()
        print("# run %s: temp dir %s; smtpd %s:%d, relaywatchd %s:%d (http %d), "
              "smtp-sink %s:%d, redis 127.0.0.1:%d, named %s"
              % (self.name, self.dir, SMTPD_ADDR, self.smtpd_port, DAEMON_ADDR,
                 self.daemon_port, self.http_port, SINK_ADDR, self.sink_port, self.redis.port,
                 self.named.address if self.named else "none (dns_lookups empty)"))
        self.start_sink(dump=True)
        self.start_daemon()
        self.start_postfix()
        print("# run %s: set up in %.1f s" % (self.name, now() - t))

    # -- traffic ---------------------------------------------------------------

    def next_session(self, role):
        with self.lock:
            self.seq += 1
            return "%s-%s-%05d" % (self.name, role, self.seq)

    def record(self, msg):
        with self.lock:
            self.msgs.append(msg)

    def plain_loop(self, idx, client, login=None):
        rnd = random.Random(1000 + idx)
        n = 0
        role = "alice" if login else "plain"
        while not self.stop_plain.is_set() and remaining() > 20:
            n += 1
            if n % 4 == 0:
                rcpt = "user%d@%s" % (idx, LOCAL_DOMAIN)
            else:
                rcpt = "friend%d@%s" % (idx, PARTNERS[(n + idx) % len(PARTNERS)])
            if login:
                sender = "alice@%s" % SASL_SENDER_DOMAIN
            else:
                sender = "client%d@o%d.example" % (idx, idx)
            msg = Msg(role, client, rcpt, self.next_session(role))
            send_one(self.smtpd_port, msg, sender, "plain%d.client.test" % idx, login)
            self.record(msg)
            self.stop_plain.wait(rnd.uniform(*PLAIN_PERIOD))

    def culprit_msg(self, rcpt=None):
        if rcpt is None:
            with self.lock:
                self.domain_no += 1
                n = self.domain_no
            rcpt = "info@r%d.relaytest.example" % n
        if self.sasl:
            sender = "mallory@%s" % SASL_SENDER_DOMAIN
            login = ("mallory", SASL_USERS["mallory"])
        else:
            sender = "offers@bulk-sender.example"
            login = None
        msg = Msg("culprit", self.culprit_client(), rcpt, self.next_session("culprit"))
        send_one(self.smtpd_port, msg, sender, "culprit.client.test", login)
        self.record(msg)
        return msg

    def culprit_loop(self):
        period = 1.0 / CULPRIT_RATE
        nxt = now()
        while not self.stop_culprit.is_set() and remaining() > 15:
            self.culprit_msg()
            nxt += period
            delay = nxt - now()
            if delay > 0:
                self.stop_culprit.wait(delay)
            else:
                nxt = now()

    def start_thread(self, fn, *a):
        t = threading.Thread(target=fn, args=a, daemon=True)
        t.start()
        self.threads.append(t)
        return t

    def culprit_msgs(self, relay_only=True):
        with self.lock:
            return [m for m in self.msgs if m.role == "culprit"
                    and (not relay_only or not m.rcpt.endswith("@" + LOCAL_DOMAIN))]

    def held_rcpts(self):
        return set(HOLD_LINE_RE.findall(read_text(self.maillog)))

    def sent_ids(self):
        return set(qid for qid, _ in SENT_RE.findall(read_text(self.maillog)))

    def throttled(self, m, held=None):
        """Was this culprit message throttled (refused/deferred at RCPT, or held)?"""
        if m.refused:
            return True
        if self.hold and m.accepted:
            return m.rcpt in (held if held is not None else self.held_rcpts())
        return False

    def first_throttled(self):
        held = self.held_rcpts() if self.hold else None
        for m in sorted(self.culprit_msgs(), key=lambda m: m.t0):
            if self.throttled(m, held):
                return m
        return None

    # -- the daemon's side -----------------------------------------------------

    def status(self, label):
        return self.get_page("/status", "status-%s.json" % label)[1]

    def relaywatch(self, *args):
        cmd = [self.args.relaywatch] + list(args[:1]) + ["-c", self.daemon_conf] + list(args[1:])
        cp = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=budget(15))
        print("# $ %s -> exit %d" % (" ".join(cmd), cp.returncode))
        return cp

    def list_json(self, label):
        cp = self.relaywatch("list", "--json")
        with open(os.path.join(self.dir, "list-%s.json" % label), "w") as f:
            f.write(cp.stdout + cp.stderr)
        doc = None
        try:
            doc = json.loads(cp.stdout)
        except ValueError:
            pass
        return cp, doc

    def daemon_events(self):
        return [l for l in read_text(self.daemon_log).splitlines() if DAEMON_EVENT_RE.search(l)]

    # -- the run ---------------------------------------------------------------

    def execute(self):
        self.setup()
        self.status("start")
        # Plain clients throughout; in the sasl run alice (same address as
        # mallory) is one of them.
        for i, addr in enumerate(PLAIN_CLIENTS, 1):
            self.start_thread(self.plain_loop, i, addr)
        if self.sasl:
            self.start_thread(self.plain_loop, 9, SASL_ADDR, ("alice", SASL_USERS["alice"]))
        self.stop_plain.wait(WARMUP)
        with self.lock:
            pre = list(self.msgs)
        bad = [m.describe() for m in pre if not m.accepted]
        if not self.check(pre and not bad, "warm-up: plain messages accepted before the burst "
                          "(%d sent)" % len(pre), "\n".join(bad[:10]) or "nothing sent"):
            # The infrastructure does not work: no point in a burst.
            raise SetupError("plain mail does not flow:\n%s%s"
                             % ("\n".join(bad[:5]), tail_text(self.maillog, 20)))
        self.status("before-burst")

        # The burst.
        self.burst_start = now()
        culprit = self.start_thread(self.culprit_loop)
        first = None
        deadline = self.burst_start + DETECT_LIMIT + 5
        while now() < min(deadline, now() + remaining() - 30):
            first = self.first_throttled()
            if first is not None or self.daemon.poll() is not None:
                break
            time.sleep(0.25)
        detect_status = self.status("detect")
        sent_before = [m for m in self.culprit_msgs()
                       if first is None or m.t0 < first.t0]
        domains_before = len(set(m.rcpt.split("@")[1] for m in sent_before))
        if first is not None:
            delay = first.t0 - self.burst_start
            self.figure("seconds from burst start to first throttled culprit message",
                        "%.1f" % delay)
            self.figure("culprit relay messages (distinct domains) before it",
                        "%d (%d)" % (len(sent_before), domains_before))
            self.figure("first throttled message", first.describe())
            self.check(delay <= DETECT_LIMIT, "culprit throttled within %.0f s of the start "
                       "of its burst (%.1f s)" % (DETECT_LIMIT, delay))
        else:
            self.check(False, "culprit throttled within %.0f s of the start of its burst"
                       % DETECT_LIMIT,
                       "no culprit message was %s in %.0f s (%d relay messages to %d "
                       "domains sent)\ndaemon loud/quiet/throttle lines:\n%s\n"
                       "/status:\n%s"
                       % ("held" if self.hold else "refused or deferred",
                          now() - self.burst_start, len(sent_before), domains_before,
                          "\n".join(self.daemon_events()[-20:]) or "(none)",
                          status_summary(detect_status)))
            self.stop_culprit.set()
            culprit.join(20)
            self.finish_traffic()
            return

        # Keep the burst going; one culprit message to local.test meanwhile.
        time.sleep(CONFIRM / 2)
        local = self.local_msg = self.culprit_msg("postmaster@%s" % LOCAL_DOMAIN)
        time.sleep(CONFIRM / 2)
        self.stop_culprit.set()
        culprit.join(20)
        time.sleep(1.0 if self.hold else 0)      # let the maillog catch up
        held = self.held_rcpts() if self.hold else None
        after = [m for m in self.culprit_msgs() if m.t0 > first.t0]
        not_thr = [m.describe() for m in after if not self.throttled(m, held)]
        self.figure("culprit relay messages after the first throttled one (throttled)",
                    "%d (%d)" % (len(after), len(after) - len(not_thr)))
        self.check(after and not not_thr, "every later culprit relay message throttled too "
                   "(%d)" % len(after), "\n".join(not_thr[:10]) or "none sent")
        if self.hold:
            self.check(all(m.accepted for m in after + [first]),
                       "hold: the culprit's messages are accepted (250), not refused",
                       "\n".join(m.describe() for m in after + [first] if not m.accepted))
        self.check(local.accepted and not self.throttled(local, held),
                   "culprit's message to local_domains (%s) accepted untouched while "
                   "throttled" % LOCAL_DOMAIN, local.describe())

        # relaywatch list.
        kind, key = self.culprit_member()
        cp, doc = self.list_json("throttled")
        entries = doc.get("throttled") if isinstance(doc, dict) else None
        self.check(cp.returncode == 0 and isinstance(entries, list),
                   "relaywatch list --json exits 0 with a \"throttled\" list",
                   "exit %d\nstdout: %s\nstderr: %s" % (cp.returncode, cp.stdout[:2000],
                                                       cp.stderr[:2000]))
        entries = [e for e in (entries or []) if isinstance(e, dict)]
        print("# relaywatch list --json: %s" % json.dumps(entries)[:1500])
        mine = [e for e in entries if e.get("kind") == kind and e.get("key") == key]
        self.check(len(mine) == 1, "relaywatch list names the culprit %s:%s" % (kind, key),
                   "entries: %s" % json.dumps(entries)[:3000])
        if mine:
            e = mine[0]
            want_action = "HOLD" if self.hold else "DEFER"
            self.check(str(e.get("action", "")).upper().startswith(want_action),
                       "its action is %s..." % want_action, "entry: %r" % e)
            self.check(e.get("host") == HOST_ID, "its host is %s" % HOST_ID, "entry: %r" % e)
            self.check(bool(e.get("reason")), "it has a reason", "entry: %r" % e)
            for k in ("since", "until", "source"):
                self.check(k in e, "its entry has \"%s\"" % k, "entry: %r" % e)
            self.figure("list entry", json.dumps(e))
        # Nobody else qualifies: the plain clients (and alice) relay to 3
        # domains, below culprit_min_domains; the culprit's sender domain
        # (shared with alice in the sasl run) and client address (shared too)
        # are not blamed while a SASL user or client address qualifies.
        wrong = [e for e in entries if (e.get("kind"), e.get("key")) != (kind, key)]
        self.check(not wrong, "relaywatch list names nothing but the culprit%s"
                   % (" (not alice, not the shared client address %s, not the shared "
                      "sender domain %s)" % (SASL_ADDR, SASL_SENDER_DOMAIN) if self.sasl
                      else " (not the plain clients, not its sender domain)"),
                   json.dumps(wrong)[:3000])
        ev = self.daemon_events()
        self.check(any(re.search(r"\bloud:", l) for l in ev),
                   "relaywatchd logged a 'loud: ...' line", "\n".join(ev[-20:]) or "(none)")
        self.check(any("throttle" in l and key in l for l in ev),
                   "relaywatchd logged a throttle line naming %s" % key,
                   "\n".join(ev[-20:]) or "(none)")
        print("# rw:throttle in Redis: %s"
              % " | ".join(self.redis.cli("hgetall", "rw:throttle").splitlines())[:1500])

        if self.hold:
            # Before the release: the held culprit messages are in the hold queue.
            held_now = self.held_rcpts()
            q = {e.get("queue_id"): e.get("queue_name") for e in self.queue_json()}
            hm = [m for m in self.culprit_msgs() if m.rcpt in held_now]
            self.check(hm and all(q.get(m.queue_id) == "hold" for m in hm),
                       "postqueue -j before the release: every held culprit message is in the "
                       "hold queue (%d)" % len(hm),
                       "\n".join("%s: %s" % (m.describe(), q.get(m.queue_id)) for m in hm
                                 if q.get(m.queue_id) != "hold")[:2000])
            others = sorted(i for i, name in q.items()
                            if name == "hold" and i not in set(m.queue_id for m in hm))
            self.check(not others, "nothing else is in the hold queue", " ".join(others[:20]))

        # relaywatch release.
        member = "%s:%s" % (kind, key)
        cp = self.relaywatch("release", member)
        t_release = now()
        print("# rw:throttle right after the release: %s"
              % " | ".join(self.redis.cli("hgetall", "rw:throttle").splitlines())[:1500])
        self.check(cp.returncode == 0, "relaywatch release %s exits 0" % member,
                   "exit %d\nstdout: %s\nstderr: %s" % (cp.returncode, cp.stdout, cp.stderr))
        again = None
        tries = []
        while now() - t_release < RELEASE_LIMIT + 4 and remaining() > 20:
            m = self.culprit_msg()
            tries.append(m)
            if self.hold:
                # Accepted anyway: released means delivered, not held.
                if m.accepted and m.queue_id:
                    t_end = now() + 3
                    while now() < t_end and m.queue_id not in self.sent_ids() \
                            and m.rcpt not in self.held_rcpts():
                        time.sleep(0.1)
                    if m.queue_id in self.sent_ids():
                        again = m
                        break
            elif m.accepted:
                again = m
                break
            time.sleep(0.5)
        if again is not None:
            took = again.t0 - t_release
            self.figure("seconds from release to the culprit's next accepted%s message"
                        % (" (delivered)" if self.hold else ""), "%.1f" % took)
            self.figure("culprit messages tried after the release", len(tries))
            self.check(took <= RELEASE_LIMIT, "after relaywatch release the culprit sends "
                       "again within %.0f s (%.1f s)" % (RELEASE_LIMIT, took))
        else:
            self.check(False, "after relaywatch release the culprit sends again within %.0f s"
                       % RELEASE_LIMIT,
                       "%d tries:\n%s\ndaemon lines:\n%s\nrw:throttle in Redis now:\n%s"
                       % (len(tries), "\n".join(m.describe() for m in tries[-10:]),
                          "\n".join(self.daemon_events()[-20:]),
                          self.redis.cli("hgetall", "rw:throttle")[:2000]))
        cp, doc = self.list_json("released")
        print("# relaywatch list --json after release: %s" % (cp.stdout.strip()[:1500]))
        self.finish_traffic()

    def finish_traffic(self):
        """Stop the plain clients, let Postfix drain, check delivery."""
        self.stop_plain.set()
        self.stop_culprit.set()
        for t in self.threads:
            t.join(20)
        self.status("end")
        with open(os.path.join(self.dir, "messages.tsv"), "w") as f:
            f.write("session\tseconds\tclient\trcpt\trcpt_code\tdata_code\tqueue_id\t"
                    "error\trcpt_text\n")
            t0 = self.burst_start or 0.0
            for m in sorted(self.msgs, key=lambda m: m.t0 or 0.0):
                f.write("\t".join(str(x) for x in (
                    m.session, "%.2f" % ((m.t0 or 0.0) - t0), m.client, m.rcpt, m.rcpt_code,
                    m.data_code, m.queue_id, m.error, m.rcpt_text)) + "\n")
        plain = [m for m in self.msgs if m.role in ("plain", "alice")]
        bad = [m.describe() for m in plain if not m.accepted]
        during = [m for m in plain if self.burst_start and m.t0 >= self.burst_start]
        self.figure("plain messages (during the burst and after)",
                    "%d (%d)" % (len(plain), len(during)))
        self.check(plain and not bad, "every plain message accepted (%d, %d of them during "
                   "the burst or after)" % (len(plain), len(during)),
                   "%d not accepted:\n%s" % (len(bad), "\n".join(bad[:15])))
        if self.sasl:
            alice = [m for m in plain if m.role == "alice"]
            alice_during = [m for m in alice if self.burst_start and m.t0 >= self.burst_start]
            self.figure("alice's messages (during the burst and after)",
                        "%d (%d)" % (len(alice), len(alice_during)))
            self.check(alice_during and all(m.accepted for m in alice),
                       "alice (same client address and sender domain as mallory) sends "
                       "during the burst, all accepted (%d)" % len(alice_during),
                       "\n".join(m.describe() for m in alice if not m.accepted))
        # Everything accepted reaches the sink: relaywatch release released the held culprit
        # messages with the key (the quarantine's postsuper -H).
        held = self.held_rcpts()
        want = set(m.session for m in self.msgs if m.accepted)
        want_plain = set(m.session for m in plain if m.accepted)
        deadline = now() + budget(30)
        got = set()
        while now() < deadline:
            got = set(x["session"] for x in self.sink_messages())
            if want <= got:
                break
            time.sleep(0.3)
        missing = sorted(want_plain - got)
        self.check(not missing, "every plain message found in smtp-sink's dumps (%d)"
                   % len(want_plain), "%d missing: %s\nqueue: %s"
                   % (len(missing), " ".join(missing[:20]), self.queue_listing()[:2000]))
        if self.local_msg is not None:
            self.check(self.local_msg.session in got, "the culprit's message to %s reached "
                       "smtp-sink" % LOCAL_DOMAIN, self.local_msg.describe())
        self.figure("messages in smtp-sink (plain)", "%d (%d)"
                    % (len(got), len(want_plain & got)))
        culprit_rel = self.culprit_msgs()
        thr = [m for m in culprit_rel if self.throttled(m, held)]
        self.figure("culprit relay messages sent (throttled)", "%d (%d)"
                    % (len(culprit_rel), len(thr)))
        if self.hold:
            # Held by the culprit_action HOLD until relaywatch release, which released them
            # with the key: the hold queue is empty and each reached the sink after the
            # release (and not before: the maillog's "released from hold" line).
            q = self.queue_json()
            in_hold = sorted(e.get("queue_id") for e in q if e.get("queue_name") == "hold")
            held_msgs = [m for m in culprit_rel if m.rcpt in held]
            released = set(re.findall(r"postsuper\[\d+\]: ([0-9A-Za-z]+): released from hold",
                                      read_text(self.maillog)))
            self.figure("held culprit messages (by the maillog), released with the key",
                        "%d, %d" % (len(held_msgs), len(released & set(m.queue_id
                                                                     for m in held_msgs))))
            self.check(held_msgs and all(m.queue_id in released for m in held_msgs),
                       "relaywatch release released every held culprit message (postsuper -H)"
                       " (%d)" % len(held_msgs),
                       "not released: %s" % "\n".join(m.describe() for m in held_msgs
                                                       if m.queue_id not in released))
            self.check(not in_hold, "nothing is left in the hold queue", " ".join(in_hold[:20]))
            missing = [m.session for m in held_msgs if m.session not in got]
            self.check(not missing, "every released culprit message reached smtp-sink",
                       " ".join(missing[:20]))
        else:
            leaked = [m.session for m in thr if m.session in got]
            self.check(not leaked, "no refused culprit message reached smtp-sink",
                       " ".join(leaked[:20]))
        if self.named is not None:
            try:
                self.named.wait_log_stable(timeout=budget(10))
            except AssertionError:
                pass
            qs = self.named.queries()
            mx_relay = [q for q in qs if q[1] == "MX" and q[0].endswith(".relaytest.example")]
            self.figure("MX queries named saw for relaytest.example domains (all queries)",
                        "%d (%d)" % (len(mx_relay), len(qs)))
            self.check(len(mx_relay) >= 20, "named saw the daemon's MX burst (>= 20 MX "
                       "queries for the culprit's domains; %d)" % len(mx_relay),
                       "queries by type: %r" % collections.Counter(q[1] for q in qs))
        trouble = [l for l in read_text(self.maillog).splitlines()
                   if POLICY_TROUBLE_RE.search(l)]
        self.check(not trouble, "maillog: no policy service warnings or errors",
                   "\n".join(trouble[-10:]))
        self.check(self.daemon.poll() is None, "relaywatchd still running",
                   "exit status %s%s" % (self.daemon.returncode, tail_text(self.daemon_log, 20)))

    def queue_json(self):
        out = []
        for line in self.queue_listing().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    # -- teardown ------------------------------------------------------------

    def teardown(self, check_daemon_exit):
        self.stop_plain.set()
        self.stop_culprit.set()
        for t in self.threads:
            t.join(20)
        self.stop_processes(check_daemon_exit)
        if self.named is not None:
            self.named.stop()
        if self.redis is not None:
            self.redis.stop()
        ev = self.daemon_events()
        print("# [%s] relaywatchd's loud/quiet/throttle/release lines (%d):"
              % (self.name, len(ev)))
        for l in ev[:40]:
            print("#   " + l)

    def diagnostics(self):
        print_tails(" run %s" % self.name, ((self.maillog, 30), (self.daemon_log, 40)))


def main(argv, run_class=Run, run_names=tuple(RUNS), run_budget=RUN_BUDGET, doc=__doc__):
    """The command line, the runs (each a run_class(args, name, results), run_names
    among RUNS), the figures and the "N passed, M failed" line; fast_e2e.py runs its
    own Run subclass through it."""
    start = now()
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--relaywatchd", metavar="PATH", required=True)
    ap.add_argument("--relaywatch", metavar="PATH", required=True)
    ap.add_argument("--runs", default=",".join(run_names),
                    help="runs, comma separated: %s (default: all)" % ", ".join(run_names))
    ap.add_argument("--daemon-opt", metavar="NAME=VALUE", action="append", default=[],
                    help="extra -o NAME=VALUE for relaywatchd (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs")
    args = ap.parse_args(argv)
    names = [r.strip() for r in args.runs.split(",") if r.strip()]
    if not names or any(r not in run_names for r in names):
        ap.error("--runs takes a comma separated list of %s" % ", ".join(run_names))

    results = Checks()
    for what in ("relaywatchd", "relaywatch"):
        path = os.path.abspath(getattr(args, what))
        setattr(args, what, path)
        if not os.access(path, os.X_OK):
            results.check(False, "%s is executable" % what,
                          "%s does not exist or is not executable (build it first)" % path)
    if results.failed:
        print("0 passed, %d failed" % results.failed)
        return 1

    progs = ["postfix", "postconf", "postqueue", "smtp-sink", "ss", "redis-server", "redis-cli"]
    if any(RUNS[n]["lookups"] for n in names):
        progs += ["named", "rndc", "tsig-keygen", "named-checkconf"]
    if "sasl" in names:
        progs += ["saslpasswd2", "sasldblistusers2"]
    if not ready(progs):
        return SKIP

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runs = []
    for name in names:
        set_budget(run_budget)
        t0 = now()
        r = run_class(args, name, results)
        runs.append(r)
        failed_before = results.failed
        interrupted = execute_run(r)
        print("# run %s took %.1f s" % (name, now() - t0))
        r.run_failed = results.failed > failed_before
        if r.run_failed:
            r.diagnostics()
        if interrupted:
            break
    for r in runs:
        keep_or_remove(r.dir, r.run_failed or args.keep)
    print("# figures:")
    for r in runs:
        for k, v in r.figures.items():
            if k not in ("first throttled message", "list entry"):
                print("#   [%s] %s: %s" % (r.name, k, v))
    return summary(results, start)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

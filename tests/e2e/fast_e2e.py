#!/usr/bin/env python3
"""End-to-end test of the per-key fast path: a real private Postfix, Redis and
a name server, mail sent by real SMTP clients (Python smtplib, one thread per
client), a bot stopped within its first hundred relay recipients while
everyone else's mail is delivered untouched.

    python3 tests/e2e/fast_e2e.py --relaywatchd build/relaywatchd \\
        --relaywatch build/relaywatch [--runs client,sasl] [--keep]
        [--daemon-opt NAME=VALUE]...

The issue's words: "ordinary users, a bulk sender (many messages to one or
two domains), a user who sends one message to 40 recipients in 40 domains, a
mailing-list server with a history of sending to many domains (not on any
never_throttle list), and a bot (an open-relay client in mynetworks sending
messages of 20 recipients in 20 distinct domains, two SMTP sessions at a
time, as fast as it can) (and, in a second run, a SASL-authenticated user
doing the same).  Count escaped recipients: the bot's relay recipients
delivered to smtp-sink before it is stopped.  It must be <= 100; everyone
else's mail is delivered untouched."

Infrastructure (relay_e2e.py's Run, reused): per run a temp dir below /tmp
with a private Postfix (smtpd on 127.0.0.1:free port, chrooted; mynetworks
127.0.0.0/24; in the sasl run Cyrus SASL with a sasldb for alice, bob, carol
and zombie; the hook check_policy_service after permit_mynetworks,
permit_sasl_authenticated, reject_unauth_destination; every domain through
transport_maps = static:smtp:[127.0.0.25]:PORT to smtp-sink, which dumps
every delivery (-d) with its envelope: the escaped recipients are counted
there), a private redis-server (store), a private BIND named on 127.0.0.1
authoritative for `example` with a wildcard MX (the daemon's resolver: each
new relay domain costs the daemon one MX query upstream; never the system
resolver), and relaywatchd with host_id mx-e2e, store_flush_interval 1s and
the fast_* keys at their defaults (fast_window 10s, fast_min_domains 50,
fast_min_mx 50, fast_factor 4).  Postfix's error tarpit is off
(smtpd_error_sleep_time = 0) so that the stopped bot keeps hammering at full
speed instead of being slowed by Postfix.

The host-level detector is kept out of the way with baseline_start = mx=40:
a site with a mailing-list server has a usual MX level well above the cold
start's 2 per 10 m, and without history the detector would go loud 20 s
into phase 2 and name the list server (more than 10 % of the relay domains)
a culprit.  With MX baseline 40 its threshold is 400 MX per 10 m, above what
a run sends (about 220), so every stop in this test comes from the fast path
(and `relaywatch list` must show source "fast").

Roles, each with its own loopback address (127.0.0.0/24 is mynetworks):
  ordinary  127.0.0.11-13: a message every ~0.8 s to 1-2 of three partner
            domains or local.test; in the sasl run also alice and bob,
            SASL users from 127.0.1.5 (outside mynetworks).
  bulk      127.0.0.21: sessions of 4 messages of 10 recipients, all in
            bulk-a.example or bulk-b.example, ~8 messages a second.
  wide      127.0.0.31 (sasl run: SASL user carol from 127.0.1.5): one
            message to 40 recipients in 40 new domains (phase 2 only; no
            history: judged by the site's usual level).
  list      127.0.0.41: a post is 150 recipients in 120 domains
            (list-001..120.example), sent in 5 messages of 30 recipients
            over one session within a second or two.
  bot       127.0.0.66 (sasl run: SASL user zombie from 127.0.1.5, shared
            with alice, bob and carol): two concurrent sessions, each
            sending messages of 20 recipients to 20 fresh random domains
            (bot-XXXXXXXX.example) back to back until the first 4xx on a
            RCPT, then BOT_AFTER_STOP s more (it must stay stopped), BOT_MAX_MESSAGES
            messages at most (at full speed it reaches that in 2-3 s: while
            stopped every message is 20 RCPTs answered 450, and Postfix hangs up
            after 20 errors, so the bot reconnects).  Recipients accepted in a message
            with some deferred are still sent (DATA), as a bot would.

How the list server gets its history (decided in the issue): phase 1 runs the
daemon with never_throttle_clients = 127.0.0.41 while the list server sends
three posts (three seconds apart), the ordinary users and the bulk sender
sending as usual, so that the daemon learns their usual levels (the site's
usual is the median of the keys' levels: the list server alone would make it
120).  The daemon is stopped with SIGTERM (it learns what it saw and flushes
its levels with the detector's baselines to rw:{mx-e2e}:baseline; the test
checks the list server's line is there), then started again on the same
Redis and host_id WITHOUT never_throttle_clients (after it has read the
levels back, which /status shows), and phase 2 runs everyone together: the
ordinary users and the bulk sender throughout, the wide user, the list
server's post (same list, same size) and, while that post is under way, the
bot.

Checks per run: phase 1 mail all accepted, the daemon exits 0, the list
server's level is in the store; phase 2: the bot gets a 4xx on a RCPT,
every bot RCPT sent after that gets a 4xx too, escaped recipients (bot
recipients in smtp-sink's dumps, which must equal what the bot's RCPTs had
accepted) <= 100; every other message (ordinary, bulk, wide, list) accepted
whole (every RCPT 250, DATA 250) and every recipient found in smtp-sink's
dumps; the daemon's log has a "fast: KIND:KEY sent to N new relay domains
in Xs ..." line naming the bot's key and no such line for anyone else;
`relaywatch list --json` names exactly the bot's key, source "fast";
/status has a fast_path object, /metrics relaywatch_fast_stops_total = 1;
no policy warnings in the maillog; the daemon exits 0 on SIGTERM.

Figures ("# figure" lines, summed up at the end): escaped recipients, the
seconds from the bot's first connection to its first 4xx, bot messages and
RCPTs before and after the stop, messages (recipients) of each role
delivered, the fast: line.  Last line "N passed, M failed".  Exit 0 when all
pass, 1 on a failure, 77 when a prerequisite is missing (not root, postfix,
smtp-sink, redis-server, named, saslpasswd2), 2 for a bad command line.  The
temp dir is kept on failure (path printed): maillog, relaywatchd.log (phase 1),
relaywatchd-phase2.log,
status/metrics/list files, messages.tsv (every message and RCPT reply).
Each run takes about 22 s; the whole file about 45 s.
"""

import collections
import json
import os
import random
import re
import smtplib
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from postfix_harness import (  # noqa: E402  (after the path set-up)
    SINK_ADDR, SMTPD_ADDR, SetupError, budget, read_text, remaining, run, stop_pid,
    tail_text)
import dns_servers  # noqa: E402
import relay_e2e  # noqa: E402

RUN_BUDGET = 110.0          # seconds per run (a passing run takes about 40 s)
ESCAPE_LIMIT = 100          # the issue: at most 100 escaped bot recipients
BOT_SESSIONS = 2
BOT_RCPTS = 20
BOT_MAX_MESSAGES = 400
BOT_AFTER_STOP = 3.0        # the bot goes on this long after its first 4xx (or to the cap)
BOT_GIVE_UP = 30.0          # ... or stops by itself after this long unstopped
PHASE1_POSTS = 3
POST_GAP = 3.0              # seconds between the phase-1 posts
LIST_DOMAINS = 120
LIST_RCPTS = 150
LIST_BATCH = 30             # recipients per list message
WIDE_DOMAINS = 40
BULK_BATCH = 4              # messages per bulk session
BULK_RCPTS = 10
ORDINARY_PERIOD = (0.5, 1.1)
DRAIN_LIMIT = 30.0

HOST_ID = relay_e2e.HOST_ID
LOCAL_DOMAIN = relay_e2e.LOCAL_DOMAIN
PARTNERS = relay_e2e.PARTNERS
ORDINARY_CLIENTS = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
BULK_ADDR = "127.0.0.21"
WIDE_ADDR = "127.0.0.31"
LIST_ADDR = "127.0.0.41"
BOT_ADDR = "127.0.0.66"
SASL_ADDR = relay_e2e.SASL_ADDR            # 127.0.1.5, outside mynetworks
SASL_USERS = {"alice": "alice-pw-1", "bob": "bob-pw-2", "carol": "carol-pw-3",
              "zombie": "zombie-pw-4"}
SASL_SENDER_DOMAIN = relay_e2e.SASL_SENDER_DOMAIN
DETECTOR_OUT_OF_THE_WAY = "baseline_start = mx=40"

FAST_STOP_RE = re.compile(r"\bfast: ([a-z_]+):(\S+) sent to (\d+) new relay domains in "
                          r"([0-9.]+) ?s\b.*")
QUEUED_RE = relay_e2e.QUEUED_RE
ADDR_RE = re.compile(r"<([^>]*)>")
POLICY_TROUBLE_RE = relay_e2e.POLICY_TROUBLE_RE

RUNS = ("client", "sasl")


def now():
    return time.monotonic()


# ---------------------------------------------------------------------------
# SMTP clients

class Message:
    """One message: its recipients' RCPT replies (code, text, time sent, time
    answered), the DATA reply, the queue ID."""

    def __init__(self, role, phase, tag, client, sender, rcpts):
        self.role, self.phase, self.tag = role, phase, tag
        self.client, self.sender, self.rcpts = client, sender, list(rcpts)
        self.replies = {}
        self.t0 = None
        self.data_code = None
        self.queue_id = None
        self.error = None

    def rcpt_codes(self):
        return [self.replies[r][0] for r in self.rcpts if r in self.replies]

    def accepted_rcpts(self):
        """The recipients Postfix took responsibility for."""
        if self.data_code != 250:
            return []
        return [r for r in self.rcpts if self.replies.get(r, (None,))[0] == 250]

    @property
    def whole(self):
        """Accepted untouched: every RCPT 250, DATA 250."""
        return (self.error is None and self.data_code == 250
                and len(self.accepted_rcpts()) == len(self.rcpts))

    def describe(self):
        codes = collections.Counter(self.rcpt_codes())
        first_bad = next((self.replies[r] for r in self.rcpts
                          if r in self.replies and self.replies[r][0] != 250), None)
        return ("%s %s %s -> %d rcpts (%s), data %s, queue id %s%s%s"
                % (self.tag, self.client, self.sender, len(self.rcpts),
                   " ".join("%s x%d" % kv for kv in sorted(codes.items(), key=str)),
                   self.data_code, self.queue_id,
                   ", first refusal %s %s" % (first_bad[0], first_bad[1][:70]) if first_bad
                   else "", ", error %s" % self.error if self.error else ""))


class Session:
    """One SMTP session from a given loopback address, optionally with SASL
    AUTH PLAIN; several messages over it; reopened when Postfix drops it."""

    def __init__(self, port, client, helo, login=None):
        self.port, self.client, self.helo, self.login = port, client, helo, login
        self.smtp = None
        self.opened = None      # monotonic time of the first connect

    def open(self):
        if self.opened is None:
            self.opened = now()
        s = smtplib.SMTP(SMTPD_ADDR, self.port, local_hostname=self.helo, timeout=15,
                         source_address=(self.client, 0))
        try:
            s.ehlo(self.helo)
            if self.login:
                s.login(*self.login)
        except (OSError, smtplib.SMTPException):
            s.close()
            raise
        self.smtp = s

    def send(self, msg):
        msg.t0 = now()
        try:
            if self.smtp is None or self.smtp.sock is None:   # new, or dropped after a 421
                self.close()
                self.open()
            s = self.smtp
            code, text = s.mail(msg.sender)
            if code != 250:
                raise smtplib.SMTPResponseException(code, text)
            for r in msg.rcpts:
                t = now()
                code, text = s.rcpt(r)
                msg.replies[r] = (code, text.decode("utf-8", "replace"), t, now())
                if code == 421:          # Postfix hung up (too many errors)
                    raise smtplib.SMTPServerDisconnected("421 %s" % msg.replies[r][1])
            if any(c == 250 for c in msg.rcpt_codes()):
                body = ("From: <%s>\r\nSubject: relaywatch fast e2e %s\r\n"
                        "X-E2E-Session: %s\r\n\r\nfast path e2e test message %s\r\n"
                        % (msg.sender, msg.tag, msg.tag, msg.tag))
                code, text = s.data(body.encode("ascii"))
                msg.data_code = code
                m = QUEUED_RE.search(text.decode("utf-8", "replace"))
                if m:
                    msg.queue_id = m.group(1)
            elif s.rset()[0] == 421:      # Postfix hangs up after smtpd_hard_error_limit
                self.close()
        except (OSError, smtplib.SMTPException) as e:
            msg.error = "%s: %s" % (type(e).__name__, e)
            self.close()
        return msg

    def close(self):
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (OSError, smtplib.SMTPException):
                pass
            try:
                self.smtp.close()
            except OSError:
                pass
        self.smtp = None


# ---------------------------------------------------------------------------
# One run: phase 1 (learning), restart, phase 2 (everyone, the bot)

class FastRun(relay_e2e.Run):
    """relay_e2e's Run (Postfix, smtp-sink, Redis, named, relaywatchd) with this
    test's zones, users, daemon configuration and traffic."""

    def __init__(self, args, name, results):
        relay_e2e.Run.__init__(self, args, name, results)
        self.prefix = "relaywatch-fast-%s-" % name
        self.phase = 0
        self.rnd = random.Random("fast-e2e-%s" % name)
        self.stop_background = threading.Event()
        self.bot_stop = threading.Event()
        self.phase_logs = {}
        self.first_4xx = None           # (time, message tag, reply text)
        self.bot_messages = 0
        self.bot_first_connect = None

    # -- identities ------------------------------------------------------------

    def bot_member(self):
        return ("sasl_username", "zombie") if self.sasl else ("client_address", BOT_ADDR)

    def bot_client(self):
        if self.sasl:
            return SASL_ADDR, ("zombie", SASL_USERS["zombie"]), "zombie@" + SASL_SENDER_DOMAIN
        return BOT_ADDR, None, "offers@cheap-deals.example"

    def wide_client(self):
        if self.sasl:
            return SASL_ADDR, ("carol", SASL_USERS["carol"]), "carol@" + SASL_SENDER_DOMAIN
        return WIDE_ADDR, None, "pat@wide-user.example"

    def ordinary_clients(self):
        out = [(addr, None, "user%d@o%d.example" % (i, i))
               for i, addr in enumerate(ORDINARY_CLIENTS, 1)]
        if self.sasl:
            out += [(SASL_ADDR, (u, SASL_USERS[u]), "%s@%s" % (u, SASL_SENDER_DOMAIN))
                    for u in ("alice", "bob")]
        return out

    # -- set-up (relay_e2e.Run.setup calls these) -------------------------------

    def zones(self):
        z = dns_servers.Zone("example", ttl=300, negative_ttl=60)
        z.mx("*", "mx.sink.example.")      # every test domain, however many
        z.a("mx.sink", SINK_ADDR)
        return {"example": z}

    def setup_sasl(self, users=None):
        relay_e2e.Run.setup_sasl(self, users or SASL_USERS)

    def write_postfix(self):
        relay_e2e.Run.write_postfix(self)
        # No tarpit: the stopped bot keeps sending at full speed.
        run(["postconf", "-c", self.conf, "-e", "smtpd_error_sleep_time = 0"], timeout=10)

    def write_daemon_conf(self):
        self.daemon_conf = os.path.join(self.dir, "relaywatch.conf")
        lines = self.daemon_conf_lines() + [DETECTOR_OUT_OF_THE_WAY]
        if self.phase == 1:
            lines.append("never_throttle_clients = %s" % LIST_ADDR)
        with open(self.daemon_conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def setup(self):
        self.phase = 1
        relay_e2e.Run.setup(self)
        self.phase_logs = {1: self.daemon_log}

    # -- traffic ---------------------------------------------------------------

    def tag(self, role):
        with self.lock:
            self.seq += 1
            return "%s-p%d-%s-%05d" % (self.name, self.phase, role, self.seq)

    def message(self, role, client, sender, rcpts):
        m = Message(role, self.phase, self.tag(role), client, sender, rcpts)
        with self.lock:
            self.msgs.append(m)
        return m

    def ordinary_loop(self, idx, client, login, sender):
        rnd = random.Random("ordinary-%s-%d-%d" % (self.name, self.phase, idx))
        n = 0
        while not self.stop_background.is_set() and remaining() > 25:
            n += 1
            rcpts = ["friend%d@%s" % (idx, PARTNERS[(n + idx) % len(PARTNERS)])]
            if n % 3 == 0:
                rcpts.append("colleague%d@%s" % (idx, LOCAL_DOMAIN))
            elif n % 3 == 1:
                rcpts.append("other%d@%s" % (idx, PARTNERS[(n + idx + 1) % len(PARTNERS)]))
            sess = Session(self.smtpd_port, client, "ordinary%d.client.test" % idx, login)
            sess.send(self.message("ordinary", client, sender, rcpts))
            sess.close()
            self.stop_background.wait(rnd.uniform(*ORDINARY_PERIOD))

    def bulk_loop(self):
        n = 0
        while not self.stop_background.is_set() and remaining() > 25:
            sess = Session(self.smtpd_port, BULK_ADDR, "bulk.client.test")
            for _ in range(BULK_BATCH):
                n += 1
                domain = "bulk-a.example" if n % 3 else "bulk-b.example"
                rcpts = ["reader%d@%s" % (n * BULK_RCPTS + i, domain) for i in range(BULK_RCPTS)]
                sess.send(self.message("bulk", BULK_ADDR, "news@bulk-sender.example", rcpts))
            sess.close()
            self.stop_background.wait(0.5)

    def list_post(self):
        """One post: 150 recipients in the same 120 domains every time, 5 messages
        over one session."""
        rcpts = ["member%03d@list-%03d.example" % (i, i % LIST_DOMAINS + 1)
                 for i in range(LIST_RCPTS)]
        sess = Session(self.smtpd_port, LIST_ADDR, "lists.client.test")
        for i in range(0, LIST_RCPTS, LIST_BATCH):
            sess.send(self.message("list", LIST_ADDR, "announce-bounces@lists.example",
                                   rcpts[i:i + LIST_BATCH]))
        sess.close()

    def wide_message(self):
        client, login, sender = self.wide_client()
        rcpts = ["contact@wide-%02d.example" % i for i in range(1, WIDE_DOMAINS + 1)]
        sess = Session(self.smtpd_port, client, "wide.client.test", login)
        sess.send(self.message("wide", client, sender, rcpts))
        sess.close()

    def bot_loop(self, idx):
        client, login, sender = self.bot_client()
        sess = Session(self.smtpd_port, client, "bot%d.client.test" % idx, login)
        with self.lock:
            rnd = random.Random(self.rnd.random())
        t_start = now()
        while not self.bot_stop.is_set() and remaining() > 25:
            with self.lock:
                if self.bot_messages >= BOT_MAX_MESSAGES:
                    break
                self.bot_messages += 1
            rcpts = ["x%d@bot-%08x.example" % (i, rnd.getrandbits(32))
                     for i in range(BOT_RCPTS)]
            m = sess.send(self.message("bot", client, sender, rcpts))
            with self.lock:
                if self.bot_first_connect is None or (sess.opened is not None
                                                      and sess.opened < self.bot_first_connect):
                    self.bot_first_connect = sess.opened
                for r in m.rcpts:
                    rep = m.replies.get(r)
                    if rep and rep[0] // 100 == 4 and (self.first_4xx is None
                                                       or rep[3] < self.first_4xx[0]):
                        self.first_4xx = (rep[3], m.tag, "%d %s" % (rep[0], rep[1]))
                stopped_at = self.first_4xx[0] if self.first_4xx else None
            if stopped_at is not None and now() - stopped_at >= BOT_AFTER_STOP:
                break
            if stopped_at is None and now() - t_start >= BOT_GIVE_UP:
                break
        sess.close()

    def start_thread(self, fn, *a):
        return relay_e2e.Run.start_thread(self, fn, *a)

    def background(self):
        """The ordinary users and the bulk sender, until stop_background."""
        self.stop_background.clear()
        self.threads = []
        for i, (addr, login, sender) in enumerate(self.ordinary_clients(), 1):
            self.start_thread(self.ordinary_loop, i, addr, login, sender)
        self.start_thread(self.bulk_loop)

    def join_all(self, timeout=25):
        deadline = now() + budget(timeout)
        for t in self.threads:
            t.join(max(0.1, deadline - now()))
        alive = [t for t in self.threads if t.is_alive()]
        if alive:
            raise SetupError("%d client threads still running after %.0f s"
                             % (len(alive), timeout))

    # -- the daemon ------------------------------------------------------------

    def start_phase_daemon(self):
        self.daemon_log = os.path.join(self.dir, "relaywatchd-phase%d.log" % self.phase)
        self.phase_logs[self.phase] = self.daemon_log
        self.write_daemon_conf()
        self.start_daemon()

    def http_get(self, path, label):
        return self.get_page(path, "%s-p%d.txt" % (label, self.phase))[1]

    def fast_status(self):
        try:
            host = json.loads(self.http_get("/status", "status"))["hosts"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            return None, None
        return host.get("fast_path"), host

    def wait_levels_read(self):
        """After a restart: until the daemon has read the stored levels back
        (/status fast_path shows keys with history), at most 10 s."""
        deadline = now() + budget(10)
        fp = None
        while now() < deadline:
            fp, _ = self.fast_status()
            if isinstance(fp, dict) and (fp.get("keys_with_history") or 0) > 0:
                return fp
            time.sleep(0.1)
        return fp

    def stored_levels(self):
        text = self.redis.cli("get", "rw:{%s}:baseline" % HOST_ID)
        return [l.strip() for l in text.splitlines() if l.strip().startswith("fast ")]

    def stop_daemon(self):
        status = stop_pid(self.daemon, "relaywatchd")
        self.daemon = None
        return status

    def fast_lines(self, phase=None):
        path = self.phase_logs.get(phase or self.phase)
        return [l for l in read_text(path).splitlines() if re.search(r"\bfast\b", l)]

    # -- the run ---------------------------------------------------------------

    def execute(self):
        self.setup()     # phase 1's daemon (never_throttle_clients = the list server)
        self.phase1()
        self.phase = 2
        self.start_phase_daemon()
        self.renew_smtpd()
        self.phase2()

    def renew_smtpd(self):
        """postfix reload, and wait until phase 1's smtpd processes are gone.  Each
        kept its policy connection to the stopped daemon; with the harness's
        smtpd_policy_service_try_limit = 1 Postfix does not reconnect, so every
        request of such a process's next session would fail (maillog: "problem
        talking to server") and get default_action=DUNNO: unchecked traffic."""
        old = set(int(p) for p in re.findall(r"postfix/smtpd\[(\d+)\]",
                                             read_text(self.maillog)))
        run(["postfix", "-c", self.conf, "reload"], timeout=15)
        deadline = now() + budget(10)
        alive = old
        while now() < deadline:
            alive = [p for p in old if read_text("/proc/%d/comm" % p).strip() == "smtpd"]
            if not alive:
                return
            time.sleep(0.1)
        raise SetupError("phase 1's smtpd processes %s still running 10 s after postfix "
                         "reload" % alive)

    def phase1(self):
        t0 = now()
        self.background()
        for i in range(PHASE1_POSTS):
            self.stop_background.wait(1.0 if i == 0 else POST_GAP)
            self.list_post()
        self.stop_background.wait(1.0)
        self.stop_background.set()
        self.join_all()
        fp, _ = self.fast_status()
        print("# [%s] phase 1 /status fast_path: %s" % (self.name, json.dumps(fp)))
        mine = [m for m in self.msgs if m.phase == 1]
        bad = [m.describe() for m in mine if not m.whole]
        if not self.check(mine and not bad, "phase 1: every message accepted whole (%d: %s)"
                          % (len(mine), self.role_counts(mine)), "\n".join(bad[:10])):
            raise SetupError("mail does not flow in phase 1:\n%s%s"
                             % ("\n".join(bad[:5]), tail_text(self.maillog, 20)))
        status = self.stop_daemon()
        self.check(status == 0, "phase 1: relaywatchd exits 0 on SIGTERM",
                   "exit status %s%s" % (status, tail_text(self.daemon_log, 10)))
        levels = self.stored_levels()
        for l in levels:
            print("# [%s] stored level: %s" % (self.name, l))
        list_level = [l for l in levels if l.endswith(" client_address:%s" % LIST_ADDR)]
        try:
            list_domains = float(list_level[0].split()[1]) if list_level else 0.0
        except (IndexError, ValueError):
            list_domains = 0.0
        self.figure("phase 1: the list server's stored level (distinct domains per window)",
                    "%g" % list_domains)
        self.check(list_domains >= LIST_DOMAINS * 0.9,
                   "phase 1: the list server's level (>= %d domains) saved in "
                   "rw:{%s}:baseline" % (LIST_DOMAINS * 0.9, HOST_ID),
                   "fast lines stored: %s\nrw:{%s}:baseline: %s\ndaemon's fast lines:\n%s"
                   % (levels, HOST_ID,
                      self.redis.cli("get", "rw:{%s}:baseline" % HOST_ID)[:1500],
                      "\n".join(self.fast_lines(1)[-10:])))
        self.figure("phase 1 took (s)", "%.1f" % (now() - t0))

    def phase2(self):
        fp = self.wait_levels_read()
        self.check(isinstance(fp, dict) and (fp.get("keys_with_history") or 0) >= 5,
                   "phase 2: the restarted daemon read the levels back (/status fast_path "
                   "keys_with_history >= 5)", "fast_path: %s" % json.dumps(fp))
        print("# [%s] phase 2 start /status fast_path: %s" % (self.name, json.dumps(fp)))
        t0 = now()
        self.background()
        time.sleep(1.0)
        wide = self.start_thread(self.wide_message)
        time.sleep(0.5)
        post = self.start_thread(self.list_post)
        time.sleep(0.3)
        bots = [self.start_thread(self.bot_loop, i) for i in range(BOT_SESSIONS)]
        for t in bots:
            t.join(budget(BOT_GIVE_UP + BOT_AFTER_STOP + 20))
        self.bot_stop.set()
        wide.join(budget(20))
        post.join(budget(20))
        time.sleep(1.0)
        self.stop_background.set()
        self.join_all()
        self.figure("phase 2 traffic took (s)", "%.1f" % (now() - t0))
        self.judge_bot()
        self.judge_daemon()
        self.judge_delivery()

    # -- checks ----------------------------------------------------------------

    @staticmethod
    def role_counts(msgs):
        c = collections.Counter(m.role for m in msgs)
        return ", ".join("%s %d" % kv for kv in sorted(c.items()))

    def bot_msgs(self):
        return [m for m in self.msgs if m.phase == 2 and m.role == "bot"]

    def judge_bot(self):
        bot = self.bot_msgs()
        kind, key = self.bot_member()
        rcpts = [(m, r, m.replies[r]) for m in bot for r in m.rcpts if r in m.replies]
        if self.first_4xx is None:
            self.check(False, "the bot (%s:%s) gets a 4xx on a RCPT" % (kind, key),
                       "%d messages, %d RCPTs, none answered 4xx; last: %s\nfast lines:\n%s"
                       % (len(bot), len(rcpts), bot[-1].describe() if bot else "-",
                          "\n".join(self.fast_lines()[-10:])))
            return
        t_stop, tag, text = self.first_4xx
        took = t_stop - self.bot_first_connect
        before = [x for x in rcpts if x[2][3] <= t_stop]
        before_msgs = set(m.tag for m, _, _ in before)
        after = [x for x in rcpts if x[2][2] > t_stop]
        after_msgs = set(m.tag for m, _, _ in after)
        after_span = max([x[2][3] for x in after] or [t_stop]) - t_stop
        self.figure("seconds from the bot's first connection to its first 4xx", "%.3f" % took)
        self.figure("first 4xx", "%s: %s" % (tag, text))
        self.figure("bot until its first 4xx: messages begun, RCPTs answered 250",
                    "%d, %d" % (len(before_msgs), sum(1 for x in before if x[2][0] == 250)))
        self.figure("bot after its first 4xx: messages, RCPTs (all 4xx), seconds, messages/s",
                    "%d, %d, %.1f, %.0f" % (len(after_msgs), len(after), after_span,
                                            len(after_msgs) / after_span if after_span else 0))
        self.check(text.startswith("4"), "the bot (%s:%s) gets a 4xx on a RCPT (%.3f s after "
                   "its first connection)" % (kind, key, took), text)
        not_4xx = [(m.tag, r, c) for m, r, (c, _, _, _) in after if c // 100 != 4]
        self.check(len(after) >= BOT_RCPTS and not not_4xx,
                   "the bot stays stopped: every RCPT it sent after the first 4xx got a 4xx "
                   "(%d RCPTs in %d messages over %.1f s)"
                   % (len(after), len(after_msgs), after_span),
                   "not 4xx: %s" % not_4xx[:10])

    def judge_daemon(self):
        kind, key = self.bot_member()
        lines = self.fast_lines()
        stops = [(l, FAST_STOP_RE.search(l)) for l in lines]
        stops = [(l, m) for l, m in stops if m]
        for l in lines[:20]:
            print("# [%s] daemon: %s" % (self.name, l))
        bot_lines = [(l, m) for l, m in stops if (m.group(1), m.group(2)) == (kind, key)]
        if bot_lines:
            self.figure("fast: line", bot_lines[0][0][bot_lines[0][0].find("fast:"):])
        self.check(bot_lines and int(bot_lines[0][1].group(3)) > 50,
                   "the daemon's log explains the stop: \"fast: %s:%s sent to N new relay "
                   "domains in Xs ...\" with N > fast_min_domains (50)" % (kind, key),
                   "fast lines:\n%s" % "\n".join(lines[-15:]))
        others = [l for l, m in stops if (m.group(1), m.group(2)) != (kind, key)]
        self.check(not others, "no fast: stop line for anyone but the bot",
                   "\n".join(others[:10]))
        cp, doc = self.list_json("phase2")
        entries = doc.get("throttled") if isinstance(doc, dict) else None
        entries = [e for e in (entries or []) if isinstance(e, dict)]
        print("# [%s] relaywatch list --json: %s" % (self.name, json.dumps(entries)[:1500]))
        names = sorted("%s:%s" % (e.get("kind"), e.get("key")) for e in entries)
        self.check(cp.returncode == 0 and names == ["%s:%s" % (kind, key)],
                   "relaywatch list --json names exactly the bot's key %s:%s" % (kind, key),
                   "exit %d, keys %s\n%s" % (cp.returncode, names, cp.stderr[:500]))
        mine = [e for e in entries if (e.get("kind"), e.get("key")) == (kind, key)]
        if mine:
            self.check(mine[0].get("source") == "fast"
                       and str(mine[0].get("action", "")).upper().startswith("DEFER"),
                       "its entry has source \"fast\" and the DEFER culprit_action",
                       json.dumps(mine[0]))
        fp, host = self.fast_status()
        self.check(isinstance(fp, dict), "/status has a fast_path object",
                   json.dumps(host)[:1500] if host else "no /status")
        print("# [%s] /status fast_path: %s; detector state %s"
              % (self.name, json.dumps(fp), (host or {}).get("state")))
        metrics = self.http_get("/metrics", "metrics")
        m = re.search(r"^relaywatch_fast_stops_total(?:\{[^}]*\})? ([0-9.e+]+)$", metrics,
                      re.M)
        stops_total = float(m.group(1)) if m else None
        self.figure("relaywatch_fast_stops_total", stops_total)
        self.check(stops_total == 1, "/metrics relaywatch_fast_stops_total is 1 (the bot)",
                   "\n".join(l for l in metrics.splitlines() if "fast" in l)[:1500])

    def sink_rcpts(self):
        """{session tag: set of recipients} from smtp-sink's dumps."""
        out = collections.defaultdict(set)
        for d in self.sink_messages():
            for arg in d["rcpts"]:
                a = ADDR_RE.search(arg)
                out[d["session"]].add(a.group(1) if a else arg.split(":", 1)[-1].strip())
        return out

    def judge_delivery(self):
        # Messages of the bot still in DATA when it was stopped are held as they are queued
        # (the quarantine's HOLD at END-OF-MESSAGE): accepted, never delivered.
        on_hold = {e["queue_id"] for e in self.queue_json() if e.get("queue_name") == "hold"}
        held = [m for m in self.msgs if m.queue_id in on_hold]
        want = {m.tag: set(m.accepted_rcpts()) for m in self.msgs
                if m.accepted_rcpts() and m.queue_id not in on_hold}
        deadline = now() + budget(DRAIN_LIMIT)
        got = {}
        while now() < deadline:
            got = self.sink_rcpts()
            if all(want[t] <= got.get(t, set()) for t in want):
                break
            time.sleep(0.3)
        self.write_messages()
        bot = self.bot_msgs()
        escaped = sorted(r for m in bot for r in got.get(m.tag, ()))
        accepted = sorted(r for m in bot for r in m.accepted_rcpts() if m not in held)
        held_rcpts = sum(len(m.accepted_rcpts()) for m in held)
        self.figure("ESCAPED bot recipients (delivered to smtp-sink)", len(escaped))
        self.figure("bot recipients accepted and held (in DATA at the stop: HOLD as queued)",
                    "%d in %d messages" % (held_rcpts, len(held)))
        self.results_escaped = len(escaped)
        self.check(all(m.role == "bot" for m in held), "only bot messages are on hold",
                   "\n".join(m.describe() for m in held if m.role != "bot"))
        self.check(escaped == accepted, "smtp-sink got exactly the bot recipients Postfix "
                   "accepted and did not hold (%d)" % len(accepted),
                   "accepted %d, in the sink %d; missing %s" % (
                       len(accepted), len(escaped), sorted(set(accepted) - set(escaped))[:10]))
        self.check(len(escaped) <= ESCAPE_LIMIT, "escaped bot recipients <= %d (%d)"
                   % (ESCAPE_LIMIT, len(escaped)))
        for role in ("ordinary", "bulk", "wide", "list"):
            msgs = [m for m in self.msgs if m.phase == 2 and m.role == role]
            bad = [m.describe() for m in msgs if not m.whole]
            missing = ["%s: %s" % (m.tag, sorted(set(m.rcpts) - got.get(m.tag, set()))[:5])
                       for m in msgs if not set(m.rcpts) <= got.get(m.tag, set())]
            delivered = sum(1 for m in msgs if set(m.rcpts) <= got.get(m.tag, set()))
            self.figure("%s messages delivered whole (recipients)" % role, "%d of %d (%d)" % (
                delivered, len(msgs), sum(len(m.rcpts) for m in msgs)))
            self.check(msgs and not bad and not missing,
                       "%s: every message accepted whole and every recipient in smtp-sink "
                       "(%d messages)" % (role, len(msgs)),
                       "not accepted whole:\n%s\nnot (all) in the sink:\n%s\nqueue: %s"
                       % ("\n".join(bad[:8]), "\n".join(missing[:8]),
                          self.queue_listing()[:1500]))
        trouble = [l for l in read_text(self.maillog).splitlines()
                   if POLICY_TROUBLE_RE.search(l)]
        self.check(not trouble, "maillog: no policy service warnings or errors",
                   "\n".join(trouble[-10:]))

    def write_messages(self):
        with open(os.path.join(self.dir, "messages.tsv"), "w") as f:
            f.write("tag\tphase\trole\tclient\tsender\trcpt\tsent\tanswered\trcpt_reply\t"
                    "data\tqueue_id\terror\n")
            t0 = self.bot_first_connect or 0.0
            for m in self.msgs:
                for r in m.rcpts:
                    rep = m.replies.get(r)
                    f.write("\t".join(str(x) for x in (
                        m.tag, m.phase, m.role, m.client, m.sender, r,
                        "%.4f" % (rep[2] - t0) if rep else "-",
                        "%.4f" % (rep[3] - t0) if rep else "-",
                        "%d %s" % rep[:2] if rep else "-", m.data_code, m.queue_id,
                        m.error or "")) + "\n")

    def teardown(self, check_daemon_exit):
        self.stop_background.set()
        self.bot_stop.set()
        relay_e2e.Run.teardown(self, check_daemon_exit)


def main(argv):
    return relay_e2e.main(argv, FastRun, RUNS, RUN_BUDGET, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

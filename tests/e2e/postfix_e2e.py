#!/usr/bin/env python3
"""End-to-end test: a real, private Postfix instance drives relaywatchd.

    python3 tests/e2e/postfix_e2e.py --relaywatchd build/relaywatchd [--keep]
    python3 tests/e2e/postfix_e2e.py --fake-daemon      # harness self-test

What it does (Python 3 standard library only, must run as root):

  1. Builds a throw-away Postfix instance below /tmp: its own config, queue
     and data directories, maillog_file in the temp dir, smtpd on a free
     port of 127.0.0.1, mynetworks 127.0.0.1/32, relay_domains relay.test
     and other.test; those and remote.test are routed to smtp-sink on
     127.0.0.25:<free port>.  smtpd and smtp stay chrooted, as in Debian's
     master.cf.
  2. Starts relaywatchd on a free loopback port with log_requests=yes and
     hooks it into Postfix as postfix-conf/main.cf.snippet does: relay
     permission in smtpd_relay_restrictions (which Postfix evaluates first),
     check_policy_service in smtpd_recipient_restrictions, plus the optional
     hooks in smtpd_client_restrictions (smtpd_delay_reject = no) and
     smtpd_end_of_data_restrictions.
  3. Sends five SMTP sessions with swaks: one recipient; two recipients in
     two domains; one from the local interface 127.0.2.1; outbound mail to
     remote.test from a trusted client (mynetworks); one from outside
     mynetworks whose only recipient is refused as relaying.  Then waits
     until the queue is empty and smtp-sink holds every message.
  4. Compares the numbers computed from what was sent with what relaywatchd
     logged (CONNECT, RCPT and END-OF-MESSAGE requests), with the maillog
     (connect from, status=sent, the relay reject, no policy-service
     warnings) and with smtp-sink's dumps (-d).

Every check prints "ok" or "not ok"; the last line is "N passed, M failed".
Exit status: 0 when all checks pass, 1 when a check fails or the harness
cannot be set up, 77 when a prerequisite is missing (not root, no postfix or
swaks), 2 for a bad command line.  On failure the tails of the maillog and of
the daemon's log are printed and the temp dir is kept (its path is printed);
--keep keeps it in every case.

DNS: this test needs none, and makes sure nothing asks a real resolver: no
peer-name lookups, a numeric next hop, smtp_dns_support_level = disabled and
a chroot resolv.conf that names an unused loopback address (the DNS note at
the top of postfix_harness.py says how).
  (The study's full topology with unbound/BIND is documented in
  ../shared/notes/real-servers.md; it is not needed to test the hook.)

The Postfix instance, the helpers and the request-log parser live in
postfix_harness.py (shared with counting_e2e.py).

Internal mode: "--serve-fake-daemon HOST:PORT" runs the tiny policy server
used by --fake-daemon (answers action=DUNNO, logs relaywatchd's line format).
"""

import argparse
import collections
import os
import re
import signal
import socketserver
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postfix_harness import (  # noqa: E402  (after the path set-up)
    DAEMON_ADDR, SINK_ADDR, SKIP, SMTPD_ADDR, PostfixInstance, SetupError, budget,
    daemon_requests, executable_relaywatchd, execute_run, free_port, keep_or_remove,
    on_signal, print_tails, read_text, ready, set_budget, summary)

OVERALL_BUDGET = 60.0       # seconds for the whole run, cleanup excluded

RELAY_DOMAINS = ("relay.test", "other.test")   # inbound: we relay for them
REMOTE_DOMAINS = ("remote.test",)              # outbound: only for mynetworks
MYNETWORKS = ("127.0.0.1",)

# What is sent.  "rcpts" are the RCPT TO addresses in order.  Relay
# permission is decided by smtpd_relay_restrictions (permit_mynetworks,
# permit_sasl_authenticated, reject_unauth_destination) before the hook in
# smtpd_recipient_restrictions runs: a recipient outside RELAY_DOMAINS from
# a client outside mynetworks is refused there and relaywatchd must not see
# it; outbound mail from a trusted client (mynetworks) must reach the hook.
SESSIONS = [
    {"name": "one-rcpt", "iface": "127.0.0.1", "helo": "client-one.test",
     "sender": "alice@sender.test", "rcpts": ["bob@relay.test"]},
    {"name": "two-domains", "iface": "127.0.0.1", "helo": "client-two.test",
     "sender": "carol@sender.test",
     "rcpts": ["dave@relay.test", "erin@other.test"]},
    {"name": "other-iface", "iface": "127.0.2.1", "helo": "client-three.test",
     "sender": "frank@elsewhere.test", "rcpts": ["grace@other.test"]},
    {"name": "outbound-trusted", "iface": "127.0.0.1", "helo": "client-four.test",
     "sender": "heidi@sender.test", "rcpts": ["ivan@remote.test"]},
    {"name": "relay-denied", "iface": "127.0.3.1", "helo": "client-five.test",
     "sender": "mallory@sender.test", "rcpts": ["victim@nowhere.test"]},
]


def rcpt_accepted(sess, rcpt):
    domain = rcpt.rsplit("@", 1)[1]
    return domain in RELAY_DOMAINS or (sess["iface"] in MYNETWORKS
                                       and domain in REMOTE_DOMAINS)


def accepted_rcpts(sess):
    return [r for r in sess["rcpts"] if rcpt_accepted(sess, r)]


def refused_rcpts(sess):
    return [r for r in sess["rcpts"] if not rcpt_accepted(sess, r)]


# ---------------------------------------------------------------------------
# Helpers, the request-log parser and the Postfix instance: postfix_harness.py

START = time.monotonic()


# ---------------------------------------------------------------------------
# --fake-daemon: a minimal policy server with relaywatchd's log format

class FakePolicyHandler(socketserver.StreamRequestHandler):
    def handle(self):
        peer = "%s:%d" % self.client_address[:2]
        attrs = {}
        while True:
            line = self.rfile.readline(8192 + 64)
            if not line:
                return
            line = line.decode("utf-8", "replace").rstrip("\n")
            if line:
                if "=" not in line:
                    sys.stderr.write("relaywatchd[%d]: warning: %s: bad line, "
                                     "closing\n" % (os.getpid(), peer))
                    sys.stderr.flush()
                    return
                name, value = line.split("=", 1)
                attrs.setdefault(name, value)
                continue
            self.wfile.write(b"action=DUNNO\n\n")
            self.wfile.flush()
            client = attrs.get("client_address", "")
            if attrs.get("client_port"):
                client += ":" + attrs["client_port"]
            sys.stderr.write(
                "relaywatchd[%d]: info: request peer=%s state=%s client=%s "
                "helo=<%s> sender=<%s> recipient=<%s> recipient_count=%s "
                "sasl_username=<%s> queue_id=<%s> instance=<%s> action=DUNNO\n"
                % (os.getpid(), peer, attrs.get("protocol_state", ""), client,
                   attrs.get("helo_name", ""), attrs.get("sender", ""),
                   attrs.get("recipient", ""), attrs.get("recipient_count", "0"),
                   attrs.get("sasl_username", ""), attrs.get("queue_id", ""),
                   attrs.get("instance", "")))
            sys.stderr.flush()
            attrs = {}


class FakePolicyServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve_fake_daemon(spec):
    host, port = spec.rsplit(":", 1)
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(0))
    srv = FakePolicyServer((host, int(port)), FakePolicyHandler)
    sys.stderr.write("relaywatchd[%d]: info: fake policy server on %s\n"
                     % (os.getpid(), spec))
    sys.stderr.flush()
    try:
        srv.serve_forever()
    finally:
        srv.server_close()
    return 0


# ---------------------------------------------------------------------------
# The harness

class Harness(PostfixInstance):
    def __init__(self, args):
        PostfixInstance.__init__(self, prefix="relaywatch-e2e-")
        self.args = args
        self.daemon_log = None
        self.daemon = None
        self.daemon_exit = "not stopped"
        self.swaks_results = []

    # -- setup --------------------------------------------------------------

    def make_dirs(self):
        PostfixInstance.make_dirs(self)
        self.daemon_log = os.path.join(self.dir, "relaywatchd.log")

    def write_postfix_config(self):
        hook = self.policy_hook(self.daemon_port)
        specific = """\
mynetworks = {mynetworks}
relay_domains = {relay_domains}

# The hook under test (same shape as postfix-conf/main.cf.snippet).
smtpd_delay_reject = no
smtpd_policy_service_try_limit = 1
smtpd_client_restrictions = {hook}
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated,
    reject_unauth_destination
smtpd_recipient_restrictions = {hook}
smtpd_end_of_data_restrictions = {hook}
""".format(relay_domains=", ".join(RELAY_DOMAINS),
           mynetworks=", ".join(a + "/32" for a in MYNETWORKS), hook=hook)
        self.write_config("postfix_e2e.py", RELAY_DOMAINS + REMOTE_DOMAINS, specific)

    def daemon_cmd(self, extra):
        if self.args.fake_daemon:
            return [sys.executable, os.path.abspath(__file__),
                    "--serve-fake-daemon", "%s:%d" % (DAEMON_ADDR, self.daemon_port)]
        return ([self.args.relaywatchd, "-e",
                 "-o", "listen=inet:%s:%d" % (DAEMON_ADDR, self.daemon_port),
                 "-o", "log_requests=yes",
                 "-o", "postfix_config_directory=%s" % self.conf,
                 # Like the Postfix instance, no lookups that could leave loopback.
                 "-o", "dns_lookups="] + extra)

    def start_daemon(self):
        # http_listen= turns the daemon's HTTP port off: its default
        # (127.0.0.1:10041) is a fixed port that another daemon on this
        # machine may hold.  An early daemon that does not know the key
        # yet rejects it with status 2; then retry without it.
        optional = ["-o", "http_listen="]
        extra = []
        for o in self.args.daemon_opt:
            extra += ["-o", o]
        for attempt in (optional + extra, extra):
            try:
                self.start_relaywatchd(self.daemon_cmd(attempt))
                return
            except SetupError:
                if attempt is not extra and self.rejected_option("http_listen"):
                    print("# relaywatchd rejected http_listen=; retrying without it")
                    continue
                raise

    def setup(self):
        self.make_dirs()
        self.pick_ports()
        self.daemon_port = free_port(DAEMON_ADDR)
        self.write_postfix_config()
        print("# temp dir %s; smtpd %s:%d, relaywatchd %s:%d, smtp-sink %s:%d; "
              "master.cf from %s" % (self.dir, SMTPD_ADDR, self.smtpd_port,
                                     DAEMON_ADDR, self.daemon_port, SINK_ADDR,
                                     self.sink_port, self.master_cf_source))
        self.start_sink()
        self.start_daemon()
        self.start_postfix()

    # -- traffic ------------------------------------------------------------

    def send(self):
        for i, s in enumerate(SESSIONS):
            cmd = ["swaks", "--server", SMTPD_ADDR, "--port", str(self.smtpd_port),
                   "--local-interface", s["iface"], "--ehlo", s["helo"],
                   "--from", s["sender"], "--to", ",".join(s["rcpts"]),
                   "--header", "Subject: relaywatch e2e %s" % s["name"],
                   "--header", "X-E2E-Session: %s" % s["name"],
                   "--timeout", "15"]
            try:
                cp = subprocess.run(cmd, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT,
                                    universal_newlines=True, timeout=budget(20))
                status, output = cp.returncode, cp.stdout
            except subprocess.TimeoutExpired as e:
                status, output = "timeout", (e.output or "")
            with open(os.path.join(self.dir, "swaks-%d-%s.log" % (i + 1, s["name"])),
                      "w") as f:
                f.write("$ %s\n%s" % (" ".join(cmd), output))
            want = 0 if accepted_rcpts(s) else 24   # 24: no RCPT accepted
            self.swaks_results.append((s, status, output))
            self.check(status == want,
                       "swaks session %s exits %d" % (s["name"], want),
                       "exit status %s\n%s" % (status, output[-3000:]))

    def wait_delivery(self):
        n_msgs = sum(1 for s in SESSIONS if accepted_rcpts(s))
        n_rcpts = sum(len(accepted_rcpts(s)) for s in SESSIONS)
        deadline = time.monotonic() + budget(30)
        while time.monotonic() < deadline:
            if (len(self.sent_lines()) >= n_rcpts
                    and len(self.sink_messages()) >= n_msgs
                    and self.queue_listing() == ""):
                break
            time.sleep(0.2)
        # The daemon logs after it answers: give the last line a moment.
        n_req = sum(1 + len(accepted_rcpts(s)) + (1 if accepted_rcpts(s) else 0)
                    for s in SESSIONS)
        deadline = time.monotonic() + budget(5)
        while (time.monotonic() < deadline
               and len(daemon_requests(self.daemon_log)) < n_req):
            time.sleep(0.1)
        time.sleep(0.3)   # catch extra, unexpected lines too

    # -- assertions ---------------------------------------------------------

    def assert_results(self):
        queue = self.queue_listing()
        self.check(queue == "", "mail queue is empty", "postqueue -j:\n" + queue)

        maillog = read_text(self.maillog)
        n_sessions = len(SESSIONS)
        connects = re.findall(r"/smtpd\[\d+\]: connect from ", maillog)
        self.check_equal(len(connects), n_sessions, "maillog: one 'connect from' per session")

        want_sent = sorted(r for s in SESSIONS for r in accepted_rcpts(s))
        self.check_equal(sorted(self.sent_lines()), want_sent,
                         "maillog: status=sent once per accepted recipient")

        for s in SESSIONS:
            for r in refused_rcpts(s):
                self.check(re.search(r"NOQUEUE: reject: RCPT from .*<%s>: Relay access denied"
                                     % re.escape(r), maillog) is not None,
                           "maillog: relaying to %s refused" % r)

        trouble = [l for l in maillog.splitlines()
                   if re.search(r"(warning|fatal|panic|error): .*"
                                r"(policy|problem talking to server|%s:%d)"
                                % (DAEMON_ADDR, self.daemon_port), l)]
        self.check(not trouble, "maillog: no policy service warnings or errors",
                   "\n".join(trouble[-10:]))

        # smtp-sink saw each accepted message once, with the right envelope.
        # X-Mail-Args / X-Rcpt-Args hold the MAIL/RCPT arguments: "<addr>"
        # plus optional extensions (SIZE=, BODY=); compare the addresses.
        # smtp(8) may send the recipients in another order.
        def addr(arg):
            m = re.match(r"(?:FROM:|TO:)?\s*<([^>]*)>", arg or "", re.I)
            return m.group(1) if m else arg
        got = sorted((m["session"], addr(m["mail"]),
                      tuple(sorted(addr(r) for r in m["rcpts"])))
                     for m in self.sink_messages())
        want = sorted((s["name"], s["sender"], tuple(sorted(accepted_rcpts(s))))
                      for s in SESSIONS if accepted_rcpts(s))
        self.check_equal(got, want, "smtp-sink: every message arrived once, "
                         "envelope as sent")

        self.assert_daemon()

    def assert_daemon(self):
        reqs = daemon_requests(self.daemon_log)
        self.check(reqs, "relaywatchd logged request lines (log_requests=yes)",
                   "no 'info: request' line in %s" % self.daemon_log)
        by_state = collections.defaultdict(list)
        for r in reqs:
            by_state[r["state"]].append(r)

        # CONNECT: one per SMTP session, with the client's address.
        got = sorted(r["client"] for r in by_state["CONNECT"])
        want = sorted(s["iface"] for s in SESSIONS)
        self.check_equal(got, want, "relaywatchd: one CONNECT request per "
                         "session, client address as sent")

        # RCPT: one per accepted recipient, none for the refused one.
        got = sorted((r["helo"], r["sender"], r["recipient"], r["client"])
                     for r in by_state["RCPT"])
        want = sorted((s["helo"], s["sender"], rc, s["iface"])
                      for s in SESSIONS for rc in accepted_rcpts(s))
        self.check_equal(got, want, "relaywatchd: one RCPT request per accepted "
                         "recipient (helo, sender, recipient, client)")

        # END-OF-MESSAGE: one per message, recipient_count = accepted rcpts.
        got = sorted((r["sender"], r["recipient_count"], r["client"])
                     for r in by_state["END-OF-MESSAGE"])
        want = sorted((s["sender"], len(accepted_rcpts(s)), s["iface"])
                      for s in SESSIONS if accepted_rcpts(s))
        self.check_equal(got, want, "relaywatchd: one END-OF-MESSAGE request per "
                         "message, recipient_count as sent")

        # A message's RCPT and END-OF-MESSAGE requests share its instance.
        rcpts_by_instance = collections.defaultdict(list)
        for r in by_state["RCPT"]:
            rcpts_by_instance[r["instance"]].append(r["recipient"])
        got = sorted(tuple(sorted(rcpts_by_instance.get(r["instance"], [])))
                     for r in by_state["END-OF-MESSAGE"])
        want = sorted(tuple(sorted(accepted_rcpts(s)))
                      for s in SESSIONS if accepted_rcpts(s))
        self.check(got == want and all(r["instance"] for r in by_state["END-OF-MESSAGE"]),
                   "relaywatchd: RCPT and END-OF-MESSAGE of a message share "
                   "one instance", "want: %r\ngot:  %r" % (want, got))

        others = [r["raw"] for st, rs in by_state.items()
                  if st not in ("CONNECT", "RCPT", "END-OF-MESSAGE") for r in rs]
        self.check(not others, "relaywatchd: no requests in other states",
                   "\n".join(others[:10]))

        not_dunno = [r["raw"] for r in reqs if r["action"] != "DUNNO"]
        self.check(not not_dunno, "relaywatchd: every answer is DUNNO for this "
                   "small clean traffic", "\n".join(not_dunno[:10]))

        alive = self.daemon.poll() is None
        self.check(alive, "relaywatchd still running after the traffic",
                   "exit status %s" % self.daemon.returncode)

    # -- teardown -----------------------------------------------------------

    def execute(self):
        self.setup()
        self.send()
        self.wait_delivery()
        self.assert_results()

    def teardown(self, check_daemon_exit):
        # The fake daemon is the harness's own: its exit status says nothing.
        self.stop_processes(check_daemon_exit and not self.args.fake_daemon)

    def diagnostics(self):
        print_tails("", ((self.maillog, 60), (self.daemon_log, 60), (self.sink_log, 20)))
        for s, status, output in self.swaks_results:
            want = 0 if accepted_rcpts(s) else 24
            if status != want:
                print("# --- swaks %s (exit %s) ---" % (s["name"], status))
                for line in output.splitlines()[-30:]:
                    print("# " + line)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    who = ap.add_mutually_exclusive_group()
    who.add_argument("--relaywatchd", metavar="PATH", help="the daemon under test")
    who.add_argument("--fake-daemon", action="store_true",
                     help="use a built-in Python policy server (harness self-test)")
    who.add_argument("--serve-fake-daemon", metavar="HOST:PORT", help=argparse.SUPPRESS)
    ap.add_argument("--daemon-opt", metavar="NAME=VALUE", action="append", default=[],
                    help="extra -o NAME=VALUE for relaywatchd (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args(argv)

    if args.serve_fake_daemon:
        return serve_fake_daemon(args.serve_fake_daemon)
    if not args.relaywatchd and not args.fake_daemon:
        ap.error("one of --relaywatchd PATH or --fake-daemon is required")
    if args.relaywatchd:
        args.relaywatchd = executable_relaywatchd(args.relaywatchd)
        if args.relaywatchd is None:
            return 1
    if not ready():
        return SKIP

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    h = Harness(args)
    set_budget(OVERALL_BUDGET)
    try:
        execute_run(h)
    finally:
        if h.failed:
            h.diagnostics()
        keep_or_remove(h.dir, h.failed or args.keep)
        status = summary(h, START)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""End-to-end test of relaywatchd's live counts against Postfix's own maillog.

    python3 tests/e2e/counting_e2e.py --relaywatchd build/relaywatchd [--keep]
                                      [--runs no,yes]

Two runs, each with its own private Postfix instance (postfix_harness.py),
smtp-sink as the only next hop and a fresh relaywatchd started with

    -e -o listen=inet:127.0.0.1:P -o http_listen=inet:127.0.0.1:H
       -o local_domains=local.test -o transaction_timeout=2s
       -o log_requests=yes

  run "no":  smtpd_delay_reject = no, the hook in smtpd_client_restrictions
             (CONNECT requests), smtpd_recipient_restrictions and
             smtpd_end_of_data_restrictions;
  run "yes": Postfix's default smtpd_delay_reject = yes, the hook in
             smtpd_recipient_restrictions and smtpd_end_of_data_restrictions
             only (no CONNECT requests: sessions are told apart by the
             daemon from the RCPT requests' client/server address and port).

In smtpd_recipient_restrictions a check_recipient_access map AFTER the hook
rejects blocked@relay3.test and blocked@local.test: the hook has seen those
RCPTs, Postfix then refuses them ("reject: RCPT ... from=<...>" lines) and
the transaction goes on with the other recipients.  Every other recipient
domain (relay1.test .. relay20.test, local.test) is in relay_domains, so
nothing is refused before the hook (reject_unauth_destination); the test
checks that every reject line in the maillog is one of the map's.

Traffic, in two phases per run (TRAFFIC below):
  phase A, nothing abandoned: single messages (swaks), a message to 12
    recipients in 12 domains, messages with a blocked recipient first or in
    the middle, a transaction whose only recipient is blocked, inbound
    mail to local.test, 5 messages over one connection (smtp-source -d),
    3 one-message connections (smtp-source), PIPELINING (swaks --pipeline),
    BDAT (CHUNKING, a small SMTP client of our own), two transactions in
    one session, and 6 sessions at once (several smtpd processes, several
    policy connections);
  phase B, abandoned transactions: swaks --quit-after RCPT (one recipient,
    three domains, one with a blocked recipient, one inbound, 4 at once),
    a transaction ended by RSET followed by a message in the same session,
    a client that drops the connection after RCPT (no QUIT), and in run
    "no" only, sessions that quit before MAIL (--quit-after EHLO) and
    after MAIL (--quit-after MAIL).  With smtpd_delay_reject = yes Postfix
    asks the policy service nothing for a session without RCPT, so the
    daemon cannot count those: they are left out of run "yes" (a documented
    limit, see relaywatchd(8), WHAT IS COUNTED).

After each phase the test waits until Postfix is quiet (the queue is empty,
every session has its "disconnect from" line, every queued message its
qmgr "removed" line), then longer than transaction_timeout (so the daemon
has settled abandoned transactions), and reads GET /status.  Counts are
cumulative: each phase is compared as the difference between two reads, and
the last read as totals.  Expected values come from the maillog:

  nc      "connect from" lines of smtpd (the regex does not match
          "disconnect from").
  nf      distinct queue IDs with a qmgr "from=<" line (the first one:
          qmgr repeats it for every retry of a deferred message).
  nf_log  every "from=<" line (qmgr lines plus "reject: RCPT ... from=<"
          lines), PLUS the accepted recipients of transactions that never
          reached END-OF-MESSAGE.  The daemon counts every RCPT of such a
          transaction as refused (the contract: "every RCPT of a
          transaction that never reached it"); Postfix writes a from=< line
          only for the RCPTs it refused itself, and nothing at all for
          accepted recipients of a transaction the client abandoned.  Those
          are computed from the maillog too: the "rcpt=A/B" figures of the
          "disconnect from" lines sum the accepted RCPTs of every
          transaction, the qmgr nrcpt= figures those of queued messages;
          the difference is the abandoned ones.  In phase A nothing is
          abandoned, so there nf_log must equal the from=< lines exactly.
  nr      RCPT policy requests: the RCPT commands of the "disconnect from"
          lines (B in rcpt=A/B), since no recipient is refused before the
          hook.
  nr_relay / nr_inbound (asserted if /status has them): recipients outside
          / inside local.test: delivered "to=<...> status=sent" lines plus
          reject lines by domain, plus the abandoned recipients by domain
          (which no maillog line names: from what was sent).
  nf_relay / nf_inbound (if present): queued messages with at least one
          relay recipient / with local recipients only (the traffic never
          mixes the two in one message, so either reading agrees).
  refused (if present): nf_log - nf.

Every expected value is also computed from what was sent (TRAFFIC) and
from the daemon's own request log (log_requests = yes: CONNECT, RCPT and
END-OF-MESSAGE requests, instance, recipient_count); the three must agree
with each other (else the harness itself is wrong) and the daemon's /status
figure must equal the maillog's.  Also: windows."10m" equals the totals for
nc, nf, nf_log, nr (each run is far shorter than 10 minutes), "alpha" there
is nc/nf_log; windows."1m" is printed for information.

Output: "ok"/"not ok" lines, a table of expected vs got per run, and last
"N passed, M failed".  Exit 0 when all pass, 1 on a failure, 77 when a
prerequisite is missing (not root, no postfix, swaks or smtp-source),
2 for a bad command line.  On failure the temp dirs are kept (paths
printed) with maillog, relaywatchd.log, status-*.json and each client's
transcript.
"""

import argparse
import collections
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postfix_harness import (  # noqa: E402  (after the path set-up)
    DAEMON_ADDR, SENT_RE, SKIP, SMTPD_ADDR, Checks, PostfixInstance, SetupError, budget,
    daemon_requests, executable_relaywatchd, execute_run, free_port, keep_or_remove,
    listening, on_signal, print_tails, read_text, ready, remaining, set_budget, summary, tail_text)

RUN_BUDGET = 75.0            # seconds per run (a run takes about 20 s)
TRANSACTION_TIMEOUT = 2.0    # -o transaction_timeout=2s
SETTLE = TRANSACTION_TIMEOUT + 1.5   # daemon ticks about once a second

LOCAL_DOMAIN = "local.test"
RELAY_DOMAINS = tuple("relay%d.test" % i for i in range(1, 21))
ALL_DOMAINS = RELAY_DOMAINS + (LOCAL_DOMAIN,)
BLOCKED = ("blocked@relay3.test", "blocked@local.test")   # refused after the hook
MYNETWORKS = "127.0.0.254/32"    # no client of the test is trusted


def domain_of(addr):
    return addr.rsplit("@", 1)[-1].lower()


def is_local(addr):
    return domain_of(addr) == LOCAL_DOMAIN


# ---------------------------------------------------------------------------
# What is sent.
#
# swaks items: one session from its own source address ("iface"), one
# transaction with "rcpts" in order; "quit" is swaks --quit-after (None: the
# whole message).  smtp-source items: "messages" transactions of "rcpts"
# recipients each (-N: unique names, built by smtp-source from "to"), all
# over one connection with "same_conn" (-d), else one connection each; the
# source address is 127.0.0.1 (smtp-source cannot choose).  "runs" limits
# an item to some runs.

TRAFFIC = {
    "A": [
        {"name": "single-1", "kind": "swaks", "iface": "127.0.1.1",
         "rcpts": ["alice@relay1.test"]},
        {"name": "single-inbound", "kind": "swaks", "iface": "127.0.1.2",
         "rcpts": ["postmaster@local.test"]},
        {"name": "single-2", "kind": "swaks", "iface": "127.0.1.3",
         "rcpts": ["bob@relay2.test"]},
        {"name": "twelve-domains", "kind": "swaks", "iface": "127.0.1.4",
         "rcpts": ["r%d@relay%d.test" % (i, i) for i in range(1, 13)]},
        {"name": "blocked-middle", "kind": "swaks", "iface": "127.0.1.5",
         "rcpts": ["carol@relay4.test", "blocked@relay3.test", "dave@relay5.test"]},
        {"name": "blocked-first", "kind": "swaks", "iface": "127.0.1.6",
         "rcpts": ["blocked@relay3.test", "erin@relay6.test", "frank@relay8.test"]},
        {"name": "all-blocked", "kind": "swaks", "iface": "127.0.1.7",
         "rcpts": ["blocked@relay3.test"]},
        {"name": "inbound-blocked", "kind": "swaks", "iface": "127.0.1.8",
         "rcpts": ["u1@local.test", "blocked@local.test", "u2@local.test"]},
        {"name": "five-over-one", "kind": "smtp-source", "same_conn": True,
         "messages": 5, "rcpts": 2, "to": "bulk@relay7.test"},
        {"name": "three-connections", "kind": "smtp-source", "same_conn": False,
         "messages": 3, "rcpts": 3, "to": "news@local.test"},
        {"name": "pipelined", "kind": "swaks", "iface": "127.0.1.10", "pipeline": True,
         "rcpts": ["p1@relay14.test", "blocked@relay3.test", "p2@relay15.test"]},
        {"name": "bdat", "kind": "raw", "iface": "127.0.1.11", "bdat": True,
         "txns": [{"rcpts": ["c1@relay16.test", "c2@relay17.test"], "data": True}]},
        {"name": "two-txns-raw", "kind": "raw", "iface": "127.0.1.12",
         "txns": [{"rcpts": ["t1@relay18.test"], "data": True},
                  {"rcpts": ["blocked@local.test", "t2@local.test"], "data": True}]},
        {"name": "parallel", "kind": "parallel", "items": [
            {"name": "par-%d" % i, "kind": "swaks", "iface": "127.0.3.%d" % i,
             "rcpts": ["par%d@relay%d.test" % (i, i), "par%db@relay%d.test" % (i, i + 10)]
             + (["blocked@relay3.test"] if i % 2 else [])}
            for i in range(1, 7)]},
        {"name": "single-3", "kind": "swaks", "iface": "127.0.1.9",
         "rcpts": ["grace@relay20.test"]},
    ],
    "B": [
        {"name": "quit-after-rcpt", "kind": "swaks", "iface": "127.0.2.1",
         "quit": "RCPT", "rcpts": ["q1@relay9.test"]},
        {"name": "quit-after-rcpt-3", "kind": "swaks", "iface": "127.0.2.2",
         "quit": "RCPT", "rcpts": ["q2@relay10.test", "q3@relay11.test",
                                   "q4@relay12.test"]},
        {"name": "quit-after-rcpt-blocked", "kind": "swaks", "iface": "127.0.2.3",
         "quit": "RCPT", "rcpts": ["q5@relay13.test", "blocked@relay3.test"]},
        {"name": "quit-after-rcpt-inbound", "kind": "swaks", "iface": "127.0.2.4",
         "quit": "RCPT", "rcpts": ["q6@local.test"]},
        {"name": "quit-after-ehlo-1", "kind": "swaks", "iface": "127.0.2.5",
         "quit": "EHLO", "rcpts": ["never@relay14.test"], "runs": ("no",)},
        {"name": "quit-after-ehlo-2", "kind": "swaks", "iface": "127.0.2.6",
         "quit": "EHLO", "rcpts": ["never@relay15.test"], "runs": ("no",)},
        {"name": "quit-after-mail", "kind": "swaks", "iface": "127.0.2.7",
         "quit": "MAIL", "rcpts": ["never@relay16.test"], "runs": ("no",)},
        {"name": "rset-then-message", "kind": "raw", "iface": "127.0.2.9",
         "txns": [{"rcpts": ["r1@relay18.test", "blocked@relay3.test"], "data": False},
                  {"rcpts": ["r2@relay19.test"], "data": True}]},
        {"name": "lost-after-rcpt", "kind": "raw", "iface": "127.0.2.10", "drop": True,
         "txns": [{"rcpts": ["l1@relay14.test", "l2@local.test"], "data": False}]},
        {"name": "parallel-abandon", "kind": "parallel", "items": [
            {"name": "pab-%d" % i, "kind": "swaks", "iface": "127.0.4.%d" % i,
             "quit": "RCPT", "rcpts": ["pab%d@relay%d.test" % (i, i + 4)]}
            for i in range(1, 5)]},
        {"name": "after-abandoned", "kind": "swaks", "iface": "127.0.2.8",
         "rcpts": ["henry@relay17.test"]},
    ],
}
PHASES = ("A", "B")


def items_for(phase, mode):
    return [it for it in TRAFFIC[phase] if mode in it.get("runs", ("no", "yes"))]


def sessions_of(item):
    """The item as sessions, each a list of transactions (recipient lists).
    smtp-source's recipient names are not known in advance: placeholders
    in the right domain."""
    if item["kind"] == "parallel":
        return [s for sub in item["items"] for s in sessions_of(sub)]
    if item["kind"] == "raw":
        return [[dict(t) for t in item["txns"]]]
    if item["kind"] == "swaks":
        if item.get("quit") in ("EHLO", "MAIL"):
            return [[]]            # no RCPT: no transaction the hook sees
        return [[{"rcpts": list(item["rcpts"]), "data": item.get("quit") is None}]]
    dom = domain_of(item["to"])
    txns = [{"rcpts": ["#%d.%d@%s" % (m, r, dom) for r in range(item["rcpts"])],
             "data": True} for m in range(item["messages"])]
    if item["same_conn"]:
        return [txns]
    return [[t] for t in txns]


def plan_figures(items, mode):
    """What the daemon must count for these items, from what was sent."""
    f = collections.Counter()
    for item in items:
        for sess in sessions_of(item):
            f["connect_lines"] += 1
            if mode == "no" or any(t["rcpts"] for t in sess):
                f["nc"] += 1
            for t in sess:
                acc = [r for r in t["rcpts"] if r not in BLOCKED]
                blk = [r for r in t["rcpts"] if r in BLOCKED]
                f["nr"] += len(t["rcpts"])
                f["nr_inbound"] += sum(1 for r in t["rcpts"] if is_local(r))
                f["nr_relay"] += sum(1 for r in t["rcpts"] if not is_local(r))
                f["rejects"] += len(blk)
                if t["data"] and acc:
                    f["nf"] += 1
                    if any(not is_local(r) for r in acc):
                        f["nf_relay"] += 1
                    else:
                        f["nf_inbound"] += 1
                else:
                    f["abandoned_accepted"] += len(acc)
                    f["abandoned_inbound"] += sum(1 for r in acc if is_local(r))
                    f["abandoned_relay"] += sum(1 for r in acc if not is_local(r))
    f["from_lines"] = f["nf"] + f["rejects"]
    f["nf_log"] = f["from_lines"] + f["abandoned_accepted"]
    f["refused"] = f["nf_log"] - f["nf"]
    return f


class SmtpError(ValueError):
    pass


def raw_smtp(host, port, item, timeout=15):
    """A small SMTP client for what swaks cannot do: several transactions
    with RSET between them, BDAT (CHUNKING), dropping the connection after
    RCPT without QUIT.  Returns the transcript; SmtpError (with
    .transcript) on an unexpected reply."""
    lines = []

    def reply(f):
        text = []
        while True:
            line = f.readline(1000).decode("ascii", "replace")
            if not line:
                raise SmtpError("connection closed")
            text.append(line.rstrip("\r\n"))
            lines.append("<- " + text[-1])
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), text

    def cmd(f, s, sock):
        lines.append("-> " + s)
        sock.sendall(s.encode("ascii") + b"\r\n")
        return reply(f)[0]

    sock = socket.create_connection((host, port), timeout=timeout,
                                    source_address=(item["iface"], 0))
    f = sock.makefile("rb")
    try:
        if reply(f)[0] != 220:
            raise SmtpError("no 220 greeting")
        if cmd(f, "EHLO %s.client.test" % item["name"], sock) != 250:
            raise SmtpError("EHLO refused")
        sender = "%s@sender.test" % item["name"].replace("-", ".")
        for i, t in enumerate(item["txns"]):
            if i and not item["txns"][i - 1]["data"]:
                if cmd(f, "RSET", sock) // 100 != 2:
                    raise SmtpError("RSET refused")
            if cmd(f, "MAIL FROM:<%s>" % sender, sock) // 100 != 2:
                raise SmtpError("MAIL refused")
            for r in t["rcpts"]:
                code = cmd(f, "RCPT TO:<%s>" % r, sock)
                if (code // 100 == 2) == (r in BLOCKED):
                    raise SmtpError("RCPT %s answered %d" % (r, code))
            if not t["data"]:
                continue
            body = ("From: <%s>\r\nTo: undisclosed-recipients:;\r\n"
                    "Subject: relaywatch counting %s %d\r\n\r\nbody\r\n"
                    % (sender, item["name"], i))
            if item.get("bdat"):
                data = body.encode("ascii")
                lines.append("-> BDAT %d LAST (+%d bytes)" % (len(data), len(data)))
                sock.sendall(b"BDAT %d LAST\r\n" % len(data) + data)
                code, _ = reply(f)
            else:
                if cmd(f, "DATA", sock) // 100 != 3:
                    raise SmtpError("DATA refused")
                lines.append("-> (message)")
                sock.sendall(body.encode("ascii") + b".\r\n")
                code, _ = reply(f)
            if code // 100 != 2:
                raise SmtpError("message refused: %d" % code)
        if item.get("drop"):
            lines.append("-- dropping the connection without QUIT")
        else:
            cmd(f, "QUIT", sock)
    except (SmtpError, OSError) as e:
        e.transcript = "\n".join(lines)
        raise
    finally:
        f.close()
        sock.close()
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# The maillog

# "connect from" but not "disconnect from": the process tag's "]: " must
# come right before it.
CONNECT_RE = re.compile(r"postfix/smtpd\[\d+\]: connect from ")
DISCONNECT_RE = re.compile(r"postfix/smtpd\[\d+\]: disconnect from \S+(.*)$")
QMGR_FROM_RE = re.compile(r"postfix/qmgr\[\d+\]: ([0-9A-Za-z]+): from=<[^>]*>, "
                          r"size=\d+, nrcpt=(\d+)")
QMGR_REMOVED_RE = re.compile(r"postfix/qmgr\[\d+\]: ([0-9A-Za-z]+): removed")
REJECT_RE = re.compile(r"postfix/smtpd\[\d+\]: (\w+): reject: RCPT from .*?: "
                       r"(\d{3}) .*; from=<[^>]*> to=<([^>]*)>")
RCPT_STAT_RE = re.compile(r"\brcpt=(\d+)(?:/(\d+))?")
DATA_STAT_RE = re.compile(r"\bdata=(\d+)(?:/(\d+))?")
POLICY_TROUBLE_RE = re.compile(r"(warning|fatal|panic|error): .*(policy|problem "
                               r"talking to server)")


def maillog_figures(text, abandoned_inbound, abandoned_relay):
    """Counts from maillog text; the abandoned recipients' domains (which
    no maillog line names) come from what was sent."""
    f = collections.Counter()
    qmgr = collections.OrderedDict()     # first qmgr from= line per queue ID
    sent = set()
    odd_from = []
    rejects = []
    for line in text.splitlines():
        if CONNECT_RE.search(line):
            f["connect_lines"] += 1
        m = DISCONNECT_RE.search(line)
        if m:
            f["disconnect_lines"] += 1
            stats = m.group(1)
            r = RCPT_STAT_RE.search(stats)
            if r:
                f["rcpt_accepted"] += int(r.group(1))
                f["rcpt_commands"] += int(r.group(2) or r.group(1))
            d = DATA_STAT_RE.search(stats)
            if d:
                f["data_accepted"] += int(d.group(1))
        if QMGR_REMOVED_RE.search(line):
            f["removed_lines"] += 1
        m = SENT_RE.search(line)
        if m:
            sent.add((m.group(1), m.group(2)))
        if "from=<" in line:
            f["from_lines"] += 1
            q = QMGR_FROM_RE.search(line)
            rj = REJECT_RE.search(line)
            if q:
                f["qmgr_from_lines"] += 1
                qmgr.setdefault(q.group(1), int(q.group(2)))
            elif rj:
                rejects.append(rj.group(3))
            else:
                odd_from.append(line)
    f["nc"] = f["connect_lines"]
    f["nf"] = len(qmgr)
    f["rejects"] = len(rejects)
    f["queued_rcpts"] = sum(qmgr.values())
    f["abandoned_accepted"] = f["rcpt_accepted"] - f["queued_rcpts"]
    f["nf_log"] = f["from_lines"] + f["abandoned_accepted"]
    f["nr"] = f["rcpt_commands"]
    f["refused"] = f["nf_log"] - f["nf"]
    f["nr_inbound"] = (sum(1 for _, to in sent if is_local(to))
                       + sum(1 for to in rejects if is_local(to)) + abandoned_inbound)
    f["nr_relay"] = (sum(1 for _, to in sent if not is_local(to))
                     + sum(1 for to in rejects if not is_local(to)) + abandoned_relay)
    by_qid = collections.defaultdict(list)
    for qid, to in sent:
        by_qid[qid].append(to)
    for qid in qmgr:
        if any(not is_local(to) for to in by_qid.get(qid, [])):
            f["nf_relay"] += 1
        else:
            f["nf_inbound"] += 1
    return f, {"odd_from": odd_from, "rejects": rejects,
               "foreign_rejects": [to for to in rejects if to not in BLOCKED],
               "trouble": [l for l in text.splitlines() if POLICY_TROUBLE_RE.search(l)]}


# ---------------------------------------------------------------------------
# The daemon's request log (log_requests = yes): the same figures, computed
# the way the contract defines them.

def reqlog_figures(reqs, mode):
    f = collections.Counter()
    txns = collections.OrderedDict()
    tuples = set()
    for r in reqs:
        st = r["state"]
        if st == "CONNECT":
            f["connect_requests"] += 1
        elif st == "RCPT":
            f["nr"] += 1
            if is_local(r["recipient"]):
                f["nr_inbound"] += 1
            else:
                f["nr_relay"] += 1
            a = r["attrs"]
            tuples.add((r["client"], r["client_port"], a.get("server_address", ""),
                        a.get("server_port", ""), r["instance"].split(".")[0]))
            t = txns.setdefault(r["instance"], {"rcpts": [], "eom": None})
            t["rcpts"].append(r["recipient"])
        elif st == "END-OF-MESSAGE":
            f["nf"] += 1
            t = txns.setdefault(r["instance"], {"rcpts": [], "eom": None})
            t["eom"] = r["recipient_count"]
    for t in txns.values():
        if t["eom"] is not None:
            f["nf_log"] += 1 + len(t["rcpts"]) - t["eom"]
            # The recipients that were accepted are not named at
            # END-OF-MESSAGE; blocked ones are known.
            acc = [x for x in t["rcpts"] if x not in BLOCKED]
            if any(not is_local(x) for x in acc):
                f["nf_relay"] += 1
            else:
                f["nf_inbound"] += 1
        else:
            f["nf_log"] += len(t["rcpts"])
    # Sessions: CONNECT requests with the hook in smtpd_client_restrictions;
    # else distinct client address/port (the log may not show the server
    # side; smtpd's pid from instance stands in for it).
    f["nc"] = f["connect_requests"] if mode == "no" else len(tuples)
    f["refused"] = f["nf_log"] - f["nf"]
    return f


# ---------------------------------------------------------------------------
# One run

class Run(PostfixInstance):
    def __init__(self, args, mode, results):
        PostfixInstance.__init__(self, prefix="relaywatch-count-%s-" % mode)
        self.args = args
        self.mode = mode            # smtpd_delay_reject
        self.results = results      # shared Checks
        self.daemon = None
        self.daemon_log = None
        self.daemon_port = self.http_port = None
        self.daemon_started_at = None
        self.clients = []           # (item, exit status, wanted)
        self.rows = []              # table rows

    # checks go to the shared counter, prefixed with the run
    def check(self, cond, what, detail=""):
        return self.results.check(cond, "[delay_reject=%s] %s" % (self.mode, what), detail)

    def check_equal(self, got, want, what):
        return self.check(got == want, what, "want: %r\ngot:  %r" % (want, got))

    # -- setup --------------------------------------------------------------

    def write_postfix_config(self):
        hook = self.policy_hook(self.daemon_port)
        access = ", ".join("%s=REJECT" % a for a in BLOCKED)
        specific = """\
mynetworks = {mynetworks}
relay_domains = {relay_domains}

# The hook under test.  smtpd_delay_reject = {mode}.
smtpd_delay_reject = {mode}
smtpd_policy_service_try_limit = 1
smtpd_client_restrictions = {client}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
# Recipients refused AFTER the hook saw them:
smtpd_recipient_restrictions = {hook},
    check_recipient_access inline:{{ {access} }}
smtpd_end_of_data_restrictions = {hook}
""".format(mynetworks=MYNETWORKS, relay_domains=", ".join(ALL_DOMAINS),
           mode=self.mode, client=hook if self.mode == "no" else "",
           hook=hook, access=access)
        self.write_config("counting_e2e.py", ALL_DOMAINS, specific)

    def daemon_cmd(self, with_timeout=True):
        cmd = [self.args.relaywatchd, "-e",
               "-o", "listen=inet:%s:%d" % (DAEMON_ADDR, self.daemon_port),
               "-o", "http_listen=inet:%s:%d" % (DAEMON_ADDR, self.http_port),
               "-o", "local_domains=%s" % LOCAL_DOMAIN,
               "-o", "postfix_config_directory=%s" % self.conf,
               # Like the Postfix instance, no lookups that could leave loopback.
               "-o", "dns_lookups="]
        if with_timeout:
            cmd += ["-o", "transaction_timeout=%gs" % TRANSACTION_TIMEOUT]
        cmd += ["-o", "log_requests=yes"]
        for o in self.args.daemon_opt:
            cmd += ["-o", o]
        return cmd

    def start_daemon(self):
        for with_timeout in (True, False):
            try:
                self.start_relaywatchd(self.daemon_cmd(with_timeout))
                break
            except SetupError:
                if with_timeout and self.rejected_option("transaction_timeout"):
                    # An older daemon: go on without the key so that the
                    # Postfix side still runs; the counts will fail.
                    self.check(False, "relaywatchd accepts -o transaction_timeout",
                               tail_text(self.daemon_log, 5))
                    continue
                raise
        self.daemon_started_at = time.monotonic()
        deadline = time.monotonic() + budget(3)
        while time.monotonic() < deadline and not self.http_listening():
            time.sleep(0.05)

    def http_listening(self):
        return listening(DAEMON_ADDR, self.http_port)

    def setup(self):
        self.make_dirs()
        self.daemon_log = os.path.join(self.dir, "relaywatchd.log")
        self.pick_ports()
        self.daemon_port = free_port(DAEMON_ADDR)
        self.http_port = free_port(DAEMON_ADDR)  # never the same one (tests/ports.py)
        self.write_postfix_config()
        print("# run delay_reject=%s: temp dir %s; smtpd %s:%d, relaywatchd %s:%d "
              "(http %d), smtp-sink port %d"
              % (self.mode, self.dir, SMTPD_ADDR, self.smtpd_port, DAEMON_ADDR,
                 self.daemon_port, self.http_port, self.sink_port))
        self.start_sink(dump=False)
        self.start_daemon()
        self.start_postfix()

    # -- traffic ------------------------------------------------------------

    def client_cmd(self, item):
        if item["kind"] == "swaks":
            cmd = ["swaks", "--server", SMTPD_ADDR, "--port", str(self.smtpd_port),
                   "--local-interface", item["iface"],
                   "--ehlo", "%s.client.test" % item["name"],
                   "--from", "%s@sender.test" % item["name"].replace("-", "."),
                   "--to", ",".join(item["rcpts"]),
                   "--header", "Subject: relaywatch counting %s" % item["name"],
                   "--timeout", "15"]
            if item.get("quit"):
                cmd += ["--quit-after", item["quit"]]
            if item.get("pipeline"):
                cmd.append("--pipeline")
            return cmd
        cmd = ["smtp-source", "-4", "-N", "-m", str(item["messages"]), "-s", "1",
               "-r", str(item["rcpts"]), "-t", item["to"],
               "-f", "%s@sender.test" % item["name"], "-M", "%s.client.test" % item["name"],
               "-S", "relaywatch counting %s" % item["name"]]
        if item["same_conn"]:
            cmd.append("-d")
        return cmd + ["%s:%d" % (SMTPD_ADDR, self.smtpd_port)]

    @staticmethod
    def wanted_exit(item):
        if item["kind"] == "swaks" and not item.get("quit"):
            if all(r in BLOCKED for r in item["rcpts"]):
                return 24          # swaks: no recipient accepted
        return 0

    def start_client(self, phase, item):
        """Start one client; returns a function that waits for it and
        records the result."""
        path = os.path.join(self.dir, "client-%s-%s.log" % (phase, item["name"]))
        if item["kind"] == "raw":
            def finish():
                try:
                    status, output = 0, raw_smtp(SMTPD_ADDR, self.smtpd_port, item)
                except (OSError, ValueError) as e:
                    status, output = "error: %s" % e, getattr(e, "transcript", "")
                with open(path, "w") as f:
                    f.write(output)
                return status, output
            return finish
        cmd = self.client_cmd(item)
        log = open(path, "w")
        log.write("$ %s\n" % " ".join(cmd))
        log.flush()
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT)
        finally:
            log.close()

        def finish():
            try:
                status = proc.wait(timeout=budget(20))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                status = "timeout"
            return status, read_text(path)
        return finish

    def send(self, phase):
        for item in items_for(phase, self.mode):
            group = item["items"] if item["kind"] == "parallel" else [item]
            waits = [(sub, self.start_client(phase, sub)) for sub in group]
            for sub, finish in waits:
                status, output = finish()
                want = self.wanted_exit(sub)
                self.clients.append((sub, status, want, output))
                self.check(status == want, "phase %s: %s %s exits %s"
                           % (phase, sub["kind"], sub["name"], want),
                           "exit status %s\n%s" % (status, output[-2000:]))

    def wait_quiet(self, upto):
        """Wait until Postfix has logged everything of the traffic so far:
        queue empty, every session disconnected, every queued message
        removed, at least the sessions and messages that were sent, and the
        maillog unchanged for half a second."""
        want = collections.Counter()
        for ph in upto:
            want.update(plan_figures(items_for(ph, self.mode), self.mode))
        deadline = time.monotonic() + budget(30)
        last_size, stable_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            text = read_text(self.maillog)
            f, _ = maillog_figures(text, 0, 0)
            quiet = (f["connect_lines"] >= want["connect_lines"]
                     and f["disconnect_lines"] == f["connect_lines"]
                     and f["nf"] >= want["nf"]
                     and f["removed_lines"] >= f["nf"])
            if len(text) != last_size:
                last_size, stable_since = len(text), time.monotonic()
            if quiet and time.monotonic() - stable_since >= 0.5 \
                    and self.queue_listing() == "":
                return True
            time.sleep(0.1)
        self.check(False, "Postfix quiet after phase %s (queue empty, all sessions "
                   "and messages logged)" % upto[-1],
                   "queue: %s\nmaillog so far: %r" % (self.queue_listing(), dict(f)))
        return False

    # -- the daemon's figures -------------------------------------------------

    def status(self, label):
        code, body = self.get_page("/status", "status-%s.json" % label)
        if code is None:
            code, body = body, ""
        doc = None
        if code == 200:
            try:
                doc = json.loads(body)
            except ValueError as e:
                code = "bad JSON: %s" % e
        host = None
        if isinstance(doc, dict) and isinstance(doc.get("hosts"), list) and doc["hosts"]:
            host = doc["hosts"][0]
        return {"ok": host is not None, "code": code, "body": body[:2000], "host": host,
                "at": time.monotonic()}

    @staticmethod
    def totals(st):
        if not st["ok"] or not isinstance(st["host"].get("totals"), dict):
            return {}
        return st["host"]["totals"]

    @staticmethod
    def window(st, name):
        if not st["ok"] or not isinstance(st["host"].get("windows"), dict):
            return None
        w = st["host"]["windows"].get(name)
        return w if isinstance(w, dict) else None

    # -- the run --------------------------------------------------------------

    def execute(self):
        self.setup()
        reads = {}
        st = self.status("start")
        self.check(st["ok"], "GET /status answers with hosts[0] (JSON)",
                   "answer: %s %r" % (st["code"], st["body"]))
        reads["start"] = st
        maillog_at = {"start": 0}
        reqlog_at = {"start": 0}
        done = []
        for phase in PHASES:
            self.send(phase)
            done.append(phase)
            self.wait_quiet(done)
            maillog_at[phase] = len(read_text(self.maillog))
            # Longer than transaction_timeout: abandoned transactions are
            # settled by now.
            time.sleep(min(SETTLE, max(0.0, remaining() - 5)))
            reqlog_at[phase] = len(daemon_requests(self.daemon_log))
            reads[phase] = self.status(phase)
        self.evaluate(reads, maillog_at, reqlog_at)

    def evaluate(self, reads, maillog_at, reqlog_at):
        mode = self.mode
        text = read_text(self.maillog)
        reqs = daemon_requests(self.daemon_log)
        keys = ("nc", "nf", "nf_log", "nr")
        split_keys = ("nr_relay", "nr_inbound", "nf_relay", "nf_inbound", "refused")

        self.check(reads["start"]["ok"] and all(
            self.totals(reads["start"]).get(k) == 0 for k in keys),
            "totals are 0 before any traffic",
            "totals: %r" % self.totals(reads["start"]))

        prev = "start"
        segments = []
        for phase in PHASES:
            segments.append((phase, "phase %s" % phase, prev, phase,
                             [phase]))
            prev = phase
        segments.append(("total", "totals", "start", PHASES[-1], list(PHASES)))

        for seg, label, a, b, phases in segments:
            items = [it for ph in phases for it in items_for(ph, mode)]
            plan = plan_figures(items, mode)
            mtext = text[maillog_at[a]:maillog_at[b]]
            mlog, extra = maillog_figures(mtext, plan["abandoned_inbound"],
                                          plan["abandoned_relay"])
            rlog = reqlog_figures(reqs[reqlog_at[a]:reqlog_at[b]], mode)
            ta, tb = self.totals(reads[a]), self.totals(reads[b])

            # The harness's own consistency: maillog, plan and request log.
            bad = ["%s: maillog %r, sent %r" % (k, mlog[k], plan[k])
                   for k in ("connect_lines", "nf", "rejects", "from_lines", "nf_log",
                             "nr", "nr_relay", "nr_inbound", "abandoned_accepted")
                   if mlog[k] != plan[k]]
            self.check(not bad, "%s: the maillog agrees with what was sent" % label,
                       "\n".join(bad))
            bad = ["%s: request log %r, sent %r" % (k, rlog[k], plan[k])
                   for k in ("nc", "nf", "nf_log", "nr", "nr_relay", "nr_inbound",
                             "nf_relay", "nf_inbound")
                   if rlog[k] != plan[k]]
            self.check(not bad, "%s: relaywatchd's request log agrees with what was "
                       "sent" % label, "\n".join(bad))
            if mode == "yes":
                self.check_equal(rlog["connect_requests"], 0, "%s: no CONNECT "
                                 "requests with smtpd_delay_reject = yes" % label)
            if seg == "A":
                self.check_equal(mlog["abandoned_accepted"], 0,
                                 "phase A abandons nothing (nf_log = from=< lines)")
            self.check(not extra["odd_from"], "%s: every from=< line is a qmgr line "
                       "or a RCPT reject" % label, "\n".join(extra["odd_from"][:10]))
            self.check(not extra["foreign_rejects"], "%s: no recipient refused other "
                       "than the map's (nothing refused before the hook)" % label,
                       "\n".join(extra["foreign_rejects"][:10]))

            # The daemon against the maillog.
            for k in keys + split_keys:
                want = mlog[k]
                present = k in tb and (seg == "total" or k in ta)
                if k in split_keys and not present:
                    self.rows.append((label, k, want, plan[k], rlog[k], "absent", "skip"))
                    continue
                got = self.delta(ta, tb, k) if seg != "total" else tb.get(k)
                ok = self.check(got == want, "%s: %s from /status equals the maillog's"
                                % (label, k),
                                "want %r (maillog; sent %r, request log %r), got %r"
                                % (want, plan[k], rlog[k], got))
                self.rows.append((label, k, want, plan[k], rlog[k], got,
                                  "ok" if ok else "FAIL"))

        # Windows: the run is far shorter than 10 minutes.
        last = reads[PHASES[-1]]
        tot = self.totals(last)
        w10 = self.window(last, "10m")
        self.check(w10 is not None, "windows has \"10m\"",
                   "windows: %r" % (last["host"] or {}).get("windows"))
        for k in keys:
            got = (w10 or {}).get(k)
            ok = self.check(w10 is not None and got == tot.get(k),
                            "windows.10m.%s equals totals.%s" % (k, k),
                            "window %r, totals %r" % (got, tot.get(k)))
            self.rows.append(("window 10m", k, tot.get(k), "", "", got,
                              "ok" if ok else "FAIL"))
        if w10 is not None and "alpha" in w10:
            nc, nfl = w10.get("nc"), w10.get("nf_log")
            want = (nc / nfl) if isinstance(nc, int) and isinstance(nfl, int) and nfl else None
            got = w10.get("alpha")
            # The daemon may round (it prints 4 decimals).
            ok = (want is None and got is None) or (
                isinstance(got, (int, float)) and want is not None
                and abs(got - want) <= 0.51e-4 * max(1.0, want))
            self.check(ok, "windows.10m.alpha = nc / nf_log (to 4 decimals)",
                       "want %r, got %r" % (want, got))
            self.rows.append(("window 10m", "alpha", "%.4f" % want if want else want,
                              "", "", got, "ok" if ok else "FAIL"))
        w1 = self.window(last, "1m")
        age = last["at"] - self.daemon_started_at
        for k in keys:
            self.rows.append(("window 1m", k, tot.get(k), "", "",
                              (w1 or {}).get(k), "info (daemon age %.0f s)" % age))

        # Postfix talked to the daemon without trouble; the daemon lives.
        trouble = [l for l in text.splitlines() if POLICY_TROUBLE_RE.search(l)]
        self.check(not trouble, "maillog: no policy service warnings or errors",
                   "\n".join(trouble[-10:]))
        self.check(self.daemon.poll() is None, "relaywatchd still running",
                   "exit status %s" % self.daemon.returncode)

    @staticmethod
    def delta(ta, tb, k):
        a, b = ta.get(k), tb.get(k)
        if isinstance(a, int) and isinstance(b, int):
            return b - a
        return None

    def print_table(self):
        print("# ---- delay_reject=%s: expected (maillog) vs got (/status) ----"
              % self.mode)
        hdr = ("segment", "field", "maillog", "sent", "reqlog", "daemon", "")
        rows = [hdr] + [tuple("" if v is None and i in (3, 4) else str(v)
                              for i, v in enumerate(r)) for r in self.rows]
        widths = [max(len(r[i]) for r in rows) for i in range(len(hdr))]
        for r in rows:
            print("# " + "  ".join(c.ljust(widths[i]) if i < 2 else c.rjust(widths[i])
                                   if i < 6 else c for i, c in enumerate(r)))

    # -- teardown -----------------------------------------------------------

    def teardown(self, check_daemon_exit):
        self.stop_processes(check_daemon_exit)

    def diagnostics(self):
        print_tails(" delay_reject=%s" % self.mode, ((self.maillog, 40), (self.daemon_log, 40)))
        for item, status, want, output in self.clients:
            if status != want:
                print("# --- %s (exit %s) ---" % (item["name"], status))
                for line in output.splitlines()[-20:]:
                    print("# " + line)


def main(argv):
    start = time.monotonic()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--relaywatchd", metavar="PATH", required=True,
                    help="the daemon under test")
    ap.add_argument("--runs", default="no,yes",
                    help="smtpd_delay_reject values to run, comma separated "
                         "(default: no,yes)")
    ap.add_argument("--daemon-opt", metavar="NAME=VALUE", action="append", default=[],
                    help="extra -o NAME=VALUE for relaywatchd (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs")
    args = ap.parse_args(argv)
    modes = [m.strip() for m in args.runs.split(",") if m.strip()]
    if not modes or any(m not in ("no", "yes") for m in modes):
        ap.error("--runs takes no, yes or no,yes")

    args.relaywatchd = executable_relaywatchd(args.relaywatchd)
    if args.relaywatchd is None:
        return 1
    if not ready(("postfix", "postconf", "postqueue", "smtp-sink", "smtp-source", "swaks",
                  "ss")):
        return SKIP

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    results = Checks()
    runs = []
    interrupted = False
    for mode in modes:
        if interrupted:
            break
        set_budget(RUN_BUDGET)
        run_start = time.monotonic()
        r = Run(args, mode, results)
        runs.append(r)
        failed_before = results.failed
        interrupted = execute_run(r)
        r.print_table()
        print("# run delay_reject=%s took %.1f s" % (mode, time.monotonic() - run_start))
        r.run_failed = results.failed > failed_before
        if r.run_failed:
            r.diagnostics()
    for r in runs:
        keep_or_remove(r.dir, r.run_failed or args.keep)
    return summary(results, start)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

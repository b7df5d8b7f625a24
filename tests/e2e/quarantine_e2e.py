#!/usr/bin/env python3
"""End-to-end test of the quarantine: a relay's queued mail put on hold when it is
stopped, nobody else's, and released with the key; the request-parsing process
unprivileged, the postsuper runner the only root part.

    python3 tests/e2e/quarantine_e2e.py --relaywatchd build/relaywatchd \\
        --relaywatch build/relaywatch [--runs quarantine,monitor] [--keep]

The issue's words: "an open-relay bot (messages of 20 recipients in 20 distinct
domains, two SMTP sessions at a time) while ordinary users mail, against an
smtp-sink that answers 4xx (smtp-sink -r RCPT), so its accepted messages stay
queued; after the stop every one of them is on hold (postqueue -j), nobody
else's is, and relaywatch release puts them back in the queue."  And: "the
request-parsing process runs as an unprivileged user in the end-to-end run
(checked from /proc)".

Infrastructure: fast_e2e.py's (relay_e2e.py's Run): a private Postfix (smtpd on
127.0.0.1, mynetworks 127.0.0.0/24, check_policy_service in
smtpd_recipient_restrictions and smtpd_end_of_data_restrictions), a private
redis-server (store), a private BIND named (wildcard MX for `example`: the
daemon's own lookups stay on loopback), relaywatchd started as root the way the
README's run command starts it (it gives root up: the built-in user
`relaywatch` does not exist here, so it runs as nobody, and the forked postsuper
runner keeps root) with postfix_config_directory = the private instance's.
Postfix delivers everything to smtp-sink -r RCPT: every delivery is deferred,
every accepted message stays in the queue.

Roles: ordinary users 127.0.0.11-13 (a message every ~0.8 s to partner domains
and local.test); the bot 127.0.0.66 (fast_e2e's: two sessions, messages of 20
recipients in 20 fresh domains, until 3 s after its first 4xx).  The fast path
stops the bot past 50 new relay domains.

Runs:
  quarantine  quarantine = yes (the default): after the stop, every message the
              bot got queued is on hold (postsuper -h for those queued before
              the stop, HOLD at END-OF-MESSAGE for those still in DATA), none
              of the ordinary users' messages is; relaywatch list shows the
              held count; relaywatch release frees them (its count checked)
              and postqueue -j shows them back in the deferred queue.
  monitor     monitor_only = yes and user = daemon (a user that exists): nothing
              is held; the log says what would be; the daemon runs as daemon.

Exit status 0 when every check passes, 1 otherwise, 77 (skip) when not root or
a program is missing.  Each run takes about 25 s.
"""

import json
import os
import pwd
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from postfix_harness import (  # noqa: E402  (after the path set-up)
    SINK_ADDR, budget, read_text, start_logged, wait_listening)
import fast_e2e  # noqa: E402
import relay_e2e  # noqa: E402

RUN_BUDGET = 110.0
BOT_ADDR = fast_e2e.BOT_ADDR
BOT_MEMBER = "client_address:%s" % BOT_ADDR
BOT_SENDER = "offers@cheap-deals.example"
WARMUP = 3.0          # ordinary traffic alone before the bot
SETTLE = 15.0         # how long the holds may take after the bot's last message
MONITOR_BOT_MESSAGES = 12
REAL_USER = "daemon"   # in every Debian passwd (base-passwd); uid 1, group daemon
RUNS = {
    "quarantine": {"culprit": "client", "action": "defer", "lookups": True},
    "monitor": {"culprit": "client", "action": "defer", "lookups": True},
}
relay_e2e.RUNS.update(RUNS)  # the harness looks runs up there

HELD_RE = re.compile(r"quarantine: held (\d+) of (\d+) queued messages of client_address:"
                     + re.escape(BOT_ADDR))
RELEASED_RE = re.compile(r"released (\d+) held messages of " + re.escape(BOT_MEMBER))


def proc_status(pid):
    """{field: value} of /proc/PID/status."""
    out = {}
    for line in read_text("/proc/%d/status" % pid).splitlines():
        k, _, v = line.partition(":")
        out[k] = v.split()
    return out


def children(pid):
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                st = proc_status(int(name))
            except OSError:
                continue
            if st.get("PPid") == [str(pid)]:
                kids.append(int(name))
    return kids


class QuarantineRun(fast_e2e.FastRun):
    def __init__(self, args, name, results):
        fast_e2e.FastRun.__init__(self, args, name, results)
        self.prefix = "relaywatch-quarantine-%s-" % name

    @property
    def monitor(self):
        return self.name == "monitor"

    def start_sink(self, dump=True):
        """smtp-sink answering 4xx to every RCPT: Postfix defers every delivery."""
        self.sink = start_logged(["smtp-sink", "-u", "nobody", "-r", "RCPT",
                                  "%s:%d" % (SINK_ADDR, self.sink_port), "100"], self.sink_log)
        wait_listening(SINK_ADDR, self.sink_port, "smtp-sink", 10, self.sink, self.sink_log)

    def write_daemon_conf(self):
        self.daemon_conf = os.path.join(self.dir, "relaywatch.conf")
        lines = self.daemon_conf_lines() + [fast_e2e.DETECTOR_OUT_OF_THE_WAY]
        if self.monitor:
            # And a user that exists (Debian's "daemon"): the path without the fallback.
            lines += ["monitor_only = yes", "user = %s" % REAL_USER]
        with open(self.daemon_conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(self.daemon_conf, 0o644)  # read again by the daemon as nobody on SIGHUP

    def queue_names(self):
        """{queue_id: queue_name} from postqueue -j."""
        return {e["queue_id"]: e["queue_name"] for e in self.queue_json()}

    def ids(self, role):
        return {m.queue_id for m in self.msgs if m.role == role and m.data_code == 250
                and m.queue_id}

    def held(self):
        url = "/held"
        body = self.http_get(url, "held") or ""
        for line in body.splitlines():
            words = line.split(" ", 5)
            if len(words) == 6 and words[5] == BOT_MEMBER:
                return int(words[0]), int(words[1])
        return 0, 0

    def check_privileges(self):
        pid = self.daemon.pid
        st = proc_status(pid)
        uids, gids = st.get("Uid", []), st.get("Gid", [])
        self.check(len(uids) == 4 and "0" not in uids,
                   "relaywatchd (the request-parsing process, pid %d) runs unprivileged: real, "
                   "effective, saved and fs uid not 0" % pid, "Uid: %s" % uids)
        self.check(len(gids) == 4 and "0" not in gids,
                   "relaywatchd's gids are not 0", "Gid: %s" % gids)
        self.check(st.get("Groups", []) == [] or "0" not in st.get("Groups", []),
                   "relaywatchd has no supplementary group 0", "Groups: %s" % st.get("Groups"))
        self.check(st.get("CapEff") == ["0000000000000000"],
                   "relaywatchd has no effective capability", "CapEff: %s" % st.get("CapEff"))
        kids = children(pid)
        runners = [k for k in kids if proc_status(k).get("Uid", [""])[0] == "0"]
        self.check(len(runners) == 1, "one child of relaywatchd keeps root: the postsuper runner",
                   "children %s" % [(k, proc_status(k).get("Uid")) for k in kids])
        self.figure("relaywatchd uid", uids[0] if uids else None)
        text = read_text(self.daemon_log)
        if self.monitor:
            pw = pwd.getpwnam(REAL_USER)
            self.check(uids == [str(pw.pw_uid)] * 4 and gids == [str(pw.pw_gid)] * 4
                       and "gave up root: running as %s " % REAL_USER in text
                       and "does not exist" not in text,
                       "user = %s: the daemon runs as that user (no fallback)" % REAL_USER,
                       "Uid %s Gid %s\n%s" % (uids, gids, fast_e2e.tail_text(self.daemon_log, 10)))
        else:
            self.check("gave up root: running as nobody" in text,
                       "the log says the daemon gave up root (the user relaywatch does not "
                       "exist: nobody)", fast_e2e.tail_text(self.daemon_log, 10))

    def execute(self):
        self.phase = 1
        self.setup()
        self.phase_logs = {1: self.daemon_log}
        self.check_privileges()
        self.stop_background.clear()
        self.threads = []
        for i, (addr, login, sender) in enumerate(self.ordinary_clients(), 1):
            self.start_thread(self.ordinary_loop, i, addr, login, sender)
        time.sleep(WARMUP)
        if self.monitor:
            # Never stopped in monitor_only: twelve messages (240 recipients) are enough.
            self.bot_messages = fast_e2e.BOT_MAX_MESSAGES - MONITOR_BOT_MESSAGES
        bots = [self.start_thread(self.bot_loop, i) for i in range(fast_e2e.BOT_SESSIONS)]
        for t in bots:
            t.join(budget(40))
        bot_ids = self.ids("bot")
        self.figure("bot messages queued (DATA 250)", len(bot_ids))
        if self.monitor:
            self.check(self.first_4xx is None and re.search(
                r"monitor_only: would throttle client_address:%s " % re.escape(BOT_ADDR),
                read_text(self.daemon_log)),
                "monitor_only: the bot is not stopped, the log says it would be")
        else:
            self.check(self.first_4xx is not None, "the bot was stopped (a 4xx to its RCPT)")
        self.check(len(bot_ids) >= 3, "the bot got at least 3 messages queued before its stop",
                   "%d" % len(bot_ids))

        # The holds follow the stop within a second or two.
        deadline = fast_e2e.now() + budget(SETTLE)
        q = self.queue_names()
        while not self.monitor and fast_e2e.now() < deadline:
            q = self.queue_names()
            if all(q.get(i) == "hold" for i in bot_ids) and self.held()[1] == 0:
                break
            time.sleep(0.2)
        self.stop_background.set()
        for t in self.threads:
            t.join(budget(20))
        time.sleep(1.0)
        q = self.queue_names()
        bot_ids = self.ids("bot")
        others = self.ids("ordinary")
        self.figure("ordinary messages queued", len(others))
        self.check(len(others) >= 5, "ordinary users got messages queued", "%d" % len(others))
        self.check(all(i in q for i in others),
                   "every ordinary message is still in the queue (smtp-sink defers them all)",
                   "missing: %s" % sorted(i for i in others if i not in q))
        self.check(not any(q.get(i) == "hold" for i in others),
                   "no ordinary user's message is on hold",
                   "held: %s" % sorted(i for i in others if q.get(i) == "hold"))
        log = read_text(self.daemon_log)
        if self.monitor:
            self.check(not any(v == "hold" for v in q.values()),
                       "monitor_only: nothing in the hold queue", json.dumps(q))
            self.check("monitor_only: would hold" in log,
                       "monitor_only: the log says what would be held",
                       fast_e2e.tail_text(self.daemon_log, 20))
            self.check(self.held() == (0, 0), "monitor_only: the daemon holds nothing")
            return
        on_hold = sorted(i for i in bot_ids if q.get(i) == "hold")
        self.figure("bot messages on hold", len(on_hold))
        self.check(len(on_hold) == len(bot_ids),
                   "every message the bot got queued is on hold (postqueue -j)",
                   "not held: %s" % {i: q.get(i) for i in bot_ids if q.get(i) != "hold"})
        self.check(set(i for i, name in q.items() if name == "hold") == set(bot_ids),
                   "the hold queue holds the bot's messages and nothing else",
                   json.dumps(q))
        by_postsuper = sum(int(m.group(1)) for m in HELD_RE.finditer(log))
        maillog = read_text(self.maillog)
        self.figure("held with postsuper -h (queued before the stop)", by_postsuper)
        self.figure("held by a HOLD answer at END-OF-MESSAGE (in DATA at the stop)",
                    len(re.findall(r"hold: END-OF-MESSAGE from", maillog)))
        self.check(by_postsuper >= 1, "postsuper -h (through the runner) held what was queued "
                   "before the stop", "\n".join(l for l in log.splitlines() if "quarantine" in l))
        held, being = self.held()
        self.check_equal((held, being), (len(on_hold), 0),
                         "GET /held: the bot's held count, nothing still being held")
        listed = self.relaywatch("list")
        self.check(listed.returncode == 0 and re.search(
            r"^%s\s.*\s%d since " % (re.escape(BOT_MEMBER), len(on_hold)), listed.stdout, re.M),
            "relaywatch list shows the bot's held count and since when", listed.stdout + listed.stderr)
        js = self.relaywatch("list", "--json")
        try:
            entry = [e for e in json.loads(js.stdout)["held"]
                     if e["kind"] == "client_address" and e["key"] == BOT_ADDR]
        except (ValueError, KeyError, TypeError):
            entry = []
        self.check(len(entry) == 1 and entry[0]["messages"] == len(on_hold)
                   and entry[0]["since"] is not None,
                   "relaywatch list --json: the held entry", js.stdout + js.stderr)
        try:
            quarantine = json.loads(self.http_get("/status", "status"))["hosts"][0]["quarantine"]
        except (ValueError, KeyError, IndexError, TypeError):
            quarantine = {}
        self.check(quarantine.get("held") == len(on_hold) and quarantine.get("postsuper_runner"),
                   "/status quarantine: the held count, the runner there", json.dumps(quarantine))

        # Release: the messages go back to the queue, the count said.
        rel = self.relaywatch("release", BOT_MEMBER)
        m = RELEASED_RE.search(rel.stdout)
        self.figure("relaywatch release says", (m.group(0) if m else rel.stdout.strip()))
        self.check(rel.returncode == 0 and m is not None and int(m.group(1)) == len(on_hold),
                   "relaywatch release says how many it freed (all of them)",
                   rel.stdout + rel.stderr)
        q = self.queue_names()
        self.check(not any(q.get(i) == "hold" for i in bot_ids),
                   "after the release none of the bot's messages is on hold",
                   json.dumps({i: q.get(i) for i in bot_ids}))
        self.check(all(q.get(i) in ("deferred", "active", "incoming") for i in bot_ids),
                   "after the release the bot's messages are back in the queue",
                   json.dumps({i: q.get(i) for i in bot_ids}))
        self.check(self.held() == (0, 0), "GET /held: nothing held after the release")

    def http_get(self, path, label):
        return fast_e2e.FastRun.http_get(self, path, label)


def main(argv):
    return relay_e2e.main(argv, QuarantineRun, tuple(RUNS), RUN_BUDGET, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

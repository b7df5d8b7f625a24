#!/usr/bin/env python3
"""The study's four days as syslog files: a Postfix maillog and the upstream name server's
BIND 9 query log, for `relaywatch analyze` and its backtest.

Source: Matsuba, Musashi, Sugitani, "Statistical Analysis in Syslog Files in DNS and Spam SMTP
Relay Servers" (2003), Table 1, as the issue quotes it: the mail host's queries to its upstream
name server per day ("quiet days MX 27/36, A 114/58, PTR 36/16"):

    day          MX       A      PTR   the mail host
    2003-10-10       27     114    36   quiet
    2003-10-11       36      58    16   quiet
    2003-10-12   35,801   1,544    22   relaying from 05:30
    2003-10-13   17,244   1,269    21   relaying until 11:30; a new peak 17:00-18:00

The query log holds these counts exactly (it is the ground truth for the DNS figures); the mail
host asks no AAAA (2003).  Everything else is invented and deterministic (seeded):

- The mail host is mail.example.ac.jp, 192.0.2.25 (syslog host "mail"); the name server
  192.0.2.2 (syslog host "ns").  Only documentation addresses (192.0.2.0/24, 198.51.100.0/24,
  203.0.113.0/24, 2001:db8::/32) and names (example.ac.jp, *.example, *.test).
- Legitimate mail on every day, day-heavy: inbound sessions from other MTAs (postscreen, then
  smtpd; 1-3 messages each, local delivery), authenticated submissions on postfix/submission/smtpd
  (SASL PLAIN) delivered out by postfix/smtp, cron mail through pickup, refused RCPTs
  (NOQUEUE: reject), sessions lost after EHLO, bots postscreen drops (its CONNECT and its
  NOQUEUE: reject are Postfix lines with from=< but no smtpd connect and no refusal).
- The relay: SASL user "webform" from 198.51.100.7 (unknown[198.51.100.7]) on submission, from
  05:30 on Oct 12 to 11:30 on Oct 13 and again 17:00-18:00 on Oct 13, several messages per
  session, each to 1-3 recipients at domains never seen before; one MX query per new domain
  (the relay's share of each minute's MX is planned so the day totals are Table 1's: about 32 a
  minute on Oct 12, 23 on Oct 13); about 40 % of deliveries deferred.  Deferred messages are
  not retried within the files, so every queue ID has exactly one qmgr "(queue active)" line
  and nf (lines) equals queued messages.
- DNS: a PTR query at the first smtpd connect of each client address per day (so the day's
  distinct smtpd clients are Table 1's PTR count), an A query to confirm each PTR name that
  resolves, an MX query per outbound domain first used that day, an A query for some MX hosts
  (most answers carry glue), DNSBL A lookups for inbound sessions.  Four other clients of the
  name server (desktops and a web server, one on IPv6) ask A/AAAA/PTR and a few MX a day.
- One line format each: RFC 3164 without a year ("Oct 12 05:30:01 mail postfix/smtpd[4321]:
  ..."), BIND 9.3-style "client ADDR#PORT: query: NAME IN TYPE +" through syslog, plus a few
  named lines that are not queries and must not count.

Usage: study_days.py OUTDIR   (writes OUTDIR/maillog and OUTDIR/querylog, prints a summary)
Import: write_study(outdir) -> dict of the expected figures (see its docstring).
"""
import json
import os
import random
import sys
from datetime import datetime, timedelta

SEED = 20031010
START = datetime(2003, 10, 10)
DAYS = ["2003-10-10", "2003-10-11", "2003-10-12", "2003-10-13"]
TABLE1 = {
    "2003-10-10": {"mx": 27, "a": 114, "ptr": 36},
    "2003-10-11": {"mx": 36, "a": 58, "ptr": 16},
    "2003-10-12": {"mx": 35801, "a": 1544, "ptr": 22},
    "2003-10-13": {"mx": 17244, "a": 1269, "ptr": 21},
}
MAIL_ADDR = "192.0.2.25"
NS_ADDR = "192.0.2.2"
LOCAL_DOMAIN = "example.ac.jp"
CULPRIT_USER = "webform"
CULPRIT_ADDR = "198.51.100.7"
CULPRIT_KEYS = ["sasl_username:" + CULPRIT_USER, "client_address:" + CULPRIT_ADDR]
DAY = 86400
# Relay windows in seconds from START: Oct 12 05:30 - Oct 13 11:30, Oct 13 17:00 - 18:00.
RELAY = (2 * DAY + 5 * 3600 + 30 * 60, 3 * DAY + 11 * 3600 + 30 * 60)
PEAK = (3 * DAY + 17 * 3600, 3 * DAY + 18 * 3600)
# Legitimate outbound domains looked up on the loud days (the rest of their MX is the relay's).
LEGIT_MX_LOUD = {"2003-10-12": 9, "2003-10-13": 21}
# Sessions of legitimate mail per day (Fri, Sat, Sun, Mon: a holiday in Japan, Sports Day).
SESSIONS = {"2003-10-10": 170, "2003-10-11": 70, "2003-10-12": 60, "2003-10-13": 75}
# Hour weights: quiet at night, busy in office hours.
PROFILE = [0.3, 0.2, 0.2, 0.2, 0.2, 0.3, 0.4, 0.8, 1.5, 2.2, 2.4, 2.2, 1.4, 2.0, 2.3, 2.2, 2.0,
           1.6, 1.1, 0.9, 0.8, 0.7, 0.5, 0.4]
FIELDS = ["nc", "nf", "nf_log", "refused", "mx", "a", "aaaa", "ptr"]
OTHER_CLIENTS = {  # address: (A, AAAA, PTR, MX) per weekday; weekend days a third
    "192.0.2.31": (640, 120, 40, 3),
    "192.0.2.32": (410, 60, 25, 2),
    "192.0.2.80": (300, 0, 150, 5),    # the web server: PTR for its access log
    "2001:db8:0:1::33": (220, 220, 10, 1),
}
USERS = ["tanaka", "suzuki", "sato", "yamada", "kato", "ito", "watanabe", "nakamura",
         "kobayashi", "yoshida", "office", "lab-ml"]
WORDS = ["mail", "net", "shop", "info", "cafe", "news", "web", "data", "home", "media", "club",
         "corp", "tech", "trade", "star", "link"]
SPAM_SENDERS = ["sales@promo-deals.example", "info@best-offer.test", "news@cheap-rx.example",
                "offer@win-prize.test"]


def day_of(t):
    return DAYS[int(t // DAY)]


def hour_of(t):
    d = int(t // DAY)
    return "%sT%02d" % (DAYS[d], int(t % DAY) // 3600)


def stamp(t):
    """RFC 3164 time, no year: "Oct 12 05:30:01"."""
    return (START + timedelta(seconds=int(t))).strftime("Oct %d %H:%M:%S")


def iso(t):
    return (START + timedelta(seconds=int(t))).strftime("%Y-%m-%dT%H:%M:%S")


class Study:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.maillog = []   # (time, seq, line)
        self.querylog = []
        self.seq = 0
        self.hours = {}     # "YYYY-MM-DDTHH" -> {field: n}, the mail host's
        self.clients = {}   # address -> day -> {mx, a, aaaa, ptr}
        self.qids = set()
        self.pid = 3000
        self.mx_events = {d: [] for d in DAYS}      # (time, domain) of the mail host's MX
        self.inbound_connects = {d: [] for d in DAYS}  # (time, addr) of port-25 smtpd sessions
        self.relay_minutes = {}  # minute start (s) -> MX planned for the relay
        self.relay_messages = 0
        self.relay_recipients = 0

    # ---- bookkeeping ----
    def count(self, t, *fields):
        h = self.hours.setdefault(hour_of(t), dict.fromkeys(FIELDS, 0))
        for f in fields:
            h[f] += 1

    def mail(self, t, prog, pid, text, *fields):
        self.seq += 1
        self.maillog.append((t, self.seq, "%s mail postfix/%s[%d]: %s" % (stamp(t), prog, pid,
                                                                          text)))
        self.count(t, *fields)

    def query(self, t, client, name, qtype):
        self.seq += 1
        self.querylog.append((t, self.seq, "%s ns named[512]: client %s#%d: query: %s IN %s +" % (
            stamp(t), client, self.r.randint(1024, 65535), name, qtype)))
        c = self.clients.setdefault(client, {}).setdefault(day_of(t), dict.fromkeys(
            ["mx", "a", "aaaa", "ptr"], 0))
        c[qtype.lower()] += 1
        if client == MAIL_ADDR:
            self.count(t, qtype.lower())
            if qtype == "MX":
                self.mx_events[day_of(t)].append((t, name))

    def named_other(self, t, text):
        self.seq += 1
        self.querylog.append((t, self.seq, "%s ns named[512]: %s" % (stamp(t), text)))

    def new_pid(self):
        self.pid = 3000 + (self.pid - 3000 + self.r.randint(1, 40)) % 60000
        return self.pid

    def qid(self, t):
        while True:
            q = "%05X%X" % (int((t % 1) * 1e6) ^ self.r.randint(0, 0xFFFFF) & 0xFFFFF,
                            self.r.randint(0x10000, 0xFFFFFF))
            if q not in self.qids:
                self.qids.add(q)
                return q

    def rand_time(self, day_index, lo=5, hi=DAY - 120, weights=PROFILE):
        """A time in the day, day-heavy, within [lo, hi) seconds of the day."""
        while True:
            h = self.r.choices(range(24), weights)[0]
            s = h * 3600 + self.r.random() * 3600
            if lo <= s < hi:
                return day_index * DAY + s

    # ---- one message's lines after smtpd's client= line ----
    def message(self, t, sender, rcpts, smtpd_prog, smtpd_pid, client, sasl=None, deliver=None):
        """client: "NAME[ADDR]"; rcpts: addresses; deliver(t, queue_id, rcpt) -> (sent, time
        of its line).
        Returns the time after the message."""
        q = self.qid(t)
        if smtpd_prog is None:  # pickup
            self.mail(t, "pickup", 1101, "%s: uid=0 from=<%s>" % (q, sender), "nf_log")
        else:
            extra = ", sasl_method=PLAIN, sasl_username=%s" % sasl if sasl else ""
            self.mail(t, smtpd_prog, smtpd_pid, "%s: client=%s%s" % (q, client, extra))
        t += self.r.uniform(0.05, 0.4)
        self.mail(t, "cleanup", self.new_pid(), "%s: message-id=<%d.%s@%s>" % (
            q, int(t * 1000), q.lower(), sender.split("@")[-1] if "@" in sender else "mail." +
            LOCAL_DOMAIN))
        t += self.r.uniform(0.01, 0.2)
        size = self.r.randint(900, 60000)
        self.mail(t, "qmgr", 1102, "%s: from=<%s>, size=%d, nrcpt=%d (queue active)" % (
            q, sender, size, len(rcpts)), "nf", "nf_log")
        all_sent = True
        last = t
        for rc in rcpts:
            sent, t2 = deliver(t + self.r.uniform(0.2, 3.0), q, rc)
            all_sent &= sent
            last = max(last, t2)
        if all_sent:
            self.mail(last + 0.01, "qmgr", 1102, "%s: removed" % q)
        return t + self.r.uniform(0.3, 1.5)

    def deliver_local(self, t, q, rcpt):
        d = self.r.uniform(0.1, 1.2)
        self.mail(t, "local", self.new_pid(), "%s: to=<%s>, relay=local, delay=%.2g, "
                  "delays=%.2g/0/0/%.2g, dsn=2.0.0, status=sent (delivered to mailbox)" % (
                      q, rcpt, d + 0.3, d, 0.3))
        return True, t

    def deliver_smtp(self, t, q, rcpt, deferred=False, mx_query=False):
        dom = rcpt.split("@")[1]
        if mx_query:
            self.query(t, MAIL_ADDR, dom, "MX")
        ip = "203.0.113.%d" % (hash_int(dom) % 254 + 1)
        t += self.r.uniform(0.2, 2.0)
        if deferred:
            why = self.r.choice([
                "connect to mx.%s[%s]:25: Connection timed out" % (dom, ip),
                "host mx.%s[%s] said: 450 4.7.1 <%s>: Recipient address rejected: Greylisted "
                "(in reply to RCPT TO command)" % (dom, ip, rcpt),
                "host mx.%s[%s] refused to talk to me: 421 Too many connections" % (dom, ip)])
            self.mail(t, "smtp", self.new_pid(), "%s: to=<%s>, relay=mx.%s[%s]:25, delay=%.1f, "
                      "delays=0.1/0/30/0, dsn=4.4.1, status=deferred (%s)" % (
                          q, rcpt, dom, ip, 30.1, why))
            return False, t
        self.mail(t, "smtp", self.new_pid(), "%s: to=<%s>, relay=mx.%s[%s]:25, delay=%.1f, "
                  "delays=0.1/0/0.6/0.4, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as %X)" % (
                      q, rcpt, dom, ip, 1.1, self.r.randint(0x100000, 0xFFFFFFF)))
        return True, t


def hash_int(s):
    h = 0
    for ch in s:
        h = (h * 131 + ord(ch)) & 0xFFFFFFFF
    return h


def legit_day(st, di):
    """One day's legitimate mail and the mail host's DNS for it (PTR, confirming A, outbound MX
    and the MX hosts' A, DNSBL A).  Returns nothing; DNS budgets of Table 1 are met exactly."""
    r = st.r
    day = DAYS[di]
    t1 = TABLE1[day]
    loud = day in LEGIT_MX_LOUD
    n_mx = LEGIT_MX_LOUD[day] if loud else t1["mx"]
    n_addr = t1["ptr"] - (1 if loud else 0)  # the relay client is one of the loud days' PTRs
    # The day's smtpd clients: internal submitters and external MTAs (some without a PTR name).
    n_int = max(3, n_addr // 2)
    addrs = []
    for k in range(n_int):
        a = "192.0.2.%d" % (100 + (di * 7 + k) % 100)
        addrs.append(("pc%d.%s" % (100 + (di * 7 + k) % 100, LOCAL_DOMAIN), a, "sub"))
    for k in range(n_addr - n_int):
        n = (di * 31 + k * 7) % 250 + 1
        a = ("203.0.113.%d" if k % 2 else "198.51.100.%d") % (n if n != 7 else 8)
        name = "unknown" if k % 5 == 4 else "mx%d.%s.example" % (k, WORDS[k % len(WORDS)])
        addrs.append((name, a, "in"))
    assert len({a for _, a, _ in addrs}) == n_addr
    # Sessions: each address once, then repeats; times day-heavy; kept before 23:58.
    sessions = [(st.rand_time(di), c) for c in addrs]
    for _ in range(SESSIONS[day] - len(addrs)):
        sessions.append((st.rand_time(di), r.choice(addrs)))
    sessions.sort(key=lambda s: s[0])
    seen_addr = set()
    outbound = []  # (time, rcpts, sender, client, user, pid) planned, MX decided in time order
    for t, (name, addr, kind) in sessions:
        pid = st.new_pid()
        client = "%s[%s]" % (name, addr)
        prog = "submission/smtpd" if kind == "sub" else "smtpd"
        if kind == "in":
            port = r.randint(1024, 65535)
            st.mail(t - 0.6, "postscreen", 1100, "CONNECT from [%s]:%d to [%s]:25" % (
                addr, port, MAIL_ADDR))
            st.mail(t - 0.5, "postscreen", 1100, "PASS OLD [%s]:%d" % (addr, port))
        st.mail(t, prog, pid, "connect from %s" % client, "nc")
        if addr not in seen_addr:
            seen_addr.add(addr)
            rev = ".".join(reversed(addr.split("."))) + ".in-addr.arpa"
            st.query(t, MAIL_ADDR, rev, "PTR")
            if name != "unknown":
                st.query(t + 0.01, MAIL_ADDR, name, "A")
        if kind == "in":
            st.inbound_connects[day].append((t, addr))
        t += r.uniform(0.3, 1.0)
        u = r.random()
        if kind == "in" and u < 0.12:  # lost after EHLO: a connect with no mail
            t += r.uniform(1, 20)
            st.mail(t, prog, pid, "lost connection after EHLO from %s" % client)
            st.mail(t + 0.01, prog, pid, "disconnect from %s ehlo=1 commands=1" % client)
            continue
        nmsg = r.choices([1, 2, 3], [0.35, 0.35, 0.3])[0]
        nrej = 0
        if kind == "in" and u < 0.40:
            nrej = r.randint(1, 2)
        for _ in range(nrej):
            t += r.uniform(0.2, 2)
            rc = "%s%d@%s" % (r.choice(USERS), r.randint(100, 999), LOCAL_DOMAIN)
            st.mail(t, prog, pid, "NOQUEUE: reject: RCPT from %s: 550 5.1.1 <%s>: Recipient "
                    "address rejected: User unknown in local recipient table; from=<%s> "
                    "to=<%s> proto=ESMTP helo=<%s>" % (
                        client, rc, "info@%s.example" % r.choice(WORDS), rc,
                        name if name != "unknown" else addr), "refused", "nf_log")
        for _ in range(nmsg):
            t += r.uniform(0.5, 4)
            if kind == "in":
                sender = "%s@%s%d.example" % (r.choice(USERS), r.choice(WORDS), r.randint(1, 60))
                rcpts = ["%s@%s" % (u2, LOCAL_DOMAIN)
                         for u2 in r.sample(USERS, r.choices([1, 2, 3], [0.7, 0.2, 0.1])[0])]
                t = st.message(t, sender, rcpts, prog, pid, client,
                               deliver=st.deliver_local)
            else:
                user = name.split(".")[0]
                outbound.append((t, user, pid, client, prog))
                t += 2.0
        st.mail(t + 0.1, prog, pid, "disconnect from %s ehlo=1 mail=%d rcpt=%d data=%d quit=1 "
                "commands=%d" % (client, nmsg, nmsg + nrej, nmsg, 3 + 2 * nmsg + nrej))
    # Outbound: exactly n_mx distinct domains, each looked up at its first delivery.
    domains = ["%s%d.example" % (WORDS[(di + k) % len(WORDS)], 100 + k) for k in range(n_mx)]
    assert len(outbound) >= n_mx, (day, len(outbound), n_mx)
    order = list(domains) + [r.choice(domains) for _ in range(len(outbound) - n_mx)]
    head, tail = order[:n_mx], order[n_mx:]
    r.shuffle(tail)
    # The first n_mx outbound messages in time order bring the new domains.
    seen_dom = set()
    for (t, user, pid, client, prog), dom in zip(outbound, head + tail):
        rcpts = ["%s@%s" % (r.choice(["info", "sales", "prof", "k.abe", "admin"]), dom)]

        def deliver(t2, q, rc):
            d = rc.split("@")[1]
            new = d not in seen_dom
            seen_dom.add(d)
            return st.deliver_smtp(t2, q, rc, deferred=r.random() < 0.05, mx_query=new)
        st.message(t, "%s@%s" % (user, LOCAL_DOMAIN), rcpts, prog, pid, client, sasl=user,
                   deliver=deliver)
    assert seen_dom == set(domains)
    # Cron mail through pickup (a from=< line without a connect), and bots postscreen drops.
    for _ in range(4):
        t = st.rand_time(di, weights=[1] * 24)
        st.message(t, "root", ["root@%s" % LOCAL_DOMAIN], None, 0, None,
                   deliver=st.deliver_local)
    for k in range(r.randint(3, 8)):
        t = st.rand_time(di, weights=[1] * 24)
        a = "203.0.113.%d" % r.randint(200, 250)
        port = r.randint(1024, 65535)
        st.mail(t, "postscreen", 1100, "CONNECT from [%s]:%d to [%s]:25" % (a, port, MAIL_ADDR))
        if k % 2:
            st.mail(t + 0.1, "postscreen", 1100, "PREGREET 11 after 0.09 from [%s]:%d: EHLO "
                    "user\\r\\n" % (a, port))
        else:
            st.mail(t + 6, "postscreen", 1100, "NOQUEUE: reject: RCPT from [%s]:%d: 550 5.7.1 "
                    "Service unavailable; client [%s] blocked using bl.example; from=<x@%s>, "
                    "to=<tanaka@%s>, proto=ESMTP, helo=<%s>" % (
                        a, port, a, "promo.test", LOCAL_DOMAIN, a), "nf_log")
        st.mail(t + 6.5, "postscreen", 1100, "DISCONNECT [%s]:%d" % (a, port))


def relay(st):
    """The culprit's sessions: per minute of the relay windows, the planned MX of that minute
    as new domains, packed into messages of 1-3 recipients and sessions of 4-12 messages."""
    r = st.r
    minutes = {d: [] for d in DAYS}
    for lo, hi in (RELAY, PEAK):
        for m in range(lo, hi, 60):
            minutes[day_of(m)].append(m)
    n = 0
    ptr_done = set()
    for day in DAYS:
        if not minutes[day]:
            continue
        total = TABLE1[day]["mx"] - LEGIT_MX_LOUD[day]
        mins = minutes[day]
        base, extra = divmod(total, len(mins))
        plus = set(r.sample(range(len(mins)), extra))
        for i, m in enumerate(mins):
            k = base + (1 if i in plus else 0)
            st.relay_minutes[m] = k
            sizes = []
            while k > 0:
                s = min(k, r.choices([1, 2, 3], [0.3, 0.4, 0.3])[0])
                sizes.append(s)
                k -= s
            # Sessions of 4-12 messages, started in the first 40 s of the minute.
            j = 0
            while j < len(sizes):
                per = r.randint(4, 12)
                chunk = sizes[j:j + per]
                j += per
                pid = st.new_pid()
                client = "unknown[%s]" % CULPRIT_ADDR
                if day not in ptr_done:  # the day's first connect: smtpd asks the PTR
                    ptr_done.add(day)
                    t = m + 0.2
                    st.mail(t, "submission/smtpd", pid, "connect from %s" % client, "nc")
                    rev = ".".join(reversed(CULPRIT_ADDR.split("."))) + ".in-addr.arpa"
                    st.query(t, MAIL_ADDR, rev, "PTR")
                else:
                    t = m + r.uniform(1, 40 - 1.2 * len(chunk))
                    st.mail(t, "submission/smtpd", pid, "connect from %s" % client, "nc")
                t += 0.1
                for s in chunk:
                    rcpts = []
                    for _ in range(s):
                        n += 1
                        rcpts.append("%s@%s%d.%s" % (
                            r.choice(["info", "user", "admin", "sales", "contact", "webmaster"]),
                            WORDS[n % len(WORDS)], n, "example" if n % 3 else "test"))
                    st.relay_messages += 1
                    st.relay_recipients += s

                    def deliver(t2, q, rc):
                        return st.deliver_smtp(min(t2, m + 55), q, rc,
                                               deferred=r.random() < 0.4, mx_query=True)
                    st.message(t, r.choice(SPAM_SENDERS), rcpts, "submission/smtpd", pid,
                               client, sasl=CULPRIT_USER, deliver=deliver)
                    t += r.uniform(0.6, 1.2)
                st.mail(min(t, m + 58), "submission/smtpd", pid,
                        "disconnect from %s ehlo=1 auth=1 mail=%d rcpt=%d data=%d quit=1 "
                        "commands=%d" % (client, len(chunk), sum(chunk), len(chunk),
                                         3 + 2 * len(chunk) + sum(chunk)))


def fill_a(st):
    """The rest of each day's A budget: A for some MX hosts (right after their MX query) and
    DNSBL lookups at inbound connects."""
    r = st.r
    for day in DAYS:
        have = sum(h["a"] for k, h in st.hours.items() if k.startswith(day))
        rest = TABLE1[day]["a"] - have
        assert rest >= 0, (day, rest)
        mxs = st.mx_events[day]
        conns = st.inbound_connects[day]
        if day in LEGIT_MX_LOUD:
            n_bl = min(len(conns), rest // 4)
        else:
            n_bl = rest - min(len(mxs), rest // 2)
        for t, d in r.sample(mxs, rest - n_bl):
            st.query(t, MAIL_ADDR, "mx." + d, "A")
        for i in range(n_bl):
            t, a = conns[i % len(conns)]
            bl = "bl.example" if i < len(conns) else "dnsbl.test"
            st.query(t + 0.02, MAIL_ADDR, ".".join(reversed(a.split("."))) + "." + bl, "A")


def other_clients(st):
    r = st.r
    for di, day in enumerate(DAYS):
        scale = 1.0 if di in (0, 3) else 0.33
        for addr, counts in OTHER_CLIENTS.items():
            for qtype, n in zip(["A", "AAAA", "PTR", "MX"], counts):
                n = int(n * scale * r.uniform(0.8, 1.2))
                for _ in range(n):
                    t = st.rand_time(di)
                    if qtype == "PTR":
                        name = "%d.113.0.203.in-addr.arpa" % r.randint(1, 254)
                    elif qtype == "MX":
                        name = "%s%d.example" % (r.choice(WORDS), r.randint(1, 99))
                    else:
                        name = "www.%s%d.example" % (r.choice(WORDS), r.randint(1, 400))
                    st.query(t, addr, name, qtype)
        # Lines of named that are not queries.
        t = di * DAY + 3 * 3600 + 17
        st.named_other(t, "zone %s/IN: loaded serial 20031010%02d" % (LOCAL_DOMAIN, di + 1))
        st.named_other(t + 4000, "lame server resolving 'www.shop7.example' (in 'shop7.example'?)"
                                 ": 203.0.113.53#53")
        st.named_other(t + 9000, "client 192.0.2.31#1032: query (cache) 'x.example/A/IN' denied")
        st.named_other(t + 20000, "received control channel command 'reload'")
        st.named_other(t + 20001, "client 192.0.2.3#1029: transfer of '%s/IN': AXFR started" %
                       LOCAL_DOMAIN)


def write_study(outdir, seed=SEED):
    """Write outdir/maillog and outdir/querylog; return the expected figures:
      days:   {"2003-10-10": {nc, nf, nf_log, refused, mx, a, aaaa, ptr, alpha}, ...} (the mail
              host's DNS; the same dicts also at the top level under each day for short access)
      hours:  {"2003-10-12T05": {nc, nf, nf_log, refused, mx, a, aaaa, ptr}, ...} (every hour)
      clients: {address: {day: {mx, a, aaaa, ptr}}} (every client of the name server)
      mx_client, culprits, relay {start, end}, peak {start, end} (ISO local times, no zone),
      relay_minutes {ISO minute: planned relay MX}, relay_messages, relay_recipients,
      files {maillog, querylog: {path, lines, bytes}}."""
    st = Study(seed)
    for di in range(len(DAYS)):
        legit_day(st, di)
    relay(st)
    fill_a(st)
    other_clients(st)
    days = {}
    for day in DAYS:
        d = dict.fromkeys(FIELDS, 0)
        for k, h in st.hours.items():
            if k.startswith(day):
                for f in FIELDS:
                    d[f] += h[f]
        d["alpha"] = d["nc"] / d["nf_log"] if d["nf_log"] else None
        for f in ("mx", "a", "ptr"):
            assert d[f] == TABLE1[day][f], (day, f, d[f], TABLE1[day][f])
        days[day] = d
    hours = {}
    for di, day in enumerate(DAYS):
        for h in range(24):
            k = "%sT%02d" % (day, h)
            hours[k] = st.hours.get(k, dict.fromkeys(FIELDS, 0))
    os.makedirs(outdir, exist_ok=True)
    files = {}
    for name, lines in (("maillog", st.maillog), ("querylog", st.querylog)):
        lines.sort()
        path = os.path.join(outdir, name)
        text = "\n".join(line for _, _, line in lines) + "\n"
        with open(path, "w", encoding="ascii") as f:
            f.write(text)
        files[name] = {"path": path, "lines": len(lines), "bytes": len(text)}
    mx_by_client = {}
    for c, per in st.clients.items():
        mx_by_client[c] = sum(v["mx"] for v in per.values())
    out = {
        "days": days,
        "hours": hours,
        "clients": st.clients,
        "mx_client": max(mx_by_client, key=mx_by_client.get),
        "culprits": CULPRIT_KEYS,
        "relay": {"start": iso(RELAY[0]), "end": iso(RELAY[1])},
        "peak": {"start": iso(PEAK[0]), "end": iso(PEAK[1])},
        "relay_minutes": {iso(m)[:16]: k for m, k in sorted(st.relay_minutes.items())},
        "relay_messages": st.relay_messages,
        "relay_recipients": st.relay_recipients,
        "files": files,
    }
    out.update(days)
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: study_days.py OUTDIR")
    res = write_study(sys.argv[1])
    print(json.dumps({"days": res["days"], "mx_client": res["mx_client"],
                      "culprits": res["culprits"], "relay": res["relay"], "peak": res["peak"],
                      "relay_messages": res["relay_messages"], "files": res["files"]}, indent=1))


if __name__ == "__main__":
    main()

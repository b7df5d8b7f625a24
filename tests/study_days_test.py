#!/usr/bin/env python3
"""Self-check of tests/study_days.py (the study's four days as syslog files): its files are
generated into a temporary directory and counted here, independently, with grep-like regexes;
every figure write_study returns must equal those counts, and the DNS counts Table 1's
(typed again here, not taken from the generator).  Also: quiet days' alpha in the study's band,
relay hours far below it, MX about constant per minute during the relay and low outside it,
the mail host the top MX client, the culprit's lines, unique queue IDs, lines in time order,
the same files from two runs, runtime and size.

Usage: study_days_test.py   (no arguments; exit 0 or 1 with every failure listed)
"""
import collections
import hashlib
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import study_days  # noqa: E402

TABLE1 = {  # Matsuba, Musashi, Sugitani (2003), Table 1: the mail host's queries a day
    "2003-10-10": {"mx": 27, "a": 114, "ptr": 36},
    "2003-10-11": {"mx": 36, "a": 58, "ptr": 16},
    "2003-10-12": {"mx": 35801, "a": 1544, "ptr": 22},
    "2003-10-13": {"mx": 17244, "a": 1269, "ptr": 21},
}
MAIL = "192.0.2.25"
HEADER = re.compile(r"^Oct (\d\d) (\d\d):(\d\d):(\d\d) (\S+) ([^\[: ]+)\[(\d+)\]: (.*)$")
QUERY = re.compile(r"^client (\S+)#\d+: query: (\S+) IN (\S+) \+$")
FAILURES = []


def check(ok, what):
    if not ok:
        FAILURES.append(what)


def key(day, hh):
    return "2003-10-%sT%s" % (day, hh)


def count_maillog(path):
    """Per hour: nc, nf, nf_log, refused as maillog.h defines them, counted with regexes; and
    the lines the other checks need."""
    hours = collections.defaultdict(collections.Counter)
    qmgr_ids = collections.Counter()
    client_ids = {}
    culprit = []      # (hour key, queue ID, address) of webform's client= lines
    to_domains = collections.defaultdict(list)  # queue ID -> recipient domains of smtp to=
    times = []
    bad = []
    with open(path, encoding="ascii") as f:
        for line in f:
            m = HEADER.match(line.rstrip("\n"))
            if not m or m.group(5) != "mail" or not m.group(6).startswith("postfix/"):
                bad.append(line)
                continue
            dd, hh, mi, ss, _, tag, _, msg = m.groups()
            times.append((dd, hh, mi, ss))
            h = hours[key(dd, hh)]
            prog = tag.split("/")[-1]
            if "from=<" in msg:
                h["nf_log"] += 1
            if prog == "smtpd" and re.match(r"connect from \S+\[[0-9a-f.:]+\]$", msg):
                h["nc"] += 1
            if prog in ("smtpd", "cleanup") and msg.startswith("NOQUEUE: reject: "):
                h["refused"] += 1
            q = re.match(r"([0-9A-F]+): from=<[^>]*>, size=\d+, nrcpt=\d+ \(queue active\)$",
                         msg)
            if prog == "qmgr" and q:
                h["nf"] += 1
                qmgr_ids[q.group(1)] += 1
            c = re.match(r"([0-9A-F]+): client=[^\[]+\[([^\]]+)\](, sasl_method=PLAIN, "
                         r"sasl_username=(\S+))?$", msg)
            if prog == "smtpd" and c:
                client_ids[c.group(1)] = c.group(2)
                if c.group(4) == "webform":
                    culprit.append((key(dd, hh), c.group(1), c.group(2), mi))
            t = re.match(r"([0-9A-F]+): to=<[^@>]+@([^>]+)>, relay=mx\.", msg)
            if prog == "smtp" and t:
                to_domains[t.group(1)].append(t.group(2))
    return hours, qmgr_ids, client_ids, culprit, to_domains, times, bad


def count_querylog(path):
    """Per client, day and type; the mail host's per hour and per minute; and other lines."""
    clients = collections.defaultdict(lambda: collections.defaultdict(collections.Counter))
    hours = collections.defaultdict(collections.Counter)
    minutes = collections.Counter()
    other, times, bad = 0, [], []
    with open(path, encoding="ascii") as f:
        for line in f:
            m = HEADER.match(line.rstrip("\n"))
            if not m or m.group(5) != "ns" or m.group(6) != "named":
                bad.append(line)
                continue
            dd, hh, mi, ss, _, _, _, msg = m.groups()
            times.append((dd, hh, mi, ss))
            q = QUERY.match(msg)
            if not q:
                other += 1
                continue
            addr, _, qtype = q.groups()
            clients[addr]["2003-10-" + dd][qtype.lower()] += 1
            if addr == MAIL:
                hours[key(dd, hh)][qtype.lower()] += 1
                if qtype == "MX":
                    minutes["2003-10-%sT%s:%s" % (dd, hh, mi)] += 1
    return clients, hours, minutes, other, times, bad


def main():
    with tempfile.TemporaryDirectory(prefix="study_days_") as d:
        t0 = time.monotonic()
        res = study_days.write_study(d)
        took = time.monotonic() - t0
        check(took < 10, "generation took %.1f s (limit 10)" % took)
        ml, ql = os.path.join(d, "maillog"), os.path.join(d, "querylog")
        size = os.path.getsize(ml) + os.path.getsize(ql)
        check(size < 60e6, "files of %d bytes (limit 60 MB)" % size)
        digest = [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in (ml, ql)]

        hours, qmgr_ids, client_ids, culprit, to_domains, mtimes, mbad = count_maillog(ml)
        clients, qhours, minutes, other, qtimes, qbad = count_querylog(ql)
        check(not mbad, "maillog lines of another form: %r" % mbad[:3])
        check(not qbad, "querylog lines of another form: %r" % qbad[:3])
        check(mtimes == sorted(mtimes), "maillog not in time order")
        check(qtimes == sorted(qtimes), "querylog not in time order")
        check(other >= 4, "only %d named lines that are not queries" % other)
        check(res["files"]["maillog"]["lines"] == len(mtimes), "maillog line count")
        check(res["files"]["querylog"]["lines"] == len(qtimes), "querylog line count")

        # Every hour's figures, then every day's, against the counts.
        fields = ["nc", "nf", "nf_log", "refused", "mx", "a", "aaaa", "ptr"]
        check(len(res["hours"]) == 96, "%d hours, not 96" % len(res["hours"]))
        for k, exp in res["hours"].items():
            got = {f: hours[k][f] for f in fields[:4]}
            got.update({f: qhours[k][f] for f in fields[4:]})
            check(got == {f: exp[f] for f in fields}, "hour %s: counted %s, returned %s" % (
                k, got, exp))
        for day in TABLE1:
            exp = res["days"][day]
            check(exp is res[day] or exp == res[day], "res[%s] differs from res['days']" % day)
            got = collections.Counter()
            for k in hours:
                if k.startswith(day):
                    got.update({f: hours[k][f] for f in fields[:4]})
            got.update({f: clients[MAIL][day][f] for f in fields[4:]})
            for f in fields:
                check(got[f] == exp[f], "%s %s: counted %d, returned %d" % (day, f, got[f], exp[f]))
            for f in ("mx", "a", "ptr"):
                check(got[f] == TABLE1[day][f], "%s %s: %d, Table 1 says %d" % (
                    day, f, got[f], TABLE1[day][f]))
            check(got["aaaa"] == 0, "%s: the mail host asked AAAA" % day)
            check(abs(exp["alpha"] - got["nc"] / got["nf_log"]) < 1e-12, "%s alpha" % day)
            # The mail host asks the most MX, every day; the other clients' counts as returned.
            top = max(clients, key=lambda c: clients[c][day]["mx"])
            check(top == MAIL, "%s: top MX client %s" % (day, top))
            others = [c for c in clients if c != MAIL and clients[c][day]]
            check(3 <= len(others) <= 5, "%s: %d other clients" % (day, len(others)))
            for c in clients:
                exp_c = res["clients"].get(c, {}).get(day, {})
                for f in ("mx", "a", "aaaa", "ptr"):
                    check(clients[c][day][f] == exp_c.get(f, 0), "%s %s %s" % (day, c, f))
        check(res["mx_client"] == MAIL, "mx_client %s" % res["mx_client"])

        # alpha: in the study's band on the quiet days; far below in every whole relay hour.
        for day in ("2003-10-10", "2003-10-11"):
            a = res["days"][day]["alpha"]
            check(0.35 <= a <= 0.70, "%s alpha %.3f outside 0.35-0.70" % (day, a))
        relay_hours = [key("12", "%02d" % h) for h in range(6, 24)] + \
                      [key("13", "%02d" % h) for h in range(0, 11)] + [key("13", "17")]
        for k in relay_hours:
            a = hours[k]["nc"] / max(1, hours[k]["nf_log"])
            check(a < 0.25, "%s: relay hour alpha %.3f" % (k, a))
        # Quiet before 05:30 on Oct 12, between 11:30 and 17:00 and after 18:00 on Oct 13.
        quiet = [key("12", "%02d" % h) for h in range(0, 5)] + \
                [key("13", "%02d" % h) for h in list(range(12, 17)) + list(range(18, 24))]
        for k in quiet:
            check(qhours[k]["mx"] <= 5, "%s: %d MX in a quiet hour" % (k, qhours[k]["mx"]))
            check(hours[k]["nc"] <= 20, "%s: %d connects in a quiet hour" % (k, hours[k]["nc"]))
        # MX about constant per minute in the relay: ~32 on Oct 12, ~23 on Oct 13.
        for day, lo, hi, n in (("12", 30, 38, 1110), ("13", 21, 28, 750)):
            ms = [v for k, v in minutes.items() if k.startswith("2003-10-" + day) and v >= 10]
            check(len(ms) == n, "Oct %s: %d loud minutes, not %d" % (day, len(ms), n))
            check(ms and lo <= min(ms) and max(ms) <= hi,
                  "Oct %s: MX a minute %s..%s, not within %d..%d" % (
                      day, min(ms, default=0), max(ms, default=0), lo, hi))
        for k, v in res["relay_minutes"].items():
            check(minutes[k] >= v, "%s: %d MX counted, %d planned for the relay" % (
                k, minutes[k], v))
        check(res["relay"] == {"start": "2003-10-12T05:30:00", "end": "2003-10-13T11:30:00"},
              "relay %s" % res["relay"])
        check(res["peak"] == {"start": "2003-10-13T17:00:00", "end": "2003-10-13T18:00:00"},
              "peak %s" % res["peak"])

        # The culprit: webform from 198.51.100.7 only, only in the relay windows, each
        # recipient at a domain seen nowhere else.
        check(res["culprits"] == ["sasl_username:webform", "client_address:198.51.100.7"],
              "culprits %s" % res["culprits"])
        check(len(culprit) == res["relay_messages"], "webform sent %d messages, returned %d" % (
            len(culprit), res["relay_messages"]))
        check({a for _, _, a, _ in culprit} == {"198.51.100.7"}, "webform's addresses")
        inside = {key("12", "05")} | set(relay_hours) | {key("13", "11")}
        check(all(k in inside for k, _, _, _ in culprit), "webform outside the relay hours")
        check(all(mi >= "30" for k, _, _, mi in culprit if k == key("12", "05")) and
              all(mi < "30" for k, _, _, mi in culprit if k == key("13", "11")),
              "webform before 05:30 or after 11:30")
        doms = [dm for _, q, _, _ in culprit for dm in to_domains[q]]
        check(len(doms) == res["relay_recipients"] == len(set(doms)),
              "relay recipients %d, distinct domains %d, returned %d" % (
                  len(doms), len(set(doms)), res["relay_recipients"]))
        legit = {dm for q, ds in to_domains.items() for dm in ds} - set(doms)
        check(not (legit & set(doms)), "a relay domain also used by legitimate mail")

        # Queue IDs: short Postfix form, one qmgr line each, each client= line queued once.
        check(all(re.fullmatch(r"[0-9A-F]{6,21}", q) for q in qmgr_ids), "queue ID form")
        check(max(qmgr_ids.values()) == 1, "a queue ID with two qmgr lines")
        check(set(client_ids) <= set(qmgr_ids), "a client= queue ID never queued")

        # The same files again.
        study_days.write_study(d)
        again = [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in (ml, ql)]
        check(again == digest, "a second run wrote other files")

    for f in FAILURES[:50]:
        print("FAIL:", f)
    if FAILURES:
        print("%d failures" % len(FAILURES))
        return 1
    print("study_days: %.1f s, %d bytes, %d maillog and %d querylog lines; %s" % (
        took, size, res["files"]["maillog"]["lines"], res["files"]["querylog"]["lines"],
        "; ".join("%s nc %d nf %d nf_log %d refused %d mx %d a %d ptr %d alpha %.3f" % (
            day, v["nc"], v["nf"], v["nf_log"], v["refused"], v["mx"], v["a"], v["ptr"],
            v["alpha"]) for day, v in res["days"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""relaywatch analyze on the study's four days and on real logs.

- The study's four days (tests/study_days.py, Table 1 of Matsuba et al.): per-day nc, nf, nf_log,
  refused, alpha and the mail host's MX/A/AAAA/PTR exactly the generator's; the mail host chosen
  as the client with the most MX queries; the backtest (the daemon's own detector and fast
  path) loud within 5 minutes of 05:30 on Oct 12, no incident on the quiet days, the 17:00 peak
  of Oct 13 caught as an incident of its own, the culprit named; by hour, the loud hours are the
  relay's; --svg renders to a PNG that is not blank; --csv one row per period.
- A real multi-day production maillog (pixelpark/postfix-logsums' test/mail.log, three days of a
  real server "helga", LGPL-3.0, tests/data/real/PROVENANCE.md), given gzip-compressed: nc, nf
  and nf_log per day equal the grep-like counts of the same file, 0 incidents; a line left
  unparsed is none.
- Every real sample in tests/data/real: no line unparsed, counts equal grep's.
- Bad input: binary garbage and a 1 MB line counted, the first shown with FILE:LINE; a truncated
  gzip file is exit 1 naming the file; usage errors exit 2.
"""
import gzip
import json
import lzma
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import analyze_svg_test  # noqa: E402
import study_days  # noqa: E402
import testlib  # noqa: E402

RELAYWATCHD = None
RELAYWATCH = None
TMP = None
HERE = os.path.dirname(os.path.abspath(__file__))
REAL = os.path.join(HERE, "data", "real")
STUDY = {}

# The lines' meanings as relaywatch(1) gives them, written here as regexes over whole lines.
POSTFIX = r"postfix(?:-[^/\s\[]+)?(?:/[^/\s\[]+)*"
NC = re.compile(POSTFIX.replace(r"(?:/[^/\s\[]+)*", r"(?:/[^/\s\[]+)*/smtpd") +
                r"\[\d+\]: connect from [^\s\[]*\[[^\]]+\]")
NF = re.compile(POSTFIX + r"/qmgr\[\d+\]: [0-9A-Za-z]+: from=<[^>]*>, size=\d+, nrcpt=\d+ \(queue active\)")
NF_LOG = re.compile(POSTFIX + r"(?:\[\d+\])?: .*from=<")


def analyze(*args, timeout=300, check=True):
    p = subprocess.run([RELAYWATCH, "analyze", "-o", "dns_lookups="] + list(args),
                       capture_output=True, timeout=timeout)
    if check:
        assert p.returncode == 0, (p.returncode, p.stderr.decode(errors="replace")[-2000:])
    return p


def analyze_json(*args, timeout=300):
    return json.loads(analyze(*args, "--json", timeout=timeout).stdout)


def study():
    if not STUDY:
        d = os.path.join(TMP, "study")
        os.mkdir(d)
        STUDY["expect"] = study_days.write_study(d)
        STUDY["maillog"] = os.path.join(d, "maillog")
        STUDY["querylog"] = os.path.join(d, "querylog")
    return STUDY


def test_study_days_counts_and_backtest():
    s = study()
    exp = s["expect"]
    svg = os.path.join(TMP, "study.svg")
    # The query log named first on purpose: files are ordered by their first time.
    out = analyze_json("--querylog", s["querylog"], "--maillog", s["maillog"], "--year", "2003",
                       "--backtest", "--svg", svg, timeout=600)
    assert out["mx_clients"] == [exp["mx_client"]], out["mx_clients"]
    days = {p["start"][:10]: p for p in out["periods"]}
    assert sorted(days) == sorted(exp["days"]), sorted(days)
    for day, want in exp["days"].items():
        got = days[day]
        for k in ("nc", "nf", "nf_log", "refused"):
            assert got[k] == want[k], (day, k, got[k], want[k])
        for k in ("mx", "a", "aaaa", "ptr"):
            assert got["dns"][k] == want[k], (day, k, got["dns"][k], want[k])
        assert abs(got["alpha"] - want["nc"] / want["nf_log"]) < 1e-9, (day, got["alpha"])
        assert got["start"] == day + "T00:00:00", got["start"]
    # Table 1, typed again: the generator is not the only witness.
    assert [days[d]["dns"]["mx"] for d in sorted(days)] == [27, 36, 35801, 17244]
    assert [days[d]["dns"]["a"] for d in sorted(days)] == [114, 58, 1544, 1269]
    assert [days[d]["dns"]["ptr"] for d in sorted(days)] == [36, 16, 22, 21]
    assert [days[d]["loud"] for d in sorted(days)] == [False, False, True, True]
    inc = out["incidents"]
    assert len(inc) == 2, inc
    first, peak = inc
    assert "2003-10-12T05:30:00" <= first["start"] <= "2003-10-12T05:35:00", first
    assert first["end"] is not None and "2003-10-13T11:30:00" <= first["end"] <= "2003-10-13T12:00:00", first
    assert "2003-10-13T17:00:00" <= peak["start"] <= "2003-10-13T17:05:00", peak
    for i in inc:
        assert "sasl_username:webform" in i["culprits"], i
        assert i["reason"].startswith("loud: MX"), i["reason"]
    bt = out["backtest"]
    assert "2003-10-12T05:30:00" <= bt["first_stop"] <= "2003-10-12T05:35:00", bt
    assert bt["answers"]["DEFER"] + bt["answers"]["REJECT"] > 0.9 * exp["relay_messages"], bt
    assert out["input"]["unparsed_lines"] == 0, out["input"]
    assert out["input"]["lines"] == exp["files"]["maillog"]["lines"] + exp["files"]["querylog"]["lines"]
    # The chart: well-formed, rendered, not blank.
    if shutil.which("rsvg-convert") is None:
        raise AssertionError("needed and missing: rsvg-convert (Debian package librsvg2-bin)")
    png = os.path.join(TMP, "study.png")
    subprocess.run(["rsvg-convert", "-o", png, svg], check=True, timeout=60)
    _, _, rows = analyze_svg_test.read_png(png)
    pixels = [px for row in rows for px in row]
    ink = sum(1 for px in pixels if px[:3] != (255, 255, 255))
    assert 0.03 < ink / len(pixels) < 0.7, ink / len(pixels)
    assert len(set(pixels)) > 20, len(set(pixels))


def test_study_by_hour_csv():
    s = study()
    exp = s["expect"]
    p = analyze("--maillog", s["maillog"], "--querylog", s["querylog"], "--year", "2003",
                "--by", "hour", "--csv", "--from", "2003-10-12", "--to", "2003-10-13T00:00")
    rows = p.stdout.decode().splitlines()
    assert rows[0] == "start,nc,nf,nf_log,refused,alpha,mx,a,aaaa,ptr,loud", rows[0]
    assert len(rows) == 25, len(rows)
    for row in rows[1:]:
        f = row.split(",")
        want = exp["hours"][f[0][:13]]
        assert [int(f[1]), int(f[2]), int(f[3]), int(f[4])] == \
            [want["nc"], want["nf"], want["nf_log"], want["refused"]], (row, want)
        assert [int(x) for x in f[6:10]] == [want["mx"], want["a"], want["aaaa"], want["ptr"]], (row, want)
        assert f[10] == "false"  # no --backtest: nothing judged


def grep_counts(lines):
    per_day = {}
    for line in lines:
        m = re.match(r"(\d{4}-\d{2}-\d{2})T", line)
        day = m.group(1) if m else None
        c = per_day.setdefault(day, [0, 0, 0])
        c[0] += bool(NC.search(line))
        c[1] += bool(NF.search(line))
        c[2] += bool(NF_LOG.search(line))
    return per_day


def test_real_three_days_gzip():
    text = lzma.decompress(open(os.path.join(REAL, "pixelpark-helga-3days.log.xz"), "rb").read())
    path = os.path.join(TMP, "helga.log.gz")
    with gzip.open(path, "wb") as f:
        f.write(text)
    lines = text.decode("utf-8", errors="replace").splitlines()
    want = grep_counts(lines)
    out = analyze_json("--maillog", path, "--backtest", timeout=600)
    got = {p["start"][:10]: [p["nc"], p["nf"], p["nf_log"]] for p in out["periods"]}
    assert got == want, (got, want)
    assert len(got) == 3
    assert out["periods"][0]["start"].endswith("+01:00"), out["periods"][0]["start"]
    assert out["incidents"] == [], out["incidents"]
    # Deliveries after qmgr's line were replayed as RCPTs (smtp and the site's own).
    assert out["backtest"]["rcpts"] > 300 and out["backtest"]["relay_rcpts"] > 100, out["backtest"]
    assert out["input"]["unparsed_lines"] == 0, out["input"]
    assert out["input"]["lines"] == len(lines)


def test_backtest_gap_bounded():
    """A line 96 years after the one before: the clock jumps (not 3 billion ticks)."""
    path = os.path.join(TMP, "gap.log")
    with open(path, "w") as f:
        f.write("2003-10-12T05:30:01Z mail postfix/smtpd[1]: connect from a[192.0.2.1]\n")
        f.write("2099-10-12T05:30:01Z mail postfix/smtpd[1]: connect from a[192.0.2.1]\n")
    out = analyze_json("--maillog", path, "--backtest", timeout=120)
    assert len(out["periods"]) == 2 and out["incidents"] == [], out


def quiet_mail(stamp, seconds, qid):
    """One relayed message at a time given by stamp(seconds): connect, client=, qmgr, smtp."""
    host = "mail"
    return "".join("%s %s %s\n" % (stamp(seconds + k), host, text) for k, text in enumerate([
        "postfix/smtpd[%d]: connect from c%d.example[192.0.2.%d]" % (100 + qid % 50, qid, 1 + qid % 200),
        "postfix/smtpd[%d]: %s: client=c%d.example[192.0.2.%d]" % (100 + qid % 50, "%010X" % qid, qid, 1 + qid % 200),
        "postfix/qmgr[9]: %s: from=<a@example.org>, size=100, nrcpt=1 (queue active)" % ("%010X" % qid),
        "postfix/smtp[10]: %s: to=<b@d%d.example>, relay=mx.d%d.example[198.51.100.1]:25, "
        "delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)" % ("%010X" % qid, qid, qid)]))


def test_backtest_summer_time_ends():
    """The night summer time ends: one message a minute to a new domain throughout, the hour
    from 02:00 to 03:00 written twice.  Read as the clock went, nothing is loud; piled into
    one second (the written time going back), the repeated hour would be 60 new domains at
    once.  analyze's -o options are relaywatchd's.  Once with RFC 3339 offsets (+02:00 then +01:00), once year-less without."""
    def iso(offset):
        return lambda t: "2026-10-25T%02d:%02d:%02d%s" % (t // 3600, t // 60 % 60, t % 60, offset)

    months = lambda t: "Oct 25 %02d:%02d:%02d" % (t // 3600, t // 60 % 60, t % 60)
    for name, before, after in (("offsets", iso("+02:00"), iso("+01:00")), ("local", months, months)):
        path = os.path.join(TMP, "dst-%s.log" % name)
        qid = 1
        with open(path, "w") as f:
            for t in range(0, 3 * 3600, 60):  # 00:00 to 03:00 summer time
                f.write(quiet_mail(before, t, qid))
                qid += 1
            for t in range(2 * 3600, 5 * 3600, 60):  # 02:00 to 05:00 winter time
                f.write(quiet_mail(after, t, qid))
                qid += 1
        # Factors of 3: the steady 10 domains a window stay quiet, a pile of 60 would not.
        out = analyze_json("--maillog", path, "--year", "2026", "--backtest", "--by", "hour",
                           "-o", "detect_mx_factor=3", "-o", "detect_domains_factor=3")
        assert out["incidents"] == [], (name, out["incidents"])
        assert out["backtest"]["relay_rcpts"] == qid - 1, (name, out["backtest"])


def test_unbound_other_lines():
    """unbound's own file: its notice and stats lines are other lines, not unparsed ones."""
    path = os.path.join(TMP, "unbound.log")
    with open(path, "w") as f:
        f.write("[1700000000] unbound[1234:0] notice: init module 0: validator\n")
        f.write("[1700000001] unbound[1234:0] info: 192.0.2.25 example.com. MX IN\n")
        f.write("[1700000002] unbound[1234:0] info: server stats for thread 0: 2 queries\n")
    out = analyze_json("--querylog", path)
    assert out["input"]["unparsed_lines"] == 0 and out["input"]["other_lines"] == 2, out["input"]
    assert out["mx_clients"] == ["192.0.2.25"], out


def test_every_real_sample():
    for name in sorted(os.listdir(REAL)):
        if not name.endswith(".log"):
            continue
        path = os.path.join(REAL, name)
        lines = open(path, "rb").read().decode("utf-8", errors="replace").splitlines()
        out = analyze_json("--maillog", path)
        assert out["input"]["unparsed_lines"] == 0, (name, out["input"])
        assert out["input"]["lines"] == len(lines), (name, out["input"], len(lines))
        total = [sum(p[k] for p in out["periods"]) for k in ("nc", "nf", "nf_log")]
        want = [sum(1 for ln in lines if r.search(ln)) for r in (NC, NF, NF_LOG)]
        assert total == want, (name, total, want)


def test_journal_json():
    """journalctl -o json: aecid's real records (not Postfix) read as other lines; a Postfix
    record in the same shape counted, at its UTC time."""
    path = os.path.join(TMP, "journal.json")
    real = open(os.path.join(REAL, "aecid-journal-json-sample.jsonl"), "rb").read()
    postfix = {"__REALTIME_TIMESTAMP": "1697088601000000", "_HOSTNAME": "mail",
               "SYSLOG_IDENTIFIER": "postfix/smtpd", "_PID": "4242",
               "MESSAGE": "connect from unknown[192.0.2.7]"}
    with open(path, "wb") as f:
        f.write(real + json.dumps(postfix).encode() + b"\n")
    out = analyze_json("--maillog", path, "--by", "hour")
    assert out["input"]["unparsed_lines"] == 0, out["input"]
    assert out["input"]["maillog_lines"] == 1, out["input"]
    p = [p for p in out["periods"] if p["nc"]]
    assert p and p[0]["start"] == "2023-10-12T05:00:00Z", p


def test_bad_input():
    junk = os.path.join(TMP, "junk.log")
    with open(junk, "wb") as f:
        f.write(os.urandom(200000).replace(b"\n", b"x") + b"\n")
        f.write(b"y" * (1 << 20) + b"\n")
        f.write(b"Oct 12 05:30:01 mail postfix/smtpd[1]: connect from a[192.0.2.1]\n")
        f.write(b"\x00\x01\x02 binary\n")
    p = analyze("--maillog", junk, "--year", "2003", "--json")
    out = json.loads(p.stdout)
    assert out["input"]["lines"] == 4 and out["input"]["unparsed_lines"] == 3, out["input"]
    assert out["input"]["cut_lines"] == 2, out["input"]
    assert out["periods"][0]["nc"] == 1, out["periods"]
    err = p.stderr.decode()
    assert "junk.log:1:" in err and "junk.log:4:" in err, err
    # A truncated gzip file: exit 1 naming it, nothing on standard output presented as whole.
    whole = gzip.compress(open(STUDY_OR_SAMPLE(), "rb").read())
    cut = os.path.join(TMP, "cut.log.gz")
    with open(cut, "wb") as f:
        f.write(whole[:len(whole) // 2])
    p = analyze("--maillog", cut, check=False)
    assert p.returncode == 1 and p.stdout == b"", p
    assert b"cut.log.gz" in p.stderr, p.stderr
    for bad in (["--by", "week"], ["--from", "yesterday"], ["--year", "03"], ["--json", "--csv"], []):
        p = analyze(*(bad + (["--maillog", junk] if bad else [])), check=False)
        assert p.returncode == 2, (bad, p)
    p = analyze("--maillog", os.path.join(TMP, "missing.log"), check=False)
    assert p.returncode == 1 and b"missing.log" in p.stderr, p


def STUDY_OR_SAMPLE():
    return os.path.join(REAL, "pixelpark-helga-midnight.log")


TESTS = [
    test_study_days_counts_and_backtest,
    test_study_by_hour_csv,
    test_real_three_days_gzip,
    test_backtest_gap_bounded,
    test_backtest_summer_time_ends,
    test_unbound_other_lines,
    test_every_real_sample,
    test_journal_json,
    test_bad_input,
]

if __name__ == "__main__":
    sys.exit(testlib.main(sys.modules[__name__], TESTS, "rw-analyze-", with_cli=True))

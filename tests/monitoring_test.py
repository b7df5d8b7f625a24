#!/usr/bin/env python3
"""Test of monitoring/: the Prometheus alerting rules and the Grafana dashboard against a real
relaywatchd's GET /metrics.

- promtool check rules on monitoring/relaywatch-alerts.yml; every alert has a severity, a
  summary and a description that sends the operator somewhere (relaywatch status / list, the
  log);
- promtool test rules with monitoring/relaywatch-alerts.test.yml (each alert fires where it
  should and not beside it), on a copy of the rules without annotations (promtool compares
  annotations word for word; the thresholds are what is tested);
- a relaywatchd on free loopback ports, with a private redis-server (store, tdns_client) and a
  silent private "name server" (a UDP socket on loopback that never answers: the lookups time
  out, and the DNS series exist), answers policy requests and a block over its control socket;
  its /metrics passes promtool check metrics with nothing to say;
- the dashboard is JSON Grafana imports (__inputs DS_PROMETHEUS, an instance variable, panels
  with unique ids and gridPos, targets with expr on ${DS_PROMETHEUS});
- every metric every dashboard and rule expression names is in that /metrics, and the label
  values they select on (signal="mx", outcome=~"timeout|servfail", ...) are among its series.

About 2 s.  Exit 77 when promtool, redis-server, redis-cli or python3-yaml is missing.
Usage: monitoring_test.py --relaywatchd PATH --relaywatch PATH [-k NAME]
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import ports
import store_test
import testlib
from testlib import DaemonProcess, free_port, listening_tcp, policy_request, recv_answer, \
    unix_http, wait_for

RELAYWATCHD = None
RELAYWATCH = None
TMP = None

HERE = os.path.dirname(os.path.abspath(__file__))
MONITORING = os.path.join(os.path.dirname(HERE), "monitoring")
RULES = os.path.join(MONITORING, "relaywatch-alerts.yml")
RULES_TEST = os.path.join(MONITORING, "relaywatch-alerts.test.yml")
DASHBOARD = os.path.join(MONITORING, "grafana-dashboard.json")

LOCAL_DOMAIN = "example.org"
# Series Prometheus makes itself, not relaywatchd.
SCRAPE_SERIES = {"up"}
# Labels the scrape adds (not in /metrics).
TARGET_LABELS = {"instance", "job"}

PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
                "group_right", "offset", "bool", "inf", "nan", "atan2"}


def promtool(*args, stdin=None):
    p = subprocess.run(["promtool"] + list(args), input=stdin, capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout + p.stderr


def load_yaml(path):
    import yaml  # python3-yaml (need-packages test)
    with open(path) as f:
        return yaml.safe_load(f)


def alert_rules():
    return [r for g in load_yaml(RULES)["groups"] for r in g["rules"] if "alert" in r]


# ---------------------------------------------------------------- PromQL

def selectors(expr):
    """[(metric name, [(label, op, value)])] of every vector selector in a PromQL expression
    (Grafana's $variables left in place)."""
    out = []
    # Strings first (a regex may hold anything), then what is not a metric name.
    strings = []

    def keep(m):
        strings.append(m.group(0)[1:-1])
        return '"%d"' % (len(strings) - 1)

    e = re.sub(r'"(?:[^"\\]|\\.)*"', keep, expr)
    e = re.sub(r"\[[^\]]*\]", " ", e)  # ranges and subqueries' durations
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?(\s*\()?", e):
        name, braces, call = m.group(1), m.group(2), m.group(3)
        if call and not braces:
            continue  # a function or an aggregation
        if name.lower() in PROMQL_WORDS:
            continue
        matchers = []
        for lm in re.finditer(r'([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"(\d+)"', braces or ""):
            matchers.append((lm.group(1), lm.group(2), strings[int(lm.group(3))]))
        out.append((name, matchers))
    return out


def grouping_labels(expr):
    """Label names in by (...) / without (...) clauses."""
    out = set()
    for m in re.finditer(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        out.update(x.strip() for x in m.group(1).split(",") if x.strip())
    return out


# ---------------------------------------------------------------- the live daemon

class SilentNameServer:
    """A UDP socket on loopback that reads nothing and answers nothing: every lookup times out
    (never the machine's resolver)."""

    def __init__(self):
        self.port = ports.reserve_port(udp=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", self.port))

    def close(self):
        self.sock.close()


def rcpt(sock, n, recipient):
    sock.sendall(policy_request(
        "RCPT", client_address="192.0.2.%d" % (10 + n % 5), client_name="h%d.example.net" % n,
        client_port=str(40000 + n), helo_name="h%d.example.net" % n,
        sender="user%d@example.net" % n, recipient=recipient,
        instance="%x.%08x.%05x.0" % (0x4000 + n, n, n)))
    answer = recv_answer(sock)
    assert answer.startswith(b"action="), answer
    return answer.decode().split("\n")[0]


_LIVE = {}


def live_metrics():
    """The text of /metrics of a relaywatchd that has answered requests (once per run)."""
    if "text" in _LIVE:
        return _LIVE["text"]
    store_test.TMP = TMP
    redis = store_test.Redis()
    ns = SilentNameServer()
    try:
        port, http_port = free_port(), free_port()
        control = os.path.join(TMP, "control.sock")
        conf = os.path.join(TMP, "empty.conf")
        open(conf, "w").close()
        # Lookups go to the silent socket on loopback only, each given up after 200 ms.
        argv = [RELAYWATCHD, "-e", "-c", conf,
                "-o", "dns_lookups=recipient_mx, sender_mx",
                "-o", "resolver=127.0.0.1:%d" % ns.port, "-o", "dns_timeout=200ms",
                "-o", "listen=inet:127.0.0.1:%d" % port,
                "-o", "http_listen=inet:127.0.0.1:%d" % http_port,
                "-o", "control_socket=unix:" + control,
                "-o", "store=redis+unix://" + redis.sock, "-o", "tdns_client=192.0.2.53",
                "-o", "host_id=mx-monitoringtest", "-o", "local_domains=" + LOCAL_DOMAIN,
                "-o", "max_connections=300", "-o", "detect_min_mx=7",
                "-o", "detect_mx_factor=3", "-o", "detect_min_domains=5",
                "-o", "detect_domains_factor=4", "-o", "detect_alpha_factor=2"]
        with DaemonProcess(argv, TMP, "d") as d:
            wait_for(lambda: d.proc.poll() is not None or
                     (listening_tcp(port) and listening_tcp(http_port)),
                     what="relaywatchd to listen")
            assert d.proc.poll() is None, d.text()
            status, body = unix_http(control, "POST", "/throttle?block=client_address:192.0.2.99")
            assert status == 200, (status, body)
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                for n in range(20):  # relay recipients to new domains, and inbound ones
                    rcpt(s, n, "rcpt%d@relay%d.example.com" % (n, n))
                    rcpt(s, n, "local%d@%s" % (n, LOCAL_DOMAIN))
                # The blocked client gets its REJECT: an action other than DUNNO.
                s.sendall(policy_request("RCPT", client_address="192.0.2.99",
                                         sender="x@example.net",
                                         recipient="victim@far.example.com",
                                         instance="7777.00000001.00001.0"))
                blocked = recv_answer(s).decode()
                assert "REJECT" in blocked, blocked
            # The lookups to the silent name server have timed out by now.
            wait_for(lambda: testlib.metrics(http_port).get(
                'relaywatch_dns_lookups_total{type="mx",outcome="timeout"}', 0) > 0,
                what="lookups to time out")
            with socket.create_connection(("127.0.0.1", http_port), timeout=5) as s:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                data = testlib.recv_all(s)
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            _LIVE["text"] = body.decode()
    finally:
        ns.close()
        redis.stop()
    return _LIVE["text"]


def live_families():
    """{family name: {"type": t, "labels": {label: set of values}}} from /metrics, with the
    sample names seen (a histogram's _bucket, _sum and _count under its family)."""
    fams = {}
    samples = {}
    for line in live_metrics().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            fams[name] = {"type": typ, "labels": {}, "samples": set()}
        elif line and not line.startswith("#"):
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? \S+$", line)
            assert m, "unparsable sample line: %r" % line
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
            samples.setdefault(m.group(1), []).append(labels)
    for name, label_sets in samples.items():
        fam = name
        if name not in fams:
            for suffix in ("_bucket", "_sum", "_count"):
                if name.endswith(suffix) and fams.get(name[:-len(suffix)], {}).get("type") == "histogram":
                    fam = name[:-len(suffix)]
        assert fam in fams, "sample %s has no # TYPE line" % name
        fams[fam]["samples"].add(name)
        for ls in label_sets:
            for k, v in ls.items():
                fams[fam]["labels"].setdefault(k, set()).add(v)
    return fams


def check_expr(expr, fams, where):
    """Every metric the expression names is served, with the label values it selects on."""
    sels = selectors(expr)
    assert sels, "%s: no metric found in %r" % (where, expr)
    # A family declared with no sample now (a counter by action, all still 0) counts as served;
    # its labels are then unknown and not checked.
    sample_names = {}
    for f, d in fams.items():
        for s in d["samples"] or ([f + x for x in ("_bucket", "_sum", "_count")]
                                  if d["type"] == "histogram" else [f]):
            sample_names[s] = f
    problems = []
    for name, matchers in sels:
        if name in SCRAPE_SERIES:
            continue
        if name not in sample_names:
            problems.append("%s: metric %s is not in /metrics" % (where, name))
            continue
        labels = fams[sample_names[name]]["labels"]
        if not fams[sample_names[name]]["samples"]:
            continue
        for label, op, value in matchers:
            if label in TARGET_LABELS or "$" in value or op in ("!=", "!~"):
                continue
            if label not in labels:
                problems.append("%s: %s has no label %s" % (where, name, label))
                continue
            wanted = value.split("|") if op == "=~" else [value]
            for v in wanted:
                if re.fullmatch(r"[\w.]+", v) and v not in labels[label]:
                    problems.append("%s: %s{%s=%r}: no such series (have %s)" % (
                        where, name, label, v, sorted(labels[label])))
    have = set(TARGET_LABELS) | {"le"}
    for name, _ in sels:
        if name in sample_names:
            if not fams[sample_names[name]]["samples"]:
                return problems
            have |= set(fams[sample_names[name]]["labels"])
    for label in grouping_labels(expr) - have:
        problems.append("%s: groups by %s, which no series it reads has" % (where, label))
    return problems


# ---------------------------------------------------------------- tests

def test_rules_check():
    rc, out = promtool("check", "rules", RULES)
    print(out.strip())
    assert rc == 0 and "SUCCESS" in out, out
    rules = alert_rules()
    assert len(rules) >= 10, rules
    names = [r["alert"] for r in rules]
    assert len(set(names)) == len(names), names
    for r in rules:
        assert r.get("labels", {}).get("severity") in ("critical", "warning", "info"), r
        ann = r.get("annotations", {})
        assert ann.get("summary") and ann.get("description"), r["alert"]
        assert re.search(r"relaywatch (status|list)|log", ann["description"]), r["alert"]


def test_rules_unit():
    """promtool test rules: each alert fires in the test file, and is expected quiet somewhere."""
    import yaml
    rules = load_yaml(RULES)
    for g in rules["groups"]:
        for r in g["rules"]:
            r.pop("annotations", None)
    work = os.path.join(TMP, "rules")
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, "relaywatch-alerts.yml"), "w") as f:
        yaml.safe_dump(rules, f)
    shutil.copy(RULES_TEST, work)
    rc, out = promtool("test", "rules", os.path.join(work, os.path.basename(RULES_TEST)))
    print(out.strip())
    assert rc == 0 and "SUCCESS" in out, out

    fired, quiet = set(), set()
    for case in load_yaml(RULES_TEST)["tests"]:
        for t in case.get("alert_rule_test", []):
            (fired if t.get("exp_alerts") else quiet).add(t["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert names <= fired, "alerts never expected to fire: %s" % sorted(names - fired)
    assert names <= quiet, "alerts never expected quiet: %s" % sorted(names - quiet)


def test_metrics_lint():
    """promtool check metrics on a live /metrics: nothing to say."""
    text = live_metrics()
    rc, out = promtool("check", "metrics", stdin=text)
    assert rc == 0 and out.strip() == "", "promtool check metrics:\n" + out
    fams = live_families()
    print("%d metric families, %d sample lines" % (
        len(fams), sum(1 for l in text.splitlines() if l and not l.startswith("#"))))
    # Labelled series the requests made.
    assert any(l.startswith('relaywatch_requests_total{state="RCPT",action="DUNNO"}')
               for l in text.splitlines()), text
    assert "REJECT" in fams["relaywatch_requests_total"]["labels"]["action"], fams
    assert re.search(r"^relaywatch_throttled_keys [1-9]", text, re.M), text


def test_gauges_for_monitoring():
    """The gauges added for the dashboard and the rules carry the figures they name."""
    text = live_metrics()
    v = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            v[name] = float(value)
    shown = {k: x for k, x in v.items()
             if re.match(r"relaywatch_(max_conn|detector_(baseline|threshold|alpha)|store_)", k)}
    assert v["relaywatch_max_connections"] == 300, shown
    base = {k: v['relaywatch_detector_baseline{signal="%s"}' % k]
            for k in ("mx", "relay_domains", "alpha")}
    # The detect_* settings the daemon was started with.
    # (printed with 6 significant digits, as the baselines are)
    def near(name, want):
        assert abs(v[name] - want) <= 1e-5 * max(1.0, abs(want)), (name, want, shown)

    near('relaywatch_detector_threshold{signal="mx"}', max(7, 3 * base["mx"]))
    near('relaywatch_detector_threshold{signal="relay_domains"}', max(5, 4 * base["relay_domains"]))
    near('relaywatch_detector_alpha_band{bound="low"}', base["alpha"] / 2)
    near('relaywatch_detector_alpha_band{bound="high"}', base["alpha"] * 2)
    # Redis up: the current minute at most waits for its write.
    assert v['relaywatch_store_up{backend="redis"}'] == 1, shown
    assert 0 <= v["relaywatch_store_unwritten_minute_records"] <= 2, shown
    assert v["relaywatch_store_dropped_minute_records_total"] == 0, shown


def test_dashboard_structure():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    assert dash["__inputs"][0]["name"] == "DS_PROMETHEUS", dash["__inputs"]
    assert dash["__inputs"][0]["pluginId"] == "prometheus", dash["__inputs"]
    assert dash["schemaVersion"] >= 36, dash["schemaVersion"]
    assert dash["title"] and dash["uid"], dash
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert "instance" in variables, variables
    assert variables["instance"]["datasource"]["uid"] == "${DS_PROMETHEUS}"
    ids = [p["id"] for p in dash["panels"]]
    assert len(set(ids)) == len(ids), "panel ids repeat: %s" % ids
    cells = set()
    graphs = 0
    for p in dash["panels"]:
        g = p["gridPos"]
        assert all(isinstance(g[k], int) and g[k] >= 0 for k in "xywh"), p["title"]
        assert g["w"] >= 1 and g["h"] >= 1 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, "panel %r overlaps another" % p["title"]
                cells.add((x, y))
        if p["type"] == "row":
            continue
        graphs += 1
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(set(refs)) == len(refs), p["title"]
        for t in p["targets"]:
            assert t["expr"].strip(), p["title"]
            assert t["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
            assert 'instance=~"$instance"' in t["expr"], (p["title"], t["expr"])
    assert graphs >= 15, graphs


def dashboard_exprs(dash):
    for p in dash["panels"]:
        for t in p.get("targets", []):
            yield "panel %r" % p["title"], t["expr"]
    for a in dash["annotations"]["list"]:
        if "expr" in a:
            yield "annotation %r" % a["name"], a["expr"]
    for v in dash["templating"]["list"]:
        q = v.get("query", {})
        q = q.get("query", "") if isinstance(q, dict) else q
        m = re.fullmatch(r"label_values\(\s*(.*),\s*(\w+)\s*\)", q)
        if m:  # label_values(SELECTOR, LABEL): the selector is PromQL, LABEL a label of it
            yield "variable %r" % v["name"], "count by (%s) (%s)" % (m.group(2), m.group(1))


def test_names_exist():
    """Every metric (and selected label value) of the dashboard and the rules is served."""
    fams = live_families()
    with open(DASHBOARD) as f:
        dash = json.load(f)
    problems = []
    n = 0
    for where, expr in dashboard_exprs(dash):
        problems += check_expr(expr, fams, "dashboard " + where)
        n += 1
    for r in alert_rules():
        problems += check_expr(r["expr"], fams, "rule " + r["alert"])
        n += 1
    print("%d expressions checked" % n)
    assert not problems, "\n".join(problems)


def test_expr_parser():
    """The identifier parser itself: functions, keywords, strings, ranges and groupings are not
    metrics."""
    s = selectors('sum by (instance, le) (rate(a_total{x=~"b|c",y="d e"}[5m])) / ignoring(z) '
                  'histogram_quantile(0.9, b_bucket) > 1e3 and on () c{k="v"} offset 5m')
    assert [n for n, _ in s] == ["a_total", "b_bucket", "c"], s
    assert s[0][1] == [("x", "=~", "b|c"), ("y", "=", "d e")], s
    fams = {"a_total": {"type": "counter", "labels": {"x": {"b"}}, "samples": {"a_total"}}}
    assert check_expr('rate(a_total{x=~"b|c"}[1m])', fams, "t") == \
        ["t: a_total{x='c'}: no such series (have ['b'])"]
    assert check_expr("nope_total", fams, "t") == ["t: metric nope_total is not in /metrics"]
    assert check_expr("sum by (q) (a_total)", fams, "t") == \
        ["t: groups by q, which no series it reads has"]


TESTS = [test_expr_parser, test_rules_check, test_rules_unit, test_dashboard_structure,
         test_metrics_lint, test_gauges_for_monitoring, test_names_exist]

if __name__ == "__main__":
    try:
        import yaml  # noqa: F401  (python3-yaml)
    except ImportError:
        print("needed and missing: python3-yaml")
        sys.exit(77)
    sys.exit(testlib.main(sys.modules[__name__], TESTS, "rw-monitoring-", with_cli=True,
                          requires=("promtool", "redis-server", "redis-cli", "ss")))

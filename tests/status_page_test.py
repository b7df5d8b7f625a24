#!/usr/bin/env python3
"""relaywatchd's HTML status page (GET / on http_listen, policyd/daemon/status_page.c), on a
real daemon and in a real browser (Debian's chromium, headless):

- GET / and HEAD /: 200, text/html, the Content-Security-Policy, nothing external (no src=,
  href=, url(), script, form), the host's state and its badge's colour;
- a key blocked by hand with markup in it and a relay burst from a SASL user whose name is
  markup: every throttled key (as GET /throttle lists it) is on the page HTML-escaped, the raw
  strings nowhere; the host goes loud and the open incident with its culprits is shown;
- the charts: one inline SVG per detector signal, each well-formed XML; once the daemon has run
  past a minute boundary each has two samples or more (the ring is filled once a minute) and
  the loud minute is shaded;
- chromium's screenshot of the page (decoded with zlib and struct) is not blank and shows the
  badge's colour, green while quiet and red while loud; its --dump-dom has the state and the
  throttled key.

Waits for the next minute boundary: 20 to 80 s in all.
Usage: status_page_test.py --relaywatchd PATH --relaywatch PATH [-k NAME]
(RELAYWATCH_KEEP_PAGE=DIR keeps the screenshots there, to look at.)
"""
import html
import html.parser
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import xml.etree.ElementTree as ET

import testlib
from analyze_svg_test import colour_counts, read_png
from testlib import DaemonProcess, free_port, listening_tcp, policy_request, recv_answer, wait_for

RELAYWATCHD = None
RELAYWATCH = None
TMP = None
KEEP = os.environ.get("RELAYWATCH_KEEP_PAGE")  # a directory for the screenshots, to look at

HOST_ID = "mx-page"
LOCAL_DOMAIN = "example.com"
# status_page.c's badge colours and the signals it charts (detector.h's names).
QUIET_RGB = (0x1a, 0x7f, 0x37)
LOUD_RGB = (0xcf, 0x22, 0x2e)
SIGNALS = ["mx", "a", "ptr", "nc", "nf", "relay_rcpt", "relay_domains", "alpha"]
# Charted while no DNS lookups are made (dns_lookups empty): A and PTR are never judged.
JUDGED = ["mx", "nc", "nf", "relay_rcpt", "relay_domains"]
SVG = "{http://www.w3.org/2000/svg}"

HOSTILE_BLOCK = "sasl_username:<script>alert('x')</script>"
# U+202E (right-to-left override) would turn the rest of the row around: shown as U+FFFD.
HOSTILE_SASL = '<img src=x onerror="alert(1)">&bot\u202egnp.exe'


def shown(text):
    """text as the page must show it: HTML-escaped, bidi overrides replaced."""
    return html.escape(text, quote=True).replace("&#x27;", "&#39;").replace("\u202e", "\ufffd")
BADGE_PIXELS = 2000  # the badge is about 140 x 46 CSS pixels


class Daemon(DaemonProcess):
    """relaywatchd with a policy port, http_listen, a control socket and a memory store; a
    detector that goes loud after a few seconds of a small burst."""

    def __init__(self):
        self.port = free_port()
        self.http_port = free_port()
        self.control_path = os.path.join(TMP, "control-%d" % self.port)
        argv = [RELAYWATCHD, "-e", "-o", "dns_lookups=",
                "-o", "listen=inet:127.0.0.1:%d" % self.port,
                "-o", "http_listen=inet:127.0.0.1:%d" % self.http_port,
                "-o", "control_socket=unix:" + self.control_path,
                "-o", "store=memory", "-o", "host_id=" + HOST_ID,
                "-o", "local_domains=" + LOCAL_DOMAIN,
                "-o", "detect_min_mx=5", "-o", "detect_min_domains=5",
                "-o", "detect_loud_after=2s", "-o", "culprit_min_domains=5"]
        super().__init__(argv, TMP, "page")
        wait_for(lambda: self.proc.poll() is not None or
                 (listening_tcp(self.port) and listening_tcp(self.http_port)),
                 what="relaywatchd to listen")
        assert self.proc.poll() is None, "relaywatchd exited early:\n" + self.text()
        self.n = 0

    def get(self, target, method="GET"):
        """(status, headers {lower name: value}, body text)."""
        c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=5)
        try:
            c.request(method, target)
            r = c.getresponse()
            body = r.read().decode()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, body
        finally:
            c.close()

    def page(self):
        status, headers, body = self.get("/")
        assert status == 200, (status, body[:300])
        return headers, body

    def rcpt(self, client, recipient, sasl=""):
        self.n += 1
        req = policy_request("RCPT", client_address=client, client_port=str(2000 + self.n),
                             sender="bot@" + LOCAL_DOMAIN, recipient=recipient,
                             instance="%x.%08x.0" % (0x5000 + self.n, self.n),
                             sasl_method="PLAIN" if sasl else "", sasl_username=sasl)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(req)
            return recv_answer(s).decode().split("\n")[0]


# ------------------------------------------------------------------ checks

class Markup(html.parser.HTMLParser):
    """Every start tag of a page with its attributes, and the text of its <style>."""

    def __init__(self, page):
        super().__init__(convert_charrefs=True)
        self.tags, self.style, self.in_style = [], "", False
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))
        self.in_style = tag == "style"

    def handle_endtag(self, tag):
        self.in_style = False

    def handle_data(self, data):
        if self.in_style:
            self.style += data


def check_self_contained(page):
    """Nothing on the page loads or runs anything: no element that could, no attribute naming
    something elsewhere, no event handler, no url() in the styles."""
    m = Markup(page)
    for tag, attrs in m.tags:
        assert tag not in ("script", "iframe", "object", "embed", "img", "image", "link",
                           "form", "base", "use", "foreignobject", "a", "input", "button"), tag
        for name, value in attrs:
            assert name not in ("src", "href", "xlink:href", "action", "srcset", "poster"), \
                (tag, name, value)
            assert not name.startswith("on"), (tag, name)
            value = value or ""
            if name != "xmlns":
                assert "://" not in value and "url(" not in value.lower(), (tag, name, value)
    assert "url(" not in m.style.lower() and "@import" not in m.style.lower()
    refresh = [a for t, a in m.tags if t == "meta" and ("http-equiv", "refresh") in a]
    assert len(refresh) == 1 and re.fullmatch(r"\d+", dict(refresh[0])["content"]), refresh


def check_headers(headers):
    assert headers["content-type"] == "text/html; charset=utf-8", headers
    csp = [p.strip() for p in headers["content-security-policy"].split(";")]
    assert "default-src 'none'" in csp and "style-src 'unsafe-inline'" in csp, csp
    assert not any("script-src" in p for p in csp), csp
    assert headers.get("x-content-type-options") == "nosniff", headers


def state_of(page):
    """The badge in the state block: 'quiet' or 'loud', checked against its text."""
    m = re.search(r'<div class="state" id="state"><span class="badge (quiet|loud)">([A-Z]+)'
                  r'</span>', page)
    assert m, "no state badge on the page"
    assert m.group(2) == m.group(1).upper(), m.groups()
    return m.group(1)


def charts(page):
    """{signal: parsed <svg>}: every chart must be well-formed XML on its own."""
    out = {}
    for text in re.findall(r"<svg\b.*?</svg>", page, re.S):
        root = ET.fromstring(text)  # raises on anything not well-formed
        assert root.tag == SVG + "svg", root.tag
        out[root.get("data-signal")] = root
    assert sorted(out) == sorted(SIGNALS), sorted(out)
    return out


def value_points(svg):
    """The (x, y) points of the value lines of a chart."""
    pts = []
    for line in svg.iter(SVG + "polyline"):
        if line.get("class") == "value":
            pts += [tuple(float(c) for c in p.split(",")) for p in line.get("points").split()]
    return pts


# ---------------------------------------------------------------- chromium

def chromium(*args):
    """Run headless chromium on its own profile, at most 60 s; its stdout.  Its whole process
    group is killed afterwards (it leaves helpers behind otherwise)."""
    exe = shutil.which("chromium")
    assert exe, "chromium missing (Debian package chromium; scripts/need-packages test)"
    home = tempfile.mkdtemp(dir=TMP, prefix="chromium-")
    argv = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-proxy-server",
            # No name is looked up: only the loopback address the page is served on.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--user-data-dir=" + os.path.join(home, "profile"),
            "--window-size=1200,1600"] + list(args)
    env = dict(os.environ, HOME=home)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        out, err = b"", b"timed out after 60 s"
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
    assert p.returncode == 0 or out, "chromium: %r" % err[-2000:]
    return out.decode(errors="replace"), err.decode(errors="replace")


def screenshot(url, name):
    path = os.path.join(TMP, name)
    _, err = chromium("--screenshot=" + path, url)
    assert os.path.exists(path), "no screenshot: " + err[-2000:]
    if KEEP:
        shutil.copy(path, KEEP)
    return read_png(path)


def near_count(counts, rgb, tolerance=6):
    return sum(n for px, n in counts.items()
               if all(abs(a - b) <= tolerance for a, b in zip(px, rgb)))


def check_screenshot(url, name, state):
    width, height, rows = screenshot(url, name)
    assert (width, height) == (1200, 1600), (width, height)
    counts = colour_counts(rows)
    white = counts.get((255, 255, 255), 0)
    distinct = len({(r >> 4, g >> 4, b >> 4) for r, g, b in counts})
    assert white < 0.97 * width * height, "blank page: %d white pixels" % white
    assert distinct >= 20, "only %d distinct colours" % distinct
    badge, other = (QUIET_RGB, LOUD_RGB) if state == "quiet" else (LOUD_RGB, QUIET_RGB)
    assert near_count(counts, badge) >= BADGE_PIXELS, \
        "%s badge colour: %d pixels" % (state, near_count(counts, badge))
    assert near_count(counts, other, 2) < 200, "the other state's colour is on the page"
    testlib_print("%s: %d distinct colours, %d%% white, %d badge pixels" % (
        name, distinct, 100 * white // (width * height), near_count(counts, badge)))


def testlib_print(text):
    print(text, flush=True)


# ------------------------------------------------------------------ the test

def wait_past_minute(margin=2.5):
    """Sleep until `margin` seconds past the next minute boundary of the wall clock (the
    daemon's counting clock runs from it)."""
    now = time.time()
    time.sleep(60 - now % 60 + margin)


def test_status_page():
    d = Daemon()
    url = "http://127.0.0.1:%d/" % d.http_port

    # Quiet at start; nothing external; HEAD has the same head and no body.
    headers, page = d.page()
    check_headers(headers)
    check_self_contained(page)
    assert state_of(page) == "quiet"
    assert "<title>quiet: %s" % HOST_ID in page, page[:400]
    status, head_headers, body = d.get("/", "HEAD")
    assert status == 200 and body == "", (status, body[:100])
    check_headers(head_headers)
    charts(page)
    check_screenshot(url, "quiet.png", "quiet")

    # A key with markup in it, blocked by hand over the control socket.
    status, text = testlib.unix_http(d.control_path, "POST", "/throttle?block=" +
                                     urllib.parse.quote(HOSTILE_BLOCK, safe=":"))
    assert status == 200, (status, text)

    # A relay burst from a SASL user whose name is markup: loud, culprits throttled.
    start = time.time()
    i = 0
    while True:
        i += 1
        d.rcpt("203.0.113.66", "user@d%03d.burst.example" % i, sasl=HOSTILE_SASL)
        if i % 5 == 0 and state_of(d.page()[1]) == "loud":
            break
        assert time.time() - start < 30, "not loud after 30 s:\n" + d.text()[-3000:]
        time.sleep(0.1)
    wait_for(lambda: len(json.loads(d.get("/throttle")[2])["throttled"]) >= 2, 10,
             "the burst's culprit to be throttled")
    testlib_print("loud after %.1fs (%d relay recipients)" % (time.time() - start, i))
    headers, page = d.page()
    check_headers(headers)
    check_self_contained(page)
    assert state_of(page) == "loud"
    throttled = json.loads(d.get("/throttle")[2])["throttled"]
    members = ["%s:%s" % (t["kind"], t["key"]) for t in throttled]
    assert HOSTILE_BLOCK in members and "sasl_username:" + HOSTILE_SASL in members, members
    for m in members:
        assert shown(m) in page, m
    for raw in ("<script>", HOSTILE_SASL, "<img", 'onerror="', "\u202e"):
        assert raw not in page, "%r unescaped on the page" % raw
    incidents = page[page.index('<table id="incidents">'):]
    assert '<span class="small loud">LOUD</span> open for' in incidents, incidents[:2000]
    assert shown("sasl_username:" + HOSTILE_SASL) in incidents, \
        incidents[:2000]

    # Past a minute boundary the ring has one more sample: every judged signal's line has two
    # points or more, and the loud minute is shaded.  (The daemon's first minute may already
    # have ended during the burst: then there are two points before the wait, three after.)
    before = {name: len(value_points(svg)) for name, svg in charts(page).items()}
    wait_past_minute()
    page = d.page()[1]
    svgs = charts(page)
    for name in JUDGED:
        pts = value_points(svgs[name])
        assert len(pts) >= max(2, before[name] + 1), "%s: %r (before: %d)" % (name, pts,
                                                                             before[name])
        assert all(44 <= x <= 312 and 8 <= y <= 96 for x, y in pts), (name, pts)
        assert pts == sorted(pts, key=lambda p: p[0]), (name, pts)
    assert value_points(svgs["a"]) == [], "A is not judged without lookups"
    mx = value_points(svgs["relay_domains"])
    assert mx[-1][1] < mx[0][1], "relay domains did not rise on the chart: %r" % mx
    assert any(r.get("class") == "loud" for r in svgs["mx"].iter(SVG + "rect")), \
        "the loud minute is not shaded"
    testlib_print("page: %d bytes, %d points on the relay_domains chart" % (len(page), len(mx)))

    # In the browser: the loud badge, the state and the throttled key in the DOM.
    check_screenshot(url, "loud.png", "loud")
    dom, _ = chromium("--dump-dom", url)
    assert '<span class="badge loud">LOUD</span>' in dom, dom[:2000]
    assert html.escape(HOSTILE_BLOCK, quote=False) in dom, "the blocked key is not in the DOM"
    assert "<script>alert" not in dom, "the blocked key became markup in the DOM"
    d.stop()


TESTS = [test_status_page]

if __name__ == "__main__":
    sys.exit(testlib.main(sys.modules[__name__], TESTS, "rw-page-", with_cli=True))

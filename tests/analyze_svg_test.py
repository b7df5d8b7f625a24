#!/usr/bin/env python3
"""relaywatch analyze --svg's picture (policyd/cli/analyze_svg.c), drawn by tests/svg_sample.c
from synthetic series: the document must be well-formed XML with nothing external in it, and
rendered by rsvg-convert it must show what it says -- the shading where the loud hours are,
every line's colour, the burst above the quiet hours -- checked on the PNG's pixels, decoded
here with zlib and struct alone.

    analyze_svg_test.py --svg-sample PATH [-k NAME] [--keep DIR]

--keep DIR leaves the SVG and PNG files there, to look at.  Fails when rsvg-convert (Debian
package librsvg2-bin) is missing.
"""
import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zlib

import testlib

SVG_NS = "{http://www.w3.org/2000/svg}"

# The colours analyze_svg.c draws with (its styles[] and LOUD_FILL / LOUD_OPACITY).
LINE_COLOURS = {
    "MX": (0xd6, 0x27, 0x28), "A": (0x1f, 0x77, 0xb4), "AAAA": (0x2c, 0xa0, 0x2c),
    "PTR": (0x94, 0x67, 0xbd), "N_c": (0xff, 0x7f, 0x0e), "N_f": (0x17, 0xbe, 0xcf),
}
LOUD_FILL, LOUD_OPACITY = (0xff, 0xc0, 0x00), 0.35
# The shading as it lands on the white page: (255, 233, 166).
SHADE = tuple(round(255 * (1 - LOUD_OPACITY) + c * LOUD_OPACITY) for c in LOUD_FILL)
WHITE = (255, 255, 255)

# The PNG checks' thresholds, in one place.
SHADE_TOLERANCE = 3      # per channel: the band's inside is flat, antialiasing only at edges
LINE_TOLERANCE = 8       # per channel, a line's core pixels
MIN_LINE_PIXELS = 40     # pixels of each line's colour (2-unit lines; dashed ones fewer)
MIN_MARKER_PIXELS = 10   # one point: its marker (r = 3) alone
MIN_DISTINCT = 12        # colours, quantised to 4 bits a channel
INK_FRACTION = (0.05, 0.60)  # the share of pixels that are not the white page
# The sample's loud hours: 11 of 96 hours over a 724-unit plot are 83 units wide.
BAND_COLUMNS = (70, 95)

SVG_SAMPLE = None
TMP = None
KEEP = None


def read_png(path):
    """(width, height, rows): rows[y][x] is (r, g, b), alpha composed over white; 8-bit RGB or
    RGBA, not interlaced (what rsvg-convert writes)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, header
    channels = 4 if colour_type == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev, at = [], bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[at], bytearray(raw[at + 1:at + 1 + stride])
        at += 1 + stride
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = prev[i]
            up_left = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                line[i] = (line[i] + pred) & 255
            else:
                assert kind == 0, "PNG filter %d" % kind
        row = []
        for x in range(width):
            px = line[x * channels:(x + 1) * channels]
            if channels == 4:
                a = px[3]
                px = tuple((c * a + 255 * (255 - a)) // 255 for c in px[:3])
            row.append(tuple(px))
        rows.append(row)
        prev = line
    return width, height, rows


def near(px, colour, tolerance):
    return all(abs(a - b) <= tolerance for a, b in zip(px, colour))


def draw(case, name=None):
    """svg_sample CASE into TMP: (svg path, parsed tree, png path or None)."""
    name = name or case
    svg = os.path.join(TMP, name + ".svg")
    run = subprocess.run([SVG_SAMPLE, case, svg], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, "svg_sample %s: %d %s" % (case, run.returncode, run.stderr)
    tree = ET.parse(svg)  # raises on anything not well-formed
    root = tree.getroot()
    assert root.tag == SVG_NS + "svg", root.tag
    assert root.get("version") == "1.1"
    check_self_contained(root)
    png = os.path.join(TMP, name + ".png")
    render = subprocess.run(["rsvg-convert", "-o", png, svg], capture_output=True, text=True,
                            timeout=60)
    assert render.returncode == 0, "rsvg-convert: %s" % render.stderr
    if KEEP:
        shutil.copy(svg, KEEP)
        shutil.copy(png, KEEP)
    return svg, root, png


def check_self_contained(root):
    """No script, no external resource: plain SVG a browser opens as it is."""
    for el in root.iter():
        local = el.tag.split("}")[-1]
        assert local not in ("script", "image", "use", "foreignObject", "style", "a"), local
        for key, value in el.attrib.items():
            assert not key.startswith("on"), key
            assert "href" not in key, key
            assert "url(" not in value and "://" not in value, (key, value)


def texts(root):
    """Every <text> element's whole text (its tspans included)."""
    return ["".join(el.itertext()) for el in root.iter(SVG_NS + "text")]


def colour_counts(rows):
    counts = {}
    for row in rows:
        for px in row:
            counts[px] = counts.get(px, 0) + 1
    return counts


def pixels_near(counts, colour, tolerance):
    return sum(n for px, n in counts.items() if near(px, colour, tolerance))


def test_sample_draws_what_it_says():
    svg, root, png = draw("sample")
    words = texts(root)
    assert words[0] == "mail.example.org: a relay on the third day", words[:2]
    whole = "\n".join(words)
    for expected in ("queries per hour (log scale)", "connections, messages per hour",
                     "MX queries", "A queries", "AAAA queries", "PTR queries", "loud period",
                     "Nc SMTP connections", "Nf from= lines", "peak 1,687 per hour",
                     "192.0.2.25", "91 periods, 11 loud", "2026-03-01", "12:00", "1k",
                     "time as the logs wrote it (UTC+02:00)"):
        assert expected in whole, "%r not in the picture's text:\n%s" % (expected, whole)
    assert "no data" not in whole

    width, height, rows = read_png(png)
    assert (width, height) == (1060, 780), (width, height)
    counts = colour_counts(rows)
    total = width * height
    ink = 1 - counts.get(WHITE, 0) / total
    assert INK_FRACTION[0] <= ink <= INK_FRACTION[1], "ink %.3f" % ink
    distinct = {(r >> 4, g >> 4, b >> 4) for (r, g, b) in counts}
    assert len(distinct) >= MIN_DISTINCT, "%d distinct colours" % len(distinct)
    for name, colour in LINE_COLOURS.items():
        n = pixels_near(counts, colour, LINE_TOLERANCE)
        assert n >= MIN_LINE_PIXELS, "%s line: %d pixels of %s" % (name, n, colour)

    # The shading: one band of columns as wide as the 11 loud hours, over both panels.
    shaded = [[x for x, px in enumerate(row) if near(px, SHADE, SHADE_TOLERANCE)] for row in rows]
    columns = {}
    for y, xs in enumerate(shaded):
        for x in xs:
            columns.setdefault(x, []).append(y)
    band = sorted(x for x, ys in columns.items() if len(ys) >= 100)
    assert band, "no shading (%s) found" % (SHADE,)
    # Grid lines are drawn over the shading: a column or two of the run may be grey.
    run = band[-1] - band[0] + 1
    assert BAND_COLUMNS[0] <= run <= BAND_COLUMNS[1], "band %d columns wide" % run
    assert len(band) >= 0.9 * run, "the band is not one run of columns: %s" % band
    ys = [y for x in band for y in columns[x]]
    assert min(ys) < height * 0.3 and max(ys) > height * 0.7, "the band spans %d..%d" % (
        min(ys), max(ys))
    # The band is where the burst is: the MX line is far higher (smaller y) inside it.
    red = [(x, y) for y, row in enumerate(rows) for x, px in enumerate(row)
           if near(px, LINE_COLOURS["MX"], LINE_TOLERANCE) and x < 820]
    inside = [y for x, y in red if band[0] <= x <= band[-1]]
    outside = [y for x, y in red if x < band[0] - 10 or x > band[-1] + 10]
    assert inside and outside, (len(inside), len(outside))
    assert min(inside) + 100 < min(outside), "MX inside the band at %d, outside at %d" % (
        min(inside), min(outside))


def test_no_points():
    svg, root, png = draw("empty")
    words = texts(root)
    assert words.count("no data") == 2, words
    assert "0 periods, 0 loud" in "\n".join(words)
    assert not any(el.get("d") for el in root.iter(SVG_NS + "path"))
    width, height, rows = read_png(png)
    counts = colour_counts(rows)
    ink = 1 - counts.get(WHITE, 0) / (width * height)
    assert ink > 0.01, "ink %.3f" % ink  # axes, labels, legend


def test_one_point():
    svg, root, png = draw("one")
    whole = "\n".join(texts(root))
    assert "1 period, 0 loud" in whole and "peak 30 per day" in whole, whole
    assert "queries per day" in whole
    width, height, rows = read_png(png)
    counts = colour_counts(rows)
    for name, colour in LINE_COLOURS.items():
        n = pixels_near(counts, colour, LINE_TOLERANCE)
        assert n >= MIN_MARKER_PIXELS, "%s marker: %d pixels" % (name, n)
    assert pixels_near(counts, SHADE, SHADE_TOLERANCE) < 600, "shaded with nothing loud"


def test_hundred_thousand_minutes_stay_small():
    svg, root, png = draw("huge")
    size = os.path.getsize(svg)
    assert size < 1_000_000, "%d bytes" % size
    whole = "\n".join(texts(root))
    assert "100,000 periods, 3,000 loud" in whole, whole
    assert "group of 50 periods" in whole, whole
    assert "peak 18.4E per minute" in whole, whole  # UINT64_MAX connections
    assert "queries per minute" in whole
    for path in root.iter(SVG_NS + "path"):
        points = sum(path.get("d").count(c) for c in "ML")
        assert points <= 2001, points
    width, height, rows = read_png(png)
    counts = colour_counts(rows)
    assert pixels_near(counts, SHADE, SHADE_TOLERANCE) > 3000
    assert pixels_near(counts, LINE_COLOURS["N_c"], LINE_TOLERANCE) >= MIN_LINE_PIXELS
    # The one minute of UINT64_MAX connections survives the grouping (each group at its
    # highest): the N_c line reaches the top decades of the bottom panel (y 440..700).
    spike = [y for y, row in enumerate(rows[440:520], 440) for x, px in enumerate(row[:820])
             if near(px, LINE_COLOURS["N_c"], LINE_TOLERANCE)]
    assert len(spike) >= 5, "no N_c spike near the top: %d pixels" % len(spike)


def test_strings_from_outside_are_escaped():
    svg, root, png = draw("escape")
    title = root.find(SVG_NS + "title").text
    expected = ("<b>&amp; \"quoted\" 'single' </title><script>alert(1)</script> \ufffd "
                "\ufffd\ufffd ]]>")
    assert title == expected, repr(title)
    words = texts(root)
    assert words[0] == expected, repr(words[0])
    whole = "\n".join(words)
    assert "DNS queries of <script>&\"" in whole, whole
    assert "time as the logs wrote it (UTC\"><x/>)" in whole, whole
    assert not [el for el in root.iter() if el.tag.split("}")[-1] in ("b", "x")]
    read_png(png)


def test_write_error_is_reported():
    # svg_sample exits 0 only if analyze_svg_write returned -1 with errno ENOSPC.
    if not os.path.exists("/dev/full"):
        return
    run = subprocess.run([SVG_SAMPLE, "full", "/dev/full"], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr


TESTS = [
    test_sample_draws_what_it_says,
    test_no_points,
    test_one_point,
    test_hundred_thousand_minutes_stay_small,
    test_strings_from_outside_are_escaped,
    test_write_error_is_reported,
]


def main():
    global SVG_SAMPLE, TMP, KEEP
    ap = argparse.ArgumentParser()
    ap.add_argument("--svg-sample", required=True)
    ap.add_argument("--keep", help="leave the SVG and PNG files in this directory")
    ap.add_argument("-k", help="run only tests whose name contains this")
    args = ap.parse_args()
    SVG_SAMPLE = os.path.abspath(args.svg_sample)
    KEEP = args.keep
    if shutil.which("rsvg-convert") is None:
        print("needed and missing: rsvg-convert (Debian package librsvg2-bin)")
        return 1
    TMP = tempfile.mkdtemp(prefix="rw-svg-")
    try:
        return testlib.run_tests(TESTS, args.k)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

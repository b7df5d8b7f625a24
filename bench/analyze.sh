#!/bin/sh
# relaywatch analyze against grep -c and pflogsumm on the same log, in one run:
#   bench/analyze.sh [SIZE_MB]     (default 1024: a 1 GiB maillog plus its query log)
# Builds the log from the study's four days (tests/study_days.py) repeated with shifted dates
# until SIZE_MB, then times: grep -c 'connect from', relaywatch analyze (plain and gzip input),
# zcat | wc -l, pflogsumm (Debian package pflogsumm, if installed), and reads analyze's peak
# RSS. Needs build/relaywatch; prints figures only.
set -eu
cd "$(dirname "$0")/.."
size_mb=${1:-1024}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 tests/study_days.py "$work/study" > /dev/null
python3 - "$work" "$size_mb" <<'PY'
import os, sys
work, size = sys.argv[1], int(sys.argv[2]) << 20
mail = open(os.path.join(work, "study", "maillog"), "rb").read().splitlines(keepends=True)
query = open(os.path.join(work, "study", "querylog"), "rb").read().splitlines(keepends=True)
months = [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"]
with open(os.path.join(work, "maillog"), "wb") as m, open(os.path.join(work, "querylog"), "wb") as q:
    written, rep = 0, 0
    while written < size:
        # Each copy four days later in another month (day kept): dates stay valid and ordered.
        month = months[rep % 12]
        for src, dst in ((mail, m), (query, q)):
            for line in src:
                dst.write(month + line[3:])
                written += len(line)
        rep += 1
PY
ls -l "$work/maillog" "$work/querylog" | awk '{print $5, $9}'
# Output to a file: GNU grep stops at the first match when its output is /dev/null.
t() { /usr/bin/time -f "%e s  %M KiB  $1" sh -c "$2" > "$work/out"; }
t "grep -c 'connect from' maillog" "grep -c 'connect from' $work/maillog"
t "relaywatch analyze, maillog + query log" \
  "build/relaywatch analyze -o dns_lookups= --maillog $work/maillog --querylog $work/querylog --year 2003"
gzip -1 -c "$work/maillog" > "$work/maillog.gz"
t "zcat maillog.gz | wc -l" "zcat $work/maillog.gz | wc -l"
t "relaywatch analyze, maillog.gz" "build/relaywatch analyze -o dns_lookups= --maillog $work/maillog.gz --year 2003"
if command -v pflogsumm > /dev/null; then
    t "pflogsumm maillog" "pflogsumm $work/maillog"
else
    echo "pflogsumm not installed (apt-get install pflogsumm): skipped"
fi

#!/usr/bin/env bash
# relaywatch feed's speed: parse and count a generated BIND 9.18 query log of LINES lines
# (default 2,000,000; 50 clients, mixed types and flags, one minute every 20,000 lines) into a
# private Redis, against `LC_ALL=C grep -c ' IN MX '` over the same file in the same run.
# usage: bench/feed.sh [path/to/relaywatch]        Knobs: LINES [2000000], RUNS [3]
set -euo pipefail

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
relaywatch=${1:-$repo_dir/build/relaywatch}
lines=${LINES:-2000000}
runs=${RUNS:-3}
work=$(mktemp -d /tmp/relaywatch-feedbench.XXXXXX)
redis_pid=

cleanup() {
    [[ -n $redis_pid ]] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

python3 - "$work/query.log" "$lines" <<'PY'
import random, sys
path, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
types = ["MX"] * 5 + ["A"] * 3 + ["AAAA", "PTR", "TXT"]
flags = ["+", "-", "+E(0)", "+E(0)K", "-E(0)D", "+SE(0)DC", "+T"]
clients = ["10.%d.%d.%d" % (rng.randrange(256), rng.randrange(256), rng.randrange(1, 255))
           for _ in range(45)] + ["2001:db8::%x" % rng.randrange(65536) for _ in range(5)]
with open(path, "w") as f:
    for i in range(n):
        minute = i // 20000
        c = clients[rng.randrange(len(clients))]
        t = types[rng.randrange(len(types))]
        name = "host%d.dom%d.example" % (rng.randrange(1000), rng.randrange(5000))
        f.write("25-Nov-2026 %02d:%02d:%02d.%03d client @0x7f3787b5d%03x %s#%d (%s): query: %s "
                "IN %s %s (192.0.2.53)\n" % (minute // 60 % 24, minute % 60, i % 60, i % 1000,
                                           i % 4096, c, 1024 + i % 60000, name, name, t,
                                           flags[i % len(flags)]))
PY
size=$(stat -c %s "$work/query.log")
redis-server --port 0 --unixsocket "$work/redis.sock" --save '' --appendonly no \
    --daemonize no --dir "$work" >"$work/redis.log" 2>&1 &
redis_pid=$!
for ((i = 0; i < 100; i++)); do [[ -S $work/redis.sock ]] && break; sleep 0.05; done
cat "$work/query.log" >/dev/null # in the page cache for both

echo "query log: $lines lines, $((size / 1048576)) MiB"
for ((r = 1; r <= runs; r++)); do
    t0=$(date +%s.%N)
    out=$("$relaywatch" feed -o "store=redis+unix://$work/redis.sock" "$work/query.log")
    t1=$(date +%s.%N)
    mx=$(LC_ALL=C grep -c ' IN MX ' "$work/query.log")
    t2=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$lines" -v mx="$mx" -v out="$out" 'BEGIN {
        feed = b - a; grep = c - b;
        printf "run: relaywatch feed %.3f s (%.2f M lines/s), grep -c %.3f s (%.2f M lines/s), feed/grep time %.2f; grep found %d MX lines\n",
            feed, n / feed / 1e6, grep, n / grep / 1e6, feed / grep, mx }'
    echo "  $out"
done

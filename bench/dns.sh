#!/usr/bin/env bash
# RelayWatch DNS benchmark: bench/run.sh with relaywatchd making its own lookups against a
# private BIND named (bench/dns_server.py), in two cases:
#
#   cached  named answers at once; 1,000 client addresses, so that after the warm-up every
#           lookup (PTR, A, sender MX, recipient MX over ~5,400 domains) is a cache hit.
#           Target: throughput >= 80 % of minimal_server's, p99 < 1 ms.
#   slow    every answer delayed by DELAY (0.2 s) and a new client address per request: the
#           cache is cold for PTR and A, the lookups pile up to dns_max_outstanding and are
#           skipped past it; dns_wait = 0. Target: p99 < 1 ms. The delaying relay (Python)
#           and named run on the load generator's core and slow it down, which shows in its
#           latency figures too.
#   stalled named stopped (SIGSTOP) before the load, a new client address per request: every
#           lookup times out after dns_timeout, the rest are skipped at dns_max_outstanding;
#           the name server costs no CPU, so the figures are the daemon's alone.
#
# usage: bench/dns.sh [cached|slow|stalled|both] [path/to/relaywatchd]
# Knobs: those of run.sh (CONNS, DURATION, WARMUP, USERS, PIN, ...), DELAY [0.2],
#        WARMUP defaults to 3 s here so that the cache is warm when measuring.
set -euo pipefail

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=${1:-both}
relaywatchd=${2:-$repo_dir/build/relaywatchd}
delay=${DELAY:-0.2}
export WARMUP=${WARMUP:-3}
work=$(mktemp -d /tmp/relaywatch-dnsbench.XXXXXX)
dns_pid=

stop_dns() {
    if [[ -n $dns_pid ]] && kill -0 "$dns_pid" 2>/dev/null; then
        kill -TERM "$dns_pid"
        wait "$dns_pid" 2>/dev/null || true
    fi
    dns_pid=
}
trap stop_dns EXIT

# start_dns DIR [--delay S]: sets dns_port.
start_dns() {
    local dir=$1 i
    shift
    # On the load generator's core (run.sh pins the server to CPU 1): named and the delaying
    # relay must not take CPU time from the server being measured.
    local pin=()
    if [[ ${PIN:-1} == 1 ]] && command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
        pin=(taskset -c 0)
    fi
    "${pin[@]}" python3 "$repo_dir/bench/dns_server.py" "$dir" "$@" >"$dir.out" 2>"$dir.err" &
    dns_pid=$!
    for ((i = 0; i < 300; i++)); do
        dns_port=$(awk '/^port / { print $2 }' "$dir.out" 2>/dev/null || true)
        [[ -n $dns_port ]] && return 0
        kill -0 "$dns_pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$dir.err" >&2
    echo "dns.sh: the name server did not start" >&2
    exit 2
}

run_case() {
    local name=$1 clients=$2
    shift 2
    echo "== $name"
    start_dns "$work/$name" "$@"
    # The status port shows the DNS counts after the run; the log says what the resolver did.
    local http_port
    http_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    CLIENTS=$clients OUT_DIR=$work/$name.run STATUS_PORT=$http_port \
        RELAYWATCHD_ARGS="-o resolver=127.0.0.1:$dns_port -o http_listen=inet:127.0.0.1:$http_port ${EXTRA_ARGS:-}" \
        "$repo_dir/bench/run.sh" "$relaywatchd" || true
    stop_dns
    python3 - "$work/$name.run/relaywatchd.status.json" <<'PY' || true
import json, sys
h = json.load(open(sys.argv[1]))["hosts"][0]
tot = h["totals"]["dns_detail"]
lookups = {t: sum(v for k, v in d.items() if k != "upstream") for t, d in tot.items()}
print("relaywatchd's own lookups during the run (warm-up included):")
for t, d in tot.items():
    if lookups[t]:
        print("  %-4s %9d lookups: %s" % (t, lookups[t], ", ".join(
            "%s %d" % (k, v) for k, v in d.items() if v)))
all_lookups = sum(lookups.values())
hits = sum(d["hit"] + d["merged"] for d in tot.values())
print("  cache hits and merges: %.1f %% of %d lookups; resolver: %s" % (
    100.0 * hits / all_lookups if all_lookups else 0, all_lookups, json.dumps(h["resolver"])))
PY
}

case $mode in
cached | both) run_case cached 1000 ;;
esac
case $mode in
slow | both) run_case slow 0 --delay "$delay" ;;
esac
case $mode in
stalled | both) run_case stalled 0 --stall ;;
esac
case $mode in
cached | slow | stalled | both) ;;
*) echo "usage: bench/dns.sh [cached|slow|stalled|both] [relaywatchd]" >&2; exit 2 ;;
esac
echo "results under $work"

#!/usr/bin/env bash
# RelayWatch benchmark: the same closed-loop load against minimal_server (the
# lower bound: answers DUNNO without parsing) and against relaywatchd, in one
# run, then memory of each server idle and holding many idle connections.
#
# usage: bench/run.sh [path/to/relaywatchd]     (default: build/relaywatchd)
#
# Environment knobs (defaults in brackets):
#   CONNS [64]  DURATION [10]  WARMUP [1]  USERS [1000]  HOLD_CONNS [1000]
#   CLIENTS [0]           distinct client addresses (0: a new one per request)
#   SENDERS [0]           distinct sender domains (0: a few hundred); with USERS=10000
#                         CLIENTS=5000 SENDERS=20000 most requests bring culprit keys
#                         the daemon does not track yet (the "many keys" case)
#   EOM [0]               1: each RCPT request followed by its END-OF-MESSAGE (policy_load --eom)
#   PIN [1]               1: pin load generator and server to different CPUs
#   BENCH_BIN_DIR [build, else build/bench]  where policy_load and minimal_server are
#   RELAYWATCHD_ARGS []   extra arguments for relaywatchd. Unless they name a
#                         resolver= (a loopback name server, as bench/dns.sh does),
#                         relaywatchd runs with -o dns_lookups= : the machine's own
#                         resolver is not ours to load.
#   OUT_DIR [new temp dir] JSON results and server logs are kept there
#   STORE []              redis: relaywatchd writes its counts to a private
#                         redis-server on a unix socket (-o store=redis+unix://SOCK),
#                         and the whole comparison runs once per load level
#                         in STORE_CONNS, each with the Redis commands/s and
#                         Redis CPU during the load, then a summary across
#                         levels: commands/s should stay flat as requests/s grow
#                         (the daemon flushes once per store_flush_interval,
#                         not per request). CONNS is ignored in this mode.
#   STORE_CONNS ["8 64"]  load levels (connections) for STORE=redis
#   STATUS_PORT []        relaywatchd's http_listen port: /status is saved after the load
#
# CPU placement: the machine has 2 cores. With PIN=1 (the default) the load
# generator runs on CPU 0 and the server on CPU 1 (taskset). Unpinned, the two
# processes and the kernel's loopback work migrate between both cores and
# compete for them, which makes run-to-run figures noisy and lets a
# multi-threaded server borrow the generator's core. Pinned, each side owns
# one core, so relaywatchd is compared with the single-threaded minimal_server
# per core and the generator's own CPU use tells whether it is the
# bottleneck. Run with PIN=0 to see what relaywatchd does with both cores.

set -euo pipefail

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
relaywatchd=${1:-$repo_dir/build/relaywatchd}
# The top-level build puts all programs in build/; a build of bench/ alone
# leaves them in its bench/ subdirectory.
if [[ -n ${BENCH_BIN_DIR:-} ]]; then
    bin_dir=$BENCH_BIN_DIR
elif [[ -x $repo_dir/build/policy_load ]]; then
    bin_dir=$repo_dir/build
else
    bin_dir=$repo_dir/build/bench
fi
conns=${CONNS:-64}
duration=${DURATION:-10}
warmup=${WARMUP:-1}
users=${USERS:-1000}
clients=${CLIENTS:-0}
senders=${SENDERS:-0}
eom_args=()
[[ ${EOM:-0} == 1 ]] && eom_args=(--eom)
hold_conns=${HOLD_CONNS:-1000}
pin=${PIN:-1}
store=${STORE:-}
store_conns=${STORE_CONNS:-8 64}
lookups_args=(-o dns_lookups=)
[[ ${RELAYWATCHD_ARGS:-} == *resolver=* ]] && lookups_args=()
out_dir=${OUT_DIR:-$(mktemp -d /tmp/relaywatch-bench.XXXXXX)}
mkdir -p "$out_dir"

policy_load=$bin_dir/policy_load
minimal_server=$bin_dir/minimal_server

die() { echo "run.sh: $*" >&2; exit 2; }
note() { echo "run.sh: $*" >&2; }

for f in "$policy_load" "$minimal_server"; do
    [[ -x $f ]] || die "$f not found; build first (cmake --build build) or set BENCH_BIN_DIR"
done
[[ -x $relaywatchd ]] || die "relaywatchd not found at $relaywatchd (pass its path as \$1)"
for tool in ss python3 awk; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
case $store in
"" | memory) store= ;;
redis)
    for tool in redis-server redis-cli; do
        command -v "$tool" >/dev/null || die "STORE=redis needs $tool (apt-get install redis-server redis-tools)"
    done
    for c in $store_conns; do
        [[ $c =~ ^[1-9][0-9]*$ ]] || die "STORE_CONNS must be connection counts, got '$store_conns'"
    done
    ;;
*) die "STORE must be empty (the default in-memory store) or redis, got '$store'" ;;
esac

client_cmd=()
server_cmd=()
if [[ $pin == 1 ]]; then
    if [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then
        client_cmd=(taskset -c 0)
        server_cmd=(taskset -c 1)
    else
        note "fewer than 2 CPUs or no taskset: not pinning"
        pin=0
    fi
fi

# 1,000 held connections plus listeners need more than the usual 1024 fds;
# the servers inherit this limit.
hard_nofile=$(ulimit -Hn)
if [[ $hard_nofile == unlimited || $hard_nofile -gt 65536 ]]; then hard_nofile=65536; fi
ulimit -n "$hard_nofile"

started_pids=()

cleanup() {
    local pid
    for pid in "${started_pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    # The kernel picks a free port; there is a small window before the server
    # binds it, acceptable for a benchmark on a quiet machine.
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until something listens on 127.0.0.1:$2, using ss rather than a test
# connection (which a server would count and log). Fails if $1 exits.
wait_listening() {
    local pid=$1 port=$2 i
    for ((i = 0; i < 200; i++)); do
        if ss -Hltn "sport = :$port" | grep -q .; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# Stops one process we started and reaps it; its exit status is left in
# stopped_rc.
stop_pid() {
    local pid=$1 i
    stopped_rc=0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        note "pid $pid ignored SIGTERM for 5 s, killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    stopped_rc=0
    wait "$pid" 2>/dev/null || stopped_rc=$?
    # Once reaped, the PID may be reused by an unrelated process: forget it
    # so that cleanup never signals it.
    local p keep=()
    for p in "${started_pids[@]}"; do
        [[ $p == "$pid" ]] || keep+=("$p")
    done
    started_pids=("${keep[@]}")
}

# Busy share of all CPUs over one second: other work on this small machine
# would distort the figures, so say so up front.
check_quiet() {
    local a b
    a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
    sleep 1
    b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN {
        split(a, x, " "); split(b, y, " ");
        busy = y[1] - x[1]; idle = y[2] - x[2];
        pct = (busy + idle) > 0 ? 100 * busy / (busy + idle) : 0;
        printf "%.0f\n", pct }'
}

# bench_server NAME PID PORT: load run, then hold run, against a started server.
bench_server() {
    local name=$1 pid=$2 port=$3
    local metrics=$out_dir/$name.metrics
    local target=inet:127.0.0.1:$port
    : >"$metrics"

    sleep 0.2 # let the server finish start-up allocations before sampling
    echo "rss_idle_kb=$(rss_kb "$pid")" >>"$metrics"

    note "$name: $conns connections, ${warmup} s warm-up + ${duration} s, $users SASL users"
    local load_rc=0 redis_before=
    if [[ -n $store && $name == relaywatchd ]]; then
        redis_before=$(redis_sample)
    fi
    # --server-pid: policy_load samples the server's CPU time at the edges of
    # its measurement window.
    "${client_cmd[@]}" "$policy_load" -s "$target" -c "$conns" -d "$duration" -w "$warmup" \
        -u "$users" --clients "$clients" --senders "$senders" "${eom_args[@]}" --server-pid "$pid" --json \
        >"$out_dir/$name.json" \
        2>"$out_dir/$name.load.err" || load_rc=$?
    if [[ -n $redis_before ]]; then
        # Over the whole load run, warm-up included: every second of it was loaded.
        redis_rates "$redis_before" "$(redis_sample)" >>"$metrics"
        store_metrics "$store_http_port" >>"$metrics"
    fi
    if [[ -n ${STATUS_PORT:-} && $name == relaywatchd ]]; then
        # What the daemon counted during the load (bench/dns.sh reads its DNS figures).
        python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(
            "http://127.0.0.1:%s/status" % sys.argv[1], timeout=5).read().decode())' \
            "$STATUS_PORT" >"$out_dir/$name.status.json" 2>/dev/null || true
    fi
    if kill -0 "$pid" 2>/dev/null; then
        echo "rss_after_load_kb=$(rss_kb "$pid")" >>"$metrics"
    else
        note "$name died during the load run"
        echo "server_died=1" >>"$metrics"
    fi
    echo "load_rc=$load_rc" >>"$metrics"
    if [[ -s $out_dir/$name.load.err ]]; then sed "s/^/  [$name load] /" "$out_dir/$name.load.err" >&2; fi
    kill -0 "$pid" 2>/dev/null || return 0

    note "$name: holding $hold_conns idle connections"
    local hold_out=$out_dir/$name.hold.out hold_pid hold_rc=0 i ready=0
    "${client_cmd[@]}" "$policy_load" -s "$target" --hold "$hold_conns" 600 \
        >"$hold_out" 2>"$out_dir/$name.hold.err" &
    hold_pid=$!
    started_pids+=("$hold_pid")
    for ((i = 0; i < 1200; i++)); do
        if grep -q '^holding' "$hold_out"; then ready=1; break; fi
        kill -0 "$hold_pid" 2>/dev/null || break
        sleep 0.05
    done
    if [[ $ready == 1 ]] && kill -0 "$pid" 2>/dev/null; then
        sleep 0.5 # let the server settle after the last answer
        echo "rss_hold_kb=$(rss_kb "$pid")" >>"$metrics"
        echo "hold_line=$(head -n 1 "$hold_out")" >>"$metrics"
    else
        note "$name: hold run did not get all connections answered"
    fi
    stop_pid "$hold_pid"
    hold_rc=$stopped_rc
    [[ $ready == 1 ]] || hold_rc=1
    echo "hold_rc=$hold_rc" >>"$metrics"
    if [[ -s $out_dir/$name.hold.err ]]; then sed "s/^/  [$name hold] /" "$out_dir/$name.hold.err" >&2; fi
    if kill -0 "$pid" 2>/dev/null; then
        echo "vm_hwm_kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")" >>"$metrics"
    fi
}

# run_server NAME COMMAND...: starts the server on a fresh port, benchmarks it,
# stops it by PID. The command gets the port substituted for @PORT@.
run_server() {
    local name=$1
    shift
    local port pid args=()
    port=$(free_port)
    local a
    for a in "$@"; do args+=("${a//@PORT@/$port}"); done
    "${server_cmd[@]}" "${args[@]}" >"$out_dir/$name.log" 2>&1 &
    pid=$!
    started_pids+=("$pid")
    if ! wait_listening "$pid" "$port"; then
        note "$name did not start listening on 127.0.0.1:$port; its log:"
        tail -n 20 "$out_dir/$name.log" >&2
        stop_pid "$pid"
        echo "start_failed=1" >"$out_dir/$name.metrics"
        return 0
    fi
    bench_server "$name" "$pid" "$port"
    stop_pid "$pid"
}

# ---- STORE=redis: a private redis-server (no persistence) on a unix socket.
redis_sock=
redis_pid=
start_redis() {
    local dir=$1 i
    mkdir -p "$dir"
    redis_sock=$dir/redis.sock
    redis-server --port 0 --unixsocket "$redis_sock" --save '' --appendonly no \
        --daemonize no --dir "$dir" >"$dir/redis.log" 2>&1 &
    redis_pid=$!
    started_pids+=("$redis_pid")
    for ((i = 0; i < 200; i++)); do
        if [[ -S $redis_sock ]] && [[ $(redis-cli -s "$redis_sock" ping 2>/dev/null) == PONG ]]; then
            return 0
        fi
        kill -0 "$redis_pid" 2>/dev/null || break
        sleep 0.05
    done
    tail -n 20 "$dir/redis.log" >&2
    die "redis-server did not start on $redis_sock"
}

# One sample: wall time (s), Redis's total_commands_processed, Redis CPU
# ticks (utime + stime). The INFO call itself is one command.
redis_sample() {
    local t cmds ticks
    t=$(date +%s.%N)
    cmds=$(redis-cli -s "$redis_sock" info stats | awk -F: '/^total_commands_processed:/ { sub(/\r$/, "", $2); print $2 }')
    ticks=$(awk '{ print $14 + $15 }' "/proc/$redis_pid/stat")
    echo "$t ${cmds:-0} $ticks"
}

# redis_rates BEFORE AFTER: commands/s and CPU (% of a core) between two samples.
redis_rates() {
    awk -v a="$1" -v b="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN {
        split(a, x, " "); split(b, y, " "); dt = y[1] - x[1];
        if (dt <= 0) dt = 1e-9;
        printf "redis_seconds=%.3f\nredis_commands=%d\nredis_cmds_per_s=%.1f\nredis_cpu_pct=%.2f\n",
            dt, y[2] - x[2], (y[2] - x[2]) / dt, 100 * (y[3] - x[3]) / hz / dt }'
}

# The daemon's store counters from its /metrics.
store_metrics() {
    python3 - "$1" <<'PY' || true
import sys, urllib.request
try:
    text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode()
except Exception as exc:
    print("store_metrics_error=%s" % exc)
    sys.exit(0)
for line in text.splitlines():
    for name in ("relaywatch_store_up", "relaywatch_store_flushes_total",
                 "relaywatch_store_failures_total"):
        if line.startswith(name + " ") or line.startswith(name + "{"):
            print("%s=%s" % (name, line.rsplit(" ", 1)[1]))
PY
}
store_http_port=

busy=$(check_quiet)
if ((busy > 10)); then
    note "warning: the machine was ${busy}% busy before starting; figures will be distorted"
fi
echo "quiet_check_busy_pct=$busy" >"$out_dir/run.info"

report() {
python3 - "$out_dir" "$pin" "$conns" "$duration" "$warmup" "$users" "$hold_conns" "$store" <<'PY'
import json, os, sys

out_dir, pin, conns, duration, warmup, users, hold_conns, store = sys.argv[1:]
names = ["minimal_server", "relaywatchd"]

def load(name):
    res = {"metrics": {}, "json": None}
    path = os.path.join(out_dir, name + ".metrics")
    if os.path.exists(path):
        for line in open(path):
            key, _, value = line.rstrip("\n").partition("=")
            res["metrics"][key] = value
    path = os.path.join(out_dir, name + ".json")
    if os.path.exists(path) and os.path.getsize(path) > 0:
        try:
            res["json"] = json.load(open(path))
        except ValueError:
            pass
    return res

data = {n: load(n) for n in names}

def j(name, *keys):
    v = data[name]["json"]
    for k in keys:
        if not isinstance(v, dict) or k not in v:
            return None
        v = v[k]
    return v

def m(name, key):
    v = data[name]["metrics"].get(key)
    return None if v in (None, "") else v

def fmt(v, spec):
    if v is None:
        return "-"
    try:
        return format(float(v), spec)
    except ValueError:
        return str(v)

rows = [
    ("requests", lambda n: fmt(j(n, "requests"), ".0f")),
    ("seconds", lambda n: fmt(j(n, "seconds"), ".3f")),
    ("requests/s", lambda n: fmt(j(n, "requests_per_s"), ".0f")),
    ("latency p50 (us)", lambda n: fmt(j(n, "latency_us", "p50"), ".1f")),
    ("latency p90 (us)", lambda n: fmt(j(n, "latency_us", "p90"), ".1f")),
    ("latency p99 (us)", lambda n: fmt(j(n, "latency_us", "p99"), ".1f")),
    ("latency p99.9 (us)", lambda n: fmt(j(n, "latency_us", "p99_9"), ".1f")),
    ("latency max (us)", lambda n: fmt(j(n, "latency_us", "max"), ".1f")),
    ("errors", lambda n: fmt(j(n, "errors"), ".0f")),
    ("actions", lambda n: " ".join("%s=%d" % kv for kv in (j(n, "actions") or {}).items()) or "-"),
    ("load generator CPU (% of a core)", lambda n: fmt(j(n, "client_cpu_pct"), ".1f")),
    ("server CPU (% of a core)", lambda n: fmt(j(n, "server_cpu_pct"), ".1f")),
    ("server CPU per request (us)", lambda n: fmt(j(n, "server_cpu_us_per_request"), ".2f")),
    ("other CPU: IRQs, other processes (%)", lambda n: fmt(j(n, "other_cpu_pct"), ".1f")),
    ("RSS idle (KiB)", lambda n: fmt(m(n, "rss_idle_kb"), ".0f")),
    ("RSS after load (KiB)", lambda n: fmt(m(n, "rss_after_load_kb"), ".0f")),
    ("RSS holding %s conns (KiB)" % hold_conns, lambda n: fmt(m(n, "rss_hold_kb"), ".0f")),
    ("peak RSS, VmHWM (KiB)", lambda n: fmt(m(n, "vm_hwm_kb"), ".0f")),
]
if store:
    rows += [
        ("Redis commands/s during the load", lambda n: fmt(m(n, "redis_cmds_per_s"), ".1f")),
        ("Redis commands per 1,000 requests", lambda n: fmt(
            1000 * float(m(n, "redis_commands")) / (float(j(n, "requests")) or 1)
            if m(n, "redis_commands") and j(n, "requests") else None, ".3f")),
        ("Redis CPU (% of a core)", lambda n: fmt(m(n, "redis_cpu_pct"), ".2f")),
        ("store flushes / failures (total)", lambda n: "%s / %s" % (
            fmt(m(n, "relaywatch_store_flushes_total"), ".0f"),
            fmt(m(n, "relaywatch_store_failures_total"), ".0f"))
            if m(n, "relaywatch_store_flushes_total") else "-"),
    ]

print()
print("RelayWatch policy benchmark: %s connections, %s s (+%s s warm-up), %s SASL users, %s%s"
      % (conns, duration, warmup, users,
         "load generator on CPU 0, server on CPU 1" if pin == "1" else "unpinned",
         "; relaywatchd with store=redis (private redis-server, unix socket, unpinned)"
         if store else ""))
width = max(len(r[0]) for r in rows)
print("%-*s  %16s  %16s" % (width, "", *names))
for label, get in rows:
    print("%-*s  %16s  %16s" % (width, label, get(names[0]), get(names[1])))

failed = False
for n in names:
    md = data[n]["metrics"]
    if md.get("start_failed"):
        print("%s: did not start (log in %s)" % (n, out_dir)); failed = True; continue
    if md.get("server_died"):
        print("%s: died during the load run" % n); failed = True
    if md.get("load_rc", "0") != "0":
        print("%s: load run failed (exit %s, see %s/%s.load.err)" % (n, md.get("load_rc"), out_dir, n))
        failed = True
    if md.get("hold_rc", "0") != "0":
        print("%s: hold run failed (see %s/%s.hold.err)" % (n, out_dir, n)); failed = True
    if md.get("hold_line"):
        print("%s hold: %s" % (n, md["hold_line"]))

r0, r1 = j(names[0], "requests_per_s"), j(names[1], "requests_per_s")
if r0 and r1:
    print("throughput ratio relaywatchd / minimal_server: %.3f" % (r1 / r0))
c0, c1 = (j(n, "server_cpu_us_per_request") for n in names)
if c0 and c1:
    print("server CPU per request ratio relaywatchd / minimal_server: %.2f" % (c1 / c0))
idle, hold = m("relaywatchd", "rss_idle_kb"), m("relaywatchd", "rss_hold_kb")
if idle and hold:
    print("relaywatchd memory per held connection: %.1f KiB"
          % ((float(hold) - float(idle)) / float(hold_conns)))
for n in names:
    other = j(n, "other_cpu_pct")
    if other is not None and other > 15:
        print("warning: %.0f%% of a core went to other work (interrupts, other processes) during "
              "the %s run; its figures are distorted" % (other, n))
for n in names:
    cpu, server = j(n, "client_cpu_pct"), j(n, "server_cpu_pct")
    if cpu is None or cpu <= 90:
        continue
    if server is not None and server > 95:
        print("note: against %s both the load generator (%.0f%%) and the server (%.0f%%) used "
              "their whole core" % (n, cpu, server))
    else:
        print("warning: the load generator used %.0f%% of its core against %s: it was the "
              "bottleneck, so that requests/s is a lower bound of the server's capacity; "
              "compare server CPU per request instead" % (cpu, n))
if store:
    md = data["relaywatchd"]["metrics"]
    if md.get("store_metrics_error"):
        print("relaywatchd: could not read /metrics: %s" % md["store_metrics_error"])
        failed = True
    elif md.get("relaywatch_store_up") not in (None, "1"):
        print("relaywatchd: the store was down at the end of the load (relaywatch_store_up %s)"
              % md.get("relaywatch_store_up"))
        failed = True
    elif md.get("relaywatch_store_up") is None:
        print("relaywatchd: no relaywatch_store_up in /metrics (does this build have the store?)")
        failed = True
    if md.get("relaywatch_store_failures_total") not in (None, "0"):
        print("relaywatchd: %s store flushes failed" % md["relaywatch_store_failures_total"])
        failed = True
print("raw results and server logs: %s" % out_dir)
sys.exit(1 if failed else 0)
PY
}

# shellcheck disable=SC2086 # RELAYWATCHD_ARGS is a word list on purpose
if [[ -z $store ]]; then
    run_server minimal_server "$minimal_server" -s inet:127.0.0.1:@PORT@
    run_server relaywatchd "$relaywatchd" -e -o listen=inet:127.0.0.1:@PORT@ "${lookups_args[@]}" \
        ${RELAYWATCHD_ARGS:-}
    report
    exit
fi

# STORE=redis: the same comparison once per load level, each in its own
# subdirectory, against one private Redis emptied between levels.
store_mode() {
    base_dir=$out_dir
    start_redis "$base_dir/redis"
    rc=0
    levels=()
    for conns in $store_conns; do
        out_dir=$base_dir/c$conns
        mkdir -p "$out_dir"
        redis-cli -s "$redis_sock" flushall >/dev/null
        store_http_port=$(free_port)
        run_server minimal_server "$minimal_server" -s inet:127.0.0.1:@PORT@
        # shellcheck disable=SC2086 # RELAYWATCHD_ARGS is a word list on purpose
        run_server relaywatchd "$relaywatchd" -e -o listen=inet:127.0.0.1:@PORT@ \
            -o "store=redis+unix://$redis_sock" -o "host_id=bench-c$conns" \
            -o "http_listen=inet:127.0.0.1:$store_http_port" "${lookups_args[@]}" ${RELAYWATCHD_ARGS:-}
        report || rc=1
        levels+=("$conns")
    done

    python3 - "$base_dir" "${levels[@]}" <<'PY' || rc=1
import json, os, sys

base, levels = sys.argv[1], sys.argv[2:]
print()
print("Redis load by request rate (relaywatchd, store=redis):")
print("%8s  %12s  %18s  %20s  %14s" % ("conns", "requests/s", "Redis commands/s",
                                       "commands/1k requests", "Redis CPU (%)"))
rates = []
for c in levels:
    d = os.path.join(base, "c" + c)
    md = {}
    if os.path.exists(os.path.join(d, "relaywatchd.metrics")):
        for line in open(os.path.join(d, "relaywatchd.metrics")):
            k, _, v = line.rstrip("\n").partition("=")
            md[k] = v
    try:
        res = json.load(open(os.path.join(d, "relaywatchd.json")))
    except (OSError, ValueError):
        res = {}
    rps, cps = res.get("requests_per_s"), md.get("redis_cmds_per_s")
    per_k = (1000 * float(md["redis_commands"]) / res["requests"]
             if md.get("redis_commands") and res.get("requests") else None)
    print("%8s  %12s  %18s  %20s  %14s" % (
        c, "%.0f" % rps if rps else "-", cps or "-", "%.3f" % per_k if per_k is not None else "-",
        md.get("redis_cpu_pct", "-")))
    if rps and cps:
        rates.append((float(rps), float(cps)))
if len(rates) >= 2:
    (r0, c0), (r1, c1) = min(rates), max(rates)
    print("requests/s x%.2f from the lowest to the highest level; Redis commands/s x%.2f"
          % (r1 / r0, c1 / c0 if c0 else float("inf")))
print("raw results and logs: %s" % base)
PY
    return "$rc"
}
store_mode

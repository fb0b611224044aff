#!/usr/bin/env bash
# The second seed's model measured: a word count over data that starts on the submitter
# (central) against the same data shared where it is produced (edge), on a LAN of network
# namespaces whose links are limited with tbf (docs/edge.md).
#
#   sudo bench/edge.sh [--hosts N,N...] [--mib M] [--rate RATE] [--runs R]
#
# For each N (default 2,3,4): N hosts each produce M MiB (default 32) of text; every link is
# limited to RATE (a tc rate, default 20mbit) each way. A further host, the submitter, holds
# nothing in the edge runs and everything in the central runs. T_p and T_comm are fitted by
# least squares over every N: the edge runs to T_p*n (m = 0: no input moves), the central runs
# to T_p*n + T_comm*(n-1), with n = N + 1 computing nodes; the table puts the seed's
# predictions beside the measured medians. Needs root, iproute2 (ip, tc), python3 and a
# release build (cargo build --release -p shoal-node). Everything it creates (namespaces
# named shoal-edge-*, a temporary folder) is removed on exit, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

host_counts=2,3,4 mib=32 rate=20mbit runs=3
while [ $# -gt 0 ]; do
    case "$1" in
        --hosts) host_counts=$2; shift 2 ;;
        --mib) mib=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        *) echo "usage: $0 [--hosts N,N...] [--mib M] [--rate RATE] [--runs R]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "error: run as root (network namespaces)" >&2; exit 2; }
shoal=$PWD/target/release/shoal
[ -x "$shoal" ] || { echo "error: build first: cargo build --release -p shoal-node" >&2; exit 2; }
for h in ${host_counts//,/ }; do
    [ "$h" -ge 1 ] && [ "$h" -le 8 ] || { echo "error: --hosts takes counts of 1 to 8" >&2; exit 2; }
done

top=$(mktemp -d /tmp/shoal-edge.XXXXXX)
ns() { echo "shoal-edge-$1"; }
teardown() {
    for h in $(seq 0 8); do
        ip netns pids "$(ns "h$h")" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "$(ns "h$h")" 2>/dev/null || true
    done
    ip netns del "$(ns sw)" 2>/dev/null || true
}
trap 'teardown; rm -rf "$top"' EXIT INT TERM
results=$top/results
: >"$results"

# The LAN: one bridge in a switch namespace; host h (0 = the submitter) at 10.79.0.(h+1).
build_lan() { # $1: edge hosts
    ip netns add "$(ns sw)"
    ip -n "$(ns sw)" link add br0 type bridge
    ip -n "$(ns sw)" link set br0 up
    for h in $(seq 0 "$1"); do
        local n
        n=$(ns "h$h")
        ip netns add "$n"
        ip link add "e$h" netns "$n" type veth peer name "p$h" netns "$(ns sw)"
        ip -n "$n" addr add "10.79.0.$((h + 1))/24" dev "e$h"
        ip -n "$n" link set "e$h" up
        ip -n "$n" link set lo up
        ip -n "$(ns sw)" link set "p$h" master br0 up
        # The link's rate, each way: the host's egress, and the switch port's egress to it.
        ip netns exec "$n" tc qdisc add dev "e$h" root tbf rate "$rate" burst 64kb latency 200ms
        ip netns exec "$(ns sw)" tc qdisc add dev "p$h" root tbf rate "$rate" burst 64kb latency 200ms
    done
}

# The data: each edge host's part, and all of it on the submitter for the central runs. Log
# lines of ten words from a vocabulary of about 2,000.
write_data() { # $1: folder, $2: edge hosts
    python3 - "$1" "$2" "$mib" <<'PY'
import os, random, sys
work, hosts, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
words = ["w%d" % i for i in range(2000)] + ["sensor", "ERROR", "température", "датчик"]
for h in range(1, hosts + 1):
    rng = random.Random(h)
    for d in (f"{work}/part{h}", f"{work}/all/part{h}"):
        os.makedirs(d, exist_ok=True)
    size, f = 0, 0
    while size < mib << 20:
        lines = [" ".join(rng.choice(words) for _ in range(10)) for _ in range(20000)]
        text = ("\n".join(lines) + "\n").encode()
        for d in (f"{work}/part{h}", f"{work}/all/part{h}"):
            with open(f"{d}/log{f}.txt", "wb") as out:
                out.write(text)
        size += len(text)
        f += 1
PY
}

start_nodes() { # $1: edge, central or alone (the submitter only), $2: folder, $3: edge hosts
    local mode=$1 work=$2 last=$3
    [ "$mode" = alone ] && last=0
    for h in $(seq 0 "$last"); do
        local args=(node --no-mdns --slots 1 --data-dir "$work/d$mode$h" --api 127.0.0.1:7070
                    --listen /ip4/0.0.0.0/udp/4001/quic-v1)
        [ "$h" -gt 0 ] && args+=(--bootstrap /ip4/10.79.0.1/udp/4001/quic-v1)
        [ "$mode" = edge ] && [ "$h" -gt 0 ] && args+=(--share "logs=$work/part$h" --share-rescan 1h)
        ip netns exec "$(ns "h$h")" "$shoal" "${args[@]}" >"$work/log$mode$h" 2>&1 &
    done
    local deadline=$((SECONDS + 60))
    until [ "$(ip netns exec "$(ns h0)" "$shoal" peers --json --data-dir "$work/d${mode}0" 2>/dev/null |
               python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null)" = $((last + 1)) ]; do
        [ $SECONDS -lt $deadline ] || { echo "error: the mesh did not form" >&2; exit 1; }
        sleep 0.2
    done
    if [ "$mode" = edge ]; then
        until ip netns exec "$(ns h0)" "$shoal" datasets --json --data-dir "$work/d${mode}0" |
              python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if d and len(d[0]['parts'])==$last else 1)"; do
            [ $SECONDS -lt $deadline ] || { echo "error: the dataset was not shared" >&2; exit 1; }
            sleep 0.2
        done
    fi
}

stop_nodes() { # $1: edge hosts
    for h in $(seq 0 "$1"); do
        ip netns pids "$(ns "h$h")" | xargs -r kill 2>/dev/null || true
    done
    wait 2>/dev/null || true
}

submit() { # $1: mode, $2: folder, $3...: the job; prints "seconds bytes_moved at_data tasks"
    local mode=$1 work=$2
    shift 2
    ip netns exec "$(ns h0)" "$shoal" submit --json --no-reuse --timeout 10m \
        --data-dir "$work/d${mode}0" "$@" |
        python3 -c 'import json,sys; a=json.load(sys.stdin); print(a["elapsed_ms"]/1000, a["bytes_moved"], a["at_data"], a["tasks"])'
}

measure() { # $1: edge hosts
    local hosts=$1 work=$top/n$1
    mkdir -p "$work"
    build_lan "$hosts"
    write_data "$work" "$hosts"
    for mode in central edge alone; do
        start_nodes "$mode" "$work" "$hosts"
        for _ in $(seq 1 "$runs"); do
            case $mode in
                central) line=$(submit central "$work" wordcount "$work/all") ;;
                edge) line=$(submit edge "$work" wordcount dataset:logs) ;;
                # One host's part, computed by one node alone: a part's compute time.
                alone) line=$(submit alone "$work" wordcount "$work/all/part1") ;;
            esac
            echo "$hosts $mode $line" | tee -a "$results"
        done
        stop_nodes "$hosts"
    done
    teardown
    rm -rf "$work"
}

for h in ${host_counts//,/ }; do
    measure "$h"
done

python3 - "$results" "$mib" "$rate" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
mib, rate = int(sys.argv[2]), sys.argv[3]
counts = sorted({int(r[0]) for r in rows})
def med(hosts, mode, col):
    return statistics.median(float(r[col]) for r in rows if int(r[0]) == hosts and r[1] == mode)
ns = [h + 1 for h in counts]  # computing nodes: the edge hosts and the submitter
edge = [med(h, "edge", 2) for h in counts]
central = [med(h, "central", 2) for h in counts]
# Least squares: edge = T_p * n; central - T_p * n = T_comm * (n - 1).
t_p = sum(n * t for n, t in zip(ns, edge)) / sum(n * n for n in ns)
t_comm = sum((n - 1) * (t - t_p * n) for n, t in zip(ns, central)) / sum((n - 1) ** 2 for n in ns)
print(f"\nlinks {rate}, {mib} MiB per edge host, medians of the runs; fitted T_p = {t_p:.3f} s, T_comm = {t_comm:.3f} s")
print("| edge hosts | n | split | m | predicted (seed) | measured | input moved | map tasks at their data | a part alone |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for h, n, e, c in zip(counts, ns, edge, central):
    total = h * mib * 2**20
    alone = med(h, "alone", 2)
    for split, t, m, mode in (("serverless (data on the submitter)", c, n - 1, "central"), ("edge (data where produced)", e, 0, "edge")):
        moved = med(h, mode, 3) / total
        maps = med(h, mode, 4)
        print(f"| {h} | {n} | {split} | {m} | {t_p * n + t_comm * m:.2f} s | {t:.2f} s | {moved:.1%} | {maps:.0f} | {alone:.2f} s |")
PY

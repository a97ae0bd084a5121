#!/usr/bin/env bash
# Benchmark ricochet-signaling against matchbox_server 0.15 with the same load generator, in the
# same run, and write the table to docs/bench-signaling.md; or (`cluster`) ricochet-signaling
# alone in memory, on Redis, and as two nodes on Redis, and write docs/bench-cluster.md.
#
#   signaling/bench/run.sh            # 10,000 idle sockets, 1,000 latency clients
#   IDLE_CONNECTIONS=2000 LATENCY_CLIENTS=200 signaling/bench/run.sh   # quick check
#   signaling/bench/run.sh cluster    # one node in memory / on Redis / two nodes on Redis:
#                                     # 10,000 idle sockets, 10,000 clients a round (~2 min)
#
# Environment: RICOCHET_BENCH_CACHE (where matchbox_server is installed, default
# ~/.cache/ricochet-bench), CARGO_TARGET_DIR (default target-signaling), IDLE_CONNECTIONS,
# LATENCY_CLIENTS, LATENCY_CONCURRENCY, LATENCY_ROUNDS, LOADGEN_TASKS, OUT (markdown file to write).
# The cluster mode needs redis-server (and redis-cli) on the PATH.
set -euo pipefail

MODE="${1:-compare}"
case "$MODE" in
    compare | cluster) ;;
    *)
        echo "usage: $0 [compare|cluster]" >&2
        exit 2
        ;;
esac
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
CACHE="${RICOCHET_BENCH_CACHE:-$HOME/.cache/ricochet-bench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target-signaling}"
IDLE_CONNECTIONS="${IDLE_CONNECTIONS:-10000}"
if [ "$MODE" = cluster ]; then
    LATENCY_CLIENTS="${LATENCY_CLIENTS:-10000}"
else
    LATENCY_CLIENTS="${LATENCY_CLIENTS:-1000}"
fi
LATENCY_CONCURRENCY="${LATENCY_CONCURRENCY:-50}"
LATENCY_ROUNDS="${LATENCY_ROUNDS:-5}"
LOADGEN_TASKS="${LOADGEN_TASKS:-100}"
if [ "$MODE" = cluster ]; then
    OUT="${OUT:-$ROOT/docs/bench-cluster.md}"
else
    OUT="${OUT:-$ROOT/docs/bench-signaling.md}"
fi
OUR_PORT=3601
LOAD_START="$(cut -d" " -f1 /proc/loadavg)"
MB_PORT=3602

# 1. The baseline, installed once.
MATCHBOX="$CACHE/bin/matchbox_server"
if [ "$MODE" = compare ] && [ ! -x "$MATCHBOX" ]; then
    cargo install --locked matchbox_server --version 0.15.0 --root "$CACHE"
fi

# 2. Our server and the load generator, release.
cargo build --release -p ricochet-signaling --features loadgen --bin ricochet-signaling --bin signaling-loadgen
OURS="$CARGO_TARGET_DIR/release/ricochet-signaling"
LOADGEN="$CARGO_TARGET_DIR/release/signaling-loadgen"

# 3. Enough file descriptors for every socket (each process holds one side).
ulimit -n "$(ulimit -Hn)" || true
NOFILE="$(ulimit -n)"
if [ "$NOFILE" != unlimited ] && [ "$NOFILE" -lt $((IDLE_CONNECTIONS + 100)) ]; then
    echo "ulimit -n is $NOFILE, too low for $IDLE_CONNECTIONS connections" >&2
    exit 1
fi

# Every process this script started and has not stopped yet (servers, nodes, Redis).
PIDS=()
SERVER_PID=""
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    PIDS=()
}
trap cleanup EXIT

wait_health() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3 && head -1 <&3 | grep -q 200) 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "server on port $1 did not become healthy" >&2
    exit 1
}

# Ricochet with its defaults except the caps that a loopback benchmark (every client on
# 127.0.0.1) would hit: connections and TCP connections per address, joins per address and per
# match, and the idle timeout. Extra arguments go to the server (the cluster's --redis ...).
start_ricochet() { # port log [server args...]
    local port="$1" log="$2"
    shift 2
    RUST_LOG=error "$OURS" --addr "127.0.0.1:$port" --secret "benchmark-secret-0123456789" \
        --max-connections $((IDLE_CONNECTIONS + 1000)) \
        --max-connections-per-ip $((IDLE_CONNECTIONS + 1000)) \
        --max-tcp-connections $((2 * IDLE_CONNECTIONS + 1000)) \
        --max-tcp-connections-per-ip $((2 * IDLE_CONNECTIONS + 1000)) \
        --join-rate-per-ip 1000000 --join-burst-per-ip 1000000 \
        --match-join-rate 1000000 --match-join-burst 1000000 \
        --idle-timeout-secs 600 "$@" >>"$log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_health "$port"
}

start_server() { # name port
    case "$1" in
        ricochet)
            start_ricochet "$2" /dev/null
            ;;
        matchbox)
            RUST_LOG=error "$MATCHBOX" "127.0.0.1:$2" >/dev/null 2>&1 &
            SERVER_PID=$!
            PIDS+=("$SERVER_PID")
            wait_health "$2"
            ;;
    esac
}

stop_server() { cleanup; SERVER_PID=""; sleep 1; }

field() { # line key
    echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

TICKS_PER_SEC="$(getconf CLK_TCK)"
cpu_ticks() { # pid...
    local p t=0
    for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done
    echo "$t"
}
median() { echo "$1" | tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
MODEL="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
NPROC="$(nproc)"
MEM_GIB="$(awk '/^MemTotal:/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)"
KERNEL="$(uname -r)"
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain --untracked-files=no -- signaling protocol server-kit 2>/dev/null)" ]; then
    COMMIT="$COMMIT plus uncommitted changes"
fi

if [ "$MODE" = cluster ]; then
    # shellcheck source=cluster.sh
    . "$ROOT/signaling/bench/cluster.sh"
    exit 0
fi

declare -A IDLE_B IDLE_LINE LAT_P50S LAT_P99S LAT_LINES CPU_TICKS
for name in ricochet matchbox; do
    port=$OUR_PORT; [ "$name" = matchbox ] && port=$MB_PORT
    echo "== $name: $IDLE_CONNECTIONS idle connections" >&2
    start_server "$name" "$port"
    line="$("$LOADGEN" idle "ws://127.0.0.1:$port" "$SERVER_PID" "$IDLE_CONNECTIONS" "$LOADGEN_TASKS")"
    echo "$line" >&2
    IDLE_LINE[$name]="$line"
    IDLE_B[$name]="$(field "$line" bytes_per_conn)"
    stop_server
done

# Latency is sensitive to whatever else the machine runs: alternate the servers for
# LATENCY_ROUNDS rounds (a fresh server each time) and report the median round.
for round in $(seq 1 "$LATENCY_ROUNDS"); do
    for name in ricochet matchbox; do
        port=$OUR_PORT; [ "$name" = matchbox ] && port=$MB_PORT
        echo "== $name: join-to-NewPeer latency, $LATENCY_CLIENTS clients, round $round" >&2
        start_server "$name" "$port"
        ticks_before="$(cpu_ticks "$SERVER_PID")"
        line="$("$LOADGEN" latency "ws://127.0.0.1:$port" "$LATENCY_CLIENTS" "$LATENCY_CONCURRENCY")"
        echo "$line" >&2
        LAT_LINES[$name]+="$name round $round: $line"$'\n'
        LAT_P50S[$name]+="$(field "$line" p50_us) "
        LAT_P99S[$name]+="$(field "$line" p99_us) "
        CPU_TICKS[$name]=$(( ${CPU_TICKS[$name]:-0} + $(cpu_ticks "$SERVER_PID") - ticks_before ))
        stop_server
    done
done
# Server CPU time (user + system) per client over all latency rounds, in microseconds.
cpu_per_client() { awk -v t="$1" -v hz="$TICKS_PER_SEC" -v n="$((LATENCY_CLIENTS * LATENCY_ROUNDS))" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }'; }
declare -A LAT_P50 LAT_P99
for name in ricochet matchbox; do
    LAT_P50[$name]="$(median "${LAT_P50S[$name]}")"
    LAT_P99[$name]="$(median "${LAT_P99S[$name]}")"
done

DATE="$(date -u '+%Y-%m-%d %H:%M UTC')"
LOAD_END="$(cut -d" " -f1 /proc/loadavg)"

cat > "$OUT" <<MD
# Signaling benchmark: ricochet-signaling vs matchbox_server 0.15

Run on $DATE, commit \`$COMMIT\`, by \`signaling/bench/run.sh\`: $NPROC CPUs ($MODEL), Linux $KERNEL.
Both servers are release builds (matchbox_server from \`cargo install --locked matchbox_server --version 0.15.0\`),
run one at a time on loopback with \`RUST_LOG=error\`, driven by the same load generator
(\`signaling-loadgen\`, tokio-tungstenite, many connections per task). The machine was shared with
other builds while this ran (1-minute load average $LOAD_START at the start, $LOAD_END at the end), so
latencies are noisy; memory is not affected.

| measurement | ricochet-signaling | matchbox_server 0.15 | ratio (ricochet / matchbox) |
| --- | ---: | ---: | ---: |
| memory per idle WebSocket, bytes ($IDLE_CONNECTIONS open, 2 per room) | ${IDLE_B[ricochet]} | ${IDLE_B[matchbox]} | $(ratio "${IDLE_B[ricochet]}" "${IDLE_B[matchbox]}") |
| join-to-NewPeer p50, µs ($LATENCY_CLIENTS clients, 2-player rooms, $LATENCY_CONCURRENCY rooms at a time; median of $LATENCY_ROUNDS rounds) | ${LAT_P50[ricochet]} | ${LAT_P50[matchbox]} | $(ratio "${LAT_P50[ricochet]}" "${LAT_P50[matchbox]}") |
| join-to-NewPeer p99, µs | ${LAT_P99[ricochet]} | ${LAT_P99[matchbox]} | $(ratio "${LAT_P99[ricochet]}" "${LAT_P99[matchbox]}") |
| server CPU time per latency client, µs (user + system; all rounds) | $(cpu_per_client "${CPU_TICKS[ricochet]}") | $(cpu_per_client "${CPU_TICKS[matchbox]}") | $(ratio "$(cpu_per_client "${CPU_TICKS[ricochet]}")" "$(cpu_per_client "${CPU_TICKS[matchbox]}")") |

Goal (issue 3): at most 10 KB per idle connection and at most a tenth of matchbox_server's.

## Method
- **Memory per idle connection**: the server's \`VmRSS\` (from \`/proc/<pid>/status\`) is read before
  any client connects and again 3 s after the last of $IDLE_CONNECTIONS WebSockets has received its
  \`IdAssigned\`; the difference divided by the number of open sockets. Clients join rooms of two
  (\`/idle-<run>-<i/2>\`), send nothing and read nothing. Ricochet runs with its defaults except the
  connection caps and the per-address join rate raised to fit the test (\`--max-connections-per-ip\`,
  \`--join-rate-per-ip\`, \`--join-burst-per-ip\`; all clients share 127.0.0.1)
  and a 600 s idle timeout. Kernel socket buffers are not in RSS and are the same for both.
- **Join-to-NewPeer latency**: per 2-player room, client A joins and reads \`IdAssigned\`; the clock
  starts, client B opens its TCP connection and WebSocket to the same room, and the clock stops when
  A receives \`NewPeer(B)\`. $LATENCY_CONCURRENCY rooms run concurrently; percentiles are over
  $((LATENCY_CLIENTS / 2)) rooms. The servers alternate for $LATENCY_ROUNDS rounds, each on a fresh process;
  the table shows the median over rounds of each percentile. Ricochet also sends its extension messages
  (welcome, ticket, peer_joined) on the same sockets, which the load generator (sharing the CPUs)
  reads and skips. The server's CPU time (\`utime + stime\` from \`/proc/<pid>/stat\`, in clock ticks of
  1/$TICKS_PER_SEC s) over the latency rounds, divided by the number of clients, is less sensitive to the
  machine's other load than the latencies are.

## Raw output
\`\`\`
ricochet  ${IDLE_LINE[ricochet]}
matchbox  ${IDLE_LINE[matchbox]}
${LAT_LINES[ricochet]}${LAT_LINES[matchbox]}\`\`\`
MD
echo "wrote $OUT" >&2
cat "$OUT"

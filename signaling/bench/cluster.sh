# Sourced by `signaling/bench/run.sh cluster` (issue 15): ricochet-signaling as one node with its
# state in memory, one node on Redis, and two nodes on Redis, in one run, with the same load
# generator; writes docs/bench-cluster.md. Uses run.sh's build, limits and helpers.
if [ -z "${OURS:-}" ]; then
    echo "run this as: signaling/bench/run.sh cluster" >&2
    exit 2
fi
for tool in redis-server redis-cli; do
    command -v "$tool" >/dev/null || {
        echo "$tool not found (Debian: apt-get install redis-server)" >&2
        exit 1
    }
done

free_port() { # first port to try
    local p
    for p in $(seq "$1" $(($1 + 500))); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    echo "no free port from $1" >&2
    exit 1
}
NODE1_PORT="$(free_port 3611)"
NODE2_PORT="$(free_port $((NODE1_PORT + 1)))"
REDIS_PORT="$(free_port 6390)"
REDIS_VERSION="$(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')"
LOGS="$(mktemp -d)"
REDIS_PID=""
NODE_PIDS=()
URLS=""

# A fresh Redis for each configuration: nothing saved, nothing appended.
start_redis() {
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --daemonize no >>"$LOGS/redis.log" 2>&1 &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    for _ in $(seq 1 100); do
        if [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; then
            return 0
        fi
        sleep 0.1
    done
    echo "redis-server on port $REDIS_PORT did not start" >&2
    exit 1
}

start_node() { # config port
    local args=()
    if [ "$1" != memory ]; then
        args=(--redis "redis://127.0.0.1:$REDIS_PORT" --advertise-url "ws://127.0.0.1:$2")
    fi
    start_ricochet "$2" "$LOGS/$1-$2.log" "${args[@]}"
    NODE_PIDS+=("$SERVER_PID")
}

start_config() { # memory | redis1 | redis2
    NODE_PIDS=()
    REDIS_PID=""
    case "$1" in
        memory)
            start_node memory "$NODE1_PORT"
            URLS="ws://127.0.0.1:$NODE1_PORT"
            ;;
        redis1)
            start_redis
            start_node redis1 "$NODE1_PORT"
            URLS="ws://127.0.0.1:$NODE1_PORT"
            ;;
        redis2)
            start_redis
            start_node redis2 "$NODE1_PORT"
            start_node redis2 "$NODE2_PORT"
            URLS="ws://127.0.0.1:$NODE1_PORT,ws://127.0.0.1:$NODE2_PORT"
            ;;
    esac
}

CONFIGS=(memory redis1 redis2)
declare -A LABEL=(
    [memory]="one node, in memory"
    [redis1]="one node on Redis"
    [redis2]="two nodes on Redis"
)
declare -A IDLE_B REDIS_B IDLE_LINES LAT_LINES P50S P99S F50S F99S JPS_S NODE_TICKS REDIS_TICKS ERRORS

# 1. Memory per idle socket: IDLE_CONNECTIONS WebSockets in rooms of two; with two nodes the
# two members of each room are on different nodes (the second one's join is forwarded).
for c in "${CONFIGS[@]}"; do
    echo "== ${LABEL[$c]}: $IDLE_CONNECTIONS idle connections" >&2
    start_config "$c"
    pids="$(IFS=,; echo "${NODE_PIDS[*]}")"
    line="$("$LOADGEN" idle "$URLS" "$pids" "$IDLE_CONNECTIONS" "$LOADGEN_TASKS" ${REDIS_PID:+"$REDIS_PID"})"
    echo "$line" >&2
    IDLE_LINES[$c]="$line"
    IDLE_B[$c]="$(field "$line" bytes_per_conn)"
    REDIS_B[$c]="$(field "$line" redis_bytes_per_conn)"
    ERRORS[$c]=$(( ${ERRORS[$c]:-0} + $(field "$line" errors) ))
    stop_server
done

# 2. Joins per second and join-to-NewPeer latency: LATENCY_CLIENTS clients in rooms of two,
# LATENCY_CONCURRENCY rooms at a time; the configurations alternate for LATENCY_ROUNDS rounds,
# each on fresh processes (and a fresh Redis); the table shows the median round.
for round in $(seq 1 "$LATENCY_ROUNDS"); do
    for c in "${CONFIGS[@]}"; do
        echo "== ${LABEL[$c]}: $LATENCY_CLIENTS clients, round $round" >&2
        start_config "$c"
        nodes_before="$(cpu_ticks "${NODE_PIDS[@]}")"
        redis_before=0
        [ -n "$REDIS_PID" ] && redis_before="$(cpu_ticks "$REDIS_PID")"
        line="$("$LOADGEN" latency "$URLS" "$LATENCY_CLIENTS" "$LATENCY_CONCURRENCY")"
        echo "$line" >&2
        NODE_TICKS[$c]=$(( ${NODE_TICKS[$c]:-0} + $(cpu_ticks "${NODE_PIDS[@]}") - nodes_before ))
        if [ -n "$REDIS_PID" ]; then
            REDIS_TICKS[$c]=$(( ${REDIS_TICKS[$c]:-0} + $(cpu_ticks "$REDIS_PID") - redis_before ))
        fi
        LAT_LINES[$c]+="${LABEL[$c]}, round $round: $line"$'\n'
        P50S[$c]+="$(field "$line" p50_us) "
        P99S[$c]+="$(field "$line" p99_us) "
        F50S[$c]+="$(field "$line" first_join_p50_us) "
        F99S[$c]+="$(field "$line" first_join_p99_us) "
        JPS_S[$c]+="$(field "$line" joins_per_sec) "
        ERRORS[$c]=$(( ${ERRORS[$c]:-0} + $(field "$line" errors) ))
        stop_server
    done
done

# Server CPU time (user + system) per join over all rounds, microseconds.
cpu_per_join() { awk -v t="$1" -v hz="$TICKS_PER_SEC" -v n="$((LATENCY_CLIENTS * LATENCY_ROUNDS))" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }'; }
declare -A P50 P99 F50 F99 JPS CPU CPU_REDIS
for c in "${CONFIGS[@]}"; do
    P50[$c]="$(median "${P50S[$c]}")"
    P99[$c]="$(median "${P99S[$c]}")"
    F50[$c]="$(median "${F50S[$c]}")"
    F99[$c]="$(median "${F99S[$c]}")"
    JPS[$c]="$(median "${JPS_S[$c]}")"
    CPU[$c]="$(cpu_per_join $(( ${NODE_TICKS[$c]:-0} + ${REDIS_TICKS[$c]:-0} )))"
    CPU_REDIS[$c]="$(cpu_per_join "${REDIS_TICKS[$c]:-0}")"
done
ms() { awk -v u="$1" 'BEGIN { printf "%.1f", u / 1000 }'; }
row() { # config
    local redis_mem="–" cpu="${CPU[$1]}"
    [ -n "${REDIS_B[$1]}" ] && redis_mem="${REDIS_B[$1]}"
    [ "$1" != memory ] && cpu="$cpu (Redis ${CPU_REDIS[$1]})"
    echo "| ${LABEL[$1]} | ${JPS[$1]} | $(ms "${P50[$1]}") | $(ms "${P99[$1]}") | $(ms "${F50[$1]}") / $(ms "${F99[$1]}") | ${IDLE_B[$1]} | $redis_mem | $cpu | ${ERRORS[$1]} |"
}
ratio_row() { # label a b
    echo "| $1 | $(ratio "${JPS[$2]}" "${JPS[$3]}") | $(ratio "${P50[$2]}" "${P50[$3]}") | $(ratio "${P99[$2]}" "${P99[$3]}") | $(ratio "${F50[$2]}" "${F50[$3]}") / $(ratio "${F99[$2]}" "${F99[$3]}") | $(ratio "${IDLE_B[$2]}" "${IDLE_B[$3]}") | | $(ratio "${CPU[$2]}" "${CPU[$3]}") | |"
}
# What the nodes logged at RUST_LOG=error over the whole run (Redis's own log is not counted).
NODE_LOG="$(cat "$LOGS"/memory-*.log "$LOGS"/redis1-*.log "$LOGS"/redis2-*.log 2>/dev/null | grep -v '^$' || true)"
NODE_LOG_COUNT="$(printf '%s' "$NODE_LOG" | grep -c . || true)"
DATE="$(date -u '+%Y-%m-%d %H:%M UTC')"
LOAD_END="$(cut -d" " -f1 /proc/loadavg)"

cat >"$OUT" <<MD
# Signaling cluster benchmark: one node in memory, one node on Redis, two nodes on Redis

Run on $DATE, commit \`$COMMIT\`, by \`signaling/bench/run.sh cluster\`: $NPROC CPUs ($MODEL), $MEM_GIB GiB,
Linux $KERNEL, redis-server $REDIS_VERSION (\`--save "" --appendonly no\`). Release builds, \`RUST_LOG=error\`,
every process (nodes, Redis, the load generator) on the same $NPROC CPUs over loopback; 1-minute load
average $LOAD_START at the start, $LOAD_END at the end.

| configuration | joins/s | join-to-NewPeer p50, ms | join-to-NewPeer p99, ms | first join p50 / p99, ms | node memory per idle socket, B | Redis memory per idle socket, B | server CPU per join, µs | failed joins |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
$(row memory)
$(row redis1)
$(row redis2)
$(ratio_row "ratio: one node on Redis ÷ in memory" redis1 memory)
$(ratio_row "ratio: two nodes ÷ one node on Redis" redis2 redis1)

Goal (issue 15): measure the three in one run; memory per idle socket still at most 10 KB.

## Method
- **Workload**: $LATENCY_CLIENTS clients per round in rooms of two (\`/lat-<run>-<room>\`, a named room
  each), $LATENCY_CONCURRENCY rooms at a time. Per room, client A joins and reads \`IdAssigned\`; the clock
  starts, client B opens its TCP connection and WebSocket to the same room, and the clock stops when A
  receives \`NewPeer(B)\` (*join-to-NewPeer*); then both close. *First join* is A's own join, from its
  TCP connect to its \`IdAssigned\` (the join that makes the room, and on Redis claims its name). With two nodes, A joins node \`room % 2\` and B the other node,
  so half the clients are on each node and every B's join is forwarded to A's node (Redis \`SET NX\` on
  the room name fails, the name and the home node are read from Redis, and the node opens a TCP
  connection to the home node, makes the client's WebSocket handshake there and then passes the
  bytes through both ways). With one node on Redis, A's join claims the name in Redis
  (\`SET NX\`, then the match's home) and B's join finds the room locally.
- **Joins/s**: joins completed (2 per room) divided by the wall time of the round, with
  $LATENCY_CONCURRENCY rooms in flight (a closed loop, not an open-loop maximum); the generator shares the CPUs.
- The three configurations alternate for $LATENCY_ROUNDS rounds, each round on fresh processes and a fresh
  Redis; the table shows the median round of each column. Server CPU time is \`utime + stime\` of the
  nodes and Redis (from \`/proc/<pid>/stat\`, clock ticks of 1/$TICKS_PER_SEC s) over all rounds, divided
  by the number of joins; Redis's share in parentheses.
- **Memory per idle socket**: as in [\`bench-signaling.md\`](bench-signaling.md): \`VmRSS\` of the node
  processes (summed over both nodes) before any client connects and 3 s after the last of
  $IDLE_CONNECTIONS WebSockets has its \`IdAssigned\`, the difference divided by the number of client
  sockets. Rooms of two; with two nodes the two members of a room are on different nodes, so half the
  sockets are forwarded (the forwarding node holds the client's socket, its TCP connection to the
  home node and one task passing bytes through, the home node the member). Redis's \`VmRSS\` difference over the same sockets is its own
  column. \`live_matches\` / \`live_members\` are the nodes' \`/metrics\` gauges while the sockets are open.
- Every node runs with its defaults except the limits a loopback benchmark would hit (every client is
  127.0.0.1): \`--max-connections\`, \`--max-connections-per-ip\`, \`--max-tcp-connections\`,
  \`--max-tcp-connections-per-ip\`, \`--join-rate-per-ip\`, \`--join-burst-per-ip\`, \`--match-join-rate\`,
  \`--match-join-burst\` raised, and a 600 s idle timeout; the nodes share \`--secret\`.

## Raw output
\`\`\`
$(for c in "${CONFIGS[@]}"; do echo "${LABEL[$c]}: ${IDLE_LINES[$c]}"; done)
(expected with every room in one match: live_matches=$((IDLE_CONNECTIONS / 2)) live_members=$IDLE_CONNECTIONS)
$(for c in "${CONFIGS[@]}"; do printf '%s' "${LAT_LINES[$c]}"; done)
node log lines at RUST_LOG=error over the run: $NODE_LOG_COUNT
$(printf '%s\n' "$NODE_LOG" | head -5)
\`\`\`
MD
rm -rf "$LOGS"
echo "wrote $OUT" >&2
cat "$OUT"

#!/usr/bin/env bash
# Runs a moa-cluster on this machine as separate processes.
#   cluster.sh up [CONFIG]     start (simulator if the config uses 127.0.0.1:8000,
#                              one proposer per model, aggregator, orchestrator)
#   cluster.sh down            stop everything `up` started
#   cluster.sh status          show what runs
#   cluster.sh demo            up, ask one question, down (also on Ctrl-C or failure)
# Env: BUILD_DIR (build), MOA_RUN_DIR (.run/local), ORCH_PORT (50051),
#      SIM_PORT (8000), HTTP_PORT (8080), QUESTION (the demo's question),
#      MOA_PARENT_PID (when set, the cluster is stopped as soon as that process
#      is gone, even if it was killed: tests set it to themselves),
#      ORCH_FLAGS (more flags for the orchestrator, split on spaces, e.g.
#      "--api_keys_file=keys.yaml").
# Each service's metrics port is its gRPC port - 41000 (50061 -> 9061).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BUILD_DIR:-$root/build}"
run_dir="${MOA_RUN_DIR:-$root/.run/local}"
orch_port="${ORCH_PORT:-50051}"
sim_port="${SIM_PORT:-8000}"
http_port="${HTTP_PORT:-8080}"
moa="$build/tools/moa/moa"

log() { printf '\033[1m[cluster]\033[0m %s\n' "$*" >&2; }

start() {  # start NAME BINARY ARGS...
  local name=$1
  shift
  "$@" >"$run_dir/$name.log" 2>&1 &
  echo $! >"$run_dir/$name.pid"
}

alive() { [[ -f "$run_dir/$1.pid" ]] && kill -0 "$(cat "$run_dir/$1.pid")" 2>/dev/null; }

# wait_healthy NAME CHECK...: polls CHECK until it succeeds, the process dies, or 30 s pass.
wait_healthy() {
  local name=$1
  shift
  for _ in $(seq 1 300); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! alive "$name"; then
      log "$name exited during start-up; its log:"
      tail -n 20 "$run_dir/$name.log" >&2
      return 1
    fi
    sleep 0.1
  done
  log "$name did not become healthy within 30 s; its log:"
  tail -n 20 "$run_dir/$name.log" >&2
  return 1
}

grpc_healthy() { "$moa" health --target="127.0.0.1:$1" --timeout=1s; }

# check_ports PORT...: fails naming the process that holds a port, before
# anything starts (a half-started cluster is worse than none).
check_ports() {
  local p holder busy=0
  for p in "$@"; do
    holder="$(ss -Hltnp "sport = :$p" 2>/dev/null | grep -o 'users:(("[^"]*",pid=[0-9]*' |
      head -n 1 | sed 's/users:(("\([^"]*\)",pid=\([0-9]*\)/\1 (pid \2)/')" || true
    if [[ -n $holder ]]; then
      log "port $p is in use by $holder; stop it first (cluster.sh down, or kill that process)"
      busy=1
    elif ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
      log "port $p is in use by another process; stop it first"
      busy=1
    fi
  done
  return $busy
}

# Stops the cluster once MOA_PARENT_PID is gone. The watchdog belongs to one
# `up`: it leaves alone a later cluster in the same run folder (its run_id
# differs), and its pid file is not a *.pid, so `down` does not kill it.
start_watchdog() {
  [[ -n ${MOA_PARENT_PID:-} ]] || return 0
  local run_id
  run_id="$(cat "$run_dir/run_id")"
  setsid bash -c 'owned() { [[ "$(cat "$2/run_id" 2>/dev/null)" == "$4" ]]; }
                  while kill -0 "$1" 2>/dev/null && owned "$@"; do sleep 0.5; done
                  owned "$@" && MOA_RUN_DIR="$2" "$3" down' \
    watchdog "$MOA_PARENT_PID" "$run_dir" "$0" "$run_id" </dev/null >/dev/null 2>&1 &
  echo $! >"$run_dir/watchdog.wpid"
}

up() {
  local config
  config="$(realpath "${1:-$root/deploy/local/cluster.yaml}")"
  mkdir -p "$run_dir"
  if alive orchestrator; then
    log "a cluster is already running (cluster.sh down first)"
    return 1
  fi
  rm -f "$run_dir"/*.pid
  local ports=("$orch_port" $((orch_port - 41000)) "$http_port") kind name port
  if grep -q "base_url: *http://127.0.0.1:$sim_port" "$config"; then ports+=("$sim_port"); fi
  while read -r kind name port; do
    if [[ $kind == model ]]; then ports+=("$port" $((port - 41000))); else ports+=("$name" $((name - 41000))); fi
  done < <("$moa" endpoints --config="$config")
  check_ports "${ports[@]}" || return 1
  starting=1  # From here on, a failure stops what was started (see the `up` case).
  echo "$config" >"$run_dir/config"
  echo "$$-$RANDOM-$(date +%s%N)" >"$run_dir/run_id"
  start_watchdog
  if grep -q "base_url: *http://127.0.0.1:$sim_port" "$config"; then
    start upstream-sim "$build/tools/upstream-sim/moa-upstream-sim" --port="$sim_port" \
      --profiles="$root/deploy/local/sim-profiles.yaml"
    wait_healthy upstream-sim curl -sf "http://127.0.0.1:$sim_port/healthz"
    log "upstream simulator on :$sim_port"
  fi
  local agg_port=""
  while read -r kind name port; do
    if [[ $kind == model ]]; then
      start "proposer-$name" "$build/services/proposer/moa-proposer" --config="$config" \
        --model="$name" --host=127.0.0.1 --port="$port" --metrics_port=$((port - 41000))
    else
      agg_port=$name
    fi
  done < <("$moa" endpoints --config="$config")
  while read -r kind name port; do
    [[ $kind == model ]] || continue
    wait_healthy "proposer-$name" grpc_healthy "$port"
    log "proposer $name on :$port (metrics :$((port - 41000)))"
  done < <("$moa" endpoints --config="$config")
  start aggregator "$build/services/aggregator/moa-aggregator" --config="$config" \
    --host=127.0.0.1 --port="$agg_port" --metrics_port=$((agg_port - 41000))
  wait_healthy aggregator grpc_healthy "$agg_port"
  log "aggregator on :$agg_port (metrics :$((agg_port - 41000)))"
  local -a orch_flags
  read -r -a orch_flags <<<"${ORCH_FLAGS:-}"
  start orchestrator "$build/services/orchestrator/moa-orchestrator" --config="$config" \
    --host=127.0.0.1 --port="$orch_port" --metrics_port=$((orch_port - 41000)) \
    --http_port="$http_port" "${orch_flags[@]}"
  wait_healthy orchestrator grpc_healthy "$orch_port"
  log "orchestrator on :$orch_port (metrics :$((orch_port - 41000))); logs in $run_dir"
  log "playground: http://127.0.0.1:$http_port/ui/"
}

down() {
  [[ -d "$run_dir" ]] || return 0
  local pids=() f
  for f in "$run_dir"/*.pid; do
    [[ -e $f ]] || continue
    pids+=("$(cat "$f")")
  done
  ((${#pids[@]})) || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 1 100); do
    local running=0 p
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && running=1; done
    ((running)) || break
    sleep 0.1
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
  rm -f "$run_dir"/*.pid "$run_dir/config" "$run_dir/run_id"
  log "stopped ${#pids[@]} processes"
}

status() {
  local f
  for f in "$run_dir"/*.pid; do
    [[ -e $f ]] || { log "nothing running"; return 0; }
    local name
    name="$(basename "$f" .pid)"
    if alive "$name"; then echo "running  $name (pid $(cat "$f"))"; else echo "exited   $name"; fi
  done
}

demo() {
  trap 'down' EXIT
  trap 'exit 130' INT TERM
  # Even a SIGKILL of this script leaves nothing running.
  MOA_PARENT_PID=${MOA_PARENT_PID:-$$}
  up "${1:-}"
  local question="${QUESTION:-What are the trade-offs between microservices and a monolith?}"
  log "moa ask \"$question\""
  "$moa" ask --orchestrator="127.0.0.1:$orch_port" "$question"
}

starting=0
case "${1:-}" in
  up)
    trap 'rc=$?; if ((rc != 0 && starting)); then log "start-up failed; stopping what started"; down; fi' EXIT
    up "${2:-}"
    ;;
  down) down ;;
  status) status ;;
  demo) demo "${2:-}" ;;
  *) echo "usage: $0 up [CONFIG] | down | status | demo [CONFIG]" >&2; exit 2 ;;
esac

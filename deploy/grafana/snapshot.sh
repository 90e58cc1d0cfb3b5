#!/usr/bin/env bash
# Renders docs/dashboard.png from real data: starts the local cluster and a
# Prometheus scraping it, runs a load in three phases, then draws the
# dashboard's main panels from Prometheus's query results (gnuplot).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BUILD_DIR:-$root/build}"
work="$(mktemp -d)"
export MOA_RUN_DIR="$work/run" BUILD_DIR="$build"
cleanup() {
  [[ -n ${prom_pid:-} ]] && kill "$prom_pid" 2>/dev/null || true
  "$root/deploy/local/cluster.sh" down || true
  rm -rf "$work"
}
trap cleanup EXIT
"$root/deploy/local/cluster.sh" up
sed -e 's/scrape_interval: 5s/scrape_interval: 1s/' \
    -e "s#  - alerts.yml#  - $root/deploy/prometheus/alerts.yml#" \
    "$root/deploy/prometheus/prometheus-local.yml" >"$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address=127.0.0.1:19090 >"$work/prometheus.log" 2>&1 &
prom_pid=$!
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:19090/-/ready >/dev/null && break; sleep 0.2; done
# Bounded load in three phases, so the quantiles move with it: short answers
# at low concurrency, full answers at high concurrency, then medium ones
# (max_tokens cuts the simulator's answers; about 100 s in all).
phase() {  # NAME QUESTIONS CONCURRENCY MAX_TOKENS
  node -e "console.log(JSON.stringify(Array.from({length: $2}, (_, i) => ({instruction: \`$1 question \${i}\`, dataset: 'snapshot'}))))" >"$work/$1.json"
  "$build/tools/moa/moa" --orchestrator=127.0.0.1:50051 batch --format=alpaca_eval \
    --input="$work/$1.json" --output="$work/$1.out.json" --concurrency="$3" --max_tokens="$4" \
    >/dev/null 2>&1
}
load_start=$(date +%s)
phase short 60 4 15
phase full 100 10 0
phase medium 60 6 30
sleep 5
mkdir -p "$root/docs"
SNAPSHOT_SECONDS=$(($(date +%s) - load_start + 10)) node "$root/deploy/grafana/snapshot.mjs" http://127.0.0.1:19090 "$root/docs/dashboard.png"

#!/usr/bin/env bash
# Runs every benchmark against the binaries in BUILD_DIR (default: build),
# prints their numbers, then one summary table (markdown, with the machine
# and the date) of the rows each benchmark marked with a SUMMARY line.
# Benchmarks start their own processes on loopback ports and stop them;
# they are never run as tests.
set -euo pipefail
build_dir="${1:-build}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for bench in parse_bench proposer_bench moa_bench resilience_bench reference_bench staircase_bench instructions_bench limits_bench presets_bench; do
  binary="$build_dir/bench/$bench"
  if [[ ! -x "$binary" ]]; then
    echo "run-benchmarks: $binary is missing; run 'make build' first" >&2
    exit 1
  fi
  echo "== $bench"
  "$binary" | tee -a "$out" | grep -v '^SUMMARY'
done
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
echo
echo "## make bench, $(date -u +%Y-%m-%d), ${cpu:-unknown CPU}, $(nproc) cores"
echo
echo "| what | result |"
echo "|---|---|"
awk -F'\t' '$1 == "SUMMARY" { printf "| %s | %s |\n", $2, $3 }' "$out"

#!/usr/bin/env bash
# Runs every benchmark against the binaries in BUILD_DIR (default: build) and
# prints their numbers. Benchmarks start their own processes on loopback
# ports and stop them; they are never run as tests.
set -euo pipefail
build_dir="${1:-build}"
for bench in proposer_bench moa_bench resilience_bench reference_bench; do
  binary="$build_dir/bench/$bench"
  if [[ ! -x "$binary" ]]; then
    echo "run-benchmarks: $binary is missing; run 'make build' first" >&2
    exit 1
  fi
  echo "== $bench"
  "$binary"
done

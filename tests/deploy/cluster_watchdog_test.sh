#!/usr/bin/env bash
# cluster.sh with MOA_PARENT_PID: when that process dies (even by SIGKILL),
# the cluster it started is stopped; a later cluster in the same run folder
# is left alone by the earlier watchdog.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
export BUILD_DIR=${BUILD_DIR:?} MOA_RUN_DIR
MOA_RUN_DIR="$(mktemp -d /tmp/moa-watchdog-test-XXXXXX)"
cluster="$root/deploy/local/cluster.sh"
running() { pgrep -f -- "--config=$root/deploy/local/cluster.yaml" | wc -l; }

sleep 600 &
owner=$!
MOA_PARENT_PID=$owner "$cluster" up
echo "started: $(running) processes"
[[ $(running) -ge 7 ]] || { echo "FAIL: cluster did not start"; exit 1; }
kill -9 $owner
for _ in $(seq 1 100); do [[ $(running) -eq 0 ]] && break; sleep 0.1; done
if [[ $(running) -ne 0 ]]; then
  echo "FAIL: $(running) processes outlived their owner"
  "$cluster" down
  exit 1
fi
echo "PASS: the cluster stopped after its owner was killed"
rm -rf "$MOA_RUN_DIR"

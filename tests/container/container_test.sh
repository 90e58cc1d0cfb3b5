#!/usr/bin/env bash
# The container image, built and run on this machine (ctest label `container`):
#   1. base images debian:bookworm and debian:bookworm-slim made with debootstrap
#      (scripts/container-base-images; no registry is reachable here);
#   2. podman build --format docker of deploy/docker/Dockerfile: user, health
#      check and size checked;
#   3. deploy/docker-compose.yml run through podman's Docker API socket with
#      docker-compose, every container on the host network (host_network.py
#      rewrites the resolved compose file: own ports, everything else the
#      compose file's);
#   4. each container's HEALTHCHECK passes; one question through the OpenAI
#      door from the host and one through the image's own `moa ask`;
#   5. the machine's Prometheus, with the compose file's scrape config
#      rewritten to the containers' ports, scrapes every service;
#   6. the TLS variant (docker-compose.tls.yml, certificates from
#      scripts/make-dev-certs): every health check presents the certificate,
#      a question over HTTPS and one over gRPC-over-TLS, a proposer refuses a
#      caller without a certificate, plain HTTP to the HTTPS door gets 400;
#   7. everything it started is stopped and removed, also on failure.
# Ports 17800-17830 on 127.0.0.1.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
base_port=${MOA_CONTAINER_BASE_PORT:-17800}
run=$(mktemp -d /var/tmp/moa-container-test.XXXXXX)
chmod 755 "$run"
project=moa-ct-$$
image=moa-cluster:latest
unset MOA_CONFIG MOA_API_KEYS MOA_PUBLISH_ADDRESS TOGETHER_API_KEY
log() { echo "container-test: $*"; }
fail() { echo "container-test: FAIL: $*" >&2; exit 1; }

# shellcheck source=scripts/podman-env
. "$src/scripts/podman-env"
export DOCKER_HOST=unix://$run/podman.sock
service_pid=""
prometheus_pid=""
compose_file=""
cleanup() {
  local rc=$?
  set +e
  if ((rc != 0)) && [[ -S $run/podman.sock ]]; then
    for c in $(podman ps -a -q --filter "label=com.docker.compose.project=$project"); do
      echo "--- logs of $(podman inspect --format '{{.Name}}' "$c")" >&2
      podman logs --tail 20 "$c" >&2
    done
  fi
  if [[ -S $run/podman.sock && -n $compose_file ]]; then
    docker-compose -p "$project" -f "$compose_file" down -t 10 >/dev/null 2>&1
  fi
  # Whatever compose could not remove (it never got as far, say).
  podman ps -a -q --filter "label=com.docker.compose.project=$project" | xargs -r podman rm -f \
    >/dev/null 2>&1
  [[ -n $prometheus_pid ]] && kill "$prometheus_pid" 2>/dev/null
  [[ -n $service_pid ]] && kill "$service_pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$run"
  exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM

for port in $(seq "$base_port" $((base_port + 30))); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "port $port on 127.0.0.1 is in use"
  fi
done

log "base images"
"$src/scripts/container-base-images"

log "podman build (layers cached from earlier builds are reused)"
start=$(date +%s)
podman build --pull=never --format docker --network host -f "$src/deploy/docker/Dockerfile" \
  -t "$image" "$src" >"$run/build.log" 2>&1 || { tail -40 "$run/build.log" >&2; fail "build"; }
# Earlier builds' layers stay a day as the cache (the dependency layer above
# all); older ones are removed, so repeated runs do not fill the disk.
podman image prune -f --filter until=24h >/dev/null
size=$(podman image inspect --format '{{.Size}}' "$image")
log "built $image in $(($(date +%s) - start)) s, $((size / 1000000)) MB"
[[ $(podman image inspect --format '{{.Config.User}}' "$image") == moa ]] || fail "image user"
podman image inspect --format '{{json .Config.Healthcheck}}' "$image" | grep -q 'moa health' \
  || fail "the image has no HEALTHCHECK (built without --format docker?)"
# The five binaries are there and stripped (no symbol table).
container=$(podman create --pull=never --health-cmd=none "$image")
mkdir "$run/bin"
podman cp "$container:/usr/local/bin/." "$run/bin/" && podman rm "$container" >/dev/null 2>&1
for b in moa-proposer moa-aggregator moa-orchestrator moa-upstream-sim moa; do
  [[ -x $run/bin/$b ]] || fail "$b missing from the image"
  if readelf -S "$run/bin/$b" | grep -q '\.symtab'; then fail "$b is not stripped"; fi
done
log "binaries: $(du -sh "$run/bin" | cut -f1) ($(cd "$run/bin" && du -h ./* | tr '\t\n' ': '))"

log "podman's Docker API socket"
podman system service --time=0 "unix://$run/podman.sock" >"$run/podman-service.log" 2>&1 &
service_pid=$!
for _ in $(seq 100); do [[ -S $run/podman.sock ]] && break; sleep 0.1; done
[[ -S $run/podman.sock ]] || fail "podman system service did not open its socket"

# Brings up the compose files given (resolved, then moved onto the host
# network into folder $1) and waits for every container's health check.
# Sets compose (the docker-compose command) and the variables of ports.env.
compose_up() {
  local out=$1
  shift
  mkdir -p "$out"
  docker-compose "$@" config >"$out/compose.yml"
  /usr/bin/python3 "$src/tests/container/host_network.py" "$src" "$out" "$base_port" \
    <"$out/compose.yml"
  # shellcheck source=/dev/null
  . "$out/ports.env"
  compose_file=$out/compose-host.yml
  compose=(docker-compose -p "$project" -f "$compose_file")
  # shellcheck disable=SC2086  # SERVICES is a list of names
  "${compose[@]}" up -d --no-build $SERVICES >"$out/up.log" 2>&1 \
    || { cat "$out/up.log" >&2; fail "up"; }
  log "health checks"
  for service in $SERVICES; do
    id=$("${compose[@]}" ps -q "$service")
    [[ -n $id ]] || fail "no container for $service"
    [[ $(podman exec "$id" id -u) == 10001 ]] || fail "$service does not run as uid 10001"
    healthy=0
    for _ in $(seq 60); do
      if podman healthcheck run "$id" >/dev/null 2>&1; then healthy=1; break; fi
      sleep 0.5
    done
    ((healthy)) || fail "$service: health check fails ($(podman inspect --format \
      '{{.Config.Env}}' "$id" | tr ' ' '\n' | grep MOA_HEALTH))"
    log "  $service healthy"
  done
}

# The content of the first choice of an OpenAI chat completion on stdin.
answer_content() {
  /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["message"]["content"])'
}

log "docker-compose up on the host network"
compose_up "$run/plain" -f "$src/deploy/docker-compose.yml"

log "one question through the OpenAI door"
answer=$(curl -sS --max-time 60 "http://127.0.0.1:$ORCHESTRATOR_HTTP/v1/chat/completions" \
  -H 'Content-Type: application/json' \
  -d '{"model": "moa", "messages": [{"role": "user", "content": "What is a container?"}]}')
content=$(printf '%s' "$answer" | answer_content) || fail "no answer: $answer"
[[ -n $content ]] || fail "empty answer: $answer"
log "  answer: ${content:0:80}..."

log "one question through the image's moa CLI (gRPC)"
orchestrator=$("${compose[@]}" ps -q orchestrator)
podman exec "$orchestrator" moa ask --orchestrator="127.0.0.1:$ORCHESTRATOR_GRPC" \
  "What is an image?" >"$run/ask.out" 2>&1 || { cat "$run/ask.out" >&2; fail "moa ask"; }
grep -q "qwen-1.5-110b" "$run/ask.out" || { cat "$run/ask.out" >&2; fail "moa ask: no table"; }

log "Prometheus scrapes every service"
prometheus_port=$NEXT_PORT
prometheus --config.file="$run/plain/prometheus.yml" --storage.tsdb.path="$run/prometheus" \
  --web.listen-address="127.0.0.1:$prometheus_port" >"$run/prometheus.log" 2>&1 &
prometheus_pid=$!
up=0
for _ in $(seq 60); do
  up=$(curl -sS "http://127.0.0.1:$prometheus_port/api/v1/query?query=sum(up)" 2>/dev/null \
    | /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"];
print(int(float(r[0]["value"][1])) if r else 0)' 2>/dev/null || echo 0)
  ((up == METRICS_TARGETS)) && break
  sleep 0.5
done
((up == METRICS_TARGETS)) || fail "Prometheus sees $up of $METRICS_TARGETS targets up"
requests=$(curl -sS "http://127.0.0.1:$prometheus_port/api/v1/query" \
  --data-urlencode 'query=sum(moa_requests_total)' | /usr/bin/python3 -c \
  'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)')
((requests >= 2)) || fail "moa_requests_total is $requests after two questions"
log "  $up targets up, moa_requests_total $requests"

kill "$prometheus_pid" 2>/dev/null
wait "$prometheus_pid" 2>/dev/null || true
prometheus_pid=""

# Stops the running compose project; nothing may be left.
compose_down() {
  "${compose[@]}" down -t 30 >"$run/down.log" 2>&1 || { cat "$run/down.log" >&2; fail "down"; }
  compose_file=""
  left=$(podman ps -a -q --filter "label=com.docker.compose.project=$project" | wc -l)
  ((left == 0)) || fail "$left containers left after down"
}
log "stop"
compose_down

log "the TLS variant (docker-compose.tls.yml, throw-away certificates)"
"$src/scripts/make-dev-certs" "$run/tls" >/dev/null
chmod 755 "$run/tls"
export MOA_TLS_DIR=$run/tls
compose_up "$run/tls-run" -f "$src/deploy/docker-compose.yml" \
  -f "$src/deploy/docker-compose.tls.yml"
answer=$(curl -sS --max-time 60 --cacert "$run/tls/ca.crt" \
  "https://localhost:$ORCHESTRATOR_HTTP/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model": "moa", "messages": [{"role": "user", "content": "What is TLS?"}]}')
content=$(printf '%s' "$answer" | answer_content) || fail "no answer over HTTPS: $answer"
[[ -n $content ]] || fail "empty answer over HTTPS: $answer"
log "  HTTPS answer: ${content:0:60}..."
plain=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' \
  "http://127.0.0.1:$ORCHESTRATOR_HTTP/v1/models") || true
[[ $plain == 400 ]] || fail "plain HTTP to the HTTPS door answered $plain, not 400"
orchestrator=$("${compose[@]}" ps -q orchestrator)
podman exec "$orchestrator" moa ask --orchestrator="localhost:$ORCHESTRATOR_GRPC" \
  --tls_ca_file=/etc/moa/tls/ca.crt "What is mTLS?" >"$run/ask-tls.out" 2>&1 \
  || { cat "$run/ask-tls.out" >&2; fail "moa ask over TLS"; }
grep -q "qwen-1.5-110b" "$run/ask-tls.out" || { cat "$run/ask-tls.out" >&2; fail "moa ask: no table"; }
log "  gRPC over TLS: moa ask answered"
proposer=$("${compose[@]}" ps -q proposer-qwen-2-72b)
if podman exec "$proposer" sh -c 'moa health --target="$MOA_HEALTH_TARGET" --timeout=2s \
     --tls_ca_file=/etc/moa/tls/ca.crt' >/dev/null 2>&1; then
  fail "a proposer let in a caller without a client certificate"
fi
log "  a proposer refuses a caller without a certificate"
compose_down
log "PASS"

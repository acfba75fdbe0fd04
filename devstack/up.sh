#!/usr/bin/env bash
# `make up`: with the services running (make starts them first), run the consumer, the API
# and demo traffic in the background, wait until the demo events are searchable, and say
# where to look. `up.sh stop` stops the three (make stop also stops the services).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
state="$here/.state/up"
py="${PYTHON:-$root/.venv/bin/python}"
api_port="${AUDIT_LOG_API_PORT:-8000}"
mkdir -p "$state"

running() { [ -s "$state/$1.pid" ] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }

start_bg() {
  local name=$1; shift
  if running "$name"; then
    echo "up: $name already running (pid $(cat "$state/$name.pid"))"
    return
  fi
  rm -f "$state/$name.pid"
  # The process writes its own pid (setsid may fork, so $! would be the wrong one).
  # exec: no shell stays behind waiting for it, holding the caller's stdout open (make up |
  # tee never ended).
  (cd "$root" && exec setsid nohup bash -c 'echo $$ > "$0"; exec "$@"' "$state/$name.pid" "$@" \
    > "$state/$name.log" 2>&1 < /dev/null) &
  for _ in $(seq 1 50); do [ -s "$state/$name.pid" ] && break; sleep 0.1; done
  echo "up: $name started (pid $(cat "$state/$name.pid"), log $state/$name.log)"
}

stop_bg() {
  local name=$1
  if running "$name"; then
    local pid; pid=$(cat "$state/$name.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    echo "up: $name stopped"
  fi
  rm -f "$state/$name.pid"
}

fail() {
  echo "up: $1 failed; see $state/$1.log" >&2
  tail -n 30 "$state/$1.log" >&2 || true
  exit 1
}

up() {
  if [ ! -f "$here/local.env" ]; then
    echo "up: devstack/local.env is missing: run 'make services' first" >&2
    exit 1
  fi
  set -a; . "$here/local.env"; set +a
  start_bg consumer "$py" -m audit_logging.consumer --flush-interval 5
  start_bg api "$py" -m audit_logging.api --host 127.0.0.1 --port "$api_port"
  start_bg demo "$py" "$here/demo_traffic.py" --rate 5

  local url="http://127.0.0.1:$api_port" token="$AUDIT_LOG_API_TOKENS"
  # Only events logged from now on prove that the pipeline runs (older ones may be indexed).
  local since; since=$(date -u +%Y-%m-%dT%H:%M:%S)
  for _ in $(seq 1 60); do
    curl -fsS "$url/healthz" > /dev/null 2>&1 && break
    running api || fail api
    sleep 1
  done
  curl -fsS "$url/healthz" > /dev/null 2>&1 || fail api
  local count=0
  for _ in $(seq 1 60); do
    running consumer || fail consumer
    running demo || fail demo
    count=$(curl -fsS -H "Authorization: Bearer $token" \
      "$url/api/audit-logs/search/?page_size=1&start_time=$since" \
      | "$py" -c 'import json, sys; print(json.load(sys.stdin)["count"])' 2>/dev/null || echo 0)
    [ "$count" -gt 0 ] && break
    sleep 1
  done
  [ "$count" -gt 0 ] || { echo "up: no demo event became searchable within 60 s" >&2; fail consumer; }
  cat <<MSG

The pipeline runs: demo traffic -> RabbitMQ stream -> consumer -> OpenSearch + S3 -> API.
  API:    $url/api/audit-logs/search/   ($count new events searchable so far)
  Token:  $token
  Try:    curl -H "Authorization: Bearer $token" "$url/api/audit-logs/search/?action=LOGIN_FAILED"
          curl -H "Authorization: Bearer $token" "$url/api/audit-logs/search/?search_term=invoice"
  Docs:   $url/api/audit-logs/openapi.json      Health: $url/healthz
  Logs:   $state/{consumer,api,demo}.log
  S3:     s3://$AUDIT_LOG_AWS_S3_BUCKET/$AUDIT_LOG_S3_PREFIX at $AWS_ENDPOINT_URL_S3
Stop with: make stop
MSG
}

case "${1:-up}" in
  up) up ;;
  stop) for name in demo api consumer; do stop_bg "$name"; done ;;
  *) echo "usage: $0 [up|stop]" >&2; exit 2 ;;
esac

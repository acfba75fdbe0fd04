#!/usr/bin/env bash
# `make up`: with the services running (make starts them first), run the consumer, the API
# and demo traffic in the background, wait until the demo events are searchable, and say
# where to look. `up.sh stop` stops the three (make stop also stops the services).
set -euo pipefail
# shellcheck source=SCRIPTDIR/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

state="$DEVSTACK_STATE/up"
py="$(default_python)"
api_port="${AUDIT_LOG_API_PORT:-8000}"
consumer_metrics_port="${AUDIT_LOG_CONSUMER_METRICS_PORT:-9464}"
demo_metrics_port="${AUDIT_LOG_DEMO_METRICS_PORT:-9465}"
prometheus_port="${AUDIT_LOG_PROMETHEUS_PORT:-9090}"
mkdir -p "$state"

running() { live_pid_in_file "$state/$1.pid" >/dev/null; }

start_bg() {
  local name=$1; shift
  if running "$name"; then
    echo "up: $name already running (pid $(pid_in_file "$state/$name.pid"))"
    return
  fi
  rm -f "$state/$name.pid"
  # The process writes its own pid (setsid may fork, so $! would be the wrong one).
  # exec: no shell stays behind waiting for it, holding the caller's stdout open (make up |
  # tee never ended).
  # shellcheck disable=SC2016 # $$ and $@ are the child shell's
  launch_detached "$REPO_ROOT" "$state/$name.log" \
    bash -c 'echo $$ > "$0"; exec "$@"' "$state/$name.pid" "$@"
  wait_for 5 0.1 "" test -s "$state/$name.pid" || true
  echo "up: $name started (pid $(pid_in_file "$state/$name.pid" || true), log $state/$name.log)"
}

stop_bg() {
  local name=$1
  local pid
  if pid=$(live_pid_in_file "$state/$name.pid"); then
    stop_pid "$pid" 30
    echo "up: $name stopped"
  fi
  rm -f "$state/$name.pid"
}

# A Prometheus of the demo's own, scraping the consumer, the API and the demo app every 5 s
# with deploy/'s alert rules loaded: what an operator's would see.
start_prometheus() {
  local config="$state/prometheus"
  mkdir -p "$config"
  cp "$REPO_ROOT/deploy/prometheus/alerts.yml" "$config/alerts.yml"
  (umask 077; printf '%s' "${AUDIT_LOG_API_TOKENS%%,*}" > "$config/api.token")
  cat > "$config/prometheus.yml" <<YAML
global: {scrape_interval: 5s, evaluation_interval: 5s}
rule_files: [alerts.yml]
scrape_configs:
  - job_name: audit-logging-consumer
    static_configs: [{targets: ["127.0.0.1:$consumer_metrics_port"]}]
  - job_name: audit-logging-api
    authorization: {type: Bearer, credentials_file: api.token}
    static_configs: [{targets: ["127.0.0.1:$api_port"]}]
  - job_name: audit-logging-apps
    static_configs: [{targets: ["127.0.0.1:$demo_metrics_port"]}]
YAML
  start_bg prometheus prometheus --config.file="$config/prometheus.yml" \
    --storage.tsdb.path="$config/data" --web.listen-address="127.0.0.1:$prometheus_port"
}

fail() {
  log "up: $1 failed; see $state/$1.log"
  log_tail "$state/$1.log"
  exit 1
}

up() {
  if [ ! -f "$DEVSTACK_DIR/local.env" ]; then
    log "up: devstack/local.env is missing: run 'make services' first"
    exit 1
  fi
  set -a
  # shellcheck source=/dev/null # written by services.sh
  . "$DEVSTACK_DIR/local.env"
  set +a
  # The demo signs its digests with a key of its own, and writes one every minute so that
  # `verify --integrity` has a chain to check soon after start.
  local key="$state/signing-key.pem" public="$state/signing-key.pub.pem"
  if [ ! -s "$key" ]; then
    (umask 077; "$py" -c 'import sys; from audit_logging.archive.signing import new_private_pem
sys.stdout.buffer.write(new_private_pem())' > "$key")
  fi
  "$py" -c 'import sys; from pathlib import Path; from audit_logging.archive import signing
sys.stdout.buffer.write(signing.public_pem(signing.load_signer(Path(sys.argv[1])).public))' \
    "$key" > "$public"
  export AUDIT_LOG_SIGNING_KEY_FILE="${AUDIT_LOG_SIGNING_KEY_FILE:-$key}"
  export AUDIT_LOG_DIGEST_INTERVAL="${AUDIT_LOG_DIGEST_INTERVAL:-60}"
  start_bg consumer "$py" -m audit_logging.consumer --flush-interval 5 \
    --metrics-port "$consumer_metrics_port"
  start_bg api "$py" -m audit_logging.api --host 127.0.0.1 --port "$api_port"
  start_bg demo "$py" "$DEVSTACK_DIR/demo_traffic.py" --rate 5 --metrics-port "$demo_metrics_port"
  start_prometheus

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
  [ "$count" -gt 0 ] || { log "up: no demo event became searchable within 60 s"; fail consumer; }
  wait_for 30 0.5 "" curl -fsS "http://127.0.0.1:$consumer_metrics_port/readyz" > /dev/null ||
    { log "up: the consumer's /readyz did not answer 200 within 30 s"; fail consumer; }
  wait_for 30 0.5 "" curl -fsS "http://127.0.0.1:$prometheus_port/-/ready" > /dev/null ||
    fail prometheus
  cat <<MSG

The pipeline runs: demo traffic -> RabbitMQ stream -> consumer -> OpenSearch + S3 -> API.
  API:    $url/api/audit-logs/search/   ($count new events searchable so far)
  Token:  $token
  Try:    curl -H "Authorization: Bearer $token" "$url/api/audit-logs/search/?action=LOGIN_FAILED"
          curl -H "Authorization: Bearer $token" "$url/api/audit-logs/search/?search_term=invoice"
  Docs:   $url/api/audit-logs/openapi.json      Health: $url/healthz
  Metrics: consumer http://127.0.0.1:$consumer_metrics_port/metrics (/readyz, /healthz)
          API      $url/metrics (Bearer token; /readyz)
          demo app http://127.0.0.1:$demo_metrics_port/metrics (capture)
          Prometheus http://127.0.0.1:$prometheus_port (alerts: /alerts), scraping all three
  Status: set -a; . devstack/local.env; set +a
          $py -m audit_logging status --consumer-url http://127.0.0.1:$consumer_metrics_port
  Logs:   $state/{consumer,api,demo,prometheus}.log
  S3:     s3://$AUDIT_LOG_AWS_S3_BUCKET/$AUDIT_LOG_S3_PREFIX at $AWS_ENDPOINT_URL_S3
  Integrity: digests signed with $AUDIT_LOG_SIGNING_KEY_FILE, one a minute; check them with
          set -a; . devstack/local.env; set +a
          $py -m audit_logging.archive verify --integrity --public-key $public
Stop with: make stop
MSG
}

case "${1:-up}" in
  up) up ;;
  stop) for name in prometheus demo api consumer; do stop_bg "$name"; done ;;
  *) log "usage: $0 [up|stop]"; exit 2 ;;
esac

#!/usr/bin/env bash
# Start (idempotently) or stop the local stack: RabbitMQ Streams, OpenSearch and the S3 server
# (and install promtool and prometheus, which the tests of deploy/ run), and PostgreSQL on
# 127.0.0.1:5433 for the Django tests.
# `start` leaves the settings that point at them in devstack/local.env.
set -euo pipefail
# shellcheck source=SCRIPTDIR/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

local_env="$DEVSTACK_DIR/local.env"
bucket="${AUDIT_LOG_AWS_S3_BUCKET:-audit-logs-local}"
# Ports moved with these variables are written to local.env too (see devstack/rabbitmq.sh,
# opensearch.sh and s3.sh).
stream_port="${RABBITMQ_DEVSTACK_STREAM_PORT:-5552}"
opensearch_port="${OPENSEARCH_DEVSTACK_HTTP_PORT:-9200}"
s3_port="${S3_DEVSTACK_PORT:-9000}"
# CLUSTER=N (N > 1): a RabbitMQ cluster of N nodes besides the single node the tests use.
cluster="${CLUSTER:-1}"
case "$cluster" in
  [1-9]) ;;
  *) log "services: CLUSTER must be a number of nodes from 1 to 9, got '$cluster'"; exit 2 ;;
esac
mkdir -p "$DEVSTACK_STATE"

# A secret made once per checkout and kept in the git-ignored state folder.
persistent_secret() {
  local file="$DEVSTACK_STATE/$1"
  if [ ! -s "$file" ]; then
    (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$file")
  fi
  cat "$file"
}

cluster_stream_ports() { # 5562,5572,5582 for 3 nodes (rabbitmq.sh: base + 10 * i)
  local base="${RABBITMQ_DEVSTACK_CLUSTER_STREAM_BASE:-5552}" i ports=""
  for ((i = 1; i <= cluster; i++)); do ports+="${ports:+,}$((base + 10 * i))"; done
  echo "$ports"
}

write_local_env() {
  local tmp="$local_env.tmp"
  mkdir -p "$DEVSTACK_STATE/spool"
  (umask 077; cat > "$tmp" <<ENV
# Written by devstack/services.sh: settings for the local stack. Load with
#   set -a; . devstack/local.env; set +a
RABBITMQ_STREAM_HOST=localhost
RABBITMQ_STREAM_PORT=$stream_port
RABBITMQ_STREAM_USER=guest
RABBITMQ_STREAM_PASSWORD=guest
RABBITMQ_STREAM_VHOST=/
RABBITMQ_STREAM_NAME=audit_logs_stream
OPENSEARCH_HOST=127.0.0.1
OPENSEARCH_PORT=$opensearch_port
OPENSEARCH_USE_SSL=false
OPENSEARCH_VERIFY_CERTS=false
OPENSEARCH_INDEX_PREFIX=audit-logs
AUDIT_LOG_AWS_S3_BUCKET=$bucket
AUDIT_LOG_S3_PREFIX=audit-logs/
AWS_ACCESS_KEY_ID=testing
AWS_SECRET_ACCESS_KEY=testing
AWS_REGION_NAME=us-east-1
AWS_ENDPOINT_URL_S3=http://127.0.0.1:$s3_port
AUDIT_LOG_SPOOL_DIR=$DEVSTACK_STATE/spool
AUDIT_LOG_HASH_KEY=$(persistent_secret hash_key)
AUDIT_LOG_API_TOKENS=$(persistent_secret api_token)
AUDIT_LOG_SOURCE=local-demo
ENV
  if [ "$cluster" -gt 1 ]; then
    echo "# The CLUSTER=$cluster RabbitMQ nodes' stream ports (devstack/rabbitmq.sh cluster-start)."
    echo "RABBITMQ_DEVSTACK_CLUSTER_STREAM_PORTS=$(cluster_stream_ports)"
  fi >> "$tmp"
  )
  mv "$tmp" "$local_env"
}

start() {
  local started=$SECONDS failed=()
  # OpenSearch's first start downloads from Maven Central: the longest step, so it runs
  # beside the other two.
  bash "$DEVSTACK_DIR/opensearch.sh" start > "$DEVSTACK_STATE/opensearch-start.out" 2>&1 &
  local os_pid=$!
  bash "$DEVSTACK_DIR/rabbitmq.sh" start || failed+=(rabbitmq)
  if [ "$cluster" -gt 1 ]; then
    bash "$DEVSTACK_DIR/rabbitmq.sh" cluster-start "$cluster" || failed+=(rabbitmq-cluster)
  fi
  AUDIT_LOG_AWS_S3_BUCKET="$bucket" bash "$DEVSTACK_DIR/s3.sh" start || failed+=(s3)
  # promtool and prometheus for tests/deploy/ (only installed: no daemon is started).
  bash "$DEVSTACK_DIR/prometheus.sh" install || failed+=(prometheus)
  # nginx for the README's "Behind a proxy" test (only installed: no daemon is started).
  bash "$DEVSTACK_DIR/nginx.sh" install || failed+=(nginx)
  # PostgreSQL for the Django tests (model capture on a real server) and the benchmarks.
  bash "$DEVSTACK_DIR/postgres.sh" start || failed+=(postgres)
  wait "$os_pid" || failed+=(opensearch)
  cat "$DEVSTACK_STATE/opensearch-start.out"
  if [ ${#failed[@]} -gt 0 ]; then
    log "services: failed to start: ${failed[*]} (see the messages above)"
    exit 1
  fi
  write_local_env
  echo "services: RabbitMQ stream localhost:$stream_port," \
       "OpenSearch http://127.0.0.1:$opensearch_port, S3 http://127.0.0.1:$s3_port" \
       "(bucket $bucket), ready in $((SECONDS - started)) s;" \
       "settings in devstack/local.env"
}

stop() {
  local rc=0
  for svc in opensearch s3 rabbitmq postgres; do
    bash "$DEVSTACK_DIR/$svc.sh" stop || rc=1
  done
  # A cluster started by an earlier `make services CLUSTER=N` (a no-op when none runs).
  bash "$DEVSTACK_DIR/rabbitmq.sh" cluster-stop > /dev/null || rc=1
  return $rc
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) log "usage: $0 start|stop"; exit 2 ;;
esac

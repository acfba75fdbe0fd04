#!/usr/bin/env bash
# Local S3-compatible server (moto) for development and tests.
#
#   devstack/s3.sh start [BUCKET]   start moto's server on 127.0.0.1:9000 (S3_DEVSTACK_PORT), create
#                                   BUCKET if missing
#                                   (default: $AUDIT_LOG_AWS_S3_BUCKET, else audit-logs-local)
#   devstack/s3.sh stop             stop the server that start started (idempotent)
#   devstack/s3.sh status           exit 0 if the server answers
#
# moto comes from the project's dev extras: the Python used is $PYTHON, else
# <repo>/.venv/bin/python if it exists, else python3. This script installs nothing.
# moto keeps everything in memory: buckets and objects are gone after `stop`.
# Any access key / secret works (use testing/testing), region us-east-1.
set -euo pipefail
# shellcheck source=SCRIPTDIR/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

STATE_DIR="$DEVSTACK_STATE/s3"
LOG_FILE="$STATE_DIR/s3.log"
PID_FILE="$STATE_DIR/s3.pid"

HOST=127.0.0.1
PORT="${S3_DEVSTACK_PORT:-9000}"
URL="http://$HOST:$PORT"
START_TIMEOUT="${S3_DEVSTACK_START_TIMEOUT:-30}"
PYTHON="$(default_python)"
# In the server's command line: what tells our moto server from another process.
SERVER_ARGS=(moto.server -H "$HOST" -p "$PORT")

answers() { # the S3 API on $URL answers (ListBuckets)
  curl -s -m 2 "$URL/" 2>/dev/null | grep -q 'ListAllMyBucketsResult'
}

our_pid() { live_pid_in_file "$PID_FILE" "${SERVER_ARGS[*]}"; } # the pid of our moto server

ensure_bucket() {
  local bucket="$1" code
  if ! [[ "$bucket" =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]]; then
    log "s3: invalid bucket name: '$bucket'"
    exit 1
  fi
  code="$(curl -s -m 5 -o /dev/null -w '%{http_code}' -I "$URL/$bucket" || true)"
  [[ "$code" == 200 ]] && return 0
  code="$(curl -s -m 5 -o "$STATE_DIR/create-bucket.out" -w '%{http_code}' -X PUT "$URL/$bucket" || true)"
  if [[ "$code" != 200 ]]; then
    log "s3: creating bucket '$bucket' failed (HTTP $code):"
    cat "$STATE_DIR/create-bucket.out" >&2 2>/dev/null || true
    exit 1
  fi
  log "s3: created bucket '$bucket'"
}

cmd_start() {
  local bucket="${1:-${AUDIT_LOG_AWS_S3_BUCKET:-audit-logs-local}}"
  mkdir -p "$STATE_DIR"
  if answers; then
    echo "s3 already running"
    ensure_bucket "$bucket"
    return 0
  fi
  if ! "$PYTHON" -c 'import moto.server' >/dev/null 2>&1; then
    log "s3: moto is not importable with $PYTHON; install the dev extras, e.g. \`$PYTHON -m pip install 'moto[server]'\` (or run make), or point PYTHON at an interpreter that has it"
    exit 1
  fi
  if port_open "$PORT" "$HOST"; then
    log "s3 failed to start: port $PORT is taken by a process that is not an S3 server"
    exit 1
  fi
  local old
  if old="$(our_pid)"; then kill "$old" 2>/dev/null || true; fi
  rm -f "$PID_FILE"
  local t0=$SECONDS pid
  launch_detached "$STATE_DIR" "$LOG_FILE" "$PYTHON" -m "${SERVER_ARGS[@]}"
  pid=$LAUNCHED_PID
  echo "$pid" >"$PID_FILE"
  if ! wait_for "$START_TIMEOUT" 0.3 "$pid" answers; then
    kill "$pid" 2>/dev/null || true
    rm -f "$PID_FILE"
    fail_start "$LOG_FILE"
  fi
  ensure_bucket "$bucket"
  local version
  version="$("$PYTHON" -c 'import moto; print(moto.__version__)' 2>/dev/null || echo '?')"
  echo "s3 started (moto $version, $URL, bucket $bucket) in $((SECONDS - t0)) s"
}

cmd_stop() {
  local pid
  if ! pid="$(our_pid)"; then
    rm -f "$PID_FILE"
    if answers; then
      echo "s3 not started by this script ($PID_FILE has no live moto server); left alone"
    else
      echo "s3 not running"
    fi
    return 0
  fi
  stop_pid "$pid" 6
  rm -f "$PID_FILE"
  echo "s3 stopped"
}

cmd_status() {
  if answers; then
    echo "s3 running ($URL)"
    return 0
  fi
  echo "s3 not running"
  return 1
}

case "${1:-}" in
  start) shift; take_lock "$STATE_DIR" 300; cmd_start "$@" ;;
  stop) take_lock "$STATE_DIR" 300; cmd_stop ;;
  status) cmd_status ;;
  *)
    log "usage: $0 {start [bucket]|stop|status}"
    exit 2
    ;;
esac

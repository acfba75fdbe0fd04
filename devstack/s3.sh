#!/usr/bin/env bash
# Local S3-compatible server (moto) for development and tests.
#
#   devstack/s3.sh start [BUCKET]   start moto's server on 127.0.0.1:9000, create BUCKET if missing
#                                   (default: $AUDIT_LOG_AWS_S3_BUCKET, else audit-logs-local)
#   devstack/s3.sh stop             stop the server that start started (idempotent)
#   devstack/s3.sh status           exit 0 if the server answers
#
# moto comes from the project's dev extras: the Python used is $PYTHON, else
# <repo>/.venv/bin/python if it exists, else python3. This script installs nothing.
# moto keeps everything in memory: buckets and objects are gone after `stop`.
# Any access key / secret works (use testing/testing), region us-east-1.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(dirname "$SCRIPT_DIR")"
STATE_DIR="$REPO_ROOT/devstack/.state/s3"
LOG_FILE="$STATE_DIR/s3.log"
PID_FILE="$STATE_DIR/s3.pid"

HOST=127.0.0.1
PORT=9000
URL="http://$HOST:$PORT"
START_TIMEOUT="${S3_DEVSTACK_START_TIMEOUT:-30}"

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then PYTHON="$REPO_ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

log() { printf '%s\n' "$*" >&2; }

answers() { # the S3 API on $URL answers (ListBuckets)
  curl -s -m 2 "$URL/" 2>/dev/null | grep -q 'ListAllMyBucketsResult'
}

our_pid() { # prints the pid from the pid file if that process is our moto server
  local pid
  [[ -s "$PID_FILE" ]] || return 1
  pid="$(tr -dc '0-9' <"$PID_FILE")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'moto.server' || return 1
  echo "$pid"
}

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

fail_start() {
  log "s3 failed to start; see $LOG_FILE"
  tail -n 30 "$LOG_FILE" >&2 2>/dev/null || true
  exit 1
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
  if timeout 1 bash -c "exec 3<>/dev/tcp/$HOST/$PORT" 2>/dev/null; then
    log "s3 failed to start: port $PORT is taken by a process that is not an S3 server"
    exit 1
  fi
  local old
  if old="$(our_pid)"; then kill "$old" 2>/dev/null || true; fi
  rm -f "$PID_FILE"
  local t0=$SECONDS
  local pid
  cd "$STATE_DIR"
  # setsid: its own session, so the server outlives the caller's shell and terminal.
  setsid nohup "$PYTHON" -m moto.server -H "$HOST" -p "$PORT" >"$LOG_FILE" 2>&1 </dev/null 9>&- &
  pid=$!
  cd - >/dev/null
  echo "$pid" >"$PID_FILE"
  local deadline=$((SECONDS + START_TIMEOUT))
  until answers; do
    if ((SECONDS >= deadline)) || ! kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      rm -f "$PID_FILE"
      fail_start
    fi
    sleep 0.3
  done
  ensure_bucket "$bucket"
  local version
  version="$("$PYTHON" -c 'import moto; print(moto.__version__)' 2>/dev/null || echo '?')"
  echo "s3 started (moto $version, $URL, bucket $bucket) in $((SECONDS - t0)) s"
}

cmd_stop() {
  local pid i
  if ! pid="$(our_pid)"; then
    rm -f "$PID_FILE"
    if answers; then
      echo "s3 not started by this script ($PID_FILE has no live moto server); left alone"
    else
      echo "s3 not running"
    fi
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    ((i == 30)) && kill -KILL "$pid" 2>/dev/null
    sleep 0.2
  done
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

take_lock() { # serialise concurrent start/stop calls (fd 9; servers are started with 9>&-)
  mkdir -p "$STATE_DIR"
  exec 9>"$STATE_DIR/.lock"
  if ! flock -w 300 9; then
    log "s3: another start/stop still holds $STATE_DIR/.lock after 300 s"
    exit 1
  fi
}

case "${1:-}" in
  start) shift; take_lock; cmd_start "$@" ;;
  stop) take_lock; cmd_stop ;;
  status) cmd_status ;;
  *)
    log "usage: $0 {start [bucket]|stop|status}"
    exit 2
    ;;
esac

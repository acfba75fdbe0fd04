#!/usr/bin/env bash
# Local RabbitMQ (streams) for development and tests.
#
#   devstack/rabbitmq.sh start    install Debian's rabbitmq-server if missing, start our own node
#   devstack/rabbitmq.sh stop     stop our node (idempotent)
#   devstack/rabbitmq.sh status   exit 0 if the stream port answers and the node is up
#   devstack/rabbitmq.sh ctl ARGS run `rabbitmqctl -n <node> ARGS` against our node
#
# The node (audit@localhost) listens on 127.0.0.1 only: AMQP 5672, stream 5552.
# Every runtime file lives under devstack/.state/rabbitmq/. The Debian system
# service is never started; we run the server binary directly, as the caller.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(dirname "$SCRIPT_DIR")"
STATE_DIR="$REPO_ROOT/devstack/.state/rabbitmq"
LOG_DIR="$STATE_DIR/log"
LOG_FILE="$LOG_DIR/rabbitmq.log"         # the node's own log
BOOT_LOG="$LOG_DIR/startup.log"          # stdout/stderr of the server process
PID_FILE="$STATE_DIR/rabbitmq.pid"

NODE="${RABBITMQ_DEVSTACK_NODENAME:-audit@localhost}"
AMQP_PORT=5672
STREAM_PORT=5552
DIST_PORT=25672
START_TIMEOUT="${RABBITMQ_DEVSTACK_START_TIMEOUT:-90}"

# Debian installs the real scripts here; /usr/sbin/rabbitmq-* are wrappers that
# switch to the `rabbitmq` user when called as root, which we do not want.
RMQ_BIN=/usr/lib/rabbitmq/bin

log() { printf '%s\n' "$*" >&2; }

# --- environment shared by the server and the CLI tools -------------------------
export RABBITMQ_NODENAME="$NODE"
export RABBITMQ_CONF_ENV_FILE="$STATE_DIR/rabbitmq-env.conf"   # ignore /etc/rabbitmq/rabbitmq-env.conf
export RABBITMQ_CONFIG_FILE="$STATE_DIR/rabbitmq.conf"
export RABBITMQ_ADVANCED_CONFIG_FILE="$STATE_DIR/advanced.config"
export RABBITMQ_ENABLED_PLUGINS_FILE="$STATE_DIR/enabled_plugins"
export RABBITMQ_MNESIA_BASE="$STATE_DIR/mnesia"
export RABBITMQ_LOG_BASE="$LOG_DIR"
export RABBITMQ_LOGS="$LOG_FILE"
export RABBITMQ_PID_FILE="$PID_FILE"
export RABBITMQ_DIST_PORT="$DIST_PORT"
# Keep Erlang distribution and epmd on loopback too.
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export ERL_EPMD_ADDRESS=127.0.0.1
# The Erlang cookie is read from $HOME/.erlang.cookie by both the node and the CLI.
export HOME="${HOME:-$(getent passwd "$(id -un)" | cut -d: -f6)}"

port_open() { # port -> 0 if something accepts TCP connections on 127.0.0.1:port
  timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

have_rabbitmq() { [[ -x "$RMQ_BIN/rabbitmq-server" && -x "$RMQ_BIN/rabbitmqctl" ]]; }

ctl() { "$RMQ_BIN/rabbitmqctl" -n "$NODE" "$@"; }

node_answers() { have_rabbitmq && timeout 15 "$RMQ_BIN/rabbitmq-diagnostics" -q -n "$NODE" ping >/dev/null 2>&1; }

is_running() { port_open "$STREAM_PORT" && node_answers; }

pid_alive() {
  local pid
  [[ -s "$PID_FILE" ]] || return 1
  pid="$(tr -dc '0-9' <"$PID_FILE")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

POLICY_RC=/usr/sbin/policy-rc.d
POLICY_BACKUP=""
POLICY_SET=0

restore_policy_rc() {
  ((POLICY_SET)) || return 0
  if [[ -n "$POLICY_BACKUP" ]]; then mv -f "$POLICY_BACKUP" "$POLICY_RC"; else rm -f "$POLICY_RC"; fi
  POLICY_SET=0
}

rabbitmq_user_pids() { # pids of epmd/beam processes owned by the package's `rabbitmq` user
  getent passwd rabbitmq >/dev/null 2>&1 || return 0
  pgrep -u rabbitmq -f 'epmd|beam' 2>/dev/null || true
}

install_rabbitmq() {
  have_rabbitmq && return 0
  log "rabbitmq: installing Debian's rabbitmq-server (apt-get)..."
  local rc=0 before pid
  before=" $(rabbitmq_user_pids | tr '\n' ' ') "
  # Stop the package's postinst from starting the system service: our node must
  # be the only one. Any pre-existing policy-rc.d is put back afterwards.
  trap 'restore_policy_rc' EXIT
  trap 'restore_policy_rc; exit 130' INT TERM
  if [[ -e "$POLICY_RC" ]]; then
    POLICY_BACKUP="$(mktemp /usr/sbin/policy-rc.d.devstack.XXXXXX)"
    cp -p "$POLICY_RC" "$POLICY_BACKUP"
  fi
  POLICY_SET=1
  printf '#!/bin/sh\n# temporary, from devstack/rabbitmq.sh\nexit 101\n' >"$POLICY_RC"
  chmod 0755 "$POLICY_RC"
  {
    apt-get update -q &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 \
        --no-install-recommends rabbitmq-server
  } >"$STATE_DIR/apt.log" 2>&1 || rc=$?
  restore_policy_rc
  trap - EXIT INT TERM
  if ((rc != 0)) || ! have_rabbitmq; then
    log "rabbitmq: installing rabbitmq-server failed; see $STATE_DIR/apt.log"
    tail -n 30 "$STATE_DIR/apt.log" >&2 || true
    exit 1
  fi
  # Should the package's scripts have started anything as the `rabbitmq` user
  # (a system node, or an epmd listening on every interface), stop exactly those
  # processes, by pid: our node must be the only one, with its epmd on loopback.
  for pid in $(rabbitmq_user_pids); do
    [[ "$before" == *" $pid "* ]] || kill "$pid" 2>/dev/null || true
  done
}

ensure_cookie() {
  local cookie="$HOME/.erlang.cookie"
  if [[ ! -s "$cookie" ]]; then
    rm -f "$cookie"
    (umask 077 && od -An -N24 -tx1 /dev/urandom | tr -dc 'a-f0-9' | tr 'a-f' 'A-F' >"$cookie")
  fi
  chmod 0400 "$cookie"
}

write_config() {
  mkdir -p "$LOG_DIR" "$RABBITMQ_MNESIA_BASE"
  : >"$RABBITMQ_CONF_ENV_FILE"
  cat >"$RABBITMQ_CONFIG_FILE" <<EOF
# Generated by devstack/rabbitmq.sh; rewritten on every start.
listeners.tcp.1 = 127.0.0.1:$AMQP_PORT
stream.listeners.tcp.1 = 127.0.0.1:$STREAM_PORT
stream.advertised_host = localhost
stream.advertised_port = $STREAM_PORT
# guest/guest may connect from loopback only (the default, spelled out).
loopback_users.guest = true
default_user = guest
default_pass = guest
log.file.level = info
log.console = false
EOF
  printf '[rabbitmq_stream].\n' >"$RABBITMQ_ENABLED_PLUGINS_FILE"
}

LAUNCH_PID=""

fail_start() {
  # Do not leave a half-started node behind: stop the process group we launched.
  if [[ -n "$LAUNCH_PID" ]] && kill -0 "$LAUNCH_PID" 2>/dev/null; then
    kill -TERM -- "-$LAUNCH_PID" 2>/dev/null || true
    sleep 2
    kill -KILL -- "-$LAUNCH_PID" 2>/dev/null || true
    rm -f "$PID_FILE"
  fi
  log "rabbitmq failed to start; see $LOG_FILE"
  if [[ -s "$LOG_FILE" ]]; then tail -n 30 "$LOG_FILE" >&2; fi
  if [[ -s "$BOOT_LOG" ]]; then
    log "--- $BOOT_LOG ---"
    tail -n 30 "$BOOT_LOG" >&2
  fi
  exit 1
}

cmd_start() {
  if port_open "$STREAM_PORT" && node_answers; then
    echo "rabbitmq already running"
    return 0
  fi
  mkdir -p "$STATE_DIR" "$LOG_DIR"
  install_rabbitmq
  ensure_cookie
  if node_answers; then
    # The Erlang node is up but the rabbit app is stopped (`ctl stop_app`).
    local t0=$SECONDS deadline=$((SECONDS + START_TIMEOUT))
    log "rabbitmq: node $NODE is up with the app stopped; running start_app..."
    timeout "$START_TIMEOUT" "$RMQ_BIN/rabbitmqctl" -q -n "$NODE" start_app >>"$BOOT_LOG" 2>&1 || fail_start
    until port_open "$STREAM_PORT"; do
      ((SECONDS < deadline)) || fail_start
      sleep 0.5
    done
    echo "rabbitmq started (app restarted on node $NODE) in $((SECONDS - t0)) s"
    return 0
  fi
  if port_open "$STREAM_PORT" || port_open "$AMQP_PORT"; then
    log "rabbitmq failed to start: port $STREAM_PORT or $AMQP_PORT is taken by another process (not node $NODE)"
    exit 1
  fi
  if pid_alive; then
    # Our node from an earlier start that never became ready: start clean.
    cmd_stop >/dev/null 2>&1 || true
  fi
  write_config
  rm -f "$PID_FILE"
  local t0=$SECONDS
  log "rabbitmq: starting node $NODE (logs in $LOG_DIR)..."
  # Keep the previous run's log beside the new one, so a failure shows this run's lines.
  [[ -s "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.prev"
  cd "$STATE_DIR"
  # setsid: its own session, so the node outlives the caller's shell and terminal.
  setsid nohup "$RMQ_BIN/rabbitmq-server" >"$BOOT_LOG" 2>&1 </dev/null 9>&- &
  LAUNCH_PID=$!
  cd - >/dev/null

  # Wait for the boot to finish, then for the stream listener.
  local deadline=$((SECONDS + START_TIMEOUT))
  until [[ -s "$PID_FILE" ]]; do
    ((SECONDS < deadline)) || fail_start
    sleep 0.5
  done
  local remaining=$((deadline - SECONDS))
  ((remaining > 0)) || fail_start
  if ! timeout "$((remaining + 5))" "$RMQ_BIN/rabbitmqctl" -q -n "$NODE" await_startup \
    --timeout "$remaining" >>"$BOOT_LOG" 2>&1; then
    fail_start
  fi
  until port_open "$STREAM_PORT"; do
    ((SECONDS < deadline)) || fail_start
    pid_alive || fail_start
    sleep 0.5
  done
  echo "rabbitmq started (node $NODE, stream 127.0.0.1:$STREAM_PORT, amqp 127.0.0.1:$AMQP_PORT) in $((SECONDS - t0)) s"
}

cmd_stop() {
  local stopped=0
  if have_rabbitmq && node_answers; then
    ctl -q stop "$PID_FILE" >/dev/null 2>&1 || ctl -q stop >/dev/null 2>&1 || true
    stopped=1
  fi
  if pid_alive; then
    local pid i
    pid="$(tr -dc '0-9' <"$PID_FILE")"
    for i in $(seq 1 60); do
      kill -0 "$pid" 2>/dev/null || break
      ((i == 20)) && kill -TERM "$pid" 2>/dev/null
      ((i == 50)) && kill -KILL "$pid" 2>/dev/null
      sleep 0.5
    done
    stopped=1
  fi
  rm -f "$PID_FILE"
  # epmd is shared by every Erlang node on the machine; it is left running.
  if ((stopped)); then echo "rabbitmq stopped"; else echo "rabbitmq not running"; fi
}

cmd_status() {
  if is_running; then
    echo "rabbitmq running (node $NODE, stream 127.0.0.1:$STREAM_PORT)"
    return 0
  fi
  echo "rabbitmq not running"
  return 1
}

take_lock() { # serialise concurrent start/stop calls (fd 9; servers are started with 9>&-)
  mkdir -p "$STATE_DIR"
  exec 9>"$STATE_DIR/.lock"
  if ! flock -w 300 9; then
    log "rabbitmq: another start/stop still holds $STATE_DIR/.lock after 300 s"
    exit 1
  fi
}

case "${1:-}" in
  start) take_lock; cmd_start ;;
  stop) take_lock; cmd_stop ;;
  status) cmd_status ;;
  ctl)
    shift
    have_rabbitmq || { log "rabbitmq is not installed; run: $0 start"; exit 1; }
    exec "$RMQ_BIN/rabbitmqctl" -n "$NODE" "$@"
    ;;
  *)
    log "usage: $0 {start|stop|status|ctl <rabbitmqctl args...>}"
    exit 2
    ;;
esac

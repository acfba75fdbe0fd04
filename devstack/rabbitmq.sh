#!/usr/bin/env bash
# Local RabbitMQ 4.3 (streams, super streams, single active consumer) for development and tests.
#
#   devstack/rabbitmq.sh start             make the Debian root if missing, start our node
#   devstack/rabbitmq.sh stop              stop our node (idempotent)
#   devstack/rabbitmq.sh status            exit 0 if the stream port answers and the node is up
#   devstack/rabbitmq.sh ctl ARGS          run `rabbitmqctl -n <node> ARGS` against our node
#                                          (RABBITMQ_DEVSTACK_NODENAME, see below)
#   devstack/rabbitmq.sh cluster-start N   start an N-node cluster (default 3) from the same root
#   devstack/rabbitmq.sh cluster-stop      stop the cluster's nodes
#   devstack/rabbitmq.sh cluster-status    exit 0 if every cluster node answers
#
# Debian 12 ships RabbitMQ 3.10, which has neither super streams nor single active
# consumer. Debian's testing suite, forky, ships 4.3.6 (Erlang 29): `debootstrap` makes a
# forky root under devstack/.state/rabbitmq4/root (once, ~2.5 min, ~395 MB) and the node runs
# from it under chroot. Debian 13 (trixie) ships 4.0.5, whose single active consumer can leave
# a super stream partition with no active member after a node stop (rabbitmq-server #13657).
# RABBITMQ_DEVSTACK_SUITE picks another Debian suite (default forky), e.g. trixie or sid, for
# that start; a root made from another suite is made again (node data included). Every listener
# is on 127.0.0.1; every port can be moved with an environment variable
# (RABBITMQ_DEVSTACK_*_PORT), e.g. to run beside another broker.
#
# RABBITMQ_DEVSTACK_NODENAME (default audit@localhost) names the single node: `start` runs
# it under that name and remembers it, with the ports, in devstack/.state/rabbitmq4/node.env,
# so that stop, status and ctl called without the variables reach the node that runs. For
# `ctl` it picks the node the command talks to, e.g. a cluster node:
#   RABBITMQ_DEVSTACK_NODENAME=audit2@localhost devstack/rabbitmq.sh ctl cluster_status
# (the cluster's nodes are <RABBITMQ_DEVSTACK_CLUSTER_PREFIX, default audit><i>@localhost).
#
# Mounts: the node needs /proc inside the root. It is mounted only in a private mount
# namespace (unshare) that lives as long as the process in it, never in the caller's
# namespace: a mount left in the host's namespace would make `rm -rf` of this folder
# reach into the host's /proc or /dev. The root's /dev holds its own device nodes
# (made by debootstrap, or below), so /dev is never bound. debootstrap itself runs in
# a private mount and pid namespace, so what it mounts and starts ends with it.
set -euo pipefail
# shellcheck source=SCRIPTDIR/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

STATE_DIR="$DEVSTACK_STATE/rabbitmq4"
ROOT="$STATE_DIR/root"                    # the Debian root (of $SUITE)
PARTIAL="$STATE_DIR/root.partial"         # debootstrap's target until it succeeded
DONE_MARK="devstack-root-complete"        # written into the root once it is usable
MIRROR="${RABBITMQ_DEVSTACK_MIRROR:-http://deb.debian.org/debian}"
IN_ROOT_DIR=/devstack                     # node data, seen from inside the root

# The ports and node name the last `start` used, so that stop/status/ctl called without the
# variables (tests call `rabbitmq.sh ctl ...`) reach the node that runs. Variables set win.
# The suite is not kept (older files hold one): a start without RABBITMQ_DEVSTACK_SUITE runs
# the default, so a change of default reaches every checkout.
SAVED_ENV="$STATE_DIR/node.env"
if [[ -s "$SAVED_ENV" ]]; then
  while IFS='=' read -r key value; do
    [[ "$key" =~ ^RABBITMQ_DEVSTACK_[A-Z_]+$ && "$key" != RABBITMQ_DEVSTACK_SUITE && -z "${!key:-}" ]] &&
      export "$key=$value"
  done <"$SAVED_ENV"
fi

SUITE="${RABBITMQ_DEVSTACK_SUITE:-forky}"
NODE="${RABBITMQ_DEVSTACK_NODENAME:-audit@localhost}"
AMQP_PORT="${RABBITMQ_DEVSTACK_AMQP_PORT:-5672}"
STREAM_PORT="${RABBITMQ_DEVSTACK_STREAM_PORT:-5552}"
DIST_PORT="${RABBITMQ_DEVSTACK_DIST_PORT:-25672}"
MGMT_PORT="${RABBITMQ_DEVSTACK_MGMT_PORT:-15672}"
# Our own epmd, on its own port, so a host epmd on 4369 (or another Erlang) never meets ours.
EPMD_PORT="${RABBITMQ_DEVSTACK_EPMD_PORT:-4371}"
# Cluster node i (1-based) listens on base + 10*i: stream 5562/5572/5582, AMQP 5682/...
CLUSTER_STREAM_BASE="${RABBITMQ_DEVSTACK_CLUSTER_STREAM_BASE:-5552}"
CLUSTER_AMQP_BASE="${RABBITMQ_DEVSTACK_CLUSTER_AMQP_BASE:-5672}"
CLUSTER_DIST_BASE="${RABBITMQ_DEVSTACK_CLUSTER_DIST_BASE:-25672}"
CLUSTER_MGMT_BASE="${RABBITMQ_DEVSTACK_CLUSTER_MGMT_BASE:-15672}"
CLUSTER_PREFIX="${RABBITMQ_DEVSTACK_CLUSTER_PREFIX:-audit}"
START_TIMEOUT="${RABBITMQ_DEVSTACK_START_TIMEOUT:-120}"
RMQ_BIN=/usr/lib/rabbitmq/bin             # inside the root: the scripts themselves, not the su wrappers

root_ready() { # the root is complete, and made from $SUITE (its mark's first line names it)
  [[ -f "$ROOT/$DONE_MARK" && -x "$ROOT$RMQ_BIN/rabbitmq-server" ]] &&
    head -n 1 "$ROOT/$DONE_MARK" | grep -qF -- "rabbitmq-server $SUITE ("
}

mounted_under() { # dir -> 0 if anything is mounted at or below dir in our mount namespace
  local dir
  dir="$(realpath -m "$1")"
  awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { found = 1 } END { exit !found }' \
    /proc/self/mountinfo
}

remove_tree() { # rm -rf, refused when something is mounted below (it would reach the host's files)
  [[ -e "$1" ]] || return 0
  if mounted_under "$1"; then
    log "rabbitmq: refusing to delete $1: something is mounted below it (see /proc/self/mountinfo)"
    exit 1
  fi
  rm -rf --one-file-system "$1"
}

ensure_debootstrap() {
  command -v debootstrap >/dev/null 2>&1 && return 0
  log "rabbitmq: installing debootstrap (apt-get)..."
  apt_install "$STATE_DIR/apt.log" debootstrap || exit 1
}

make_root() {
  root_ready && return 0
  mkdir -p "$STATE_DIR"
  # A root without the mark is one whose debootstrap stopped half-way: made again.
  remove_tree "$PARTIAL"
  remove_tree "$ROOT"
  ensure_debootstrap
  local t0=$SECONDS boot_log="$STATE_DIR/debootstrap.log"
  log "rabbitmq: making a Debian $SUITE root with rabbitmq-server in $ROOT (debootstrap, 1 to 3 min)..."
  # Private mount and pid namespaces: debootstrap mounts /proc and /sys in the target and
  # package scripts may start daemons (epmd); all of it ends when debootstrap does.
  # Debian 12's debootstrap predates forky; every suite since buster uses sid's script.
  local script=()
  [[ -e "/usr/share/debootstrap/scripts/$SUITE" ]] || script=(/usr/share/debootstrap/scripts/sid)
  if ! unshare --mount --propagation private --pid --fork --kill-child --mount-proc -- \
    debootstrap --variant=minbase --include=rabbitmq-server "$SUITE" "$PARTIAL" "$MIRROR" \
    "${script[@]}" >"$boot_log" 2>&1; then
    log "rabbitmq: debootstrap failed; see $boot_log"
    log_tail "$boot_log" 20
    exit 1
  fi
  if [[ ! -x "$PARTIAL$RMQ_BIN/rabbitmq-server" ]]; then
    log "rabbitmq: debootstrap finished but $RMQ_BIN/rabbitmq-server is missing; see $boot_log"
    exit 1
  fi
  local version
  version="$(find "$PARTIAL/usr/lib/rabbitmq/lib" -maxdepth 1 -name 'rabbitmq_server-*' -printf '%f\n' |
    sed 's/^rabbitmq_server-//' | head -n 1)"
  printf 'debootstrap --variant=minbase --include=rabbitmq-server %s (%s)\nrabbitmq %s\n' \
    "$SUITE" "$MIRROR" "${version:-?}" >"$PARTIAL/$DONE_MARK"
  mv "$PARTIAL" "$ROOT"
  log "rabbitmq: root ready (RabbitMQ ${version:-?}) in $((SECONDS - t0)) s"
}

prepare_root() { # what the node needs inside the root, checked on every start
  local dev spec
  # The device nodes debootstrap makes; recreated here should any be missing.
  for spec in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
    dev="$ROOT/dev/${spec%%:*}"
    spec="${spec#*:}"
    [[ -c "$dev" ]] || { rm -f "$dev"; mknod -m 666 "$dev" c "${spec%%:*}" "${spec#*:}"; }
  done
  mkdir -p "$ROOT/proc" "$ROOT$IN_ROOT_DIR/home"
  # `localhost` must resolve inside the root: node names are name@localhost.
  grep -qsE '^127\.0\.0\.1[[:space:]].*\blocalhost\b' "$ROOT/etc/hosts" ||
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >>"$ROOT/etc/hosts"
  # The Erlang cookie, read from $HOME by the nodes and the CLI tools alike.
  local cookie="$ROOT$IN_ROOT_DIR/home/.erlang.cookie"
  if [[ ! -s "$cookie" ]]; then
    rm -f "$cookie"
    (umask 077 && od -An -N24 -tx1 /dev/urandom | tr -dc 'a-f0-9' | tr 'a-f' 'A-F' >"$cookie")
  fi
  chmod 0400 "$cookie"
}

# --- one node: name, ports and folders ---------------------------------------------
# set_node NAME AMQP STREAM DIST MGMT: sets the globals the functions below use.
set_node() {
  N_NAME="$1" N_AMQP="$2" N_STREAM="$3" N_DIST="$4" N_MGMT="$5"
  N_DIR="$IN_ROOT_DIR/nodes/${N_NAME%@*}"        # inside the root
  N_HOST_DIR="$ROOT$N_DIR"                        # the same folder, seen from the host
  N_LOG="$N_HOST_DIR/log/rabbitmq.log"
  N_BOOT_LOG="$N_HOST_DIR/log/startup.log"
  N_PID_FILE="$N_HOST_DIR/rabbitmq.pid"
}

node_env() { # the environment of the server and CLI tools inside the root
  printf '%s\n' \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME="$IN_ROOT_DIR/home" LANG=C.UTF-8 LC_ALL=C.UTF-8 \
    RABBITMQ_NODENAME="$N_NAME" \
    RABBITMQ_CONF_ENV_FILE="$N_DIR/rabbitmq-env.conf" \
    RABBITMQ_CONFIG_FILE="$N_DIR/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$N_DIR/advanced.config" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$N_DIR/enabled_plugins" \
    RABBITMQ_MNESIA_BASE="$N_DIR/mnesia" \
    RABBITMQ_LOG_BASE="$N_DIR/log" \
    RABBITMQ_LOGS="$N_DIR/log/rabbitmq.log" \
    RABBITMQ_PID_FILE="$N_DIR/rabbitmq.pid" \
    RABBITMQ_DIST_PORT="$N_DIST" \
    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}" \
    ERL_EPMD_PORT="$EPMD_PORT" \
    ERL_EPMD_ADDRESS=127.0.0.1
}

root_cmd() { # sets ROOT_CMD: the prefix that runs a command inside the root, /proc
  # mounted in a private mount namespace that ends with the command
  local -a env
  mapfile -t env < <(node_env)
  # shellcheck disable=SC2016 # expanded by that sh
  ROOT_CMD=(unshare --mount --propagation private -- /bin/sh -c
    'root="$1"; shift; mount -t proc proc "$root/proc" && exec chroot "$root" /usr/bin/env -i "$@"'
    sh "$ROOT" "${env[@]}")
}

in_root() { root_cmd; "${ROOT_CMD[@]}" "$@"; }

ctl() { in_root "$RMQ_BIN/rabbitmqctl" -n "$N_NAME" "$@"; }

node_answers() {
  root_ready || return 1
  root_cmd
  timeout 20 "${ROOT_CMD[@]}" "$RMQ_BIN/rabbitmq-diagnostics" -q -n "$N_NAME" ping >/dev/null 2>&1
}

node_pid() { pid_in_file "$N_PID_FILE"; }

node_alive() { live_pid_in_file "$N_PID_FILE" >/dev/null; }

write_config() {
  mkdir -p "$N_HOST_DIR/log" "$N_HOST_DIR/mnesia"
  : >"$N_HOST_DIR/rabbitmq-env.conf"
  cat >"$N_HOST_DIR/rabbitmq.conf" <<EOF
# Generated by devstack/rabbitmq.sh; rewritten on every start.
listeners.tcp.1 = 127.0.0.1:$N_AMQP
stream.listeners.tcp.1 = 127.0.0.1:$N_STREAM
stream.advertised_host = localhost
stream.advertised_port = $N_STREAM
management.tcp.ip = 127.0.0.1
management.tcp.port = $N_MGMT
# guest/guest may connect from loopback only (the default, spelled out).
loopback_users.guest = true
default_user = guest
default_pass = guest
log.file.level = info
log.console = false
# Clients may agree frames of up to 8 MiB (the default is 1 MiB): the consumer's tests
# deliver messages larger than 1 MiB, as a broker an operator configured so would.
stream.frame_max = 8388608
EOF
  printf '[rabbitmq_stream,rabbitmq_management].\n' >"$N_HOST_DIR/enabled_plugins"
}

LAUNCH_PID=""

fail_node_start() {
  # Do not leave a half-started node behind: stop the session we launched (setsid made it).
  if [[ -n "$LAUNCH_PID" ]] && kill -0 "$LAUNCH_PID" 2>/dev/null; then
    kill -TERM -- "-$LAUNCH_PID" 2>/dev/null || true
    sleep 2
    kill -KILL -- "-$LAUNCH_PID" 2>/dev/null || true
  fi
  rm -f "$N_PID_FILE"
  log "rabbitmq: node $N_NAME failed to start; see $N_LOG"
  log_tail "$N_LOG"
  if [[ -s "$N_BOOT_LOG" ]]; then
    log "--- $N_BOOT_LOG ---"
    log_tail "$N_BOOT_LOG"
  fi
  exit 1
}

start_node() { # start the node set by set_node, if it is not running
  if port_open "$N_STREAM" && node_answers; then
    echo "rabbitmq node $N_NAME already running (stream 127.0.0.1:$N_STREAM)"
    return 0
  fi
  if node_answers; then
    # The Erlang node is up but the rabbit app is stopped (`ctl stop_app`).
    local t0=$SECONDS deadline=$((SECONDS + START_TIMEOUT))
    log "rabbitmq: node $N_NAME is up with the app stopped; running start_app..."
    root_cmd
    timeout "$START_TIMEOUT" "${ROOT_CMD[@]}" "$RMQ_BIN/rabbitmqctl" -q -n "$N_NAME" start_app \
      >>"$N_BOOT_LOG" 2>&1 || fail_node_start
    wait_for $((deadline - SECONDS)) 0.5 "" port_open "$N_STREAM" || fail_node_start
    echo "rabbitmq node $N_NAME: app restarted in $((SECONDS - t0)) s"
    return 0
  fi
  local port
  for port in "$N_STREAM" "$N_AMQP" "$N_DIST" "$N_MGMT"; do
    if port_open "$port"; then
      log "rabbitmq: node $N_NAME cannot start: port $port is taken by another process" \
        "(move it with RABBITMQ_DEVSTACK_*_PORT)"
      exit 1
    fi
  done
  if node_alive; then
    # Our node from an earlier start that never became ready: start clean.
    stop_node >/dev/null 2>&1 || true
  fi
  write_config
  rm -f "$N_PID_FILE"
  local t0=$SECONDS
  log "rabbitmq: starting node $N_NAME (logs in $N_HOST_DIR/log)..."
  # Keep the previous run's log beside the new one, so a failure shows this run's lines.
  if [[ -s "$N_LOG" ]]; then mv -f "$N_LOG" "$N_LOG.prev"; fi
  root_cmd
  launch_detached "$STATE_DIR" "$N_BOOT_LOG" "${ROOT_CMD[@]}" "$RMQ_BIN/rabbitmq-server"
  LAUNCH_PID=$LAUNCHED_PID

  # Wait for the boot to finish, then for the stream listener.
  local deadline=$((SECONDS + START_TIMEOUT))
  wait_for "$START_TIMEOUT" 0.5 "$LAUNCH_PID" test -s "$N_PID_FILE" || fail_node_start
  local remaining=$((deadline - SECONDS))
  ((remaining > 0)) || fail_node_start
  ctl -q await_startup --timeout "$remaining" >>"$N_BOOT_LOG" 2>&1 || fail_node_start
  wait_for $((deadline - SECONDS)) 0.5 "$(node_pid)" port_open "$N_STREAM" || fail_node_start
  echo "rabbitmq node $N_NAME started (stream 127.0.0.1:$N_STREAM, amqp 127.0.0.1:$N_AMQP," \
    "management http://127.0.0.1:$N_MGMT) in $((SECONDS - t0)) s"
}

stop_node() {
  local stopped=0 pid=""
  node_alive && pid="$(node_pid)"
  if root_ready && node_answers; then
    # With the pid file, rabbitmqctl waits until the node's process has exited.
    ctl -q stop "$N_DIR/rabbitmq.pid" >/dev/null 2>&1 || ctl -q stop >/dev/null 2>&1 || true
    stopped=1
  fi
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    # Still there after the CLI: the recorded pid, and only that.
    wait_for 10 0.5 "" pid_gone "$pid" || stop_pid "$pid" 15
    stopped=1
  fi
  rm -f "$N_PID_FILE"
  if ((stopped)); then echo "rabbitmq node $N_NAME stopped"; else echo "rabbitmq node $N_NAME not running"; fi
}

stop_epmd_if_idle() { # our epmd (its own port) goes once no node of ours is registered
  root_ready || return 0
  port_open "$EPMD_PORT" || return 0
  local names
  names="$(in_root /usr/bin/epmd -names 2>/dev/null | grep -c '^name ' || true)"
  if [[ "$names" == 0 ]]; then in_root /usr/bin/epmd -kill >/dev/null 2>&1 || true; fi
}

# --- single node ---------------------------------------------------------------------
single_node() { set_node "$NODE" "$AMQP_PORT" "$STREAM_PORT" "$DIST_PORT" "$MGMT_PORT"; }

cmd_start() {
  mkdir -p "$STATE_DIR"
  make_root
  prepare_root
  single_node
  start_node
  printf '%s\n' "RABBITMQ_DEVSTACK_NODENAME=$NODE" "RABBITMQ_DEVSTACK_AMQP_PORT=$AMQP_PORT" \
    "RABBITMQ_DEVSTACK_STREAM_PORT=$STREAM_PORT" "RABBITMQ_DEVSTACK_DIST_PORT=$DIST_PORT" \
    "RABBITMQ_DEVSTACK_MGMT_PORT=$MGMT_PORT" "RABBITMQ_DEVSTACK_EPMD_PORT=$EPMD_PORT" \
    >"$SAVED_ENV"
}

cmd_stop() {
  single_node
  stop_node
  stop_epmd_if_idle
}

cmd_status() {
  single_node
  if port_open "$N_STREAM" && node_answers; then
    echo "rabbitmq running (node $N_NAME, stream 127.0.0.1:$N_STREAM)"
    return 0
  fi
  echo "rabbitmq not running"
  return 1
}

# --- cluster -----------------------------------------------------------------------------
cluster_node() { # i -> set_node for cluster node i
  set_node "$CLUSTER_PREFIX$1@localhost" "$((CLUSTER_AMQP_BASE + 10 * $1))" \
    "$((CLUSTER_STREAM_BASE + 10 * $1))" "$((CLUSTER_DIST_BASE + 10 * $1))" \
    "$((CLUSTER_MGMT_BASE + 10 * $1))"
}

cluster_size_file() { echo "$STATE_DIR/cluster-size"; }

start_epmd() { # our epmd (the node set by set_node gives its environment), if not running
  port_open "$EPMD_PORT" && return 0
  in_root /usr/bin/epmd -daemon </dev/null >/dev/null 2>&1 9>&- || true
  wait_for 10 0.2 "" port_open "$EPMD_PORT" ||
    { log "rabbitmq: epmd did not start on 127.0.0.1:$EPMD_PORT"; exit 1; }
}

cmd_cluster_start() {
  local size="${1:-3}" i first pid failed=0
  [[ "$size" =~ ^[1-9]$ ]] || { log "rabbitmq: cluster size must be 1..9, got '$size'"; exit 2; }
  mkdir -p "$STATE_DIR"
  make_root
  prepare_root
  echo "$size" >"$(cluster_size_file)"
  first="$CLUSTER_PREFIX"1@localhost
  # The nodes boot side by side, each in a subshell of its own (its own ports, folders and
  # failure report); epmd is started first, so that they do not race to start it. A node that
  # was a member waits at boot for the others, which are then booting too.
  cluster_node 1
  start_epmd
  local -a booting=()
  for ((i = 1; i <= size; i++)); do
    (cluster_node "$i"; start_node) &
    booting+=("$!")
  done
  for pid in "${booting[@]}"; do wait "$pid" || failed=1; done
  ((failed == 0)) || exit 1
  # Joining changes the cluster's membership: one node at a time.
  for ((i = 2; i <= size; i++)); do
    cluster_node "$i"
    if ! ctl -q cluster_status 2>/dev/null | grep -qF "$first"; then
      log "rabbitmq: joining $N_NAME to $first..."
      { ctl -q stop_app && ctl -q join_cluster "$first" && ctl -q start_app; } >>"$N_BOOT_LOG" 2>&1 ||
        fail_node_start
      ctl -q await_startup --timeout "$START_TIMEOUT" >>"$N_BOOT_LOG" 2>&1 || fail_node_start
    fi
  done
  local ports=""
  for ((i = 1; i <= size; i++)); do ports+=" $((CLUSTER_STREAM_BASE + 10 * i))"; done
  echo "rabbitmq cluster of $size nodes running (stream ports:$ports)"
}

cmd_cluster_stop() {
  local size i
  if [[ ! -s "$(cluster_size_file)" ]] || ! root_ready; then
    echo "rabbitmq cluster not running"
    return 0
  fi
  size="$(tr -dc '0-9' <"$(cluster_size_file)")"
  # The last node started is stopped first, so the first one keeps the cluster's view.
  for ((i = size; i >= 1; i--)); do
    cluster_node "$i"
    stop_node
  done
  rm -f "$(cluster_size_file)"
  stop_epmd_if_idle
}

cmd_cluster_status() {
  local size=3 i rc=0
  [[ -s "$(cluster_size_file)" ]] && size="$(tr -dc '0-9' <"$(cluster_size_file)")"
  for ((i = 1; i <= size; i++)); do
    cluster_node "$i"
    if port_open "$N_STREAM" && node_answers; then
      echo "rabbitmq cluster node $N_NAME running (stream 127.0.0.1:$N_STREAM)"
    else
      echo "rabbitmq cluster node $N_NAME not running"
      rc=1
    fi
  done
  return $rc
}

case "${1:-}" in
  start) take_lock "$STATE_DIR" 600; cmd_start ;;
  stop) take_lock "$STATE_DIR" 600; cmd_stop ;;
  status) cmd_status ;;
  ctl)
    shift
    root_ready || { log "rabbitmq: the root is not made yet; run: $0 start"; exit 1; }
    single_node
    ctl "$@"
    ;;
  cluster-start) take_lock "$STATE_DIR" 600; cmd_cluster_start "${2:-3}" ;;
  cluster-stop) take_lock "$STATE_DIR" 600; cmd_cluster_stop ;;
  cluster-status) cmd_cluster_status ;;
  *)
    log "usage: $0 {start|stop|status|ctl <rabbitmqctl args...>|cluster-start [N]|cluster-stop|cluster-status}"
    exit 2
    ;;
esac

#!/usr/bin/env bash
# nginx, for the test of the README's "Behind a proxy" section (tests/middleware/
# test_behind_a_proxy.py): the README's `location` block runs in a real nginx in front of a
# real uvicorn.
#
#   devstack/nginx.sh install   install Debian's nginx-light if nginx is missing
#   devstack/nginx.sh status    exit 0 if nginx is installed, printing its version
#
# Only the program is wanted: the package's system daemon (nginx.service, port 80) is kept
# from starting while the package installs, stopped should it have started anyway, and not
# enabled at boot. The test starts its own nginx on a free port with a configuration and
# temporary folders of its own, and stops it itself.
set -euo pipefail

# shellcheck source=SCRIPTDIR/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

STATE_DIR="$DEVSTACK_STATE/nginx"
APT_LOG="$STATE_DIR/apt.log"
UNIT=nginx.service

installed() { command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]]; }

systemd_running() { [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; }

quiet_system_daemon() { # the package's daemon: stopped if running, not started at boot
  command -v systemctl >/dev/null 2>&1 || return 0
  if systemd_running && systemctl is-active --quiet "$UNIT"; then
    log "nginx: stopping the system $UNIT the package started"
    systemctl stop "$UNIT" >>"$APT_LOG" 2>&1 || log "nginx: could not stop $UNIT; see $APT_LOG"
  fi
  systemctl disable --quiet "$UNIT" >>"$APT_LOG" 2>&1 || true
}

cmd_install() {
  if installed; then
    echo "nginx: already installed"
    return 0
  fi
  mkdir -p "$STATE_DIR"
  local t0=$SECONDS
  log "nginx: installing Debian's nginx-light (apt-get)..."
  apt_install_no_start "$APT_LOG" nginx-light || exit 1
  quiet_system_daemon
  if ! installed; then
    log "nginx: installing the package left no nginx; see $APT_LOG"
    exit 1
  fi
  echo "nginx: installed in $((SECONDS - t0)) s"
}

cmd_status() {
  if installed; then
    "$(command -v nginx || echo /usr/sbin/nginx)" -v 2>&1
    return 0
  fi
  echo "nginx: missing (devstack/nginx.sh install)"
  return 1
}

case "${1:-}" in
  install) take_lock "$STATE_DIR" 600; cmd_install ;;
  status) cmd_status ;;
  *)
    log "usage: $0 {install|status}"
    exit 2
    ;;
esac

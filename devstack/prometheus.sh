#!/usr/bin/env bash
# promtool and the Prometheus server, for the tests of the deploy assets (tests/deploy/):
# `promtool check rules|config`, `promtool test rules`, and a server of the test's own that
# evaluates every query of the Grafana dashboard.
#
#   devstack/prometheus.sh install   install Debian's prometheus package if either is missing
#   devstack/prometheus.sh status    exit 0 if both are installed, printing their versions
#
# Only the programs are wanted: the package's system daemon (prometheus.service, port 9090)
# is kept from starting while the package installs, stopped should it have started anyway,
# and not enabled at boot. The tests start their own server on a free port with a temporary
# data folder and stop it themselves.
set -euo pipefail

# shellcheck source=SCRIPTDIR/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

STATE_DIR="$DEVSTACK_STATE/prometheus"
APT_LOG="$STATE_DIR/apt.log"
UNIT=prometheus.service

installed() { command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; }

systemd_running() { [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; }

quiet_system_daemon() { # the package's daemon: stopped if running, not started at boot
  command -v systemctl >/dev/null 2>&1 || return 0
  if systemd_running && systemctl is-active --quiet "$UNIT"; then
    log "prometheus: stopping the system $UNIT the package started"
    systemctl stop "$UNIT" >>"$APT_LOG" 2>&1 || log "prometheus: could not stop $UNIT; see $APT_LOG"
  fi
  # Works without a running systemd too (it only removes the symlinks).
  systemctl disable --quiet "$UNIT" >>"$APT_LOG" 2>&1 || true
}

cmd_install() {
  if installed; then
    echo "prometheus: promtool and prometheus already installed"
    return 0
  fi
  mkdir -p "$STATE_DIR"
  local t0=$SECONDS
  log "prometheus: installing Debian's prometheus (apt-get)..."
  apt_install_no_start "$APT_LOG" prometheus || exit 1
  quiet_system_daemon
  if ! installed; then
    log "prometheus: installing the package left no promtool or prometheus on PATH; see $APT_LOG"
    exit 1
  fi
  echo "prometheus: installed promtool and prometheus in $((SECONDS - t0)) s"
}

cmd_status() {
  if installed; then
    promtool --version 2>&1 | head -n 1
    prometheus --version 2>&1 | head -n 1
    return 0
  fi
  echo "prometheus: promtool or prometheus missing (devstack/prometheus.sh install)"
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

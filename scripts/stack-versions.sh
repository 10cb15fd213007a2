# Sourced by scripts/install-stack.sh and scripts/stack.sh: which servers the
# local stack runs and where their binaries live (one place for both, so the
# install script fetches exactly what the stack then starts).
#
# STACK_PG_VERSION     PostgreSQL major: 13, 14, 15, 16 or 17. Default: the
#                      newest one Debian's packages installed (15 on Debian 12).
#                      A major Debian has not installed comes from Maven
#                      Central's io.zonky.test.postgres binaries, unpacked once
#                      into .stack-cache/postgresql-<release>.
# STACK_KAFKA_VERSION  Apache Kafka: 3.9 or 4.1 (or a full x.y.z). Default 4.1.
#                      Jars from Maven Central in .stack-cache/kafka-libs-<release>.
# ZooKeeper            3.9.5, only for a replicated ClickHouse (stack.sh up
#                      --clickhouse-replicas 2): jars from Maven Central in
#                      .stack-cache/zookeeper-<release>.
# PG_BIN, KAFKA_LIBS   override the directories outright.
# Expects ROOT (the repository) to be set.

STACK_CACHE=${STACK_CACHE:-$ROOT/.stack-cache}

debian_pg_major() { ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sed 's#/usr/lib/postgresql/\([0-9]*\)/.*#\1#' | sort -n | tail -n 1; }

# The zonky release each major is taken at: the versions tested in CI.
zonky_pg_release() {
  case "$1" in
    13) echo 13.22.0 ;;
    14) echo 14.19.0 ;;
    15) echo 15.14.0 ;;
    16) echo 16.10.0 ;;
    17) echo 17.6.0 ;;
    *) return 1 ;;
  esac
}

kafka_release() {
  case "$1" in
    3.9) echo 3.9.1 ;;
    4.1) echo 4.1.1 ;;
    [0-9]*.[0-9]*.[0-9]*) echo "$1" ;;
    *) return 1 ;;
  esac
}

STACK_PG_VERSION=${STACK_PG_VERSION:-$(debian_pg_major)}
STACK_PG_VERSION=${STACK_PG_VERSION:-15}
STACK_KAFKA_VERSION=${STACK_KAFKA_VERSION:-4.1}

[[ "$STACK_PG_VERSION" =~ ^1[3-7]$ ]] || { echo "STACK_PG_VERSION must be a PostgreSQL major from 13 to 17, got '$STACK_PG_VERSION'" >&2; exit 2; }
KAFKA_RELEASE=$(kafka_release "$STACK_KAFKA_VERSION") || { echo "STACK_KAFKA_VERSION must be 3.9, 4.1 or a full version such as 4.1.1, got '$STACK_KAFKA_VERSION'" >&2; exit 2; }

# Debian's binaries when that major is installed from its packages, else the zonky ones.
if [ -x "/usr/lib/postgresql/$STACK_PG_VERSION/bin/postgres" ]; then
  PG_RELEASE=debian
  PG_BIN=${PG_BIN:-/usr/lib/postgresql/$STACK_PG_VERSION/bin}
else
  PG_RELEASE=$(zonky_pg_release "$STACK_PG_VERSION")
  PG_BIN=${PG_BIN:-$STACK_CACHE/postgresql-$PG_RELEASE/bin}
fi
# psql and pg_isready: Debian's client talks to every server from 13 to 17
# (the zonky archives hold only initdb, pg_ctl and postgres).
PG_CLIENT_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
KAFKA_LIBS=${KAFKA_LIBS:-$STACK_CACHE/kafka-libs-$KAFKA_RELEASE}
ZOOKEEPER_RELEASE=3.9.5
ZOOKEEPER_LIBS=$STACK_CACHE/zookeeper-$ZOOKEEPER_RELEASE

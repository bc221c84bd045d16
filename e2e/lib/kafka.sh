# shellcheck shell=bash
#
# Kafka component of the local test stack: a single-node KRaft cluster (one
# JVM acting as both broker and controller) listening on MILLPOND_HOST_IP,
# the stack's host address that the host and the pods reach (lib/net.sh).
#
# Sourced by e2e/stack after lib/common.sh. Public functions:
#   kafka_up, kafka_down, kafka_env, kafka_status, kafka_topic
#
# The Kafka jars come from Maven Central (no tarball download): a generated
# pom lists the broker (kafka_2.13) and the admin tools (kafka-tools) and
# `mvn dependency:copy-dependencies` flattens them into one libs/ directory,
# the same shape as the libs/ of an Apache Kafka binary release.

# Pinned release. Kafka 4.x needs Java 17+ for the broker.
KAFKA_VERSION="${MILLPOND_KAFKA_VERSION:-4.1.1}"
# slf4j binding matching the log4j2 version Kafka 4.1 depends on (kafka-server
# pulls log4j-api/log4j-core 2.24.3, and Kafka logs through slf4j-api 1.7.x,
# hence the 1.x binding `log4j-slf4j-impl`, not `log4j-slf4j2-impl`).
KAFKA_LOG4J_VERSION="2.24.3"
# Pinned so the download does not depend on the Maven version's default.
KAFKA_MVN_DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.6.1"

_KAFKA_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=net.sh
declare -F net_up >/dev/null || source "$_KAFKA_LIB_DIR/net.sh"
KAFKA_HOST="$MILLPOND_HOST_IP"
KAFKA_PORT="${MILLPOND_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${MILLPOND_KAFKA_CONTROLLER_PORT:-19093}"
# A second listener with SASL/PLAIN, for tests of credentials from Secrets.
# The one user and its password are fixed: the broker is a local test stack.
KAFKA_SASL_PORT="${MILLPOND_KAFKA_SASL_PORT:-19094}"
KAFKA_SASL_USER="millpond"
KAFKA_SASL_PASSWORD="millpond-local-test"
# TLS listeners with a CA of the stack's own (generated once, kept in the
# state dir): TLS only, mutual TLS (client certificate required), and
# SASL_SSL with SCRAM-SHA-512 (user created when the storage is formatted)
# and PLAIN.
KAFKA_SSL_PORT="${MILLPOND_KAFKA_SSL_PORT:-19095}"
KAFKA_MTLS_PORT="${MILLPOND_KAFKA_MTLS_PORT:-19096}"
KAFKA_SASL_SSL_PORT="${MILLPOND_KAFKA_SASL_SSL_PORT:-19097}"
# TLS whose certificate names another host (kafka.wrong-name.invalid), for
# the test of hostname verification.
KAFKA_WRONG_NAME_PORT="${MILLPOND_KAFKA_WRONG_NAME_PORT:-19098}"
KAFKA_SCRAM_USER="millpond-scram"
KAFKA_SCRAM_PASSWORD="millpond-scram-local-test"
KAFKA_NODE_ID=1
KAFKA_START_TIMEOUT="${MILLPOND_KAFKA_START_TIMEOUT:-90}"

KAFKA_HOME="$MILLPOND_CACHE_DIR/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_MARKER="$KAFKA_HOME/.complete"

KAFKA_STATE="$MILLPOND_STATE_DIR/kafka"
KAFKA_DATA="$KAFKA_STATE/data"
KAFKA_PIDFILE="$KAFKA_STATE/kafka.pid"
KAFKA_OUT="$KAFKA_STATE/kafka.out"
KAFKA_CONF="$KAFKA_STATE/server.properties"
KAFKA_LOG4J_CONF="$KAFKA_STATE/log4j2.properties"
KAFKA_TOOLS_LOG4J_CONF="$KAFKA_STATE/tools-log4j2.properties"
# Written at start: the address the running broker really listens on, so
# `env`/`topic` keep working if MILLPOND_KAFKA_PORT changes meanwhile.
KAFKA_BOOTSTRAP_FILE="$KAFKA_STATE/bootstrap"
KAFKA_SASL_BOOTSTRAP_FILE="$KAFKA_STATE/sasl-bootstrap"
# The listeners' addresses and credentials as `export` lines, written at start.
KAFKA_ENV_FILE="$KAFKA_STATE/listeners.env"
# CA, broker and client certificates; survive `down`.
KAFKA_PKI="$KAFKA_STATE/pki"

# ------------------------------------------------------------------ java --

# kafka_java -> prints the path of a java (17 or newer) to run Kafka with.
# Order: $MILLPOND_JAVA, $JAVA_HOME/bin/java, `java` on PATH.
kafka_java() {
    local java
    if [[ -n ${MILLPOND_JAVA:-} ]]; then
        java=$MILLPOND_JAVA
    elif [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
        java=$JAVA_HOME/bin/java
    else
        ensure_cmd java openjdk-17-jre-headless
        java=$(command -v java)
    fi
    local spec
    spec=$("$java" -XshowSettings:properties -version 2>&1 \
        | sed -n 's/^ *java\.specification\.version = //p')
    [[ -n $spec ]] || die "could not determine the version of $java"
    # "1.8" style versions are all older than 17.
    if [[ $spec == 1.* ]] || (( spec < 17 )); then
        die "Kafka $KAFKA_VERSION needs Java 17 or newer; $java is $spec (set MILLPOND_JAVA)"
    fi
    printf '%s\n' "$java"
}

# -------------------------------------------------------------- download --

# kafka_fetch : makes sure $KAFKA_LIBS holds the jars of $KAFKA_VERSION.
# Downloads once; the marker file is only written after a complete copy.
kafka_fetch() {
    [[ -f $KAFKA_MARKER ]] && return 0
    ensure_cmd mvn maven
    cache_dir >/dev/null

    local started tmp
    started=$(now_ms)
    tmp=$(mktemp -d "$MILLPOND_CACHE_DIR/.kafka-$KAFKA_VERSION.XXXXXX")
    log "downloading Apache Kafka $KAFKA_VERSION jars from Maven Central (once)"

    # kafka-tools drags in Kafka Connect (jetty, jersey, ...) for its connect
    # plugin tooling; TopicCommand and friends do not need it, so leave it out.
    cat >"$tmp/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by e2e/lib/kafka.sh: the jars of a Kafka $KAFKA_VERSION broker. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>millpond.e2e</groupId>
  <artifactId>kafka-libs</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
      <exclusions>
        <exclusion>
          <groupId>org.apache.kafka</groupId>
          <artifactId>connect-runtime</artifactId>
        </exclusion>
        <exclusion>
          <groupId>com.fasterxml.jackson.jakarta.rs</groupId>
          <artifactId>jackson-jakarta-rs-json-provider</artifactId>
        </exclusion>
      </exclusions>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$KAFKA_LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF

    if ! mvn -B -q -f "$tmp/pom.xml" \
            "$KAFKA_MVN_DEPENDENCY_PLUGIN:copy-dependencies" \
            -DincludeScope=runtime \
            -DoutputDirectory="$tmp/libs" >"$tmp/mvn.log" 2>&1; then
        tail -n 40 "$tmp/mvn.log" >&2
        rm -rf "$tmp"
        die "downloading Kafka $KAFKA_VERSION with Maven failed (log above)"
    fi

    local jar
    for jar in "kafka_2.13-$KAFKA_VERSION.jar" "kafka-tools-$KAFKA_VERSION.jar" \
               "kafka-clients-$KAFKA_VERSION.jar" "log4j-slf4j-impl-$KAFKA_LOG4J_VERSION.jar"; do
        [[ -f $tmp/libs/$jar ]] || { rm -rf "$tmp"; die "expected $jar in the download, not found"; }
    done

    # Swap the complete result into place, then mark it done.
    rm -rf "$KAFKA_HOME"
    mkdir -p "$KAFKA_HOME"
    mv "$tmp/libs" "$KAFKA_LIBS"
    mv "$tmp/pom.xml" "$KAFKA_HOME/pom.xml"
    rm -rf "$tmp"
    printf 'kafka %s, %s jars, fetched %s\n' "$KAFKA_VERSION" \
        "$(find "$KAFKA_LIBS" -name '*.jar' | wc -l)" "$(date -u +%FT%TZ)" >"$KAFKA_MARKER"
    log "Kafka $KAFKA_VERSION jars ready in $KAFKA_LIBS ($(elapsed_s "$started"))"
}

# ---------------------------------------------------------------- config --

# kafka_new_cluster_id -> a random Kafka cluster id: 16 random bytes, base64url
# without padding (22 chars), the format StorageTool's `random-uuid` prints.
# Like Kafka's own generator, never start with '-', which the argument parser
# would take for an option.
kafka_new_cluster_id() {
    local id
    while :; do
        id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
        [[ $id != -* ]] && break
    done
    printf '%s\n' "$id"
}

# kafka_pki : the CA, the broker's certificate (for MILLPOND_HOST_IP and
# localhost), one naming another host, and a client certificate for the mTLS
# listener, once.
kafka_pki() {
    local d=$KAFKA_PKI
    [[ -s $d/broker.pem && -s $d/wrong-name.pem && -s $d/client.key ]] &&
        openssl x509 -in "$d/broker.crt" -noout -ext subjectAltName 2>/dev/null | grep -q "IP Address:$KAFKA_HOST" &&
        return 0
    log "generating the Kafka CA and the broker and client certificates"
    rm -rf "$d" && mkdir -p "$d" || return 1
    (
        cd "$d" || exit 1
        pki_ca ca millpond-e2e-kafka-ca &&
            pki_sign ca broker "/CN=$KAFKA_HOST" serverAuth "IP:$KAFKA_HOST,IP:127.0.0.1,DNS:localhost" &&
            pki_sign ca client "/CN=millpond-client" clientAuth &&
            pki_sign ca wrong-name "/CN=kafka.wrong-name.invalid" serverAuth "DNS:kafka.wrong-name.invalid" &&
            cat broker.key broker.crt >broker.pem &&
            cat wrong-name.key wrong-name.crt >wrong-name.pem &&
            chmod 644 ./*.crt ./*.key ./*.pem
    ) >"$KAFKA_STATE/pki.log" 2>&1 || die "Kafka certificate generation failed, see $KAFKA_STATE/pki.log"
}

kafka_write_config() {
    # Single combined node. Kafka 4.x is KRaft only: no zookeeper.connect, and
    # the quorum is either static (controller.quorum.voters, used here, then
    # `storage format` needs no --standalone) or dynamic
    # (controller.quorum.bootstrap.servers + `format --standalone`).
    cat >"$KAFKA_CONF" <<EOF
# Generated by e2e/lib/kafka.sh on every start; edits are overwritten.
process.roles=broker,controller
node.id=$KAFKA_NODE_ID
controller.quorum.voters=$KAFKA_NODE_ID@$KAFKA_HOST:$KAFKA_CONTROLLER_PORT

listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,SASL_PLAINTEXT://$KAFKA_HOST:$KAFKA_SASL_PORT,SSL://$KAFKA_HOST:$KAFKA_SSL_PORT,MTLS://$KAFKA_HOST:$KAFKA_MTLS_PORT,SASL_SSL://$KAFKA_HOST:$KAFKA_SASL_SSL_PORT,WRONG_NAME://$KAFKA_HOST:$KAFKA_WRONG_NAME_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,SASL_PLAINTEXT://$KAFKA_HOST:$KAFKA_SASL_PORT,SSL://$KAFKA_HOST:$KAFKA_SSL_PORT,MTLS://$KAFKA_HOST:$KAFKA_MTLS_PORT,SASL_SSL://$KAFKA_HOST:$KAFKA_SASL_SSL_PORT,WRONG_NAME://$KAFKA_HOST:$KAFKA_WRONG_NAME_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,MTLS:SSL,SASL_SSL:SASL_SSL,WRONG_NAME:SSL,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SASL_USER="$KAFKA_SASL_PASSWORD";
# TLS: PEM files of the stack's CA (see kafka_pki).
ssl.keystore.type=PEM
ssl.keystore.location=$KAFKA_PKI/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$KAFKA_PKI/ca.crt
listener.name.mtls.ssl.client.auth=required
listener.name.wrong_name.ssl.keystore.type=PEM
listener.name.wrong_name.ssl.keystore.location=$KAFKA_PKI/wrong-name.pem
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SASL_USER="$KAFKA_SASL_PASSWORD";
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER

log.dirs=$KAFKA_DATA

# One node: every internal topic gets replication factor 1.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
# Fewer internal partitions than the default 50: creating __consumer_offsets
# on the first group join is then fast.
offsets.topic.num.partitions=4
transaction.state.log.num.partitions=4

num.partitions=1
# Consumer groups start balancing at once instead of after 3 s.
group.initial.rebalance.delay.ms=0

# Test data lives until "e2e/stack down"; never age it out under a test.
log.retention.ms=-1
log.retention.bytes=-1

# Small machine: keep the thread pools small.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=4
EOF

    # Broker log4j2 config: everything to stdout, which `kafka_start`
    # redirects to $KAFKA_OUT. The per-request and state-change loggers are
    # very chatty at INFO, so they only report warnings.
    cat >"$KAFKA_LOG4J_CONF" <<'EOF'
status = warn
name = millpond-kafka
appender.out.type = Console
appender.out.name = OUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = OUT
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.statechange.name = state.change.logger
logger.statechange.level = warn
logger.clients.name = org.apache.kafka.clients
logger.clients.level = warn
logger.coordinatorlog.name = org.apache.kafka.coordinator
logger.coordinatorlog.level = warn
EOF
}

kafka_write_tools_log_config() {
    mkdir -p "$KAFKA_STATE"
    [[ -f $KAFKA_TOOLS_LOG4J_CONF ]] && return 0
    # Admin tools: warnings and errors only, on stderr.
    cat >"$KAFKA_TOOLS_LOG4J_CONF" <<'EOF'
status = warn
name = millpond-kafka-tools
appender.err.type = Console
appender.err.name = ERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = ERR
EOF
}

# ------------------------------------------------------------- lifecycle --

# kafka_bootstrap -> host:port of the running broker (or the configured one).
kafka_bootstrap() {
    if [[ -f $KAFKA_BOOTSTRAP_FILE ]]; then
        cat "$KAFKA_BOOTSTRAP_FILE"
    else
        printf '%s:%s\n' "$KAFKA_HOST" "$KAFKA_PORT"
    fi
}

# kafka_pid -> pid of our running broker, empty if none. The command line
# must mention our server.properties, so a recycled pid is not mistaken for
# the broker.
kafka_pid() {
    local pid
    pid=$(read_pidfile "$KAFKA_PIDFILE")
    if [[ -n $pid ]] && pid_alive "$pid" && pid_cmdline_has "$pid" "kafka.Kafka $KAFKA_CONF"; then
        printf '%s\n' "$pid"
    fi
}

# kafka_answers [BOOTSTRAP] : true if a broker there answers a metadata request.
kafka_answers() {
    local bootstrap=${1:-$(kafka_bootstrap)} out
    out=$(kcat -b "$bootstrap" -L -m 3 2>/dev/null) || return 1
    [[ $out == *"brokers:"* ]]
}

kafka_start() {
    local java=$1
    local started pid cluster_id
    started=$(now_ms)

    if tcp_open "$KAFKA_HOST" "$KAFKA_PORT" || tcp_open "$KAFKA_HOST" "$KAFKA_CONTROLLER_PORT" \
        || tcp_open "$KAFKA_HOST" "$KAFKA_SASL_PORT"; then
        die "port $KAFKA_PORT, $KAFKA_CONTROLLER_PORT or $KAFKA_SASL_PORT on $KAFKA_HOST is already in use by a process this script did not start (set MILLPOND_KAFKA_PORT / MILLPOND_KAFKA_CONTROLLER_PORT / MILLPOND_KAFKA_SASL_PORT)"
    fi

    # No broker of ours is running, so whatever is in the data dir is left
    # over from a crash or a killed shell: start from an empty log instead.
    rm -rf "$KAFKA_DATA" "$KAFKA_PIDFILE" "$KAFKA_BOOTSTRAP_FILE"
    mkdir -p "$KAFKA_STATE" "$KAFKA_DATA"
    kafka_pki
    kafka_write_config
    kafka_write_tools_log_config

    # Keep the previous run's output for a post-mortem, start a new one.
    [[ -f $KAFKA_OUT ]] && mv -f "$KAFKA_OUT" "$KAFKA_OUT.prev"

    cluster_id=$(kafka_new_cluster_id)
    log "formatting KRaft storage (cluster id $cluster_id)"
    if ! "$java" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
            -Dlog4j2.configurationFile="$KAFKA_TOOLS_LOG4J_CONF" \
            -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool \
            format -t "$cluster_id" -c "$KAFKA_CONF" \
            --add-scram "SCRAM-SHA-512=[name=\"$KAFKA_SCRAM_USER\",password=\"$KAFKA_SCRAM_PASSWORD\"]" \
            >>"$KAFKA_OUT" 2>&1; then
        tail -n 30 "$KAFKA_OUT" >&2
        die "formatting the Kafka log dir failed (output above, full log: $KAFKA_OUT)"
    fi

    log "starting Kafka $KAFKA_VERSION on $KAFKA_HOST:$KAFKA_PORT (controller :$KAFKA_CONTROLLER_PORT)"
    # setsid + nohup: the broker outlives the shell (and the terminal / CI
    # step) that ran `up`; `down` stops it through the pid file.
    # shellcheck disable=SC2086  # MILLPOND_KAFKA_JVM_OPTS is a word list
    (
        cd "$KAFKA_STATE" || exit 1
        close_lock_fds
        exec setsid nohup "$java" \
            -Xms256m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
            -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
            -Dlog4j2.configurationFile="$KAFKA_LOG4J_CONF" \
            -Dkafka.logs.dir="$KAFKA_STATE" \
            ${MILLPOND_KAFKA_JVM_OPTS:-} \
            -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONF" \
            >>"$KAFKA_OUT" 2>&1 </dev/null
    ) &
    pid=$!
    # In a non-interactive shell setsid execs in place, so $! is the JVM.
    # (Under job control it would fork; fall back to searching for it.)
    sleep 0.3
    if ! pid_cmdline_has "$pid" "kafka.Kafka $KAFKA_CONF"; then
        pid=$(pgrep -n -f -- "kafka.Kafka $KAFKA_CONF" || true)
    fi
    [[ -n $pid ]] || { tail -n 30 "$KAFKA_OUT" >&2; die "Kafka exited right after start (log: $KAFKA_OUT)"; }
    printf '%s\n' "$pid" >"$KAFKA_PIDFILE"
    printf '%s:%s\n' "$KAFKA_HOST" "$KAFKA_PORT" >"$KAFKA_BOOTSTRAP_FILE"
    printf '%s:%s\n' "$KAFKA_HOST" "$KAFKA_SASL_PORT" >"$KAFKA_SASL_BOOTSTRAP_FILE"
    kafka_write_env

    local deadline=$(( SECONDS + KAFKA_START_TIMEOUT ))
    until kafka_answers "$KAFKA_HOST:$KAFKA_PORT"; do
        if ! pid_alive "$pid"; then
            tail -n 40 "$KAFKA_OUT" >&2
            rm -f "$KAFKA_PIDFILE" "$KAFKA_BOOTSTRAP_FILE"
            die "Kafka exited during startup (log above, full log: $KAFKA_OUT)"
        fi
        if (( SECONDS >= deadline )); then
            tail -n 40 "$KAFKA_OUT" >&2
            die "Kafka did not answer on $KAFKA_HOST:$KAFKA_PORT within ${KAFKA_START_TIMEOUT}s (pid $pid still running; log above, full log: $KAFKA_OUT; stop it with: e2e/stack down)"
        fi
        sleep 0.5
    done
    log "Kafka is up: pid $pid, bootstrap $KAFKA_HOST:$KAFKA_PORT ($(elapsed_s "$started"))"
}

_kafka_up_locked() {
    local pid
    pid=$(kafka_pid)
    if [[ -n $pid ]]; then
        if kafka_answers; then
            log "Kafka already running (pid $pid, bootstrap $(kafka_bootstrap)); nothing to do"
            return 0
        fi
        # Alive but silent: most likely still starting (another `up` gave up
        # waiting, or it was just launched). Give it the usual time.
        log "Kafka (pid $pid) is running but not answering yet; waiting"
        if wait_until "$KAFKA_START_TIMEOUT" "Kafka on $(kafka_bootstrap)" kafka_answers; then
            log "Kafka is up: pid $pid, bootstrap $(kafka_bootstrap)"
            return 0
        fi
        tail -n 40 "$KAFKA_OUT" >&2
        die "Kafka (pid $pid) does not answer; run 'e2e/stack down' and retry (log: $KAFKA_OUT)"
    fi

    local java
    java=$(kafka_java)
    kafka_fetch
    kafka_start "$java"
}

kafka_up() {
    ensure_kcat
    net_up
    with_lock kafka _kafka_up_locked
}

_kafka_down_locked() {
    local pid
    pid=$(kafka_pid)
    if [[ -z $pid ]]; then
        # No pid file (or a stale one): look for a broker on our config anyway.
        pid=$(pgrep -n -f -- "kafka.Kafka $KAFKA_CONF" || true)
    fi
    if [[ -n $pid ]]; then
        stop_pid "$pid" "Kafka" 30
        log "Kafka stopped"
    else
        log "Kafka is not running"
    fi
    # Broker data is test-only; the next `up` formats a fresh log dir.
    rm -rf "$KAFKA_DATA" "$KAFKA_PIDFILE" "$KAFKA_BOOTSTRAP_FILE" "$KAFKA_ENV_FILE"
}

kafka_down() {
    with_lock kafka _kafka_down_locked
}

# kafka_write_env : the TLS listeners and their credentials as export lines.
kafka_write_env() {
    {
        printf 'export KAFKA_SSL_BOOTSTRAP_SERVERS=%s:%s\n' "$KAFKA_HOST" "$KAFKA_SSL_PORT"
        printf 'export KAFKA_MTLS_BOOTSTRAP_SERVERS=%s:%s\n' "$KAFKA_HOST" "$KAFKA_MTLS_PORT"
        printf 'export KAFKA_SASL_SSL_BOOTSTRAP_SERVERS=%s:%s\n' "$KAFKA_HOST" "$KAFKA_SASL_SSL_PORT"
        printf 'export KAFKA_WRONG_NAME_BOOTSTRAP_SERVERS=%s:%s\n' "$KAFKA_HOST" "$KAFKA_WRONG_NAME_PORT"
        printf 'export KAFKA_CA_FILE=%q KAFKA_CLIENT_CERT_FILE=%q KAFKA_CLIENT_KEY_FILE=%q\n' \
            "$KAFKA_PKI/ca.crt" "$KAFKA_PKI/client.crt" "$KAFKA_PKI/client.key"
        printf 'export KAFKA_SCRAM_TEST_USER=%s KAFKA_SCRAM_TEST_PASSWORD=%s\n' "$KAFKA_SCRAM_USER" "$KAFKA_SCRAM_PASSWORD"
    } >"$KAFKA_ENV_FILE"
}

# kafka_env : prints shell exports for a running broker, nothing otherwise.
kafka_env() {
    local pid
    pid=$(kafka_pid)
    if [[ -n $pid ]]; then
        printf 'export KAFKA_BOOTSTRAP_SERVERS=%s\n' "$(kafka_bootstrap)"
        if [[ -f $KAFKA_SASL_BOOTSTRAP_FILE ]]; then
            # The SASL/PLAIN listener and its one test user.
            printf 'export KAFKA_SASL_BOOTSTRAP_SERVERS=%s KAFKA_SASL_TEST_USER=%s KAFKA_SASL_TEST_PASSWORD=%s\n' \
                "$(cat "$KAFKA_SASL_BOOTSTRAP_FILE")" "$KAFKA_SASL_USER" "$KAFKA_SASL_PASSWORD"
        fi
        if [[ -f $KAFKA_ENV_FILE ]]; then
            cat "$KAFKA_ENV_FILE"
        fi
    else
        log "Kafka is not running; no KAFKA_BOOTSTRAP_SERVERS (run: e2e/stack up kafka)"
    fi
}

kafka_status() {
    local pid
    pid=$(kafka_pid)
    if [[ -z $pid ]]; then
        echo "kafka: stopped"
    elif have kcat && kafka_answers; then
        echo "kafka: running, pid $pid, bootstrap $(kafka_bootstrap), version $KAFKA_VERSION, data $KAFKA_DATA, log $KAFKA_OUT"
    else
        echo "kafka: pid $pid alive but NOT answering on $(kafka_bootstrap) (starting, or hung: see $KAFKA_OUT)"
    fi
    if [[ -f $KAFKA_MARKER ]]; then
        echo "kafka: jars cached in $KAFKA_LIBS"
    else
        echo "kafka: jars not downloaded yet ($KAFKA_LIBS)"
    fi
}

# ----------------------------------------------------------------- tools --

# kafka_tool CLASS ARGS... : runs a Kafka command-line tool class from the
# cached jars against nothing in particular (callers pass --bootstrap-server).
kafka_tool() {
    [[ -f $KAFKA_MARKER ]] || die "Kafka jars not downloaded yet; run: e2e/stack up kafka"
    local java class=$1; shift
    java=$(kafka_java)
    kafka_write_tools_log_config
    # Short-lived JVM: C1 only and the serial GC start noticeably faster.
    "$java" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
        -Dlog4j2.configurationFile="$KAFKA_TOOLS_LOG4J_CONF" \
        -cp "$KAFKA_LIBS/*" "$class" "$@"
}

# kafka_topic_partitions NAME -> partition count as the broker reports it
# (empty if the topic does not exist).
kafka_topic_partitions() {
    local out
    out=$(kcat -b "$(kafka_bootstrap)" -L -t "$1" -m 5 2>/dev/null) || return 0
    # Line looks like:  topic "NAME" with 4 partitions:
    sed -n 's/^ *topic "[^"]*" with \([0-9][0-9]*\) partitions:.*/\1/p' <<<"$out" | head -n 1
}

_kafka_topic_visible() {
    local n
    n=$(kafka_topic_partitions "$1")
    [[ -n $n && $n != 0 ]]
}

kafka_topic_usage() {
    cat >&2 <<'EOF'
usage: e2e/stack topic create NAME PARTITIONS [CONFIG=VALUE ...]
       e2e/stack topic delete NAME
       e2e/stack topic describe NAME
       e2e/stack topic list
EOF
    exit 2
}

# kafka_topic SUBCOMMAND ARGS... : topic admin through
# org.apache.kafka.tools.TopicCommand (the class behind kafka-topics.sh).
kafka_topic() {
    local sub=${1:-}
    [[ -n $sub ]] || kafka_topic_usage
    shift
    [[ -n $(kafka_pid) ]] || die "Kafka is not running; run: e2e/stack up kafka"
    ensure_kcat
    local bootstrap
    bootstrap=$(kafka_bootstrap)

    case $sub in
        create)
            (( $# >= 2 )) || kafka_topic_usage
            local name=$1 partitions=$2; shift 2
            [[ $partitions =~ ^[1-9][0-9]*$ ]] || die "PARTITIONS must be a positive integer, got '$partitions'"
            local cfg args=()
            for cfg in "$@"; do
                [[ $cfg == *=* ]] || die "topic config must look like key=value, got '$cfg'"
                args+=(--config "$cfg")
            done
            # --if-not-exists makes re-running a test setup harmless; a topic
            # that exists with another partition count is still an error below.
            kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
                --create --if-not-exists --topic "$name" \
                --partitions "$partitions" --replication-factor 1 "${args[@]}" >/dev/null
            # Return only once the broker serves metadata for the topic.
            wait_until 30 "topic $name to appear" _kafka_topic_visible "$name" \
                || die "topic $name was created but does not show up in metadata"
            local have_parts
            have_parts=$(kafka_topic_partitions "$name")
            [[ $have_parts == "$partitions" ]] \
                || die "topic $name already exists with $have_parts partitions, not $partitions"
            log "topic $name ready ($partitions partitions)"
            ;;
        delete)
            (( $# == 1 )) || kafka_topic_usage
            kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
                --delete --if-exists --topic "$1"
            ;;
        describe)
            (( $# == 1 )) || kafka_topic_usage
            kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
                --describe --topic "$1"
            ;;
        list)
            (( $# == 0 )) || kafka_topic_usage
            kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" --list
            ;;
        *)
            kafka_topic_usage
            ;;
    esac
}

# shellcheck shell=bash
#
# Shared helpers for e2e/stack and its component scripts (lib/kafka.sh,
# lib/k8s.sh, ...). This file is sourced, never executed on its own.
#
# Conventions:
#   * everything the stack downloads lives under $MILLPOND_CACHE_DIR and is
#     kept across `down`/`up` cycles;
#   * everything a running stack writes (pids, logs, broker data) lives under
#     $MILLPOND_STATE_DIR/<component> and is throw-away test data;
#   * messages for humans go to stderr, so stdout stays machine-readable
#     (`eval "$(e2e/stack env)"` must keep working).

MILLPOND_CACHE_DIR="${MILLPOND_CACHE_DIR:-$HOME/.cache/millpond}"
MILLPOND_STATE_DIR="${MILLPOND_STATE_DIR:-$HOME/.local/state/millpond}"

# ---------------------------------------------------------------- logging --

log()  { printf '[stack] %s\n' "$*" >&2; }
warn() { printf '[stack] WARNING: %s\n' "$*" >&2; }
die()  { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

# Milliseconds since the epoch, for timing messages.
now_ms() { date +%s%3N; }

# elapsed_s START_MS -> "12.3s"
elapsed_s() {
    local ms=$(( $(now_ms) - $1 ))
    printf '%d.%ds' $(( ms / 1000 )) $(( (ms % 1000) / 100 ))
}

# --------------------------------------------------------------- commands --

have() { command -v "$1" >/dev/null 2>&1; }

# Runs a command as root: directly when we already are root, through sudo
# otherwise (developer laptops).
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif have sudo; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# apt_install PKG... : installs Debian packages, refreshing the package lists
# first (a fresh machine has none, so `install` alone would fail).
apt_install() {
    have apt-get || die "apt-get not found; install these packages by hand: $*"
    log "installing Debian package(s): $*"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# ensure_cmd CMD DEBIAN_PACKAGE : installs the package only if CMD is missing.
ensure_cmd() {
    local cmd=$1 pkg=$2
    have "$cmd" && return 0
    apt_install "$pkg"
    have "$cmd" || die "'$cmd' still not found after installing '$pkg'"
}

# kcat is the Kafka CLI used for readiness checks and by tests to produce and
# consume. Debian ships it as package `kcat`.
ensure_kcat() { ensure_cmd kcat kcat; }

# ------------------------------------------------------------- filesystem --

# state_dir COMPONENT -> creates and prints $MILLPOND_STATE_DIR/COMPONENT
state_dir() {
    local d="$MILLPOND_STATE_DIR/$1"
    mkdir -p "$d"
    printf '%s\n' "$d"
}

# cache_dir -> creates and prints $MILLPOND_CACHE_DIR
cache_dir() {
    mkdir -p "$MILLPOND_CACHE_DIR"
    printf '%s\n' "$MILLPOND_CACHE_DIR"
}

# ------------------------------------------------------------------ maven --

# Pinned so a download does not depend on the Maven version's default.
MVN_DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.6.1"

# mvn_copy_dependencies POM DIR [MVN_ARG...] : the runtime jars POM depends
# on, flattened into DIR. Maven copies them into a temporary directory beside
# DIR, which replaces DIR only when it succeeded; on failure DIR is left as it
# was, the tail of Maven's log goes to stderr and the status is non-zero.
mvn_copy_dependencies() {
    local pom=$1 dir=$2 tmp rc=0
    shift 2
    ensure_cmd mvn maven
    mkdir -p "$(dirname "$dir")" &&
        tmp=$(mktemp -d "$(dirname "$dir")/.$(basename "$dir").XXXXXX") || return 1
    if ! mvn -B -q -f "$pom" "$MVN_DEPENDENCY_PLUGIN:copy-dependencies" \
            -DincludeScope=runtime -DoutputDirectory="$tmp/libs" "$@" >"$tmp/mvn.log" 2>&1; then
        tail -n 40 "$tmp/mvn.log" >&2
        rm -rf "$tmp"
        return 1
    fi
    { rm -rf "$dir" && mv "$tmp/libs" "$dir"; } || rc=1
    rm -rf "$tmp"
    return "$rc"
}

# File descriptors of the locks this process holds (see with_lock).
_STACK_LOCK_FDS=()

# with_lock NAME CMD... : runs CMD while holding an exclusive lock, so two
# concurrent `e2e/stack up` calls (e.g. from parallel test jobs) do not both
# download or both start a broker. Nesting different NAMEs is fine.
#
# Gotcha: a daemon started inside CMD inherits the lock's file descriptor,
# and a flock stays held while ANY process has that open file. So the lock is
# released with an explicit `flock -u` (which frees it for every holder), on
# return and on exit (die, set -e); daemons may also call close_lock_fds.
with_lock() {
    local name=$1; shift
    mkdir -p "$MILLPOND_STATE_DIR"
    local lock="$MILLPOND_STATE_DIR/$name.lock"
    local fd rc=0
    exec {fd}>"$lock"
    if ! flock -n "$fd"; then
        log "waiting for another e2e/stack run to release $lock"
        flock -w 600 "$fd" || die "timed out waiting for lock $lock"
    fi
    _STACK_LOCK_FDS+=("$fd")
    trap _stack_release_locks EXIT
    "$@" || rc=$?
    flock -u "$fd" 2>/dev/null || true
    exec {fd}>&-
    unset '_STACK_LOCK_FDS[-1]'
    return "$rc"
}

_stack_release_locks() {
    local fd
    for fd in "${_STACK_LOCK_FDS[@]}"; do
        flock -u "$fd" 2>/dev/null || true
    done
}

# close_lock_fds : for a subshell that is about to exec a long-lived daemon,
# so the daemon does not keep the lock files open.
close_lock_fds() {
    local fd
    for fd in "${_STACK_LOCK_FDS[@]}"; do
        exec {fd}>&-
    done
    _STACK_LOCK_FDS=()
}

# -------------------------------------------------------------- processes --

# pid_alive PID : true if the process exists (and is not a zombie).
pid_alive() {
    local pid=$1
    [[ -n $pid ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # A zombie still answers kill -0; treat it as dead.
    [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" != Z* ]]
}

# pid_cmdline_has PID STRING : true if the process' command line contains
# STRING. Guards against acting on a recycled pid from a stale pid file.
pid_cmdline_has() {
    local pid=$1 needle=$2
    [[ -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$needle"
}

# read_pidfile FILE -> prints the pid stored in FILE (empty if none).
read_pidfile() {
    [[ -f $1 ]] || return 0
    tr -dc '0-9' <"$1"
}

# stop_pid PID NAME [TIMEOUT_S] : SIGTERM, wait up to TIMEOUT_S (default 30),
# then SIGKILL.
stop_pid() {
    local pid=$1 name=$2 timeout=${3:-30}
    pid_alive "$pid" || return 0
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$(( SECONDS + timeout ))
    while pid_alive "$pid" && (( SECONDS < deadline )); do
        sleep 0.2
    done
    if pid_alive "$pid"; then
        warn "$name did not exit within ${timeout}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while pid_alive "$pid"; do sleep 0.1; done
    fi
}

# Daemons of a stack component keep their files in its state directory DIR:
# DIR/NAME.pid and DIR/logs/NAME.log; their command lines mention DIR, which
# tells them from an unrelated process that got a recycled pid.

# daemon_pid DIR NAME -> the pid in NAME's pid file (empty if none).
daemon_pid() { read_pidfile "$1/$2.pid"; }

# daemon_running DIR NAME : true when NAME's pid file names a live daemon of DIR.
daemon_running() {
    local pid
    pid=$(daemon_pid "$1" "$2")
    pid_alive "$pid" && pid_cmdline_has "$pid" "$1"
}

# start_daemon DIR NAME BINARY ARGS... : runs a daemon in its own session,
# detached from the caller's terminal, its output in DIR/logs/NAME.log (the
# previous log kept as NAME.log.1), and waits until its pid file names it.
#
# The daemon must not inherit any descriptor but 0-2: with_lock's lock file
# in particular stays locked as long as any process holds it open, which
# would block the next `e2e/stack up/down` until the daemon dies.
start_daemon() {
    local dir=$1 name=$2 _
    local pidfile=$dir/$name.pid log=$dir/logs/$name.log
    shift 2
    mkdir -p "$dir/logs"
    [[ -f $log ]] && mv -f "$log" "$log.1"
    rm -f "$pidfile"
    # The child writes its own pid (setsid may fork), closes the extra
    # descriptors (no redirection on that loop: bash would park stderr on a
    # high descriptor the loop then closes), then execs the daemon.
    # shellcheck disable=SC2016
    setsid nohup bash -c '
        echo $$ >"$0"
        for f in /proc/self/fd/*; do
            n=${f##*/}
            if ((n > 2)); then eval "exec $n>&-"; fi
        done
        exec "$@"' "$pidfile" "$@" </dev/null >"$log" 2>&1 &
    for _ in {1..50}; do [[ -s $pidfile ]] && break; sleep 0.1; done
    log "started $name (pid $(daemon_pid "$dir" "$name")), log: $log"
}

# wait_daemon DIR NAME WHAT PROBE TIMEOUT_S : polls PROBE until it succeeds;
# fails at once, with the tail of NAME's log, when the daemon exited
# meanwhile, and after TIMEOUT_S.
wait_daemon() {
    local dir=$1 name=$2 what=$3 probe=$4 timeout=$5
    local deadline=$((SECONDS + timeout)) log=$dir/logs/$name.log
    until "$probe"; do
        # Checked twice: while a process execs, /proc/PID/cmdline is empty
        # for a moment and the daemon would look gone.
        if ! daemon_running "$dir" "$name" && ! { sleep 0.5 && daemon_running "$dir" "$name"; }; then
            warn "$name exited; last lines of $log:"
            tail -n 25 "$log" >&2 || true
            die "$name failed to start"
        fi
        ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what; log: $log"
        sleep 0.3
    done
}

# stop_daemon DIR NAME TIMEOUT_S : stops NAME (see stop_pid) if it runs, and
# drops its pid file.
stop_daemon() {
    daemon_running "$1" "$2" && stop_pid "$(daemon_pid "$1" "$2")" "$2" "$3"
    rm -f "$1/$2.pid"
}

# iptables_drop_chain TABLE CHAIN : deletes every rule that jumps to CHAIN,
# from whichever chain, then CHAIN itself; nothing when it does not exist.
iptables_drop_chain() {
    local table=$1 chain=$2 rule
    as_root iptables -w -t "$table" -L "$chain" -n >/dev/null 2>&1 || return 0
    while read -r rule; do
        # iptables-save quotes what needs quoting (comments): eval keeps it.
        eval "as_root iptables -w -t $table -D ${rule#-A }"
    done < <(as_root iptables-save -t "$table" | grep -E -- "-j $chain( |\$)")
    as_root iptables -w -t "$table" -F "$chain" && as_root iptables -w -t "$table" -X "$chain"
}

# -------------------------------------------------------------------- pki --
# Test certificates, written into the current directory.

# pki_ca NAME CN : a self-signed CA, NAME.crt and NAME.key.
pki_ca() {
    openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 3650 \
        -keyout "$1.key" -out "$1.crt" -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
}

# pki_sign CA NAME SUBJECT USAGE [SAN] : NAME.key and NAME.crt signed by CA,
# for USAGE (extendedKeyUsage: serverAuth, clientAuth or both), with the
# subjectAltName SAN when given.
pki_sign() {
    {
        printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n'
        printf 'extendedKeyUsage=%s\n' "$4"
        if [[ -n ${5:-} ]]; then printf 'subjectAltName=%s\n' "$5"; fi
    } >"$2.ext"
    openssl req -new -nodes -newkey rsa:2048 -keyout "$2.key" -out "$2.csr" -subj "$3" &&
        openssl x509 -req -in "$2.csr" -CA "$1.crt" -CAkey "$1.key" -CAcreateserial \
            -sha256 -days 3650 -extfile "$2.ext" -out "$2.crt" &&
        rm -f "$2.csr" "$2.ext"
}

# ---------------------------------------------------------------- network --

# tcp_open HOST PORT : true if something accepts TCP connections there.
tcp_open() {
    # shellcheck disable=SC2016  # $1/$2 expand in the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# wait_until TIMEOUT_S DESCRIPTION CMD... : polls CMD every 0.5 s until it
# succeeds (returns 0) or TIMEOUT_S passes (returns 1).
wait_until() {
    local timeout=$1 what=$2; shift 2
    local deadline=$(( SECONDS + timeout ))
    until "$@"; do
        if (( SECONDS >= deadline )); then
            warn "timed out after ${timeout}s waiting for $what"
            return 1
        fi
        sleep 0.5
    done
}

# shellcheck shell=bash
#
# The "process kubelet" component of the local test stack: millpond-kubelet
# (crate e2e/kubelet) registers one node with the control plane of
# lib/k8s.sh, binds every unscheduled pod to it and runs the pods'
# containers as local processes (each pod on its own 127.1.x.y address,
# with its service account's token in a per-pod KUBECONFIG).
#
# Sourced after lib/common.sh (and lib/k8s.sh, whose control plane must be
# up). Public functions:
#   kubelet_up      build the binary if missing, start it, wait for the node
#   kubelet_down    stop it (it stops every pod's processes first)
#   kubelet_status  print whether it runs, its node and how many pods run
#
# Environment:
#   MILLPOND_KUBELET_BIN      kubelet binary (default $REPO/target/release/millpond-kubelet;
#                             built with cargo when it is the default and missing)
#   MILLPOND_KUBELET_BIN_DIR  where millpond-<name> programs for millpond/<name>
#                             images are found (default $REPO/target/release)
#   MILLPOND_KUBELET_NODE     node name (default millpond-node)
#   MILLPOND_KUBELET_ARGS     extra arguments, e.g. "--image-map busybox=/bin/busybox"
#   MILLPOND_KUBELET_REBUILD  1: run `cargo build --release` even if the binary exists
#
# Files, under $MILLPOND_STATE_DIR/kubelet/:
#   kubelet.pid, kubelet.log             the kubelet itself (JSON log lines)
#   logs/<ns>_<pod>_<container>.log      each container's stdout and stderr
#   pods/<ns>_<pod>_<uid>/<container>.pid, kubeconfig, serviceaccount/

_KUBELET_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC1091  # sourced by path at run time
declare -F log >/dev/null || source "$_KUBELET_LIB_DIR/common.sh"

KUBELET_REPO=$(cd "$_KUBELET_LIB_DIR/../.." && pwd)
KUBELET_BIN="${MILLPOND_KUBELET_BIN:-$KUBELET_REPO/target/release/millpond-kubelet}"
KUBELET_BIN_DIR="${MILLPOND_KUBELET_BIN_DIR:-$KUBELET_REPO/target/release}"
KUBELET_NODE="${MILLPOND_KUBELET_NODE:-millpond-node}"
KUBELET_STATE="$MILLPOND_STATE_DIR/kubelet"
KUBELET_PIDFILE="$KUBELET_STATE/kubelet.pid"
KUBELET_LOG="$KUBELET_STATE/kubelet.log"
KUBELET_KUBECONFIG="$MILLPOND_STATE_DIR/k8s/admin.kubeconfig"
KUBELET_START_TIMEOUT="${MILLPOND_KUBELET_START_TIMEOUT:-60}"
# The kubelet gives pods up to 10 s to stop on shutdown, then waits for them.
KUBELET_STOP_TIMEOUT=40

_kubelet_log() { log "kubelet: $*"; }

# kubelet_pid -> the pid of our running kubelet (empty if none).
kubelet_pid() {
    local pid
    pid=$(read_pidfile "$KUBELET_PIDFILE")
    if [[ -n $pid ]] && pid_alive "$pid" && pid_cmdline_has "$pid" "millpond-kubelet"; then
        printf '%s\n' "$pid"
    fi
}

# _kubelet_build : builds the binary when it is the default one and missing
# (or MILLPOND_KUBELET_REBUILD=1). Builds millpond-testapp alongside.
_kubelet_build() {
    if [[ -x $KUBELET_BIN && ${MILLPOND_KUBELET_REBUILD:-0} != 1 ]]; then
        return 0
    fi
    if [[ -n ${MILLPOND_KUBELET_BIN:-} && ! -x $KUBELET_BIN ]]; then
        die "MILLPOND_KUBELET_BIN=$KUBELET_BIN is not an executable file"
    fi
    have cargo || die "cargo not found: cannot build $KUBELET_BIN"
    local started
    started=$(now_ms)
    _kubelet_log "building millpond-kubelet (cargo build --release -p millpond-kubelet)"
    (cd "$KUBELET_REPO" && cargo build --release -p millpond-kubelet) >&2 ||
        die "building millpond-kubelet failed"
    [[ -x $KUBELET_BIN ]] || die "build finished but $KUBELET_BIN does not exist"
    _kubelet_log "built in $(elapsed_s "$started")"
}

_kubelet_ready() {
    grep -q '"node registered and ready"' "$KUBELET_LOG" 2>/dev/null
}

_kubelet_up_locked() {
    local pid
    pid=$(kubelet_pid)
    if [[ -n $pid ]]; then
        _kubelet_log "already running (pid $pid)"
        return 0
    fi
    [[ -f $KUBELET_KUBECONFIG ]] ||
        die "no $KUBELET_KUBECONFIG: start the control plane first (e2e/stack up k8s)"
    _kubelet_build
    mkdir -p "$KUBELET_STATE"
    [[ -f $KUBELET_LOG ]] && mv -f "$KUBELET_LOG" "$KUBELET_LOG.prev"
    rm -f "$KUBELET_PIDFILE"

    local started
    started=$(now_ms)
    _kubelet_log "starting node $KUBELET_NODE (programs from $KUBELET_BIN_DIR)"
    # setsid + nohup: the kubelet (and its pods) outlive the shell that ran
    # `up`; `down` stops it through the pid file, which the child writes
    # itself (setsid forks when the caller is a process group leader).
    # shellcheck disable=SC2086,SC2016  # MILLPOND_KUBELET_ARGS is a word list
    (
        cd "$KUBELET_STATE" || exit 1
        close_lock_fds
        exec setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$KUBELET_PIDFILE" \
            "$KUBELET_BIN" \
            --kubeconfig "$KUBELET_KUBECONFIG" \
            --node-name "$KUBELET_NODE" \
            --bin-dir "$KUBELET_BIN_DIR" \
            --state-dir "$MILLPOND_STATE_DIR" \
            ${MILLPOND_KUBELET_ARGS:-} \
            </dev/null >"$KUBELET_LOG" 2>&1
    ) &
    local _
    for _ in {1..50}; do [[ -s $KUBELET_PIDFILE ]] && break; sleep 0.1; done
    pid=$(read_pidfile "$KUBELET_PIDFILE")
    [[ -n $pid ]] || die "millpond-kubelet did not start (log: $KUBELET_LOG)"

    local deadline=$(( SECONDS + KUBELET_START_TIMEOUT ))
    until _kubelet_ready; do
        if ! pid_alive "$pid"; then
            tail -n 20 "$KUBELET_LOG" >&2
            die "millpond-kubelet exited during startup (log above, full log: $KUBELET_LOG)"
        fi
        if (( SECONDS >= deadline )); then
            tail -n 20 "$KUBELET_LOG" >&2
            die "millpond-kubelet did not register its node within ${KUBELET_START_TIMEOUT}s (log: $KUBELET_LOG)"
        fi
        sleep 0.2
    done
    _kubelet_log "node $KUBELET_NODE ready in $(elapsed_s "$started") (pid $pid, log $KUBELET_LOG)"
}

kubelet_up() {
    with_lock kubelet _kubelet_up_locked
}

_kubelet_down_locked() {
    local pid
    pid=$(kubelet_pid)
    if [[ -n $pid ]]; then
        stop_pid "$pid" "millpond-kubelet" "$KUBELET_STOP_TIMEOUT"
        _kubelet_log "stopped"
    else
        _kubelet_log "not running"
    fi
    rm -f "$KUBELET_PIDFILE"
}

kubelet_down() {
    with_lock kubelet _kubelet_down_locked
}

# kubelet_running_pods -> number of pod directories with a live container
# process (from the kubelet's pid files).
kubelet_running_pods() {
    local dir f pid n=0
    for dir in "$KUBELET_STATE"/pods/*/; do
        [[ -d $dir ]] || continue
        for f in "$dir"*.pid; do
            [[ -f $f ]] || continue
            pid=$(cut -d' ' -f1 <"$f")
            if pid_alive "$pid"; then
                n=$(( n + 1 ))
                break
            fi
        done
    done
    printf '%s\n' "$n"
}

kubelet_status() {
    local pid
    pid=$(kubelet_pid)
    if [[ -z $pid ]]; then
        echo "kubelet: stopped"
        return 1
    fi
    echo "kubelet: running, pid $pid, node $KUBELET_NODE, $(kubelet_running_pods) pod(s) with live processes, log $KUBELET_LOG, container logs $KUBELET_STATE/logs"
}

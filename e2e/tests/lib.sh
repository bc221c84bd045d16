# shellcheck shell=bash
# Shared helpers of the e2e test scripts: each check prints `ok` or `FAIL`
# with details, and the script ends with `N passed, M failed`.

PASSED=0
FAILED=0

# require_stack VAR... : loads the stack's environment (`e2e/stack env`) and
# ends the script as one failed check, saying what to start, unless the API
# server answers, helm is on PATH and every named variable is set.
require_stack() {
    eval "$(e2e/stack env 2>/dev/null)"
    local var missing=()
    for var in KUBECONFIG "$@"; do
        [[ -n ${!var:-} ]] || missing+=("$var")
    done
    if ((${#missing[@]})) || ! kubectl version >/dev/null 2>&1 || ! command -v helm >/dev/null; then
        echo "$(basename "$0"): the stack is not up (${missing[*]:-no API server or helm}); run: e2e/stack up" >&2
        echo "0 passed, 1 failed"
        exit 1
    fi
}

pass() {
    PASSED=$((PASSED + 1))
    printf 'ok    %s\n' "$1"
}

# fail NAME DETAIL...
fail() {
    FAILED=$((FAILED + 1))
    printf 'FAIL  %s\n' "$1"
    shift
    local line
    for line in "$@"; do
        printf '%s\n' "$line" | sed 's/^/      /'
    done
}

# check NAME EXPECTED ACTUAL
check() {
    if [[ $2 == "$3" ]]; then
        pass "$1"
    else
        fail "$1" "expected: $2" "actual:   $3"
    fi
}

# check_contains NAME TEXT FRAGMENT...
check_contains() {
    local name=$1 text=$2 fragment
    shift 2
    for fragment in "$@"; do
        if [[ $text != *"$fragment"* ]]; then
            fail "$name" "missing: $fragment" "in:" "$text"
            return
        fi
    done
    pass "$name"
}

# poll TIMEOUT_S CMD... : true once CMD succeeds (quietly) within TIMEOUT_S.
poll() {
    local deadline=$(( SECONDS + $1 ))
    shift
    until "$@" >/dev/null 2>&1; do
        (( SECONDS >= deadline )) && return 1
        sleep 0.5
    done
}

# install_operator NS RELEASE INTERVAL_SECONDS : `kubectl apply` the CRD,
# creates NS and `helm install`s the chart there as a user would, the
# operator deciding every INTERVAL_SECONDS; a failed install ends the script.
install_operator() {
    local ns=$1 release=$2 interval=$3 out
    kubectl apply -f crds/ >/dev/null
    kubectl create namespace "$ns" >/dev/null
    if out=$(helm install "$release" charts/millpond-operator -n "$ns" \
        --set-json "extraEnv=[{\"name\":\"INTERVAL_SECONDS\",\"value\":\"$interval\"}]" \
        --wait --timeout 120s 2>&1); then
        pass "helm install of the chart: both operator replicas ready (deciding every $interval s)"
    else
        fail "helm install of the chart" "$out"
        finish
        exit 1
    fi
}

# operator_leader NS RELEASE : the operator pod holding the leader lease.
operator_leader() {
    kubectl get lease -n "$1" "$2-millpond-operator" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null
}

# finish: prints the summary line and fails when any check failed.
finish() {
    echo "$PASSED passed, $FAILED failed"
    (( FAILED == 0 ))
}

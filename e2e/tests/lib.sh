# shellcheck shell=bash
# Shared helpers of the e2e test scripts: each check prints `ok` or `FAIL`
# with details, and the script ends with `N passed, M failed`.

PASSED=0
FAILED=0

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

# finish: prints the summary line and fails when any check failed.
finish() {
    echo "$PASSED passed, $FAILED failed"
    (( FAILED == 0 ))
}

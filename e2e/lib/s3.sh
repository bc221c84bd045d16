# shellcheck shell=bash
#
# An S3-compatible object store on the local stack: versitygw (Apache-2.0)
# with its POSIX backend, built once from the Go module proxy into
# $MILLPOND_CACHE_DIR/versitygw-<version> and run as a host process on the
# host address (pods reach it there). A bucket is a directory under the data
# directory, so a test can read what landed without an S3 client.
#
#   s3_build   build versitygw once (about 3 minutes cold)
#   s3_up      start it with one bucket, $S3_BUCKET
#   s3_down    stop it and drop its data
#   s3_env     S3_ENDPOINT, S3_BUCKET, S3_DATA_DIR and the AWS_* credentials
#
# Not part of a bare `e2e/stack up`: `e2e/stack up s3` starts it (e2e/test
# does, for the object storage sink's tests).

_S3_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
S3_VERSION=${S3_VERSION:-v1.8.0}
S3_MODULE=github.com/versity/versitygw
S3_CACHE_DIR=${MILLPOND_CACHE_DIR:-$HOME/.cache/millpond}
S3_STATE_DIR=${MILLPOND_STATE_DIR:-$HOME/.local/state/millpond}/s3
S3_DATA_DIR=$S3_STATE_DIR/data
S3_PORT=${MILLPOND_S3_PORT:-19000}
S3_BUCKET=${S3_BUCKET:-millpond}
S3_REGION=us-east-1
# Test-only credentials of a store that listens on this machine only.
S3_ACCESS_KEY=millpond-e2e
S3_SECRET_KEY=millpond-e2e-secret

declare -F log >/dev/null || source "$_S3_LIB_DIR/common.sh"
declare -F net_up >/dev/null || source "$_S3_LIB_DIR/net.sh"

_s3_log() { log "s3: $*"; }
_s3_die() { die "s3: $*"; }

_s3_dir() { echo "$S3_CACHE_DIR/versitygw-$S3_VERSION"; }
s3_endpoint() { echo "http://$MILLPOND_HOST_IP:$S3_PORT"; }

_s3_build() {
    local dir tmp start
    dir=$(_s3_dir)
    [[ -f $dir/.complete ]] && return 0
    have go || _s3_die "go is not installed"
    tmp=$dir/bin.tmp
    rm -rf "$tmp" && mkdir -p "$tmp" || return 1
    start=$SECONDS
    _s3_log "building versitygw $S3_VERSION"
    CGO_ENABLED=0 GOBIN=$tmp nice -n 19 go install -trimpath -ldflags "-s -w" \
        "$S3_MODULE/cmd/versitygw@$S3_VERSION" 2>&1 | { grep -v '^go: downloading ' >&2 || true; }
    [[ -x $tmp/versitygw ]] || _s3_die "go install $S3_MODULE/cmd/versitygw@$S3_VERSION failed"
    rm -rf "${dir:?}/bin" && mv "$tmp" "$dir/bin" && date -u +%FT%TZ >"$dir/.complete"
    _s3_log "built versitygw in $((SECONDS - start))s"
}

s3_build() { with_lock s3-build _s3_build; }

_s3_running() { daemon_running "$S3_STATE_DIR" versitygw; }
_s3_answers() { tcp_open "$MILLPOND_HOST_IP" "$S3_PORT"; }

_s3_up() {
    if _s3_running; then
        _s3_log "versitygw already runs at $(s3_endpoint)"
        return 0
    fi
    s3_build || return 1
    mkdir -p "$S3_DATA_DIR/$S3_BUCKET"
    # Root's secret is given in the environment, not on the command line.
    ROOT_ACCESS_KEY_ID=$S3_ACCESS_KEY ROOT_SECRET_ACCESS_KEY=$S3_SECRET_KEY \
        start_daemon "$S3_STATE_DIR" versitygw "$(_s3_dir)/bin/versitygw" \
        --port "$MILLPOND_HOST_IP:$S3_PORT" posix "$S3_DATA_DIR"
    wait_daemon "$S3_STATE_DIR" versitygw "versitygw on $(s3_endpoint)" _s3_answers 30
    _s3_log "versitygw $S3_VERSION is up at $(s3_endpoint), bucket $S3_BUCKET in $S3_DATA_DIR"
}

s3_up() {
    net_up
    with_lock s3 _s3_up
}

_s3_down() {
    stop_daemon "$S3_STATE_DIR" versitygw 15
    # Objects are test-only; the next `up` starts from an empty bucket.
    rm -rf "$S3_DATA_DIR"
}

s3_down() { with_lock s3 _s3_down; }

s3_env() {
    _s3_running || return 0
    printf 'export S3_ENDPOINT=%s S3_BUCKET=%s S3_DATA_DIR=%q\n' \
        "$(s3_endpoint)" "$S3_BUCKET" "$S3_DATA_DIR"
    printf 'export S3_REGION=%s S3_ACCESS_KEY_ID=%s S3_SECRET_ACCESS_KEY=%s\n' \
        "$S3_REGION" "$S3_ACCESS_KEY" "$S3_SECRET_KEY"
    printf 'export AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_REGION=%s\n' \
        "$S3_ACCESS_KEY" "$S3_SECRET_KEY" "$S3_REGION"
}

s3_status() {
    if _s3_running; then
        echo "s3: versitygw $S3_VERSION running, pid $(daemon_pid "$S3_STATE_DIR" versitygw), $(s3_endpoint), data $S3_DATA_DIR"
    else
        echo "s3: stopped"
    fi
}

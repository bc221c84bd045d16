# shellcheck shell=bash
#
# PostgreSQL for the Iceberg SQL catalog on the local stack: Debian's
# server, a cluster of its own (initdb) run as the `postgres` user on the
# host address, with a role and database for the catalog. The Iceberg sink
# keeps its SQL catalog in it (the JDBC catalog's tables, created by the
# first writer); pyiceberg reads the same tables.
#
#   postgres_up    initialise (each time: tables are test-only) and start
#   postgres_down  stop it and remove the cluster
#   postgres_env   ICEBERG_SQL_URL
#
# Part of `e2e/stack up iceberg`.

_PG_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PG_PORT=${MILLPOND_PG_PORT:-19432}
# Outside root's home: the server runs as `postgres`, which cannot enter it.
PG_DIR=${MILLPOND_PG_DIR:-/var/tmp/millpond-postgres}
PG_USER=millpond
PG_PASSWORD=millpond
PG_DATABASE=iceberg

declare -F log >/dev/null || source "$_PG_LIB_DIR/common.sh"

_pg_log() { log "postgres: $*"; }
_pg_die() { die "postgres: $*"; }

# The newest server Debian installed.
_pg_bin() {
    local bin
    bin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
    [[ -n $bin ]] && echo "$bin"
}

_pg_as_postgres() { runuser -u postgres -- "$@"; }

postgres_url() {
    echo "postgresql://$PG_USER:$PG_PASSWORD@$MILLPOND_HOST_IP:$PG_PORT/$PG_DATABASE"
}

_pg_running() {
    local bin
    bin=$(_pg_bin) || return 1
    [[ -f $PG_DIR/data/postmaster.pid ]] && _pg_as_postgres "$bin/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1
}

_postgres_up() {
    if _pg_running; then
        _pg_log "already runs at $MILLPOND_HOST_IP:$PG_PORT"
        return 0
    fi
    local bin
    if ! bin=$(_pg_bin); then
        apt_install postgresql
        bin=$(_pg_bin) || _pg_die "no PostgreSQL server after installing the package"
    fi
    id postgres >/dev/null 2>&1 || _pg_die "no 'postgres' user (the postgresql package makes it)"
    rm -rf "$PG_DIR" && install -d -o postgres -g postgres -m 700 "$PG_DIR"
    _pg_as_postgres "$bin/initdb" -D "$PG_DIR/data" -U postgres -E UTF8 \
        --auth-local=trust --auth-host=scram-sha-256 >"$PG_DIR/initdb.log" 2>&1 ||
        { cat "$PG_DIR/initdb.log" >&2; _pg_die "initdb failed"; }
    cat >>"$PG_DIR/data/postgresql.conf" <<CONF
listen_addresses = '$MILLPOND_HOST_IP'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
max_connections = 100
fsync = off
CONF
    echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PG_DIR/data/pg_hba.conf"
    _pg_as_postgres "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 start >/dev/null ||
        { tail -n 20 "$PG_DIR/server.log" >&2; _pg_die "the server did not start"; }
    _pg_as_postgres "$bin/psql" -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
        -c "CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD'" \
        -c "CREATE DATABASE $PG_DATABASE OWNER $PG_USER" >/dev/null ||
        _pg_die "creating the catalog's role and database failed"
    _pg_log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') is up at $MILLPOND_HOST_IP:$PG_PORT (database $PG_DATABASE)"
}

postgres_up() { with_lock postgres _postgres_up; }

_postgres_down() {
    local bin
    if bin=$(_pg_bin) && [[ -d $PG_DIR/data ]]; then
        _pg_as_postgres "$bin/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PG_DIR"
}

postgres_down() { with_lock postgres _postgres_down; }

postgres_env() {
    _pg_running || return 0
    printf 'export ICEBERG_SQL_URL=%q\n' "$(postgres_url)"
}

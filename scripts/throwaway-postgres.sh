# shellcheck shell=bash
# A throwaway PostgreSQL cluster for the postgres store's tests and benchmarks.
# Source this file, then:
#
#   throwaway_postgres_start   # installs PostgreSQL if missing, initdb into a
#                              # temporary directory, starts it on a free
#                              # loopback port, exports ATMOSTONCE_POSTGRES_URL
#   throwaway_postgres_stop    # stops it and removes the directory
#
# It also exports THROWAWAY_POSTGRES_DIR (data in $THROWAWAY_POSTGRES_DIR/data,
# log in server.log) and THROWAWAY_POSTGRES_BIN (pg_ctl's directory), so that a
# test can crash and restart the server with `pg_ctl stop -m immediate` and
# `pg_ctl start`; it comes back on the same port.
#
# Works as root (CI) or as an ordinary user. As root, the server runs as the
# `postgres` user (created if missing): PostgreSQL refuses to run as root.
# The cluster trusts connections from 127.0.0.1 only and runs with fsync on,
# as the store demands.

throwaway_postgres_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [[ -z "$dir" ]] && command -v pg_ctl >/dev/null; then
        dir=$(dirname "$(command -v pg_ctl)")
    fi
    printf '%s' "$dir"
}

# Runs a command as the cluster's owner.
throwaway_postgres_as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

throwaway_postgres_start() {
    local bin port
    bin=$(throwaway_postgres_bin)
    if [[ -z "$bin" ]]; then
        if [[ $(id -u) -ne 0 ]]; then
            echo "PostgreSQL is not installed; install it (apt-get install postgresql) or run as root" >&2
            return 1
        fi
        echo "PostgreSQL is not installed: installing it with apt-get"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        bin=$(throwaway_postgres_bin)
        [[ -n "$bin" ]] || { echo "apt-get installed no PostgreSQL server" >&2; return 1; }
    fi
    if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    fi

    # The first free loopback port from 55432 on.
    for port in $(seq 55432 55531); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            break
        fi
    done

    THROWAWAY_POSTGRES_DIR=$(mktemp -d /tmp/atmostonce-postgres.XXXXXX)
    THROWAWAY_POSTGRES_BIN=$bin
    chmod 755 "$THROWAWAY_POSTGRES_DIR"
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres: "$THROWAWAY_POSTGRES_DIR"
    fi
    local data="$THROWAWAY_POSTGRES_DIR/data"
    throwaway_postgres_as_owner "$bin/initdb" --pgdata="$data" --username=atmostonce \
        --auth=trust --encoding=UTF8 --locale=C --no-sync >"$THROWAWAY_POSTGRES_DIR/initdb.log" 2>&1 \
        || { cat "$THROWAWAY_POSTGRES_DIR/initdb.log" >&2; return 1; }
    # In the configuration file, not on pg_ctl's command line, so that a
    # plain `pg_ctl start` after a crash (live mode's `pg_ctl stop -m
    # immediate`) comes back on the same port.
    throwaway_postgres_as_owner tee -a "$data/postgresql.conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$THROWAWAY_POSTGRES_DIR'
max_connections = 300
CONF
    throwaway_postgres_as_owner "$bin/pg_ctl" --pgdata="$data" --log="$THROWAWAY_POSTGRES_DIR/server.log" \
        --wait --timeout=60 start >/dev/null \
        || { cat "$THROWAWAY_POSTGRES_DIR/server.log" >&2; return 1; }
    throwaway_postgres_as_owner "$bin/createdb" --host=127.0.0.1 --port="$port" \
        --username=atmostonce atmostonce
    export ATMOSTONCE_POSTGRES_URL="postgres://atmostonce@127.0.0.1:$port/atmostonce"
    export THROWAWAY_POSTGRES_DIR THROWAWAY_POSTGRES_BIN
    echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') at $ATMOSTONCE_POSTGRES_URL (data in $data)"
}

throwaway_postgres_stop() {
    [[ -n "${THROWAWAY_POSTGRES_DIR:-}" && -d "$THROWAWAY_POSTGRES_DIR" ]] || return 0
    throwaway_postgres_as_owner "$THROWAWAY_POSTGRES_BIN/pg_ctl" \
        --pgdata="$THROWAWAY_POSTGRES_DIR/data" --mode=fast --wait stop >/dev/null 2>&1 || true
    rm -rf "$THROWAWAY_POSTGRES_DIR"
    unset THROWAWAY_POSTGRES_DIR ATMOSTONCE_POSTGRES_URL
}

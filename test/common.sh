# test/common.sh - shared by test/check.sh, test/demo.sh and test/bench/run.sh
# (sourced, not run).  Installs what is missing, builds and installs mfgsync,
# and provides run_unprivileged: PostgreSQL refuses to run as root, so when
# started as root the servers run as the user $MFGSYNC_USER.

MFGSYNC_USER=${MFGSYNC_USER:-mfgtest}
MFGSYNC_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# MFGSYNC_PGBIN: another PostgreSQL 15 installation (a relocated copy lets
# several work trees install and test side by side)
PGBIN=${MFGSYNC_PGBIN:-/usr/lib/postgresql/15/bin}
export PATH="$PGBIN:$PATH"
export PG_CONFIG="$PGBIN/pg_config"

# prepare: packages, unprivileged user, build and install
prepare()
{
    "$MFGSYNC_SRC/test/deps.sh" || return 1
    if [ "$(id -u)" = 0 ] && ! id "$MFGSYNC_USER" >/dev/null 2>&1; then
        useradd --system --create-home --shell /bin/bash "$MFGSYNC_USER" || return 1
    fi
    make -s -C "$MFGSYNC_SRC" all || return 1
    if [ -w "$(pg_config --pkglibdir)" ]; then
        make -s -C "$MFGSYNC_SRC" install >/dev/null
    else
        sudo make -s -C "$MFGSYNC_SRC" install >/dev/null
    fi
}

# run_unprivileged cmd...: run cmd as $MFGSYNC_USER when root, else as is
run_unprivileged()
{
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$MFGSYNC_USER" -- env PATH="$PATH" "$@"
    else
        "$@"
    fi
}

# workdir name: a copy of the source tree the unprivileged user owns
make_workdir()
{
    dir=$(mktemp -d "/tmp/mfgsync-$1.XXXXXX")
    (cd "$MFGSYNC_SRC" && tar --exclude=./.git --exclude='./tmp_check*' \
        --exclude=./results --exclude=./output_iso -cf - .) | (cd "$dir" && tar -xf -)
    [ "$(id -u)" = 0 ] && chown -R "$MFGSYNC_USER" "$dir"
    echo "$dir"
}

# start_cluster name port [setting...]: initdb and start a throwaway cluster
# in a new directory /tmp/mfgsync-<name>.XXXXXX owned by the unprivileged
# user: mfgsync preloaded, Unix socket in that directory, no TCP, plus the
# given postgresql.conf lines.  Sets CLUSTER_DIR and changes into it (a
# directory the server's user may enter).  Prints the log and returns 1 on
# failure.
start_cluster()
{
    local name=$1 port=$2
    shift 2
    CLUSTER_DIR=$(mktemp -d "/tmp/mfgsync-$name.XXXXXX")
    [ "$(id -u)" = 0 ] && chown "$MFGSYNC_USER" "$CLUSTER_DIR"
    cd "$CLUSTER_DIR" || return 1
    run_unprivileged initdb -D "$CLUSTER_DIR/data" -A trust -E UTF8 --locale=C \
        --no-instructions >"$CLUSTER_DIR/initdb.log" 2>&1 ||
        { cat "$CLUSTER_DIR/initdb.log" >&2; return 1; }
    {
        echo "port = $port"
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$CLUSTER_DIR'"
        echo "shared_preload_libraries = 'mfgsync'"
        printf '%s\n' "$@"
    } >>"$CLUSTER_DIR/data/postgresql.conf"
    # the server must not inherit the caller's extra descriptors (a pipe it
    # held open would keep "... | tee" waiting for the server to exit)
    (
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}
            [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-"
        done
        run_unprivileged pg_ctl -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" \
            -w -t 120 start >/dev/null
    ) || { cat "$CLUSTER_DIR/server.log" >&2; return 1; }
}

# stop_cluster: stop the cluster of start_cluster and remove its directory
stop_cluster()
{
    [ -n "${CLUSTER_DIR:-}" ] && [ -d "$CLUSTER_DIR" ] || return 0
    if [ -f "$CLUSTER_DIR/data/postmaster.pid" ]; then
        run_unprivileged pg_ctl -D "$CLUSTER_DIR/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
            run_unprivileged pg_ctl -D "$CLUSTER_DIR/data" -m immediate -w stop >/dev/null 2>&1
    fi
    cd / && rm -rf "$CLUSTER_DIR"
}

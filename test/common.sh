# test/common.sh - shared by test/check.sh, test/demo.sh and test/bench/run.sh
# (sourced, not run).  Installs what is missing, builds and installs mfgsync,
# and provides run_unprivileged: PostgreSQL refuses to run as root, so when
# started as root the servers run as the user $MFGSYNC_USER.

MFGSYNC_USER=${MFGSYNC_USER:-mfgtest}
MFGSYNC_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGBIN=/usr/lib/postgresql/15/bin
export PATH="$PGBIN:$PATH"

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

#!/bin/sh
# test/deps.sh - install the Debian 12 packages mfgsync needs to build, test,
# run the demo and the benchmarks.  Idempotent: installs only what is missing.
# Run as root (or with the packages already installed).
set -eu

PACKAGES="make gcc pkg-config perl procps
postgresql-15 postgresql-client-15 postgresql-server-dev-15 postgresql-contrib
libcurl4-openssl-dev libjson-c-dev libxml2-dev libipc-run-perl
postgresql-15-pgq3 valgrind
python3 nginx-light wrk openssl
libxml2-utils mariadb-server mariadb-client postgresql-15-mysql-fdw
curl"

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "test/deps.sh: missing packages:$missing" >&2
    echo "test/deps.sh: run as root to install them" >&2
    exit 1
fi

# The tests start their own throwaway clusters; Debian's default "main"
# cluster is not needed, so do not create one when postgresql is installed.
if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
fi

echo "test/deps.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold $missing

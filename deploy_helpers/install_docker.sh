#!/usr/bin/env bash
# Install Docker Engine with the Compose plugin on Debian or Ubuntu, from
# Docker's own apt repository, for this machine's architecture.
#
#   sudo deploy_helpers/install_docker.sh
#
# Follows https://docs.docker.com/engine/install/debian/ (and .../ubuntu/):
# Docker's signing key in /etc/apt/keyrings, a sources entry pinned to it
# and to `dpkg --print-architecture`, then docker-ce, its CLI, containerd,
# buildx and the compose plugin (`docker compose`, which `make up` needs).
# Safe to run again: it re-writes the same files and apt keeps what is
# installed. It adds nobody to the `docker` group: membership there is root
# in all but name; run `sudo make up` instead.
set -euo pipefail

readonly USAGE="usage: sudo ${0##*/}   (Debian or Ubuntu, amd64/arm64/armhf)"
readonly USAGE_EXIT=2
readonly KEYRING=/etc/apt/keyrings/docker.asc
readonly SOURCES=/etc/apt/sources.list.d/docker.list

if [[ $# -eq 1 && ($1 == -h || $1 == --help) ]]; then
    echo "$USAGE"
    exit 0
fi
if [[ $# -ne 0 ]]; then
    echo "install_docker: takes no arguments" >&2
    echo "$USAGE" >&2
    exit "$USAGE_EXIT"
fi
if [[ $EUID -ne 0 ]]; then
    echo "install_docker: must run as root" >&2
    echo "$USAGE" >&2
    exit 1
fi

# shellcheck source=/dev/null
. /etc/os-release
distro=${ID:-unknown}
codename=${VERSION_CODENAME:-}
case "$distro" in
    debian | ubuntu) ;;
    *)
        echo "install_docker: $distro is not Debian or Ubuntu; see" \
            "https://docs.docker.com/engine/install/" >&2
        exit 1
        ;;
esac
if [[ -z $codename ]]; then
    echo "install_docker: /etc/os-release names no VERSION_CODENAME" >&2
    exit 1
fi
arch=$(dpkg --print-architecture)
case "$arch" in
    amd64 | arm64 | armhf) ;;
    *)
        echo "install_docker: Docker publishes no $distro packages for $arch" >&2
        exit 1
        ;;
esac

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install --yes ca-certificates curl
install -m 0755 -d "$(dirname "$KEYRING")"
curl --fail --silent --show-error --location \
    "https://download.docker.com/linux/$distro/gpg" --output "$KEYRING"
chmod a+r "$KEYRING"
echo "deb [arch=$arch signed-by=$KEYRING] https://download.docker.com/linux/$distro $codename stable" \
    >"$SOURCES"
apt-get update
apt-get install --yes docker-ce docker-ce-cli containerd.io \
    docker-buildx-plugin docker-compose-plugin
systemctl enable --now docker
docker --version
docker compose version

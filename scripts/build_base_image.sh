#!/usr/bin/env bash
# Build the offline CPU base image for the server image's test build:
# a Debian 12 (bookworm) minbase rootfs with python3, python3-venv and ca-certificates,
# made with debootstrap (Debian's mirror only: no container registry needed) and
# imported with `docker import`.
#
#   scripts/build_base_image.sh              # ensure the image exists (skips when it does)
#   FORCE=1 scripts/build_base_image.sh      # rebuild it (re-imports from the cached rootfs)
#   NO_CACHE=1 scripts/build_base_image.sh   # ignore the cached rootfs tarball too
#
# Env: BASE_IMAGE (default fluxdeploy/base-cpu:bookworm), DEBIAN_MIRROR (default: the
# host's first bookworm URI, else http://deb.debian.org/debian),
# FLUXDEPLOY_CACHE (default ~/.cache/fluxdeploy): the rootfs tarball is cached there so a
# later run on the same machine imports in seconds; without the cache it is rebuilt.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/images.env
. "$here/images.env"

image="${BASE_IMAGE:-$FLUXDEPLOY_BASE_IMAGE}"
suite=bookworm
packages=python3,python3-venv,ca-certificates
cache_dir="${FLUXDEPLOY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fluxdeploy}"
# The cache key names what is inside, so a change of suite or packages never reuses a stale one.
cache_tar="$cache_dir/rootfs-$suite-minbase-$(echo "$packages" | tr ',' '_')-$(dpkg --print-architecture 2>/dev/null || echo amd64).tar"

die() { echo "build_base_image: $*" >&2; exit 1; }

"$here/docker_engine.sh" >/dev/null

if [ -z "${FORCE:-}" ] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "build_base_image: $image exists, skipping (FORCE=1 to rebuild)"
    exit 0
fi

previous="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
drop_previous() {
    local current
    current="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
    if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
        docker rmi "$previous" >/dev/null 2>&1 || true
    fi
}

import_tar() {
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        --message "debootstrap --variant=minbase --include=$packages $suite" \
        - "$image" <"$1" >/dev/null
}

start=$SECONDS
if [ -z "${NO_CACHE:-}" ] && [ -s "$cache_tar" ]; then
    echo "build_base_image: importing cached rootfs $cache_tar"
    if import_tar "$cache_tar" && docker run --rm "$image" python3 -c 'import venv, ssl' >/dev/null 2>&1; then
        drop_previous
        echo "build_base_image: $image ready from cache in $((SECONDS - start))s"
        exit 0
    fi
    echo "build_base_image: cached rootfs unusable, rebuilding it" >&2
    rm -f "$cache_tar"
fi

command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed: apt-get install -y debootstrap"
[ "$(id -u)" -eq 0 ] || die "debootstrap needs root"

mirror="${DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
    # Use the mirror the host's apt already reaches.
    mirror="$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null \
        | grep -v security | head -n1 | awk '{print $2}' || true)"
    case "$mirror" in http*://*) ;; *) mirror=http://deb.debian.org/debian ;; esac
fi

work="$(mktemp -d /tmp/fluxdeploy-rootfs.XXXXXX)"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

echo "build_base_image: debootstrap $suite from $mirror (about a minute)"
if ! debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    [ -f "$rootfs/debootstrap/debootstrap.log" ] && tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2
    die "debootstrap failed (mirror $mirror)"
fi
t_boot=$((SECONDS - start))

# Slim it: downloaded .debs and apt lists are not needed at runtime.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/* || true

mkdir -p "$cache_dir"
tmp_tar="$cache_tar.tmp.$$"
tar --numeric-owner -C "$rootfs" -cf "$tmp_tar" .
mv -f "$tmp_tar" "$cache_tar"   # atomic: a killed run never leaves a half tarball
import_tar "$cache_tar"
docker run --rm "$image" python3 -c 'import venv, ssl' || die "$image does not run python3"
drop_previous
echo "build_base_image: $image ready (debootstrap ${t_boot}s, total $((SECONDS - start))s; rootfs cached at $cache_tar)"

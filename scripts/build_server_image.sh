#!/usr/bin/env bash
# Build the server image for tests: server/Dockerfile on the offline CPU base image, with the
# local CPU torch wheel and the host's CA bundle brought in through server/.build-extra/
# (git-ignored; build-time only, none of it ends up in the final image).
#
#   scripts/build_server_image.sh                 # builds fluxdeploy/flux-server:cpu
#   SERVER_IMAGE=name:tag scripts/build_server_image.sh
#
# Env: SERVER_IMAGE, BASE_IMAGE (defaults in scripts/images.env), TORCH_VERSION (2.13.0),
# PIP_FIND_LINKS (folders searched for the torch wheel; default /opt/wheels),
# PIP_CERT (CA bundle; default /etc/ssl/certs/ca-certificates.crt),
# SERVER_EXTRAS (optional-dependency groups of server/pyproject.toml to install; default none:
# the Dockerfile's production default `quant` is for CUDA),
# CONSTRAINTS_FROM (a python whose installed versions pin the image's; default
# .venv/bin/python when it exists; "none" to not pin).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=scripts/images.env
. "$here/images.env"
image="${SERVER_IMAGE:-$FLUXDEPLOY_SERVER_IMAGE}"
base="${BASE_IMAGE:-$FLUXDEPLOY_BASE_IMAGE}"
torch_version="${TORCH_VERSION:-2.13.0}"
ctx="$root/server"
extra="$ctx/.build-extra"

die() { echo "build_server_image: $*" >&2; exit 1; }

[ -f "$ctx/Dockerfile" ] || die "no $ctx/Dockerfile"
[ -f "$ctx/pyproject.toml" ] || die "no $ctx/pyproject.toml (the server package is not there yet)"

"$here/docker_engine.sh" >/dev/null
BASE_IMAGE="$base" "$here/build_base_image.sh"

# --- .build-extra: CA bundle, torch wheel, constraints (scripts/prepare_build_extra.sh) -------
torch_spec="$(EXTRA_DIR="$extra" TORCH_VERSION="$torch_version" "$here/prepare_build_extra.sh")"

# --- build ------------------------------------------------------------------------------------
# Debian's docker.io has no buildx: use the classic builder there (the Dockerfile works with both).
if [ -z "${DOCKER_BUILDKIT:-}" ] && ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi

echo "build_server_image: building $image on $base with $torch_spec"
previous="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
start=$SECONDS
set +e
docker build \
    --build-arg BASE_IMAGE="$base" \
    --build-arg TORCH_SPEC="$torch_spec" \
    --build-arg SERVER_EXTRAS="${SERVER_EXTRAS:-}" \
    --label org.opencontainers.image.title=flux-server \
    --label fluxdeploy.base="$base" \
    -t "$image" \
    -f "$ctx/Dockerfile" "$ctx" 2>&1 \
    | grep -vE 'legacy builder is deprecated|BuildKit is currently disabled|Install the buildx component|docs.docker.com/go/buildx|^DEPRECATED:|^ *$'
rc=${PIPESTATUS[0]}
set -e
# (grep only drops the classic builder's deprecation banner; the status is docker build's)
[ "$rc" -eq 0 ] || die "docker build of $image failed (exit $rc); see the output above"
# The image this tag named before (and its now unused layers) would pile up, one per code
# change: remove it unless something still uses it (a container, another tag).
current="$(docker image inspect -f '{{.Id}}' "$image")"
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
    docker rmi "$previous" >/dev/null 2>&1 || true
fi
echo "build_server_image: $image built in $((SECONDS - start))s," \
     "$(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}')"

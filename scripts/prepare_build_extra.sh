#!/usr/bin/env bash
# Fill the server build's optional .build-extra/ folder for an offline CPU build: the host's CA
# bundle (pip's PIP_CERT inside the build), the local CPU torch wheel, and constraints pinning
# the image's packages to the versions the tests run with. Used by scripts/build_server_image.sh
# (tests' image) and `make demo` (FLUXDEPLOY_BUILD_EXTRA_DIR for `fluxdeploy up --preset local`).
# Build-time only: none of it ends up in the final image. Prints the torch requirement to use.
#
#   scripts/prepare_build_extra.sh                # fills server/.build-extra (git-ignored)
#   EXTRA_DIR=/some/folder scripts/prepare_build_extra.sh
#
# Env: EXTRA_DIR, TORCH_VERSION (2.13.0), PIP_FIND_LINKS (folders searched for the torch wheel;
# default /opt/wheels), PIP_CERT (CA bundle; default /etc/ssl/certs/ca-certificates.crt),
# CONSTRAINTS_FROM (a python whose installed versions pin the image's; default .venv/bin/python
# when it exists; "none" to not pin).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
torch_version="${TORCH_VERSION:-2.13.0}"
extra="${EXTRA_DIR:-$root/server/.build-extra}"

# --- .build-extra: CA bundle, torch wheel, constraints --------------------------------------
mkdir -p "$extra/wheels"

cert="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
if [ -s "$cert" ]; then
    cmp -s "$cert" "$extra/ca-certificates.crt" || cp "$cert" "$extra/ca-certificates.crt"
else
    rm -f "$extra/ca-certificates.crt"
    echo "prepare_build_extra: no CA bundle at $cert; pip in the build uses the image's own" >&2
fi

# The CPU torch wheel for the image's python (cp311 on the Debian 12 base).
py_tag=cp311
arch="$(uname -m)"
wheel=""
IFS=: read -r -a dirs <<<"${PIP_FIND_LINKS:-/opt/wheels}"
for d in "${dirs[@]}"; do
    d="${d#file://}"
    [ -d "$d" ] || continue
    for w in "$d"/torch-"$torch_version"*-"$py_tag"-"$py_tag"-*"$arch".whl; do
        [ -f "$w" ] && { wheel="$w"; break 2; }
    done
done
# Keep only that wheel in the folder (old ones would bloat the build context).
for w in "$extra"/wheels/*.whl; do
    [ -e "$w" ] || continue
    [ -n "$wheel" ] && [ "$(basename "$w")" = "$(basename "$wheel")" ] && continue
    rm -f "$w"
done
if [ -n "$wheel" ]; then
    dest="$extra/wheels/$(basename "$wheel")"
    if ! cmp -s "$wheel" "$dest"; then
        ln -f "$wheel" "$dest" 2>/dev/null || cp -p "$wheel" "$dest"
    fi
    # e.g. torch-2.13.0+cpu-cp311-... -> torch==2.13.0+cpu: never the multi-GB CUDA build.
    torch_spec="torch==$(basename "$wheel" | cut -d- -f2)"
else
    echo "prepare_build_extra: no local torch $torch_version $py_tag wheel in ${PIP_FIND_LINKS:-/opt/wheels};" \
         "pip in the build will fetch torch==$torch_version from PyPI (possibly the large CUDA build)" >&2
    torch_spec="torch==$torch_version"
fi

# Pin the image's Python packages to the versions the tests run with.
cpy="${CONSTRAINTS_FROM:-}"
[ -z "$cpy" ] && [ -x "$root/.venv/bin/python" ] && cpy="$root/.venv/bin/python"
if [ -n "$cpy" ] && [ "$cpy" != none ]; then
    "$cpy" -m pip freeze --exclude-editable 2>/dev/null \
        | grep -vE '^(-e |#)| @ |^(torch|intelligensi[-_]deploy|flux[-_]server)==' \
        > "$extra/constraints.txt.new.$$" || true
    if cmp -s "$extra/constraints.txt.new.$$" "$extra/constraints.txt"; then
        rm -f "$extra/constraints.txt.new.$$"
    else
        mv -f "$extra/constraints.txt.new.$$" "$extra/constraints.txt"
    fi
else
    rm -f "$extra/constraints.txt"
fi

echo "$torch_spec"

#!/usr/bin/env bash
# Install the Debian 12 system packages that `make demo`, `make test` and `.ci/run` need.
# The one place that lists them. Idempotent: when every package is already installed it
# installs nothing and says so. Needs root or passwordless sudo (apt-get).
#
#   scripts/setup_system.sh            # demo + test packages
#   SETUP_PROFILE=demo scripts/setup_system.sh   # only what `make demo` needs
#
# What each package is for:
#   docker.io        the Docker engine (dockerd) and client: the demo runs the server there
#   debootstrap      the offline Debian base image of the server's CPU build (no registry here)
#   python3-venv     the project's virtual environment
#   make, ca-certificates, curl, git, iproute2   the commands themselves
#   docker-registry  tests: a real registry with auth, standing in for ghcr.io
#   apache2-utils    tests: htpasswd for that registry
#   openssh-server   tests: the sshd of the test "VMs"
#   chromium, chromium-driver   tests: the prompt page driven in a real browser
#   jq               tests: runs the image workflow's own shell steps (.github/workflows/image.yml)
set -euo pipefail

profile="${SETUP_PROFILE:-test}"
demo_packages=(docker.io debootstrap python3-venv make ca-certificates curl git iproute2)
test_packages=(docker-registry apache2-utils openssh-server chromium chromium-driver jq)

case "$profile" in
    demo) packages=("${demo_packages[@]}") ;;
    test) packages=("${demo_packages[@]}" "${test_packages[@]}") ;;
    *) echo "setup_system: unknown SETUP_PROFILE=$profile (use demo or test)" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "setup_system: all ${#packages[@]} system packages already installed; nothing to do"
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo="sudo -E"
    else
        echo "setup_system: missing ${missing[*]}; installing them needs root." >&2
        echo "  Run as root, or with passwordless sudo, or install them yourself:" >&2
        echo "  sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

start=$SECONDS
echo "setup_system: installing ${missing[*]} (a cold machine takes 1-3 minutes)"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
# policy-rc.d may refuse to start services in containers: fine, the scripts start their own.
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "setup_system: installed ${#missing[@]} package(s) in $((SECONDS - start))s"

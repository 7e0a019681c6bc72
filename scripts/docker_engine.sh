#!/usr/bin/env bash
# Ensure a Docker engine answers `docker info`. Idempotent: does nothing when one already
# answers; otherwise starts `dockerd` in the background (no systemd on the build/CI machines)
# and waits for it. Exits non-zero with a clear message when it cannot.
#
#   scripts/docker_engine.sh            # ensure the engine is up
#   DOCKERD_LOG=/tmp/dockerd.log DOCKER_ENGINE_TIMEOUT=60 scripts/docker_engine.sh
set -euo pipefail

log="${DOCKERD_LOG:-/tmp/dockerd.log}"
timeout="${DOCKER_ENGINE_TIMEOUT:-60}"

die() { echo "docker_engine: $*" >&2; exit 1; }

if ! command -v docker >/dev/null 2>&1; then
    die "no 'docker' client on PATH. Install it: apt-get install -y docker.io"
fi

if docker info >/dev/null 2>&1; then
    echo "docker_engine: engine already answers ($(docker info --format '{{.ServerVersion}}' 2>/dev/null))"
    exit 0
fi

command -v dockerd >/dev/null 2>&1 || die "no engine answers and 'dockerd' is not installed. Install it: apt-get install -y docker.io"

if [ "$(id -u)" -ne 0 ]; then
    die "no engine answers and starting dockerd needs root (run as root, or start the engine yourself)"
fi

# A dockerd may be starting already (another process raced us): wait for it rather than
# start a second one, which would fail on the pid file.
if ! pgrep -x dockerd >/dev/null 2>&1; then
    # A stale pid file from a killed engine prevents the start.
    if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid 2>/dev/null)" 2>/dev/null; then
        rm -f /var/run/docker.pid
    fi
    echo "docker_engine: starting dockerd (log: $log)"
    # setsid: the engine must outlive this script and the test session that called it.
    setsid dockerd >"$log" 2>&1 </dev/null &
fi

deadline=$((SECONDS + timeout))
while [ "$SECONDS" -lt "$deadline" ]; do
    if docker info >/dev/null 2>&1; then
        echo "docker_engine: engine up ($(docker info --format '{{.ServerVersion}}' 2>/dev/null))"
        exit 0
    fi
    if ! pgrep -x dockerd >/dev/null 2>&1; then
        echo "docker_engine: dockerd exited; last lines of $log:" >&2
        tail -n 20 "$log" >&2 || true
        die "dockerd could not start (see $log)"
    fi
    sleep 0.5
done
echo "docker_engine: last lines of $log:" >&2
tail -n 20 "$log" >&2 || true
die "dockerd did not answer 'docker info' within ${timeout}s (see $log)"

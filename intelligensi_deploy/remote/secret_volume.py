"""A deployment's server secrets in a Docker volume: files the server itself can read.

The server runs as its image's user (uid 1000 in the bundled image), which need not be the
SSH user's uid, so a 0600 file in the SSH user's home is not readable by it. Instead a
one-off container of the same image, running as root with no network, reads the file's body
on stdin (never argv), writes it 0600, hands it to the image's user and renames it into place
(atomic: the server, which re-reads its keys file when it changes, never sees half a key).
The server mounts the volume read-only; Docker keeps volumes under /var/lib/docker, which only
root reads.
"""

from __future__ import annotations

from intelligensi_deploy.remote.docker import Docker, DockerError

MOUNT = "/secrets"
# $1: the file's name, $2: its owner. umask 077: 0600 from the first byte.
_WRITE = ('set -e; umask 077; t="$0/.$1.tmp"; cat > "$t"; chown "$2" "$t"; '
          'mv -f "$t" "$0/$1"')


def image_user(docker: Docker, image: str) -> str:
    """The user the image's containers run as (`USER`), root when it sets none."""
    result = docker.run_docker(["image", "inspect", "--format", "{{.Config.User}}", image],
                               timeout=60)
    if not result.ok:
        raise DockerError(f"`docker image inspect {image}` failed on {docker.host.label}: "
                          f"{result.output.strip()[-300:]}", result=result)
    return result.stdout.strip() or "0"


def write_secret(docker: Docker, image: str, volume: str, filename: str, body: bytes) -> None:
    """Write `body` as `filename` in `volume` (created if missing), 0600 and owned by the
    user `image` runs as."""
    if "/" in filename or filename.startswith("."):
        raise ValueError(f"not a plain file name: {filename!r}")
    owner = image_user(docker, image)
    args = ["run", "--rm", "-i", "--network", "none", "--user", "0:0", "--entrypoint", "sh",
            "-v", f"{volume}:{MOUNT}", image, "-c", _WRITE, MOUNT, filename, owner]
    result = docker.run_docker(args, stdin=body, timeout=120)
    if not result.ok:
        raise DockerError(
            f"Could not write the server's {filename} into the volume {volume} on "
            f"{docker.host.label}: {result.output.strip()[-300:]}",
            fix="Check `docker volume ls` and the disk space there, then run the command again.",
            result=result)


def remove_volume(docker: Docker, volume: str) -> None:
    """Remove the secrets volume, if there is one (`-f`: a missing one is no error)."""
    result = docker.run_docker(["volume", "rm", "-f", volume], timeout=60)
    if not result.ok:
        raise DockerError(f"`docker volume rm {volume}` failed on {docker.host.label}: "
                          f"{result.output.strip()[-300:]}", result=result)


def read_public_file(docker: Docker, image: str, volume: str, filename: str,
                     requires: str | None = None) -> str | None:
    """`filename`'s text in `volume` (None when it is not there, or when `requires`, another
    file of the volume, is missing). For the public files only (a certificate): the text
    comes back on stdout."""
    script = 'test -s "$0/$2" && exec cat "$0/$1"'
    args = ["run", "--rm", "--network", "none", "--user", "0:0", "--entrypoint", "sh",
            "-v", f"{volume}:{MOUNT}:ro", image, "-c", script, MOUNT, filename,
            requires or filename]
    result = docker.run_docker(args, timeout=120)
    return result.stdout if result.ok and result.stdout.strip() else None
